"""Sharding: what each process holds under DDP and under FSDP, measured on a small GPT.

Training with AdamW in fp32 keeps 16 bytes per parameter: the weight (4), its gradient (4) and
AdamW's two moments (8). Under DDP every process keeps all of it, so N processes fit no bigger a
model than one. FSDP (`distributed.shard`) splits each tensor's rows over the processes, so each
keeps about 1/N of those bytes; in exchange it gathers a block's weights whole just before the
block runs (forward and backward) and frees them after, and averages gradients into shards. The
arithmetic is the same: the updates equal those of one process that sees the whole batch.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m lesson_lib.sharding \\
        --mode fsdp --steps 20 --out fsdp.json

trains `DemoConfig`'s GPT on fixed batches, each process its share of every global batch, and
rank 0 writes the loss of each step and each process's bytes (`bytes_per_process`) to the JSON
file. `reference_losses` trains the same model on the same batches in one process, two micro-
batches accumulated per update: its loss curve should equal both the DDP and the FSDP one. The
demo runs on the CPU (gloo): the memory held is the lesson, not the speed.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from . import distributed
from .data import get_batch
from .fileio import write_json
from .models import build_model
from .training import TrainConfig, make_optimizer


@dataclass(frozen=True)
class DemoConfig:
    vocab_size: int = 65  # Shakespeare's characters: 65 embedding rows split 33/32, as real sizes seldom divide
    block_size: int = 16  # context length
    n_layer: int = 2  # transformer blocks, each sharded on its own
    n_head: int = 2  # attention heads per block
    n_embd: int = 32  # residual stream width
    global_batch: int = 8  # sequences per update, over all processes (or micro-batches) together
    lr: float = 3e-3  # AdamW learning rate, constant
    grad_clip: float = 0.5  # low enough to clip the early steps: the comparison covers global-norm clipping
    seed: int = 0  # initial weights, and the first batch (step s draws with seed + s)

    def __post_init__(self):
        if self.global_batch < 1 or self.grad_clip <= 0 or self.lr <= 0:
            raise ValueError(f"DemoConfig needs global_batch >= 1, grad_clip > 0 and lr > 0; got {self}")


def bytes_per_process(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer state held by this process (a tied weight once).

    Under FSDP a parameter, its gradient and its AdamW moments are DTensors: only the local shard
    (`to_local()`) is in this process's memory. Not counted: activations, communication buffers,
    and the whole weights FSDP gathers for the block it is running.
    """
    params = list(model.parameters())  # distinct: a tied weight is listed once
    held = {
        "parameters": sum(_bytes(p) for p in params),
        "gradients": sum(_bytes(p.grad) for p in params if p.grad is not None),
        "optimizer": sum(_bytes(value) for state in optimizer.state.values() for value in state.values()
                         if isinstance(value, torch.Tensor)),
    }
    return {**held, "total": sum(held.values())}


def _bytes(tensor: torch.Tensor) -> int:
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor  # a DTensor: this process's shard
    return local.numel() * local.element_size()


def demo_model(config: DemoConfig) -> nn.Module:
    """The demo's GPT, with the same initial weights in every process."""
    torch.manual_seed(config.seed)
    return build_model({"family": "gpt", "vocab_size": config.vocab_size, "block_size": config.block_size,
                        "n_layer": config.n_layer, "n_head": config.n_head, "n_embd": config.n_embd})


def global_batch(step: int, config: DemoConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and targets of update `step`, (global_batch, block_size) each, the same in every process.

    Windows of a fixed, learnable sequence: each token is 11 more than the one before (mod the
    vocabulary), plus 1 every 5 tokens."""
    n = 4096
    tokens = (np.arange(n) * 11 + np.arange(n) // 5) % config.vocab_size
    generator = torch.Generator().manual_seed(config.seed + step)
    return get_batch(tokens, config.global_batch, config.block_size, generator, torch.device("cpu"))


def _optimizer(model: nn.Module, config: DemoConfig) -> torch.optim.Optimizer:
    return make_optimizer(model, TrainConfig(lr=config.lr, min_lr=0.0), torch.device("cpu"))


def _update(step_model: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
            micro_batches: list[tuple[torch.Tensor, torch.Tensor]], grad_clip: float
            ) -> tuple[float, float, dict[str, int]]:
    """One update over `micro_batches`: (mean loss, global gradient norm, bytes held before the
    gradients are freed). Under DDP and FSDP the gradients come back averaged over processes."""
    losses = []
    for x, y in micro_batches:
        loss = step_model(x, y)[1]
        (loss / len(micro_batches)).backward()
        losses.append(loss.detach())
    norm = distributed.clip_grad_norm(model.parameters(), grad_clip)
    optimizer.step()
    held = bytes_per_process(model, optimizer)  # weights, gradients and both AdamW moments all exist now
    optimizer.zero_grad(set_to_none=True)
    return torch.stack(losses).mean().item(), norm, held


def reference_run(steps: int, config: DemoConfig = DemoConfig(), micro_batches: int = 2) -> dict[str, Any]:
    """One process, the demo's model and global batches, each update accumulated over `micro_batches`
    equal parts of the batch: {"losses": [...], "grad_norms": [...]} per step."""
    if config.global_batch % micro_batches:
        raise ValueError(f"a global batch of {config.global_batch} does not split into {micro_batches} micro-batches")
    model = demo_model(config)
    optimizer = _optimizer(model, config)
    size = config.global_batch // micro_batches
    losses, norms = [], []
    for step in range(steps):
        x, y = global_batch(step, config)
        parts = [(x[i:i + size], y[i:i + size]) for i in range(0, config.global_batch, size)]
        loss, norm, _ = _update(model, model, optimizer, parts, config.grad_clip)
        losses.append(loss)
        norms.append(norm)
    return {"losses": losses, "grad_norms": norms}


def reference_losses(steps: int, config: DemoConfig = DemoConfig(), micro_batches: int = 2) -> list[float]:
    """The loss of each update of `reference_run`: what the processes of the demo should log."""
    return reference_run(steps, config, micro_batches)["losses"]


def train_demo(mode: str, steps: int, config: DemoConfig = DemoConfig()) -> dict[str, Any] | None:
    """Under torchrun: train the demo model with DDP or FSDP (`mode`), each process on its share of
    each global batch. Returns, on rank 0, the losses and gradient norms of each step and each
    process's bytes after the last update (None on the other ranks)."""
    rank, world = distributed.rank_and_world()
    if world < 2:
        raise ValueError("the demo compares processes: start it with python -m torch.distributed.run --standalone "
                         "--nproc_per_node 2 -m lesson_lib.sharding ...")
    if mode not in distributed.PARALLEL_MODES:
        raise ValueError(f"mode must be one of {', '.join(distributed.PARALLEL_MODES)}; got {mode!r}")
    if config.global_batch % world:
        raise ValueError(f"a global batch of {config.global_batch} does not split over {world} processes")
    device = distributed.setup(torch.device("cpu"))
    model = demo_model(config)
    if mode == "fsdp":
        step_model = distributed.shard(model, device)
    else:
        from torch.nn.parallel import DistributedDataParallel

        step_model = DistributedDataParallel(model)
    optimizer = _optimizer(model, config)  # after sharding, which replaces the parameters
    share = config.global_batch // world
    mine = slice(rank * share, (rank + 1) * share)
    losses, norms, held = [], [], {}
    for step in range(steps):
        x, y = global_batch(step, config)
        loss, norm, held = _update(step_model, model, optimizer, [(x[mine], y[mine])], config.grad_clip)
        losses.append(distributed.mean(torch.tensor(loss)).item())  # the mean over processes: the global batch's
        norms.append(norm)
    held_by_rank = distributed.gather(held)
    if rank != 0:
        return None
    return {"mode": mode, "processes": world, "steps": steps, "config": dataclasses.asdict(config),
            "losses": losses, "grad_norms": norms, "bytes": held_by_rank}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m torch.distributed.run --standalone --nproc_per_node 2 -m lesson_lib.sharding",
        description="Train a small GPT under DDP or FSDP; write each step's loss and each process's bytes.")
    parser.add_argument("--mode", required=True, choices=list(distributed.PARALLEL_MODES))
    parser.add_argument("--steps", type=int, default=20, help="updates (at least 1)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="written by rank 0")
    args = parser.parse_args(argv)
    try:
        if args.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {args.steps}")
        result = train_demo(args.mode, args.steps)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if result is not None:
        write_json(args.out, result)
        per_process = ", ".join(f"rank {r}: {b['total']:,}" for r, b in enumerate(result["bytes"]))
        print(f"{args.mode}, {result['processes']} processes: loss {result['losses'][0]:.4f} -> "
              f"{result['losses'][-1]:.4f}; bytes of parameters, gradients and optimizer state held by "
              f"{per_process}; written to {args.out}")
    return 0


if __name__ == "__main__":
    distributed.exit_process(main())
