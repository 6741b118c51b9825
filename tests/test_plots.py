import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from lesson_lib.plots import LiveLossPlot, ema, live_loss_plot, loss_curves, metric_curve, metrics_frame


def fake_run(steps=5, eval_every=2, scale=1.0):
    """Records as the trainer writes them: a train record per step, an eval record every few steps."""
    records = []
    for step in range(1, steps + 1):
        records.append({"kind": "train", "step": step, "tokens": 64 * step, "time": 0.5 * step,
                        "train_loss": scale * 4.0 / step, "lr": 1e-3, "grad_norm": 1.0 / step,
                        "tokens_per_s": 128.0, "mfu": None})
        if step % eval_every == 0:
            records.append({"kind": "eval", "step": step, "tokens": 64 * step, "time": 0.5 * step + 0.1,
                            "val_loss": scale * 4.5 / step})
    records.append({"kind": "checkpoint", "step": steps, "path": "ckpt.safetensors"})  # ignored
    return records


def test_ema_hand_computed():
    # a = 0.5: s1 = 0.5 -> 0.5/0.5 = 1; s2 = 0.25 + 1 = 1.25 -> 1.25/0.75; s3 = 0.625 + 1.5 = 2.125 -> /0.875
    np.testing.assert_allclose(ema([1.0, 2.0, 3.0], 0.5), [1.0, 1.25 / 0.75, 2.125 / 0.875])


def test_ema_debias_keeps_first_value_and_zero_smoothing_is_identity():
    values = [3.7, 1.0, 2.0]
    assert ema(values, 0.99)[0] == pytest.approx(3.7)
    np.testing.assert_allclose(ema(values, 0.0), values)


def test_ema_skips_nans():
    out = ema([1.0, float("nan"), 2.0], 0.5)
    assert out[0] == 1.0 and math.isnan(out[1])
    assert out[2] == pytest.approx(1.25 / 0.75)  # as if the NaN were not there


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5])
def test_ema_rejects_smoothing_out_of_range(smoothing):
    with pytest.raises(ValueError, match="smoothing"):
        ema([1.0, 2.0], smoothing)


def test_metrics_frame_tolerates_missing_keys():
    frame = metrics_frame([{"step": 1, "train_loss": 2.0}, {"step": 2, "kind": "eval", "val_loss": 1.5}])
    assert len(frame) == 2
    assert frame["tokens"].isna().all() and frame["mfu"].isna().all()
    assert math.isnan(frame.loc[0, "val_loss"]) and frame.loc[1, "val_loss"] == 1.5
    assert len(metrics_frame([])) == 0
    assert len(metrics_frame(SimpleNamespace(records=fake_run()))) == len(fake_run())  # like runs.Metrics


def test_loss_curves_two_runs():
    fig = loss_curves({"small": fake_run(), "big": fake_run(scale=0.5)})
    names = [trace.name for trace in fig.data]
    assert names == ["small train", "small val", "big train", "big val"]
    assert fig.layout.xaxis.title.text == "training step"
    assert fig.layout.yaxis.title.text == "loss (nats/token)"
    # one colour per run, train and val alike; runs differ
    colors = [trace.line.color for trace in fig.data]
    assert colors[0] == colors[1] and colors[2] == colors[3] and colors[0] != colors[2]
    # the checkpoint record and the eval records stay off the train line
    assert list(fig.data[0].x) == [1, 2, 3, 4, 5]
    assert list(fig.data[1].y) == pytest.approx([2.25, 1.125])


def test_loss_curves_smoothing_adds_faint_raw_line_and_log_y():
    fig = loss_curves({"run": fake_run()}, smoothing=0.6, log_y=True, show_val=False)
    assert [trace.name for trace in fig.data] == ["run train (raw)", "run train"]
    assert fig.data[0].opacity < 1
    assert fig.data[1].y[0] == pytest.approx(4.0)  # debiased: starts at the first raw value
    assert fig.layout.yaxis.type == "log"


def test_loss_curves_x_tokens_and_time():
    fig = loss_curves({"run": pd.DataFrame(fake_run())}, x="tokens")
    assert list(fig.data[0].x) == [64, 128, 192, 256, 320]
    assert fig.layout.xaxis.title.text == "tokens seen"
    assert loss_curves({"run": fake_run()}, x="time").layout.xaxis.title.text == "wall time (s)"


def test_loss_curves_rejects_bad_x():
    with pytest.raises(ValueError, match="x must be one of"):
        loss_curves({"run": fake_run()}, x="epoch")


def test_loss_curves_without_any_val_loss():
    records = [r for r in fake_run() if r["kind"] == "train"]
    fig = loss_curves({"run": records})
    assert [trace.name for trace in fig.data] == ["run train"]


def test_metric_curve():
    fig = metric_curve({"a": fake_run(), "b": fake_run()}, "grad_norm", x="tokens")
    assert [trace.name for trace in fig.data] == ["a", "b"]
    assert len(fig.data[0].x) == 5
    assert "gradient norm" in fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="no run logs"):
        metric_curve({"a": fake_run()}, "bogus")


def test_live_loss_plot_collects_headless():
    plot = live_loss_plot("run", every_records=2)
    assert isinstance(plot, LiveLossPlot) and not plot.display
    for record in fake_run():
        plot(record)  # a trainer callback: must not try to draw outside Jupyter
    assert len(plot.records) == len(fake_run())
    assert [trace.name for trace in plot.figure.data] == ["run train", "run val"]
    plot.update(fake_run(steps=2))
    assert len(plot.records) == len(fake_run(steps=2))


def test_long_runs_are_thinned_after_smoothing():
    from lesson_lib.plots import thin

    records = [{"kind": "train", "step": s, "tokens": s, "time": s, "train_loss": 10.0 - s / 1000} for s in range(1, 5001)]
    fig = loss_curves({"long": records}, smoothing=0.5, max_points=1000)
    smoothed = next(t for t in fig.data if t.name == "long train")
    assert len(smoothed.x) <= 1001 and smoothed.x[0] == 1 and smoothed.x[-1] == 5000
    full = loss_curves({"long": records}, smoothing=0.5, max_points=None)
    full_y = dict(zip(next(t for t in full.data if t.name == "long train").x, next(t for t in full.data if t.name == "long train").y))
    assert all(full_y[x] == y for x, y in zip(smoothed.x, smoothed.y))  # the same smoothed values, fewer of them
    frame = metrics_frame(records[:10])
    assert thin(frame, 20) is frame and len(thin(frame, 3)) == 4  # rows 0, 4, 8 and the last


def test_metric_panels_put_each_metric_in_its_own_panel():
    from lesson_lib.plots import metric_panels

    records = [{"kind": "train", "step": s, "tokens": s, "time": s, "train_loss": 1.0, "lr": 0.1 * s,
                "tokens_per_s": 100.0 + s} for s in range(1, 11)]
    fig = metric_panels({"a": records, "b": records}, ["lr", "tokens_per_s"], x="tokens")
    assert [t.xaxis for t in fig.data] == ["x", "x", "x2", "x2"]
    assert [t.showlegend for t in fig.data] == [True, True, False, False]  # one legend entry per run
    assert list(fig.data[2].y) == [100.0 + s for s in range(1, 11)]
    assert fig.layout.xaxis.title.text == "tokens seen" and fig.layout.xaxis2.title.text == "tokens seen"


def test_titles_draw_the_charts_in_another_language_and_default_to_english():
    from lesson_lib.plots import LOSS_TITLE, METRIC_TITLES, TITLES, X_AXES, metric_panels

    assert TITLES == {**X_AXES, "loss": LOSS_TITLE, **METRIC_TITLES, "legend": "run", "train": "train",
                      "val": "val", "raw": "raw"}
    zh = {"tokens": "已见词元数", "loss": "损失（nats/词元）", "legend": "运行", "train": "训练", "val": "验证",
          "raw": "原始值", "lr": "学习率"}
    fig = loss_curves({"run": fake_run()}, x="tokens", smoothing=0.5, titles=zh)
    assert [trace.name for trace in fig.data] == ["run 训练 (原始值)", "run 训练", "run 验证"]
    assert fig.layout.xaxis.title.text == "已见词元数" and fig.layout.yaxis.title.text == "损失（nats/词元）"
    assert fig.layout.legend.title.text == "运行"
    # a key left out keeps its English title; none given is the English chart, unchanged
    assert loss_curves({"run": fake_run()}, titles={"loss": "损失"}).layout.xaxis.title.text == "training step"
    assert loss_curves({"run": fake_run()}, titles=None).to_json() == loss_curves({"run": fake_run()}).to_json()
    curve = metric_curve({"a": fake_run()}, "lr", titles=zh)
    assert curve.layout.yaxis.title.text == "学习率" and curve.layout.xaxis.title.text == "training step"
    panels = metric_panels({"a": fake_run()}, ["lr", "grad_norm"], x="tokens", titles=zh)
    assert [a.text for a in panels.layout.annotations] == ["学习率", METRIC_TITLES["grad_norm"]]
    assert panels.layout.xaxis.title.text == panels.layout.xaxis2.title.text == "已见词元数"
    with pytest.raises(ValueError, match="'steps'"):
        loss_curves({"run": fake_run()}, titles={"steps": "步数"})
