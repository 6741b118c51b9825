"""Checkpoints: weights as safetensors, trainer state as plain tensors and numbers, written atomically.

    checkpoints/step_000500/
        model.safetensors   the weights (a tied weight stored once); loads without running code
        trainer.pt          optimizer state, step, tokens seen, every RNG state and the data
                            generator's state; loads with torch.load(weights_only=True)
        meta.json           step, tokens, val loss, the model spec: readable without torch
    checkpoints/best.json   {"name": "step_000500", "val_loss": ...}

A checkpoint is written into a hidden temporary folder and renamed into place only when every
file is complete, so a crash or a full disk mid-save leaves the previous checkpoints intact.
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from .runs import read_json, write_json

_PREFIX = "step_"


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:07d}"


def list_checkpoints(run_path: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (half-written temporary folders are ignored)."""
    folder = Path(run_path) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / "meta.json").exists()]
    return sorted(found, key=lambda p: p.name)


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


def save_checkpoint(run_path: Path, model: torch.nn.Module, trainer_state: dict[str, Any], meta: dict[str, Any],
                    keep_last: int = 3) -> Path:
    """Write a checkpoint atomically, update best.json, and delete old ones beyond `keep_last`.

    The checkpoint with the best val loss is never deleted.
    """
    folder = Path(run_path) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(int(meta["step"]))
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-"))
    try:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save(trainer_state, tmp / "trainer.pt")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if final.exists():  # the same step saved again (e.g. after a resume): replace it
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    val = meta.get("val_loss")
    best = read_best(run_path)
    if val is not None and (best is None or val <= best["val_loss"] or not (folder / best["name"]).exists()):
        write_json(folder / "best.json", {"name": final.name, "step": meta["step"], "val_loss": val})
    _prune(run_path, keep_last)
    return final


def read_best(run_path: Path) -> dict[str, Any] | None:
    path = Path(run_path) / "checkpoints" / "best.json"
    if not path.exists():
        return None
    try:
        return read_json(path)
    except ValueError:
        return None


def _prune(run_path: Path, keep_last: int) -> None:
    checkpoints = list_checkpoints(run_path)
    best = read_best(run_path)
    protected = {p.name for p in checkpoints[-max(keep_last, 1):]} | ({best["name"]} if best else set())
    for p in checkpoints:
        if p.name not in protected:
            shutil.rmtree(p, ignore_errors=True)
    for stale in (Path(run_path) / "checkpoints").glob(".tmp-*"):  # left by a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)


def resolve_checkpoint(run_path: Path, which: str | int = "latest") -> Path:
    """The folder of checkpoint `which`: "latest", "best", a step number or a folder name."""
    checkpoints = list_checkpoints(run_path)
    if not checkpoints:
        raise FileNotFoundError(f"run {Path(run_path).name!r} has no checkpoint yet: train it first "
                                "(or wait for its first checkpoint)")
    if which == "latest":
        return checkpoints[-1]
    if which == "best":
        best = read_best(run_path)
        if best and (Path(run_path) / "checkpoints" / best["name"]).exists():
            return Path(run_path) / "checkpoints" / best["name"]
        return checkpoints[-1]
    name = checkpoint_name(int(which)) if str(which).isdigit() else str(which)
    for p in checkpoints:
        if p.name == name:
            return p
    raise FileNotFoundError(f"run {Path(run_path).name!r} has no checkpoint {which!r}; it has: "
                            f"{', '.join(p.name for p in checkpoints)}, 'latest' and 'best'")


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
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is damaged and cannot be read ({type(e).__name__}: {e})") from None


def read_meta(checkpoint: Path) -> dict[str, Any]:
    return read_json(Path(checkpoint) / "meta.json")
