"""Speedrun: wall time to a validation loss on Shakespeare's characters, the whole command counted.

    python bench/speedrun.py                          # the speedrun-cpu preset: time to val 1.87
    python bench/speedrun.py --preset starter --overrides '{"train": {"precision": "bf16"}}' --seed 1
    python bench/speedrun.py --ladder                 # every rung of the ladder, 3 seeds each (~20 min)
    python bench/speedrun.py --tried --seeds 1        # each model change alone on the speedrun-cpu recipe
    python bench/speedrun.py --preset speedrun-cpu-10min --target 1.60    # val 1.60 within ten minutes

The clock starts when this script starts (imports, reading the corpus, the tokenizer, building the
model, training and every evaluation are counted) and stops at the first evaluation whose val loss
is at or below the target. Evaluations use a fixed set of validation windows (the preset's
`eval_iters` batches, raised to 100 if it has fewer, drawn from one seed), so two runs are scored on the
same text.
The last lines print, for example:

    time to val 1.87: 38.5 s
    final val loss: 1.8395 (step 600, 38.5 s)
    tokens/s: (training tokens per second of wall time) · MFU: (of the measured matmul peak)

The ladder starts from the `starter` preset's former recipe scored the same way and adds one change at a
time; each rung runs in a fresh process, three seeds, and the median is reported. The last rung is the
`speedrun-cpu` preset (a test checks that it is).
"""
from __future__ import annotations

import time

START = time.perf_counter()  # before the heavy imports: they are part of the command's time

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

MIN_EVAL_BATCHES = 100


def run_once(preset: str, target: float, seed: int, overrides: dict, quiet: bool) -> dict:
    """Train `preset` (with `overrides` merged into its model and train settings) in this process."""
    from lesson_lib.experiment import start_run
    from lesson_lib.presets import get_preset

    spec = get_preset(preset)
    spec["preset"] = preset
    spec["model"].update(overrides.get("model", {}))
    spec["train"].update({**overrides.get("train", {}), "seed": seed})
    # at least 100 batches, so that the score is not luck
    spec["train"]["eval_iters"] = max(spec["train"].get("eval_iters", 0), MIN_EVAL_BATCHES)
    reached: dict = {}

    def watch(record: dict) -> None:
        if record.get("kind") == "eval":
            record["wall"] = time.perf_counter() - START
            if "time" not in reached and record["val_loss"] <= target:
                reached.update(time=record["wall"], step=record["step"])
            if not quiet:
                print(f"  step {record['step']:5d}  val {record['val_loss']:.4f}  at {record['wall']:6.1f} s",
                      flush=True)

    with tempfile.TemporaryDirectory() as runs:
        result = start_run(spec, name="speedrun", root=runs, callback=watch, progress=False)
    train = [r for r in result.records if r.get("kind") == "train"]
    evals = [r for r in result.records if r.get("kind") == "eval"]
    tokens_per_s = result.tokens / result.elapsed if result.elapsed else 0.0
    mfus = [r["mfu"] for r in train if r.get("mfu")]
    return {"preset": preset, "seed": seed, "target": target, "time_to_target": reached.get("time"),
            "step_at_target": reached.get("step"), "final_val": evals[-1]["val_loss"], "final_step": result.step,
            "final_wall": evals[-1]["wall"], "tokens_per_s": tokens_per_s,
            "mfu": statistics.median(mfus) if mfus else None, "val_at": {r["step"]: r["val_loss"] for r in evals}}


def report(outcome: dict) -> None:
    t = outcome["time_to_target"]
    print(f"time to val {outcome['target']:.2f}: " + (f"{t:.1f} s" if t is not None else "not reached"))
    print(f"final val loss: {outcome['final_val']:.4f} (step {outcome['final_step']}, {outcome['final_wall']:.1f} s)")
    mfu = f"{outcome['mfu']:.2f}" if outcome["mfu"] is not None else "n/a"
    print(f"tokens/s: {outcome['tokens_per_s']:,.0f} · MFU: {mfu}")


# ----------------------------------------------------------------------------- the ladder

# The ladder starts from the starter preset's recipe as it was before the speedrun (1,500 steps of AdamW at
# lr 2e-3 in fp32, GELU), written out here on the speedrun-cpu preset's model (the same), so that the ladder
# does not move when the presets take its winners.
FORMER_STARTER = {"model": {"mlp": "gelu"}, "train": {"max_steps": 1500, "lr": 2e-3, "min_lr": 2e-4, "eval_interval": 250,
                                             "precision": "auto", "optimizer": "adamw"}}
# Each rung: the settings it adds on top of the rungs above it.
LADDER: list[tuple[str, dict]] = [
    ("+ bf16 autocast", {"train": {"precision": "bf16"}}),
    ("+ evaluate every 500 steps, not 250", {"train": {"eval_interval": 500}}),
    ("+ peak learning rate 3e-3", {"train": {"lr": 3e-3, "min_lr": 3e-4}}),
    ("+ 1,350 steps, not 1,500", {"train": {"max_steps": 1350, "eval_interval": 450}}),
    ("+ Muon for the hidden matrices", {"train": {"optimizer": "muon"}}),
    ("+ peak learning rate 8e-3", {"train": {"lr": 8e-3, "min_lr": 8e-4}}),
    ("+ 600 steps, evaluations every 300: the speedrun-cpu preset", {"train": {"max_steps": 600, "eval_interval": 300}}),
]
# Tried one at a time on the speedrun-cpu recipe as it was before Muon (AdamW at lr 3e-3, 1,350 steps; one
# seed, README): rotary embeddings, ReLU^2, SwiGLU, an untied head, a zero-initialised untied head, QK-norm,
# and Muon, the one kept. `--tried` runs them on the preset as it is now.
TRIED: list[tuple[str, dict]] = [
    ("rotary position embeddings", {"model": {"rotary": True}}),
    ("ReLU^2 MLP", {"model": {"mlp": "relu2"}}),
    ("SwiGLU MLP", {"model": {"mlp": "swiglu"}}),
    ("untied output layer", {"model": {"tie_embeddings": False}}),
    ("untied output layer, zero-initialised", {"model": {"tie_embeddings": False, "zero_init_head": True}}),
    ("QK-norm", {"model": {"qk_norm": True}}),
]


def in_fresh_process(preset: str, target: float, seed: int, overrides: dict) -> dict:
    """run_once in a new Python process (imports and data loading counted again), its outcome read back."""
    line = subprocess.run([sys.executable, __file__, "--preset", preset, "--target", str(target), "--seed", str(seed),
                           "--overrides", json.dumps(overrides), "--json", "--quiet"],
                          capture_output=True, text=True, check=True, env=os.environ).stdout.splitlines()[-1]
    return json.loads(line)


def rungs() -> list[tuple[str, dict]]:
    """Each rung's name and its settings on the speedrun-cpu preset: the former starter recipe, then every
    change of LADDER added to the ones before it."""
    out, overrides = [], copy.deepcopy(FORMER_STARTER)
    for name, change in [("the former starter recipe", {})] + LADDER:
        for part in ("model", "train"):
            overrides[part].update(change.get(part, {}))
        out.append((name, copy.deepcopy(overrides)))
    return out


def ladder(seeds: int, target: float, first: int = 0) -> None:
    """The rungs from number `first` on (0: the former starter recipe; later ones keep what came before)."""
    rows = []
    for number, (name, overrides) in enumerate(rungs()):
        if number < first:
            continue
        outcomes = []
        for seed in range(seeds):
            outcomes.append(in_fresh_process("speedrun-cpu", target, seed, overrides))
        times = [o["time_to_target"] for o in outcomes if o["time_to_target"] is not None]
        rows.append((name, statistics.median(o["final_val"] for o in outcomes),
                     statistics.median(times) if len(times) == len(outcomes) else None,
                     statistics.median(o["final_wall"] for o in outcomes)))
        print(f"{name:40s} final val {rows[-1][1]:.4f} at {rows[-1][3]:5.1f} s · time to {target}: "
              + (f"{rows[-1][2]:.1f} s" if rows[-1][2] is not None else "not reached in every seed"), flush=True)
    print("\n| change | median final val loss | median wall time at the end (s) | median time to val "
          f"{target} (s) |\n|---|---|---|---|")
    for name, val, to_target, wall in rows:
        print(f"| {name} | {val:.4f} | {wall:.1f} | {to_target:.1f} |" if to_target is not None
              else f"| {name} | {val:.4f} | {wall:.1f} | not reached |")


def tried(seeds: int, target: float) -> None:
    """Each change of TRIED alone on the speedrun-cpu preset: its val loss at every evaluation (same steps)."""
    for number, (name, change) in enumerate([("none (the speedrun-cpu preset)", {})] + TRIED):
        outcomes = []
        for seed in range(seeds):
            outcomes.append(in_fresh_process("speedrun-cpu", target, seed, change))
        steps = sorted(outcomes[0]["val_at"], key=int)
        if number == 0:
            print(f"| change on the speedrun-cpu recipe | median val loss at {' / '.join(f'{int(s):,}' for s in steps)} "
                  "steps |\n|---|---|")
        vals = [statistics.median(o["val_at"][step] for o in outcomes) for step in steps]
        print(f"| {name} | {' / '.join(f'{v:.4f}' for v in vals)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="speedrun-cpu")
    parser.add_argument("--target", type=float, default=1.87)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overrides", default="{}", help="JSON: {'model': {...}, 'train': {...}} on the preset")
    parser.add_argument("--ladder", action="store_true")
    parser.add_argument("--from-rung", type=int, default=0, help="with --ladder: start at this rung (0: the first)")
    parser.add_argument("--tried", action="store_true", help="each change of TRIED alone on the speedrun-cpu preset")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON line")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.ladder:
        ladder(args.seeds, args.target, args.from_rung)
        return
    if args.tried:
        tried(args.seeds, args.target)
        return
    outcome = run_once(args.preset, args.target, args.seed, copy.deepcopy(json.loads(args.overrides)), args.quiet)
    if args.json:
        print(json.dumps(outcome))
    else:
        report(outcome)


if __name__ == "__main__":
    main()
