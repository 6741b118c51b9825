"""Checkpoints: weights as safetensors, trainer state as plain tensors and numbers, written atomically.

    checkpoints/                  (a run's `Run.checkpoints_path`: every function here takes it)
        step_0000500/
            model.safetensors     the weights (a tied weight stored once); loads without running code
            trainer.pt            optimizer state, step, tokens seen, every RNG state and the data
                                  generator's state; loads with torch.load(weights_only=True)
            meta.json             step, tokens, val loss, the model spec: readable without torch
        best.json                 {"name": "step_0000500", "step": 500, "val_loss": ...}

A checkpoint is written into a hidden temporary folder, every file and the folder fsynced, then
renamed into place: a crash, a kill or a full disk mid-save leaves the previous checkpoints intact,
and one saved again at the same step replaces the old one only once the new one is complete. A
checkpoint is pruned the same way in reverse: renamed out of the listing first, deleted after, so a
kill mid-delete leaves a hidden leftover that the next prune removes, never a half checkpoint. Only
the process holding the run's writer lock (see `runs.Run`) saves or prunes, and neither goes through
a symbolic link.
"""
from __future__ import annotations

import errno
import io
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from .fileio import (DamagedFile, fsync_dir, fsync_file, read_json, read_json_object, refuse_link,
                     remove_leftover_temporaries, write_json)

_PREFIX = "step_"
_NAME = re.compile(r"step_\d{7,}")  # matched whole (fullmatch): "step_0000010\n" is not a checkpoint's name
# .tmp-<pid>-...: being written; .old-<pid>-...: being replaced; .del-<pid>-...: being deleted
_TEMPORARY = re.compile(r"\.(tmp|old|del)-(\d+)-")


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:07d}"


def is_checkpoint_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def _step_folders(folder: Path) -> list[Path]:
    """Every folder named like a checkpoint (complete or not), oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if is_checkpoint_name(p.name) and p.is_dir()), key=lambda p: p.name)


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints in a run's checkpoints folder, oldest first (temporary folders are ignored).

    Complete means its meta.json is there; whether its files read back is `newest_loadable`'s question."""
    return [p for p in _step_folders(folder) if (p / "meta.json").is_file()]


def incomplete_checkpoints(folder: Path) -> list[Path]:
    """Folders named like a checkpoint that lack their meta.json (damaged by hand, or a disk error)."""
    return [p for p in _step_folders(folder) if not (p / "meta.json").is_file()]


def rng_state() -> dict[str, Any]:
    """Every global random state, as tensors and plain numbers (safe for weights_only loading)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, model: torch.nn.Module, trainer_state: dict[str, Any], meta: dict[str, Any],
                    keep_last: int = 3, weights: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint atomically, update best.json, and delete old ones beyond `keep_last`.

    The checkpoint with the best val loss is never deleted. `weights`, when given, is the model's
    whole state dict, saved instead of `model.state_dict()`: a model sharded over processes (FSDP)
    holds only pieces of its weights, and rank 0 gathers them first.
    """
    folder = Path(folder)
    refuse_link(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(int(meta["step"]))
    refuse_link(final)
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".tmp-{os.getpid()}-"))
    try:
        _save_weights(model, tmp / "model.safetensors", weights)
        buffer = io.BytesIO()  # torch.save reports a full disk as a RuntimeError; plain writes say ENOSPC
        torch.save(trainer_state, buffer)
        (tmp / "trainer.pt").write_bytes(buffer.getbuffer())
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        for name in ("model.safetensors", "trainer.pt", "meta.json"):
            fsync_file(tmp / name)
        fsync_dir(tmp)
        _move_into_place(tmp, final)
        fsync_dir(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    val = meta.get("val_loss")
    best = read_best(folder)
    if val is not None and (best is None or val <= best["val_loss"] or not (folder / best["name"]).exists()):
        write_json(folder / "best.json", {"name": final.name, "step": meta["step"], "val_loss": val})
    prune(folder, keep_last)
    return final


def _save_weights(model: torch.nn.Module, path: Path, weights: dict[str, torch.Tensor] | None = None) -> None:
    try:
        if weights is None:
            save_model(model, str(path))
        else:
            tensors, dropped = _untied(model, weights)
            save_file(tensors, str(path), metadata=dropped or None)
    except Exception as e:  # safetensors wraps I/O errors in its own type, without an errno
        if "os error 28" in str(e) or "No space left" in str(e):
            raise OSError(errno.ENOSPC, f"No space left on device while writing {path.name}") from None
        raise


def _untied(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                             dict[str, str]]:
    """`weights` with a tied weight kept under one name, and the dropped names in the metadata: the file
    `save_model` writes for the unsharded model (the kept name is the first in sorted order, as there)."""
    names_of: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(p), []).append(name)
    kept, dropped = dict(weights), {}
    for names in names_of.values():
        keep, *others = sorted(names)
        for other in others:
            kept.pop(other, None)
            dropped[other] = keep
    return {k: v.contiguous() for k, v in kept.items()}, dropped


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the complete `tmp` to `final`. An old `final` is set aside first and deleted only after."""
    if not final.exists():
        tmp.rename(final)
        return
    old = final.with_name(f".old-{os.getpid()}-{final.name}")
    final.rename(old)
    try:
        tmp.rename(final)
    except BaseException:
        old.rename(final)  # the new one could not be put in place: the old one goes back
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover(folder: Path) -> None:
    """Undo what a writer killed between the two renames of `_move_into_place` left behind."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for old in folder.glob(".old-*"):
        match = _TEMPORARY.match(old.name)
        name = old.name[match.end():] if match else ""
        if is_checkpoint_name(name) and not (folder / name).exists() and not _may_be_writing(int(match.group(2))):
            old.rename(folder / name)


def read_best(folder: Path) -> dict[str, Any] | None:
    """best.json, or None when it is missing, damaged, or names anything but a checkpoint of this run."""
    path = Path(folder) / "best.json"
    try:
        best = read_json(path)
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(best, dict) or not is_checkpoint_name(str(best.get("name", ""))):
        return None  # also refuses "../../elsewhere": best.json never leads out of its folder
    val = best.get("val_loss")
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        return None
    return best


def prune(folder: Path, keep_last: int) -> None:
    """Delete checkpoints beyond the last `keep_last` (never the best), incomplete ones older than the
    newest complete one, and temporary folders left by writers that have died. A live process's
    temporary folder is never touched, and an incomplete folder newer than every complete checkpoint
    is kept for its owner to look at.

    Each is renamed to a hidden `.del-<pid>-` name before it is deleted: a kill mid-delete leaves a
    leftover the next prune removes, not a checkpoint with some of its files gone."""
    folder = Path(folder)
    refuse_link(folder)
    checkpoints = list_checkpoints(folder)
    best = read_best(folder)
    protected = {p.name for p in checkpoints[-max(keep_last, 1):]} | ({best["name"]} if best else set())
    doomed = [p for p in checkpoints if p.name not in protected]
    if checkpoints:
        doomed += [p for p in incomplete_checkpoints(folder) if p.name < checkpoints[-1].name]
    for p in doomed:
        _delete(p)
    recover(folder)
    for leftover in [*folder.glob(".tmp-*"), *folder.glob(".del-*")]:
        match = _TEMPORARY.match(leftover.name)
        if match and (match.group(1) == "del" or not _may_be_writing(int(match.group(2)))):
            shutil.rmtree(leftover, ignore_errors=True)
    remove_leftover_temporaries(folder, ("best.json",))  # a kill mid-write of best.json; only the writer prunes


def _delete(checkpoint: Path) -> None:
    """Take a checkpoint out of the listing at once (a rename), then delete its files."""
    if checkpoint.is_symlink():
        return  # refused by the writer's checks; never followed
    doomed = checkpoint.with_name(f".del-{os.getpid()}-{checkpoint.name}")
    try:
        checkpoint.rename(doomed)
    except OSError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def _may_be_writing(pid: int) -> bool:
    """Whether process `pid` may still be writing a temporary folder it named after itself."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()  # this process prunes between saves: what it left is a leftover


def resolve_checkpoint(folder: Path, which: str | int = "latest") -> Path:
    """The folder of checkpoint `which`: "latest", "best", a step number or a folder name."""
    folder = Path(folder)
    checkpoints = list_checkpoints(folder)
    if not checkpoints:
        raise FileNotFoundError(f"run {folder.parent.name!r} has no checkpoint yet: train it first "
                                "(or wait for its first checkpoint)")
    if which == "latest":
        return checkpoints[-1]
    if which == "best":
        best = read_best(folder)
        if best and (folder / best["name"]).exists():
            return folder / best["name"]
        return checkpoints[-1]
    name = checkpoint_name(int(which)) if str(which).isdigit() else str(which)
    for p in checkpoints:
        if p.name == name:
            return p
    raise FileNotFoundError(f"run {folder.parent.name!r} has no checkpoint {which!r}; it has: "
                            f"{', '.join(p.name for p in checkpoints)}, 'latest' and 'best'")


def weights_version(checkpoint: Path) -> int:
    """Changes whenever the checkpoint's weights are rewritten (for caches of loaded models)."""
    return (Path(checkpoint) / "model.safetensors").stat().st_mtime_ns


def load_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    path = Path(checkpoint) / "model.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the checkpoint is incomplete; pick another checkpoint")
    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=str(next(model.parameters()).device))
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path} is damaged and cannot be read ({type(e).__name__}: {e}); "
                         "pick another checkpoint") from None
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing {sorted(missing)}, unexpected {sorted(unexpected)}")


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    path = Path(checkpoint) / "trainer.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: this checkpoint cannot be resumed from; pick another")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is damaged and cannot be read ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(state, dict) or not {"optimizer", "step", "tokens", "ranks"} <= set(state):
        raise ValueError(f"{path} is not a trainer state written by lesson_lib")
    return state


def newest_loadable(folder: Path) -> tuple[Path | None, list[tuple[str, str]]]:
    """The newest checkpoint whose every file reads back, and the (name, reason) of newer ones that do not.

    Resuming starts from it: a checkpoint damaged on disk (a torn file, a bad sector, a hand edit, a
    missing meta.json) costs the steps since the one before it, not the run.
    """
    skipped = []
    for checkpoint in reversed(_step_folders(folder)):
        try:
            meta = read_meta(checkpoint)
            state = load_trainer_state(checkpoint)
            if meta.get("step") != state["step"]:
                raise ValueError(f"meta.json says step {meta.get('step')}, trainer.pt says {state['step']}")
            load_file(str(checkpoint / "model.safetensors"))  # reads every tensor: a torn file fails here
        except Exception as e:  # noqa: BLE001 - any failure to read means: not this one
            skipped.append((checkpoint.name, str(e)[:300]))
            continue
        return checkpoint, skipped
    return None, skipped


def read_meta(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's meta.json, checked to hold its step and its model's spec (with the family);
    else DamagedFile naming the file."""
    path = Path(checkpoint) / "meta.json"
    what_to_do = "pick another checkpoint (--checkpoint STEP), or resume the run: it skips damaged checkpoints"
    meta = read_json_object(path, what_to_do)
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise DamagedFile(f"{path} is damaged: its step {step!r} is not a whole number; {what_to_do}")
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("family"), str):
        found = "is missing" if model is None else "has no model family"
        raise DamagedFile(f"{path} is damaged: its model spec {found}; {what_to_do}")
    return meta


def size_on_disk(folder: Path) -> int | None:
    """Bytes of the newest checkpoint: about what the next one needs (None before the first)."""
    checkpoints = list_checkpoints(folder)
    if not checkpoints:
        return None
    return sum(p.stat().st_size for p in checkpoints[-1].iterdir() if p.is_file())
