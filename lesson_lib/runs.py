"""The run folder: the one place that knows how a training run is laid out on disk.

    runs/<name>/
        writer.lock        held (an OS lock) by the one process writing this run, for as long as it lives
        config.json        what was trained on what (model, training and data settings)
        tokenizer.json     the tokenizer, so text can be encoded and decoded later
        metrics.jsonl      one JSON object per line, appended and flushed as training goes
        checkpoints/       see checkpoints.py: step_0000500/{model.safetensors, trainer.pt, meta.json}, best.json
        tensorboard/       TensorBoard event files, only when the run asked for them (see tensorboard.py)

The trainer writes it; the CLI, the notebooks and the dashboard read it through this module.
Metrics records have a "kind": "train" (step, tokens, time, train_loss, lr, grad_norm,
tokens_per_s, mfu), "eval" (step, tokens, time, val_loss, val_ppl, val_bpc) or "event"
(event: start | resume | end, with status finished | stopped | failed and a message).

One writer per run: `Run.create` and `Run.acquire` take the run's writer lock (see fileio.FileLock:
the kernel lock is on the run's folder, writer.lock only names the holder), and a second process is
refused with a message naming the first. Whether a run is training is whether its lock is held: no
pid is trusted after its process may have died. A writer never writes or deletes through a symbolic
link: one in the run folder is refused when the lock is taken.

Every reader of a run file says which file is damaged and how (`DamagedFile`, a ValueError), and a
damaged run never hides the others: `summary` reads what it can and says what it could not.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checkpoints as ckpt
from .fileio import (DamagedFile, FileLock, LockBusy, append_bytes, describe_holder, lock_holder, read_json_object,
                     refuse_link, remove_leftover_temporaries, write_json)

_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # whole names only: fullmatch, so no trailing newline
STATUSES = ("new", "training", "finished", "stopped", "failed")


class RunBusy(LockBusy):
    """Another live process is writing this run."""


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


def check_run_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_OK.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
                         "(up to 100 characters, starting with a letter or digit)")
    return name


# --- the metrics log -------------------------------------------------------------------------------

_NUMBERS = ("tokens", "time", "train_loss", "lr", "grad_norm", "tokens_per_s", "mfu", "val_loss", "val_ppl",
            "val_bpc")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _problem(record: Any) -> str | None:
    """Why a parsed line cannot be used as a record (None if it can)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    kind = record.get("kind")
    if kind in ("train", "eval", "event") and "step" not in record:
        return f"a {kind} record without a step"
    if "step" in record and (not isinstance(record["step"], int) or isinstance(record["step"], bool)
                             or record["step"] < 0):
        return f"step {record['step']!r} is not a whole number"
    for key in _NUMBERS:
        if record.get(key) is not None and not _is_number(record[key]):
            return f"{key} {record[key]!r} is not a number"
    if kind == "train" and record.get("train_loss") is None:
        return "a train record without train_loss"
    if kind == "eval" and record.get("val_loss") is None:
        return "an eval record without val_loss"
    if kind == "event" and not isinstance(record.get("event"), str):
        return "an event record without an event name"
    return None


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
    """Parse a metrics.jsonl. A damaged line (torn by a crash, not JSON, wrong types) is skipped with a
    warning, never an exception.

    A "resume" event at step s means the run went back to its checkpoint at step s: records
    logged after that checkpoint by the interrupted attempt are dropped, so the log reads as if
    the run had never stopped.
    """
    out = Metrics()
    path = Path(path)
    if not path.exists():
        return out
    try:
        f = open(path, "rb")
    except OSError as e:  # a folder where the log should be, no permission: a damaged log, not a crash
        out.warnings.append(f"{path} cannot be read ({e.strerror or e}): no record of this run is shown")
        return out
    with f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                out.warnings.append(f"{path.name} line {lineno} skipped: {str(e)[:80]}")
                continue
            problem = _problem(record)
            if problem:
                out.warnings.append(f"{path.name} line {lineno} skipped: {problem}")
                continue
            if record.get("kind") == "event" and record.get("event") == "resume":
                step = record["step"]
                out.records = [r for r in out.records if r.get("kind") == "event" or r.get("step", 0) <= step]
            out.records.append(record)
    return out


def append_lines(path: Path, records: list[dict[str, Any]]) -> None:
    """Append JSON records, one a line, and flush them to disk at once.

    If the file ends in a torn line (a crash mid-write), the records start on a fresh line, so the
    torn line stays one damaged line that readers skip, and these records are read back intact.
    """
    line = "".join(json.dumps(record, allow_nan=True, separators=(",", ":")) + "\n" for record in records)
    append_bytes(path, line.encode("utf-8"), start_on_fresh_line=True)  # never through a symbolic link


# --- the run folder --------------------------------------------------------------------------------

class Run:
    """A run folder. `Run.create(name)` claims a new one for writing; `Run.open(name)` reads an existing one."""

    LOCK_NAME = "writer.lock"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = FileLock(self.path / self.LOCK_NAME)
        self.restarted_from: str | None = None  # set by create() when it cleared a folder: what it was, in words

    @classmethod
    def create(cls, name: str, root: Path | None = None, overwrite: bool = False) -> "Run":
        """Make the folder for a new run and take its writer lock.

        Refused while another process writes a run of that name. What is already in a folder of that
        name decides the rest: a run that died before its first checkpoint left nothing to resume (a
        config, a tokenizer, a log), so it is cleared and started again (`restarted_from` says what it
        was). Anything more, a checkpoint folder above all (damaged or not), is never erased by a
        start: refused, unless `overwrite` asks for the whole folder to be emptied first.
        """
        check_run_name(name)
        path = Path(root or runs_dir()) / name
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        run.acquire()
        try:
            leftovers = [p for p in path.iterdir() if p.name != cls.LOCK_NAME]
            if not leftovers:
                return run
            log = run.metrics()
            step = max((r["step"] for r in log.records if "step" in r), default=0)
            if overwrite:
                run.restarted_from = (f"run {name!r} was erased as asked (--overwrite): {len(leftovers)} file(s) and "
                                      f"folder(s), its log at step {step}; it starts again from scratch")
            else:
                kept = run._not_to_erase(leftovers)
                if kept:
                    raise FileExistsError(
                        f"run {name!r} already exists in {path.parent} with {kept}: continue it with "
                        f"--resume {name}, or pick another --name; to erase it and start again, add --overwrite")
                run.restarted_from = (f"run {name!r} had no checkpoint (its log reached step {step}; the last "
                                      f"attempt {_last_attempt(log)}): nothing to resume, so it starts again from "
                                      "scratch")
            for p in leftovers:
                _remove(p)
        except BaseException:
            run.release()
            raise
        return run

    def _not_to_erase(self, leftovers: list[Path]) -> str | None:
        """What in this folder a start must not erase without --overwrite, in words (None: nothing).

        Erasable: the config, tokenizer, log and TensorBoard files of an attempt that never saved a
        checkpoint, and a checkpoints folder holding only best.json and temporary folders of dead writers."""
        ours = {"config.json", "tokenizer.json", "metrics.jsonl", "tensorboard", "checkpoints"}
        unknown = sorted(p.name for p in leftovers if p.name not in ours or p.is_symlink())
        if unknown:
            return f"files that are not a run's ({', '.join(unknown[:5])})"
        folder = self.checkpoints_path
        if not folder.is_dir():
            return None
        saved = sorted(p.name for p in folder.iterdir() if ckpt.is_checkpoint_name(p.name) or p.name.startswith(".old-"))
        if not saved:
            return None
        complete = {p.name for p in self.checkpoints()}
        described = [n if n in complete else f"{n} (incomplete)" for n in saved]
        return f"checkpoint folders ({', '.join(described[:4])}{', ...' if len(described) > 4 else ''})"

    @classmethod
    def open(cls, name: str, root: Path | None = None) -> "Run":
        """An existing run, by name (for reading; `acquire` it to write)."""
        check_run_name(name)
        path = Path(root or runs_dir()) / name
        if not (path / "config.json").exists():
            known = [r.name for r in list_runs(root)]
            hint = f"runs here: {', '.join(known)}" if known else "there are no runs yet: train one first"
            raise FileNotFoundError(f"no run named {name!r} in {path.parent} ({hint})")
        return cls(path)

    # paths: the only place that builds a path inside a run folder
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

    @property
    def tensorboard_path(self) -> Path:
        return self.path / "tensorboard"

    # the writer lock
    def acquire(self, wait: float = 1.0) -> "Run":
        """Take the run's writer lock for this process, or raise RunBusy naming the process that has it.

        Refused too (DamagedFile) when a file or folder the writer would write is a symbolic link."""
        try:
            self._lock.acquire({"run": self.name}, wait=wait)
        except LockBusy as e:
            raise RunBusy(f"run {self.name!r} is being written by {describe_holder(e.holder)}; "
                          "wait for it to finish or stop it first (one process writes a run at a time)",
                          e.holder) from None
        try:
            self.refuse_links()
        except BaseException:
            self.release()
            raise
        # what a writer killed mid-write left (a kill between writing a temporary file and renaming it)
        remove_leftover_temporaries(self.path, (self.config_path.name, self.tokenizer_path.name, self.LOCK_NAME))
        return self

    def refuse_links(self) -> None:
        """Raise DamagedFile if anything a writer of this run writes or deletes is a symbolic link."""
        for path in (self.config_path, self.tokenizer_path, self.metrics_path, self.checkpoints_path,
                     self.tensorboard_path):
            refuse_link(path)
        if self.checkpoints_path.is_dir():
            for path in self.checkpoints_path.iterdir():
                refuse_link(path)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> "Run":  # with Run.create(name) as run: ... (the lock is let go at the end)
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def writing(self) -> bool:
        """Whether this object holds the run's writer lock."""
        return self._lock.held

    def writer(self) -> dict[str, Any] | None:
        """Who is writing this run now (pid, command), or None when no live process is."""
        if self._lock.held:
            return {"pid": os.getpid()}
        return lock_holder(self._lock.path)

    # files
    def read_config(self) -> dict[str, Any]:
        """config.json, checked to have the parts every reader uses: `model` (with its `family`),
        `data` (with its `source` and `tokenizer`) and `train`; else DamagedFile naming what is wrong."""
        what_to_do = f"restore it, or delete the run folder {self.path}"
        config = read_json_object(self.config_path, what_to_do)
        for key, inner in (("model", ("family",)), ("data", ("source", "tokenizer")), ("train", ())):
            if not isinstance(config.get(key), dict):
                found = "is missing" if key not in config else f"is a {type(config[key]).__name__}, not an object"
                raise DamagedFile(f"{self.config_path} is damaged: its {key!r} {found}; {what_to_do}")
            for field_name in inner:
                if not isinstance(config[key].get(field_name), str):
                    raise DamagedFile(f"{self.config_path} is damaged: {key}.{field_name} is missing or not a "
                                      f"string; {what_to_do}")
        return config

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def log(self, *records: dict[str, Any]) -> None:
        """Append records to metrics.jsonl and flush them to disk at once."""
        append_lines(self.metrics_path, list(records))

    def metrics(self) -> Metrics:
        return read_metrics(self.metrics_path)

    def checkpoints(self) -> list[Path]:
        return ckpt.list_checkpoints(self.checkpoints_path)

    def checkpoint(self, which: str | int = "latest") -> Path:
        return ckpt.resolve_checkpoint(self.checkpoints_path, which)

    def status(self, metrics: Metrics | None = None) -> str:
        """training | finished | stopped | failed | new, from the run's files.

        A run whose writer lock is held is training. Otherwise the last event of the log says how the
        last attempt ended; a log ending on "start"/"resume" means the process died (killed, or the
        machine went down): stopped, and it can be resumed.
        """
        if self.writer() is not None:
            return "training"
        return _last_attempt(metrics or self.metrics())

    def outcome(self, metrics: Metrics | None = None) -> dict[str, Any]:
        """How the last attempt ended: status, step, best val loss, and the end event's message."""
        metrics = metrics or self.metrics()
        summary = self.summary(metrics)
        events = metrics.of_kind("event")
        message = events[-1].get("message") if events and events[-1].get("event") == "end" else None
        return {**summary, "message": message if isinstance(message, str) else None}

    def summary(self, metrics: Metrics | None = None) -> dict[str, Any]:
        """One row for a table of runs (pass `metrics` if already read). Never raises for a damaged
        file: what cannot be read is left out, and `problem` says which file and how (None if none)."""
        metrics = metrics or self.metrics()
        problem = None
        try:
            config = self.read_config()
        except (OSError, ValueError) as e:
            config, problem = {}, str(e)
        if problem is None and metrics.warnings and not metrics.records:
            problem = metrics.warnings[0]
        checkpoints = self.checkpoints()
        if problem is None and checkpoints:  # the newest checkpoint's meta.json: small, and what a reader opens first
            try:
                ckpt.read_meta(checkpoints[-1])
            except (OSError, ValueError) as e:
                problem = str(e)
        model = config.get("model") if isinstance(config.get("model"), dict) else {}
        data = config.get("data") if isinstance(config.get("data"), dict) else {}
        train = metrics.of_kind("train")
        val_losses = [r["val_loss"] for r in metrics.of_kind("eval") if math.isfinite(r["val_loss"])]
        return {
            "name": self.name,
            "family": model.get("family"),
            "params": config.get("n_params") if _is_number(config.get("n_params")) else None,
            "tokenizer": data.get("tokenizer"),
            "steps": train[-1]["step"] if train else 0,
            "tokens": train[-1].get("tokens", 0) if train else 0,
            "best_val_loss": min(val_losses, default=None),
            "checkpoints": len(checkpoints),
            "status": self.status(metrics),
            "problem": problem,
        }


def run_exists(name: str, root: Path | None = None) -> bool:
    """Whether a run called `name` has been created in the runs folder (it has its config)."""
    return Run(Path(root or runs_dir()) / check_run_name(name)).config_path.exists()


def _last_attempt(metrics: Metrics) -> str:
    """How the log says the last attempt ended, for a run nobody is writing."""
    events = metrics.of_kind("event")
    if not events:
        return "new"
    last = events[-1]
    if last.get("event") == "end":
        status = last.get("status", "finished")
        return status if status in STATUSES else "failed"
    return "stopped"


def _remove(path: Path) -> None:
    """Delete a file or a folder; a symbolic link is removed itself, never what it points to."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def list_runs(root: Path | None = None) -> list[Run]:
    """Every run folder (one holding a config.json) under the runs root, sorted by name."""
    root = Path(root or runs_dir())
    if not root.is_dir():
        return []
    return [Run(p) for p in sorted(root.iterdir()) if (p / "config.json").is_file()]
