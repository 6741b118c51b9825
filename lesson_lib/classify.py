"""Which genre a passage comes from: the data, a classification head on a GPT, and its scores.

The data (chapter 6 trains on it; chapter 9 comes back to its class imbalance):

    splits = genre_splits(load_corpus("shakespeare"))      # passages of 256 characters
    splits.train.texts, splits.train.labels                  # lists of str, int array (index into GENRE_NAMES)
    splits.test.works                                        # the stems of the held-out works
    splits.counts()                                          # passages and works per genre and split

The split is **by work**: every passage of a play is on the same side, so a classifier cannot score
by recognising a play's characters and plot. It is stratified (each genre has works on both sides)
and deterministic for a seed. The classes stay imbalanced as the corpus is (15 comedies, 12
tragedies, 10 histories, 5 poems, the poems short): that is the data chapter 9 rebalances.

The model: `GPTClassifier` wraps a GPT by composition. It runs the GPT's own embedding, blocks and
final norm, averages the hidden states over the positions, standardises that vector per feature
(averaged states differ little from passage to passage; a head learns faster on the differences),
and a new linear head gives one score per genre; the GPT's next-token output layer is not used. `fine_tune` trains the whole thing with
AdamW and the trainer's warmup-then-cosine schedule (`training.make_optimizer`, `training.lr_at`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import GENRES, Corpus
from .models.gpt import GPT, padding_positions_and_mask
from .training import TrainConfig, lr_at, make_optimizer

GENRE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(GENRES.values()))  # comedy, tragedy, history, poem


# ----------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Passages:
    texts: list[str]  # the passages, each `length` characters
    labels: np.ndarray  # (N,) int: index into GENRE_NAMES
    works: list[str]  # (N,) the stem of the work each passage comes from

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class GenreSplits:
    train: Passages
    test: Passages
    train_works: tuple[str, ...]
    test_works: tuple[str, ...]
    length: int  # characters per passage
    seed: int

    def counts(self) -> pd.DataFrame:
        """Works (those long enough to give a passage) and passages per genre on each side of the split,
        one row per genre and a total."""
        rows = []
        for index, genre in enumerate(GENRE_NAMES):
            rows.append({"genre": genre,
                         "train works": len({w for w, y in zip(self.train.works, self.train.labels) if y == index}),
                         "test works": len({w for w, y in zip(self.test.works, self.test.labels) if y == index}),
                         "train passages": int((self.train.labels == index).sum()),
                         "test passages": int((self.test.labels == index).sum())})
        table = pd.DataFrame(rows).set_index("genre")
        table.loc["total"] = table.sum()
        return table


def split_works(corpus: Corpus, test_fraction: float = 0.25, seed: int = 0, min_test_chars: int = 20_000
                ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train stems, test stems): in each genre, round(test_fraction x works) works, at least one and
    never all, drawn with `seed` among the works of at least `min_test_chars` characters, go to the
    test side. (Three poems are shorter: The Phoenix and the Turtle has 2,096 characters, too few
    passages to score a genre on, so those always train.)"""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for genre in GENRE_NAMES:
        works = sorted((w for w in corpus.works if w.genre == genre), key=lambda w: w.stem)
        eligible = [w.stem for w in works if len(w.text) >= min_test_chars]
        n_test = min(len(works) - 1, max(1, math.floor(test_fraction * len(works) + 0.5)))
        if not eligible or n_test < 1:
            raise ValueError(f"genre {genre!r} has {len(works)} works, {len(eligible)} of at least "
                             f"{min_test_chars:,} characters: a split by work needs 2 works, one of them that long")
        chosen = set(rng.choice(eligible, size=min(n_test, len(eligible)), replace=False).tolist())
        train += [w.stem for w in works if w.stem not in chosen]
        test += sorted(chosen)
    return tuple(sorted(train)), tuple(sorted(test))


def work_passages(text: str, length: int, max_passages: int | None = None, seed: int = 0) -> list[str]:
    """Non-overlapping passages of `length` characters, cut from the text's start; when there are more
    than `max_passages`, that many of them chosen with `seed` (kept in text order)."""
    starts = range(0, len(text) - length + 1, length)
    if max_passages is not None and len(starts) > max_passages:
        rng = np.random.default_rng(seed)
        starts = sorted(rng.choice(starts, size=max_passages, replace=False).tolist())
    return [text[s:s + length] for s in starts]


def _passages(corpus: Corpus, stems: Sequence[str], length: int, max_per_work: int | None, seed: int) -> Passages:
    texts, labels, works = [], [], []
    for k, stem in enumerate(stems):
        work = corpus.work(stem)
        chunk = work_passages(work.text, length, max_per_work, seed + k)
        texts += chunk
        labels += [GENRE_NAMES.index(work.genre)] * len(chunk)
        works += [stem] * len(chunk)
    return Passages(texts, np.array(labels, dtype=np.int64), works)


def genre_splits(corpus: Corpus, length: int = 256, test_fraction: float = 0.25,
                 max_per_work: int | None = 150, seed: int = 0, min_test_chars: int = 20_000) -> GenreSplits:
    """Passages labelled by genre, split by work: what chapter 6 classifies and chapter 9 rebalances.

    `length` characters per passage (256: four contexts of chapter 5's GPT); at most `max_per_work`
    passages from one work (None: all), which caps the long plays while the short poems keep what
    they have, so the passage counts stay imbalanced as the works are. The defaults are chapter 6's
    full lesson.
    """
    train_works, test_works = split_works(corpus, test_fraction, seed, min_test_chars)
    return GenreSplits(_passages(corpus, train_works, length, max_per_work, seed),
                       _passages(corpus, test_works, length, max_per_work, seed + 10_000),
                       train_works, test_works, length, seed)


def encode_passages(texts: Sequence[str], tokenizer) -> torch.Tensor:
    """(N, T) token ids of passages that all encode to the same number T of tokens (a char tokenizer)."""
    ids = [tokenizer.encode(t) for t in texts]
    if len({len(i) for i in ids}) > 1:
        raise ValueError("the passages encode to different lengths: use a character tokenizer, or pad them")
    return torch.tensor(ids, dtype=torch.long)


# ----------------------------------------------------------------------------- the model

class GPTClassifier(nn.Module):
    """A GPT's layers, mean-pooled over positions, then a linear head: (B, T) ids -> (B, n_classes) logits."""

    def __init__(self, gpt: GPT, n_classes: int, dropout: float = 0.0):
        super().__init__()
        self.gpt = gpt
        self.dropout = nn.Dropout(dropout)
        self.feature_norm = nn.BatchNorm1d(gpt.config.n_embd, affine=False)
        self.head = nn.Linear(gpt.config.n_embd, n_classes)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The mean over positions of the GPT's final hidden states: (B, T) -> (B, C).

        A passage longer than the GPT's context is cut into pieces of `block_size` tokens (T must be
        a multiple of it), each read on its own, and the mean taken over all their positions.
        `attention_mask` (B, T), True for real tokens, is for padded passages: the padding is hidden
        from attention (`GPT.forward`'s rule) and left out of the mean.
        """
        gpt = self.gpt
        gpt.check_input(idx)
        B, T = idx.shape
        block = gpt.config.block_size
        real = None if attention_mask is None else attention_mask.bool()
        if real is not None and real.shape != idx.shape:
            raise ValueError(f"attention_mask must have the shape of idx, {tuple(idx.shape)}; got {tuple(real.shape)}")
        if T > block:
            if T % block:
                raise ValueError(f"a passage of {T} tokens is longer than the GPT's context of {block} and not a "
                                 f"multiple of it: use passages of {block} tokens or a multiple")
            idx = idx.reshape(B * (T // block), block)  # (B * pieces, block)
            real = None if real is None else real.reshape(idx.shape)
        if real is None:
            positions, mask = torch.arange(idx.size(1), device=idx.device), None
        else:
            positions, mask = padding_positions_and_mask(real)
        x, rotary = gpt.embed(idx, positions), gpt.rotary_angles(positions)  # (B', T', C)
        for block_module in gpt.blocks:
            x, _ = block_module(x, None, mask, rotary)
        hidden = gpt.final_norm(x)  # (B', T', C)
        if real is None:
            pooled = hidden.mean(dim=1)  # (B', C)
            return pooled.reshape(B, -1, pooled.size(-1)).mean(dim=1)  # (B, C): the pieces of a passage averaged
        weight = real.reshape(B, -1, 1).to(hidden.dtype)  # (B, pieces * T', 1): 1 for a real token
        summed = (hidden.reshape(B, -1, hidden.size(-1)) * weight).sum(dim=1)  # (B, C)
        return summed / weight.sum(dim=1).clamp(min=1)  # the mean over the real tokens of every piece

    def forward(self, idx: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.dropout(self.feature_norm(self.features(idx, attention_mask))))  # (B, n_classes)


def fine_tune(model: nn.Module, ids: torch.Tensor, labels: np.ndarray | torch.Tensor, config: TrainConfig,
              class_weights: torch.Tensor | None = None,
              callback: Callable[[dict], None] | None = None) -> list[dict]:
    """Train a classifier for `config.max_steps` steps of `config.batch_size` random passages
    (AdamW, warmup then cosine, gradient clipping, all from `config`); return one record per step
    ({kind, step, train_loss, lr}: the run-log shape, so `plots.loss_curves` draws them).

    `class_weights` (one per class) weights the cross-entropy: chapter 9's answer to imbalance.
    """
    device = next(model.parameters()).device
    labels = torch.as_tensor(labels, dtype=torch.long)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config, device)
    weight = class_weights.to(device) if class_weights is not None else None
    model.train()
    records = []
    for step in range(config.max_steps):
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.randint(len(ids), (config.batch_size,), generator=generator)
        logits = model(ids[batch].to(device))
        loss = F.cross_entropy(logits.float(), labels[batch].to(device), weight=weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        record = {"kind": "train", "step": step + 1, "train_loss": loss.item(), "lr": lr}
        records.append(record)
        if callback is not None:
            callback(record)
    model.eval()
    return records


@torch.no_grad()
def predict(model: nn.Module, ids: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """The predicted class of every row of `ids` (the model in eval mode)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(ids[i:i + batch_size].to(device)).argmax(-1).cpu() for i in range(0, len(ids), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy()


# ----------------------------------------------------------------------------- baseline and scores

def bag_of_words_baseline(train_texts: Sequence[str], train_labels: np.ndarray, test_texts: Sequence[str],
                          seed: int = 0) -> np.ndarray:
    """TF-IDF of word unigrams and bigrams, then a multinomial logistic regression (scikit-learn):
    the classic text classifier a neural one has to beat. Returns its predictions for `test_texts`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from threadpoolctl import threadpool_limits

    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                             LogisticRegression(C=10.0, max_iter=2000, random_state=seed))
    with threadpool_limits(1):  # a small problem: extra BLAS threads only wait on a busy machine
        pipeline.fit(list(train_texts), train_labels)
        return pipeline.predict(list(test_texts))


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = len(GENRE_NAMES)) -> dict:
    """Accuracy, macro-F1 (the unweighted mean of the per-class F1) and the confusion matrix
    (rows: true class, columns: predicted), from scikit-learn."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    labels = list(range(n_classes))
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro-F1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
            "confusion": confusion_matrix(y_true, y_pred, labels=labels)}
