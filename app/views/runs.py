"""Runs and loss curves: every run in the runs folder, and the curves of the ones selected. A run with a
damaged file stays in the table with what could be read of it, and its problem said under the table."""
import pandas as pd
import streamlit as st
from common import frame, metrics, modified, no_runs_yet, root
from i18n import chart_titles, shown_as, status, t

from lesson_lib.plots import X_AXES, loss_curves, metric_panels
from lesson_lib.runs import list_runs

st.title(t("runs.title"))
if no_runs_yet("runs-start-starter"):
    st.stop()


def runs_section():
    runs = list_runs(root())
    logs = {run.name: metrics(run) for run in runs}
    summaries = {run.name: run.summary(logs[run.name]) for run in runs}  # never raises: "problem" says what is wrong
    table = pd.DataFrame(list(summaries.values()))
    if len(table):
        table["status"] = table["status"].map(status)  # a word of the page's language
        if table["problem"].isna().all():
            table = table.drop(columns="problem")  # no damaged run: no empty column
    column = {name: t(f"runs.col.{name}") for name in
              ("name", "family", "tokenizer", "steps", "checkpoints", "status", "problem")}
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            **column,
            "params": st.column_config.NumberColumn(t("runs.col.params"), format="%d"),
            "tokens": st.column_config.NumberColumn(t("runs.col.tokens"), format="%d"),
            "best_val_loss": st.column_config.NumberColumn(t("runs.col.best_val_loss"), format="%.4f"),
        })
    for name, log in logs.items():
        problem = summaries[name]["problem"]
        if problem:
            st.warning(t("runs.problem", name=name, problem=problem))
        if log.warnings and problem not in log.warnings:  # lines skipped in a log otherwise read
            st.warning(t("runs.damaged", name=name, count=len(log.warnings), first=log.warnings[0]))

    names = [run.name for run in runs]
    asked = st.query_params.get("run")  # a link from the Train page: ?run=NAME
    by_age = sorted(runs, key=lambda r: modified(r.config_path))
    newest = [asked] if asked in names else [run.name for run in by_age][-5:]
    chosen = st.multiselect(t("runs.chosen"), names, default=[n for n in names if n in newest], key="runs-chosen")
    if not chosen:
        st.caption(t("runs.pick"))
        return
    left, middle, right = st.columns([2, 2, 1])
    smoothing = left.slider(t("runs.smoothing"), 0.0, 0.99, 0.6, 0.01, key="runs-smoothing",
                            help=t("runs.smoothing_help"))
    axes = {axis: t(f"runs.x.{axis}") for axis in X_AXES}
    x = middle.radio(t("runs.x"), list(axes), format_func=shown_as("runs-x", axes), horizontal=True, key="runs-x")
    log_y = right.checkbox(t("runs.log_y"), key="runs-logy")

    by_name = {run.name: run for run in runs}
    frames = {name: frame(by_name[name]) for name in chosen}
    titles = chart_titles()
    st.plotly_chart(loss_curves(frames, x=x, smoothing=smoothing, log_y=log_y, titles=titles), width="stretch")
    st.plotly_chart(metric_panels(frames, ["lr", "tokens_per_s"], x=x, titles=titles), width="stretch")

    def csv() -> bytes:  # built when the button is pressed, not on every redraw
        combined = pd.concat([frame.assign(run=name) for name, frame in frames.items()], ignore_index=True)
        return combined.to_csv(index=False).encode("utf-8")

    st.download_button(t("runs.csv"), csv, file_name="metrics.csv", mime="text/csv", key="runs-csv")


training = any(run.status(metrics(run)) == "training" for run in list_runs(root()))
# while a run trains, this part of the page redraws itself every few seconds
st.fragment(runs_section, run_every=3 if training else None)()
