"""One training loop for every language model in the course.

`train(model, data, config, run)` owns what a real training run needs and a notebook should not
re-write: AdamW with parameter groups, linear warmup then cosine decay (a pure function of the
step), gradient accumulation and clipping, mixed precision, periodic evaluation, throughput and
MFU, a guard against non-finite values, atomic checkpoints and exact resume. It knows nothing
about GPTs: it talks to the model through `forward(idx, targets) -> (logits, loss)`.
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from . import checkpoints as ckpt
from . import distributed
from .config import to_dict
from .data import get_batch
from .device import autocast, autocast_dtype, peak_flops, pick_device, seed_everything
from .models import model_spec
from .runs import Run


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 1000  # optimizer updates in the whole run
    batch_size: int = 12  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches summed into one update (effective batch = batch_size * grad_accum)
    lr: float = 1e-3  # peak learning rate, reached at the end of warmup
    min_lr: float = 1e-4  # floor of the cosine decay
    warmup_steps: int = 100  # steps of linear warmup from 0 to lr
    decay_steps: int = 0  # step at which the cosine reaches min_lr (0: max_steps)
    weight_decay: float = 0.1  # AdamW decay, applied to matrices only (not norms, biases, embeddings)
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.99  # AdamW second-moment decay
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    eval_interval: int = 250  # evaluate on val every this many steps (and at the last step)
    eval_iters: int = 20  # val batches per evaluation
    log_interval: int = 10  # write a train record every this many steps
    checkpoint_interval: int = 0  # save every this many steps (0: at each evaluation)
    keep_last: int = 2  # recent checkpoints kept (the best one is kept as well)
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    seed: int = 1337  # seeds init, dropout and the batch sampler
    compile: bool = False  # torch.compile the model (faster steps after a slow first one)
    measure_mfu: bool = True  # time a matmul once to report model FLOPs utilisation

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr and lr > 0; got lr={self.lr}, min_lr={self.min_lr}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"TrainConfig.precision must be auto, fp32, bf16 or fp16; got {self.precision!r}")


@dataclass
class TrainData:
    """Token ids for training and validation, and how to turn a loss into bits per character."""

    train: np.ndarray
    val: np.ndarray
    chars_per_token: float | None = None  # average characters per token; None: no bits/char figure


@dataclass
class TrainResult:
    status: str  # finished | stopped
    step: int
    tokens: int
    elapsed: float  # wall seconds, over all attempts of a resumed run
    last_val_loss: float | None
    best_val_loss: float | None
    records: list[dict[str, Any]] = field(default_factory=list)
    run: str | None = None  # the run folder's name, when there is one


class TrainingDiverged(RuntimeError):
    """A loss or gradient became NaN or infinite; the update was not applied."""


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate for update number `step` (0-based): linear warmup, then cosine to min_lr."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    end = config.decay_steps or config.max_steps
    if step >= end:
        return config.min_lr
    progress = (step - config.warmup_steps) / max(1, end - config.warmup_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW that decays matrices of Linear layers only: not norms, biases or embeddings."""
    no_decay = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            no_decay.add(id(module.weight))
    decay, keep = [], []
    seen = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (keep if p.dim() < 2 or id(p) in no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2),
                             fused=device.type == "cuda")


@torch.no_grad()
def evaluate(model: nn.Module, data: np.ndarray, batch_size: int, block_size: int, iters: int,
             device: torch.device, precision: str = "auto", seed: int = 0) -> float:
    """Mean loss over `iters` random windows of `data`, always the same windows for the same seed."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(iters):
        x, y = get_batch(data, batch_size, block_size, generator, device)
        with autocast(device, precision):
            _, loss = model(x, y)
        losses.append(loss.item())
    model.train(was_training)
    return float(np.mean(losses))


def train(model: nn.Module, data: TrainData, config: TrainConfig, run: Run | None = None,
          callback: Callable[[dict[str, Any]], None] | None = None, resume: bool = False,
          progress: bool = True) -> TrainResult:
    """Train `model` on `data`; with a `run`, log metrics and save checkpoints into its folder.

    resume=True continues from the run's latest checkpoint: weights, optimizer, step, and every
    random state, so the losses logged afterwards equal those of a run that never stopped.
    """
    from tqdm.auto import tqdm

    rank, world = distributed.rank_and_world()
    writes = run is not None and rank == 0
    device = distributed.setup(pick_device(config.device))
    block_size = model.config.block_size
    for part, name in ((data.train, "training"), (data.val, "validation")):
        if len(part) <= block_size:
            raise ValueError(f"the {name} data has {len(part)} tokens, not more than the context "
                             f"(block_size={block_size}): use a shorter context or more text")

    peak = None
    if config.measure_mfu:  # before seeding; it uses its own generator anyway
        peak = peak_flops(device, autocast_dtype(device, config.precision) or torch.float32)
    seed_everything(config.seed + rank)
    generator = torch.Generator().manual_seed(config.seed + rank)  # draws every training batch
    model.to(device)
    optimizer = make_optimizer(model, config, device)
    step, tokens, elapsed, best_val, last_val = 0, 0, 0.0, None, None

    if resume:
        if run is None:
            raise ValueError("resume=True needs the run to resume")
        state = _restore(run, model, optimizer, generator, rank, world)
        step, tokens, elapsed = state["step"], state["tokens"], state["elapsed"]
        best_val, last_val = state.get("best_val_loss"), state.get("last_val_loss")
        if step >= config.max_steps:
            return TrainResult("finished", step, tokens, elapsed, last_val, best_val, run=run.name)

    train_model = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        train_model = torch.compile(train_model)
    tokens_per_step = config.batch_size * config.grad_accum * block_size * world
    flops_per_token = model.flops_per_token() if hasattr(model, "flops_per_token") else None
    records: list[dict[str, Any]] = []

    def emit(record: dict[str, Any]) -> None:
        records.append(record)
        if writes:
            run.log(record)
        if callback is not None:
            callback(record)

    def save(val_loss: float | None) -> None:
        if run is None:
            return
        # every process's batch and dropout streams, so each continues its own after a resume
        ranks = distributed.gather({"data_generator": generator.get_state(), "rng": ckpt.rng_state()})
        if not writes:
            return
        trainer_state = {"optimizer": optimizer.state_dict(), "step": step, "tokens": tokens, "elapsed": elapsed,
                         "best_val_loss": best_val, "last_val_loss": last_val, "ranks": ranks}
        meta = {"step": step, "tokens": tokens, "val_loss": val_loss, "elapsed": elapsed,
                "model": model_spec(model), "train": to_dict(config)}
        ckpt.save_checkpoint(run.path, model, trainer_state, meta, keep_last=config.keep_last)

    if writes:
        run.mark_running()
    emit({"kind": "event", "event": "resume" if resume else "start", "step": step, "tokens": tokens,
          "time": elapsed, "device": str(device), "params": model.num_params() if hasattr(model, "num_params") else None})
    model.train()
    bar = tqdm(total=config.max_steps, initial=step, desc=run.name if run else "training", unit="step",
               disable=not progress or rank != 0, dynamic_ncols=True)
    window_start, window_tokens = time.perf_counter(), 0
    attempt_start, elapsed_before = time.perf_counter(), elapsed
    status = "finished"
    stop = _StopRequest()
    try:
        with stop.installed():
            while step < config.max_steps:
                if distributed.any_true(stop.requested, device):
                    status = "stopped"
                    save(None)  # at a step boundary: the run resumes exactly where it stopped
                    break
                lr = lr_at(step, config)
                try:
                    train_loss, grad_norm = _update(train_model, optimizer, lr, data.train, config, generator,
                                                    device, world)
                except _NonFinite as bad:
                    _diverged(emit, step + 1, tokens, elapsed, bad.what, bad.value, config)
                step += 1
                tokens += tokens_per_step
                window_tokens += tokens_per_step
                elapsed = elapsed_before + time.perf_counter() - attempt_start
                bar.update(1)

                if step % config.log_interval == 0 or step == config.max_steps:
                    now = time.perf_counter()
                    tps = window_tokens / max(now - window_start, 1e-9)
                    window_start, window_tokens = now, 0
                    mfu = flops_per_token * tps / peak if peak and flops_per_token else None
                    emit({"kind": "train", "step": step, "tokens": tokens, "time": round(elapsed, 3),
                          "train_loss": train_loss, "lr": lr, "grad_norm": grad_norm,
                          "tokens_per_s": round(tps, 1), "mfu": mfu})
                    bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{last_val:.3f}" if last_val else "-")

                is_eval = step % config.eval_interval == 0 or step == config.max_steps
                if is_eval:
                    last_val = evaluate(model, data.val, config.batch_size, block_size, config.eval_iters, device,
                                        config.precision, seed=config.seed + 1)
                    best_val = last_val if best_val is None else min(best_val, last_val)
                    record = {"kind": "eval", "step": step, "tokens": tokens, "time": round(elapsed, 3),
                              "val_loss": last_val, "val_ppl": math.exp(min(last_val, 50.0))}
                    if data.chars_per_token:
                        record["val_bpc"] = last_val / math.log(2) / data.chars_per_token
                    emit(record)
                    bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{last_val:.3f}")
                    window_start = time.perf_counter()  # evaluation time is not training throughput
                save_every = config.checkpoint_interval or config.eval_interval
                if step % save_every == 0 or step == config.max_steps:
                    save(last_val if is_eval else None)
        emit({"kind": "event", "event": "end", "status": status, "step": step, "tokens": tokens,
              "time": round(elapsed, 3), "val_loss": last_val})
    except KeyboardInterrupt:  # a second interrupt: leave at once, keep the last checkpoint
        emit({"kind": "event", "event": "end", "status": "stopped", "step": step, "tokens": tokens,
              "time": round(elapsed, 3), "message": "interrupted mid-step; resume from the last checkpoint"})
        raise
    finally:
        bar.close()
        if writes:
            run.mark_done()
    return TrainResult(status, step, tokens, elapsed, last_val, best_val, records, run.name if run else None)


class _StopRequest:
    """SIGINT/SIGTERM ask the loop to stop after the current step (and save); a second one interrupts."""

    def __init__(self):
        self.requested = False

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _NonFinite(Exception):
    def __init__(self, what: str, value: float):
        self.what, self.value = what, value


def _update(train_model: nn.Module, optimizer: torch.optim.Optimizer, lr: float, data: np.ndarray,
            config: TrainConfig, generator: torch.Generator, device: torch.device, world: int) -> tuple[float, float]:
    """One optimizer update over `grad_accum` micro-batches: (mean loss, gradient norm before clipping).

    Raises _NonFinite, with nothing applied, when a loss or the gradient norm is NaN or infinite.
    Under DDP the loss is averaged over processes first, so every process takes the same decision.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    model = getattr(train_model, "module", train_model)  # the model inside a DDP wrapper
    block_size = model.config.block_size
    loss_sum = 0.0
    for micro in range(config.grad_accum):
        x, y = get_batch(data, config.batch_size, block_size, generator, device)
        # under DDP, gradients are averaged across processes once, on the last micro-batch
        sync = world == 1 or micro == config.grad_accum - 1
        with contextlib.nullcontext() if sync else train_model.no_sync():
            with autocast(device, config.precision):
                _, loss = train_model(x, y)
            shared = distributed.mean(loss)
            if not torch.isfinite(shared):
                optimizer.zero_grad(set_to_none=True)
                raise _NonFinite("loss", shared.item())
            (loss / config.grad_accum).backward()
        loss_sum += shared.item()
    clip = config.grad_clip if config.grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item()
    if not math.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        raise _NonFinite("gradient norm", grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / config.grad_accum, grad_norm


def _restore(run: Run, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             rank: int, world: int) -> dict[str, Any]:
    """Load the run's latest checkpoint into model, optimizer, batch generator and RNGs; return its state."""
    checkpoint = ckpt.resolve_checkpoint(run.path, "latest")
    ckpt.load_weights(model, checkpoint)
    state = ckpt.load_trainer_state(checkpoint)
    optimizer.load_state_dict(state["optimizer"])
    ranks = state["ranks"]
    if len(ranks) != world:
        raise ValueError(f"the checkpoint was written by {len(ranks)} process(es) and this run has {world}: "
                         "resume with the same number of processes, so every one continues its own batches")
    generator.set_state(ranks[rank]["data_generator"])
    ckpt.set_rng_state(ranks[rank]["rng"])
    return state


def _diverged(emit, step: int, tokens: int, elapsed: float, what: str, value: float, config: TrainConfig):
    message = (f"step {step}: the {what} is {value} (not finite); the update was not applied and the last "
               f"checkpoint is kept. Lower the learning rate (now {config.lr:g}), "
               f"{'turn on gradient clipping (grad_clip=1.0)' if config.grad_clip <= 0 else 'clip harder'}, "
               f"{'add warmup steps' if config.warmup_steps < 50 else 'lengthen the warmup'}, "
               "or use fp32 precision; then resume or start again.")
    emit({"kind": "event", "event": "end", "status": "failed", "step": step - 1, "tokens": tokens,
          "time": round(elapsed, 3), "message": message})
    raise TrainingDiverged(message)
