"""The run folder: the one place that knows how a training run is laid out on disk.

    runs/<name>/
        config.json        what was trained on what (model, training and data settings)
        tokenizer.json     the tokenizer, so text can be encoded and decoded later
        metrics.jsonl      one JSON object per line, appended and flushed as training goes
        checkpoints/step_000500/{model.safetensors, trainer.pt, meta.json}
        checkpoints/best.json   which checkpoint has the lowest val loss

The trainer writes it; the CLI, the notebooks and the dashboard read it through this module.
Metrics records have a "kind": "train" (step, tokens, time, train_loss, lr, grad_norm,
tokens_per_s, mfu), "eval" (step, tokens, time, val_loss, val_ppl, val_bpc) or "event"
(event: start | resume | end, with status finished | stopped | failed and a message).
"""
from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def runs_dir() -> Path:
    """The root of all runs: `$LESSON_RUNS_DIR`; else `runs/` in the course's folder when the current
    folder is inside it (so notebooks, run from notebooks/, share runs with the CLI and the app);
    else `runs/` in the current folder."""
    if os.environ.get("LESSON_RUNS_DIR"):
        return Path(os.environ["LESSON_RUNS_DIR"]).expanduser()
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "lesson_lib" / "__init__.py").is_file() and (folder / "pyproject.toml").is_file():
            return folder / "runs"
    return here / "runs"


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


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged (not valid JSON: {e}); delete the file or the run") from None


def check_run_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise ValueError(f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                         "(up to 100 characters, starting with a letter or digit)")
    return name


@dataclass
class Metrics:
    """A run's metrics log as read back: the records, and warnings about lines that were skipped."""

    records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _by_kind: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False, compare=False)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The records of one kind, in order (worked out once: the dashboard asks on every redraw)."""
        if kind not in self._by_kind:
            self._by_kind[kind] = [r for r in self.records if r.get("kind") == kind]
        return self._by_kind[kind]


def read_metrics(path: Path) -> Metrics:
    """Parse a metrics.jsonl. Damaged lines are skipped with a warning, never an exception.

    A "resume" event at step s means the run went back to its checkpoint at step s: records
    logged after that checkpoint by the interrupted attempt are dropped, so the log reads as if
    the run had never stopped.
    """
    out = Metrics()
    path = Path(path)
    if not path.exists():
        return out
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as e:
                out.warnings.append(f"{path.name} line {lineno} skipped: {str(e)[:80]}")
                continue
            if record.get("kind") == "event" and record.get("event") == "resume":
                step = record.get("step", 0)
                out.records = [r for r in out.records if r.get("kind") == "event" or r.get("step", 0) <= step]
            out.records.append(record)
    return out


class Run:
    """A run folder. `Run.create(name)` for a new run, `Run(path)` to open an existing one."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def create(cls, name: str, root: Path | None = None, exist_ok: bool = False) -> "Run":
        check_run_name(name)
        path = Path(root or runs_dir()) / name
        if path.exists() and not exist_ok and any(path.iterdir()):
            raise FileExistsError(f"run {name!r} already exists in {path.parent}; pick another --name, "
                                  "or resume it with --resume")
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, name: str, root: Path | None = None) -> "Run":
        path = Path(root or runs_dir()) / name
        if not (path / "config.json").exists():
            known = [r.name for r in list_runs(root)]
            hint = f"runs here: {', '.join(known)}" if known else "there are no runs yet: train one first"
            raise FileNotFoundError(f"no run named {name!r} in {path.parent} ({hint})")
        return cls(path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer.json"

    @property
    def checkpoints_path(self) -> Path:
        return self.path / "checkpoints"

    def read_config(self) -> dict[str, Any]:
        return read_json(self.config_path)

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to metrics.jsonl and flush it to disk at once."""
        line = json.dumps(record, allow_nan=True, separators=(",", ":")) + "\n"
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def metrics(self) -> Metrics:
        return read_metrics(self.metrics_path)

    @property
    def process_path(self) -> Path:
        return self.path / "process.json"

    def mark_running(self) -> None:
        """Record which process trains this run (removed again by `mark_done`)."""
        write_json(self.process_path, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})

    def mark_done(self) -> None:
        self.process_path.unlink(missing_ok=True)

    def training_pid(self) -> int | None:
        """The pid of the live process training this run, or None."""
        try:
            info = read_json(self.process_path)
        except (FileNotFoundError, ValueError):
            return None
        if info.get("host") != socket.gethostname():
            return None  # another machine's process: cannot be checked from here
        return info["pid"] if pid_alive(info["pid"]) else None

    def status(self, metrics: Metrics | None = None) -> str:
        """training | finished | stopped | failed | new, from the run's files.

        The last event of the log says how the last attempt ended. A run whose log ends on
        "start"/"resume" is training while the process named in process.json is alive, and was
        stopped (killed, or the machine went down) otherwise: it can be resumed.
        """
        metrics = metrics or self.metrics()
        events = metrics.of_kind("event")
        if not events:
            return "training" if self.training_pid() else "new"
        last = events[-1]
        if last.get("event") == "end":
            return str(last.get("status", "finished"))
        return "training" if self.training_pid() else "stopped"

    def summary(self, metrics: Metrics | None = None) -> dict[str, Any]:
        """One row for a table of runs (pass `metrics` if already read)."""
        from .checkpoints import list_checkpoints  # local: checkpoints imports this module

        metrics = metrics or self.metrics()
        try:
            config = self.read_config()
        except (FileNotFoundError, ValueError):
            config = {}
        train = metrics.of_kind("train")
        evals = [r for r in metrics.of_kind("eval") if r.get("val_loss") is not None]
        model = config.get("model", {})
        return {
            "name": self.name,
            "family": model.get("family"),
            "params": config.get("n_params"),
            "tokenizer": config.get("data", {}).get("tokenizer"),
            "steps": train[-1]["step"] if train else 0,
            "tokens": train[-1].get("tokens", 0) if train else 0,
            "best_val_loss": min((r["val_loss"] for r in evals), default=None),
            "checkpoints": len(list_checkpoints(self.path)),
            "status": self.status(metrics),
        }


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def list_runs(root: Path | None = None) -> list[Run]:
    """Every run folder (one holding a config.json) under the runs root, sorted by name."""
    root = Path(root or runs_dir())
    if not root.is_dir():
        return []
    return [Run(p) for p in sorted(root.iterdir()) if (p / "config.json").is_file()]


