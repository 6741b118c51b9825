"""Chapter 8's exercises: the compute of a training run, the memory of its optimizer, the learning-rate
schedule, and a power-law fit."""
from __future__ import annotations

import numpy as np

from .core import Wrong, as_number, describe, expect_close, exercise


@exercise("ch08.training-flops", "the compute of a training run: 6·N·D", level=1)
def _training_flops(answer, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        n, d = float(rng.integers(10**5, 10**9)), float(rng.integers(10**6, 10**10))
        got = as_number(answer(n, d), "the FLOPs")
        if abs(got - 2 * n * d) <= 1e-9 * n * d:
            raise Wrong("2·N·D is the forward pass only: the backward pass costs about twice the forward")
        expect_close(got, 6 * n * d, "the FLOPs", rtol=1e-9, atol=0)


@exercise("ch08.adam-memory", "the bytes a model and its AdamW state take", level=2)
def _adam_memory(answer, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        n = int(rng.integers(10**4, 10**9))
        got = as_number(answer(n), "the number of bytes")
        if got in (8 * n, 12 * n):
            raise Wrong(f"{got // n} bytes per parameter: count the weights, their gradients, and AdamW's two "
                        "moments, each a float32")
        if got != 16 * n:
            raise Wrong(f"for {n:,} parameters you gave {got:,} bytes")


@exercise("ch08.lr-schedule", "linear warmup, then cosine decay", level=2)
def _lr_schedule(answer, seed):
    from ..training import TrainConfig, lr_at

    rng = np.random.default_rng(seed)
    warmup, max_steps = int(rng.integers(5, 50)), int(rng.integers(200, 1000))
    lr = float(rng.uniform(1e-4, 1e-2))
    min_lr = lr * float(rng.uniform(0, 0.3))
    config = TrainConfig(max_steps=max_steps, warmup_steps=warmup, lr=lr, min_lr=min_lr)
    steps = [0, 1, warmup - 1, warmup, warmup + 1, (warmup + max_steps) // 2, max_steps - 1, max_steps]
    got = [as_number(answer(step, lr, min_lr, warmup, max_steps), f"the learning rate at step {step}")
           for step in steps]
    expected = [lr_at(step, config) for step in steps]
    if abs(got[0]) < 1e-15:
        raise Wrong("the first step's learning rate is 0, so step 0 is wasted: warm up as lr * (step + 1) / warmup")
    for step, a, b in zip(steps, got, expected):
        expect_close(a, b, f"the learning rate at step {step} (warmup {warmup}, {max_steps} steps)", rtol=1e-9,
                     atol=1e-15)


@exercise("ch08.power-law-fit", "fitting a power law L = a·C^b", level=3)
def _power_law(answer, seed):
    rng = np.random.default_rng(seed)
    compute = np.logspace(12, 18, 7)
    a, b = float(rng.uniform(5, 50)), -float(rng.uniform(0.03, 0.2))
    loss = a * compute**b * np.exp(rng.normal(0, 0.01, size=compute.size))
    slope, intercept = np.polyfit(np.log(compute), np.log(loss), 1)
    got = answer(compute.copy(), loss.copy())
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Wrong(f"return (a, b); got {describe(got)}")
    got = [as_number(got[0], "the coefficient a"), as_number(got[1], "the exponent b")]
    if abs(got[1] - slope) > 1e-6 and abs(got[1]) < 1e-3:
        raise Wrong("the exponent is near 0: a straight line through the raw values cannot find it; fit "
                    "log L against log C")
    expect_close(got[1], slope, "the exponent b", rtol=1e-6, atol=1e-9)
    expect_close(got[0], np.exp(intercept), "the coefficient a", rtol=1e-6, atol=1e-9)
