"""How much memory training takes, predicted from a model spec before any model is built.

Training holds five kinds of tensors at once, and each has its own arithmetic:

- parameters: the weights, 4 bytes each (fp32; mixed precision keeps the master weights in fp32).
- gradients: one fp32 number per trainable weight, kept from the backward pass to the update.
  Gradient accumulation adds into the same tensors, so `grad_accum` costs no memory.
- optimizer state: AdamW keeps a running mean (exp_avg) and mean square (exp_avg_sq) of every
  trainable weight, 8 bytes per weight, plus a 4-byte step counter per tensor. Muon (the trainer's
  optimizer="muon") keeps one momentum buffer of each hidden matrix it updates, 4 bytes per weight
  and no counter; AdamW keeps the rest as above.
- activations: the tensors autograd saves during the forward pass so that the backward pass can
  compute gradients (a Linear saves its input, GELU its input, LayerNorm its input and per-token
  statistics, attention its queries, keys, values and output). They grow with batch x context,
  are freed by the backward pass, and are what usually runs out. Under bf16 autocast most of them
  are 2-byte copies, and the bf16 copies of the weight matrices are saved as well. A GPT with
  activation checkpointing keeps only the input of each checkpointed block, and saves the rest
  again, one block at a time, when the backward pass recomputes it; the larger of the two moments
  is what counts. QK-norm adds the normalised queries and keys and their statistics.
- logits: the (B, T, V) output, which the caller holds until the backward pass, plus the fp32
  log-probabilities cross-entropy saves for its gradient (a GPT with `chunked_loss` saves the
  gradient itself instead, in the logits' dtype). With a large vocabulary this alone can be
  gigabytes, so it is reported on its own.

Their sum is what a step holds at its fullest, as a backward pass begins with the gradients of
earlier micro-batches and the optimizer state already there.

The formulas below are exact for what torch 2.13 saves on the CPU, where they are checked against
`measure_training_memory` (tests/test_memory.py); the one exception is the LSTM's oneDNN workspace,
a fitted constant. On CUDA the attention kernels keep no T x T matrices even with dropout, and
dropout masks are 1-byte booleans; that branch is modelled, not measured here. The estimate
leaves out temporaries of the backward pass, the data batch and the framework's own memory:
`check_fits` keeps a headroom for them. `peak_rss_rise` measures what the operating system sees,
temporaries included: the rise of a fresh process's peak resident memory over one step (Linux).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

from .device import autocast, autocast_dtype, pick_device
from .models import model_config

FP32, INT64 = 4, 8  # bytes per element
MiB, GiB = 2**20, 2**30
LABELS = {"parameters": "parameters", "gradients": "gradients", "optimizer_state": "AdamW state",
          "activations": "activations", "logits": "logits"}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes held during training, by kind (see the module docstring)."""

    parameters: int  # all weights, frozen ones included
    gradients: int  # fp32 gradient of each trainable weight
    optimizer_state: int  # AdamW exp_avg + exp_avg_sq + step counters
    activations: int  # saved for backward by one micro-batch at its fullest, logits excepted
    logits: int  # the (B, T, V) logits and what cross-entropy saves for them

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def describe(self) -> str:
        rows = [(LABELS[f.name], getattr(self, f.name)) for f in fields(self)] + [("total", self.total)]
        return "\n".join(f"{label:<12} {size / MiB:>10.1f} MiB" for label, size in rows)

    __str__ = describe


def predict_training_memory(model_spec: dict[str, Any], batch_size: int, grad_accum: int = 1,
                            precision: str = "fp32", optimizer: str = "adamw",
                            device: torch.device | str = "cpu") -> MemoryEstimate:
    """Memory to train `model_spec` (the registry's dict) on batches of batch_size x block_size tokens.

    precision: fp32 | bf16 | fp16 | auto, as in TrainConfig; `device` only decides what "auto" means
    and which attention and dropout kernels run. grad_accum is checked but changes nothing:
    accumulation sums into the same gradient tensors (see the module docstring).
    """
    config = model_config(model_spec)  # unknown family or key: the registry's ValueError
    family = model_spec["family"]
    for name, value in (("batch_size", batch_size), ("grad_accum", grad_accum)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if optimizer not in ("adamw", "muon"):
        raise ValueError(f"the trainer's optimizers, 'adamw' and 'muon', are modelled; got {optimizer!r}")
    device = pick_device(device) if isinstance(device, str) else torch.device(device)  # 'auto' too
    half = autocast_dtype(device, precision) is not None
    trainable, frozen = _parameter_tensors(family, config)
    n_trainable = sum(trainable)
    B, T, V = batch_size, config.block_size, config.vocab_size
    # the bigram's logits come out of an embedding lookup, which autocast leaves in fp32
    logit_size = 2 if half and family != "bigram" else FP32
    return MemoryEstimate(
        parameters=FP32 * (n_trainable + sum(frozen)),
        gradients=FP32 * n_trainable,
        optimizer_state=_optimizer_state(family, config, trainable, optimizer),
        activations=_ACTIVATIONS[family](config, B, 2 if half else FP32, device.type == "cuda"),
        logits=_logit_bytes(family, config, logit_size, B * T * V, B * T),
    )


def _logit_bytes(family: str, c, logit_size: int, n_logits: int, n_targets: int) -> int:
    if family == "gpt" and c.chunked_loss:  # the logits + their gradient, which the chunked loss saves
        return 2 * logit_size * n_logits
    # the logits + fp32 log-probabilities + the targets and a scalar weight total kept by the loss
    return logit_size * n_logits + FP32 * n_logits + INT64 * n_targets + FP32


def _optimizer_state(family: str, c, trainable: list[int], optimizer: str) -> int:
    adamw = trainable
    if optimizer == "muon":
        matrices = _hidden_matrices(family, c)
        if not matrices:
            raise ValueError(f"optimizer 'muon' updates the matrices of hidden Linear layers, and a {family} model "
                             "has none: use optimizer 'adamw'")
        adamw = list(trainable)
        for size in matrices:  # Muon's tensors leave AdamW's list
            adamw.remove(size)
        return FP32 * sum(matrices) + 2 * FP32 * sum(adamw) + FP32 * len(adamw)
    return 2 * FP32 * sum(adamw) + FP32 * len(adamw)


def _hidden_matrices(family: str, c) -> list[int]:
    """Sizes of the weight matrices Muon updates: every Linear's but the output layer's."""
    if family == "gpt":
        H = _mlp_width(c)
        up = 2 * H if c.mlp == "swiglu" else H
        return [3 * c.n_embd * c.n_embd, c.n_embd * c.n_embd, c.n_embd * up, H * c.n_embd] * c.n_layer
    if family == "mlp":
        return [c.context * c.n_embd * c.n_hidden]
    return []  # the bigram's table and the LSTM's weights are no Linear layers


def parameter_count(model_spec: dict[str, Any]) -> int:
    """Distinct weights of the model `model_spec` describes, equal to `build_model(spec).num_params()`."""
    trainable, frozen = _parameter_tensors(model_spec["family"], model_config(model_spec))
    return sum(trainable) + sum(frozen)


def _parameter_tensors(family: str, c) -> tuple[list[int], list[int]]:
    """Sizes of the model's distinct weight tensors: (trainable, frozen)."""
    if family == "bigram":
        return [c.vocab_size * c.vocab_size], []
    if family == "mlp":  # one extra embedding row for the "before the text" token
        return [(c.vocab_size + 1) * c.n_embd, c.context * c.n_embd * c.n_hidden, c.n_hidden,
                c.n_hidden * c.vocab_size, c.vocab_size], []
    if family == "lstm":
        widths = [c.n_embd] + [c.n_hidden] * (c.n_layer - 1)
        # per layer: input weights (4H, in), recurrent weights (4H, H), two bias vectors (4H)
        layers = [n for w in widths for n in (4 * c.n_hidden * w, 4 * c.n_hidden * c.n_hidden,
                                              4 * c.n_hidden, 4 * c.n_hidden)]
        embedding = [c.vocab_size * c.n_embd]
        head = [c.n_hidden * c.vocab_size, c.vocab_size]
        return (layers + head, embedding) if c.freeze_embedding else (embedding + layers + head, [])
    if family == "gpt":
        C = c.n_embd
        norm = [C, C] if c.bias else [C]

        def linear(n_in, n_out):
            return [n_in * n_out, n_out] if c.bias else [n_in * n_out]

        H = _mlp_width(c)
        up = 2 * H if c.mlp == "swiglu" else H  # SwiGLU's gate and value matrices as one Linear
        block = norm + linear(C, 3 * C) + linear(C, C) + norm + linear(C, up) + linear(H, C)
        if c.qk_norm:  # a LayerNorm over head_dim for the queries, one for the keys
            D = C // c.n_head
            block += ([D, D] if c.bias else [D]) * 2
        positions = [] if c.rotary else [c.block_size * C]  # rotary embeddings have no table
        # a tied output head shares the token embedding's (V, C) matrix, so it adds nothing
        head = [] if c.tie_embeddings else [c.vocab_size * C]
        return [c.vocab_size * C] + positions + block * c.n_layer + norm + head, []
    raise ValueError(f"no memory model for family {family!r}")



def _mlp_width(c) -> int:
    from .models.gpt import swiglu_width

    return swiglu_width(c.n_embd) if c.mlp == "swiglu" else 4 * c.n_embd


# Activation formulas: (config, batch, bytes of an autocast operand (4 or 2), on CUDA?) -> bytes.
# `a` is the size of what a matmul saves (its input, cast to bf16 under autocast); norms,
# softmax and the residual stream stay fp32.

def _gpt_activations(c, B: int, a: int, cuda: bool) -> int:
    N, T, C, H = B * c.block_size, c.block_size, c.n_embd, c.n_head
    dropout = c.dropout > 0
    mask = 1 if cuda else a  # CPU dropout multiplies by a mask of the input's dtype; CUDA keeps a bool
    math_path = dropout and not cuda

    W = _mlp_width(c)
    # token ids and positions, kept by the two embedding lookups (rotary: the token lookup only)
    ids = INT64 * (N if c.rotary else N + T)
    if c.rotary and a == FP32:  # the rotary cos and sin tables (T, D/2), shared by the blocks in fp32
        ids += FP32 * T * (C // H)
    norm = FP32 * (N * C + 2 * N)  # LayerNorm: its fp32 input (B, T, C), mean and 1/std (B, T)
    if math_path:
        # the CPU's fused attention has no dropout, so SDPA runs its math path, in fp32 even
        # under autocast: q, k, v copies (B, H, T, D) and three (B, H, T, T) matrices
        # (softmax, dropout mask, dropped weights)
        attention = FP32 * (3 * N * C + 3 * B * H * T * T) + a * N * C  # + proj's input, a copy
    else:
        # fused attention saves q, k, v (views of the qkv output), its output and the
        # log-sum-exp of each query's scores (B, H, T): nothing of size T x T
        # the output is laid out (B, T, H, D), so proj's input is the same storage
        attention = a * 4 * N * C + FP32 * B * H * T
    if c.qk_norm:
        # the LayerNorms of q and k keep a mean and 1/std per token and head, and their inputs,
        # views of the qkv output: the fused path saves that output anyway and now saves the
        # normalised q and k as well; the math path, which copies q, k and v, now keeps it too
        attention += FP32 * 4 * B * H * T + a * (3 if math_path else 2) * N * C
        if cuda and a < FP32:  # CUDA's autocast runs LayerNorm in fp32: it saves fp32 copies of q and k
            attention += FP32 * 2 * N * C
    if c.rotary:
        attention += _rotary_activations(c, B, a, math_path)
    block_input = FP32 * N * C  # the residual stream entering a block (attn_norm's input)
    block = (norm + a * N * C  # attn_norm, qkv's input
             + attention  # attention and proj's input
             + norm + a * N * C  # mlp_norm, up's input
             + _gpt_mlp_activations(c, N, a)  # the activation's input and output (down's input)
             + dropout * 2 * mask * N * C)  # residual dropout masks after proj and down
    embedding_dropout = dropout * (1 if cuda else FP32) * N * C  # the embedding sum is fp32
    head = norm + a * N * C  # final_norm, lm_head's input
    # under autocast every matmul saves the bf16 copy of its weight: 4C^2 of attention and the
    # MLP's 8C^2 (SwiGLU: 3 C W) per block, the output head
    mlp_weights = (3 if c.mlp == "swiglu" else 2) * C * W
    block_weights, head_weights = (a * (4 * C * C + mlp_weights), a * c.vocab_size * C) if a < FP32 else (0, 0)
    # activation checkpointing: the first k blocks keep only their input (and checkpoint's copy
    # of the RNG state, 5 KB, left out)
    k = c.activation_checkpointing
    forward = (ids + embedding_dropout + k * block_input + (c.n_layer - k) * (block + block_weights)
               + head + head_weights)
    if k == 0:
        return forward
    # the backward pass then recomputes them one at a time, last first, once the blocks after them
    # and the head have freed theirs: the recomputed block saves what it saved without checkpointing
    recomputing = ids + embedding_dropout + k * block_input + block - block_input + block_weights
    return max(forward, recomputing)


def _gpt_mlp_activations(c, N: int, a: int) -> int:
    W = _mlp_width(c)
    if c.mlp == "swiglu":
        # up's output (N, 2W), kept whole through its two halves (SiLU's input, the product's value),
        # SiLU's output and the product (down's input)
        return a * 4 * N * W
    # GELU keeps its input, ReLU^2 the ReLU's output (the square's input); both then down's input
    return a * 2 * N * W


def _rotary_activations(c, B: int, a: int, math_path: bool) -> int:
    """What rotating the queries and keys adds to a block's attention."""
    N, T, C, D = B * c.block_size, c.block_size, c.n_embd, c.n_embd // c.n_head
    # the rotated q and k are new tensors, which fused attention saves; under QK-norm they take the
    # place of the normalised ones, and the math path copies whatever it is given
    rotated = 0 if c.qk_norm or math_path else a * 2 * N * C
    # the multiplications save the cos and sin tables (T, D/2): under autocast each block casts them
    # to bf16, once for q and once for k; in fp32 every block shares the model's two tables
    tables = a * 4 * T * (D // 2) if a < FP32 else 0
    return rotated + tables


# oneDNN's LSTM workspace (every step's gates and states), bytes per (step + 1, sequence, unit):
# fitted to torch 2.13's CPU kernel (nn.LSTM's path when torch.backends.mkldnn is on), within 8%
# of measured at the course's sizes; tiny layers read higher (page rounding). cuDNN differs.
_ONEDNN_WORKSPACE = {4: 60, 2: 44}


def _lstm_activations(c, B: int, a: int, cuda: bool) -> int:
    N, T, Hd, L = B * c.block_size, c.block_size, c.n_hidden, c.n_layer
    between = c.dropout > 0 and L > 1  # nn.LSTM's dropout acts between stacked layers only
    total = INT64 * N + a * N * c.n_embd  # token ids; the time-major (T, B, n_embd) copy of the input
    total += a * 2 * L * B * Hd  # the zero initial states h0, c0
    total += between * (L - 1) * 2 * a * N * Hd  # mask and dropped input before each upper layer
    # per layer: the (T, B, H) outputs, the final states h_n, c_n (B, H), the workspace
    total += L * (a * (N * Hd + 2 * B * Hd) + _ONEDNN_WORKSPACE[a] * (T + 1) * B * Hd)
    total += (c.dropout > 0) * a * N * Hd  # the output dropout's mask
    total += a * N * Hd  # the output layer's input, a batch-first (B * T, H) copy
    # under autocast every LSTM weight and bias, and the head's matrix, is saved as a bf16 copy
    lstm_weights = sum(4 * Hd * (w + Hd) + 8 * Hd for w in [c.n_embd] + [Hd] * (L - 1))
    weight_copies = a * (lstm_weights + Hd * c.vocab_size) if a < FP32 else 0
    return total + weight_copies


def _mlp_activations(c, B: int, a: int, cuda: bool) -> int:
    N, n = B * c.block_size, c.context
    ids = INT64 * B * (c.block_size + n - 1)  # the padded ids the windows are views of
    hidden_in = a * N * n * c.n_embd  # concatenated window embeddings (B, T, n * n_embd)
    tanh = a * N * c.n_hidden  # tanh's output, also the output layer's input unless dropout ...
    mask = 1 if cuda else a
    dropout = (mask + a) * N * c.n_hidden if c.dropout > 0 else 0  # ... makes a mask and a new input
    weight_copies = a * (n * c.n_embd * c.n_hidden + c.n_hidden * c.vocab_size) if a < FP32 else 0
    return ids + hidden_in + tanh + dropout + weight_copies


def _bigram_activations(c, B: int, a: int, cuda: bool) -> int:
    return INT64 * B * c.block_size  # the lookup keeps only the ids; the logits are the table's rows


_ACTIVATIONS = {"gpt": _gpt_activations, "lstm": _lstm_activations, "mlp": _mlp_activations,
                "bigram": _bigram_activations}


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes free for training on `device` now, or None where this cannot be told."""
    device = pick_device(device) if isinstance(device, str) else torch.device(device)  # 'auto' too
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:  # Linux: what can be allocated without swapping, page cache included
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except OSError:
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


class WillNotFit(ValueError):
    """A training configuration needs more memory than the device has."""


def check_fits(estimate: MemoryEstimate, device: torch.device | str = "cpu", headroom: float = 0.8,
               available: int | None = None) -> int | None:
    """Raise WillNotFit, saying what to change, unless `estimate` fits in `headroom` of the free memory.

    The headroom (a fraction of what is free) leaves room for what the estimate does not count:
    backward-pass temporaries, the batch, the framework and the allocator's spare blocks.
    Returns the free bytes, or None (and passes) when they cannot be told.
    """
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom must be a fraction in (0, 1], got {headroom}")
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    if available is None:
        available = available_memory(device)
    if available is None or estimate.total <= headroom * available:
        return available
    unit, name = (GiB, "GiB") if estimate.total >= GiB else (MiB, "MiB")
    parts = ", ".join(f"{LABELS[f.name]} {getattr(estimate, f.name) / unit:.1f}" for f in fields(estimate))
    per_token = estimate.activations + estimate.logits
    advice = ("lower the batch size or the context length" if per_token >= estimate.total / 2 else
              "use a smaller model (fewer layers, a narrower width or a smaller vocabulary)")
    raise WillNotFit(f"this configuration needs about {estimate.total / unit:.1f} {name} to train ({parts} "
                     f"{name}) and {available / unit:.1f} {name} is available on {device} "
                     f"(training may use {headroom:.0%} of it): {advice}")


def measure_training_memory(model: torch.nn.Module, idx: torch.Tensor, targets: torch.Tensor,
                            precision: str = "fp32", optimizer: str = "adamw") -> MemoryEstimate:
    """The same parts as `predict_training_memory`, measured on a copy of `model` over one step.

    Activations and logits are the distinct storages autograd saves (through saved_tensors_hooks),
    minus the parameters' own; gradients and the optimizer's state (AdamW's, or Muon's and AdamW's)
    are read after a backward and one step.
    A checkpointed block hides what it saves behind checkpoint's own hooks and saves it again
    when the backward pass recomputes it, so activations are the larger of what the forward pass
    saved and the most that is alive at once during the backward pass (`_RecomputePeak`).
    """
    from .training import TrainConfig, make_optimizer  # training imports much; only measuring needs it

    model = copy.deepcopy(model).train()  # the step below must not change the caller's weights
    params = list({id(p): p for p in model.parameters()}.values())  # a tied weight once
    weights = {p.untyped_storage().data_ptr() for p in params}
    saved: dict[int, tuple[StorageWeakRef, int]] = {}  # address -> (storage, bytes); views count once

    def keep(storage):
        saved.setdefault(storage.data_ptr(), (StorageWeakRef(storage), storage.nbytes()))

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in weights:
            keep(tensor.untyped_storage())
        return tensor  # kept alive by the graph, so no address is reused while we count

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with autocast(idx.device, precision):
            logits, _ = model(idx)
            forward = dict(saved)  # what the model's forward pass saved; the loss's come next
            loss = model.loss_from_logits(logits, targets)
    keep(logits.untyped_storage())
    activations = sum(size for _, size in forward.values())
    logit_bytes = sum(size for _, size in saved.values()) - activations
    backward = _RecomputePeak(forward, weights)
    start = torch.ones_like(loss)  # the backward pass's first gradient, made here so it is not counted
    with backward:
        loss.backward(start)
    optimizer = make_optimizer(model, TrainConfig(optimizer=optimizer), idx.device)
    optimizer.step()
    return MemoryEstimate(
        parameters=sum(p.untyped_storage().nbytes() for p in params),
        gradients=sum(p.grad.untyped_storage().nbytes() for p in params if p.grad is not None),
        optimizer_state=sum(v.untyped_storage().nbytes() for state in optimizer.state.values()
                            for v in state.values() if isinstance(v, torch.Tensor)),
        activations=max(activations, backward.peak),
        logits=logit_bytes,
    )


class _RecomputePeak(TorchDispatchMode):
    """Over a backward pass, the most activation bytes alive at once: those the forward pass saved,
    until the backward pass frees them, and those activation checkpointing saves again.

    Recomputing a checkpointed block is the only part of a backward pass that runs with grad
    enabled: the storages its ops create are noted then. What is alive is added up at each op that
    computes a gradient (grad disabled, a new storage), by when the recomputation has finished and
    only what it saved is left. (Checkpoint also detaches what it saves, with grad disabled: those
    ops make no new storage and are not read.)
    """

    def __init__(self, saved: dict[int, tuple[StorageWeakRef, int]], weights: set[int]):
        super().__init__()
        self.held = saved  # storage address -> (weak reference, bytes)
        self.weights = weights  # the parameters' addresses: views of them are not activations
        self.peak = 0

    def _new(self, storage) -> bool:
        address = storage.data_ptr()
        return address not in self.weights and (address not in self.held or self.held[address][0].expired())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        new = [t.untyped_storage() for t in (out if isinstance(out, (tuple, list)) else (out,))
               if isinstance(t, torch.Tensor) and self._new(t.untyped_storage())]
        if torch.is_grad_enabled():  # recomputing
            for storage in new:  # (an address freed earlier may be reused)
                self.held[storage.data_ptr()] = (StorageWeakRef(storage), storage.nbytes())
        elif new:  # a gradient
            self.held = {address: kept for address, kept in self.held.items() if not kept[0].expired()}
            self.peak = max(self.peak, sum(size for _, size in self.held.values()))
        return out


# ----------------------------------------------------------------------------- what the system sees

def peak_rss_rise(model_spec: dict[str, Any], batch_size: int, precision: str = "fp32") -> int | None:
    """Bytes a fresh process's peak resident memory (Linux's VmHWM) rises by over one training step.

    The exact tensor bytes of `measure_training_memory` leave out what the system also sees: the
    backward pass's short-lived temporaries and the allocator's spare blocks. A process reuses
    memory it freed earlier without asking the system again, so the peak is read fairly only in a
    new process: this starts one (one CPU thread), builds `model_spec` and AdamW, resets the peak
    to what is resident (/proc/self/clear_refs), runs one step on random batch_size x block_size
    tokens, and reads the peak. Compare it with `predict_training_memory(...).total` less the
    parameters, which the process already held. Returns None where the kernel offers no such
    reset (not Linux).
    """
    if not Path("/proc/self/clear_refs").exists():
        return None
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    model_config(model_spec)  # an unknown family or key: the registry's ValueError, here and not in the child
    package_root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    job = json.dumps({"spec": model_spec, "batch": batch_size, "precision": precision})
    done = subprocess.run([sys.executable, "-c", "from lesson_lib.memory import _peak_rss_step; _peak_rss_step()", job],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    if done.returncode != 0:
        raise RuntimeError(f"the measuring process failed ({done.returncode}): {done.stderr[-2000:]}")
    reading = json.loads(done.stdout.strip().splitlines()[-1])
    return reading["peak"] - reading["before"]


def _proc_status(key: str) -> int:
    with open("/proc/self/status") as f:  # lines such as "VmHWM:   123456 kB"
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))


def _peak_rss_step() -> None:
    """The child process of `peak_rss_rise`: one step, then the readings as JSON on stdout."""
    import gc

    from .models import build_model
    from .training import TrainConfig, make_optimizer

    job = json.loads(sys.argv[1])
    torch.set_num_threads(1)  # this process only
    torch.manual_seed(0)
    spec, cpu = job["spec"], torch.device("cpu")
    model = build_model(spec).train()
    idx = torch.randint(0, spec["vocab_size"], (job["batch"], model.config.block_size))
    targets = torch.randint(0, spec["vocab_size"], idx.shape)
    optimizer = make_optimizer(model, TrainConfig(), cpu)
    gc.collect()
    before = _proc_status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to what is resident now
    with autocast(cpu, job["precision"]):
        loss = model(idx, targets)[1]
    loss.backward()
    optimizer.step()
    print(json.dumps({"before": before, "peak": _proc_status("VmHWM:")}))
