"""Word vectors: train skip-gram word2vec on a corpus, evaluate them, save them for later chapters.

    sentences = corpus_sentences(load_corpus("shakespeare").text)
    vocab = build_vocab(sentences, min_count=5)
    result = train_word2vec(sentences, vocab, Word2VecConfig(len(vocab), 100, 5, 5), epochs=5)
    similarity_spearman(result.vectors, vocab, load_wordsim353())   # -> (rho, coverage)

Training follows word2vec.c (Mikolov et al., 2013): frequent words subsampled (`sample`), a random
window of 1..`window` words around each center, negatives drawn from unigram^0.75, plain SGD whose
learning rate falls linearly from `lr` to `lr * 1e-4`. The one change is batching: instead of one pair
at a time, `batch_size` pairs are scored together and their summed gradients are added into the two
embedding tables with `index_add_` (a sparse SGD step, exactly autograd's gradient of `SkipGram`'s
summed loss; tests/test_embeddings.py checks this), so the work is a few large tensor operations.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .models.word2vec import SkipGram, Word2VecConfig, noise_distribution, skipgram_pairs
from .device import cpu_threads
from .fileio import atomic_write, write_json
from .runs import runs_dir
from .tokenizers import WordTokenizer

Sentences = Sequence[Sequence[str]]


@dataclass(frozen=True)
class Vocab:
    """Words sorted by count (ties alphabetically); a word's id is its position."""

    words: tuple[str, ...]
    counts: tuple[int, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if len(self.words) != len(self.counts):
            raise ValueError(f"{len(self.words)} words but {len(self.counts)} counts")
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index


def corpus_sentences(text: str) -> list[list[str]]:
    """Paragraphs (split at blank lines) as lists of lowercased words, punctuation dropped.

    Words are `WordTokenizer.tokenize`'s, so "'tis" and "o'er" stay whole. A context window never
    crosses a paragraph, i.e. a speech in the plays.
    """
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        words = [t for t in WordTokenizer.tokenize(paragraph) if any(ch.isalnum() for ch in t)]
        if words:
            sentences.append(words)
    return sentences


def build_vocab(sentences: Sentences, min_count: int = 5) -> Vocab:
    """Every word seen at least `min_count` times."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    counts = Counter(w for sentence in sentences for w in sentence)
    if not counts:
        raise ValueError("the corpus has no words: give build_vocab some non-empty sentences")
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if not kept:
        raise ValueError(f"no word occurs {min_count} times or more ({sum(counts.values())} words in all): "
                         "lower min_count or use more text")
    return Vocab(tuple(kept), tuple(counts[w] for w in kept))


def encode(sentences: Sentences, vocab: Vocab) -> tuple[np.ndarray, np.ndarray]:
    """(ids, sentence_of_each_id): in-vocabulary words as one stream; out-of-vocabulary words are dropped."""
    ids, owner = [], []
    for s, sentence in enumerate(sentences):
        row = [vocab.index[w] for w in sentence if w in vocab.index]
        ids.extend(row)
        owner.extend([s] * len(row))
    return np.asarray(ids, dtype=np.int64), np.asarray(owner, dtype=np.int64)


def keep_probabilities(counts: Sequence[int], sample: float) -> np.ndarray:
    """word2vec.c's subsampling: a word of frequency f is kept with p = (sqrt(f/sample) + 1) * sample/f."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1) * threshold / counts)


@torch.no_grad()
def sgns_step(model: SkipGram, center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor,
              lr: float, with_loss: bool = False) -> float | None:
    """One SGD step on the summed SGNS loss of a batch of pairs (B centers, B contexts, (B, K) negatives).

    The gradient written out: with score s = u_center . v_target and label y (1 for the real context,
    0 for a noise word), d loss / d s = sigmoid(s) - y; the center vector gets sum_t (sigmoid(s) - y) v_t,
    each target vector (sigmoid(s) - y) u_center. Returns the mean loss per pair (before the step) if
    `with_loss`, else None (computing it costs time).
    """
    u, v = model.center_vectors.weight, model.context_vectors.weight
    batch, dim = center.numel(), u.shape[1]
    targets = torch.cat([context.unsqueeze(1), negatives], dim=1).reshape(-1)  # (B * (1 + K),)
    c = u.index_select(0, center)  # (B, D)
    t = v.index_select(0, targets).view(batch, -1, dim)  # (B, 1 + K, D)
    scores = torch.bmm(t, c.unsqueeze(2)).squeeze(2)  # (B, 1 + K)
    loss = None
    if with_loss:
        signed = torch.cat([-scores[:, :1], scores[:, 1:]], dim=1)
        loss = torch.nn.functional.softplus(signed).sum(1).mean().item()
    g = torch.sigmoid(scores)  # d loss / d score = sigmoid(s) - y
    g[:, 0] -= 1.0
    g[:, 1:] *= negatives != context.unsqueeze(1)  # as word2vec.c: a noise word equal to the context is skipped
    g *= -lr
    u.index_add_(0, center, torch.bmm(g.unsqueeze(1), t).squeeze(1))  # (B, D)
    v.index_add_(0, targets, (g.unsqueeze(2) * c.unsqueeze(1)).view(-1, dim))  # (B * (1 + K), D)
    return loss


@dataclass
class Word2VecResult:
    vectors: np.ndarray  # (V, D) center vectors: the word vectors everyone keeps
    context_vectors: np.ndarray  # (V, D) output vectors, used only to score (center, context) pairs
    vocab: Vocab
    words_per_s: float  # corpus words (before subsampling) times epochs, over training seconds
    seconds: float
    pairs: int  # (center, context) pairs trained on, all epochs
    records: list[dict] = field(default_factory=list)  # {"kind": "train", step, tokens, time, train_loss, lr}


def train_word2vec(sentences: Sentences, vocab: Vocab, config: Word2VecConfig, epochs: int = 5,
                   lr: float = 0.025, batch_size: int = 4096, sample: float = 1e-3, seed: int = 0,
                   device: str | torch.device = "cpu", progress: Callable[[dict], None] | None = None,
                   log_every: int = 50, threads: int | None = None) -> Word2VecResult:
    """Skip-gram with negative sampling, trained as word2vec.c does, in batches of `batch_size` pairs.

    `progress`, if given, is called with a train record every `log_every` batches (a `LiveLossPlot` fits).
    `threads`: torch CPU threads while training (None, the default: leave as is). On a quiet 2-core
    machine an epoch over 20,000 of Shakespeare's lines took 2.1 s on two threads and 3.4 s on one;
    on a busy one, two threads waiting on each other were measured 10x slower than one: pass 1 there.
    """
    with cpu_threads(threads if torch.device(device).type == "cpu" else None):
        return _train_word2vec(sentences, vocab, config, epochs, lr, batch_size, sample, seed, device,
                               progress, log_every)


def _train_word2vec(sentences, vocab, config, epochs, lr, batch_size, sample, seed, device, progress,
                    log_every) -> Word2VecResult:
    if len(vocab) != config.vocab_size:
        raise ValueError(f"config.vocab_size={config.vocab_size} but the vocabulary has {len(vocab)} words")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}")
    device = torch.device(device)
    ids_np, owner_np = encode(sentences, vocab)
    if ids_np.size < 2:
        raise ValueError("fewer than two in-vocabulary words: nothing to train on; use more text or a "
                         "lower min_count")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SkipGram(config).to(device)
    keep = torch.as_tensor(keep_probabilities(vocab.counts, sample), dtype=torch.float32)
    noise = noise_distribution(np.asarray(vocab.counts))
    table = torch.repeat_interleave(torch.arange(len(vocab)), (noise * 1e6).round().long().clamp(min=1))
    ids, owner = torch.from_numpy(ids_np), torch.from_numpy(owner_np)
    words = int(ids.numel())
    # the first epoch's pair count sizes the learning-rate schedule (later epochs differ by a few %)
    records, seen_pairs, step, total_pairs = [], 0, 0, None
    start = time.perf_counter()
    for epoch in range(epochs):
        kept = torch.rand(words, generator=generator) < keep[ids]
        center, context = skipgram_pairs(ids[kept], config.window, generator, owner=owner[kept])
        order = torch.randperm(center.numel(), generator=generator)
        center, context = center[order].to(device), context[order].to(device)
        total_pairs = total_pairs or center.numel() * epochs
        negatives = table[torch.randint(len(table), (center.numel(), config.negatives), generator=generator)]
        negatives = negatives.to(device)
        for first in range(0, center.numel(), batch_size):
            rate = lr * max(1e-4, 1.0 - seen_pairs / total_pairs)  # linear decay, as word2vec.c
            batch = slice(first, first + batch_size)
            step += 1
            last = epoch == epochs - 1 and first + batch_size >= center.numel()
            log = step % log_every == 0 or last
            loss = sgns_step(model, center[batch], context[batch], negatives[batch], rate, with_loss=log)
            seen_pairs += center[batch].numel()
            if log:
                record = {"kind": "train", "step": step, "tokens": seen_pairs, "epoch": epoch,
                          "time": time.perf_counter() - start, "train_loss": loss, "lr": rate}
                records.append(record)
                if progress is not None:
                    progress(record)
    seconds = time.perf_counter() - start
    return Word2VecResult(model.vectors(), model.context_vectors.weight.detach().cpu().numpy(), vocab, words * epochs / seconds, seconds, seen_pairs, records)


def train_gensim(sentences: Sentences, config: Word2VecConfig, epochs: int = 5, min_count: int = 5,
                 lr: float = 0.025, sample: float = 1e-3, seed: int = 0, workers: int = 2
                 ) -> tuple[np.ndarray, Vocab, float]:
    """gensim's skip-gram on the same sentences and settings: (vectors, vocab, words/s).

    With workers > 1 gensim's result depends on thread timing, so it is not reproducible run to run.
    """
    from gensim.models import Word2Vec

    start = time.perf_counter()
    model = Word2Vec(sentences, vector_size=config.n_embd, window=config.window, negative=config.negatives,
                     min_count=min_count, sg=1, hs=0, epochs=epochs, alpha=lr, sample=sample, seed=seed,
                     workers=workers)
    seconds = time.perf_counter() - start
    words = model.wv.index_to_key
    vocab = Vocab(tuple(words), tuple(int(model.wv.get_vecattr(w, "count")) for w in words))
    return model.wv.vectors.copy(), vocab, model.corpus_total_words * epochs / seconds


# ----------------------------------------------------------------------------- evaluation

def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def similarity_spearman(vectors: np.ndarray, vocab: Vocab, pairs: Iterable[tuple[str, str, float]]
                        ) -> tuple[float, float]:
    """(Spearman rho between cosine similarity and human scores on covered pairs, fraction covered)."""
    from scipy.stats import spearmanr

    pairs = list(pairs)
    if not pairs:
        raise ValueError("no word pairs given")
    covered = [(vocab.index[a], vocab.index[b], s) for a, b, s in pairs if a in vocab and b in vocab]
    if len(covered) < 3:
        return float("nan"), len(covered) / len(pairs)
    unit = _unit(vectors)
    first, second, human = (np.array(column) for column in zip(*covered))
    cosine = (unit[first] * unit[second]).sum(1)
    return float(spearmanr(human, cosine).statistic), len(covered) / len(pairs)


def analogy_accuracy(vectors: np.ndarray, vocab: Vocab, questions: Iterable[tuple[str, str, str, str]]
                     ) -> tuple[float, int]:
    """3CosAdd: for a : b :: c : ?, the word nearest b - a + c (unit vectors), a, b and c excluded.

    Returns (accuracy on the questions whose four words are all in the vocabulary, how many those are).
    """
    covered = [[vocab.index[w.lower()] for w in q] for q in questions if all(w.lower() in vocab for w in q)]
    if not covered:
        return float("nan"), 0
    unit = torch.from_numpy(_unit(vectors))
    q = torch.tensor(covered)  # (Q, 4)
    correct = 0
    for rows in q.split(1024):
        target = unit[rows[:, 1]] - unit[rows[:, 0]] + unit[rows[:, 2]]  # (q, D)
        scores = target @ unit.T  # (q, V)
        scores.scatter_(1, rows[:, :3], float("-inf"))
        correct += int((scores.argmax(1) == rows[:, 3]).sum())
    return correct / len(covered), len(covered)


def nearest(vectors: np.ndarray, vocab: Vocab, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The k words with the highest cosine similarity to `word` (itself excluded)."""
    if word not in vocab:
        raise KeyError(f"{word!r} is not in the vocabulary ({len(vocab)} words, min_count applied)")
    unit = _unit(vectors)
    scores = unit @ unit[vocab.index[word]]
    scores[vocab.index[word]] = -np.inf
    best = np.argsort(-scores)[:k]
    return [(vocab.words[i], float(scores[i])) for i in best]


# ----------------------------------------------------------------------------- saving

def default_folder(name: str = "word2vec-shakespeare") -> Path:
    """Where chapter 4 saves its vectors and chapter 5 looks for them: `runs_dir()/<name>`."""
    return runs_dir() / name


def save_vectors(folder: str | os.PathLike, vectors: np.ndarray, vocab: Vocab, meta: dict | None = None) -> Path:
    """`vectors.safetensors` and `vocab.json` (words, counts, meta) in `folder`, each written atomically."""
    from safetensors.torch import save

    folder = Path(folder)
    if vectors.shape[0] != len(vocab):
        raise ValueError(f"{vectors.shape[0]} vectors for {len(vocab)} words")
    tensors = {"vectors": torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))}
    atomic_write(folder / "vectors.safetensors", save(tensors))
    write_json(folder / "vocab.json", {"words": list(vocab.words), "counts": list(vocab.counts),
                                       "meta": meta or {}})
    return folder


def embedding_matrix(words: Sequence[str], vectors: np.ndarray, vocab: Vocab, seed: int = 0
                     ) -> tuple[np.ndarray, int]:
    """Rows for a model's vocabulary `words` taken from word vectors by word, and how many were found.

    A model's token ids and the vectors' word ids differ, so rows are matched by the word itself.
    A word the vectors lack (punctuation, `<pad>`, `<unk>`, a rare word) gets a random row of the
    vectors' own scale, so it starts neither at zero nor far out of range.
    """
    rng = np.random.default_rng(seed)
    rows = rng.normal(0.0, float(vectors.std()), size=(len(words), vectors.shape[1])).astype(np.float32)
    found = 0
    for i, word in enumerate(words):
        if word in vocab.index:
            rows[i] = vectors[vocab.index[word]]
            found += 1
    return rows, found


def load_vectors(folder: str | os.PathLike) -> tuple[np.ndarray, Vocab, dict]:
    """(vectors, vocab, meta) saved by `save_vectors`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "vectors.safetensors").is_file() or not (folder / "vocab.json").is_file():
        raise FileNotFoundError(f"no saved word vectors in {folder}: run chapter 4 (04_math.ipynb) first, "
                                "or save some with save_vectors")
    vectors = load_file(folder / "vectors.safetensors")["vectors"].numpy()
    info = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    vocab = Vocab(tuple(info["words"]), tuple(info["counts"]))
    if vectors.shape[0] != len(vocab):
        raise ValueError(f"{folder}: {vectors.shape[0]} vectors but {len(vocab)} words; the files do not match")
    return vectors, vocab, info.get("meta", {})
