"""One training loop for every language model in the course.

`train(model, data, config, run)` owns what a real training run needs and a notebook should not
re-write: AdamW with parameter groups, linear warmup then cosine decay (a pure function of the
step), gradient accumulation and clipping, mixed precision (bf16, or fp16 with a loss scaler),
periodic evaluation, throughput and MFU, a guard against non-finite values, atomic checkpoints,
exact resume, a clear stop when the disk fills, and data parallelism under torchrun (DDP, or FSDP
with `parallel="fsdp"`: see `distributed`). It knows nothing about GPTs: it talks to the
model through `forward(idx, targets) -> (logits, loss)`.

The loop itself is `train`'s `while` below, in the order nanoGPT writes it: stop request, learning
rate, update, log, evaluate, checkpoint. Everything else is a named helper.
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

from . import distributed, trainer_state
from .data import get_batch
from .device import PRECISIONS, autocast, autocast_dtype, check_seed, peak_flops, pick_device, seed_everything
from .distributed import PARALLEL_MODES
from .fileio import is_disk_full
from .models import model_spec
from .runs import Run
from .trainer_state import DiskFull, Progress  # noqa: F401 - DiskFull is part of this module's interface


OPTIMIZERS = ("adamw", "muon")
OUTPUT_LAYERS = ("lm_head", "output", "head")  # the models' output Linear layers, which Muon leaves to AdamW


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
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16 (with a loss scaler)
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    seed: int = 1337  # seeds init, dropout and the batch sampler
    compile: bool = False  # torch.compile the model (faster steps after a slow first one)
    measure_mfu: bool = True  # time a matmul once to report model FLOPs utilisation
    tensorboard: bool = False  # also write the log's numbers as TensorBoard scalars into the run's tensorboard/
    optimizer: str = "adamw"  # adamw | muon (Muon for the hidden matrices, AdamW for the rest)
    muon_momentum: float = 0.95  # Muon's momentum (Nesterov)
    # under torchrun: ddp (every process holds the whole model) | fsdp (each holds a shard of the weights,
    # gradients and optimizer state); in one process there is nothing to share: ignored, with a note
    parallel: str = "ddp"

    def __post_init__(self):
        for name in ("max_steps", "batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval",
                     "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "decay_steps", "checkpoint_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip", "beta1", "beta2"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.lr == 0 or self.min_lr > self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr and lr > 0; got lr={self.lr}, min_lr={self.min_lr}")
        if not (self.beta1 < 1 and self.beta2 < 1):
            raise ValueError(f"AdamW's betas must lie in [0, 1); got beta1={self.beta1}, beta2={self.beta2}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.parallel not in PARALLEL_MODES:
            raise ValueError(f"TrainConfig.parallel must be one of {', '.join(PARALLEL_MODES)}; got {self.parallel!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        check_seed(self.seed, "TrainConfig.seed")
        if not 0 <= self.muon_momentum < 1:
            raise ValueError(f"TrainConfig.muon_momentum must lie in [0, 1); got {self.muon_momentum}")
        if self.optimizer == "muon" and (self.precision == "fp16" or self.parallel == "fsdp"):
            raise ValueError("optimizer 'muon' works with precision fp32 or bf16 and parallel 'ddp' (fp16's loss "
                             "scaler and FSDP's sharded state expect one torch optimizer): change one of them")
        if self.parallel == "fsdp" and self.precision == "fp16":
            raise ValueError("fsdp with fp16 is not supported here (its loss scaler would have to unscale sharded "
                             "gradients): use precision bf16, or ddp")


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


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW that decays matrices of Linear layers only: not norms, biases or embeddings.

    With config.optimizer="muon", the hidden Linear layers' matrices (every Linear but the output
    layer) are updated by Muon instead, and AdamW keeps the rest (`MuonWithAdamW`).
    """
    no_decay, muon = set(), set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            no_decay.add(id(module.weight))
        elif isinstance(module, nn.Linear) and name.rpartition(".")[2] not in OUTPUT_LAYERS:
            muon.add(id(module.weight))
    decay, keep, matrices = [], [], []
    seen = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if config.optimizer == "muon" and id(p) in muon and id(p) not in no_decay:
            matrices.append(p)
        else:
            (keep if p.dim() < 2 or id(p) in no_decay else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": keep, "weight_decay": 0.0}]
    adamw = torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), fused=device.type == "cuda")
    if config.optimizer == "adamw":
        return adamw
    if not matrices:
        raise ValueError(f"optimizer 'muon' updates the matrices of hidden Linear layers, and this "
                         f"{type(model).__name__} has none: use optimizer 'adamw'")
    return MuonWithAdamW(torch.optim.Muon(matrices, lr=config.lr, weight_decay=config.weight_decay,
                                          momentum=config.muon_momentum, adjust_lr_fn="match_rms_adamw"), adamw)


class MuonWithAdamW:
    """Muon (Jordan et al. 2024, "Muon: an optimizer for hidden layers") for the hidden matrices, AdamW
    for everything else, stepped as one optimizer.

    Muon keeps a momentum of each matrix's gradient and steps along its nearest orthogonal matrix
    (five Newton-Schulz iterations): every direction of the update gets the same size, instead of
    the few that dominate a raw gradient. torch.optim.Muon's "match_rms_adamw" scaling (Liu et al.
    2025, "Muon is Scalable for LLM Training") makes its update as large as AdamW's typically is, so
    both share the trainer's learning rate and its schedule.
    """

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.muon.param_groups + self.adamw.param_groups  # the same dicts: setting "lr" reaches both

    @property
    def state(self) -> dict:
        return {**self.muon.state, **self.adamw.state}

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none)
        self.adamw.zero_grad(set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ValueError("this checkpoint's optimizer state is not Muon's and AdamW's: the run was trained with "
                             "another optimizer; resume it with the optimizer it started with")
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """fp16's loss scaler (a no-op for every other precision).

    fp16 has 5 exponent bits: gradients below about 6e-8 become zero. The scaler multiplies the loss
    by a large factor before backward and divides the gradients by it before the update; when that
    overflows (an inf gradient) it skips the update and halves the factor. bf16 has fp32's exponent
    range and needs none of this.
    """
    enabled = autocast_dtype(device, precision) == torch.float16
    return torch.amp.GradScaler(device.type, enabled=enabled)


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
          progress: bool = True, ready: Callable[[], None] | None = None) -> TrainResult:
    """Train `model` on `data`; with a `run`, log metrics and save checkpoints into its folder.

    resume=True continues from the run's newest checkpoint that loads (skipping damaged ones, and
    from step 0 if it has none): weights, optimizer, step, and every random state, so the losses
    logged afterwards equal those of a run that never stopped. The run's writer lock is held for
    the whole call (taken here unless this process holds it already).

    Under torchrun with config.parallel="fsdp" the model is sharded in place (`distributed.shard`);
    without torchrun that setting does nothing and the start event says so.

    `ready`, if given, is called once the checkpoint is loaded and every check has passed, before
    this call writes anything: a caller's own writes (a resume's new step budget in config.json) wait
    for it, so a refused resume changes nothing.
    """
    from tqdm.auto import tqdm

    rank, world = distributed.rank_and_world()
    writes = run is not None and rank == 0
    device = distributed.setup(pick_device(config.device))
    block_size = model.config.block_size
    _check_data(data, block_size)
    peak = peak_flops(device, autocast_dtype(device, config.precision) or torch.float32) if config.measure_mfu else None
    seed_everything(config.seed + rank)
    generator = torch.Generator().manual_seed(config.seed + rank)  # draws every training batch
    model.to(device)
    sharded = config.parallel == "fsdp" and world > 1
    spec = model_spec(model) if sharded and run is not None else None  # sharding changes the model's class
    scaler = make_scaler(device, config.precision)
    locked_here = writes and not run.writing
    if locked_here:
        run.acquire()
    record = _Recorder(run if writes else None, callback)
    try:
        p, note, optimizer_state = Progress(), None, None
        if resume:
            if run is None:
                raise ValueError("resume=True needs the run to resume")
            p, note, optimizer_state = trainer_state.restore(run, model, scaler, generator, rank, world)
            if p.step > config.max_steps:
                raise ValueError(f"run {run.name!r} is at step {p.step}, past max_steps={config.max_steps}: "
                                 f"ask for at least {p.step} steps")
            if p.step == config.max_steps:
                if ready is not None:
                    ready()
                return TrainResult("finished", p.step, p.tokens, p.elapsed, p.last_val, p.best_val, run=run.name)
        if config.parallel == "fsdp" and world == 1:
            note = "; ".join(filter(None, [note, "parallel='fsdp' shards the model over the processes torchrun "
                                                 "starts; this is one process, so it holds the whole model"]))
        train_model = _wrap(model, device, world, config.compile, sharded)
        optimizer = make_optimizer(model, config, device)  # after _wrap: sharding replaces the parameters
        if optimizer_state is not None:
            trainer_state.load_optimizer(model, optimizer, optimizer_state)
        if ready is not None:  # everything is checked: from here on, writing starts
            ready()
        if config.tensorboard and writes:  # after a resume: what the last attempt wrote past its checkpoint goes
            from .tensorboard import EventLog

            record.events = EventLog(run.tensorboard_path, purge_step=p.step + 1 if resume else None)
        tokens_per_step = config.batch_size * config.grad_accum * block_size * world
        meter = _Throughput(model.flops_per_token() if hasattr(model, "flops_per_token") else None, peak)

        def checkpoint(val_loss: float | None) -> None:
            if run is not None:
                trainer_state.save(run, writes, model, optimizer, scaler, generator, config, p, val_loss, spec)

        record({"kind": "event", "event": "resume" if resume else "start", "step": p.step, "tokens": p.tokens,
                "time": p.elapsed, "device": str(device), "params": model.num_params() if hasattr(model, "num_params") else None,
                **({"message": note} if note else {})})
        model.train()
        bar = tqdm(total=config.max_steps, initial=p.step, desc=run.name if run else "training", unit="step",
                   disable=not progress or rank != 0, dynamic_ncols=True)
        attempt_start, elapsed_before = time.perf_counter(), p.elapsed
        status, stop, skipped_in_a_row = "finished", _StopRequest(), 0
        try:
            with stop.installed():
                while p.step < config.max_steps:
                    if distributed.any_true(stop.requested, device):
                        status = "stopped"
                        checkpoint(None)  # at a step boundary: the run resumes exactly where it stopped
                        break
                    lr = lr_at(p.step, config)
                    try:
                        train_loss, grad_norm = _update(train_model, optimizer, scaler, lr, data.train, config,
                                                        generator, device, world)
                    except _NonFinite as bad:
                        _diverged(record, p, bad.what, bad.value, config)
                    skipped_in_a_row = skipped_in_a_row + 1 if not math.isfinite(grad_norm) else 0
                    if skipped_in_a_row > _MAX_SKIPPED:
                        _diverged(record, p, "gradient norm", grad_norm, config)
                    p.step += 1
                    p.tokens += tokens_per_step
                    p.elapsed = elapsed_before + time.perf_counter() - attempt_start
                    meter.add(tokens_per_step)
                    bar.update(1)
                    last = p.step == config.max_steps

                    if p.step % config.log_interval == 0 or last:
                        record(_train_record(p, train_loss, lr, grad_norm, meter))
                        bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{p.last_val:.3f}" if p.last_val else "-")
                    is_eval = p.step % config.eval_interval == 0 or last
                    if is_eval:
                        record(_evaluate(model, data, config, p, device))
                        bar.set_postfix(loss=f"{train_loss:.3f}", val=f"{p.last_val:.3f}")
                        meter.restart()  # evaluation time is not training throughput
                    if p.step % (config.checkpoint_interval or config.eval_interval) == 0 or last:
                        checkpoint(p.last_val if is_eval else None)
            record({"kind": "event", "event": "end", "status": status, "step": p.step, "tokens": p.tokens,
                    "time": round(p.elapsed, 3), "val_loss": p.last_val})
        except KeyboardInterrupt:  # a second interrupt: leave at once, keep the last checkpoint
            record.last_words({"kind": "event", "event": "end", "status": "stopped", "step": p.step,
                               "tokens": p.tokens, "time": round(p.elapsed, 3),
                               "message": "interrupted mid-step; resume from the last checkpoint"})
            raise
        except DiskFull as full:
            record.last_words({"kind": "event", "event": "end", "status": "failed", "step": p.step,
                               "tokens": p.tokens, "time": round(p.elapsed, 3), "message": str(full)})
            raise
        finally:
            bar.close()
        return TrainResult(status, p.step, p.tokens, p.elapsed, p.last_val, p.best_val, record.records,
                           run.name if run else None)
    finally:
        if record.events is not None:
            record.events.close()
        if locked_here:
            run.release()


_MAX_SKIPPED = 25  # fp16: updates in a row the loss scaler may skip (inf gradients) before calling it divergence


def _check_data(data: TrainData, block_size: int) -> None:
    for part, name in ((data.train, "training"), (data.val, "validation")):
        if len(part) <= block_size:
            raise ValueError(f"the {name} data has {len(part)} tokens, not more than the context "
                             f"(block_size={block_size}): use a shorter context or more text")


def _wrap(model: nn.Module, device: torch.device, world: int, compile_model: bool, sharded: bool) -> nn.Module:
    """The module the loop calls: under torchrun DDP around the model, or the model itself sharded in
    place (FSDP); then torch.compile if asked."""
    if sharded:
        model = distributed.shard(model, device)
    elif world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if compile_model else model


class _Recorder:
    """Sends each record to the returned list, the run's metrics log (rank 0 only), its TensorBoard
    event files (when asked for) and the callback.

    A full disk while logging becomes DiskFull with a message that says what to do.
    """

    def __init__(self, run: Run | None, callback: Callable[[dict[str, Any]], None] | None):
        self.run, self.callback, self.records = run, callback, []
        self.events = None  # a tensorboard.EventLog, set by train() when config.tensorboard

    def __call__(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.run is not None:
            try:
                self.run.log(record)
                if self.events is not None:
                    self.events.write(record)
            except OSError as e:
                if not is_disk_full(e):
                    raise
                raise trainer_state.disk_full(self.run, e) from None
        if self.callback is not None:
            self.callback(record)

    def last_words(self, record: dict[str, Any]) -> None:
        """The end event of a run that is going down: written if the disk allows, never raising for it."""
        self.records.append(record)
        if self.run is not None:
            with contextlib.suppress(OSError):
                self.run.log(record)
        if self.callback is not None:
            self.callback(record)


class _Throughput:
    """Tokens per second over the steps since the last train record (evaluations excluded), and MFU."""

    def __init__(self, flops_per_token: float | None, peak: float | None):
        self.flops_per_token, self.peak = flops_per_token, peak
        self.restart()

    def restart(self) -> None:
        self.start, self.tokens = time.perf_counter(), 0

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def take(self) -> tuple[float, float | None]:
        tps = self.tokens / max(time.perf_counter() - self.start, 1e-9)
        self.restart()
        mfu = self.flops_per_token * tps / self.peak if self.peak and self.flops_per_token else None
        return tps, mfu


def _train_record(p: Progress, train_loss: float, lr: float, grad_norm: float, meter: _Throughput) -> dict[str, Any]:
    tps, mfu = meter.take()
    return {"kind": "train", "step": p.step, "tokens": p.tokens, "time": round(p.elapsed, 3),
            "train_loss": train_loss, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": round(tps, 1), "mfu": mfu}


def _evaluate(model: nn.Module, data: TrainData, config: TrainConfig, p: Progress,
              device: torch.device) -> dict[str, Any]:
    """Val loss on the same windows every time; updates `p`'s last and best val loss."""
    p.last_val = evaluate(model, data.val, config.batch_size, model.config.block_size, config.eval_iters, device,
                          config.precision, seed=config.seed + 1)
    p.best_val = p.last_val if p.best_val is None else min(p.best_val, p.last_val)
    record = {"kind": "eval", "step": p.step, "tokens": p.tokens, "time": round(p.elapsed, 3),
              "val_loss": p.last_val, "val_ppl": math.exp(min(p.last_val, 50.0))}
    if data.chars_per_token:
        record["val_bpc"] = p.last_val / math.log(2) / data.chars_per_token
    return record


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


@torch.enable_grad()  # an update needs gradients even when the caller turned them off (torch.no_grad())
def _update(train_model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, lr: float,
            data: np.ndarray, config: TrainConfig, generator: torch.Generator, device: torch.device,
            world: int) -> tuple[float, float]:
    """One optimizer update over `grad_accum` micro-batches: (mean loss, gradient norm before clipping).

    Raises _NonFinite, with nothing applied, when a loss or the gradient norm is NaN or infinite;
    under fp16 an infinite gradient is the loss scaler's business instead (it skips the update and
    lowers the scale) and the norm comes back infinite. Under DDP the loss is averaged over processes
    first, so every process takes the same decision.

    Under FSDP gradients are reduced after every micro-batch, not only the last as under DDP: a
    process accumulates only its shard of them, which is the memory FSDP is for.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    model = getattr(train_model, "module", train_model)  # the model inside a DDP wrapper
    model = getattr(model, "_orig_mod", model)  # ... and inside torch.compile's wrapper
    block_size = model.config.block_size
    loss_sum = 0.0
    for micro in range(config.grad_accum):
        x, y = get_batch(data, config.batch_size, block_size, generator, device)
        # under DDP, gradients are averaged across processes once, on the last micro-batch
        sync = world == 1 or micro == config.grad_accum - 1 or not hasattr(train_model, "no_sync")
        with contextlib.nullcontext() if sync else train_model.no_sync():
            with autocast(device, config.precision):
                loss = train_model(x, y)[1]  # the logits are not kept: (B, T, V) would stay alive a step longer
            shared = distributed.mean(loss)
            if not torch.isfinite(shared):
                optimizer.zero_grad(set_to_none=True)
                raise _NonFinite("loss", shared.item())
            scaler.scale(loss / config.grad_accum).backward()
        loss_sum += shared.item()
    scaler.unscale_(optimizer)  # true gradients before clipping (a no-op without fp16)
    clip = config.grad_clip if config.grad_clip > 0 else float("inf")
    grad_norm = distributed.clip_grad_norm(model.parameters(), clip)  # the global norm, under FSDP too
    if not math.isfinite(grad_norm) and not scaler.is_enabled():
        optimizer.zero_grad(set_to_none=True)
        raise _NonFinite("gradient norm", grad_norm)
    scaler.step(optimizer)  # under fp16: skipped when a gradient is inf or NaN
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / config.grad_accum, grad_norm


def _diverged(record: _Recorder, p: Progress, what: str, value: float, config: TrainConfig):
    message = (f"step {p.step + 1}: the {what} is {value} (not finite); the update was not applied and the last "
               f"checkpoint is kept. Lower the learning rate (now {config.lr:g}), "
               f"{'turn on gradient clipping (grad_clip=1.0)' if config.grad_clip <= 0 else 'clip harder'}, "
               f"{'add warmup steps' if config.warmup_steps < 50 else 'lengthen the warmup'}, "
               "or use fp32 precision; then resume or start again.")
    record({"kind": "event", "event": "end", "status": "failed", "step": p.step, "tokens": p.tokens,
            "time": round(p.elapsed, 3), "message": message})
    raise TrainingDiverged(message)
