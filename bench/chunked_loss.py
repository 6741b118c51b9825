"""The GPT's `chunked_loss` switch: time per training step and per evaluation batch, off and on.

    python bench/chunked_loss.py                      # the tang preset's model (9,269 characters)
    python bench/chunked_loss.py --preset starter     # 65 characters: the loss is a small part of a step
    python bench/chunked_loss.py --repeats 3 --steps 30 --threads 1

Each setting trains the preset's model with the real trainer (`training_time.calibrate`: 5 untimed
steps, then `--steps` timed ones, the median kept; then timed evaluation batches), alternating off
and on `--repeats` times so that a change in the machine's load falls on both. The last line reads,
for example:

    chunked_loss: 1.27x faster a training step (296.6 -> 232.3 ms), 1.30x an evaluation batch
"""
from __future__ import annotations

import argparse
import copy
import statistics

from lesson_lib import training_time
from lesson_lib.device import cpu_threads, describe, pick_device
from lesson_lib.experiment import prepare_data
from lesson_lib.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tang")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="measurements of each setting, alternated")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()

    spec = get_preset(args.preset)
    tokenizer, data, _ = prepare_data(spec["data"], spec["tokenizer"], spec.get("vocab_size"))
    print(f"preset {args.preset!r}: vocabulary {tokenizer.vocab_size:,}, batch {spec['train']['batch_size']} x "
          f"context {spec['model']['block_size']}, precision {spec['train'].get('precision', 'fp32')}; "
          f"device {describe(pick_device(spec['train'].get('device', 'auto')))}", flush=True)
    step_ms, eval_ms = {False: [], True: []}, {False: [], True: []}
    with cpu_threads(args.threads):
        for _ in range(args.repeats):
            for flag in (False, True):
                s = copy.deepcopy(spec)
                s["model"]["chunked_loss"] = flag
                c = training_time.calibrate(s, tokenizer.vocab_size, data, 1.0, steps=args.steps, skip=5)
                step_ms[flag].append(c.seconds_per_step * 1e3)
                eval_ms[flag].append(c.seconds_per_eval_batch * 1e3)
                print(f"chunked_loss={flag!s:5}: {step_ms[flag][-1]:6.1f} ms a step, "
                      f"{eval_ms[flag][-1]:6.1f} ms an evaluation batch", flush=True)
    off, on = statistics.median(step_ms[False]), statistics.median(step_ms[True])
    eval_off, eval_on = statistics.median(eval_ms[False]), statistics.median(eval_ms[True])
    print(f"chunked_loss: {off / on:.2f}x faster a training step ({off:.1f} -> {on:.1f} ms), "
          f"{eval_off / eval_on:.2f}x an evaluation batch")


if __name__ == "__main__":
    main()
