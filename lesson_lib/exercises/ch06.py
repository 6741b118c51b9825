"""Chapter 6's exercises: top-k and top-p filtering, distinct-n, and causal attention by hand."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .core import Wrong, as_number, as_tensor, expect_close, exercise


def _logits(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 30, generator=g, dtype=torch.float64) * 2


@exercise("ch06.top-k", "top-k: keep the k most likely tokens", level=1)
def _top_k(answer, seed):
    from ..sampling import next_token_probs

    logits = _logits(seed)
    for k in (1, 5):
        expected = next_token_probs(logits, top_k=k).double()
        got = answer(logits.clone(), k)
        got_t = as_tensor(got, f"the probabilities with k={k}")
        if got_t.shape == logits.shape and torch.allclose(got_t, torch.softmax(logits, -1)):
            raise Wrong("that is the plain softmax: set every logit outside the top k to -inf first")
        expect_close(got, expected, f"the probabilities with k={k}", atol=1e-6)


@exercise("ch06.top-p", "top-p (nucleus): the smallest set holding probability p", level=2)
def _top_p(answer, seed):
    from ..sampling import next_token_probs

    logits = _logits(seed)
    for p in (0.5, 0.9, 0.01):
        expected = next_token_probs(logits, top_p=p).double()
        got = answer(logits.clone(), p)
        got_t = as_tensor(got, f"the probabilities with p={p}")
        if got_t.shape == expected.shape and ((got_t > 0).sum(-1) < (expected > 0).sum(-1)).any():
            raise Wrong(f"with p={p} some rows keep too few tokens: keep a token while the probability ranked "
                        "above it is still below p (so the top token always stays)")
        expect_close(got, expected, f"the probabilities with p={p}", atol=1e-6)


@exercise("ch06.distinct-n", "distinct-n: how varied a text is", level=1)
def _distinct_n(answer, seed):
    from ..generation_quality import distinct_n

    rng = np.random.default_rng(seed)
    tokens = list(rng.choice(list("abcab"), size=50))
    for n in (1, 2, 3):
        expected = distinct_n(tokens, n)  # before the answer runs (it gets a copy of the tokens anyway)
        got = as_number(answer(tokens, n), f"distinct-{n}")
        expect_close(got, expected, f"distinct-{n}", atol=1e-12)


@exercise("ch06.causal-attention", "causal self-attention by hand", level=3)
def _causal_attention(answer, seed):
    g = torch.Generator().manual_seed(seed)
    B, H, T, D = 2, 3, 6, 4
    q, k, v = (torch.randn(B, H, T, D, generator=g, dtype=torch.float64) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    raw = answer(q.clone(), k.clone(), v.clone())
    got = as_tensor(raw, "the attention output")
    if got.shape == expected.shape and torch.allclose(got, F.scaled_dot_product_attention(q, k, v)):
        raise Wrong("each position attends to later positions too: mask the scores above the diagonal with -inf "
                    "before the softmax")
    unscaled = torch.softmax((q @ k.transpose(-2, -1)).masked_fill(
        torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")), -1) @ v
    if got.shape == expected.shape and torch.allclose(got, unscaled):
        raise Wrong("the scores are not scaled: divide q·k by sqrt(head_dim)")
    expect_close(raw, expected, "the attention output")
