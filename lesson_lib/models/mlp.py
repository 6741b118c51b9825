"""The MLP language model of Bengio et al. (2003): embed the last n tokens, concatenate, one hidden layer.

Bengio, Ducharme, Vincent, Jauvin, "A Neural Probabilistic Language Model", JMLR 3 (2003).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import WINDOW_AND_VOCAB, LanguageModel, check_dropout, check_sizes


@dataclass(frozen=True)
class MLPConfig:
    vocab_size: int = 65  # tokens in the vocabulary
    block_size: int = 64  # training window length
    context: int = 8  # n: how many previous tokens each prediction sees
    n_embd: int = 32  # embedding width per token
    n_hidden: int = 256  # hidden layer width
    dropout: float = 0.0  # dropout on the hidden layer

    def __post_init__(self):
        check_sizes(self, **WINDOW_AND_VOCAB,
                    context="each prediction must see at least the token before it",
                    n_embd="each token's embedding needs at least one number",
                    n_hidden="the hidden layer needs at least one unit")
        check_dropout(self)


class MLP(LanguageModel):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        self.receptive_field = config.context
        # one extra row: the "before the text" token that pads the first positions
        self.token_embedding = nn.Embedding(config.vocab_size + 1, config.n_embd)
        self.hidden = nn.Linear(config.context * config.n_embd, config.n_hidden)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.n_hidden, config.vocab_size)

    def forward(self, idx, targets=None):
        self.check_input(idx)
        n = self.config.context
        padded = F.pad(idx, (n - 1, 0), value=self.config.vocab_size)  # (B, T + n - 1)
        windows = padded.unfold(1, n, 1)  # (B, T, n): the n tokens ending at each position
        x = self.token_embedding(windows).flatten(2)  # (B, T, n * n_embd)
        h = self.dropout(torch.tanh(self.hidden(x)))  # (B, T, n_hidden)
        logits = self.output(h)  # (B, T, V)
        return logits, self.loss_from_logits(logits, targets)

    def flops_per_token(self) -> float:
        c = self.config
        matmul_weights = c.context * c.n_embd * c.n_hidden + c.n_hidden * c.vocab_size
        return 6.0 * matmul_weights
