"""Training in a background process that outlives whoever started it (a browser tab, a notebook).

The dashboard starts `python -m lesson_lib train ...` in a new process session, so closing the tab
or restarting the dashboard leaves the run training. One job at a time: a lock file in the runs
folder names the process; a second start is refused while that process lives. Stopping sends
SIGTERM, which the trainer turns into "finish this step, save a checkpoint, exit" (resumable).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .runs import check_run_name, pid_alive, runs_dir

LOCK_NAME = ".training-job.json"


class JobBusy(RuntimeError):
    """A training job is already running."""


@dataclass(frozen=True)
class Job:
    pid: int
    run: str  # the run folder's name
    started: float  # time.time() at start

    def alive(self) -> bool:
        return pid_alive(self.pid) and not _is_zombie(self.pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _lock_path(root: Path | None) -> Path:
    return Path(root or runs_dir()) / LOCK_NAME


def current_job(root: Path | None = None) -> Job | None:
    """The job training now, or None (a lock left by a process that has died is removed)."""
    path = _lock_path(root)
    try:
        job = Job(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)  # damaged: nothing can be running under it
        return None
    if job.alive():
        return job
    path.unlink(missing_ok=True)
    return None


def start(args: list[str], run: str, root: Path | None = None) -> Job:
    """Start `python -m lesson_lib train ARGS` for run `run` in the background; refuse if a job runs."""
    root = Path(root or runs_dir())
    check_run_name(run)
    root.mkdir(parents=True, exist_ok=True)
    existing = current_job(root)
    if existing:
        raise JobBusy(f"run {existing.run!r} is training (process {existing.pid}); only one training job runs at "
                      "a time: wait for it to finish or stop it first")
    log_path = log_file(run, root)
    log_path.parent.mkdir(exist_ok=True)
    lock = _lock_path(root)
    try:  # O_EXCL: of two sessions pressing Start at once, exactly one gets the lock
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        raise JobBusy("another training job is starting right now; only one runs at a time") from None
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "lesson_lib", "train", *args, "--quiet"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "LESSON_RUNS_DIR": str(root)}, start_new_session=True)
        job = Job(pid=process.pid, run=run, started=time.time())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(job.__dict__, f)
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    return job


def stop(root: Path | None = None) -> bool:
    """Ask the running job to stop after its current step (it saves a checkpoint). False if none runs."""
    job = current_job(root)
    if job is None:
        return False
    try:
        os.kill(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def wait(job: Job, timeout: float = 60.0) -> bool:
    """Block until `job` has exited (True) or `timeout` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.waitpid(job.pid, os.WNOHANG)  # reap it if it is our child, so it does not linger as a zombie
        except ChildProcessError:
            pass
        if not job.alive():
            return True
        time.sleep(0.05)
    return False


def log_file(run: str, root: Path | None = None) -> Path:
    """Where a job's output goes: what it printed before its run folder could say why it failed."""
    return Path(root or runs_dir()) / ".logs" / f"{run}.log"


def log_tail(run: str, root: Path | None = None, lines: int = 20) -> str:
    """The last lines a job for `run` printed ('' if there is no log)."""
    try:
        text = log_file(run, root).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
