"""Training in a background process that outlives whoever started it (a browser tab, a notebook).

The dashboard starts `python -m lesson_lib train --spec FILE --name NAME` in a new process session,
so closing the tab or restarting the dashboard leaves the run training. One job at a time:

    runs/.jobs/job.lock        an OS lock (fileio.FileLock). The starting process takes it, starts the
                               job with the lock's descriptor, and lets go: from then on the job holds
                               it until it exits, however it exits. It also records the job's pid and run.
    runs/.jobs/NAME.spec.json  what the job trains: a run spec checked by the same `check_spec` as the
                               CLI and the notebooks, never command-line strings re-parsed
    runs/.jobs/NAME.log        what the job printed (why it failed, if it failed before its run could say)
    runs/.uploads/NAME-XXXXXXXX.txt   an uploaded text, written only once the lock is taken

A second start is refused while the lock is held. Stopping sends SIGTERM, which the trainer turns
into "finish this step, save a checkpoint, exit" (resumable); it is sent only to the process that
holds the lock now, never to a pid remembered from before (it may belong to someone else by then).
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import decode_text
from .experiment import check_spec
from .fileio import FileLock, LockBusy, atomic_write, lock_holder, read_json, write_json
from .runs import Run, check_run_name, run_exists, runs_dir

MAX_UPLOAD_BYTES = 10 * 2**20  # the dashboard's upload limit (Streamlit's server.maxUploadSize says the same)


class JobBusy(RuntimeError):
    """A training job is already running."""


@dataclass(frozen=True)
class Job:
    pid: int
    run: str  # the run folder's name
    started: float  # time.time() at start
    root: str = ""  # the runs folder it trains in

    def alive(self) -> bool:
        """Whether this job still holds the job lock (it has not exited)."""
        holder = lock_holder(_lock_path(Path(self.root) if self.root else None))
        return holder is not None and holder.get("pid") == self.pid


def _folder(root: Path | None) -> Path:
    return Path(root or runs_dir()) / ".jobs"


def _lock_path(root: Path | None) -> Path:
    return _folder(root) / "job.lock"


def _job(info: dict[str, Any] | None, root: Path | None) -> Job | None:
    if not info or info.get("starting") or not isinstance(info.get("pid"), int) or not isinstance(info.get("run"), str):
        return None  # nothing recorded yet, or still the starter's own record
    return Job(info["pid"], info["run"], float(info.get("started", 0.0)), str(Path(root or runs_dir())))


def current_job(root: Path | None = None) -> Job | None:
    """The job training now, or None. While a job is being started it may not have said its pid
    yet: `starting(root)` is True then."""
    return _job(lock_holder(_lock_path(root)), root)


def starting(root: Path | None = None) -> bool:
    """Whether the job lock is held by a job that has not yet recorded who it is."""
    holder = lock_holder(_lock_path(root))
    return holder is not None and _job(holder, root) is None


def last_job(root: Path | None = None) -> Job | None:
    """The most recent job started from here, running or not (the lock file keeps what it recorded)."""
    try:
        info = read_json(_lock_path(root))
    except (FileNotFoundError, ValueError):
        return None
    return _job(info if isinstance(info, dict) else None, root)


def start(spec: dict[str, Any], name: str, root: Path | None = None, upload: bytes | None = None,
          upload_name: str = "upload.txt") -> Job:
    """Train `spec` as run `name` in the background (on `upload`'s text if given); refuse if a job runs.

    Everything is checked before anything is written: the spec, the name, the uploaded text.
    """
    root = Path(root or runs_dir())
    check_run_name(name)
    if upload is not None:
        text = decode_text(upload, upload_name, max_bytes=MAX_UPLOAD_BYTES)
        spec = {**spec, "data": "shakespeare"}  # a placeholder until the text has its own file
    spec = check_spec(spec)
    if run_exists(name, root):
        raise ValueError(f"a run named {name!r} exists already; choose another name (or resume it)")
    with _job_lock(root, name) as lock:
        if upload is not None:
            path = root / ".uploads" / f"{name}-{secrets.token_hex(4)}.txt"
            atomic_write(path, text)
            spec["data"] = str(path)
        spec_path = _folder(root) / f"{name}.spec.json"
        write_json(spec_path, spec)
        return _spawn(["--spec", str(spec_path), "--name", name], name, root, lock)


def resume(name: str, max_steps: int | None = None, root: Path | None = None) -> Job:
    """Continue run `name` in the background from its newest checkpoint, optionally to `max_steps`."""
    root = Path(root or runs_dir())
    run = Run.open(name, root)
    writer = run.writer()
    if writer is not None:
        raise JobBusy(f"run {name!r} is being trained by process {writer.get('pid', '?')} already")
    with _job_lock(root, name) as lock:
        return _spawn(["--resume", name, *(["--steps", str(max_steps)] if max_steps else [])], name, root, lock)


class _job_lock:
    """The job lock, taken for the time it takes to start a job (which then holds it itself)."""

    def __init__(self, root: Path, name: str):
        self.lock, self.name = FileLock(_lock_path(root)), name

    def __enter__(self) -> FileLock:
        try:
            self.lock.acquire({"run": self.name, "starting": True}, wait=0.2)
        except LockBusy as e:
            running = e.holder.get("run") if isinstance(e.holder, dict) else None
            what = f"run {running!r} is training (process {e.holder.get('pid')})" if running else "a job is starting"
            raise JobBusy(f"{what}; only one training job runs at a time: wait for it to finish or stop it "
                          "first") from None
        return self.lock

    def __exit__(self, *exc) -> None:
        self.lock.release()  # the job, if it started, holds the lock through its own descriptor


def _spawn(train_args: list[str], name: str, root: Path, lock: FileLock) -> Job:
    log_path = log_file(name, root)
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lesson_lib", "train", *train_args, "--quiet"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(lock.fd,),
            env={**os.environ, "LESSON_RUNS_DIR": str(root)}, start_new_session=True)
    job = Job(pid=process.pid, run=name, started=time.time(), root=str(root))
    lock.record({"pid": job.pid, "run": name, "started": job.started,
                 "command": " ".join(["python -m lesson_lib train", *train_args])})
    return job


def stop(root: Path | None = None) -> bool:
    """Ask the running job to stop after its current step (it saves a checkpoint). False if none runs.

    The signal goes to the process holding the job lock at this moment, and only if it is a
    lesson_lib process: a pid whose job has ended may already name some other program.
    """
    job = current_job(root)
    if job is None or not _is_lesson_process(job.pid):
        return False
    try:
        os.kill(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def _is_lesson_process(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc (macOS): the lock alone vouches for it
    except OSError:
        return False
    return b"lesson_lib" in command


def wait(job: Job, timeout: float = 60.0) -> bool:
    """Block until `job` has exited (True) or `timeout` seconds pass (False)."""
    deadline = time.time() + timeout
    while True:
        try:
            os.waitpid(job.pid, os.WNOHANG)  # reap it if it is our child, so it does not linger as a zombie
        except ChildProcessError:
            pass
        if not job.alive():
            return True
        if time.time() >= deadline:
            return False
        time.sleep(0.05)


def log_file(run: str, root: Path | None = None) -> Path:
    """Where a job's output goes: what it printed before its run folder could say why it failed."""
    folder = _folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{check_run_name(run)}.log"


def log_tail(run: str, root: Path | None = None, lines: int = 20) -> str:
    """The last lines a job for `run` printed ('' if there is no log)."""
    try:
        text = log_file(run, root).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
