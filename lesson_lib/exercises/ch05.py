"""Chapter 5's exercises: what a one-hot softmax costs, bits per character, an LSTM cell by hand, and
counting a GPT's parameters."""
from __future__ import annotations

import math

import numpy as np
import torch

from .core import Wrong, as_number, describe, expect_close, exercise


@exercise("ch05.one-hot-bytes", "the memory of one-hot labels", level=1)
def _one_hot_bytes(answer, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        n, vocab = int(rng.integers(1_000, 10**6)), int(rng.integers(1_000, 3 * 10**6))
        got = as_number(answer(n, vocab), "the number of bytes")
        if got == n * vocab:
            raise Wrong("that counts the entries; each is a float32 of 4 bytes")
        if got == 8 * n * vocab:
            raise Wrong("that is float64, 8 bytes a number, as keras.utils.to_categorical returns them in Keras 3; "
                        "the exercise asks for the labels stored as float32, 4 bytes a number")
        if got != 4 * n * vocab:
            raise Wrong(f"for {n:,} labels over {vocab:,} words you gave {got:,}: one float32 per word per label")


@exercise("ch05.bits-per-char", "from a loss per token to bits per character", level=1)
def _bits_per_char(answer, seed):
    rng = np.random.default_rng(seed)
    for _ in range(3):
        loss, chars_per_token = float(rng.uniform(1, 6)), float(rng.uniform(1, 6))
        expected = loss / math.log(2) / chars_per_token
        got = as_number(answer(loss, chars_per_token), "bits per character")
        if abs(got - loss / math.log(2)) < 1e-9:
            raise Wrong("that is bits per token: a token here covers several characters")
        if abs(got - loss / chars_per_token) < 1e-9:
            raise Wrong("that is nats per character: a bit is ln 2 nats")
        expect_close(got, expected, "bits per character", rtol=1e-9, atol=1e-12)


@exercise("ch05.lstm-cell", "one step of an LSTM cell, by hand", level=2)
def _lstm_cell(answer, seed):
    torch.manual_seed(seed)
    n_in, hidden, batch = 5, 4, 3
    cell = torch.nn.LSTMCell(n_in, hidden).double()
    x, h, c = torch.randn(batch, n_in).double(), torch.randn(batch, hidden).double(), torch.randn(batch, hidden).double()
    bias = (cell.bias_ih + cell.bias_hh).detach()
    with torch.no_grad():
        h_ref, c_ref = cell(x, (h, c))
    got = answer(x, h, c, cell.weight_ih.detach().clone(), cell.weight_hh.detach().clone(), bias.clone())
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Wrong(f"return (new_h, new_c); got {describe(got)}")
    expect_close(got[1], c_ref, "the new cell state c (gates in PyTorch's order: input, forget, cell, output)")
    expect_close(got[0], h_ref, "the new hidden state h = o * tanh(c)")


@exercise("ch05.gpt-params", "counting a GPT's parameters", level=3)
def _gpt_params(answer, seed):
    from ..models import build_model

    rng = np.random.default_rng(seed)
    for _ in range(3):
        heads = int(rng.integers(1, 5))
        spec = {"family": "gpt", "vocab_size": int(rng.integers(20, 300)), "block_size": int(rng.integers(8, 129)),
                "n_layer": int(rng.integers(1, 7)), "n_head": heads, "n_embd": heads * int(rng.integers(2, 17))}
        expected = build_model(spec).num_params()
        got = as_number(answer(spec["vocab_size"], spec["block_size"], spec["n_layer"], spec["n_embd"]),
                        "the number of parameters")
        if got == expected + spec["vocab_size"] * spec["n_embd"]:
            raise Wrong("the output layer shares its weight with the token embedding (weight tying): count it once")
        if got != expected:
            raise Wrong(f"for vocab {spec['vocab_size']}, context {spec['block_size']}, {spec['n_layer']} layers of "
                        f"width {spec['n_embd']} you gave {got:,}; off by {got - expected:+,}. Count the embeddings, "
                        "each block's two LayerNorms (weights, no biases), attention (qkv and projection) and MLP "
                        "(4x wide), and the final LayerNorm")
