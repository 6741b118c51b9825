"""Chapter 6: reference solutions, and wrong answers the checks must catch."""
import math

import torch


def top_k_probs(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return torch.softmax(logits.masked_fill(logits < kth, float("-inf")), dim=-1)


def top_p_probs(logits, p):
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    above = sorted_probs.cumsum(-1) - sorted_probs  # the mass ranked above each token
    sorted_probs = sorted_probs.masked_fill(above >= p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(-1, keepdim=True)


def distinct_n(tokens, n):
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams)


def causal_attention(q, k, v):
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, T)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


SOLUTIONS = {"ch06.top-k": top_k_probs, "ch06.top-p": top_p_probs, "ch06.distinct-n": distinct_n,
             "ch06.causal-attention": causal_attention}


def _top_p_stops_early(logits, p):
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    sorted_probs = sorted_probs.masked_fill(sorted_probs.cumsum(-1) > p, 0.0)  # drops the token that crosses p
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(-1, keepdim=True).clamp_min(1e-30)


def _no_mask(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1) @ v


def _unique_over_vocabulary(tokens, n):
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(tokens)


WRONG = [("ch06.top-k", lambda logits, k: torch.softmax(logits, -1), "plain softmax"),
         ("ch06.top-p", _top_p_stops_early, "too few tokens"),
         ("ch06.distinct-n", _unique_over_vocabulary, "differs from the expected value"),
         ("ch06.causal-attention", _no_mask, "later positions")]
