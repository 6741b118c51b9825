"""Where tensors live and how fast this machine multiplies matrices.

`pick_device` prefers CUDA, then Apple MPS, then the CPU; an explicit choice always wins.
`autocast` gives bf16 mixed precision on CUDA (when the GPU supports it) and nothing on the
CPU unless asked. `measure_matmul_flops` times a square matmul so MFU figures are measured
against this machine, not a datasheet.
"""
from __future__ import annotations

import contextlib
import os
import random
import time

import numpy as np
import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 on a CUDA GPU that has it, else fp32
DEVICE_TYPES = ("cpu", "cuda", "mps")  # what `pick_device` accepts, besides "auto" (and "cuda:N")


def pick_device(preferred: str | None = None) -> torch.device:
    """The device to train on: `preferred` if given ('cpu', 'cuda', 'cuda:1', 'mps'), else the best found."""
    if preferred not in (None, "", "auto"):
        try:
            device = torch.device(preferred)
        except (RuntimeError, TypeError):
            device = None
        if device is None or device.type not in DEVICE_TYPES:
            raise ValueError(f"unknown device {preferred!r}; use auto, {', '.join(DEVICE_TYPES)} or cuda:N")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {preferred!r} asked for, but torch sees no CUDA GPU; use 'cpu' or 'auto'")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {preferred!r} asked for, but Apple MPS is not available; use 'cpu' or 'auto'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype autocast should use: None means full fp32.

    precision: 'auto' (bf16 on a CUDA GPU that supports it, else fp32), 'fp32', 'bf16', 'fp16'.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, precision: str = "auto"):
    """A context manager running the forward pass in mixed precision where that is asked or sensible."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


MAX_SEED = 2**32 - 1  # NumPy's limit; torch takes more, but one range for every seed is easier to say


def check_seed(seed: int, name: str = "seed") -> None:
    """A seed is a whole number from 0 to MAX_SEED; anything else is a ValueError that says so (a seed
    past 2**64 would otherwise fail deep inside torch with "Overflow when unpacking long long")."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"{name} must be a whole number from 0 to {MAX_SEED:,}, got {seed!r}")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a fresh CPU generator with that seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run a block on `n` torch CPU threads, then restore the number before it (None: leave it).

    Small models are a chain of tiny operations: a second thread gains little, and on a busy 2-core
    machine two threads that wait on each other were measured 5-35x slower than one. Use this around
    such work rather than changing the whole process (or notebook kernel) for good.
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_matmul_flops(
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    size: int | None = None,
    min_seconds: float = 0.5,
) -> float:
    """Measured FLOP/s of an n x n by n x n matmul on `device` in `dtype` (2 n^3 FLOPs each)."""
    device = pick_device(device if isinstance(device, str) or device is None else str(device))
    if size is None:
        size = 8192 if device.type == "cuda" else 1024
    g = torch.Generator().manual_seed(0)  # own generator: measuring must not move the global RNG
    a = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=g).to(device=device, dtype=dtype)
    for _ in range(2):  # warm-up: kernels chosen, caches filled
        a @ b
    synchronize(device)
    runs, start = 0, time.perf_counter()
    while True:
        a @ b
        runs += 1
        if runs % 2 == 0:
            synchronize(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
    return 2 * size**3 * runs / elapsed


_PEAK_CACHE: dict[tuple[str, str], float] = {}


def peak_flops(device: torch.device, dtype: torch.dtype | None = None) -> float:
    """This machine's measured matmul FLOP/s for `dtype`, measured once per process (on the CPU,
    once per number of torch threads: one thread's peak is not two threads' peak).

    `LESSON_PEAK_FLOPS` overrides the measurement (a number, e.g. 1.7e11).
    """
    if os.environ.get("LESSON_PEAK_FLOPS"):
        return float(os.environ["LESSON_PEAK_FLOPS"])
    dtype = dtype or torch.float32
    threads = torch.get_num_threads() if torch.device(device).type == "cpu" else None
    key = (str(device), str(dtype), threads)
    if key not in _PEAK_CACHE:
        # the best of a few short tries: a moment when another process holds a core reads low,
        # and a peak read low would put MFU above 100%
        _PEAK_CACHE[key] = max(measure_matmul_flops(device, dtype, min_seconds=0.15) for _ in range(3))
    return _PEAK_CACHE[key]


def describe(device: torch.device) -> str:
    """A one-line description of the device, for logs and notebooks."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"
