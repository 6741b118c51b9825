"""Chapter 7's exercises: throughput and MFU from a run log, TensorBoard's smoothing, and the scalars a
run log becomes in TensorBoard."""
from __future__ import annotations

import numpy as np

from .core import Wrong, as_number, as_tensor, describe, expect_close, exercise


def _records(seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    start = float(rng.uniform(5, 20))  # seconds spent before the first logged step (data, tokenizer, peak)
    steps = np.arange(10, 110, 10)
    times = start + np.cumsum(rng.uniform(0.8, 1.2, size=steps.size))
    return [{"kind": "train", "step": int(s), "tokens": int(s) * 768, "time": float(t),
             "train_loss": float(4 - np.log(s) / 3 + rng.normal(0, 0.05)), "lr": 1e-3 * float(min(1, s / 50))}
            for s, t in zip(steps, times)]


@exercise("ch07.throughput", "tokens per second from a run log", level=1)
def _throughput(answer, seed):
    records = _records(seed)
    first, last = records[0], records[-1]
    expected = (last["tokens"] - first["tokens"]) / (last["time"] - first["time"])
    got = as_number(answer([dict(r) for r in records]), "tokens per second")
    if abs(got - last["tokens"] / last["time"]) < 1e-9:
        raise Wrong("that counts the time before the first logged step (loading, building) as training: "
                    "take the tokens and the time between the first and the last record")
    expect_close(got, expected, "tokens per second", rtol=1e-9, atol=1e-9)


@exercise("ch07.mfu", "model FLOPs utilisation", level=1)
def _mfu(answer, seed):
    rng = np.random.default_rng(seed)
    tps, flops_per_token, peak = float(rng.uniform(1e3, 1e5)), float(rng.uniform(1e5, 1e7)), float(rng.uniform(1e11, 1e12))
    got = as_number(answer(tps, flops_per_token, peak), "the MFU")
    if abs(got - tps * flops_per_token / peak * 3) < 1e-9 or abs(got - tps * flops_per_token / peak / 3) < 1e-9:
        raise Wrong("flops_per_token already counts forward and backward: do not multiply or divide by 3")
    expect_close(got, tps * flops_per_token / peak, "the MFU (a fraction, not a percentage)", rtol=1e-9, atol=1e-12)


@exercise("ch07.smoothing", "TensorBoard's smoothing of a curve", level=2)
def _smoothing(answer, seed):
    from ..plots import ema

    values = np.array([r["train_loss"] for r in _records(seed)])
    for weight in (0.0, 0.6, 0.95):
        got = answer(values.copy(), weight)
        got_t = as_tensor(got, f"the smoothed curve (weight {weight})")
        plain = []
        s = 0.0
        for x in values:
            s = weight * s + (1 - weight) * x
            plain.append(s)
        if weight > 0 and got_t.shape == values.shape and np.allclose(got_t.numpy(), plain):
            raise Wrong("the first values are dragged towards 0: divide the running average by (1 - weight^t)")
        expect_close(got, ema(values, weight), f"the smoothed curve (weight {weight})", rtol=1e-9, atol=1e-12)


@exercise("ch07.event-scalars", "a run log as TensorBoard scalars", level=2)
def _event_scalars(answer, seed):
    from ..tensorboard import scalars_of

    records = _records(seed)
    records.insert(5, {"kind": "eval", "step": 50, "tokens": 50 * 768, "time": 40.0, "val_loss": 2.5, "val_ppl": 12.18})
    records.insert(0, {"kind": "event", "event": "start", "step": 0})
    expected = {(t, s): v for t, s, v in scalars_of(records).itertuples(index=False)}
    got = answer([dict(r) for r in records])
    try:
        got = {(tag, int(step)): float(value) for tag, step, value in got}
    except (TypeError, ValueError):
        raise Wrong(f"return a list of (tag, step, value) triples; got {describe(got)}") from None
    missing = sorted(set(expected) - set(got))
    if missing:
        raise Wrong(f"missing {len(missing)} scalars, e.g. {missing[0]}; tags follow lesson_lib.tensorboard.TAGS")
    extra = sorted(set(got) - set(expected), key=repr)  # the tags may be of any type
    if extra:
        raise Wrong(f"{len(extra)} scalars TensorBoard would not get, e.g. {extra[0]}")
    for key, value in expected.items():
        if abs(got[key] - value) > 1e-6 * abs(value):
            raise Wrong(f"{key}: {got[key]} instead of the logged value")
