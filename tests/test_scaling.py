"""Scaling fits: exact arithmetic for FLOPs and steps, fits checked on synthetic data with known answers."""
import math

import numpy as np
import pytest
from scipy import stats

from lesson_lib.experiment import prepare_data
from lesson_lib.models import GPT, GPTConfig
from lesson_lib.scaling import (fit_power_law, gpt_flops_per_token, gpt_ladder, gpt_training_flops,
                                isoflop_optima, isoflop_optimum, isoflop_plan, non_embedding_params, run_isoflop,
                                sizes_for_ratios, steps_for_budget, tokens_per_param, training_flops)

CONFIG = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=3, n_embd=24)


def test_training_flops_is_six_n_d():
    assert training_flops(1e6, 2e7) == 1.2e14


@pytest.mark.parametrize("config", [CONFIG, GPTConfig(vocab_size=84, block_size=64, n_layer=3, n_head=4, n_embd=64,
                                                      bias=True)])
def test_counts_agree_with_the_built_model(config):
    model = GPT(config)
    by_name = sum(p.numel() for name, p in model.named_parameters() if "embedding" not in name)
    assert non_embedding_params(config) == by_name
    assert gpt_flops_per_token(config) == model.flops_per_token()
    # the attention term is what 6 N (embedding table included: it is the output head) leaves out
    attention = gpt_flops_per_token(config) - 6 * (by_name + config.vocab_size * config.n_embd)
    assert attention == 12 * config.n_layer * config.n_embd * config.block_size
    assert gpt_training_flops(config, 1000) == 1000 * model.flops_per_token()


def test_ladder_widths_follow_the_targets():
    targets = [2e4, 6e4, 2e5]
    ladder = gpt_ladder(targets, vocab_size=84, n_layer=2, head_dim=8, block_size=32)
    assert [c.n_embd for c in ladder] == [32, 48, 88]  # 12 * 2 layers * width^2 nearest each target
    for config, target in zip(ladder, targets):
        assert config.n_embd % 8 == 0 and config.n_head == config.n_embd // 8
        assert (config.n_layer, config.block_size, config.vocab_size) == (2, 32, 84)
        distance = abs(math.log(non_embedding_params(config) / target))
        for other in (config.n_head - 1, config.n_head + 1):  # a head less or more is no closer
            neighbour = GPTConfig(vocab_size=84, block_size=32, n_layer=2, n_head=other, n_embd=8 * other)
            assert abs(math.log(non_embedding_params(neighbour) / target)) >= distance
    assert [c.n_embd for c in gpt_ladder(targets, vocab_size=84)] == [40, 72, 128]  # one block by default
    with pytest.raises(ValueError, match="same width"):
        gpt_ladder([2e4, 2.1e4], vocab_size=84, head_dim=16)
    with pytest.raises(ValueError, match="positive"):
        gpt_ladder([0, 2e4], vocab_size=84)


def test_sizes_for_ratios_pick_the_nearest_ratio_at_each_budget():
    candidates = [GPTConfig(vocab_size=84, block_size=32, n_layer=2, n_head=max(1, w // 8), n_embd=w)
                  for w in (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32)]
    ratios = [8, 32, 128, 512]
    for budget in (3e9, 1.2e10):
        chosen = sizes_for_ratios(budget, ratios, candidates)
        assert len(chosen) == 4 and [non_embedding_params(c) for c in chosen] == \
            sorted(non_embedding_params(c) for c in chosen)
        for config, ratio in zip(chosen, sorted(ratios, reverse=True)):  # the smallest model sees most tokens
            distance = abs(math.log(tokens_per_param(config, budget) / ratio))
            assert all(abs(math.log(tokens_per_param(c, budget) / ratio)) >= distance for c in candidates)
    # D / N by hand for one candidate: tokens C / FLOPs-per-token over the non-embedding weights
    config = candidates[4]
    assert tokens_per_param(config, 3e9) == 3e9 / GPT(config).flops_per_token() / non_embedding_params(config)
    # a budget 4x larger picks larger models from the same grid
    small, large = sizes_for_ratios(3e9, ratios, candidates), sizes_for_ratios(1.2e10, ratios, candidates)
    assert all(a.n_embd < b.n_embd for a, b in zip(small, large))
    with pytest.raises(ValueError, match="3 or more"):
        sizes_for_ratios(3e9, [100, 110, 120], candidates)
    with pytest.raises(ValueError, match="positive"):
        sizes_for_ratios(3e9, [0, 10], candidates)


def test_steps_per_budget_spend_the_budget():
    batch = 5
    step_flops = gpt_flops_per_token(CONFIG) * batch * CONFIG.block_size
    assert steps_for_budget(CONFIG, 37 * step_flops, batch) == 37
    budget = 1e9  # not a whole number of steps: off by at most half a step
    steps = steps_for_budget(CONFIG, budget, batch)
    assert abs(steps * step_flops - budget) <= step_flops / 2
    with pytest.raises(ValueError, match="less than one step"):
        steps_for_budget(CONFIG, step_flops / 3, batch)


def test_plan_rows_spend_their_budget():
    ladder = gpt_ladder([5e3, 1.5e4, 4e4, 1e5], vocab_size=37, head_dim=8, block_size=16)
    plan = isoflop_plan({1e10: ladder[:3], 4e10: ladder[1:]}, batch_size=4)
    assert len(plan) == 6 and plan["budget"].tolist() == [1e10] * 3 + [4e10] * 3
    assert (plan["tokens"] == plan["steps"] * 4 * 16).all()
    expected = [gpt_training_flops(c, t) for c, t in zip(plan["config"], plan["tokens"])]
    assert plan["flops"].tolist() == expected
    step_flops = plan["flops_per_token"] * 4 * 16
    assert ((plan["flops"] - plan["budget"]).abs() <= step_flops / 2).all()
    with pytest.raises(ValueError, match="3 or more"):
        isoflop_plan({1e10: ladder[:2]}, batch_size=4)


# ----------------------------------------------------------------------------- the parabola

def parabola(sizes, best=5e4, floor=2.0, curvature=0.3):
    return floor + curvature * (np.log(sizes) - np.log(best)) ** 2


def test_optimum_recovered_exactly_without_noise():
    sizes = np.array([1e4, 2.5e4, 6e4, 1.5e5, 4e5])
    optimum = isoflop_optimum(sizes, parabola(sizes))
    assert optimum.params == pytest.approx(5e4, rel=1e-9)
    assert optimum.loss == pytest.approx(2.0, abs=1e-12)
    assert optimum.predict(sizes) == pytest.approx(parabola(sizes), abs=1e-12)


def test_optimum_outside_the_sizes_is_refused():
    below, above = np.array([1e3, 3e3, 1e4]), np.array([1e6, 3e6, 1e7])
    with pytest.raises(ValueError, match="do not bracket.*larger models"):
        isoflop_optimum(below, parabola(below))
    with pytest.raises(ValueError, match="do not bracket.*smaller models"):
        isoflop_optimum(above, parabola(above))
    with pytest.raises(ValueError, match="opens downward.*larger"):  # a concave run of losses has no minimum
        isoflop_optimum(below, [3.0, 2.9, 2.5])


@pytest.mark.parametrize("sizes, losses, message", [
    ([1e4, 2e4], [2.1, 2.0], "3 or more"),
    ([1e4, 1e4, 2e4], [2.1, 2.0, 2.2], "3 or more"),
    ([0, 2e4, 4e4], [2.1, 2.0, 2.2], "positive"),
    ([-1e4, 2e4, 4e4], [2.1, 2.0, 2.2], "positive"),
    ([1e4, 2e4, 4e4], [2.1, float("nan"), 2.2], "finite"),
    ([1e4, 2e4, 4e4], [2.1, 2.0], "one loss per size"),
])
def test_optimum_refuses_bad_input(sizes, losses, message):
    with pytest.raises(ValueError, match=message):
        isoflop_optimum(sizes, losses)


def test_optima_per_budget_read_tokens_at_the_optimum():
    ladder = gpt_ladder([5e3, 1.5e4, 4e4, 1e5], vocab_size=37, head_dim=8, block_size=16)
    plan = isoflop_plan({1e10: ladder[:3], 4e10: ladder[1:]}, batch_size=4)
    middle = {1e10: plan["params"][1], 4e10: plan["params"][4]}  # each budget's optimum at its middle size
    frame = plan.assign(val_loss=[parabola(n, best=middle[b]) for b, n in zip(plan["budget"], plan["params"])])
    optima = isoflop_optima(frame)
    assert optima["params"].tolist() == pytest.approx([middle[1e10], middle[4e10]], rel=1e-9)
    assert optima["tokens"].tolist() == pytest.approx([1e10 / plan["flops_per_token"][1],
                                                       4e10 / plan["flops_per_token"][4]], rel=1e-9)
    with pytest.raises(ValueError, match="budget 1e"):
        isoflop_optima(frame.assign(val_loss=parabola(frame["params"], best=1e7)))


# ----------------------------------------------------------------------------- power laws

def noisy_power_law(seed, n=12, exponent=-0.35, prefactor=3.0, noise=0.05):
    rng = np.random.default_rng(seed)
    x = np.geomspace(1e3, 1e7, n)
    return x, prefactor * x**exponent * np.exp(noise * rng.standard_normal(n))


def test_power_law_recovers_a_known_exponent_within_its_error():
    x, y = noisy_power_law(seed=0, n=30)
    fit = fit_power_law(x, y)
    assert abs(fit.exponent - (-0.35)) < 2 * fit.exponent_se
    assert abs(fit.prefactor - 3.0) < 2 * fit.prefactor_se
    reference = stats.linregress(np.log(x), np.log(y))  # an independent least-squares implementation
    assert fit.exponent == pytest.approx(reference.slope, rel=1e-10)
    assert fit.exponent_se == pytest.approx(reference.stderr, rel=1e-8)
    assert math.log(fit.prefactor) == pytest.approx(reference.intercept, rel=1e-10)
    assert fit.prefactor_se == pytest.approx(fit.prefactor * reference.intercept_stderr, rel=1e-8)
    assert fit.r_squared == pytest.approx(reference.rvalue**2, rel=1e-10)


def test_standard_errors_are_calibrated():
    # over many seeded datasets, the true exponent lies within one standard error as often as
    # Student's t says (64% with 6 dof), and within the 95% interval about 95% of the time
    trials = [fit_power_law(*noisy_power_law(seed, n=8, noise=0.2)) for seed in range(400)]
    within_se = np.mean([abs(f.exponent + 0.35) <= f.exponent_se for f in trials])
    within_95 = np.mean([f.interval(0.95)[0] <= -0.35 <= f.interval(0.95)[1] for f in trials])
    assert within_se == pytest.approx(2 * stats.t.cdf(1, 6) - 1, abs=0.07)
    assert within_95 == pytest.approx(0.95, abs=0.035)


def test_standard_errors_shrink_with_less_noise():
    noisy, quiet = (fit_power_law(*noisy_power_law(seed=1, noise=s)) for s in (0.2, 0.02))
    assert quiet.exponent_se == pytest.approx(noisy.exponent_se / 10, rel=1e-9)  # same draws, a tenth of the size
    assert abs(quiet.exponent + 0.35) < abs(noisy.exponent + 0.35)
    exact = fit_power_law(*noisy_power_law(seed=1, noise=0.0))
    assert exact.exponent == pytest.approx(-0.35, rel=1e-12) and exact.prefactor == pytest.approx(3.0, rel=1e-10)
    assert exact.exponent_se < 1e-12 and exact.r_squared == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("x, y, message", [
    ([1, 2], [3, 4], "3 or more"),
    ([1, 2, 0], [3, 4, 5], "positive"),
    ([1, 2, 3], [3, -4, 5], "positive"),
    ([1, 2, 3], [3, 4], "one y per x"),
    ([2, 2, 2], [3, 4, 5], "equal"),
])
def test_power_law_refuses_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        fit_power_law(x, y)


# ----------------------------------------------------------------------------- training

def test_tiny_isoflop_run(text_file):
    tokenizer, data, _ = prepare_data(str(text_file), "char")
    ladder = gpt_ladder([1e3, 3e3, 7e3, 1.5e4], vocab_size=tokenizer.vocab_size, n_layer=1, head_dim=8,
                        block_size=16)
    small = gpt_flops_per_token(ladder[1]) * 4 * 16 * 6  # six steps of the second size
    budgets = {small: ladder[:3], 2 * small: ladder[1:]}
    settings = {"batch_size": 4, "eval_iters": 2, "device": "cpu", "seed": 3}
    frame = run_isoflop(budgets, data, settings, progress=False)
    assert frame.shape == (6, 11)
    assert list(frame.columns) == ["budget", "n_layer", "n_embd", "n_head", "params", "flops_per_token", "steps",
                                   "tokens", "flops", "val_loss", "seconds"]
    assert frame["steps"].tolist() == isoflop_plan(budgets, 4)["steps"].tolist()
    assert frame["steps"][1] == 6 and frame["steps"][3] == 12
    assert np.isfinite(frame["val_loss"]).all() and (frame["val_loss"] < math.log(tokenizer.vocab_size) + 0.5).all()
    assert (frame["seconds"] > 0).all()
    with pytest.raises(ValueError, match="max_steps"):
        run_isoflop(budgets, data, {**settings, "max_steps": 5}, progress=False)
