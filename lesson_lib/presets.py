"""Named training recipes: what to train, on what, for how long.

A preset is plain data: the corpus, the tokenizer, the model spec (without vocab_size, which the
tokenizer decides) and the TrainConfig fields. `python -m lesson_lib train --preset NAME` runs
one; any field can be overridden from the command line, the notebooks or the dashboard.
"""
from __future__ import annotations

import copy
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "starter": {
        "description": "char-level GPT on Shakespeare: val loss under 2.0 in about a minute on 2 CPU cores",
        "data": "shakespeare",
        "tokenizer": "char",
        # the speedrun's winner that suits any CPU (README, "Speedrun ladder"): Muon for the hidden matrices,
        # at the speedrun's peak learning rate; its step costs about 40% more, so 800 steps keep the minute
        # (measured 2026-12-06, bench/starter.py: 60.6 s for the command, val 1.7531, against 1.8692 in 75 s
        # for the former AdamW recipe on the same machine; bf16 autocast, the ladder's other winner, is
        # slower on CPUs without native bf16)
        "model": {"family": "gpt", "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
        "train": {"max_steps": 800, "batch_size": 12, "lr": 8e-3, "min_lr": 3e-4, "warmup_steps": 50,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 250, "eval_iters": 20, "log_interval": 10,
                  "optimizer": "muon"},
    },
    "shakespeare-char": {
        "description": "a larger char-level GPT on Shakespeare: about eleven minutes on 2 CPU cores",
        "data": "shakespeare",
        "tokenizer": "char",
        # the speedrun carried back (README, "Speedrun ladder"): Muon for the hidden matrices at lr 3e-3 and no
        # dropout (seven passes over the text do not overfit). fp32, so that it runs alike on any CPU. Measured
        # 2026-12-06: 637 s for the command, val 1.4706; the former AdamW recipe with dropout 0.1: 657 s, 1.668
        "model": {"family": "gpt", "block_size": 128, "n_layer": 4, "n_head": 4, "n_embd": 192, "dropout": 0.0},
        "train": {"max_steps": 2500, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 100,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 250, "eval_iters": 20, "log_interval": 10,
                  "optimizer": "muon"},
    },
    "gpu-small": {
        "description": "nanoGPT's Shakespeare-char size (6 layers, 384 wide, context 256) for one CUDA GPU",
        "data": "shakespeare",
        "tokenizer": "char",
        "model": {"family": "gpt", "block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2},
        "train": {"max_steps": 5000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 250, "eval_iters": 100, "log_interval": 10,
                  "precision": "auto"},
    },
    "speedrun-cpu": {
        "description": "the starter's model trained for speed: val 1.87 in under 50 s on 2 CPU cores",
        "data": "shakespeare",
        "tokenizer": "char",
        # the starter's model with what bench/speedrun.py's ladder measured to help (README, "Speedrun ladder"):
        # bf16 autocast, Muon for the hidden matrices at a high peak learning rate, and so far fewer steps
        # (a Muon step costs about 40% more at this size: five Newton-Schulz iterations per matrix)
        "model": {"family": "gpt", "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
        "train": {"max_steps": 600, "batch_size": 12, "lr": 8e-3, "min_lr": 8e-4, "warmup_steps": 50,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 300, "eval_iters": 100, "log_interval": 10,
                  "precision": "bf16", "optimizer": "muon"},
    },
    "speedrun-cpu-10min": {
        "description": "shakespeare-char's model trained for speed: val 1.60 within ten minutes on 2 CPU cores",
        "data": "shakespeare",
        "tokenizer": "char",
        # shakespeare-char's size with what the speedrun measured to help: bf16 autocast, Muon for the hidden
        # matrices, no dropout (seven passes over the text are too few to overfit), a shorter schedule
        "model": {"family": "gpt", "block_size": 128, "n_layer": 4, "n_head": 4, "n_embd": 192, "dropout": 0.0},
        "train": {"max_steps": 2000, "batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 100,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 500, "eval_iters": 100, "log_interval": 10,
                  "precision": "bf16", "optimizer": "muon"},
    },
    "tang": {
        "description": "char-level GPT on the Tang poems (全唐诗, simplified): about eight minutes on 2 CPU cores",
        "data": "tang",
        "tokenizer": "char",
        # 9,269 characters: the output layer is most of the work, and bf16 autocast makes it 1.3x faster on a
        # CPU with AVX-512 BF16 (measured on an earlier day: 11,100 against 8,500 tokens/s on 2 threads; on
        # 2026-12-07 the whole recipe ran at 6,300 tokens/s, evaluation included); a context of 64 holds
        # the lines before the one being written. Rotary positions and Muon at lr 1e-2 are there for the form
        # (chapter 10; bench/tang_form.py): a poem's form is counted from its title line, a distance rotary
        # positions give attention directly. Measured on 200 titles, temperature 0.8, poems of regular form:
        # 37% without them (val 5.19), 60% with rotary (val 5.19), 75% with Muon too at lr 3e-3 (val 4.93;
        # 72% with another seed), 76% at lr 1e-2 (val 4.89; 64% with another seed), whose eighth of the steps
        # (the notebooks' FAST run) reaches val 5.63 instead of 5.79. Same tokens; on an earlier, faster day
        # 311 s for the command on 2 threads, against 292 s (the two switches cost 9% a step); on 2026-12-07
        # 486 s of training. On 2026-12-06 1,000 steps took 345 s against 462 s for 1,500, and ended at val
        # 4.97 with 59/57/47% regular form over three prompt seeds, against 66/65/67%: too short for the form
        "model": {"family": "gpt", "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0,
                  "rotary": True},
        "train": {"max_steps": 1500, "batch_size": 32, "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 50,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 300, "eval_iters": 20, "log_interval": 10,
                  "precision": "bf16", "optimizer": "muon"},
    },
    # chapter 5's character-level GPT, which chapter 6 fine-tunes as a genre classifier
    "ch05-gpt-char": {
        "description": "chapter 5's char-level GPT on Shakespeare (the starter's size); chapter 6 builds on it",
        "data": "shakespeare",
        "tokenizer": "char",
        "model": {"family": "gpt", "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
        "train": {"max_steps": 1500, "batch_size": 12, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 50,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 250, "eval_iters": 20, "log_interval": 10},
    },
    # chapter 5's other runs: a word-level LSTM (its embedding as wide as chapter 4's word vectors, so
    # --init-vectors can start it from them) and a GPT on the same words and token budget; an LSTM on the
    # characters ch05-gpt-char reads, with its token budget and about its number of parameters
    "ch05-lstm-word": {
        "description": "chapter 5's word-level LSTM; --init-vectors starts its embedding from word vectors",
        "data": "shakespeare",
        "tokenizer": "word",
        "vocab_size": 5000,
        "model": {"family": "lstm", "block_size": 32, "n_embd": 100, "n_hidden": 256, "dropout": 0.0},
        "train": {"max_steps": 800, "batch_size": 32, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 10,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 50, "eval_iters": 20, "log_interval": 10},
    },
    "ch05-gpt-word": {
        "description": "chapter 5's word-level GPT: ch05-lstm-word's words and token budget",
        "data": "shakespeare",
        "tokenizer": "word",
        "vocab_size": 5000,
        "model": {"family": "gpt", "block_size": 32, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
        "train": {"max_steps": 800, "batch_size": 32, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 10,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 50, "eval_iters": 20, "log_interval": 10},
    },
    "ch05-lstm-char": {
        "description": "chapter 5's char-level LSTM: ch05-gpt-char's token budget and about its size",
        "data": "shakespeare",
        "tokenizer": "char",
        "model": {"family": "lstm", "block_size": 64, "n_embd": 64, "n_hidden": 384, "dropout": 0.0},
        "train": {"max_steps": 1500, "batch_size": 12, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 50,
                  "weight_decay": 0.1, "beta2": 0.99, "eval_interval": 250, "eval_iters": 20, "log_interval": 10},
    },
}

FAST_FRACTION = 8  # a notebook's FAST run of a preset takes 1/8 of its steps (and at least 50)


def notebook_run(preset: str, fast: bool) -> tuple[str, dict[str, Any]]:
    """(run name, spec) of `preset` as a notebook trains it. With `fast` (the tests' mode) the run is
    shorter and named `PRESET-fast`, so a quick run never mixes with the full lesson's run of the same
    preset, and two notebooks asking for the same preset get the same run."""
    spec = {**get_preset(preset), "preset": preset}
    if not fast:
        return preset, spec
    steps = max(50, spec["train"]["max_steps"] // FAST_FRACTION)
    spec["train"] = {**spec["train"], "max_steps": steps, "eval_interval": min(spec["train"]["eval_interval"], steps)}
    return f"{preset}-fast", spec


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of preset `name`, safe to modify."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
