"""Command line: train, generate, list runs.

    python -m lesson_lib train --preset starter
    python -m lesson_lib train --data my.txt --model lstm --steps 500
    python -m lesson_lib train --spec my_spec.json --name my-run
    python -m lesson_lib generate --run starter --prompt "ROMEO:"
    python -m lesson_lib runs
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .device import PRECISIONS
from .models import FAMILIES
from .models.gpt import MLP_KINDS
from .presets import PRESETS, get_preset
from .sampling import MAX_NEW_TOKENS
from .tokenizers import TOKENIZER_KINDS

# command-line flag -> where it goes in the run spec
_MODEL_FLAGS = ("block_size", "n_layer", "n_head", "n_embd", "n_hidden", "context", "dropout", "qk_norm",
                "activation_checkpointing", "rotary", "mlp", "tie_embeddings", "zero_init_head", "chunked_loss")
_MODEL_HELP = {"qk_norm": "GPT: normalise queries and keys before attention (QK-norm)",
               "activation_checkpointing": "GPT: recompute the first N blocks in the backward pass to save memory",
               "rotary": "GPT: rotary position embeddings (RoPE) instead of a learned position table",
               "mlp": "GPT: the MLP's activation",
               "tie_embeddings": "GPT: give the output layer its own matrix instead of the token embedding's",
               "zero_init_head": "GPT: start an untied output layer at zero",
               "chunked_loss": "GPT: cross-entropy a block of rows at a time (faster on a CPU with a large vocabulary)"}
_SWITCHES = ("qk_norm", "rotary", "zero_init_head", "chunked_loss")  # on when given; None when not, so the preset's value stands
_TRAIN_FLAGS = {"steps": "max_steps", "batch_size": "batch_size", "lr": "lr", "warmup_steps": "warmup_steps",
                "eval_interval": "eval_interval", "grad_accum": "grad_accum", "device": "device",
                "precision": "precision", "seed": "seed", "optimizer": "optimizer"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lesson_lib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    presets = "\n".join(f"  {name:18s} {p['description']}" for name, p in PRESETS.items())
    t = sub.add_parser("train", help="train a model (a preset, or your own settings and text)",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=f"presets:\n{presets}")
    t.add_argument("--preset", default=None, help="start from this preset (default: starter's settings)")
    t.add_argument("--name", help="run folder name (default: the preset or model name, made unique)")
    t.add_argument("--resume", metavar="RUN", help="continue this run from its latest checkpoint")
    t.add_argument("--overwrite", action="store_true", default=None,
                   help="with --name: erase a run of that name (its checkpoints too) and start again")
    t.add_argument("--allow-changed-data", action="store_true", default=None,
                   help="with --resume: continue even though the run's text file has changed since it started")
    t.add_argument("--spec", metavar="FILE", help="a run spec as JSON (the shape of a preset); flags apply on top")
    t.add_argument("--data", help="'shakespeare' or the path of any UTF-8 .txt file")
    t.add_argument("--model", choices=list(FAMILIES), help="model family")
    t.add_argument("--tokenizer", choices=list(TOKENIZER_KINDS))
    t.add_argument("--vocab-size", type=int, help="vocabulary size for word and bpe tokenizers")
    t.add_argument("--init-vectors", metavar="NAME", help="start a word-level LSTM's embedding from word vectors "
                   "saved in the runs folder (chapter 4 saves word2vec-shakespeare)")
    for flag in _MODEL_FLAGS:
        if flag in _SWITCHES:
            t.add_argument(f"--{flag.replace('_', '-')}", action="store_true", default=None, help=_MODEL_HELP[flag])
        elif flag == "tie_embeddings":
            t.add_argument("--untied-head", dest=flag, action="store_false", default=None, help=_MODEL_HELP[flag])
        elif flag == "mlp":
            t.add_argument("--mlp", choices=MLP_KINDS, help=_MODEL_HELP[flag])
        else:
            t.add_argument(f"--{flag.replace('_', '-')}", type=float if flag == "dropout" else int,
                           metavar="N" if flag == "activation_checkpointing" else None, help=_MODEL_HELP.get(flag))
    t.add_argument("--steps", type=int, help="optimizer updates (max_steps)")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--warmup-steps", type=int)
    t.add_argument("--eval-interval", type=int)
    t.add_argument("--grad-accum", type=int)
    t.add_argument("--device", help="auto | cpu | cuda | mps")
    t.add_argument("--precision", choices=list(PRECISIONS))
    t.add_argument("--seed", type=int)
    t.add_argument("--optimizer", choices=["adamw", "muon"],
                   help="muon: Muon for the hidden layers' matrices, AdamW for the rest (default adamw)")
    t.add_argument("--fsdp", action="store_true", default=None,  # None when not given: the spec's value stands
                   help="under torchrun: shard weights, gradients and optimizer state over the processes (FSDP) "
                        "instead of giving each a whole copy (DDP)")
    t.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard event files into the run folder (open with: tensorboard --logdir runs)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    g = sub.add_parser("generate", help="generate text from a trained run")
    g.add_argument("--run", required=True, help="run name (see: python -m lesson_lib runs)")
    g.add_argument("--prompt", default="\n", help="text to continue")
    g.add_argument("--checkpoint", default="best", help="best | latest | a step number")
    g.add_argument("--max-new-tokens", type=int, default=300, help=f"at most {MAX_NEW_TOKENS}")
    g.add_argument("--temperature", type=float, default=0.8, help="0 means greedy")
    g.add_argument("--top-k", type=int)
    g.add_argument("--top-p", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--device", default="cpu")
    g.add_argument("--no-cache", action="store_true", help="recompute the whole context for every token")

    sub.add_parser("runs", help="list the runs in the runs folder")
    return parser


def build_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The run spec a `train` command line describes: a preset (starter's by default) or a --spec
    file, then each flag given on top."""
    if args.spec and args.preset:
        raise ValueError("give --preset or --spec, not both")
    if args.spec:
        spec = _read_spec(args.spec)
    else:
        spec = get_preset(args.preset or "starter")
        # a run counts as the preset's when asked for by name, or when no flag replaced its model or text
        spec["preset"] = args.preset or (None if args.model or args.data else "starter")
    spec.pop("description", None)
    spec.setdefault("model", {"family": "gpt"})
    spec.setdefault("train", {})
    if args.model and args.model != spec["model"].get("family"):
        spec["model"] = {"family": args.model, **({"block_size": spec["model"]["block_size"]}
                                                  if "block_size" in spec["model"] else {})}
        spec["train"].pop("optimizer", None)  # the preset chose it for its own model (Muon needs hidden matrices)
    for key in ("data", "tokenizer", "vocab_size", "init_vectors"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    for flag in _MODEL_FLAGS:
        if getattr(args, flag) is not None:
            spec["model"][flag] = getattr(args, flag)
    for flag, field in _TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            spec["train"][field] = getattr(args, flag)
    if args.fsdp:
        spec["train"]["parallel"] = "fsdp"
    if args.tensorboard:
        spec["train"]["tensorboard"] = True
    return spec


def _read_spec(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"spec file {path} is missing") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"spec file {path} is not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise ValueError(f"spec file {path} must hold a JSON object (the shape of a preset)")
    return spec


def _say(record: dict) -> None:
    """Print what the trainer has to tell a person: restarts, skipped checkpoints, why a run ended."""
    if record.get("message") and (record.get("kind") == "note" or record.get("event") in ("start", "resume")):
        print(f"note: {record['message']}", file=sys.stderr, flush=True)


def _train(args) -> int:
    from .experiment import resume_run, start_run

    if args.resume:
        given = [flag for flag in ("preset", "name", "spec", "data", "model", "tokenizer", "vocab_size", "init_vectors",
                                   "fsdp", "tensorboard", "overwrite", *_MODEL_FLAGS,
                                   *(f for f in _TRAIN_FLAGS if f != "steps")) if getattr(args, flag) is not None]
        if given:
            raise ValueError(f"--resume takes only --steps, --allow-changed-data and --quiet: a run keeps the settings it "
                             f"started with "
                             f"(got --{'untied-head' if given[0] == 'tie_embeddings' else given[0].replace('_', '-')})")
        result = resume_run(args.resume, max_steps=args.steps, callback=_say, progress=not args.quiet,
                            allow_changed_data=bool(args.allow_changed_data))
    else:
        if args.allow_changed_data:
            raise ValueError("--allow-changed-data goes with --resume: a new run records the text it starts on")
        if args.overwrite and not args.name:
            raise ValueError("--overwrite needs --name: the run to erase and start again")
        result = start_run(build_spec(args), name=args.name, callback=_say, progress=not args.quiet,
                           overwrite=bool(args.overwrite))
    run_name = result.run
    val = f"{result.last_val_loss:.4f}" if result.last_val_loss is not None else "n/a"
    print(f"{result.status}: run {run_name!r}, step {result.step}, val loss {val}, {result.elapsed:.1f} s")
    if args.tensorboard:
        from .runs import runs_dir

        print(f"TensorBoard: tensorboard --logdir {runs_dir()}")
    if result.status == "stopped":
        print(f"resume with: python -m lesson_lib train --resume {run_name}")
    else:
        print(f"generate with: python -m lesson_lib generate --run {run_name} --prompt {_shell_quoted(_prompt_of(run_name))}")
    return 0


def _prompt_of(run_name: str) -> str:
    from .experiment import default_prompt
    from .runs import Run

    return default_prompt(Run.open(run_name))


def _shell_quoted(text: str) -> str:
    """`text` as a POSIX shell word: bash's $'...' where it holds a line break (a Tang title's), else '...'."""
    if "\n" in text:
        return "$'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return "'" + text.replace("'", "'\\''") + "'"


def _generate(args) -> int:
    from .experiment import load_trained
    from .sampling import SamplingConfig, stream

    config = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, seed=args.seed, use_cache=not args.no_cache)
    model, tokenizer, meta = load_trained(args.run, args.checkpoint, device=args.device)
    print(f"# run {meta['run']}, checkpoint {meta['checkpoint']} (val loss {meta.get('val_loss')})", file=sys.stderr)
    sys.stdout.write(args.prompt)
    for piece in stream(model, tokenizer, args.prompt, config):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _runs(args) -> int:
    from .runs import list_runs, runs_dir

    runs = list_runs()
    if not runs:
        print(f"no runs in {runs_dir().resolve()}: train one with: python -m lesson_lib train --preset starter")
        return 0
    header = f"{'name':24s} {'model':7s} {'params':>9s} {'tok':5s} {'steps':>6s} {'best val':>9s} {'ckpts':>5s}  status"
    print(header)
    damaged = []
    for run in runs:  # one damaged run never hides the others: summary() says what it could not read
        s = run.summary()
        best = f"{s['best_val_loss']:.4f}" if s["best_val_loss"] is not None else "-"
        params = f"{s['params']:,}" if s["params"] else "-"
        print(f"{s['name'][:24]:24s} {str(s['family'] or '-'):7s} {params:>9s} {str(s['tokenizer'] or '-'):5s} "
              f"{s['steps']:>6d} {best:>9s} {s['checkpoints']:>5d}  {s['status']}{' (damaged)' if s['problem'] else ''}")
        if s["problem"]:
            damaged.append(s["problem"])
    for problem in damaged:
        print(f"damaged: {problem}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"train": _train, "generate": _generate, "runs": _runs}[args.command]
    try:
        return handler(args)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
