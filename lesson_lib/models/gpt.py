"""A GPT: pre-norm decoder-only transformer with causal self-attention and tied embeddings.

The architecture follows GPT-2 (Radford et al., 2019) as minimal implementations such as
nanoGPT write it: learned position embeddings, LayerNorm before each sub-layer, GELU MLP of
width 4C, the output projection sharing its weight with the token embedding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import WINDOW_AND_VOCAB, LanguageModel, check_dropout, check_sizes


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 65  # tokens in the vocabulary
    block_size: int = 64  # context length: the most tokens the model attends over
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # residual stream width C
    dropout: float = 0.0  # dropout on attention weights and residual branches
    bias: bool = False  # biases in Linear and LayerNorm layers

    def __post_init__(self):
        check_sizes(self, **{**WINDOW_AND_VOCAB, "block_size": "the context must hold at least one token"},
                    n_layer="a GPT with no transformer block is only an embedding; use 1 or more",
                    n_head="each block needs at least one attention head",
                    n_embd="the residual stream needs at least one channel")
        if self.n_embd % self.n_head:
            below = self.n_embd // self.n_head * self.n_head  # the multiples of n_head either side
            near = " or ".join(str(m) for m in (below, below + self.n_head) if m > 0)
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                             f"each head gets n_embd / n_head channels. Use an n_embd of {near}, or a head "
                             f"count that divides {self.n_embd}")
        check_dropout(self)


# KV cache: one (keys, values) pair per block, each (B, n_head, T_seen, head_dim)
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, T_past + T, D)
            v = torch.cat([past[1], v], dim=2)
        T_past = k.size(2) - T
        if T_past == 0:
            mask, causal = None, True
        elif T == 1:
            mask, causal = None, False  # one new token may attend to everything before it
        else:  # several new tokens after a prefix: causal within the new ones
            mask = torch.ones(T, T_past + T, dtype=torch.bool, device=x.device).tril(diagonal=T_past)
            causal = False
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y)), (k, v)


class FeedForward(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.down = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config)

    def forward(self, x, past=None):
        attended, present = self.attn(self.attn_norm(x), past)
        x = x + attended
        x = x + self.mlp(self.mlp_norm(x))
        return x, present


class GPT(LanguageModel):
    supports_cache = True

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.context_limit = config.block_size
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.final_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # tied: one matrix reads and writes tokens
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        logits, _ = self.forward_cached(idx, None)
        return logits, self.loss_from_logits(logits, targets)

    def forward_cached(self, idx, cache: KVCache | None):
        self.check_input(idx)
        B, T = idx.shape
        start = 0 if not cache else cache[0][0].size(2)
        if start + T > self.config.block_size:
            raise ValueError(f"{start + T} tokens exceed the model's context of {self.config.block_size}; "
                             "crop the input (the sampler does this for you)")
        positions = torch.arange(start, start + T, device=idx.device)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))  # (B, T, C)
        present: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, cache[i] if cache else None)
            present.append(kv)
        logits = self.lm_head(self.final_norm(x))  # (B, T, V)
        return logits, present

    def flops_per_token(self) -> float:
        # 6 FLOPs per matmul weight (2 forward, 4 backward), plus attention scores and mixing:
        # 12 * n_layer * n_embd * block_size (PaLM paper, appendix B; also nanoGPT's estimate_mfu)
        c = self.config
        n = self.num_params(exclude_position_embeddings=True)
        return 6.0 * n + 12.0 * c.n_layer * c.n_embd * c.block_size
