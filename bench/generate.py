"""Generation speed with and without the KV cache.

    python bench/generate.py [--device cpu] [--presets starter shakespeare-char gpu-small]

For each preset's GPT (random weights: speed does not depend on what the weights are), prints
tokens/s for 256 and 1024 new tokens, greedy, with the cache and with full recomputation, and
the ratio. Target (issue 2): the cache at least 5x faster at 1024 new tokens.
"""
from __future__ import annotations

import argparse
import time

import torch

from lesson_lib.device import describe, pick_device
from lesson_lib.models import build_model
from lesson_lib.presets import get_preset
from lesson_lib.sampling import SamplingConfig, generate_ids


def tokens_per_s(model, n_new: int, use_cache: bool, repeats: int) -> float:
    config = SamplingConfig(max_new_tokens=n_new, temperature=0, use_cache=use_cache)
    prompt = list(range(6))
    for _ in generate_ids(model, prompt, SamplingConfig(max_new_tokens=8, temperature=0, use_cache=use_cache)):
        pass  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in generate_ids(model, prompt, config):
            pass
        best = max(best, n_new / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--presets", nargs="+", default=["starter", "shakespeare-char", "gpu-small"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device: {describe(device)}, torch {torch.__version__}")
    print(f"{'preset':18s} {'context':>7s} {'params':>10s} {'new':>5s} {'cache tok/s':>12s} {'no-cache tok/s':>15s} {'ratio':>6s}")
    for name in args.presets:
        torch.manual_seed(0)
        model = build_model({**get_preset(name)["model"], "vocab_size": 84}).to(device).eval()
        for n_new in (256, 1024):
            cached = tokens_per_s(model, n_new, True, args.repeats)
            full = tokens_per_s(model, n_new, False, args.repeats)
            print(f"{name:18s} {model.config.block_size:7d} {model.num_params():10,d} {n_new:5d} "
                  f"{cached:12.0f} {full:15.0f} {cached / full:6.1f}x", flush=True)


if __name__ == "__main__":
    main()
