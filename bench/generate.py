"""Generation speed with and without the KV cache, and the cost of streaming text.

    python bench/generate.py [--device cpu] [--presets starter shakespeare-char gpu-small]
                             [--parts cache streaming]

cache: for each preset's GPT (random weights: speed does not depend on what the weights are),
prints tokens/s for 256 and 1024 new tokens, greedy, with the cache and with full recomputation,
and the ratio. Target (issue 2): the cache at least 5x faster at 1024 new tokens.

streaming: a tiny GPT (so the model's own time is small and the text decoding shows) streamed
through `stream_tokens` with each tokenizer kind, 1000 and 4000 new tokens. Decoding that is
linear in the tokens gives a ratio near 4; re-decoding the whole text at every token, about 16.
The model alone (`generate_ids`, 4000 tokens) is printed beside it for scale.
"""
from __future__ import annotations

import argparse
import time

import torch

from lesson_lib.device import describe, pick_device
from lesson_lib.models import build_model
from lesson_lib.presets import get_preset
from lesson_lib.sampling import SamplingConfig, generate_ids, stream_tokens
from lesson_lib.tokenizers import TOKENIZER_KINDS, train_tokenizer

# Text for the streaming tokenizers: words, punctuation, and multi-byte characters (a BPE model
# with random weights then also emits characters split over several tokens).
STREAM_TEXT = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the "
               "slings and arrows of outrageous fortune. 生存还是毁灭，这是一个问题。🙂 café\n") * 20
STREAM_PROMPT = "To be, or not"


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


def cache_table(args, device) -> None:
    print(f"{'preset':18s} {'context':>7s} {'params':>10s} {'new':>5s} {'cache tok/s':>12s} "
          f"{'no-cache tok/s':>15s} {'ratio':>6s}")
    for name in args.presets:
        torch.manual_seed(0)
        model = build_model({**get_preset(name)["model"], "vocab_size": 84}).to(device).eval()
        for n_new in (256, 1024):
            cached = tokens_per_s(model, n_new, True, args.repeats)
            full = tokens_per_s(model, n_new, False, args.repeats)
            print(f"{name:18s} {model.config.block_size:7d} {model.num_params():10,d} {n_new:5d} "
                  f"{cached:12.0f} {full:15.0f} {cached / full:6.1f}x", flush=True)



def streaming_seconds(model, tokenizer, n_new: int, repeats: int) -> float:
    """Best wall time to stream `n_new` tokens (sampled, seeded) as text pieces."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in stream_tokens(model, tokenizer, STREAM_PROMPT, max_new_tokens=n_new, seed=0):
            pass
        best = min(best, time.perf_counter() - start)
    return best


def streaming_table(device, repeats: int) -> None:
    print(f"\nstreaming: a tiny GPT (1 layer, width 32, context 64), sampled, best of {repeats}")
    print(f"{'tokenizer':9s} {'vocab':>5s} {'1000 tok s':>10s} {'4000 tok s':>10s} {'ratio':>6s} "
          f"{'model alone 4000 s':>18s}")
    for kind in TOKENIZER_KINDS:
        tokenizer = train_tokenizer(kind, STREAM_TEXT, vocab_size=300 if kind == "bpe" else None)
        torch.manual_seed(0)
        model = build_model({"family": "gpt", "vocab_size": tokenizer.vocab_size, "block_size": 64,
                             "n_layer": 1, "n_head": 2, "n_embd": 32}).to(device).eval()
        streaming_seconds(model, tokenizer, 50, 1)  # warm-up
        short, long = (streaming_seconds(model, tokenizer, n, repeats) for n in (1000, 4000))
        start = time.perf_counter()
        for _ in generate_ids(model, tokenizer.encode(STREAM_PROMPT), max_new_tokens=4000, seed=0):
            pass
        alone = time.perf_counter() - start
        print(f"{kind:9s} {tokenizer.vocab_size:5d} {short:10.2f} {long:10.2f} {long / short:5.1f}x "
              f"{alone:18.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--presets", nargs="+", default=["starter", "shakespeare-char", "gpu-small"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", nargs="+", choices=["cache", "streaming"], default=["cache", "streaming"])
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"device: {describe(device)}, torch {torch.__version__}")
    if "cache" in args.parts:
        cache_table(args, device)
    if "streaming" in args.parts:
        streaming_table(device, args.repeats)


if __name__ == "__main__":
    main()
