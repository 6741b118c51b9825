"""Where the time of a training step goes, and what compile and bf16 change about it.

`torch.profiler` records every operator a step runs, thousands of them, named after kernels
(`aten::addmm`, `aten::_softmax_backward_data`): it says *what* ran, not which part of the model
it ran for. `profile_training` adds that: it labels the regions of a GPT with
`torch.profiler.record_function` ranges, forward and backward, and sums them per category:

    data                  get_batch: sampling windows and copying them to the device
    embedding and head    token and position embeddings, the final norm, the output head, the loss
    attention             each block's attention norm and self-attention
    MLP                   each block's MLP norm and feed-forward
    optimizer             gradient clipping, the optimizer's update, zeroing the gradients
    other                 what is left: the residual adds, the autograd engine between the regions

How the ranges are placed, without touching the model's code. A region runs from a first module
to a last one (an attention region: `attn_norm` to `attn`). In the forward pass it opens at the
first module's forward pre-hook and closes at the last one's forward hook. The backward pass runs
the other way: it opens at the last module's full backward pre-hook (the gradient of its output
has arrived) and closes at the first module's full backward hook (the gradient of its input is
done). The embeddings take integer ids, which have no gradient: there PyTorch fires the full
backward hook as soon as the output's gradient arrives, *before* the embedding's own backward
runs, so that region closes instead when the token embedding's weight has its gradient
(`register_post_accumulate_grad_hook`; the weight is shared with the output head, so that comes
last). The regions follow each other and never nest; `profile_training` checks it, so no time
is counted twice. On a GPU the ranges synchronize the device at each edge, so that they measure
the kernels and not only their launch.

Times are clock readings: they vary with the machine and with whatever else it is doing. The work
does not. The profiler also records the FLOPs of every matrix multiply (`with_flops`), and
`StepProfile.flops` sums them per category, forward and backward, as `StepProfile.table` sums the
time: a check of the labelling that no busy machine can fail.

`time_training_steps` times whole steps instead (no profiler, no hooks) in several settings,
eager, `torch.compile`d or under bf16 autocast, taking turns: the median of several steps after
a warm-up, the first step (where compiling happens) reported on its own.
"""
from __future__ import annotations

import contextlib
import copy
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, record_function

from .data import get_batch
from .device import autocast, autocast_dtype, pick_device, synchronize
from .training import TrainConfig, lr_at, make_optimizer

CATEGORIES = ("data", "embedding and head", "attention", "MLP", "optimizer", "other")
STEP_LABEL = "training step"  # the range around each profiled step
# the operators whose FLOPs StepProfile.flops adds up: matrix products, 2·m·k·n FLOPs each (fused kernels
# such as scaled_dot_product_attention have no FLOP count in the profiler and are left out)
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


_NO_BACKWARD = ("data", "optimizer")  # categories timed as one range each


def label(category: str, direction: str | None = None) -> str:
    """The name of a category's ranges in the profiler's tables and the trace: 'attention (backward)'."""
    return category if direction is None else f"{category} ({direction})"


# every range name a profiled step has besides STEP_LABEL: 'data', 'optimizer', 'attention (forward)', ...
LABELS = tuple(label(c) for c in _NO_BACKWARD) + tuple(
    label(c, d) for c in CATEGORIES if c not in (*_NO_BACKWARD, "other") for d in ("forward", "backward"))


class _Ranges:
    """Opens and closes named record_function ranges; at most one range of each name open at a time."""

    def __init__(self, device: torch.device):
        self.device, self.open = device, {}

    def enter(self, name: str) -> None:
        if name in self.open:
            raise RuntimeError(f"range {name!r} opened twice: two regions of the model overlap")
        synchronize(self.device)  # on a GPU: the work before belongs to the range before
        self.open[name] = record_function(name)
        self.open[name].__enter__()

    def exit(self, name: str) -> None:
        if name in self.open:
            synchronize(self.device)
            self.open.pop(name).__exit__(None, None, None)

    def exit_all(self) -> None:
        for name in list(self.open):
            self.exit(name)


def _regions(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """(category, first module, last module) of each region of a GPT, in forward order."""
    parts = ("token_embedding", "position_embedding", "dropout", "blocks", "final_norm", "lm_head")
    if not all(hasattr(model, part) for part in parts):
        raise ValueError(f"profile_training attributes time to the parts of a GPT (lesson_lib.models.GPT); "
                         f"{type(model).__name__} has no {', '.join(p for p in parts if not hasattr(model, p))}")
    if getattr(model.config, "activation_checkpointing", 0):
        raise ValueError("profile a GPT with activation_checkpointing=0: recomputed blocks run their forward "
                         "pass again inside the backward pass, where the regions would nest")
    regions = [("embedding and head", model.token_embedding, model.dropout)]
    for block in model.blocks:
        regions += [("attention", block.attn_norm, block.attn), ("MLP", block.mlp_norm, block.mlp)]
    return regions + [("embedding and head", model.final_norm, model)]


def _on_loss(hook):
    """A forward hook on the whole model that calls `hook` when the backward pass reaches the loss.

    (A full backward hook on the model itself would also fire there, but with a warning on every
    step: the model's inputs, integer ids, have no gradient.)
    """
    def register(module, inputs, output):
        loss = output[1]
        if loss is not None and loss.requires_grad:
            loss.register_hook(lambda grad: hook())
    return register


@contextlib.contextmanager
def label_regions(model: nn.Module, device: torch.device | None = None):
    """Inside this block, every forward and backward pass of the GPT `model` marks its regions with
    profiler ranges named `label(category, "forward" | "backward")`. All hooks are removed on exit."""
    regions = _regions(model)
    device = device or next(model.parameters()).device
    ranges = _Ranges(device)
    handles = []

    def on(category, direction, action):
        name = label(category, direction)
        return (lambda *_: ranges.enter(name)) if action == "enter" else (lambda *_: ranges.exit(name))

    for category, first, last in regions:
        handles += [first.register_forward_pre_hook(on(category, "forward", "enter")),
                    last.register_forward_hook(on(category, "forward", "exit"))]
        if last is model:  # the loss: its backward starts the whole backward pass
            handles.append(model.register_forward_hook(_on_loss(on(category, "backward", "enter"))))
        else:
            handles.append(last.register_full_backward_pre_hook(on(category, "backward", "enter")))
        if first is model.token_embedding:  # integer ids in: its backward ends with its weight's gradient
            handles.append(first.weight.register_post_accumulate_grad_hook(on(category, "backward", "exit")))
        else:
            handles.append(first.register_full_backward_hook(on(category, "backward", "exit")))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        ranges.exit_all()  # a step that failed half-way leaves nothing open


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, number: int, tokens: np.ndarray,
          config: TrainConfig, generator: torch.Generator, device: torch.device, precision: str) -> float:
    """Training step `number` (0-based) as the trainer takes it (learning rate from the schedule, no
    accumulation), its data and optimizer parts labelled; returns its loss."""
    for group in optimizer.param_groups:
        group["lr"] = lr_at(number, config)
    block_size = getattr(model, "_orig_mod", model).config.block_size
    with record_function(label("data")):
        x, y = get_batch(tokens, config.batch_size, block_size, generator, device)
        synchronize(device)
    with autocast(device, precision):
        loss = model(x, y)[1]
    loss.backward()
    with record_function(label("optimizer")):
        synchronize(device)
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
    return loss.item()


def _check_counts(steps: int, warmup: int, least_warmup: int = 0) -> None:
    for name, value, least in (("steps", steps, 1), ("warmup", warmup, least_warmup)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be a whole number of at least {least}, got {value!r}")


@dataclass
class StepProfile:
    """What `profile_training` measured: time and matmul FLOPs per category, and the profiler to look further."""

    table: pd.DataFrame  # category, forward ms, backward ms, ms per step, share (of the profiled step)
    step_ms: float  # mean wall time of a profiled step (profiler and hooks included)
    steps: int
    # category, forward FLOPs, backward FLOPs, FLOPs per step, matmuls per step: the MATMULS inside each
    # category's ranges ("other": the ones outside every range); no clock involved
    flops: pd.DataFrame
    prof: torch.profiler.profile = field(repr=False)

    def export_chrome_trace(self, path: str | Path) -> Path:
        """The timeline as a Chrome trace: open it in https://ui.perfetto.dev or chrome://tracing."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.prof.export_chrome_trace(str(path))
        return path


def profile_training(model: nn.Module, tokens: np.ndarray, config: TrainConfig | None = None, steps: int = 5,
                     warmup: int = 2) -> StepProfile:
    """Profile `steps` training steps of the GPT `model` on `tokens` (after `warmup` unprofiled ones) and
    attribute their time to CATEGORIES. The model really trains: its weights change, as in `train`.

    `config` gives the batch size, learning rate, clipping, precision, device and seed (one step, no
    accumulation); its max_steps is not used.
    """
    _check_counts(steps, warmup)
    config = config or TrainConfig()
    device = pick_device(config.device)
    model.to(device).train()
    _regions(model)  # a model that is no GPT fails here, before any step
    optimizer = make_optimizer(model, config, device)
    generator = torch.Generator().manual_seed(config.seed)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with label_regions(model, device):
        for number in range(warmup):  # first steps allocate memory and pick kernels
            _step(model, optimizer, number, tokens, config, generator, device, config.precision)
        with torch.profiler.profile(activities=activities, with_flops=True) as prof:
            for number in range(warmup, warmup + steps):
                with record_function(STEP_LABEL):
                    _step(model, optimizer, number, tokens, config, generator, device, config.precision)
    events = prof.events()
    return StepProfile(_attribute(events, steps), _step_ms(events, steps), steps, _count_flops(events, steps), prof)


def _labelled(events) -> list:
    return [e for e in events if e.name in LABELS and e.device_type == torch.autograd.DeviceType.CPU]


def _step_ms(events, steps: int) -> float:
    spans = [e.time_range.elapsed_us() for e in events if e.name == STEP_LABEL
             and e.device_type == torch.autograd.DeviceType.CPU]
    if len(spans) != steps:
        raise RuntimeError(f"the profiler holds {len(spans)} '{STEP_LABEL}' ranges for {steps} steps")
    return sum(spans) / steps / 1e3


def overlap_us(events) -> float:
    """Microseconds during which two category ranges were open at once (0 when none nest or overlap)."""
    spans = sorted((e.time_range.start, e.time_range.end) for e in _labelled(events))
    overlap, reach = 0.0, -float("inf")
    for start, end in spans:
        overlap += max(0.0, min(end, reach) - start)
        reach = max(reach, end)
    return overlap


def _attribute(events, steps: int) -> pd.DataFrame:
    """ms per step of each category, forward and backward apart where a category has both."""
    if overlap_us(events) > 1.0:
        raise RuntimeError(f"category ranges overlap by {overlap_us(events):.0f} us: time would be counted twice")
    per_name = {}
    for event in _labelled(events):
        per_name[event.name] = per_name.get(event.name, 0.0) + event.time_range.elapsed_us() / steps / 1e3
    rows = []
    for category in CATEGORIES[:-1]:
        if category in _NO_BACKWARD:
            rows.append((category, np.nan, np.nan, per_name.get(label(category), 0.0)))
        else:
            forward, backward = (per_name.get(label(category, d), 0.0) for d in ("forward", "backward"))
            rows.append((category, forward, backward, forward + backward))
    step_ms = _step_ms(events, steps)
    rows.append(("other", np.nan, np.nan, step_ms - sum(row[3] for row in rows)))
    table = pd.DataFrame(rows, columns=["category", "forward ms", "backward ms", "ms per step"])
    table["share"] = table["ms per step"] / step_ms
    return table


def _range_of(event) -> str | None:
    """The category range an operator ran inside (ranges never nest), or None."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in LABELS:
            return parent.name
        parent = parent.cpu_parent
    return None


def _count_flops(events, steps: int) -> pd.DataFrame:
    """FLOPs and calls per step of the MATMULS in each category's ranges, forward and backward apart."""
    flops, calls = {}, {}
    for event in events:
        if event.name in MATMULS and event.device_type == torch.autograd.DeviceType.CPU:
            name = _range_of(event) or "other"
            flops[name] = flops.get(name, 0) + event.flops
            calls[name] = calls.get(name, 0) + 1
    rows = []
    for category in CATEGORIES:
        if category in (*_NO_BACKWARD, "other"):
            forward = backward = np.nan
            total, count = flops.get(category, 0), calls.get(category, 0)
        else:
            forward, backward = (flops.get(label(category, d), 0) / steps for d in ("forward", "backward"))
            total = (forward + backward) * steps
            count = sum(calls.get(label(category, d), 0) for d in ("forward", "backward"))
        rows.append((category, forward, backward, total / steps, count / steps))
    return pd.DataFrame(rows, columns=["category", "forward FLOPs", "backward FLOPs", "FLOPs per step",
                                       "matmuls per step"])


# ------------------------------------------------------------------ whole steps, timed


@dataclass
class StepTiming:
    """Wall-clock times of training steps of one setting."""

    name: str
    step_ms: float  # median of the timed steps
    low_ms: float  # fastest timed step
    high_ms: float  # slowest timed step
    first_step_s: float  # the first step: compiling happens here
    losses: list[float]  # of every step, warm-up included, in order

    @property
    def setup_s(self) -> float:
        """What the first step cost beyond an ordinary one (compiling, for a compiled model)."""
        return self.first_step_s - self.step_ms / 1e3


SETTING_OPTIONS = {"compile": False, "compile_cache": True, "precision": None}  # a setting's options, defaults


def time_training_steps(model: nn.Module, tokens: np.ndarray, config: TrainConfig | None = None,
                        settings: Mapping[str, Mapping[str, Any]] | None = None, steps: int = 10,
                        warmup: int = 3) -> dict[str, StepTiming]:
    """Time `steps` training steps of each setting, after `warmup` untimed ones; name -> StepTiming.

    A setting is a dict of SETTING_OPTIONS: `precision` overrides config.precision ('fp32', 'bf16', ...);
    `compile=True` runs the model through `torch.compile`, which compiles during the first step;
    Inductor keeps what it compiled in caches (on disk too, for later processes), and
    `compile_cache=False` turns them off for that compile, to measure what compiling costs on a
    machine that never did. Each setting trains its own copy of `model` (which is not changed) from the
    same weights on the same batches (seeded by config.seed), so their losses can be compared step for
    step. The settings take turns, one step each, so that a machine that gets busier or quieter
    meanwhile slows them all alike.

    Two compiled settings of one precision would share the graph the first of them compiled (the
    second's first step would not compile at all), so they are refused: time them in separate calls.
    """
    _check_counts(steps, warmup, least_warmup=1)  # the first step, where compiling happens, is never timed
    config = config or TrainConfig()
    device = pick_device(config.device)
    runners = {}
    for name, options in (settings or {"eager": {}}).items():
        unknown = sorted(set(options) - set(SETTING_OPTIONS))
        if unknown:
            raise ValueError(f"setting {name!r} has unknown option(s) {unknown}; valid: {', '.join(SETTING_OPTIONS)}")
        options = {**SETTING_OPTIONS, **options, "precision": options.get("precision") or config.precision}
        autocast_dtype(device, options["precision"])  # an unknown precision fails here
        copied = copy.deepcopy(model).to(device).train()
        runners[name] = (options, torch.compile(copied) if options["compile"] else copied,
                         make_optimizer(copied, config, device), torch.Generator().manual_seed(config.seed))
    compiled = [options["precision"] for options, *_ in runners.values() if options["compile"]]
    if len(set(compiled)) < len(compiled):
        raise ValueError("two compiled settings of the same precision would share one compiled graph, and only the "
                         "first would pay for compiling: time them in separate calls")
    if compiled:
        torch.compiler.reset()  # compile from the code, not from graphs an earlier call left in this process
    seconds = {name: [] for name in runners}
    losses = {name: [] for name in runners}
    for number in range(warmup + steps):
        for name, (options, stepped, optimizer, generator) in runners.items():
            first_compile = options["compile"] and number == 0
            with _compile_caches(options["compile_cache"]) if first_compile else contextlib.nullcontext():
                synchronize(device)
                start = time.perf_counter()
                losses[name].append(_step(stepped, optimizer, number, tokens, config, generator, device,
                                          options["precision"]))
                seconds[name].append(time.perf_counter() - start)
    timings = {}
    for name in runners:
        timed = [s * 1e3 for s in seconds[name][warmup:]]
        timings[name] = StepTiming(name, statistics.median(timed), min(timed), max(timed), seconds[name][0],
                                   losses[name])
    return timings


@contextlib.contextmanager
def _compile_caches(on: bool):
    with torch.compiler.config.patch(force_disable_caches=not on), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*force_disable_caches")  # what we asked for
        yield


def cpu_bf16_flags() -> dict[str, bool] | None:
    """Whether this CPU has bf16 arithmetic: the avx512_bf16 and amx_bf16 flags of /proc/cpuinfo
    (None where that file does not exist, e.g. macOS or Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return {flag: flag in flags for flag in ("avx512_bf16", "amx_bf16")}
