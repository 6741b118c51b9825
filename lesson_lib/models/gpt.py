"""A GPT: pre-norm decoder-only transformer with causal self-attention and tied embeddings.

The architecture follows GPT-2 (Radford et al., 2019) as minimal implementations such as
nanoGPT write it: learned position embeddings, LayerNorm before each sub-layer, GELU MLP of
width 4C, the output projection sharing its weight with the token embedding.

Two switches for the chapter on the challenges of training, both off by default:
- `qk_norm` normalises each head's queries and keys before their dot product (QK-norm: Dehghani
  et al. 2023, "Scaling Vision Transformers to 22 Billion Parameters"; Wortsman et al. 2023,
  "Small-scale proxies for large-scale Transformer training instabilities"). Without it the
  attention logits can grow until the softmax saturates and the loss diverges;
  `attention_logit_max` lets a lesson watch them.
- `activation_checkpointing` keeps only the input of the first n blocks during the forward pass
  and recomputes the rest of their activations during the backward pass: less memory for about
  one extra forward pass of those blocks. The gradients are the same.

Speedrun switches (bench/speedrun.py measures each; README, "Speedrun ladder"), all off by default:
- `rotary` replaces the learned position table by rotary position embeddings (RoPE: Su et al. 2021,
  "RoFormer"): each head's queries and keys are rotated by an angle proportional to their position,
  so a query-key dot product depends on how far apart they are, not where they are.
- `mlp` chooses the MLP's activation: "gelu" (GPT-2), "relu2" (ReLU squared: So et al. 2021,
  "Primer") or "swiglu" (a gated unit, Shazeer 2020, "GLU Variants Improve Transformer"; its hidden
  width is 2/3 of 4C, rounded up to a multiple of 8, so that it has about the same weights).
- `tie_embeddings=False` gives the output layer its own matrix instead of the token embedding's;
  `zero_init_head` then starts it at zero, so the first predictions are uniform (as the public
  modded-nanogpt speedrun does).

And one input, also off by default: `forward(idx, attention_mask=...)` for a batch of sequences of
different lengths padded to one length (chapter 9). `padding_positions_and_mask` turns the (B, T)
mask of real tokens into position ids that skip the padding and an attention mask that hides it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .base import WINDOW_AND_VOCAB, LanguageModel, check_dropout, check_sizes, chunked_cross_entropy


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 65  # tokens in the vocabulary
    block_size: int = 64  # context length: the most tokens the model attends over
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # residual stream width C
    dropout: float = 0.0  # dropout on attention weights and residual branches
    bias: bool = False  # biases in Linear and LayerNorm layers
    qk_norm: bool = False  # LayerNorm each head's queries and keys before attention (QK-norm)
    activation_checkpointing: int = 0  # first blocks recomputed in backward instead of stored (0: none)
    rotary: bool = False  # rotary position embeddings (RoPE) instead of a learned position table
    mlp: str = "gelu"  # the MLP's activation: gelu | relu2 (ReLU squared) | swiglu (gated, SiLU)
    tie_embeddings: bool = True  # the output layer shares the token embedding's matrix
    zero_init_head: bool = False  # an untied output layer starts at zero (uniform first predictions)
    chunked_loss: bool = False  # cross-entropy a block of rows at a time (faster on a CPU when V is large)

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
        for name in ("qk_norm", "rotary", "tie_embeddings", "zero_init_head", "chunked_loss"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.mlp not in MLP_KINDS:
            raise ValueError(f"GPTConfig.mlp must be one of {', '.join(MLP_KINDS)}; got {self.mlp!r}")
        if self.rotary and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"rotary embeddings rotate pairs of channels: each head's width, n_embd / n_head = "
                             f"{self.n_embd // self.n_head}, must be even; change n_embd or n_head")
        if self.zero_init_head and self.tie_embeddings:
            raise ValueError("zero_init_head starts the output layer at zero, which a tied output layer would do to "
                             "the token embedding as well: set tie_embeddings=False with it")
        n = self.activation_checkpointing
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"GPTConfig.activation_checkpointing must be a whole number of blocks, got {n!r} "
                            f"({type(n).__name__})")
        if not 0 <= n <= self.n_layer:
            raise ValueError(f"GPTConfig.activation_checkpointing must be between 0 (no block) and n_layer "
                             f"({self.n_layer}, every block), got {n}: it counts the first blocks whose "
                             "activations are recomputed in the backward pass")


MLP_KINDS = ("gelu", "relu2", "swiglu")


def swiglu_width(n_embd: int) -> int:
    """SwiGLU's hidden width: 2/3 of 4C, rounded up to a multiple of 8. It has three matrices to the
    other MLPs' two, so this keeps its weights (3 x C x hidden) about those of a 4C MLP (8C^2)."""
    return 8 * -(-n_embd // 3)  # 8C/3 rounded up to a multiple of 8


def rotary_angles(positions: torch.Tensor, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotation angles, (*positions.shape, head_dim / 2): channel pair i of a token at
    position p turns by p / base^(2i / head_dim), fast for the first pairs, slowly for the last."""
    frequencies = base ** -(torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[..., None] * frequencies  # (..., D/2)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (first-half, second-half) channel pair of x (B, T, H, D) by its angle. cos and sin are
    (T, D/2), or (B, T, D/2) when each sequence has its own positions."""
    cos, sin = cos.to(x.dtype).unsqueeze(-2), sin.to(x.dtype).unsqueeze(-2)  # the same for every head
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


# KV cache: one (keys, values) pair per block, each (B, n_head, T_seen, head_dim)
KVCache = list[tuple[torch.Tensor, torch.Tensor]]


def padding_positions_and_mask(attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a padded batch: each token's position (B, T) and who may attend to whom (B, 1, T, T).

    `attention_mask` is (B, T), True (or 1) for a real token and False (0) for padding, on either
    side. Positions count real tokens only, so a left-padded sequence gets the positions it has
    unpadded. A query attends to the real keys at or before it, and to itself: a padding token then
    sees only itself (a row with nothing to attend to would give NaN), and no real token sees padding.
    """
    real = attention_mask.bool()
    T = real.size(1)
    positions = (real.long().cumsum(dim=1) - 1).clamp(min=0)  # (B, T): 0 at the first real token
    causal = torch.ones(T, T, dtype=torch.bool, device=real.device).tril()  # query t sees keys 0..t
    itself = torch.eye(T, dtype=torch.bool, device=real.device)
    mask = causal & (real[:, None, :] | itself)  # (B, T, T): query row, key column
    return positions, mask[:, None]  # (B, 1, T, T): the same for every head


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        if config.qk_norm:
            # LayerNorm, as both papers use and as the rest of this model does (RMSNorm would also do:
            # what matters is that |q| and |k|, and so the logits, can no longer grow without bound);
            # over head_dim, its gain shared by the heads
            head_dim = config.n_embd // config.n_head
            self.q_norm = nn.LayerNorm(head_dim, bias=config.bias)
            self.k_norm = nn.LayerNorm(head_dim, bias=config.bias)
        else:
            self.q_norm = self.k_norm = None

    def queries_keys_values(self, x, rotary: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Per-head queries, keys (normalised under qk_norm, then rotated with `rotary`'s cos and sin) and
        values, each (B, H, T, D)."""
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head) for t in self.qkv(x).split(C, dim=2))  # (B, T, H, D)
        # before the transpose, so that the attention output keeps the (B, T, H, D) layout and
        # the merge of the heads below needs no copy
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            q, k = rotate(q, *rotary), rotate(k, *rotary)
        return tuple(t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)

    def forward(self, x, past: tuple[torch.Tensor, torch.Tensor] | None = None, mask: torch.Tensor | None = None,
                rotary: tuple[torch.Tensor, torch.Tensor] | None = None):
        B, T, C = x.shape
        q, k, v = self.queries_keys_values(x, rotary)  # the cache holds keys after normalisation and rotation
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, T_past + T, D)
            v = torch.cat([past[1], v], dim=2)
        T_past = k.size(2) - T
        if mask is not None:  # a padded batch, no cache: the mask (B, 1, T, T) holds the causal rule too
            causal = False
        elif T_past == 0:
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
        self.kind = config.mlp
        hidden = swiglu_width(config.n_embd) if self.kind == "swiglu" else 4 * config.n_embd
        # SwiGLU's two input matrices (gate, value) as one Linear of twice the width: one matmul
        self.up = nn.Linear(config.n_embd, 2 * hidden if self.kind == "swiglu" else hidden, bias=config.bias)
        self.down = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.up(x)
        if self.kind == "gelu":
            h = F.gelu(h)
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:  # swiglu
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value
        return self.dropout(self.down(h))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.mlp_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = FeedForward(config)

    def forward(self, x, past=None, mask=None, rotary=None):
        attended, present = self.attn(self.attn_norm(x), past, mask, rotary)
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
        # rotary embeddings turn queries and keys inside attention instead: no table to learn
        self.position_embedding = None if config.rotary else nn.Embedding(config.block_size, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.final_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight  # tied: one matrix reads and writes tokens
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith(("attn.proj.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if config.zero_init_head:
            nn.init.zeros_(self.lm_head.weight)

    def embed(self, idx: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Token embeddings, plus the learned position embeddings unless the model is rotary: (B, T, C)."""
        x = self.token_embedding(idx)
        if self.position_embedding is not None:
            x = x + self.position_embedding(positions)
        return self.dropout(x)

    def rotary_angles(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rotary embeddings' (cos, sin) for these positions; None when the model is not rotary."""
        if not self.config.rotary:
            return None
        return rotary_angles(positions, self.config.n_embd // self.config.n_head)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None, attention_mask=None):
        """`attention_mask` (B, T): True for real tokens, False for padding (None: no padding). Give
        padded targets the value -1: the loss ignores them."""
        logits, _ = self.forward_cached(idx, None, attention_mask)
        return logits, self.loss_from_logits(logits, targets)

    def loss_from_logits(self, logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
        if targets is None or not self.config.chunked_loss:
            return super().loss_from_logits(logits, targets)
        return chunked_cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))

    def forward_cached(self, idx, cache: KVCache | None, attention_mask: torch.Tensor | None = None):
        self.check_input(idx)
        B, T = idx.shape
        start = 0 if not cache else cache[0][0].size(2)
        if start + T > self.config.block_size:
            raise ValueError(f"{start + T} tokens exceed the model's context of {self.config.block_size}; "
                             "crop the input (the sampler does this for you)")
        mask = None
        if attention_mask is None:
            positions = torch.arange(start, start + T, device=idx.device)
        elif cache:
            raise ValueError("an attention_mask works on a whole padded batch, not with a KV cache")
        elif attention_mask.shape != idx.shape:
            raise ValueError(f"attention_mask must have the shape of idx, {tuple(idx.shape)}; "
                             f"got {tuple(attention_mask.shape)}")
        else:
            positions, mask = padding_positions_and_mask(attention_mask)
        x = self.embed(idx, positions)  # (B, T, C)
        rotary = self.rotary_angles(positions)
        present: KVCache = []
        # recomputing only pays when a backward pass will follow: not in evaluation or generation
        recompute = self.config.activation_checkpointing if self.training and torch.is_grad_enabled() else 0
        for i, block in enumerate(self.blocks):
            past = cache[i] if cache else None
            if i < recompute:  # keeps only x, and the RNG state, so that dropout draws the same masks again
                x, kv = checkpoint(block, x, past, mask, rotary, use_reentrant=False)
            else:
                x, kv = block(x, past, mask, rotary)
            present.append(kv)
        logits = self.lm_head(self.final_norm(x))  # (B, T, V)
        return logits, present

    def forward_static(self, idx: torch.Tensor, position: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One new token per sequence, idx (B, 1), at `position` (a one-element long tensor), with a
        preallocated cache: per block a (keys, values) pair of shape (B, H, block_size, D), written in
        place at `position`, the keys after it hidden by a mask. Every call has the same shapes and
        allocates the same tensors, which is what a CUDA graph needs (`sampling`'s cuda_graph option);
        `forward_cached` instead grows its cache by one token per call. Returns logits (B, 1, V)."""
        x = self.embed(idx, position)  # (B, 1, C)
        rotary = self.rotary_angles(position)
        visible = (torch.arange(self.config.block_size, device=idx.device) <= position)[None]  # (1, block): keys so far
        for block, (keys, values) in zip(self.blocks, cache):
            attn = block.attn
            q, k, v = attn.queries_keys_values(block.attn_norm(x), rotary)  # (B, H, 1, D)
            keys.index_copy_(2, position, k)
            values.index_copy_(2, position, v)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=visible)  # (B, H, 1, D)
            x = x + attn.proj(y.transpose(1, 2).reshape(x.shape))
            x = x + block.mlp(block.mlp_norm(x))
        return self.lm_head(self.final_norm(x))

    @torch.no_grad()
    def attention_logit_max(self, idx) -> list[float]:
        """Per block, the largest |q . k| / sqrt(head_dim) any query gives a key it attends to, over `idx`.

        The attention logits are computed here explicitly (the forward pass's fused kernel never
        shows them), in evaluation mode so that no dropout changes the reading. Their growth
        during training is the instability QK-norm prevents (Dehghani et al. 2023).
        """
        self.check_input(idx)
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"{T} tokens exceed the model's context of {self.config.block_size}")
        was_training = self.training
        self.eval()
        try:
            positions = torch.arange(T, device=idx.device)
            x, rotary = self.embed(idx, positions), self.rotary_angles(positions)  # (B, T, C)
            causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()  # query t sees keys 0..t
            largest = []
            for block in self.blocks:
                q, k, _ = block.attn.queries_keys_values(block.attn_norm(x), rotary)  # (B, H, T, D)
                logits = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, T)
                largest.append(logits.abs().masked_fill(~causal, 0).amax().item())
                x, _ = block(x, rotary=rotary)
        finally:
            self.train(was_training)
        return largest

    def flops_per_token(self) -> float:
        # 6 FLOPs per matmul weight (2 forward, 4 backward), plus attention scores and mixing:
        # 12 * n_layer * n_embd * block_size (PaLM paper, appendix B; also nanoGPT's estimate_mfu).
        # Model FLOPs: the forward pass activation checkpointing repeats is not counted, as MFU defines it
        c = self.config
        n = self.num_params(exclude_position_embeddings=True)
        return 6.0 * n + 12.0 * c.n_layer * c.n_embd * c.block_size
