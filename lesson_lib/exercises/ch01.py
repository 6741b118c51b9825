"""Chapter 1's exercises: predicting the next character by counting, and what a matmul costs."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .core import Wrong, as_number, describe, exercise


def _text(seed: int, length: int = 400) -> str:
    rng = np.random.default_rng(seed)
    alphabet = list("abcde ")  # few symbols, so every pair is seen several times
    return "".join(rng.choice(alphabet, size=length, p=[0.25, 0.2, 0.2, 0.1, 0.1, 0.15]))


@exercise("ch01.next-char-counts", "next-character probabilities by counting", level=1)
def _next_char_counts(answer, seed):
    text = _text(seed)
    for char in sorted(set(text[:-1]))[:3]:
        got = answer(text, char)
        if not isinstance(got, dict):
            raise Wrong(f"return a dict {{next character: probability}}, got {describe(got)}")
        got = {nxt: as_number(p, f"the probability of {nxt!r} after {char!r}") for nxt, p in got.items()}
        following = Counter(b for a, b in zip(text, text[1:]) if a == char)
        total = sum(following.values())
        if abs(sum(got.values()) - 1) > 1e-6:
            raise Wrong(f"the probabilities after {char!r} sum to {sum(got.values()):.4f}, not 1: divide each "
                        "count by the number of times the character is followed by anything")
        extra = set(got) - set(following)
        if extra:
            raise Wrong(f"after {char!r} your answer gives a probability to {sorted(extra)!r}, which never follows it")
        for nxt, count in following.items():
            if abs(got.get(nxt, 0.0) - count / total) > 1e-6:  # a float32 probability is right to 1e-7
                raise Wrong(f"P({nxt!r} after {char!r}) is {got.get(nxt, 0.0):.4f}; count how often {nxt!r} comes "
                            f"right after {char!r}, over how often {char!r} is followed by anything")


@exercise("ch01.bigram-loss", "the average loss of a counting model on held-out text", level=2)
def _bigram_loss(answer, seed):
    train, test = _text(seed, 600), _text(seed + 1, 200) + "f"  # 'f' never appears in training
    vocab = sorted(set(train) | set(test))
    counts = Counter(zip(train, train[1:]))
    firsts = Counter(train[:-1])
    expected = -sum(math.log((counts[(a, b)] + 1) / (firsts[a] + len(vocab))) for a, b in zip(test, test[1:]))
    expected /= len(test) - 1
    got = as_number(answer(train, test), "the loss (one number, nats per character)")
    if not math.isfinite(got):
        raise Wrong("the loss is infinite or NaN: a pair never seen in training gets probability 0 without "
                    "add-one smoothing")
    if abs(got - expected) > 1e-6:
        if abs(got - expected / math.log(2)) < 1e-6:
            raise Wrong("that is bits per character: use the natural logarithm (nats)")
        raise Wrong(f"got {got:.4f} nats/char; use (count(a, b) + 1) / (count(a) + V) with V = {len(vocab)}, "
                    "the distinct characters of both texts, and average -log P over the test text's pairs")


@exercise("ch01.matmul-flops", "the floating-point operations of a matrix product", level=1)
def _matmul_flops(answer, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        m, k, n = (int(x) for x in rng.integers(2, 500, size=3))
        got = as_number(answer(m, k, n), "the number of operations")
        if got == m * k * n:
            raise Wrong("that counts the multiplications only: each one comes with an addition")
        if got != 2 * m * k * n:
            raise Wrong(f"for ({m} x {k}) @ ({k} x {n}) you gave {got}: each of the m·n outputs is a dot "
                        "product of length k")


