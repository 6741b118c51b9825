"""Files that are never seen half-written, and locks that die with their process.

This module sits below the run folder (`runs.py`) and the checkpoints (`checkpoints.py`), so neither
has to import the other for them:

- `atomic_write` writes a temporary file beside the target, fsyncs it, renames it over the target
  and fsyncs the folder: a reader sees the old file or the new one, and after a crash or a power cut
  the rename is on disk or not at all.
- `read_json` / `write_json`: JSON through `atomic_write`, with errors that name the file.
- `FileLock`: an exclusive OS lock (`fcntl.flock`) on a small file. The kernel holds it for the
  process (or its child, which can inherit it) and drops it when that process exits, however it
  exits: a kill -9 included. So a lock is never stale and never needs deleting, and "is anyone
  writing this?" is asked of the kernel, never guessed from a pid that may have been reused. The
  file also records who took the lock (pid, command), only to name the holder in a refusal.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the course's locks need POSIX (use WSL there)
    fcntl = None

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (on systems that allow opening folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` so that a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged (not valid JSON: {e}); delete the file or the run") from None


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_FULL


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def mib(n: float | None) -> str:
    return "unknown" if n is None else f"{n / 2**20:,.1f} MiB"


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


class LockBusy(RuntimeError):
    """Another live process holds the lock; `holder` is what it recorded about itself ({} if nothing yet)."""

    def __init__(self, message: str, holder: dict[str, Any]):
        super().__init__(message)
        self.holder = holder


def describe_holder(holder: dict[str, Any] | None) -> str:
    """'process 1234 (python -m lesson_lib train ...)', or 'another process' when it has not said yet."""
    if not holder or not isinstance(holder.get("pid"), int):
        return "another process"
    command = holder.get("command")
    return f"process {holder['pid']}" + (f" ({command})" if command else "")


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 65536, 0)
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def lock_holder(path: Path) -> dict[str, Any] | None:
    """None when nobody holds the lock at `path`; else what the holder recorded ({} if nothing yet).

    Asks the kernel: tries a shared lock for an instant. A writer that starts at that instant waits
    for it (see `FileLock.acquire`), so the probe never makes a writer fail.
    """
    _need_fcntl()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class FileLock:
    """An exclusive lock on the file `path`, held from `acquire` until `release` or the holder's exit.

        lock = FileLock(run_folder / "writer.lock").acquire({"run": "starter"})
        ...                        # refused elsewhere with LockBusy naming this process
        lock.release()
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self, info: dict[str, Any] | None = None, wait: float = 1.0) -> "FileLock":
        """Take the lock, or raise LockBusy naming the holder. `wait`: seconds to retry first."""
        _need_fcntl()
        if self.fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockBusy(f"{self.path} is held by {describe_holder(holder)}", holder) from None
                time.sleep(0.01)
        self.fd = fd
        self.record(info or {})
        return self

    def record(self, info: dict[str, Any]) -> None:
        """Say who holds the lock (read by whoever is refused). Only the holder writes here."""
        assert self.fd is not None, "record() needs the lock held"
        data = {"pid": os.getpid(), "command": _command(), "since": time.time(), **info}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, (json.dumps(data) + "\n").encode("utf-8"), 0)

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        os.close(fd)  # closing the last descriptor of the open file drops the flock

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        self.release()


def _command() -> str:
    program = Path(sys.argv[0] or "python")
    if program.name == "__main__.py":  # python -m package
        program = Path(f"python -m {program.parent.name}")
    return " ".join([program.name, *sys.argv[1:]])[:200]


def _need_fcntl() -> None:
    if fcntl is None:
        raise RuntimeError("lesson_lib's run and job locks need a POSIX system (Linux, macOS, or WSL on Windows)")
