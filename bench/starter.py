"""Wall time and final val loss of the `starter` preset, end to end as a new user runs it.

    python bench/starter.py
    python bench/starter.py --lr 5e-3 --steps 1000      # any further flags of `train`, to try a change

Runs `python -m lesson_lib train --preset starter` (with the flags given) in a fresh process with a temporary runs
folder (data loading, tokenizer, training, evaluation and checkpoints all counted) and prints
its wall time and final val loss. Target (issue 2): val loss <= 2.0 within 2 minutes on 2 CPU cores.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lesson_lib.runs import Run


def main() -> None:
    flags = sys.argv[1:]  # passed on to `python -m lesson_lib train`, after the preset
    with tempfile.TemporaryDirectory() as runs:
        env = {**os.environ, "LESSON_RUNS_DIR": runs}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lesson_lib", "train", "--preset", "starter", "--name", "bench",
                        "--quiet", *flags], env=env, check=True)
        wall = time.perf_counter() - start
        log = Run(Path(runs) / "bench").metrics()
    evals, train = log.of_kind("eval"), log.of_kind("train")
    first_under_2 = next((r for r in evals if r["val_loss"] <= 2.0), None)
    print(f"starter preset{' with ' + ' '.join(flags) if flags else ''}: {train[-1]['step']} steps, {train[-1]['tokens']:,} tokens")
    print(f"wall time, whole command: {wall:.1f} s (training loop {train[-1]['time']:.1f} s)")
    print(f"final val loss: {evals[-1]['val_loss']:.4f} nats/char ({evals[-1]['val_bpc']:.3f} bits/char)")
    if first_under_2:
        print(f"val loss first <= 2.0 at step {first_under_2['step']}, {first_under_2['time']:.1f} s into training")
    print(f"target: val loss <= 2.0 within 120 s -> {'met' if evals[-1]['val_loss'] <= 2.0 and wall <= 120 else 'NOT met'}")


if __name__ == "__main__":
    main()
