"""An LSTM language model, optionally starting from pretrained word vectors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from .base import WINDOW_AND_VOCAB, LanguageModel, check_dropout, check_sizes


@dataclass(frozen=True)
class LSTMConfig:
    vocab_size: int = 65  # tokens in the vocabulary
    block_size: int = 64  # training window length (the LSTM itself has no length limit)
    n_embd: int = 64  # embedding width
    n_hidden: int = 256  # LSTM state width
    n_layer: int = 1  # stacked LSTM layers
    dropout: float = 0.0  # dropout between layers and before the output
    freeze_embedding: bool = False  # keep the (pretrained) embedding fixed during training

    def __post_init__(self):
        check_sizes(self, **WINDOW_AND_VOCAB,
                    n_embd="each token's embedding needs at least one number",
                    n_hidden="the LSTM's state needs at least one number",
                    n_layer="an LSTM with no layer has no state to carry; use 1 or more")
        check_dropout(self)


class LSTM(LanguageModel):
    supports_cache = True

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.token_embedding.weight.requires_grad_(not config.freeze_embedding)
        self.lstm = nn.LSTM(config.n_embd, config.n_hidden, num_layers=config.n_layer, batch_first=True,
                            dropout=config.dropout if config.n_layer > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.n_hidden, config.vocab_size)

    def load_embedding(self, vectors: np.ndarray | torch.Tensor) -> None:
        """Copy word vectors (vocab_size, n_embd) into the embedding, e.g. from word2vec."""
        vectors = torch.as_tensor(np.asarray(vectors), dtype=self.token_embedding.weight.dtype)
        expected = tuple(self.token_embedding.weight.shape)
        if tuple(vectors.shape) != expected:
            raise ValueError(f"word vectors have shape {tuple(vectors.shape)}, the embedding needs {expected} "
                             "(one row per token of this model's vocabulary, n_embd columns)")
        with torch.no_grad():
            self.token_embedding.weight.copy_(vectors)

    def forward(self, idx, targets=None):
        logits, _ = self.forward_cached(idx, None)
        return logits, self.loss_from_logits(logits, targets)

    def forward_cached(self, idx, cache):
        self.check_input(idx)
        x = self.token_embedding(idx)  # (B, T, n_embd)
        h, state = self.lstm(x, cache)  # (B, T, n_hidden); state = (h_n, c_n)
        return self.output(self.dropout(h)), state

    def flops_per_token(self) -> float:
        c = self.config
        layer_in = [c.n_embd] + [c.n_hidden] * (c.n_layer - 1)
        lstm_weights = sum(4 * c.n_hidden * (i + c.n_hidden) for i in layer_in)
        return 6.0 * (lstm_weights + c.n_hidden * c.vocab_size)
