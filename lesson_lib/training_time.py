"""How long will training take? FLOPs divided by the FLOP/s a training run achieves (chapter 9).

- `training_time`: seconds = FLOPs / (devices x peak FLOP/s x MFU);
- `calibrate`: the MFU of a spec's model, measured over a few timed steps of the trainer;
- `count_run`: what a run of a spec computes (FLOPs, tokens, evaluation passes), from its shape alone;
- `predict_run_time`: a whole run of a spec, its training steps and its evaluation passes, in seconds.

The FLOPs come from `scaling` (6·N·D and the GPT's own count), the peak from `device.peak_flops`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .config import from_dict
from .device import seed_everything
from .models import build_model, model_config
from .training import TrainConfig, TrainData, evaluate, train
def training_time(flops: float, peak: float, mfu: float, devices: int = 1) -> float:
    """Seconds that `flops` FLOPs take: FLOPs / (devices x peak FLOP/s x MFU).

    `peak` is one device's FLOP/s (measured: `device.peak_flops`), `mfu` the fraction of it the
    training achieves. (A calibrated MFU above 1 says the peak was read low, on a busy machine; the
    product peak x MFU, what the prediction uses, is still the measured rate.) The article's §9.1
    divides "dataset size (GB) x model complexity (GFLOPS)" by "computing power (GFLOPS)", which
    leaves gigabytes, not seconds; FLOPs over FLOP/s is a time.
    """
    if not (flops >= 0 and math.isfinite(flops)):
        raise ValueError(f"flops must be a finite number >= 0, got {flops}")
    if not (peak > 0 and math.isfinite(peak)):
        raise ValueError(f"peak must be a positive number of FLOP/s, got {peak}")
    if not (mfu > 0 and math.isfinite(mfu)):
        raise ValueError(f"mfu is the fraction of the peak a run achieves (0.4 for 40%), got {mfu}")
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a whole number of at least 1, got {devices!r}")
    return flops / (devices * peak * mfu)


def evaluation_count(max_steps: int, eval_interval: int) -> int:
    """How often the trainer evaluates in `max_steps` steps: every `eval_interval` steps, and at the last."""
    return max_steps // eval_interval + (1 if max_steps % eval_interval else 0)


def _spec_parts(spec: Mapping[str, Any], vocab_size: int) -> tuple[float, TrainConfig, int]:
    """(training FLOPs per token, TrainConfig, context length) of a run spec, its vocabulary set."""
    model = {**spec["model"], "vocab_size": vocab_size}
    with torch.device("meta"):  # shapes only: no memory, no initialisation work
        per_token = build_model(model).flops_per_token()
    return per_token, from_dict(TrainConfig, spec.get("train") or {}), model_config(model).block_size


@dataclass(frozen=True)
class Calibration:
    """What a few timed steps of a model measured on this machine."""

    mfu: float  # training: model FLOPs per second / peak
    eval_mfu: float  # evaluation (forward passes only, no gradients): forward FLOPs per second / peak
    seconds_per_step: float
    seconds_per_eval_batch: float
    peak: float  # the FLOP/s both are measured against


def calibrate(spec: Mapping[str, Any], vocab_size: int, data: TrainData, peak: float, steps: int = 20,
              skip: int = 5, eval_batches: int = 5) -> Calibration:
    """Measure the MFU of a spec's model: train it with the trainer (no run folder) for `skip` + `steps`
    steps, time each of the last `steps`, then time `eval_batches` evaluation batches.

    The first steps are left out: they include one-off work (memory allocation, the optimizer's state
    created at the first update). A step's time is the median of the timed ones, so that a moment
    when another program takes the CPU does not set the pace of the whole run. The model, batch,
    precision and device are the spec's, so the MFU holds for that shape on this machine, under the
    same CPU threads (wrap the call in `device.cpu_threads`); another shape's MFU can differ, and
    only a measurement tells by how much.
    """
    if steps < 1 or skip < 0 or eval_batches < 1:
        raise ValueError(f"need steps >= 1, skip >= 0, eval_batches >= 1; got {steps}, {skip}, {eval_batches}")
    per_token, config, block = _spec_parts(spec, vocab_size)
    total = skip + steps
    config = dataclasses.replace(config, max_steps=total, eval_interval=total, eval_iters=1, log_interval=1,
                                 measure_mfu=False, warmup_steps=min(config.warmup_steps, total))
    seed_everything(config.seed)
    model = build_model({**spec["model"], "vocab_size": vocab_size})
    ends = []  # the clock when each step's record arrives (the log's own times are rounded to ms)

    def note_time(record: dict) -> None:
        if record["kind"] == "train":
            ends.append(time.perf_counter())

    train(model, data, config, callback=note_time, progress=False)
    seconds_per_step = float(np.median(np.diff(ends)[max(skip - 1, 0):]))  # the steps after the skipped ones
    tokens_per_step = config.batch_size * config.grad_accum * block
    device = next(model.parameters()).device
    evaluate(model, data.val, config.batch_size, block, 1, device, config.precision)  # warm-up
    start = time.perf_counter()
    evaluate(model, data.val, config.batch_size, block, eval_batches, device, config.precision)
    seconds_per_eval_batch = (time.perf_counter() - start) / eval_batches
    return Calibration(mfu=per_token * tokens_per_step / seconds_per_step / peak,
                       eval_mfu=per_token / 3 * config.batch_size * block / seconds_per_eval_batch / peak,
                       seconds_per_step=seconds_per_step, seconds_per_eval_batch=seconds_per_eval_batch, peak=peak)


@dataclass(frozen=True)
class RunCount:
    """What a run of a spec computes, counted from its shape alone: no clock, no MFU."""

    steps: int
    train_tokens: int  # steps x batch x accumulation x context (x devices)
    train_flops: float  # FLOPs per token x train_tokens
    evaluations: int
    eval_flops: float  # forward FLOPs (a third of training's per token) of every evaluation batch


def count_run(spec: Mapping[str, Any], vocab_size: int, devices: int = 1, steps: int | None = None) -> RunCount:
    """The FLOPs of a run of `spec` (a preset's shape) on `devices` devices, and its evaluation passes.

    Training: FLOPs per token (the model's count: 6 N plus attention) x batch x accumulation x
    context x steps (x devices: data parallel, each device its own batch). Evaluation: the trainer's
    `evaluation_count` passes of `eval_iters` batches, forward only (2 of the 6 FLOPs per weight).
    `steps` overrides the spec's max_steps.
    """
    per_token, config, block = _spec_parts(spec, vocab_size)
    steps = config.max_steps if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number of at least 1, got {steps!r}")
    train_tokens = steps * config.batch_size * config.grad_accum * block * devices
    evaluations = evaluation_count(steps, config.eval_interval)
    eval_tokens = evaluations * config.eval_iters * config.batch_size * block * devices
    return RunCount(steps, train_tokens, per_token * train_tokens, evaluations, per_token / 3 * eval_tokens)


@dataclass(frozen=True)
class RunTime:
    """A run's predicted wall time, term by term."""

    steps: int
    train_flops: float  # FLOPs per token x tokens of every step
    evaluations: int
    eval_flops: float  # forward FLOPs (a third of training's per token) of every evaluation batch
    train_s: float
    eval_s: float
    overhead_s: float  # what no FLOP count sees: reading and encoding the text, checkpoints (given, measured)

    @property
    def total_s(self) -> float:
        return self.train_s + self.eval_s + self.overhead_s


def predict_run_time(spec: Mapping[str, Any], vocab_size: int, peak: float, mfu: float,
                     eval_mfu: float | None = None, overhead_s: float = 0.0, devices: int = 1,
                     steps: int | None = None) -> RunTime:
    """The wall time of a run of `spec` (a preset's shape) on `devices` devices of `peak` FLOP/s each.

    The FLOPs are `count_run`'s: training at `mfu`, evaluation at `eval_mfu` (default: `mfu`).
    `steps` overrides the spec's max_steps. The prediction is only as good as the MFU: it comes
    from a measurement (`calibrate`), not from the formula.
    """
    count = count_run(spec, vocab_size, devices, steps)
    return RunTime(count.steps, count.train_flops, count.evaluations, count.eval_flops,
                   training_time(count.train_flops, peak, mfu, devices),
                   training_time(count.eval_flops, peak, eval_mfu or mfu, devices) if count.eval_flops else 0.0,
                   overhead_s)
