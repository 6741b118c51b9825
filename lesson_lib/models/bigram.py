"""The bigram model: a table of next-token logits indexed by the current token."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .base import WINDOW_AND_VOCAB, LanguageModel, check_sizes


@dataclass(frozen=True)
class BigramConfig:
    vocab_size: int = 65  # tokens in the vocabulary
    block_size: int = 64  # training window length (the model itself only ever looks one token back)

    def __post_init__(self):
        check_sizes(self, **WINDOW_AND_VOCAB)


class Bigram(LanguageModel):
    receptive_field = 1

    def __init__(self, config: BigramConfig):
        super().__init__()
        self.config = config
        self.logits_table = nn.Embedding(config.vocab_size, config.vocab_size)  # row = current token
        nn.init.zeros_(self.logits_table.weight)  # start from the uniform distribution

    def forward(self, idx, targets=None):
        self.check_input(idx)
        logits = self.logits_table(idx)  # (B, T, V)
        return logits, self.loss_from_logits(logits, targets)

    def flops_per_token(self) -> float:
        # no matmul at all: a table lookup, then softmax and its gradient over V logits
        return 6.0 * self.config.vocab_size
