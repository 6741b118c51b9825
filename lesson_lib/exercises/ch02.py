"""Chapter 2's exercises: the global gradient norm, clipping by hand, and the bare loop written out."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .core import Wrong, as_number, describe, expect_close, expect_shape, exercise


def _gradients(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) * scale
            for shape, scale in (((8, 5), 1.0), ((5,), 3.0), ((3, 4, 2), 0.5))]


@exercise("ch02.global-grad-norm", "the global gradient norm", level=1)
def _global_norm(answer, seed):
    grads = _gradients(seed)
    expected = torch.cat([g.flatten() for g in grads]).norm().item()
    got = as_number(answer([g.clone() for g in grads]), "the global norm")
    if abs(got - sum(g.norm().item() for g in grads)) < 1e-9:
        raise Wrong("that adds up the norms of the tensors; the global norm is the norm of all the gradients "
                    "taken as one vector")
    if abs(got - expected**2) < 1e-6 * expected**2:
        raise Wrong("that is the squared norm: take its square root")
    expect_close(got, expected, "the global norm", rtol=1e-9, atol=1e-9)


@exercise("ch02.clip-gradients", "clipping the global gradient norm, by hand", level=2)
def _clip(answer, seed):
    for max_norm in (0.5, 1e9):  # clipped, and left alone
        grads = _gradients(seed)
        reference = [nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(reference, grads):
            p.grad = g.clone()
        nn.utils.clip_grad_norm_(reference, max_norm)
        got = answer([g.clone() for g in grads], max_norm)
        if not isinstance(got, (list, tuple)) or len(got) != len(grads):
            raise Wrong(f"return the list of {len(grads)} clipped gradients, in order; got {describe(got)}")
        shaped = [expect_shape(a, tuple(g.shape), f"clipped gradient {i} (max_norm={max_norm:g})")
                  for i, (a, g) in enumerate(zip(got, grads))]
        per_tensor = [g * min(1.0, max_norm / (g.norm().item() + 1e-6)) for g in grads]
        if max_norm < 1 and all(torch.allclose(a, b) for a, b in zip(shaped, per_tensor)):
            raise Wrong("each tensor was clipped on its own: scale all of them by one factor, from the global norm, "
                        "so the direction of the whole gradient is kept")
        for i, (a, p) in enumerate(zip(got, reference)):
            expect_close(a, p.grad, f"clipped gradient {i} (max_norm={max_norm:g})", rtol=1e-5, atol=1e-8)


def _tiny_problem(seed: int):
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g)) for _ in range(6)]

    def make_model():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

    return make_model, batches


def _reference_loop(model, batches, lr, max_norm):
    losses = []
    for x, y in batches:
        loss = nn.functional.mse_loss(model(x), y)
        model.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        losses.append(loss.item())
    return losses


@exercise("ch02.loop-with-clipping", "the bare training loop, with gradient clipping added", level=3)
def _loop(answer, seed):
    make_model, batches = _tiny_problem(seed)
    expected = _reference_loop(make_model(), batches, 0.1, 0.25)
    model = make_model()
    got = answer(model, batches, 0.1, 0.25)
    if not isinstance(got, (list, tuple)) or len(got) != len(batches):
        raise Wrong(f"return the list of the {len(batches)} losses, one per batch, each before its update; "
                    f"got {describe(got)}")
    if any(isinstance(x, torch.Tensor) for x in got):
        raise Wrong("the losses should be Python floats (loss.item()), not tensors")
    got = [as_number(x, f"loss {i}") for i, x in enumerate(got)]
    if not all(math.isfinite(x) for x in got):
        raise Wrong("some losses are NaN or infinite")
    if abs(got[0] - expected[0]) > 1e-6:
        raise Wrong("the first loss differs already: compute the mean squared error of model(x) against y, "
                    "before any update")
    unclipped = _reference_loop(make_model(), batches, 0.1, 1e9)
    if max(abs(a - b) for a, b in zip(got, unclipped)) < 1e-6:
        raise Wrong("the losses are those of training without clipping: clip the global norm after backward, "
                    "before the update")
    expect_close(torch.tensor([float(x) for x in got]), torch.tensor(expected), "the losses", rtol=1e-5, atol=1e-6)
