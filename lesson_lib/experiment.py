"""From a recipe to a trained run and back: the steps the CLI, notebooks and dashboard share.

    spec = get_preset("starter")          # or any dict of the same shape
    result = start_run(spec, name="my-run")
    model, tokenizer, meta = load_trained("my-run")
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Callable



from . import checkpoints as ckpt
from .config import from_dict, to_dict
from .data import load_corpus, split_train_val, to_token_array
from . import distributed
from .device import pick_device, seed_everything
from .models import FAMILIES, LanguageModel, build_model
from .runs import Run, runs_dir
from .tokenizers import Tokenizer, load_tokenizer, train_tokenizer
from .training import TrainConfig, TrainData, TrainResult, train

SPEC_KEYS = {"description", "data", "tokenizer", "vocab_size", "val_fraction", "model", "train", "preset"}


def check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and validate a run spec; errors name the bad key."""
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"unknown run spec key(s) {unknown}; valid keys are: {', '.join(sorted(SPEC_KEYS))}")
    spec = {"data": "shakespeare", "tokenizer": "char", "vocab_size": None, "val_fraction": 0.1, **spec}
    if spec["tokenizer"] not in ("char", "word", "bpe"):
        raise ValueError(f"unknown tokenizer {spec['tokenizer']!r}; choose one of: char, word, bpe")
    model = dict(spec.get("model") or {"family": "gpt"})
    if model.get("family") not in FAMILIES:
        raise ValueError(f"unknown model family {model.get('family')!r}; choose one of: {', '.join(FAMILIES)}")
    spec["model"] = model
    from_dict(TrainConfig, spec.get("train") or {})  # fail now, not after the data is encoded
    return spec


def prepare_data(source: str, tokenizer_kind: str, vocab_size: int | None = None, val_fraction: float = 0.1,
                 tokenizer: Tokenizer | None = None) -> tuple[Tokenizer, TrainData, dict[str, Any]]:
    """Load text, train (or reuse) a tokenizer, encode, and split the last `val_fraction` off as val."""
    corpus = load_corpus(source)
    if tokenizer is None:
        tokenizer = train_tokenizer(tokenizer_kind, corpus.text, vocab_size)
    ids = to_token_array(tokenizer.encode(corpus.text), tokenizer.vocab_size)
    train_ids, val_ids = split_train_val(ids, val_fraction)
    chars_per_token = len(corpus.text) / max(len(ids), 1)
    info = {"source": str(source), "tokenizer": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
            "chars": len(corpus.text), "tokens": int(len(ids)), "train_tokens": int(len(train_ids)),
            "val_tokens": int(len(val_ids)), "chars_per_token": round(chars_per_token, 4)}
    return tokenizer, TrainData(train_ids, val_ids, chars_per_token), info


def _free_name(base: str, root: Path) -> str:
    name, n = base, 2
    while (root / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def start_run(spec: dict[str, Any], name: str | None = None, root: Path | None = None,
              callback: Callable[[dict], None] | None = None, progress: bool = True) -> TrainResult:
    """Create a run folder for `spec`, train it, and return the result."""
    spec = check_spec(spec)
    root = Path(root or runs_dir())
    config = from_dict(TrainConfig, spec.get("train") or {})
    rank, _ = distributed.rank_and_world()
    distributed.setup(pick_device(config.device))  # under torchrun: join the group before agreeing on a name
    if rank == 0:
        name = name or _free_name(spec.get("preset") or spec["model"]["family"], root)
        run = Run.create(name, root)
    name = distributed.broadcast(name if rank == 0 else None)  # every process trains the same run
    run = Run(root / name) if rank != 0 else run
    tokenizer, data, info = prepare_data(spec["data"], spec["tokenizer"], spec["vocab_size"], spec["val_fraction"])
    model_spec = {**spec["model"], "vocab_size": tokenizer.vocab_size}
    seed_everything(config.seed)  # the same seed gives the same initial weights on every process
    model = build_model(model_spec)
    if rank != 0:
        return train(model, data, config, run, callback=callback, progress=progress)
    tokenizer.save(run.tokenizer_path)
    run.write_config({
        "name": name, "created": dt.datetime.now().isoformat(timespec="seconds"), "preset": spec.get("preset"),
        "data": info, "model": model_spec, "train": to_dict(config), "val_fraction": spec["val_fraction"],
        "n_params": model.num_params(), "flops_per_token": model.flops_per_token(),
    })
    return train(model, data, config, run, callback=callback, progress=progress)


def resume_run(name: str, root: Path | None = None, max_steps: int | None = None,
               callback: Callable[[dict], None] | None = None, progress: bool = True) -> TrainResult:
    """Continue a run from its latest checkpoint (optionally with a new step budget)."""
    run = Run.open(name, root)
    config_json = run.read_config()
    tokenizer = load_tokenizer(run.tokenizer_path)
    data_info = config_json["data"]
    _, data, _ = prepare_data(data_info["source"], data_info["tokenizer"], val_fraction=config_json["val_fraction"],
                              tokenizer=tokenizer)
    model = build_model(config_json["model"])
    config = from_dict(TrainConfig, config_json["train"])
    if max_steps is not None and max_steps != config.max_steps:
        config = dataclasses.replace(config, max_steps=max_steps)
        run.write_config({**config_json, "train": to_dict(config)})
    return train(model, data, config, run, callback=callback, resume=True, progress=progress)


def load_trained(run: str | Path, which: str | int = "best", device: str = "cpu"
                 ) -> tuple[LanguageModel, Tokenizer, dict[str, Any]]:
    """The model of a run's checkpoint (weights loaded, eval mode), its tokenizer, and the checkpoint's meta.

    `run` is a run name (looked up under the runs folder) or a run folder path.
    """
    path = Path(run)
    opened = Run(path) if (path / "config.json").exists() else Run.open(str(run))
    checkpoint = ckpt.resolve_checkpoint(opened.path, which)
    meta = ckpt.read_meta(checkpoint)
    tokenizer = load_tokenizer(opened.tokenizer_path)
    model = build_model(meta["model"])
    model.to(device)
    ckpt.load_weights(model, checkpoint)
    model.eval()
    return model, tokenizer, {**meta, "checkpoint": checkpoint.name, "run": opened.name}


