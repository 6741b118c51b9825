"""Chapter 3's exercises: a character tokenizer, cross-entropy by hand, the embedding's gradient."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .core import Wrong, describe, expect_close, expect_shape, exercise


@exercise("ch03.char-encode", "a character tokenizer", level=1)
def _char_encode(answer, seed):
    rng = np.random.default_rng(seed)
    text = "".join(rng.choice(list("The quick brown fox, JUMPS!\n"), size=60))
    vocab = sorted(set(text))
    expected = [vocab.index(c) for c in text]
    got = answer(text)
    if not isinstance(got, (list, tuple)):
        raise Wrong(f"return a list of ids, one per character; got {describe(got)}")
    if len(got) != len(text):
        raise Wrong(f"return one id per character: {len(text)} ids, got {len(got)}")
    if list(got) != expected:
        first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        raise Wrong(f"character {first} ({text[first]!r}) got id {got[first]}: number the distinct characters in "
                    "sorted order (sorted(set(text))), from 0")


@exercise("ch03.cross-entropy", "cross-entropy of a batch, by hand", level=2)
def _cross_entropy(answer, seed):
    g = torch.Generator().manual_seed(seed)
    B, T, V = 3, 5, 11
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 4
    logits[0, 0, 3] = 1000.0  # a confident model: exp(1000) overflows
    targets = torch.randint(V, (B, T), generator=g)
    expected = F.cross_entropy(logits.view(-1, V), targets.view(-1))
    raw = answer(logits.clone(), targets.clone())
    got = expect_shape(raw, (), "the loss (one number for the whole batch)")
    if not torch.isfinite(got):
        raise Wrong("the loss is inf or NaN: exp of a large logit overflows; subtract each row's maximum before "
                    "exponentiating (log-sum-exp)")
    expect_close(raw, expected, "the loss", rtol=1e-9, atol=1e-9)


@exercise("ch03.embedding-gradient", "the gradient of an embedding table", level=3)
def _embedding_grad(answer, seed):
    g = torch.Generator().manual_seed(seed)
    V, C = 7, 4
    ids = torch.tensor([1, 4, 1, 6, 1, 0])  # id 1 three times
    upstream = torch.randn(len(ids), C, generator=g, dtype=torch.float64)
    table = torch.randn(V, C, dtype=torch.float64, requires_grad=True)
    (table[ids] * upstream).sum().backward()
    raw = answer(ids.clone(), upstream.clone(), V)
    got = expect_shape(raw, (V, C), "the table's gradient")
    if torch.allclose(got[1], upstream[4]) or torch.allclose(got[1], upstream[0]):
        raise Wrong("row 1 holds the gradient of one of its uses only: an id used several times adds up the "
                    "gradients of all its uses")
    expect_close(raw, table.grad, "the table's gradient")
