"""Skip-gram word2vec with negative sampling (Mikolov et al., 2013).

Each (center, context) pair is scored on its own with a sigmoid of a dot product: a binary
"is this a real context word?" classifier, not a probability distribution over the vocabulary.
Negatives are drawn from the unigram distribution raised to the 3/4 power.

Mikolov, Sutskever, Chen, Corrado, Dean, "Distributed Representations of Words and Phrases
and their Compositionality", NeurIPS 2013.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Word2VecConfig:
    vocab_size: int = 10000  # words in the vocabulary
    n_embd: int = 100  # vector width
    window: int = 5  # context words on each side of the center
    negatives: int = 5  # noise words per real pair


class SkipGram(nn.Module):
    """`forward(center, context, negatives) -> loss`: mean SGNS loss of a batch of pairs."""

    def __init__(self, config: Word2VecConfig):
        super().__init__()
        self.config = config
        self.center_vectors = nn.Embedding(config.vocab_size, config.n_embd)  # the vectors we keep
        self.context_vectors = nn.Embedding(config.vocab_size, config.n_embd)
        bound = 0.5 / config.n_embd  # word2vec.c's initialisation: small uniform, context zero
        nn.init.uniform_(self.center_vectors.weight, -bound, bound)
        nn.init.zeros_(self.context_vectors.weight)

    def forward(self, center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        c = self.center_vectors(center)  # (B, D)
        pos = self.context_vectors(context)  # (B, D)
        neg = self.context_vectors(negatives)  # (B, K, D)
        pos_score = (c * pos).sum(-1)  # (B,)
        neg_score = torch.bmm(neg, c.unsqueeze(2)).squeeze(2)  # (B, K)
        # -log sigmoid(s) for real pairs, -log sigmoid(-s) for noise pairs
        loss = F.softplus(-pos_score) + F.softplus(neg_score).sum(-1)
        return loss.mean()

    def vectors(self) -> np.ndarray:
        return self.center_vectors.weight.detach().cpu().numpy()


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> torch.Tensor:
    """Unigram counts raised to `power`, normalised: the distribution negatives are drawn from."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    return torch.as_tensor(weights / weights.sum(), dtype=torch.float32)


def skipgram_pairs(ids, window: int, generator: torch.Generator, owner: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """All (center, context) pairs of a token stream, each center with a random window 1..`window`
    (as word2vec.c does, so near words are paired more often than far ones).

    `owner`, one value per token (e.g. its sentence's number), keeps pairs from crossing between
    tokens with different owners.
    """
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64)) if not torch.is_tensor(ids) else ids
    n = ids.numel()
    spans = torch.randint(1, window + 1, (n,), generator=generator)
    centers, contexts = [], []
    for offset in range(1, min(window, n - 1) + 1):
        same = owner[: n - offset] == owner[offset:] if owner is not None else True
        keep = same & (spans[: n - offset] >= offset)  # pairs (i, i + offset) within i's window
        centers.append(ids[: n - offset][keep]); contexts.append(ids[offset:][keep])
        keep = same & (spans[offset:] >= offset)  # pairs (i, i - offset) within i's window
        centers.append(ids[offset:][keep]); contexts.append(ids[: n - offset][keep])
    if not centers:
        return ids[:0], ids[:0]
    return torch.cat(centers), torch.cat(contexts)
