"""Train: start a run from a preset or your own settings, follow it live, stop it, resume it later.

The run trains in a background process (lesson_lib.jobs) that outlives this browser tab; one at a
time from the dashboard. The page builds a run spec and hands it to `jobs.start`, which checks it
with the same function as the command line; a configuration predicted not to fit in this
machine's memory is refused before it starts.
"""
import datetime as dt

import streamlit as st
from common import metrics, root

from lesson_lib import checkpoints as ckpt
from lesson_lib import jobs, memory
from lesson_lib.experiment import check_spec
from lesson_lib.models import FAMILIES
from lesson_lib.plots import loss_curves, metrics_frame
from lesson_lib.presets import PRESETS, get_preset
from lesson_lib.runs import Run, check_run_name, list_runs, run_exists
from lesson_lib.tokenizers import TOKENIZER_KINDS

MAX_UPLOAD_MB = jobs.MAX_UPLOAD_BYTES // 2**20

st.title("Train")


def follow() -> None:
    """Progress and live loss curve of the running job; redrawn every two seconds."""
    job = jobs.current_job(root())
    if job is None and not jobs.starting(root()):
        st.rerun()  # it ended: show the outcome and the form again
    if job is None:
        st.info("A training job is starting...")
        return
    run = Run(root() / job.run)
    log = metrics(run)
    train = log.of_kind("train")
    try:
        total = run.read_config()["train"]["max_steps"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        st.info(f"Run **{job.run}** is starting: loading the text and building the tokenizer...")
        return
    step = train[-1]["step"] if train else 0
    evals = log.of_kind("eval")
    last = f"train loss {train[-1]['train_loss']:.3f}" if train else "first steps..."
    if evals:
        last += f" · val loss {evals[-1]['val_loss']:.3f}"
    st.progress(min(step / max(total, 1), 1.0), text=f"**{job.run}**: step {step} of {total} · {last}")
    if train:
        st.plotly_chart(loss_curves({job.run: metrics_frame(log)}, smoothing=0.6), width="stretch")


def outcome(run: Run) -> None:
    """How a run's last attempt ended, however it was started, and where to go from here."""
    o = run.outcome(metrics(run))
    best = f"best val loss {o['best_val_loss']:.4f}" if o["best_val_loss"] is not None else "no evaluation yet"
    said = f"Run **{run.name}** {o['status']} at step {o['steps']} ({best})."
    if o["status"] == "finished":
        st.success(said)
    elif o["status"] == "stopped":
        st.info(f"{said} It can be resumed from its last checkpoint below.")
    else:
        st.error(f"{said} {o['message'] or ''}")
        tail = jobs.log_tail(run.name, root())
        if tail:
            st.code(tail)
    left, right = st.columns(2)
    if o["checkpoints"]:
        left.page_link("views/generate.py", label="Generate text from it", icon=":material/edit_note:",
                       query_params={"run": run.name})
    right.page_link("views/runs.py", label="See its loss curves", icon=":material/monitoring:",
                    query_params={"run": run.name})


def latest_outcome() -> None:
    """The outcome of the most recent run, or why the last job failed before its run existed."""
    runs = list_runs(root())
    latest = max(runs, key=lambda r: r.metrics_path.stat().st_mtime if r.metrics_path.exists() else 0,
                 default=None)
    last_job = jobs.last_job(root())
    if last_job and not run_exists(last_job.run, root()):
        if latest is None or last_job.started > latest.config_path.stat().st_mtime:
            st.error(f"Run **{last_job.run}** did not start. The end of its output:")
            st.code(jobs.log_tail(last_job.run, root()) or "(no output)")
            return
    if latest is not None:
        outcome(latest)


def memory_check(spec: dict, vocab_size: int) -> bool:
    """Show the predicted training memory; False (with the reason) when it would not fit here."""
    model = {**spec["model"], "vocab_size": spec["model"].get("vocab_size", vocab_size)}
    train = spec.get("train", {})
    device = train.get("device", "auto")
    try:
        estimate = memory.predict_training_memory(model, train.get("batch_size", 12), train.get("grad_accum", 1),
                                                  train.get("precision", "auto"), device=device)
        free = memory.check_fits(estimate, device)
    except memory.WillNotFit as e:
        st.error(f"This configuration cannot train here: {e}")
        return False
    except (ValueError, TypeError) as e:
        st.error(str(e))
        return False
    st.caption(f"Predicted training memory: {estimate.total / 2**20:,.0f} MiB"
               + (f" of {free / 2**30:,.1f} GiB available." if free else "."))
    return True


def own_settings() -> dict:
    """A run spec from the form's widgets."""
    left, right = st.columns(2)
    family = left.selectbox("Model", list(FAMILIES), index=list(FAMILIES).index("gpt"), key="train-family")
    tokenizer = right.selectbox("Tokenizer", list(TOKENIZER_KINDS), key="train-tokenizer")
    model = {"family": family,
             "block_size": right.number_input("Context length", 8, 1024, 64, key="train-block")}
    if family in ("gpt", "lstm"):
        model["n_layer"] = left.number_input("Layers", 1, 12, 4 if family == "gpt" else 1, key="train-layers")
    if family == "gpt":
        model["n_head"] = right.number_input("Attention heads", 1, 16, 4, key="train-heads")
        model["n_embd"] = left.number_input("Width (a multiple of the heads)", 16, 1024, 128, step=16,
                                            key="train-width")
    spec = {"tokenizer": tokenizer, "model": model, "preset": None,
            "train": {"max_steps": left.number_input("Steps", 10, 100000, 1000, step=100, key="train-steps"),
                      "lr": right.number_input("Learning rate", 1e-5, 1e-1, 2e-3, format="%.5f", key="train-lr"),
                      "batch_size": left.number_input("Batch size", 1, 512, 12, key="train-batch")}}
    if tokenizer != "char":
        spec["vocab_size"] = right.number_input("Vocabulary size", 256, 20000, 1024, key="train-vocab")
    return spec


def new_run_form() -> None:
    mode = st.radio("Start from", ["a preset", "my own settings"], horizontal=True, key="train-mode")
    if mode == "a preset":
        preset = st.selectbox("Preset", list(PRESETS), key="train-preset",
                              format_func=lambda p: f"{p}: {PRESETS[p]['description']}")
        spec, default_name = {**get_preset(preset), "preset": preset}, preset
    else:
        spec = own_settings()
        default_name = spec["model"]["family"]
    source = st.radio("Text", ["Shakespeare (complete works)", "upload a .txt file"], horizontal=True,
                      key="train-source")
    upload = None
    if source.startswith("upload"):
        upload = st.file_uploader(f"A UTF-8 text file, up to {MAX_UPLOAD_MB} MB", type=["txt"], key="train-upload")
    name = st.text_input("Run name", f"{default_name}-{dt.datetime.now():%m%d-%H%M%S}", key="train-name")
    if st.checkbox("Also write TensorBoard event files", key="train-tensorboard",
                   help=f"Into the run's tensorboard/ folder; open them with: tensorboard --logdir {root()}"):
        spec = {**spec, "train": {**(spec.get("train") or {}), "tensorboard": True}}
    ready = True
    try:
        spec = check_spec({**spec, "data": "shakespeare"})  # the text is checked when it is there
    except (ValueError, TypeError) as e:
        st.error(str(e))
        ready = False
    if ready:  # chars: at most 256 distinct in Shakespeare; an upload's own count where known
        vocab = spec.get("vocab_size") or (len(set(upload.getvalue().decode("utf-8", "ignore"))) if upload else 256)
        ready = memory_check(spec, vocab)
    if not st.button("Start training", type="primary", key="train-start", disabled=not ready):
        return
    try:
        check_run_name(name)
    except ValueError as e:
        st.error(str(e))
        return
    if source.startswith("upload") and upload is None:
        st.error("Choose a file to upload first.")
        return
    try:
        jobs.start(spec, name, root(), upload=upload.getvalue() if upload else None,
                   upload_name=upload.name if upload else "")
    except (jobs.JobBusy, ValueError, TypeError, OSError) as e:
        st.error(str(e))
        return
    st.rerun()


def last_checkpoint_step(run: Run) -> int:
    """The step of the run's newest checkpoint (0 without one): where resuming it continues."""
    try:
        return int(ckpt.read_meta(run.checkpoint("latest"))["step"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return 0


def resume_form() -> None:
    resumable = [r for r in list_runs(root()) if r.status() in ("stopped", "failed")]
    if not resumable:
        st.caption("No stopped runs. A run you stop here (or with Ctrl-C) can be continued from its last checkpoint.")
        return
    chosen = st.selectbox("Run", [r.name for r in resumable], key="train-resume-run")
    run = next(r for r in resumable if r.name == chosen)
    at = last_checkpoint_step(run)
    planned = max(at, 1)
    try:
        planned = max(int(run.read_config()["train"]["max_steps"]), at, 1)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    st.caption(f"It continues from step {at}" + (" (it has no checkpoint: from the start)." if at == 0 else "."))
    steps = st.number_input("Train until step", max(at, 1), 1_000_000, planned, key="train-resume-steps")
    if st.button("Resume", key="train-resume"):
        try:
            jobs.resume(chosen, int(steps), root())
        except (jobs.JobBusy, ValueError, OSError) as e:
            st.error(str(e))
            return
        st.rerun()


if jobs.current_job(root()) or jobs.starting(root()):
    st.fragment(follow, run_every=2)()
    if st.button("Stop training", key="train-stop",
                 help="Finishes the current step, saves a checkpoint and exits; resume it later below"):
        jobs.stop(root())
        st.toast("Stopping after the current step...")
    st.stop()

latest_outcome()
new_tab, resume_tab = st.tabs(["New run", "Resume a run"])
with new_tab:
    new_run_form()
with resume_tab:
    resume_form()
