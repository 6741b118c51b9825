"""From a recipe to a trained run and back: the steps the CLI, notebooks and dashboard share.

    spec = get_preset("starter")          # or any dict of the same shape
    result = start_run(spec, name="my-run")
    model, tokenizer, meta = load_trained("my-run")

Everything a spec says is checked before its run folder is made, so a bad setting (a dropout of 2,
a learning rate of nan, an unknown device, a BPE vocabulary too small for its text, a batch too big
for this machine's memory) costs an error message and nothing else: no folder is left behind to
block the name.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, Callable

from . import checkpoints as ckpt
from . import distributed, memory
from .config import from_dict, to_dict
from .data import DEFAULT_PROMPTS, Corpus, load_corpus, split_train_val, to_token_array
from .embeddings import embedding_matrix, load_vectors
from .device import pick_device, seed_everything
from .models import FAMILIES, LanguageModel, build_model, model_config
from .fileio import DamagedFile
from .runs import Run, RunBusy, check_run_name, run_exists, runs_dir
from .tokenizers import TOKENIZER_KINDS, Tokenizer, load_tokenizer, train_tokenizer
from .training import TrainConfig, TrainData, TrainResult, train

SPEC_KEYS = {"description", "data", "tokenizer", "vocab_size", "val_fraction", "model", "train", "preset",
             "init_vectors"}


def check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults and validate every part of a run spec that can be checked before its text is read.

    Errors name the bad key. The model is checked with its vocabulary size left open (the tokenizer
    decides it); `start_run` checks it again once that is known.
    """
    if not isinstance(spec, dict):
        raise TypeError(f"a run spec is a dict, got {type(spec).__name__}")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"unknown run spec key(s) {unknown}; valid keys are: {', '.join(sorted(SPEC_KEYS))}")
    spec = {"data": "shakespeare", "tokenizer": "char", "vocab_size": None, "val_fraction": 0.1, **spec}
    if not isinstance(spec["data"], str) or not spec["data"]:
        raise TypeError(f"the spec's data must be 'shakespeare' or a file path, got {spec['data']!r}")
    if spec["tokenizer"] not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer {spec['tokenizer']!r}; choose one of: {', '.join(TOKENIZER_KINDS)}")
    vocab = spec["vocab_size"]
    if vocab is not None and (not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 2):
        raise ValueError(f"vocab_size must be a whole number of at least 2 (or unset), got {vocab!r}")
    fraction = spec["val_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 0.5:
        raise ValueError(f"val_fraction must be a number between 0 and 0.5, got {fraction!r}")
    model = dict(spec.get("model") or {"family": "gpt"})
    if spec.get("init_vectors") is not None:
        check_run_name(spec["init_vectors"])  # a folder in the runs folder, named like a run
    if spec.get("init_vectors") is not None and (spec["tokenizer"] != "word" or model.get("family") != "lstm"):
        raise ValueError("init_vectors (word vectors for the embedding) needs the word tokenizer and the lstm "
                         f"family; this spec has {spec['tokenizer']!r} and {model.get('family')!r}")
    if model.get("family") not in FAMILIES:
        raise ValueError(f"unknown model family {model.get('family')!r}; choose one of: {', '.join(FAMILIES)}")
    model_config({**model, "vocab_size": model.get("vocab_size", 2)})  # every other field checked now
    spec["model"] = model
    config = from_dict(TrainConfig, spec.get("train") or {})  # fail now, not after the data is encoded
    pick_device(config.device)  # an unknown or missing device, too
    return spec


def prepare_data(source: str, tokenizer_kind: str, vocab_size: int | None = None, val_fraction: float = 0.1,
                 tokenizer: Tokenizer | None = None, corpus: Corpus | None = None
                 ) -> tuple[Tokenizer, TrainData, dict[str, Any]]:
    """Load text (or take `corpus`, already loaded from `source`), train (or reuse) a tokenizer, encode,
    and split the last `val_fraction` off as val. The info records the text's size and sha256, so a
    resume can tell whether the text under that name is still the run's."""
    corpus = corpus if corpus is not None else load_corpus(source)
    if tokenizer is None:
        tokenizer = train_tokenizer(tokenizer_kind, corpus.text, vocab_size)
    ids = to_token_array(tokenizer.encode(corpus.text), tokenizer.vocab_size)
    train_ids, val_ids = split_train_val(ids, val_fraction)
    chars_per_token = len(corpus.text) / max(len(ids), 1)
    info = {"source": str(source), "tokenizer": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
            "chars": len(corpus.text), "sha256": text_sha256(corpus.text), "tokens": int(len(ids)),
            "train_tokens": int(len(train_ids)),
            "val_tokens": int(len(val_ids)), "chars_per_token": round(chars_per_token, 4)}
    return tokenizer, TrainData(train_ids, val_ids, chars_per_token), info


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _claim(name: str | None, base: str, root: Path, overwrite: bool = False) -> Run:
    """Create and lock the run folder `name`, or the first free one of base, base-2, base-3, ..."""
    if name is not None:
        return Run.create(name, root, overwrite=overwrite)
    for n in range(1, 10_000):
        candidate = base if n == 1 else f"{base}-{n}"
        if run_exists(candidate, root):
            continue
        try:
            return Run.create(candidate, root)
        except (FileExistsError, RunBusy):  # taken a moment ago by another process
            continue
    raise FileExistsError(f"no free run name of the form {base}-N in {root}: pass a name")


def start_run(spec: dict[str, Any], name: str | None = None, root: Path | None = None,
              callback: Callable[[dict], None] | None = None, progress: bool = True,
              overwrite: bool = False) -> TrainResult:
    """Check `spec`, prepare its data, then create the run folder, train, and return the result.

    A run folder `name` that holds more than a dead attempt's config and log (a checkpoint, damaged or
    not) is refused; `overwrite=True` empties it first (CLI: --overwrite)."""
    spec = check_spec(spec)
    if name is not None:
        check_run_name(name)
    root = Path(root or runs_dir())
    config = from_dict(TrainConfig, spec.get("train") or {})
    tokenizer, data, info = prepare_data(spec["data"], spec["tokenizer"], spec["vocab_size"], spec["val_fraction"])
    model_spec = {**spec["model"], "vocab_size": tokenizer.vocab_size}
    model_config(model_spec)
    start_vectors = None
    if spec.get("init_vectors"):
        start_vectors, info["init_vectors"] = _word_vector_rows(tokenizer, model_spec, spec["init_vectors"], root,
                                                                config.seed)
    device = pick_device(config.device)
    memory.check_fits(memory.predict_training_memory(model_spec, config.batch_size, config.grad_accum,
                                                     config.precision, config.optimizer, device=device), device)
    rank, _ = distributed.rank_and_world()
    distributed.setup(device)  # under torchrun: join the group before agreeing on a name
    run = _claim(name, spec.get("preset") or spec["model"]["family"], root, overwrite) if rank == 0 else None
    name = distributed.broadcast(run.name if rank == 0 else None)  # every process trains the same run
    if rank != 0:
        run = Run(root / name)
    try:
        seed_everything(config.seed)  # the same seed gives the same initial weights on every process
        model = build_model(model_spec)
        if start_vectors is not None:
            model.load_embedding(start_vectors)
        if rank == 0:
            tokenizer.save(run.tokenizer_path)
            run.write_config({
                "name": name, "created": dt.datetime.now().isoformat(timespec="seconds"),
                "preset": spec.get("preset"), "data": info, "model": model_spec, "train": to_dict(config),
                "val_fraction": spec["val_fraction"], "n_params": model.num_params(),
                "flops_per_token": model.flops_per_token(), "spec": spec,
            })
            if run.restarted_from and callback is not None:
                callback({"kind": "note", "message": run.restarted_from})
        return train(model, data, config, run, callback=callback, progress=progress)
    finally:
        run.release()


def _word_vector_rows(tokenizer: Tokenizer, model_spec: dict[str, Any], name: str, root: Path, seed: int
                      ) -> tuple[Any, dict[str, Any]]:
    """The embedding rows a run starts from when its spec names word vectors saved in the runs folder
    (chapter 4 saves "word2vec-shakespeare"), and how many of the vocabulary's words they cover."""
    vectors, vocab, _ = load_vectors(root / name)
    width = model_config(model_spec).n_embd
    if vectors.shape[1] != width:
        raise ValueError(f"the word vectors {name!r} have {vectors.shape[1]} dimensions and the model's embedding "
                         f"{width}: set the model's n_embd to {vectors.shape[1]}")
    rows, found = embedding_matrix(tokenizer.words, vectors, vocab, seed)
    return rows, {"name": name, "words_found": found, "vocab_size": len(rows)}


def resume_point(run: Run) -> int:
    """The step a resume of `run` would continue from (its newest loadable checkpoint; 0 if none)."""
    checkpoint, _ = ckpt.newest_loadable(run.checkpoints_path)
    return int(ckpt.read_meta(checkpoint)["step"]) if checkpoint else 0


def resume_run(name: str, root: Path | None = None, max_steps: int | None = None,
               callback: Callable[[dict], None] | None = None, progress: bool = True,
               allow_changed_data: bool = False) -> TrainResult:
    """Continue a run from its newest loadable checkpoint (optionally with a new step budget).

    Refused, with nothing written, while another process writes the run, when `max_steps` is below the
    step the run has reached, when the checkpoint cannot be continued here (another process count), and
    when the run's text has changed since it started (its size or sha256 differ from config.json's)
    unless `allow_changed_data`. config.json takes the new budget only once training is ready to go.
    """
    run = Run.open(name, root)
    rank, _ = distributed.rank_and_world()
    if rank == 0:  # under torchrun, rank 0 alone writes
        run.acquire()
    try:
        config_json = run.read_config()
        config = _train_config(run, config_json)
        if max_steps is not None and max_steps != config.max_steps:
            at = resume_point(run)
            if max_steps < at:
                raise ValueError(f"run {name!r} has reached step {at}: a budget of {max_steps} steps would go "
                                 f"backwards; give --steps {at} or more")
            config = dataclasses.replace(config, max_steps=max_steps)  # checked by TrainConfig itself
        tokenizer = load_tokenizer(run.tokenizer_path)
        data_info = config_json["data"]
        corpus = load_corpus(data_info["source"])
        changed = _text_change(data_info, corpus)
        if changed and not allow_changed_data:
            raise ValueError(f"the text of run {name!r} has changed since it started ({changed}): resuming would "
                             "train it on other text than it learnt from. Restore the text, or start a new run on "
                             "it; to continue this run on the new text anyway, add --allow-changed-data")
        val_fraction = config_json.get("val_fraction", 0.1)
        _, data, info = prepare_data(data_info["source"], data_info["tokenizer"], val_fraction=val_fraction,
                                     tokenizer=tokenizer, corpus=corpus)
        seed_everything(config.seed)  # a run with no checkpoint starts over from the same weights
        try:
            model = build_model(config_json["model"])
        except (TypeError, ValueError) as e:
            raise DamagedFile(f"{run.config_path} is damaged: its model settings do not build a model ({e})") from None

        def ready() -> None:  # the checkpoint loaded and every check passed: now config.json may change
            if rank != 0:
                return
            updated = {**config_json, "train": to_dict(config)}
            if changed:
                updated["data"] = {**data_info, **info, "source": data_info["source"]}
                if callback is not None:
                    callback({"kind": "note", "message": f"the text of run {name!r} has changed ({changed}); "
                                                         "training goes on with the new text, as asked"})
            if updated != config_json:
                run.write_config(updated)

        return train(model, data, config, run, callback=callback, resume=True, progress=progress, ready=ready)
    finally:
        run.release()


def _train_config(run: Run, config_json: dict[str, Any]) -> TrainConfig:
    """The training settings config.json records, or DamagedFile naming the file and the bad setting."""
    try:
        return from_dict(TrainConfig, config_json["train"])
    except (TypeError, ValueError) as e:
        raise DamagedFile(f"{run.config_path} is damaged: its training settings are not valid ({e}); restore it, "
                          f"or delete the run folder {run.path}") from None


def _text_change(recorded: dict[str, Any], corpus: Corpus) -> str | None:
    """How the text a run trains on differs from what its config recorded, in words (None: the same).

    Runs made before the sha256 was recorded are compared by their number of characters only."""
    chars, digest = recorded.get("chars"), recorded.get("sha256")
    now = text_sha256(corpus.text) if digest is not None else None
    if (chars is None or chars == len(corpus.text)) and digest == now:
        return None
    before = f"{chars:,} characters" if isinstance(chars, int) else "its size unrecorded"
    if digest is not None and chars == len(corpus.text):
        return f"{recorded['source']}: the same {chars:,} characters in number, other text: sha256 {digest[:12]}... " \
               f"then, {now[:12]}... now"
    return f"{recorded['source']}: {before} then, {len(corpus.text):,} now"


# settings that change how a run trains but not what it learns: a run may be continued under others
_HOW_NOT_WHAT = ("max_steps", "device", "compile", "measure_mfu", "parallel", "tensorboard")


def _what_is_trained(spec: dict[str, Any]) -> dict[str, Any]:
    """A checked spec with every default filled in, less the settings in _HOW_NOT_WHAT: two specs
    that train the same model on the same data the same way give equal dicts."""
    spec = check_spec(spec)
    model = to_dict(model_config({**spec["model"], "vocab_size": 2}))
    del model["vocab_size"]  # the tokenizer decides it
    model.pop("activation_checkpointing", None)  # recomputes activations: the same gradients, less memory
    train = {k: v for k, v in to_dict(from_dict(TrainConfig, spec.get("train") or {})).items()
             if k not in _HOW_NOT_WHAT}
    return {"data": str(spec["data"]), "tokenizer": spec["tokenizer"], "vocab_size": spec["vocab_size"],
            "val_fraction": spec["val_fraction"], "init_vectors": spec.get("init_vectors"),
            "model": {"family": spec["model"]["family"], **model}, "train": train}


def ensure_run(spec: dict[str, Any], name: str, root: Path | None = None,
               callback: Callable[[dict], None] | None = None, progress: bool = True) -> TrainResult:
    """The run `name`, trained as `spec` says: started if it does not exist, continued if it stopped
    or `spec` asks for more steps, and read back from its log if it is done.

    Notebooks call this, so running a chapter again reuses its runs instead of training them twice.
    A run of that name trained on other settings is refused, never replaced: the message says which.
    """
    spec = check_spec(spec)
    if not run_exists(name, root):
        return start_run(spec, name=name, root=root, callback=callback, progress=progress)
    run = Run.open(name, root)
    config = run.read_config()
    if not isinstance(config.get("spec"), dict):
        raise ValueError(f"run {name!r} exists but does not record the spec it was trained from: delete "
                         f"{run.path} to train it again here, or pick another name")
    have, want = _what_is_trained(config["spec"]), _what_is_trained(spec)
    differ = [key for key in want if want[key] != have[key]]
    if differ:
        raise ValueError(f"run {name!r} exists with other {differ[0]} settings ({have[differ[0]]} instead of "
                         f"{want[differ[0]]}): delete {run.path} to train it again, or pick another name")
    steps, done = from_dict(TrainConfig, spec.get("train") or {}).max_steps, _train_config(run, config).max_steps
    if steps < done:
        raise ValueError(f"run {name!r} was trained for {done} steps, more than the {steps} asked for: ask for "
                         f"{done} or more, or pick another name")
    if steps > done or run.status() != "finished":
        return resume_run(name, root, max_steps=steps, callback=callback, progress=progress)
    log = run.metrics()
    evals, end = log.of_kind("eval"), log.of_kind("event")[-1]
    return TrainResult("finished", end["step"], end.get("tokens", 0), end.get("time", 0.0),
                       evals[-1]["val_loss"] if evals else None, min((r["val_loss"] for r in evals), default=None),
                       log.records, name)


def default_prompt(run: Run) -> str:
    """The prompt a trained run is first asked to continue, after the corpus it was trained on (its config's
    data.source): `DEFAULT_PROMPTS`, Shakespeare's for a run on any other text or with an unreadable config."""
    try:
        source = run.read_config()["data"]["source"]  # read_config checks it is there, a string
    except (OSError, ValueError):
        source = ""
    return DEFAULT_PROMPTS.get(source, DEFAULT_PROMPTS["shakespeare"])


def load_trained(run: str | Path | Run, which: str | int = "best", device: str = "cpu"
                 ) -> tuple[LanguageModel, Tokenizer, dict[str, Any]]:
    """The model of a run's checkpoint (weights loaded, eval mode), its tokenizer, and the checkpoint's meta.

    `run` is a run name (a `str`, looked up under the runs folder and checked like any name), a
    `Run`, or a run folder's `Path`.
    """
    if isinstance(run, Run):
        opened = run
    elif isinstance(run, Path):
        opened = Run(run)
        if not opened.config_path.exists():
            raise FileNotFoundError(f"{run} is not a run folder (it has no config.json)")
    else:
        opened = Run.open(run)
    checkpoint = opened.checkpoint(which)
    meta = ckpt.read_meta(checkpoint)
    tokenizer = load_tokenizer(opened.tokenizer_path)
    try:
        model = build_model(meta["model"])
    except (TypeError, ValueError) as e:
        raise DamagedFile(f"{checkpoint / 'meta.json'} is damaged: its model spec does not build a model ({e}); "
                          "pick another checkpoint") from None
    model.to(device)
    ckpt.load_weights(model, checkpoint)
    model.eval()
    return model, tokenizer, {**meta, "checkpoint": checkpoint.name, "run": opened.name}
