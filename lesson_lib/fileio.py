"""Files that are never seen half-written, and locks that die with their process.

This module sits below the run folder (`runs.py`) and the checkpoints (`checkpoints.py`), so neither
has to import the other for them:

- `atomic_write` writes a temporary file beside the target, fsyncs it, renames it over the target
  and fsyncs the folder: a reader sees the old file or the new one, and after a crash or a power cut
  the rename is on disk or not at all.
- `read_json` / `write_json`: JSON through `atomic_write`, with errors that name the file.
- `FileLock`: an exclusive OS lock (`fcntl.flock`) on the folder that holds a small info file. The
  kernel holds it for the process (or its child, which can inherit it) and drops it when that
  process exits, however it exits: a kill -9 included. So a lock is never stale and never needs
  deleting, and "is anyone writing this?" is asked of the kernel, never guessed from a pid that may
  have been reused. The lock is on the folder, not on the info file, so deleting the file (a habit
  people have with "stale" lock files) cannot let a second writer in. The info file records who took
  the lock (pid, command), only to name the holder in a refusal.
- `DamagedFile`: a file that is there but cannot be used (not JSON, the wrong shape, a folder where a
  file should be); its message names the file and says what to do.
- `refuse_link` / `append_bytes`: nothing written or deleted here follows a symbolic link.
"""
from __future__ import annotations

import errno
import glob
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


class DamagedFile(ValueError):
    """A file that is there but cannot be used; the message names it, says how it is damaged and what to do."""


def read_json(path: Path, what_to_do: str = "delete the file or the run") -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except IsADirectoryError:
        raise DamagedFile(f"{path} is damaged: it is a folder, not a file; {what_to_do}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedFile(f"{path} is damaged (not valid JSON: {e}); {what_to_do}") from None


def read_json_object(path: Path, what_to_do: str = "delete the file or the run") -> dict[str, Any]:
    """A JSON file that must hold an object ({...}): a list, a number or a string there is damage."""
    data = read_json(path, what_to_do)
    if not isinstance(data, dict):
        raise DamagedFile(f"{path} is damaged: it holds a JSON {type(data).__name__}, not an object; {what_to_do}")
    return data


def remove_leftover_temporaries(folder: Path, names: tuple[str, ...]) -> None:
    """Delete the temporary files `atomic_write` (or `FileLock.record`) left in `folder` for these file
    names when its process was killed mid-write (`.NAME.*.tmp`). Call it only holding the lock that
    every writer of those files holds: then no live process is writing them."""
    for name in names:
        for leftover in Path(folder).glob(f".{glob.escape(name)}.*.tmp"):
            if leftover.is_symlink() or leftover.is_file():
                leftover.unlink(missing_ok=True)


def refuse_link(path: Path) -> None:
    """Raise if `path` is a symbolic link: a writer here never writes or deletes through one."""
    path = Path(path)
    if path.is_symlink():
        raise DamagedFile(f"{path} is a symbolic link (to {os.readlink(path)}): lesson_lib writes only real files "
                          "and folders inside a run folder, and never through a link to somewhere else. Replace the "
                          "link with the file or folder itself (or delete it), then try again")


def append_bytes(path: Path, data: bytes, start_on_fresh_line: bool = False) -> None:
    """Append `data` to `path` (created if missing) and fsync it; refuse if `path` is a symbolic link.

    With `start_on_fresh_line`, a file that does not end in a line break (a line torn by a crash) gets
    one first, so the torn line stays one damaged line and `data` is read back intact."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            refuse_link(path)
        if e.errno == errno.EISDIR:
            raise DamagedFile(f"{path} is damaged: it is a folder, not a file; move it away, then try again") from None
        raise
    try:
        size = os.fstat(fd).st_size
        if start_on_fresh_line and size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _read_holder(path: Path) -> dict[str, Any]:
    """What the lock's holder recorded about itself ({} when nothing readable is there)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return {}
    try:
        raw = os.read(fd, 65536)
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    return holder if isinstance(holder, dict) else {}


def _open_folder(folder: Path) -> int:
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def lock_holder(path: Path) -> dict[str, Any] | None:
    """None when nobody holds the lock of `path` (see FileLock); else what the holder recorded ({} if
    nothing, or if its info file was deleted).

    Asks the kernel: tries a shared lock on the folder for an instant. A writer that starts at that
    instant waits for it (see `FileLock.acquire`), so the probe never makes a writer fail.
    """
    _need_fcntl()
    try:
        fd = _open_folder(Path(path).parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class FileLock:
    """An exclusive lock named by the info file `path`, held from `acquire` until `release` or the holder's exit.

        lock = FileLock(run_folder / "writer.lock").acquire({"run": "starter"})
        ...                        # refused elsewhere with LockBusy naming this process
        lock.release()

    The kernel lock is taken on `path`'s folder (one FileLock per folder), so it holds whatever
    happens to the file `path`: deleted, replaced or never written. `path` only says who holds it.
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
        fd = _open_folder(self.path.parent)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    holder = _read_holder(self.path)
                    raise LockBusy(f"{self.path.parent} is locked by {describe_holder(holder)}", holder) from None
                time.sleep(0.01)
        self.fd = fd
        try:
            self.record(info or {})
        except BaseException:
            self.release()
            raise
        return self

    def record(self, info: dict[str, Any]) -> None:
        """Say who holds the lock (read by whoever is refused). Only the holder writes here; the info file
        is replaced, never written through (a symbolic link at `path` is replaced, not followed)."""
        assert self.fd is not None, "record() needs the lock held"
        data = {"pid": os.getpid(), "command": _command(), "since": time.time(), **info}
        try:
            atomic_write(self.path, json.dumps(data) + "\n")  # a new file renamed over the path: a link is replaced
        except IsADirectoryError:
            raise DamagedFile(f"{self.path} is a folder, not a file: move it away, then try again") from None

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        os.close(fd)  # closing the last descriptor of the open folder drops the flock

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
