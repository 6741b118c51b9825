"""Translation in miniature: numbers written in English words, to Chinese numerals or to digits.

    "four thousand and twelve"  ->  "四千零一十二"  (target="chinese")  or  "4012"  (target="digits")

A real translation task in structure (a source sentence, a target sentence in another vocabulary,
different lengths, re-ordered and merged pieces: "fifteen" is 十五, "and" becomes 零 or nothing)
that a CPU learns in a minute. The split is by number: the test numbers never appear in training,
so exact-match accuracy on them measures whether the model learned the rules, not a lookup table.

The model is the encoder-decoder of Sutskever, Vinyals and Le (2014, "Sequence to Sequence Learning
with Neural Networks") with the additive attention of Bahdanau, Cho and Bengio (2015, "Neural Machine
Translation by Jointly Learning to Align and Translate"): a bidirectional GRU reads the source; a
GRU decoder writes one target token at a time, and before each one it scores every source position
against its own state, softmaxes the scores into weights (the attention, which the notebook draws
as a heat map) and reads the weighted mean of the encoder's states. Transformers (Vaswani et al.,
2017, "Attention Is All You Need") keep the attention and drop the recurrence.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .models.base import check_sizes
from .training import TrainConfig, lr_at, make_optimizer

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ZH_DIGITS = "零一二三四五六七八九"
WORD_VALUES = {**{w: i for i, w in enumerate(_ONES)}, **{w: 10 * i for i, w in enumerate(_TENS) if i >= 2}}


def digit_value(character: str) -> int | None:
    """The digit a target character writes ("八" or "8" -> 8), None for units (千, 百, 十) and specials."""
    if character in _ZH_DIGITS:
        return _ZH_DIGITS.index(character)
    return int(character) if character.isdigit() else None
TARGETS = ("chinese", "digits")
MAX_NUMBER = 9999


def _check_number(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"numbers from 0 to {MAX_NUMBER} only, got {n!r}")


def number_to_words(n: int) -> str:
    """British English: 4012 -> "four thousand and twelve", 315 -> "three hundred and fifteen"."""
    _check_number(n)
    if n == 0:
        return "zero"
    parts = []
    thousands, rest = divmod(n, 1000)
    hundreds, rest = divmod(rest, 100)
    if thousands:
        parts += [_ONES[thousands], "thousand"]
    if hundreds:
        parts += [_ONES[hundreds], "hundred"]
    if rest:
        if parts:
            parts.append("and")
        if rest < 20:
            parts.append(_ONES[rest])
        else:
            tens, ones = divmod(rest, 10)
            parts += [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    return " ".join(parts)


def number_to_chinese(n: int) -> str:
    """Chinese numerals as read aloud: 4012 -> 四千零一十二, 15 -> 十五, 110 -> 一百一十.

    One 零 stands for any run of zeros between two non-zero digits; trailing zeros are silent; 10-19
    drop the leading 一. Two is 二 throughout (speech often says 两千 for 2000; 二千 is also written).
    """
    _check_number(n)
    if n == 0:
        return "零"
    text, zeros = "", False
    for digit, unit in zip(f"{n:04d}", ("千", "百", "十", "")):
        if digit == "0":
            zeros = bool(text)  # a zero after something written: 零 if a non-zero digit follows
            continue
        text += ("零" if zeros else "") + _ZH_DIGITS[int(digit)] + unit
        zeros = False
    return text[1:] if 10 <= n <= 19 else text


def translate_number(n: int, target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    return number_to_chinese(n) if target == "chinese" else str(n)


class Vocab:
    """Token <-> id, with PAD = 0, BOS = 1 (start of a target), EOS = 2 (its end)."""

    PAD, BOS, EOS = 0, 1, 2
    SPECIALS = ("<pad>", "<s>", "</s>")

    def __init__(self, tokens: Sequence[str]):
        self.tokens = list(self.SPECIALS) + sorted(set(tokens) - set(self.SPECIALS))
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        unknown = [t for t in tokens if t not in self.index]
        if unknown:
            raise ValueError(f"tokens not in the vocabulary: {unknown}")
        return [self.index[t] for t in tokens]

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Tokens up to the first EOS, specials dropped."""
        out = []
        for i in ids:
            if i == self.EOS:
                break
            if i >= len(self.SPECIALS):
                out.append(self.tokens[i])
        return out


@dataclass(frozen=True)
class NumberTask:
    """All numbers 0..MAX_NUMBER as (English words, target) pairs, split by number into train and test."""

    target: str
    numbers: np.ndarray  # (N,) every number, in order
    train_numbers: np.ndarray  # the numbers trained on
    test_numbers: np.ndarray  # held out: never seen in training
    source_vocab: Vocab
    target_vocab: Vocab

    @classmethod
    def build(cls, target: str = "chinese", test_fraction: float = 0.2, seed: int = 0) -> NumberTask:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        numbers = np.arange(MAX_NUMBER + 1)
        order = np.random.default_rng(seed).permutation(numbers)
        n_test = int(round(test_fraction * len(numbers)))
        words = {w for n in numbers for w in number_to_words(int(n)).split()}
        chars = {c for n in numbers for c in translate_number(int(n), target)}
        return cls(target, numbers, np.sort(order[n_test:]), np.sort(order[:n_test]), Vocab(words), Vocab(chars))

    def source(self, n: int) -> list[str]:
        return number_to_words(int(n)).split()

    def reference(self, n: int) -> list[str]:
        return list(translate_number(int(n), self.target))

    def batch(self, numbers: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(source ids (B, S), source lengths (B,), target ids (B, 1 + T + 1) as <s> ... </s>), PAD-filled."""
        sources = [self.source_vocab.encode(self.source(n)) for n in numbers]
        targets = [[Vocab.BOS] + self.target_vocab.encode(self.reference(n)) + [Vocab.EOS] for n in numbers]
        return _pad(sources), torch.tensor([len(s) for s in sources]), _pad(targets)


def _pad(rows: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), Vocab.PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row)
    return out


# ----------------------------------------------------------------------------- the model

@dataclass(frozen=True)
class Seq2SeqConfig:
    source_vocab: int  # source tokens, specials included
    target_vocab: int  # target tokens, specials included
    n_embd: int = 32  # token embedding width, source and target
    hidden: int = 64  # decoder state width; the encoder's two directions have hidden // 2 each

    def __post_init__(self):
        check_sizes(self, source_vocab="the source needs at least one token", target_vocab="so does the target",
                    n_embd="an embedding needs at least one number", hidden="the GRUs need a state")
        if self.hidden % 2:
            raise ValueError(f"Seq2SeqConfig.hidden must be even (two encoder directions), got {self.hidden}")


class Seq2Seq(nn.Module):
    """Bidirectional GRU encoder, GRU decoder with additive (Bahdanau) attention."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        H = config.hidden
        self.source_embedding = nn.Embedding(config.source_vocab, config.n_embd, padding_idx=Vocab.PAD)
        self.encoder = nn.GRU(config.n_embd, H // 2, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(H, H)  # last encoder states -> first decoder state
        self.target_embedding = nn.Embedding(config.target_vocab, config.n_embd, padding_idx=Vocab.PAD)
        self.attn_query = nn.Linear(H, H, bias=False)  # W s
        self.attn_key = nn.Linear(H, H, bias=False)  # U h
        self.attn_score = nn.Linear(H, 1, bias=False)  # v^T tanh(W s + U h)
        self.decoder = nn.GRUCell(config.n_embd + H, H)
        self.output = nn.Linear(H + H + config.n_embd, config.target_vocab)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor):
        """Encoder states (B, S, H), the first decoder state (B, H), and the source mask (B, S)."""
        packed = pack_padded_sequence(self.source_embedding(src), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, last = self.encoder(packed)  # last: (2, B, H/2), the forward and backward final states
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, H)
        first = torch.tanh(self.bridge(torch.cat([last[0], last[1]], dim=-1)))  # (B, H)
        return states, first, src != Vocab.PAD

    def attend(self, state: torch.Tensor, keys: torch.Tensor, states: torch.Tensor, mask: torch.Tensor):
        """Attention weights over the source (B, S) and the context vector (B, H) for decoder `state`."""
        scores = self.attn_score(torch.tanh(self.attn_query(state).unsqueeze(1) + keys)).squeeze(-1)  # (B, S)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        return weights, torch.bmm(weights.unsqueeze(1), states).squeeze(1)

    def step(self, token: torch.Tensor, state: torch.Tensor, keys, states, mask):
        """One decoder step: logits for the next token (B, V), the new state, the attention (B, S)."""
        embedded = self.target_embedding(token)  # (B, E)
        weights, context = self.attend(state, keys, states, mask)
        state = self.decoder(torch.cat([embedded, context], dim=-1), state)  # (B, H)
        logits = self.output(torch.cat([state, context, embedded], dim=-1))  # (B, V)
        return logits, state, weights

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor):
        """Teacher forcing: logits (B, T, V) for every target position given the true previous tokens,
        and the attention (B, T, S)."""
        states, state, mask = self.encode(src, lengths)
        keys = self.attn_key(states)  # (B, S, H): computed once, reused at every step
        all_logits, all_weights = [], []
        for t in range(tgt_in.size(1)):
            logits, state, weights = self.step(tgt_in[:, t], state, keys, states, mask)
            all_logits.append(logits)
            all_weights.append(weights)
        return torch.stack(all_logits, 1), torch.stack(all_weights, 1)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, lengths: torch.Tensor, max_len: int = 12):
        """The most likely token at every step, fed back in: ids (B, T) and attention (B, T, S)."""
        states, state, mask = self.encode(src, lengths)
        keys = self.attn_key(states)
        token = torch.full((src.size(0),), Vocab.BOS, dtype=torch.long, device=src.device)
        ids, all_weights = [], []
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            logits, state, weights = self.step(token, state, keys, states, mask)
            token = logits.argmax(-1)
            ids.append(token)
            all_weights.append(weights)
            done |= token == Vocab.EOS
            if done.all():
                break
        return torch.stack(ids, 1), torch.stack(all_weights, 1)


def train_seq2seq(model: Seq2Seq, task: NumberTask, config: TrainConfig,
                  callback: Callable[[dict], None] | None = None) -> list[dict]:
    """Teacher-forced cross-entropy on random batches of training numbers, AdamW with the trainer's
    schedule; one record {kind, step, train_loss, lr} per step (`plots.loss_curves` draws them)."""
    device = next(model.parameters()).device
    rng = np.random.default_rng(config.seed)
    optimizer = make_optimizer(model, config, device)
    model.train()
    records = []
    for step in range(config.max_steps):
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        src, lengths, tgt = (t.to(device) for t in task.batch(rng.choice(task.train_numbers, config.batch_size)))
        logits, _ = model(src, lengths, tgt[:, :-1])  # predict each next token from the true ones before it
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt[:, 1:].reshape(-1), ignore_index=Vocab.PAD)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        records.append({"kind": "train", "step": step + 1, "train_loss": loss.item(), "lr": lr})
        if callback is not None:
            callback(records[-1])
    model.eval()
    return records


def translate(model: Seq2Seq, task: NumberTask, numbers: Sequence[int], batch_size: int = 500):
    """Greedy translations of `numbers` as strings, and each one's attention (T_out, S) as a numpy array."""
    device = next(model.parameters()).device
    model.eval()
    texts, attention = [], []
    for i in range(0, len(numbers), batch_size):
        chunk = numbers[i:i + batch_size]
        src, lengths, _ = task.batch(chunk)
        ids, weights = model.greedy(src.to(device), lengths.to(device))
        for row, w, n_src in zip(ids.tolist(), weights.cpu().numpy(), lengths.tolist()):
            tokens = task.target_vocab.decode(row)
            texts.append("".join(tokens))
            attention.append(w[:len(tokens) + 1, :n_src])  # the written tokens and the </s>
    return texts, attention


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference, whole string."""
    if len(predictions) != len(references) or not references:
        raise ValueError(f"need as many predictions as references, and some: {len(predictions)}, {len(references)}")
    return sum(p == r for p, r in zip(predictions, references)) / len(references)
