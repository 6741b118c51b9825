"""What a training run keeps across a stop: where it stands, and everything needed to go on exactly.

`save` writes a checkpoint of the model, the optimizer, fp16's loss scaler, the step and tokens seen,
and every random state of every process (the batch sampler's generator, dropout's RNGs), so `restore`
can continue a run that stopped, or was killed, as if it never had: the same batches and the same
dropout masks, hence the same losses. `restore` starts from the newest checkpoint that loads and says
which damaged ones it skipped. A full disk while saving becomes `DiskFull`, with what to do about it.

A model sharded over processes (FSDP) is saved whole all the same: its weights and optimizer state
are gathered on rank 0 and written in the same files and layout as an unsharded model's, so one
process can load them. On resume the weights go into the model before it is sharded again, and the
optimizer state into the optimizer made after (`load_optimizer`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import checkpoints as ckpt
from . import distributed
from .config import to_dict
from .fileio import folder_bytes, free_bytes, is_disk_full, mib
from .models import model_spec
from .runs import Run


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0  # wall seconds over all attempts
    best_val: float | None = None
    last_val: float | None = None


class DiskFull(RuntimeError):
    """The disk holding the run filled up; the run stopped and its previous checkpoint is intact."""


def disk_full(run: Run, error: OSError) -> DiskFull:
    """The error to raise for a full disk: how much is free, what a checkpoint takes, how to go on."""
    newest = run.checkpoints()
    kept = f"the last checkpoint, {newest[-1].name}, is intact" if newest else "no checkpoint was saved"
    size = f"A checkpoint of this run takes {mib(folder_bytes(newest[-1]))}. " if newest else ""
    return DiskFull(f"no space left on the disk holding {run.path} ({mib(free_bytes(run.path))} free; "
                    f"{error.strerror or error}). {size}Training stopped; {kept}. Free some space, then continue "
                    f"with: python -m lesson_lib train --resume {run.name}")


def save(run: Run, writes: bool, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
         generator: torch.Generator, config: Any, p: Progress, val_loss: float | None,
         spec: dict[str, Any] | None = None) -> None:
    """A checkpoint of everything needed to continue exactly (written by rank 0, `writes`).

    `config` is the run's `training.TrainConfig` (not imported here: training imports this module).

    `spec` is the model's architecture (`model_spec(model)` when None): FSDP changes a model's class,
    so the trainer takes it before sharding."""
    # every process's batch and dropout streams, so each continues its own after a resume
    ranks = distributed.gather({"data_generator": generator.get_state(), "rng": ckpt.rng_state()})
    sharded = distributed.is_sharded(model)
    # under FSDP every process sends its shards to rank 0 (collectives: all call them, even if only one writes)
    weights = distributed.full_model_state(model) if sharded else None
    optimizer_state = distributed.full_optimizer_state(model, optimizer) if sharded else None
    if not writes:
        return
    state = {"optimizer": optimizer_state if sharded else optimizer.state_dict(), "step": p.step,
             "tokens": p.tokens, "elapsed": p.elapsed, "best_val_loss": p.best_val, "last_val_loss": p.last_val,
             "ranks": ranks}
    if scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    meta = {"step": p.step, "tokens": p.tokens, "val_loss": val_loss, "elapsed": p.elapsed,
            "model": spec or model_spec(model), "train": to_dict(config)}
    try:
        ckpt.save_checkpoint(run.checkpoints_path, model, state, meta, keep_last=config.keep_last, weights=weights)
    except OSError as e:
        if not is_disk_full(e):
            raise
        raise disk_full(run, e) from None


def restore(run: Run, model: nn.Module, scaler: torch.amp.GradScaler, generator: torch.Generator, rank: int,
            world: int) -> tuple[Progress, str | None, dict[str, Any] | None]:
    """Load the run's newest loadable checkpoint into the (not yet sharded) model, the scaler, the batch
    generator and the RNGs.

    Returns where training stands, a note saying which damaged checkpoints were skipped, or that
    there was none and training starts from step 0, and the optimizer's state for `load_optimizer`
    (None without a checkpoint).
    """
    if run.writing:
        ckpt.recover(run.checkpoints_path)
    checkpoint, skipped = ckpt.newest_loadable(run.checkpoints_path)
    notes = [f"skipped {name}: {why}" for name, why in skipped]
    if checkpoint is None:
        if skipped:
            raise ValueError(f"no checkpoint of run {run.name!r} can be loaded ({'; '.join(notes)}); "
                             "start a new run under another name")
        return Progress(), f"run {run.name!r} has no checkpoint yet: training it from step 0", None
    ckpt.load_weights(model, checkpoint)
    state = ckpt.load_trainer_state(checkpoint)
    if scaler.is_enabled() and "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    ranks = state["ranks"]
    if len(ranks) != world:
        raise ValueError(f"the checkpoint was written by {len(ranks)} process(es) and this run has {world}: "
                         "resume with the same number of processes, so every one continues its own batches")
    generator.set_state(ranks[rank]["data_generator"])
    ckpt.set_rng_state(ranks[rank]["rng"])
    p = Progress(state["step"], state["tokens"], state["elapsed"], state.get("best_val_loss"),
                 state.get("last_val_loss"))
    return p, (f"resumed from {checkpoint.name}; " + "; ".join(notes)) if notes else None, state["optimizer"]


def load_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Put a checkpoint's optimizer state into `optimizer`: whole, or under FSDP this process's shards."""
    if distributed.is_sharded(model):
        distributed.load_full_optimizer_state(model, optimizer, state)
    else:
        optimizer.load_state_dict(state)
