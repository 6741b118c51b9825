"""Streamlit glue shared by the pages: cached loading, the first-start panel, a run's first prompt.

Everything that is not about Streamlit lives in lesson_lib; this file only adds caching and widgets.
A run's damaged file never breaks a page: lesson_lib's readers raise ValueError (DamagedFile) or OSError
naming the file, and each page shows that for the one run, the others working as before.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st
import torch
from i18n import t

from lesson_lib import jobs
from lesson_lib.experiment import load_trained
from lesson_lib.plots import metrics_frame
from lesson_lib.presets import get_preset
from lesson_lib.runs import Metrics, list_runs, read_metrics, runs_dir
from lesson_lib.tokenizers import load_tokenizer

MAX_CACHED_MODELS = 4  # loaded models kept in memory, shared by all sessions

# This process only generates (training runs in a subprocess). Decoding a small model is a chain of
# tiny operations; spread over several threads, each one waits for threads that a training process
# beside it has pushed off the cores: measured 42 tokens/s on 2 threads against 675 on one.
torch.set_num_threads(1)


def root() -> Path:
    return runs_dir().resolve()


@st.cache_resource(max_entries=256, show_spinner=False)
def _metrics(path: str, mtime_ns: int, size: int):
    # re-read only when the file changed (mtime or size); cache_resource hands every session the same
    # object, where cache_data would unpickle a copy of thousands of records on every rerun. Read-only.
    return read_metrics(Path(path))


def _state(path: Path) -> tuple[str, int, int]:
    """A file's path, mtime and size: a cache key that changes when the file does."""
    try:
        stat = os.stat(path)
    except OSError:  # missing, or out of reach: read (and fail) again when that changes
        return str(path), 0, -1
    return str(path), stat.st_mtime_ns, stat.st_size


def _file_state(run) -> tuple[str, int, int]:
    return _state(run.metrics_path)


def modified(path: Path) -> float:
    """A file's modification time, for sorting runs; 0 when it cannot be read (deleted meanwhile)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def metrics(run) -> Metrics:
    """The run's metrics log, read again only when the file has changed."""
    return _metrics(*_file_state(run))


@st.cache_resource(max_entries=256, show_spinner=False)
def _frame(path: str, mtime_ns: int, size: int):
    return metrics_frame(_metrics(path, mtime_ns, size))


def frame(run) -> pd.DataFrame:
    """The run's metrics as a DataFrame for the plots, built again only when the file has changed."""
    return _frame(*_file_state(run))


@st.cache_data(max_entries=256, show_spinner=False)
def _tokenizer_problem(path: str, mtime_ns: int, size: int) -> str | None:
    try:
        load_tokenizer(path)
    except (ValueError, OSError) as e:
        return str(e)
    return None


def tokenizer_problem(run) -> str | None:
    """Why the run's tokenizer.json cannot be loaded (None if it can); checked again only when the file changes."""
    return _tokenizer_problem(*_state(run.tokenizer_path))


@st.cache_resource(max_entries=MAX_CACHED_MODELS, show_spinner=False)
def _model(run_path: str, checkpoint: str, version: int):
    return load_trained(Path(run_path), checkpoint)


def model(run_path: str, checkpoint: str, version: int):
    """A loaded model, its tokenizer and checkpoint meta; shared by all sessions. `version` changes
    when the checkpoint's weights are rewritten, so a stale model is never served. A damaged file raises
    ValueError (DamagedFile) or OSError naming it."""
    with st.spinner(t("common.loading_model")):  # shown only if loading takes more than half a second
        return _model(run_path, checkpoint, version)


def start_starter_button(key: str) -> None:
    """The one button a newcomer sees: train the starter model in the background."""
    job = jobs.current_job(root())
    if job or jobs.starting(root()):
        st.info(t("common.training", run=job.run if job else t("common.a_new_run")))
        return
    if st.button(t("common.starter_button"), type="primary", key=key, help=t("common.starter_help")):
        try:
            jobs.start({**get_preset("starter"), "preset": "starter"}, "starter", root())
        except (jobs.JobBusy, ValueError, OSError) as e:
            st.error(str(e))
            return
        st.switch_page("views/train.py")


def no_runs_yet(key: str) -> bool:
    """On a fresh install: say so and offer the starter model. True when there are no runs."""
    if list_runs(root()) or jobs.current_job(root()):
        return False
    st.info(t("common.no_runs", root=root()))
    start_starter_button(key)
    return True
