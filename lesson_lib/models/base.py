"""What every language model in the course shares.

A language model maps token ids `idx` (B, T) to next-token logits (B, T, V) and, given targets,
the mean cross-entropy. The trainer, the sampler, the notebooks and the dashboard rely only on
this interface, so a bigram table, an LSTM and a GPT are handled alike.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F


# why every family's vocabulary and training window need at least one token
WINDOW_AND_VOCAB = {"vocab_size": "a model needs at least one token to predict (the tokenizer sets it)",
                    "block_size": "a training window holds at least one token"}


def check_sizes(config: Any, **why: str) -> None:
    """Refuse a size field that is not a whole number of at least 1, naming it and saying why.

    Called from each config's `__post_init__`, so a bad shape fails where it is written, with its
    name, instead of as a ZeroDivisionError or an empty model deep inside torch.
    """
    for name, reason in why.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{type(config).__name__}.{name} must be a whole number, got {value!r} "
                            f"({type(value).__name__})")
        if value < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be at least 1, got {value}: {reason}")


def check_dropout(config: Any) -> None:
    """Dropout is the fraction of activations zeroed in training: in [0, 1), and 0 turns it off."""
    p = config.dropout
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{type(config).__name__}.dropout must be a number, got {p!r} ({type(p).__name__})")
    if not 0 <= p < 1:  # also refuses nan, for which every comparison is False
        raise ValueError(f"{type(config).__name__}.dropout must be in [0, 1), got {p}: it is the fraction "
                         "of activations zeroed in training (1 would zero them all); use 0 for none")


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy whose gradient is computed in the forward pass, a block of rows at a time.

    `F.cross_entropy(logits.float(), ...)` makes an fp32 copy of the (N, V) logits, saves fp32
    log-probabilities of the same size and reads both again in the backward pass: with a large
    vocabulary these passes over memory cost more than the output layer's matmul on a CPU. Here
    each block of rows is made fp32 while it is in cache, its loss and its gradient (softmax minus
    the one-hot target, over the count of targets) are taken at once, and only the gradient is
    kept, in the logits' own dtype (the bf16 the old path rounds to as well). Targets of -1 are
    ignored, as in `F.cross_entropy(ignore_index=-1)`.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, rows: int) -> torch.Tensor:
        keep = targets != -1
        count = keep.sum()
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        grad = torch.empty_like(logits)
        for start in range(0, logits.size(0), rows):
            block = logits[start:start + rows].to(torch.float32, copy=True)  # a copy: worked on in place below
            target, kept = targets[start:start + rows], keep[start:start + rows]
            index = target.clamp_min(0).unsqueeze(1)
            picked = block.gather(1, index).squeeze(1)  # the target's logit
            top = block.amax(dim=1, keepdim=True)
            e = block.sub_(top).exp_()  # exp(logit - max), in the block's own storage: one exp per logit
            total_exp = e.sum(dim=1, keepdim=True)
            total += ((top + total_exp.log()).squeeze(1) - picked).mul(kept).sum()  # log-sum-exp - target logit
            weight = (kept / count).unsqueeze(1)  # each kept row's share of the mean
            e.mul_(weight / total_exp).scatter_add_(1, index, -weight)  # (softmax - one-hot) / count
            grad[start:start + rows] = e
        ctx.save_for_backward(grad)
        return total / count  # nan when every target is ignored, as F.cross_entropy gives

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype), None, None


def chunked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, block_elements: int = 1 << 18) -> torch.Tensor:
    """`F.cross_entropy(logits.float(), targets, ignore_index=-1)` for logits (N, V) and targets (N,),
    the same value and gradient (to rounding), computed in blocks of about `block_elements` logits
    (1 MiB in fp32) so that the fp32 work stays in cache. Under `torch.compile` it is the plain loss,
    which the compiler fuses itself."""
    if torch.compiler.is_compiling():
        return LanguageModel.loss_from_logits(logits, targets)
    return _ChunkedCrossEntropy.apply(logits, targets, max(1, block_elements // logits.size(-1)))


class LanguageModel(nn.Module):
    """Base class: `forward(idx, targets=None) -> (logits, loss)`.

    Generation hooks, overridden where a model can do better than recomputing everything:
    - `context_limit`: the most tokens the model can see at once (positions it has embeddings
      for), or None when it has no such limit.
    - `receptive_field`: how many trailing tokens the next prediction depends on, or None for
      all of them; the sampler crops the input to this many tokens, which changes nothing.
    - `supports_cache` / `forward_cached(idx, cache)`: incremental decoding (the GPT's KV cache,
      the LSTM's hidden state).
    """

    config: Any
    context_limit: int | None = None
    receptive_field: int | None = None
    supports_cache: bool = False

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        raise NotImplementedError

    def forward_cached(self, idx: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Logits (B, T, V) for the new tokens `idx`, given what `cache` holds of earlier ones."""
        raise NotImplementedError(f"{type(self).__name__} has no incremental decoding")

    def num_params(self, exclude_position_embeddings: bool = False) -> int:
        """Distinct parameters (a tied weight counts once)."""
        seen, total = set(), 0
        for name, p in self.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            if exclude_position_embeddings and "position_embedding" in name:
                continue
            total += p.numel()
        return total

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward): about 6 per weight used in a matmul."""
        raise NotImplementedError

    @staticmethod
    def loss_from_logits(logits: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
        if targets is None:
            return None
        # float() so the loss is computed in fp32 even when the logits come out of bf16 autocast
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=-1)

    def check_input(self, idx: torch.Tensor) -> None:
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, time), got {tuple(idx.shape)}")
        if torch.compiler.is_compiling():  # the check reads values: under compile it would break the graph
            return
        vocab = self.config.vocab_size
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab):
            raise ValueError(
                f"token ids must lie in [0, {vocab}); got ids from {int(idx.min())} to {int(idx.max())}: "
                "was the text encoded with the tokenizer this model was trained with?"
            )
