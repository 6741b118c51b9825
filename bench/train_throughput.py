"""Training throughput (tokens/s) and MFU of the GPT training step, through the real trainer.

    python bench/train_throughput.py [--device auto] [--configs small shakespeare-char gpu-small]

"small" is the issue's reference step: 4 layers, 4 heads, width 128, context 64, batch 12,
char-level Shakespeare. MFU is model FLOPs (6N + attention, per token) times tokens/s over this
machine's measured matmul FLOP/s in the same precision. Target (issue 2): >= 20k tokens/s for
"small" on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import statistics

import torch

from lesson_lib.config import from_dict
from lesson_lib.device import autocast_dtype, describe, peak_flops, pick_device
from lesson_lib.experiment import prepare_data
from lesson_lib.models import build_model
from lesson_lib.presets import get_preset
from lesson_lib.training import TrainConfig, train

SMALL = {"model": {"family": "gpt", "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128},
         "train": {"batch_size": 12}}


def measure(name: str, spec: dict, data, vocab_size: int, device: str, steps: int, precision: str):
    torch.manual_seed(0)
    model = build_model({**spec["model"], "vocab_size": vocab_size})
    config = from_dict(TrainConfig, {**spec["train"], "max_steps": steps, "warmup_steps": 10, "eval_interval": steps,
                                     "eval_iters": 1, "log_interval": 10, "device": device, "precision": precision})
    result = train(model, data, config, progress=False)
    records = [r for r in result.records if r.get("kind") == "train"]
    records = records[len(records) // 2:]  # steady state: the first steps of a process run slower
    tps = statistics.median(r["tokens_per_s"] for r in records)
    mfu = statistics.median(r["mfu"] for r in records)
    return model, tps, mfu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--configs", nargs="+", default=["small", "shakespeare-char"])
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    device = pick_device(args.device)
    _, data, info = prepare_data("shakespeare", "char")
    dtype = autocast_dtype(device, args.precision) or torch.float32
    peak = peak_flops(device, dtype)
    print(f"device: {describe(device)}, torch {torch.__version__}, precision {str(dtype).replace('torch.', '')}, "
          f"measured matmul peak {peak / 1e9:,.0f} GFLOP/s")
    print(f"{'config':18s} {'params':>10s} {'batch x ctx':>11s} {'tokens/s':>10s} {'MFU':>6s} {'MFLOP/token':>12s}")
    for name in args.configs:
        spec = SMALL if name == "small" else get_preset(name)
        model, tps, mfu = measure(name, spec, data, info["vocab_size"], str(device), args.steps, args.precision)
        batch = f"{spec['train']['batch_size']} x {model.config.block_size}"
        print(f"{name:18s} {model.num_params():10,d} {batch:>11s} {tps:10,.0f} {mfu:6.1%} "
              f"{model.flops_per_token() / 1e6:12.2f}", flush=True)


if __name__ == "__main__":
    main()
