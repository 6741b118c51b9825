"""Chapter 8: reference solutions, and wrong answers the checks must catch."""
import math

import numpy as np


def training_flops(n_params, tokens):
    return 6 * n_params * tokens  # forward 2·N·D, backward about twice that


def adam_memory(n_params):
    return 4 * (n_params + n_params + 2 * n_params)  # float32 weights, gradients, and two moments


def lr_schedule(step, lr, min_lr, warmup, max_steps):
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= max_steps:
        return min_lr
    progress = (step - warmup) / max(1, max_steps - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def power_law_fit(compute, loss):
    b, log_a = np.polyfit(np.log(compute), np.log(loss), 1)
    return float(np.exp(log_a)), float(b)


SOLUTIONS = {"ch08.training-flops": training_flops, "ch08.adam-memory": adam_memory, "ch08.lr-schedule": lr_schedule,
             "ch08.power-law-fit": power_law_fit}


def _warmup_from_zero(step, lr, min_lr, warmup, max_steps):
    return lr * step / warmup if step < warmup else lr_schedule(step, lr, min_lr, warmup, max_steps)


def _linear_fit(compute, loss):
    b, a = np.polyfit(compute, loss, 1)
    return float(a), float(b)


WRONG = [("ch08.training-flops", lambda n, d: 2 * n * d, "forward pass only"),
         ("ch08.adam-memory", lambda n: 8 * n, "two moments"),
         ("ch08.lr-schedule", _warmup_from_zero, "step 0 is wasted"),
         ("ch08.power-law-fit", _linear_fit, "log L against log C")]
