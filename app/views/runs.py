"""Runs and loss curves: every run in the runs folder, and the curves of the ones selected."""
import pandas as pd
import streamlit as st
from common import frame, metrics, no_runs_yet, root

from lesson_lib.plots import loss_curves, metric_panels
from lesson_lib.runs import list_runs

st.title("Runs and loss curves")
if no_runs_yet("runs-start-starter"):
    st.stop()

X_LABELS = {"step": "step", "tokens": "tokens seen", "time": "wall time"}


def runs_section():
    runs = list_runs(root())
    logs = {run.name: metrics(run) for run in runs}
    table = pd.DataFrame([run.summary(logs[run.name]) for run in runs])
    st.dataframe(
        table, hide_index=True, width="stretch",
        column_config={
            "name": "run", "family": "model", "params": st.column_config.NumberColumn("parameters", format="%d"),
            "tokens": st.column_config.NumberColumn("tokens seen", format="%d"),
            "best_val_loss": st.column_config.NumberColumn("best val loss", format="%.4f"),
            "checkpoints": "checkpoints", "status": "state",
        })
    for name, log in logs.items():
        if log.warnings:
            st.warning(f"Run **{name}**: {len(log.warnings)} damaged line(s) in metrics.jsonl were skipped "
                       f"(first: {log.warnings[0]}). The rest of the log is shown.")

    names = [run.name for run in runs]
    asked = st.query_params.get("run")  # a link from the Train page: ?run=NAME
    newest = [asked] if asked in names else [run.name for run in sorted(runs, key=lambda r: r.config_path.stat().st_mtime)][-5:]
    chosen = st.multiselect("Runs to plot", names, default=[n for n in names if n in newest], key="runs-chosen")
    if not chosen:
        st.caption("Pick one or more runs to see their curves.")
        return
    left, middle, right = st.columns([2, 2, 1])
    smoothing = left.slider("Smoothing of the training loss", 0.0, 0.99, 0.6, 0.01, key="runs-smoothing",
                            help="Debiased exponential moving average, as in TensorBoard; 0 shows the raw values")
    x = middle.radio("x axis", list(X_LABELS), format_func=X_LABELS.get, horizontal=True, key="runs-x")
    log_y = right.checkbox("log-scale loss", key="runs-logy")

    by_name = {run.name: run for run in runs}
    frames = {name: frame(by_name[name]) for name in chosen}
    st.plotly_chart(loss_curves(frames, x=x, smoothing=smoothing, log_y=log_y), width="stretch")
    st.plotly_chart(metric_panels(frames, ["lr", "tokens_per_s"], x=x), width="stretch")

    def csv() -> bytes:  # built when the button is pressed, not on every redraw
        combined = pd.concat([frame.assign(run=name) for name, frame in frames.items()], ignore_index=True)
        return combined.to_csv(index=False).encode("utf-8")

    st.download_button("Download these metrics as CSV", csv, file_name="metrics.csv", mime="text/csv",
                       key="runs-csv")


training = any(run.status(metrics(run)) == "training" for run in list_runs(root()))
# while a run trains, this part of the page redraws itself every few seconds
st.fragment(runs_section, run_every=3 if training else None)()
