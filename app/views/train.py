"""Train: start a run from a preset or your own settings, follow it live, stop it, resume it later.

The run trains in a background process (lesson_lib.jobs) that outlives this browser tab; one at a
time from the dashboard. The page builds a run spec and hands it to `jobs.start`, which checks it
with the same function as the command line; a configuration predicted not to fit in this
machine's memory is refused before it starts, and so is an uploaded file that is not trainable text
(empty, not UTF-8, too big), before any model or memory check. A run whose config, tokenizer or log
cannot be read is not offered for resuming, and the page says why.
"""
import datetime as dt

import streamlit as st
from common import metrics, modified, root, tokenizer_problem
from i18n import chart_titles, preset_description, shown_as, status, t

from lesson_lib import checkpoints as ckpt
from lesson_lib import jobs, memory
from lesson_lib.data import DataError, decode_text
from lesson_lib.experiment import check_spec
from lesson_lib.models import FAMILIES
from lesson_lib.plots import loss_curves, metrics_frame
from lesson_lib.presets import PRESETS, get_preset
from lesson_lib.runs import Run, check_run_name, list_runs, run_exists
from lesson_lib.tokenizers import TOKENIZER_KINDS

MAX_UPLOAD_MB = jobs.MAX_UPLOAD_BYTES // 2**20

st.title(t("train.title"))


def planned_steps(run: Run) -> int | None:
    """The step budget in the run's config.json (None if it has none); ValueError (DamagedFile) or OSError
    when the file cannot be read."""
    steps = run.read_config()["train"].get("max_steps")
    return steps if isinstance(steps, int) and not isinstance(steps, bool) else None


def follow() -> None:
    """Progress and live loss curve of the running job; redrawn every two seconds."""
    job = jobs.current_job(root())
    if job is None and not jobs.starting(root()):
        st.rerun()  # it ended: show the outcome and the form again
    if job is None:
        st.info(t("train.job_starting"))
        return
    run = Run(root() / job.run)
    log = metrics(run)
    train = log.of_kind("train")
    try:
        total = planned_steps(run)
    except (ValueError, OSError):  # not written yet (or damaged meanwhile)
        total = None
    if total is None:
        st.info(t("train.run_starting", run=job.run))
        return
    step = train[-1]["step"] if train else 0
    evals = log.of_kind("eval")
    last = t("train.train_loss", loss=train[-1]["train_loss"]) if train else t("train.first_steps")
    if evals:
        last += t("train.val_loss", loss=evals[-1]["val_loss"])
    st.progress(min(step / max(total, 1), 1.0),
                text=t("train.progress", run=job.run, step=step, total=total, last=last))
    if train:
        st.plotly_chart(loss_curves({job.run: metrics_frame(log)}, smoothing=0.6, titles=chart_titles()),
                        width="stretch")


def outcome(run: Run) -> None:
    """How a run's last attempt ended, however it was started, and where to go from here."""
    o = run.outcome(metrics(run))  # never raises: "problem" says which file is damaged
    if o["problem"]:
        st.warning(t("train.damaged", name=run.name, error=o["problem"]))
        if o["status"] == "new":  # its log says nothing either
            return
    best = t("train.best", loss=o["best_val_loss"]) if o["best_val_loss"] is not None else t("train.no_eval")
    said = t("train.outcome", name=run.name, status=status(o["status"]), steps=o["steps"], best=best)
    if o["status"] == "finished":
        st.success(said)
    elif o["status"] == "stopped":
        st.info(t("train.resumable", outcome=said))
    else:
        st.error(f"{said} {o['message'] or ''}")  # the message is lesson_lib's, as it was written
        tail = jobs.log_tail(run.name, root())
        if tail:
            st.code(tail)
    left, right = st.columns(2)
    if o["checkpoints"]:
        left.page_link("views/generate.py", label=t("train.link_generate"), icon=":material/edit_note:",
                       query_params={"run": run.name})
    right.page_link("views/runs.py", label=t("train.link_curves"), icon=":material/monitoring:",
                    query_params={"run": run.name})


def latest_outcome() -> None:
    """The outcome of the most recent run, or why the last job failed before its run existed."""
    runs = list_runs(root())
    latest = max(runs, key=lambda r: modified(r.metrics_path), default=None)
    last_job = jobs.last_job(root())
    if last_job and not run_exists(last_job.run, root()):
        if latest is None or last_job.started > modified(latest.config_path):
            st.error(t("train.did_not_start", run=last_job.run))
            st.code(jobs.log_tail(last_job.run, root()) or t("train.no_output"))
            return
    if latest is not None:
        outcome(latest)


# what the Text choice offers: the named corpora, then a file of one's own
SOURCES = ("shakespeare", "tang", "upload")
# at most this many distinct characters (measured: Shakespeare 84; the Tang poems 9,269 simplified)
CHAR_VOCAB_BOUND = {"shakespeare": 256, "tang": 10_000}  # an upload not yet chosen: 256


def follow_preset_corpus() -> None:
    """A preset picked: the Text choice follows its corpus (the learner may change it again)."""
    data = PRESETS[st.session_state["train-preset"]].get("data")
    if data in SOURCES:
        st.session_state["train-source"] = data


def memory_check(spec: dict, vocab_size: int) -> bool:
    """Show the predicted training memory; False (with the reason) when it would not fit here."""
    model = {**spec["model"], "vocab_size": spec["model"].get("vocab_size", vocab_size)}
    train = spec.get("train", {})
    device = train.get("device", "auto")
    try:
        estimate = memory.predict_training_memory(model, train.get("batch_size", 12), train.get("grad_accum", 1),
                                                  train.get("precision", "auto"), train.get("optimizer", "adamw"),
                                                  device=device)
        free = memory.check_fits(estimate, device)
    except memory.WillNotFit as e:
        st.error(t("train.cannot_fit", error=e))
        return False
    except (ValueError, TypeError) as e:
        st.error(str(e))
        return False
    mib = estimate.total / 2**20
    st.caption(t("train.memory_free", mib=mib, gib=free / 2**30) if free else t("train.memory", mib=mib))
    return True


def own_settings() -> dict:
    """A run spec from the form's widgets."""
    left, right = st.columns(2)
    family = left.selectbox(t("train.family"), list(FAMILIES), index=list(FAMILIES).index("gpt"), key="train-family")
    tokenizer = right.selectbox(t("train.tokenizer"), list(TOKENIZER_KINDS), key="train-tokenizer")
    model = {"family": family,
             "block_size": right.number_input(t("train.block"), 8, 1024, 64, key="train-block")}
    if family in ("gpt", "lstm"):
        model["n_layer"] = left.number_input(t("train.layers"), 1, 12, 4 if family == "gpt" else 1,
                                             key="train-layers")
    if family == "gpt":
        model["n_head"] = right.number_input(t("train.heads"), 1, 16, 4, key="train-heads")
        model["n_embd"] = left.number_input(t("train.width"), 16, 1024, 128, step=16, key="train-width")
    spec = {"tokenizer": tokenizer, "model": model, "preset": None,
            "train": {"max_steps": left.number_input(t("train.steps"), 10, 100000, 1000, step=100, key="train-steps"),
                      "lr": right.number_input(t("train.lr"), 1e-5, 1e-1, 2e-3, format="%.5f", key="train-lr"),
                      "batch_size": left.number_input(t("train.batch"), 1, 512, 12, key="train-batch")}}
    if tokenizer != "char":
        spec["vocab_size"] = right.number_input(t("train.vocab"), 256, 20000, 1024, key="train-vocab")
    return spec


def new_run_form() -> None:
    modes = {m: t(f"train.mode.{m}") for m in ("preset", "own")}
    mode = st.radio(t("train.mode"), list(modes), format_func=shown_as("train-mode", modes), horizontal=True,
                    key="train-mode")
    if mode == "preset":
        presets = {p: f"{p}: {preset_description(p)}" for p in PRESETS}
        preset = st.selectbox(t("train.preset"), list(presets), key="train-preset",
                              format_func=shown_as("train-preset", presets), on_change=follow_preset_corpus)
        spec, default_name = {**get_preset(preset), "preset": preset}, preset
    else:
        spec = own_settings()
        default_name = spec["model"]["family"]
    sources = {s: t(f"train.source.{s}") for s in SOURCES}
    source = st.radio(t("train.source"), list(sources), format_func=shown_as("train-source", sources), horizontal=True,
                      key="train-source")
    upload = text = None
    if source == "upload":
        upload = st.file_uploader(t("train.upload", mb=MAX_UPLOAD_MB), type=["txt"], key="train-upload")
    name = st.text_input(t("train.name"), f"{default_name}-{dt.datetime.now():%m%d-%H%M%S}", key="train-name")
    if st.checkbox(t("train.tensorboard"), key="train-tensorboard", help=t("train.tensorboard_help", root=root())):
        spec = {**spec, "train": {**(spec.get("train") or {}), "tensorboard": True}}
    ready = True
    if upload is not None:  # the text first: an empty file is not a model with no vocabulary
        try:
            text = decode_text(upload.getvalue(), upload.name, max_bytes=jobs.MAX_UPLOAD_BYTES)
        except DataError as e:
            st.error(t("train.bad_upload", error=e))
            ready = False
    if ready:
        try:
            # the spec with a stand-in corpus for an upload (jobs.start writes its text to a file of its own)
            spec = check_spec({**spec, "data": source if source != "upload" else "shakespeare"})
        except (ValueError, TypeError) as e:
            st.error(str(e))
            ready = False
    if ready:  # characters: a bound for a named corpus, an upload's own count where known
        vocab = spec.get("vocab_size") or (len(set(text)) if text is not None else CHAR_VOCAB_BOUND.get(source, 256))
        ready = memory_check(spec, vocab)
    if not st.button(t("train.start"), type="primary", key="train-start", disabled=not ready):
        return
    try:
        check_run_name(name)
    except ValueError as e:
        st.error(str(e))
        return
    if source == "upload" and upload is None:
        st.error(t("train.choose_file"))
        return
    try:
        jobs.start(spec, name, root(), upload=upload.getvalue() if upload else None,
                   upload_name=upload.name if upload else "")
    except (jobs.JobBusy, ValueError, TypeError, OSError) as e:
        st.error(str(e))
        return
    st.rerun()


def resume_start(run: Run) -> tuple[int, list[str]]:
    """Where resuming the run continues: the step of its newest checkpoint whose meta.json reads (0 without
    one), and what is wrong with the newer ones, newest first (resuming skips a damaged checkpoint)."""
    damaged = []
    for folder in reversed(run.checkpoints()):
        try:
            return ckpt.read_meta(folder)["step"], damaged
        except (ValueError, OSError) as e:
            damaged.append(str(e))
    return 0, damaged


def resume_problem(run: Run, log) -> str | None:
    """Why the run cannot be resumed, in lesson_lib's words naming the file: its config.json, its log or its
    tokenizer cannot be read (None: it can be; a damaged checkpoint is skipped by resuming, see resume_start)."""
    try:
        run.read_config()
    except (ValueError, OSError) as e:
        return str(e)
    if log.warnings and not log.records:  # the log cannot be read at all (a folder, no permission)
        return log.warnings[0]
    return tokenizer_problem(run)


def resumable_runs() -> tuple[list[Run], int]:
    """The stopped and failed runs that can be resumed, and how many damaged ones were left out (each with a
    warning saying which file and how)."""
    offered, refused = [], 0
    for run in list_runs(root()):
        log = metrics(run)
        unreadable_log = bool(log.warnings) and not log.records  # its state is not known
        if run.status(log) not in ("stopped", "failed") and not unreadable_log:
            continue
        problem = resume_problem(run, log)
        if problem:
            st.warning(t("train.cannot_resume", name=run.name, error=problem))
            refused += 1
        else:
            offered.append(run)
    return offered, refused


def resume_form() -> None:
    resumable, refused = resumable_runs()
    if not resumable:
        if not refused:  # else the warnings above said why
            st.caption(t("train.no_stopped"))
        return
    chosen = st.selectbox(t("train.resume_run"), [r.name for r in resumable], key="train-resume-run")
    run = next(r for r in resumable if r.name == chosen)
    at, damaged = resume_start(run)
    if damaged:
        st.warning(t("train.skips_damaged", name=run.name, count=len(damaged), first=damaged[0]))
    try:
        planned = max(planned_steps(run) or 0, at, 1)
    except (ValueError, OSError):  # checked above; changed since
        planned = max(at, 1)
    st.caption(t("train.continues_from_scratch" if at == 0 else "train.continues", at=at))
    steps = st.number_input(t("train.until"), max(at, 1), 1_000_000, planned, key="train-resume-steps")
    if st.button(t("train.resume"), key="train-resume"):
        try:
            jobs.resume(chosen, int(steps), root())
        except (jobs.JobBusy, ValueError, OSError) as e:
            st.error(str(e))
            return
        st.rerun()


if jobs.current_job(root()) or jobs.starting(root()):
    st.fragment(follow, run_every=2)()
    if st.button(t("train.stop"), key="train-stop", help=t("train.stop_help")):
        jobs.stop(root())
        st.toast(t("train.stopping"))
    st.stop()

latest_outcome()
new_tab, resume_tab = st.tabs([t("train.tab_new"), t("train.tab_resume")])
with new_tab:
    new_run_form()
with resume_tab:
    resume_form()
