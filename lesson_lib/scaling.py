"""Scaling laws by the IsoFLOP method: for each compute budget, which model size learns most?

Hoffmann et al. (2022, "Training Compute-Optimal Large Language Models", approach 2) fix a
budget C of training FLOPs, train models of several sizes N on exactly C FLOPs each (so a small
model sees many tokens D and a large one few, C ~ 6 N D), fit a parabola to the final loss
against log N, and read off its minimum N_opt(C). Over several budgets, N_opt ∝ C^a and
D_opt ∝ C^b with a ≈ b ≈ 0.5 (their IsoFLOP fit: a = 0.49, b = 0.51): parameters and tokens grow
together. Kaplan et al. (2020) had found a ≈ 0.73 with a learning-rate schedule that was not
fitted to each run's length, which is why every point here decays its cosine over its own steps.

The pieces, in the order a notebook uses them:
- `training_flops` (the 6 N D rule) and `gpt_training_flops` (the model's own count, with attention);
- `gpt_ladder`: GPT configs spanning a range of parameter counts; `sizes_for_ratios`: the sizes
  a budget gets from a fixed grid of tokens per parameter; `steps_for_budget`, `isoflop_plan`: how
  many steps each size gets for a budget;
- `run_isoflop`: train every (budget, size) pair and tabulate the final validation losses;
- `isoflop_optimum` / `isoflop_optima`: the parabola's minimum per budget;
- `fit_power_law`: a straight line on log-log axes, with standard errors, for N_opt(C), D_opt(C), L(N).

How long a run takes (chapter 9) is in `training_time`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .config import from_dict
from .device import seed_everything
from .memory import parameter_count
from .models import GPT, GPTConfig
from .training import TrainConfig, TrainData, train


# ----------------------------------------------------------------------------- counting

def training_flops(n_params: float, tokens: float) -> float:
    """C = 6 N D: each weight costs 2 FLOPs per token forward and 4 backward (Kaplan et al. 2020, 2.1)."""
    return 6.0 * n_params * tokens


def non_embedding_params(config: GPTConfig) -> int:
    """N as Kaplan et al. count it: every weight except the token and position embedding tables.

    Why not the total, as Chinchilla does: at the widths a CPU can train, the two tables
    ((vocab_size + block_size) x n_embd) are a large share of a model (on Shakespeare's 84
    characters: 60% of a one-block width-8 GPT, 28% at width 32, 16% at width 64), a share that
    shrinks as the model grows, and a lookup costs next to no compute. Kaplan et al. (fig. 6) show
    that counting them bends the small-model end of the power law, while without them the points
    lie on one line. Chinchilla's smallest model has 44M parameters, where the choice matters far
    less. The tied table is also the output head, whose matmul does cost FLOPs: those are in
    `gpt_flops_per_token`, so the budget is honest even though N leaves the table out. (At these
    widths the head and attention make FLOPs per token 1.3-3x the 6 N of `training_flops`.)
    """
    embeddings = (config.vocab_size + config.block_size) * config.n_embd
    return parameter_count({"family": "gpt", **dataclasses.asdict(config)}) - embeddings


def gpt_flops_per_token(config: GPTConfig) -> float:
    """The model's own training FLOPs per token (`GPT.flops_per_token`: 6 N plus attention)."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation work
        return GPT(config).flops_per_token()


def gpt_training_flops(config: GPTConfig, tokens: float) -> float:
    """Training FLOPs of `tokens` tokens, attention and the output head included."""
    return gpt_flops_per_token(config) * tokens


def gpt_ladder(non_embedding: Sequence[float], vocab_size: int, n_layer: int = 1, head_dim: int = 8,
               block_size: int = 64, **fields: Any) -> list[GPTConfig]:
    """One GPT config per target non-embedding parameter count, smallest first.

    Only the width changes: depth, head size and context stay fixed, so the sizes differ in one
    knob. n_embd is the multiple of `head_dim` whose exact count (about 12 n_layer n_embd^2) is
    nearest the target in log terms. Kaplan et al. found the loss at a given N barely depends on
    the shape over a wide range of width/depth ratios, so one knob is enough. `vocab_size` is the
    tokenizer's; `fields` are further GPTConfig fields (dropout, bias).

    Why one block by default: on 2 CPU cores a step of a one-block model takes about half the time
    of a two-block one, so a budget buys twice the steps; and measured on Shakespeare, two-block
    models trained for a few hundred steps gave losses that jumped by 0.1-0.2 from one seed or size
    to the next, where one-block models gave smooth U-shaped IsoFLOP curves.
    """
    if len(non_embedding) == 0:
        raise ValueError("give at least one target parameter count")
    configs = []
    for target in sorted(non_embedding):
        if not target > 0:
            raise ValueError(f"parameter counts must be positive, got {target}")
        width = math.sqrt(target / (12 * n_layer)) / head_dim  # in heads
        options = {max(1, math.floor(width)), max(1, math.ceil(width))}
        config = min((GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=h,
                                n_embd=h * head_dim, **fields) for h in options),
                     key=lambda c: abs(math.log(non_embedding_params(c) / target)))
        if configs and config.n_embd == configs[-1].n_embd:
            raise ValueError(f"targets {[float(t) for t in sorted(non_embedding)]} give the same width "
                             f"{config.n_embd} twice: spread them further apart or use a smaller head_dim "
                             f"(now {head_dim})")
        configs.append(config)
    return configs


def tokens_per_param(config: GPTConfig, budget: float) -> float:
    """D / N when `config` spends `budget` FLOPs: tokens C / (FLOPs per token) over non-embedding N."""
    return budget / gpt_flops_per_token(config) / non_embedding_params(config)


def sizes_for_ratios(budget: float, ratios: Sequence[float], candidates: Sequence[GPTConfig]) -> list[GPTConfig]:
    """The models a budget trains: for each tokens-per-parameter ratio, the candidate nearest it in log.

    A rule that does not know the answer: every budget gets the same grid of ratios D / N (a small
    model sees many tokens per weight, a large one few), so the sizes move with the budget by
    arithmetic alone, not by where its optimum is expected. If the grid is too narrow, the optimum
    falls at an edge, which `isoflop_optimum` refuses. Candidates that two ratios both pick count
    once; the result is ordered by size, smallest first, and needs 3 or more for a parabola.
    """
    if len(ratios) == 0 or not all(r > 0 for r in ratios):
        raise ValueError(f"give positive tokens-per-parameter ratios, got {list(ratios)}")
    if len(candidates) == 0:
        raise ValueError("give at least one candidate config")
    chosen: list[GPTConfig] = []
    for ratio in ratios:
        best = min(candidates, key=lambda c: abs(math.log(tokens_per_param(c, budget) / ratio)))
        if best not in chosen:
            chosen.append(best)
    if len(chosen) < 3:
        raise ValueError(f"the ratios {list(ratios)} pick {len(chosen)} distinct size(s) at a budget of "
                         f"{budget:.3g} FLOPs: a parabola needs 3 or more; spread the ratios or add candidates")
    return sorted(chosen, key=non_embedding_params)


def steps_for_budget(config: GPTConfig, budget: float, batch_size: int) -> int:
    """Optimizer steps that spend `budget` FLOPs: C / (FLOPs per token x tokens per step), rounded.

    Rounding to whole steps changes the spent compute by at most half a step; `isoflop_plan`
    reports the FLOPs actually spent.
    """
    tokens_per_step = batch_size * config.block_size
    step_flops = gpt_flops_per_token(config) * tokens_per_step
    steps = round(budget / step_flops)
    if steps < 1:
        raise ValueError(f"a budget of {budget:.3g} FLOPs is less than one step of the width-{config.n_embd} "
                         f"model ({step_flops:.3g} FLOPs): raise the budget, or use smaller models or batches")
    return steps


def isoflop_plan(budgets: Mapping[float, Sequence[GPTConfig]], batch_size: int) -> pd.DataFrame:
    """One row per (budget, model): its size, steps, tokens and the FLOPs those actually spend.

    `budgets` maps each budget to its models (3 or more, for a parabola). Chapter 8 picks them with
    `sizes_for_ratios` from one grid of tokens per parameter, which does not assume where the optimum is.
    """
    rows = []
    for budget, configs in budgets.items():
        if len(configs) < 3:
            raise ValueError(f"budget {budget:.3g} has {len(configs)} model(s): a parabola needs 3 or more")
        for config in configs:
            steps = steps_for_budget(config, budget, batch_size)
            tokens = steps * batch_size * config.block_size
            rows.append({"budget": float(budget), "n_layer": config.n_layer, "n_embd": config.n_embd,
                         "n_head": config.n_head, "params": non_embedding_params(config),
                         "flops_per_token": gpt_flops_per_token(config), "steps": steps, "tokens": tokens,
                         "flops": gpt_training_flops(config, tokens), "config": config})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- training

# Measured on Shakespeare characters at these budgets, where a run's step count matters more than
# its batch: with batches of 4 a width-24 one-block model reached a val loss of 2.26 on 4e10 FLOPs,
# with batches of 12 only 2.31 on 5e10; and lr 1e-2 beat 3e-3 by 0.10-0.16 for widths 24-64.
ISOFLOP_TRAIN = {"batch_size": 4, "lr": 1e-2, "min_lr": 1e-3, "eval_iters": 60, "measure_mfu": False}


def run_isoflop(budgets: Mapping[float, Sequence[GPTConfig]], data: TrainData, train_settings: dict | None = None,
                warmup_fraction: float = 0.1, progress: bool = True) -> pd.DataFrame:
    """Train every (budget, model) of `isoflop_plan` from the same seed; add val_loss and seconds.

    `train_settings` are TrainConfig fields over ISOFLOP_TRAIN. The steps come from the budget, and
    each run warms up for `warmup_fraction` of them and decays its cosine to min_lr at its own end
    (Chinchilla's point: a schedule longer than the run makes short runs look worse than they are).
    Validation happens once, at the end, on the same windows for every run. No run folder is
    written: the table is the result. Wrap the call in `device.cpu_threads` to choose the threads.
    """
    from tqdm.auto import tqdm

    settings = {**ISOFLOP_TRAIN, **(train_settings or {})}
    fixed = sorted({"max_steps", "warmup_steps", "decay_steps", "eval_interval"} & set(settings))
    if fixed:
        raise ValueError(f"{fixed} come from the budget here; leave them out of train_settings")
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    base = from_dict(TrainConfig, settings)
    plan = isoflop_plan(budgets, base.batch_size)
    losses, seconds = [], []
    with tqdm(total=len(plan), desc="IsoFLOP", unit="run", disable=not progress) as bar:
        for row in plan.itertuples():
            config = dataclasses.replace(base, max_steps=row.steps, eval_interval=row.steps,
                                         log_interval=row.steps, warmup_steps=int(warmup_fraction * row.steps))
            start = time.perf_counter()
            seed_everything(config.seed)  # every size starts from the same seed and sees the same batches
            result = train(GPT(row.config), data, config, progress=False)
            seconds.append(time.perf_counter() - start)
            losses.append(result.last_val_loss)
            bar.update(1)
            bar.set_postfix(budget=f"{row.budget:.2g}", n_embd=row.n_embd, val=f"{result.last_val_loss:.3f}")
    return plan.drop(columns="config").assign(val_loss=losses, seconds=seconds)


# ----------------------------------------------------------------------------- fitting

@dataclass(frozen=True)
class IsoFLOPOptimum:
    """The minimum of one budget's parabola, and the parabola itself."""

    params: float  # N at the parabola's minimum
    loss: float  # the parabola's value there
    coefficients: tuple[float, float, float]  # loss = c2 ln(N)^2 + c1 ln(N) + c0

    def predict(self, params) -> np.ndarray:
        """The fitted parabola's loss at `params` (to draw the curve through the points)."""
        return np.polyval(self.coefficients, np.log(np.asarray(params, dtype=float)))


def isoflop_optimum(sizes: Sequence[float], losses: Sequence[float]) -> IsoFLOPOptimum:
    """The loss-optimal size of one budget: the minimum of a parabola in ln N through (N, loss).

    The minimum must lie within the sampled sizes: outside them the parabola is extrapolation, and
    its curvature says little about where the real curve turns.
    """
    log_n, loss = _positive_log(sizes, "sizes"), np.asarray(losses, dtype=float)
    if loss.shape != log_n.shape:
        raise ValueError(f"{len(log_n)} sizes but {len(loss)} losses: give one loss per size")
    if not np.all(np.isfinite(loss)):
        raise ValueError(f"losses must be finite numbers, got {loss.tolist()}")
    if len(np.unique(log_n)) < 3:
        raise ValueError(f"a parabola needs 3 or more different sizes, got {len(np.unique(log_n))}")
    c2, c1, c0 = np.polyfit(log_n, loss, 2)
    lowest, largest = float(np.exp(log_n.min())), float(np.exp(log_n.max()))
    if c2 <= 0:
        side = "larger" if loss[np.argmax(log_n)] < loss[np.argmin(log_n)] else "smaller"
        raise ValueError(f"the losses do not rise on both sides of a minimum (the fitted parabola opens "
                         f"downward): widen the sizes, adding {side} models")
    vertex = -c1 / (2 * c2)
    if not log_n.min() <= vertex <= log_n.max():
        side, edge = ("larger", largest) if vertex > log_n.max() else ("smaller", lowest)
        raise ValueError(f"the optimum (N ≈ {math.exp(vertex):.3g}) lies outside the sampled sizes "
                         f"{lowest:.3g}..{largest:.3g}: the sizes do not bracket it; widen them, adding "
                         f"{side} models than {edge:.3g}")
    return IsoFLOPOptimum(float(np.exp(vertex)), float(c0 - c1**2 / (4 * c2)), (float(c2), float(c1), float(c0)))


def isoflop_optima(frame: pd.DataFrame) -> pd.DataFrame:
    """Per budget of a `run_isoflop` table: the optimal N, its loss, and its tokens D = C / FLOPs-per-token.

    FLOPs per token at N_opt are interpolated in log-log between the sampled sizes rather than
    taken as 6 N: at these widths attention and the output head add a good share to 6 N.
    """
    rows = []
    for budget, group in frame.groupby("budget", sort=True):
        try:
            best = isoflop_optimum(group["params"], group["val_loss"])
        except ValueError as e:
            raise ValueError(f"budget {budget:.3g}: {e}") from None
        order = group.sort_values("params")
        per_token = np.exp(np.interp(np.log(best.params), np.log(order["params"]), np.log(order["flops_per_token"])))
        rows.append({"budget": budget, "params": best.params, "loss": best.loss, "tokens": budget / per_token})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PowerLaw:
    """y = prefactor * x ** exponent, fitted as a straight line to (ln x, ln y)."""

    exponent: float
    exponent_se: float  # standard error, from the fit's covariance (residual variance with n - 2 dof)
    prefactor: float
    prefactor_se: float  # first order (delta method): prefactor x the standard error of ln(prefactor)
    r_squared: float  # of the straight line in log-log
    n_points: int

    def predict(self, x) -> np.ndarray:
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The exponent's confidence interval from Student's t: with 3 points (1 dof) it is wide."""
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, self.n_points - 2) * self.exponent_se
        return self.exponent - half, self.exponent + half


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerLaw:
    """Least squares of ln y = ln A + k ln x; standard errors from s^2 (X^T X)^-1, s^2 = RSS / (n - 2)."""
    log_x, log_y = _positive_log(x, "x"), _positive_log(y, "y")
    if log_x.shape != log_y.shape:
        raise ValueError(f"{len(log_x)} x values but {len(log_y)} y values: give one y per x")
    if len(log_x) < 3:
        raise ValueError(f"a power law needs 3 or more points, got {len(log_x)}: two points always lie on a line, "
                         "so they say nothing about its uncertainty")
    if np.ptp(log_x) == 0:
        raise ValueError("all x values are equal: a slope needs at least two different x")
    design = np.column_stack([np.ones_like(log_x), log_x])  # (n, 2): intercept ln A, slope k
    (log_a, k), *_ = np.linalg.lstsq(design, log_y, rcond=None)
    residuals = log_y - design @ np.array([log_a, k])
    rss = float(residuals @ residuals)
    covariance = rss / (len(log_x) - 2) * np.linalg.inv(design.T @ design)
    total = float(((log_y - log_y.mean()) ** 2).sum())
    prefactor = float(np.exp(log_a))
    return PowerLaw(float(k), float(np.sqrt(covariance[1, 1])), prefactor, prefactor * float(np.sqrt(covariance[0, 0])),
                    1.0 - rss / total if total > 0 else 1.0, len(log_x))


def _positive_log(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"{name} must be positive finite numbers (they are taken on log axes), got {array.tolist()}")
    return np.log(array)
