"""Plotly figures of a run's metrics log, for the notebooks and the dashboard.

A metrics log is a list of records (one JSON object per line in the run folder): training-step
records have `"kind": "train"` and a `train_loss`, evaluation records have `"kind": "eval"` and a
`val_loss`; both carry `step`, `tokens` (seen so far) and `time` (wall seconds since the start).
`metrics_frame` turns records into a DataFrame; `loss_curves` and `metric_curve` draw one or
several runs; `LiveLossPlot` is a trainer callback that redraws the loss while a notebook trains.
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from scipy.signal import lfilter

if TYPE_CHECKING:
    from .runs import Metrics

# x-axis choices and their titles, units included
X_AXES = {"step": "training step", "tokens": "tokens seen", "time": "wall time (s)"}
LOSS_TITLE = "loss (nats/token)"
METRIC_TITLES = {
    "train_loss": "training loss (nats/token)",
    "val_loss": "validation loss (nats/token)",
    "lr": "learning rate",
    "grad_norm": "gradient norm (L2, before clipping)",
    "tokens_per_s": "throughput (tokens/s)",
    "mfu": "MFU (fraction of measured peak FLOP/s)",
    "val_ppl": "validation perplexity",
    "val_bpc": "validation bits per character",
}
# Every word the charts draw, by key: the x axes, "loss", the metrics, the legend's title and the words
# after a run's name in the trace names. A `titles` mapping with some of these keys draws them in
# another language (the dashboard's Chinese); keys it lacks keep these.
TITLES = {**X_AXES, "loss": LOSS_TITLE, **METRIC_TITLES, "legend": "run", "train": "train", "val": "val",
          "raw": "raw"}
NUMERIC_COLUMNS = ["step", "tokens", "time", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "mfu"]
COLORS = qualitative.Plotly

Runs = Mapping[str, "pd.DataFrame | list[dict] | Metrics"]  # or anything with a .records list


def metrics_frame(records: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """A DataFrame with one row per record; missing keys become NaN, `kind` None. Sorted by step.

    Accepts a list of records, a DataFrame, or anything with a `.records` list (`runs.Metrics`).
    """
    records = getattr(records, "records", records)
    frame = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(list(records))
    for column in NUMERIC_COLUMNS:
        # null (e.g. mfu on a CPU without a measured peak) and missing both become NaN
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.nan
    if "kind" not in frame:
        frame["kind"] = None
    if len(frame):
        frame = frame.sort_values("step", kind="stable").reset_index(drop=True)
    return frame


def ema(values, smoothing: float) -> np.ndarray:
    """Debiased exponential moving average, as TensorBoard's smoothing slider computes it.

    s_t = a*s_{t-1} + (1-a)*x_t with s_0 = 0, reported as s_t / (1 - a^t), so the first output
    equals the first input instead of being dragged towards zero. NaNs stay NaN in the output and
    are skipped (they neither move the average nor count towards t).
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing!r}")
    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    present = ~np.isnan(values)
    if present.any():
        # the recursion above as a linear filter (one C loop instead of a Python one)
        state = lfilter([1.0 - smoothing], [1.0, -smoothing], values[present])
        out[present] = state / (1.0 - smoothing ** np.arange(1, present.sum() + 1))
    return out


def _frames(runs: Runs) -> dict[str, pd.DataFrame]:
    if not isinstance(runs, Mapping):
        raise TypeError(f"runs must be a dict of name -> records or DataFrame; got {type(runs).__name__}")
    return {str(name): metrics_frame(run) for name, run in runs.items()}


def _check_x(x: str) -> None:
    if x not in X_AXES:
        raise ValueError(f"x must be one of {sorted(X_AXES)}; got {x!r}")


def _rows(frame: pd.DataFrame, kind: str, column: str) -> pd.DataFrame:
    """Rows of this kind with a value in `column` (records without a kind are judged by the column)."""
    kinds = frame["kind"]
    wanted = (kinds == kind) | kinds.isna()
    return frame[wanted & frame[column].notna()]


def thin(frame: pd.DataFrame, max_points: int | None) -> pd.DataFrame:
    """At most about `max_points` evenly spaced rows, the last one always kept.

    A chart is a few hundred pixels wide; 20 runs of 5,000 points each would only slow the browser.
    Smooth first, on all the points, then thin.
    """
    if max_points is None or len(frame) <= max_points:
        return frame
    stride = -(-len(frame) // max_points)  # ceiling division
    keep = np.zeros(len(frame), dtype=bool)
    keep[::stride] = True
    keep[-1] = True
    return frame[keep]


def _words(titles: Mapping[str, str] | None) -> dict[str, str]:
    """The charts' words: TITLES, with the ones `titles` gives in their place."""
    unknown = sorted(set(titles or {}) - set(TITLES))
    if unknown:
        raise ValueError(f"titles has unknown key(s) {unknown}; known: {sorted(TITLES)}")
    return {**TITLES, **(titles or {})}


def _layout(fig: go.Figure, x: str, y_title: str, title: str | None, log_y: bool = False,
            words: Mapping[str, str] = TITLES) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=words[x],
        yaxis_title=y_title,
        template="plotly_white",
        hovermode="x unified",
        legend_title_text=words["legend"],
    )
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def loss_curves(
    runs: Runs,
    x: str = "step",
    smoothing: float = 0.0,
    log_y: bool = False,
    show_train: bool = True,
    show_val: bool = True,
    title: str | None = None,
    max_points: int | None = 400,
    titles: Mapping[str, str] | None = None,
) -> go.Figure:
    """Training loss (a line, EMA-smoothed if asked) and validation loss (markers) of each run.

    Traces are named "<run> train", "<run> train (raw)" (only when smoothing > 0) and "<run> val";
    each run keeps one colour. Each trace is thinned to about `max_points` points after smoothing.
    `titles` replaces some of the axis and legend words (keys of TITLES), e.g. to draw them in Chinese.
    """
    _check_x(x)
    words = _words(titles)
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing!r}")
    fig = go.Figure()
    for index, (name, frame) in enumerate(_frames(runs).items()):
        color = COLORS[index % len(COLORS)]
        train = _rows(frame, "train", "train_loss")
        if show_train and len(train):
            train = train.assign(smoothed=ema(train["train_loss"], smoothing))
            train = thin(train, max_points)
            if smoothing > 0:
                fig.add_trace(go.Scatter(
                    x=train[x].to_numpy(), y=train["train_loss"].to_numpy(), mode="lines",
                    name=f"{name} {words['train']} ({words['raw']})",
                    legendgroup=name, line=dict(color=color, width=1), opacity=0.25,
                    showlegend=False, hoverinfo="skip",
                ))
            fig.add_trace(go.Scatter(
                x=train[x].to_numpy(), y=train["smoothed"].to_numpy(), mode="lines",
                name=f"{name} {words['train']}",
                legendgroup=name, line=dict(color=color, width=2),
            ))
        val = _rows(frame, "eval", "val_loss")
        if show_val and len(val):
            fig.add_trace(go.Scatter(
                x=val[x].to_numpy(), y=val["val_loss"].to_numpy(), mode="lines+markers",
                name=f"{name} {words['val']}",
                legendgroup=name, line=dict(color=color, width=2, dash="dash"), marker=dict(size=7),
            ))
    return _layout(fig, x, words["loss"], title, log_y, words)


def _metric_lines(frames: dict[str, pd.DataFrame], metric: str, x: str, max_points: int | None):
    """One line per run that logs `metric`, each run in its own colour."""
    for index, (name, frame) in enumerate(frames.items()):
        if metric not in frame:
            continue
        rows = thin(frame[pd.to_numeric(frame[metric], errors="coerce").notna()], max_points)
        yield go.Scatter(x=rows[x].to_numpy(), y=pd.to_numeric(rows[metric]).to_numpy(), mode="lines", name=name,
                         legendgroup=name, line=dict(color=COLORS[index % len(COLORS)], width=2))


def metric_curve(runs: Runs, metric: str, x: str = "step", title: str | None = None,
                 max_points: int | None = 400, titles: Mapping[str, str] | None = None) -> go.Figure:
    """One line per run of any logged metric (lr, tokens_per_s, grad_norm, mfu, ...) against x.

    `titles` replaces some of the axis and legend words (keys of TITLES)."""
    _check_x(x)
    frames = _frames(runs)
    if frames and not any(metric in frame for frame in frames.values()):
        raise ValueError(f"no run logs a metric called {metric!r}; known: {sorted(METRIC_TITLES)}")
    fig = go.Figure(list(_metric_lines(frames, metric, x, max_points)))
    words = _words(titles)
    return _layout(fig, x, words.get(metric, metric), title, words=words)


def metric_panels(runs: Runs, metrics: Sequence[str], x: str = "step", max_points: int | None = 400,
                  titles: Mapping[str, str] | None = None) -> go.Figure:
    """Several metrics side by side, one panel each, in one figure (one chart to draw, not several).

    `titles` replaces some of the panel, axis and legend words (keys of TITLES)."""
    _check_x(x)
    frames = _frames(runs)
    words = _words(titles)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[words.get(m, m) for m in metrics])
    for col, metric in enumerate(metrics, start=1):
        for line in _metric_lines(frames, metric, x, max_points):
            line.showlegend = col == 1  # one legend entry per run
            fig.add_trace(line, row=1, col=col)
        fig.update_xaxes(title_text=words[x], row=1, col=col)
    fig.update_layout(template="plotly_white", hovermode="x unified", legend_title_text=words["legend"])
    return fig


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where a display can be updated), False in scripts and tests."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_in_place(figure: go.Figure, handle=None, label: str = "<plotly figure>"):
    """Show `figure` in a notebook output, or redraw the output `handle` came from; return the handle.

    It sends a raw mime bundle, not the figure: plotly's own display hook ignores the display id and
    would append a new output on every update instead of redrawing in place. The last drawing is
    also what a papermill-executed copy keeps.
    """
    from IPython.display import display

    bundle = {"application/vnd.plotly.v1+json": json.loads(figure.to_json()), "text/plain": label}
    if handle is None:
        return display(bundle, raw=True, display_id=True)
    handle.update(bundle, raw=True)
    return handle


class LiveLossPlot:
    """A trainer callback that collects metric records and redraws the loss curves as they arrive.

    `plot(record)` appends one record and redraws when `every_records` records have come (and at
    least `min_seconds` have passed) or `every_seconds` seconds have passed since the last redraw; `plot.refresh()` redraws now (call it after training
    so the last points show). Outside Jupyter it only collects; `.figure` is always the current plot.
    In Jupyter it redraws one output in place through an IPython display handle, which also keeps
    the final figure in a papermill-executed copy (plotly 6's FigureWidget would need anywidget).
    """

    def __init__(self, name: str = "run", x: str = "step", smoothing: float = 0.0, log_y: bool = False,
                 every_records: int = 10, every_seconds: float = 2.0, min_seconds: float = 0.5,
                 title: str | None = None,
                 display: bool | None = None):
        _check_x(x)
        if every_records < 1:
            raise ValueError(f"every_records must be >= 1; got {every_records}")
        self.name, self.x, self.smoothing, self.log_y, self.title = name, x, smoothing, log_y, title
        self.every_records, self.every_seconds, self.min_seconds = every_records, every_seconds, min_seconds
        self.display = _in_notebook() if display is None else display
        self.records: list[dict] = []
        self._pending = 0
        self._last_draw = time.monotonic()
        self._handle = None

    @property
    def figure(self) -> go.Figure:
        return loss_curves({self.name: self.records}, x=self.x, smoothing=self.smoothing,
                           log_y=self.log_y, title=self.title)

    def __call__(self, record: Mapping) -> None:
        self.records.append(dict(record))
        self._pending += 1
        since = time.monotonic() - self._last_draw
        # every_records paces short runs; min_seconds keeps a run that logs every step from redrawing
        # (re-serialising the whole figure) hundreds of times a second
        due = (self._pending >= self.every_records and since >= self.min_seconds) or since >= self.every_seconds
        if due:
            self.refresh()

    def update(self, records: Iterable[Mapping]) -> None:
        """Replace the collected records with `records` and redraw."""
        self.records = [dict(record) for record in records]
        self.refresh()

    def refresh(self) -> None:
        self._pending, self._last_draw = 0, time.monotonic()
        if not self.display:
            return
        self._handle = show_in_place(self.figure, self._handle,
                                     f"<live loss plot of {self.name!r}: {len(self.records)} records>")


def live_loss_plot(name: str = "run", **options) -> LiveLossPlot:
    """A `LiveLossPlot` for a notebook: pass it as the trainer's callback, it is called with each record."""
    return LiveLossPlot(name=name, **options)
