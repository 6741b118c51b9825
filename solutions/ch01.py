"""Chapter 1: reference solutions, and wrong answers the checks must catch."""
import math
from collections import Counter


def next_char_counts(text, char):
    following = Counter(b for a, b in zip(text, text[1:]) if a == char)
    total = sum(following.values())
    return {nxt: count / total for nxt, count in following.items()}


def bigram_loss(train, test):
    vocab = set(train) | set(test)
    pairs, firsts = Counter(zip(train, train[1:])), Counter(train[:-1])
    nll = [-math.log((pairs[(a, b)] + 1) / (firsts[a] + len(vocab))) for a, b in zip(test, test[1:])]
    return sum(nll) / len(nll)


def matmul_flops(m, k, n):
    return 2 * m * k * n


SOLUTIONS = {"ch01.next-char-counts": next_char_counts, "ch01.bigram-loss": bigram_loss,
             "ch01.matmul-flops": matmul_flops}


def _counts_only(text, char):
    return dict(Counter(b for a, b in zip(text, text[1:]) if a == char))


def _unsmoothed(train, test):
    pairs, firsts = Counter(zip(train, train[1:])), Counter(train[:-1])
    probs = [pairs[(a, b)] / firsts[a] if firsts[a] else 0.0 for a, b in zip(test, test[1:])]
    return sum(-math.log(p) if p > 0 else math.inf for p in probs) / len(probs)


def _bits(train, test):
    return bigram_loss(train, test) / math.log(2)


WRONG = [("ch01.next-char-counts", _counts_only, "sum to"),
         ("ch01.bigram-loss", _unsmoothed, "add-one smoothing"),
         ("ch01.bigram-loss", _bits, "bits per character"),
         ("ch01.matmul-flops", lambda m, k, n: m * k * n, "multiplications only")]
