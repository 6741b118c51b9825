"""Train: start a run from a preset or a form, follow it live, stop it, resume it later.

The run trains in a background process (lesson_lib.jobs) that outlives this browser tab; one at a
time from the dashboard.
"""
import datetime as dt

import streamlit as st
from common import metrics, root

from lesson_lib import jobs
from lesson_lib.data import DataError, decode_text
from lesson_lib.plots import loss_curves, metrics_frame
from lesson_lib.presets import PRESETS
from lesson_lib.runs import Run, check_run_name, list_runs

MAX_UPLOAD_MB = 10

st.title("Train")


def follow(job: jobs.Job) -> None:
    """Progress and live loss curve of the running job; redrawn every two seconds."""
    current = jobs.current_job(root())
    if current is None or current.pid != job.pid:
        st.rerun()  # it ended: show the outcome and the form again
    run = Run(root() / job.run)
    log = metrics(run)
    train = log.of_kind("train")
    try:
        total = run.read_config()["train"]["max_steps"]
    except (FileNotFoundError, ValueError, KeyError):
        st.info(f"Run **{job.run}** is starting: loading the text and building the tokenizer...")
        return
    step = train[-1]["step"] if train else 0
    evals = [r for r in log.of_kind("eval") if r.get("val_loss") is not None]
    last = f"train loss {train[-1]['train_loss']:.3f}" if train else "first steps..."
    if evals:
        last += f" · val loss {evals[-1]['val_loss']:.3f}"
    st.progress(min(step / total, 1.0), text=f"**{job.run}**: step {step} of {total} · {last}")
    if train:
        st.plotly_chart(loss_curves({job.run: metrics_frame(log)}, smoothing=0.6), width="stretch")


def outcome(name: str) -> None:
    """How the job started from this session ended."""
    run = Run(root() / name)
    status = run.status() if run.config_path.exists() else "failed"
    if status == "finished":
        st.success(f"Run **{name}** finished. Try it on the Generate page, or compare it on the Runs page.")
        st.page_link("views/generate.py", label="Generate text from it", icon=":material/edit_note:")
    elif status == "stopped":
        st.info(f"Run **{name}** was stopped; it saved a checkpoint and can be resumed below.")
    else:
        st.error(f"Run **{name}** did not finish ({status}). The end of its output:")
        st.code(jobs.log_tail(name, root()) or "(no output)")


def start(args: list[str], name: str) -> None:
    try:
        jobs.start(args, name, root())
    except (jobs.JobBusy, ValueError, OSError) as e:
        st.error(str(e))
        return
    st.session_state["train-watching"] = name
    st.rerun()


job = jobs.current_job(root())
if job:
    st.fragment(follow, run_every=2)(job)
    if st.button("Stop training", key="train-stop",
                 help="Finishes the current step, saves a checkpoint and exits; resume it later below"):
        jobs.stop(root())
        st.toast("Stopping after the current step...")
    st.stop()

if st.session_state.get("train-watching"):
    outcome(st.session_state["train-watching"])

new_tab, resume_tab = st.tabs(["New run", "Resume a run"])
with new_tab:
    invalid = False  # a setting the model would refuse: the start button stays disabled
    mode = st.radio("Start from", ["a preset", "my own settings"], horizontal=True, key="train-mode")
    if mode == "a preset":
        preset = st.selectbox("Preset", list(PRESETS), key="train-preset",
                              format_func=lambda p: f"{p}: {PRESETS[p]['description']}")
        args = ["--preset", preset]
        default_name = preset
    else:
        left, right = st.columns(2)
        family = left.selectbox("Model", ["gpt", "lstm", "mlp", "bigram"], key="train-family")
        tokenizer = right.selectbox("Tokenizer", ["char", "bpe", "word"], key="train-tokenizer")
        args = ["--model", family, "--tokenizer", tokenizer]
        if tokenizer != "char":
            args += ["--vocab-size", str(right.number_input("Vocabulary size", 256, 20000, 1024, key="train-vocab"))]
        if family in ("gpt", "lstm"):
            args += ["--n-layer", str(left.number_input("Layers", 1, 12, 4 if family == "gpt" else 1, key="train-layers"))]
        if family == "gpt":
            heads = right.number_input("Attention heads", 1, 16, 4, key="train-heads")
            width = left.number_input("Width (a multiple of the heads)", 16, 1024, 128, step=16, key="train-width")
            if width % heads:
                st.error(f"The width ({width}) must be divisible by the number of heads ({heads}).")
                invalid = True
            args += ["--n-head", str(heads), "--n-embd", str(width)]
        args += ["--block-size", str(right.number_input("Context length", 8, 1024, 64, key="train-block")),
                 "--steps", str(left.number_input("Steps", 10, 100000, 1000, step=100, key="train-steps")),
                 "--lr", str(right.number_input("Learning rate", 1e-5, 1e-1, 2e-3, format="%.5f", key="train-lr")),
                 "--batch-size", str(left.number_input("Batch size", 1, 512, 12, key="train-batch"))]
        default_name = family
    source = st.radio("Text", ["Shakespeare (complete works)", "upload a .txt file"], horizontal=True,
                      key="train-source")
    upload = None
    if source.startswith("upload"):
        upload = st.file_uploader(f"A UTF-8 text file, up to {MAX_UPLOAD_MB} MB", type=["txt"], key="train-upload")
    name = st.text_input("Run name", f"{default_name}-{dt.datetime.now():%m%d-%H%M%S}", key="train-name")
    if st.button("Start training", type="primary", key="train-start", disabled=invalid):
        try:
            check_run_name(name)
            if (root() / name).exists():
                raise ValueError(f"a run named {name!r} exists already; choose another name")
        except ValueError as e:
            st.error(str(e))
            st.stop()
        if upload is None and source.startswith("upload"):
            st.error("Choose a file to upload first.")
            st.stop()
        if upload is not None:
            try:
                text = decode_text(upload.getvalue(), upload.name, max_bytes=MAX_UPLOAD_MB * 2**20)
            except DataError as e:
                st.error(str(e))
                st.stop()
            path = root() / ".uploads" / f"{name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            args += ["--data", str(path)]
        start([*args, "--name", name], name)

with resume_tab:
    resumable = [r.name for r in list_runs(root()) if r.status() in ("stopped", "failed")]
    if not resumable:
        st.caption("No stopped runs. A run you stop here (or with Ctrl-C) can be continued from its last checkpoint.")
    else:
        chosen = st.selectbox("Run", resumable, key="train-resume-run")
        planned = Run(root() / chosen).read_config()["train"]["max_steps"]
        steps = st.number_input("Train until step", 1, 1_000_000, planned, key="train-resume-steps")
        if st.button("Resume", key="train-resume"):
            start(["--resume", chosen, "--steps", str(steps)], chosen)
