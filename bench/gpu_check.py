"""One script that exercises the GPU path end to end and prints what it measured.

    python bench/gpu_check.py [--steps 1500] [--preset gpu-small]

Device pick (CUDA, else MPS, else CPU), bf16 autocast, measured matmul peaks, a short training
run of the preset through the normal run folder, text generated from its checkpoint, greedy
output with and without the KV cache compared, and generation speed, with and without the
one-token decode step captured as a CUDA graph (`SamplingConfig(cuda_graph=True)`). Runs on a CPU as well
(with --steps small), which is how it is checked before borrowing a GPU.
"""
from __future__ import annotations

import argparse
import time

import torch

from lesson_lib.device import autocast_dtype, describe, measure_matmul_flops, pick_device
from lesson_lib.experiment import load_trained, start_run
from lesson_lib.presets import get_preset
from lesson_lib.sampling import SamplingConfig, generate, generate_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="gpu-small")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--compile", action="store_true", help="also time a short torch.compile run")
    args = parser.parse_args()

    device = pick_device()
    dtype = autocast_dtype(device, "auto")
    print(f"torch {torch.__version__}; device picked: {describe(device)}; autocast dtype: {dtype}")
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        print(f"matmul peak {name}: {measure_matmul_flops(device, dt) / 1e12:,.1f} TFLOP/s")

    spec = get_preset(args.preset)
    spec["train"].update(max_steps=args.steps, eval_interval=max(args.steps // 4, 1), measure_mfu=True)
    start = time.perf_counter()
    result = start_run(spec, name=f"{args.preset}-check", progress=False)
    wall = time.perf_counter() - start
    train = [r for r in result.records if r.get("kind") == "train"]
    steady = train[len(train) // 2:]
    tps = sum(r["tokens_per_s"] for r in steady) / len(steady)
    mfu = sum(r["mfu"] for r in steady) / len(steady)
    print(f"trained {args.preset} for {result.step} steps in {wall:.1f} s (whole run, data included): "
          f"val loss {result.last_val_loss:.4f}, {tps:,.0f} tokens/s, MFU {mfu:.1%} of measured peak")
    evals = [(r["step"], round(r["val_loss"], 4)) for r in result.records if r.get("kind") == "eval"]
    print(f"val loss by step: {evals}")

    model, tokenizer, meta = load_trained(result.run, "best", device=str(device))
    print(f"loaded checkpoint {meta['checkpoint']} on {next(model.parameters()).device}")
    text = generate(model, tokenizer, "ROMEO:", max_new_tokens=300, temperature=0.8, top_k=50, seed=1)
    print("--- sample (temperature 0.8, top-k 50) ---\n" + text + "\n---")

    prompt = tokenizer.encode("JULIET:")
    n = 2 * model.config.block_size  # past the context, so the cache is rebuilt on the way
    greedy = {}
    for use_cache in (True, False):
        start = time.perf_counter()
        greedy[use_cache] = [t for t, _ in generate_ids(model, prompt, SamplingConfig(
            max_new_tokens=n, temperature=0, use_cache=use_cache))]
        print(f"greedy {n} tokens {'with' if use_cache else 'without'} KV cache: "
              f"{n / (time.perf_counter() - start):,.0f} tokens/s")
    same = sum(a == b for a, b in zip(greedy[True], greedy[False]))
    print(f"greedy with vs without cache: {same}/{n} tokens equal "
          f"({'identical' if same == n else 'differ (bf16/TF32 rounding can flip near-ties)'})")
    # decoding is launch-bound on a GPU: the one-token step captured as a CUDA graph (sampling's cuda_graph)
    n = 4 * model.config.block_size
    timed = {}
    for cuda_graph in (False, True):
        config = SamplingConfig(max_new_tokens=n, temperature=0, cuda_graph=cuda_graph)
        list(generate_ids(model, prompt, config))  # warm-up: kernels chosen, the graph recorded once
        start = time.perf_counter()
        timed[cuda_graph] = [t for t, _ in generate_ids(model, prompt, config)]
        print(f"greedy {n} tokens, KV cache, {'CUDA graph' if cuda_graph else 'no graph'}: "
              f"{n / (time.perf_counter() - start):,.0f} tokens/s")
    same = sum(a == b for a, b in zip(timed[True], timed[False]))
    print(f"greedy with vs without the CUDA graph: {same}/{n} tokens equal")

    if args.compile:
        spec = get_preset(args.preset)
        spec["train"].update(max_steps=200, eval_interval=200, compile=True)
        start = time.perf_counter()
        result = start_run(spec, name=f"{args.preset}-compiled", progress=False)
        train = [r for r in result.records if r.get("kind") == "train"]
        print(f"torch.compile run: 200 steps in {time.perf_counter() - start:.1f} s, "
              f"last-window {train[-1]['tokens_per_s']:,.0f} tokens/s, val loss {result.last_val_loss:.4f}")


if __name__ == "__main__":
    main()
