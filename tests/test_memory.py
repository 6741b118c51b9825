"""The memory model: exact parameter arithmetic, and predictions that agree with what autograd saves."""
import dataclasses
import sys

import pytest
import torch

from lesson_lib.memory import (GiB, MemoryEstimate, WillNotFit, available_memory, check_fits,
                               measure_training_memory, parameter_count, peak_rss_rise, predict_training_memory)
from lesson_lib.models import build_model

SPECS = [
    {"family": "bigram", "vocab_size": 11},
    {"family": "bigram", "vocab_size": 65, "block_size": 8},
    {"family": "mlp", "vocab_size": 11, "context": 3, "n_embd": 8, "n_hidden": 16},
    {"family": "mlp", "vocab_size": 30, "context": 1, "n_embd": 5, "n_hidden": 7},
    {"family": "lstm", "vocab_size": 11, "n_embd": 8, "n_hidden": 16},
    {"family": "lstm", "vocab_size": 20, "n_embd": 8, "n_hidden": 12, "n_layer": 3},
    {"family": "lstm", "vocab_size": 20, "n_embd": 8, "n_hidden": 12, "freeze_embedding": True},
    {"family": "gpt", "vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16},
    {"family": "gpt", "vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, "bias": True},
    {"family": "gpt", "vocab_size": 50, "block_size": 32, "n_layer": 3, "n_head": 3, "n_embd": 24, "bias": True},
    {"family": "gpt", "vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, "qk_norm": True},
    {"family": "gpt", "vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 4, "n_embd": 16, "qk_norm": True,
     "bias": True, "activation_checkpointing": 2},
    {"family": "gpt", "vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, "rotary": True},
    {"family": "gpt", "vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16, "mlp": "swiglu",
     "bias": True},
    {"family": "gpt", "vocab_size": 11, "block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 24, "mlp": "relu2",
     "tie_embeddings": False},
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s["family"])
def test_parameter_count_equals_the_built_model(spec):
    model = build_model(spec)
    assert parameter_count(spec) == model.num_params()
    estimate = predict_training_memory(spec, batch_size=2)
    assert estimate.parameters == 4 * model.num_params()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)  # the tied weight once
    assert estimate.gradients == 4 * trainable


# (spec, batch size, precision, tolerance on activations + logits): exact where torch's saved
# tensors are modelled one by one; the LSTM's oneDNN workspace is a fitted constant
CASES = [
    ({"family": "gpt", "vocab_size": 37, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32}, 4, "fp32", 0),
    ({"family": "gpt", "vocab_size": 50, "block_size": 32, "n_layer": 1, "n_head": 4, "n_embd": 48,
      "dropout": 0.1, "bias": True}, 2, "fp32", 0),
    ({"family": "gpt", "vocab_size": 29, "block_size": 8, "n_layer": 3, "n_head": 3, "n_embd": 24,
      "dropout": 0.2}, 5, "fp32", 0),
    ({"family": "gpt", "vocab_size": 37, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32}, 4, "bf16", 0),
    ({"family": "gpt", "vocab_size": 50, "block_size": 32, "n_layer": 1, "n_head": 4, "n_embd": 48,
      "dropout": 0.1, "bias": True}, 2, "bf16", 0),
    ({"family": "lstm", "vocab_size": 40, "block_size": 16, "n_layer": 2, "n_embd": 24, "n_hidden": 64,
      "dropout": 0.2}, 3, "fp32", 0.10),
    ({"family": "lstm", "vocab_size": 40, "block_size": 24, "n_embd": 16, "n_hidden": 96,
      "freeze_embedding": True}, 4, "fp32", 0.10),
    ({"family": "mlp", "vocab_size": 40, "block_size": 16, "context": 4, "n_embd": 8, "n_hidden": 64}, 3, "fp32", 0),
    ({"family": "mlp", "vocab_size": 40, "block_size": 16, "context": 4, "n_embd": 8, "n_hidden": 64,
      "dropout": 0.1}, 3, "bf16", 0),
    ({"family": "bigram", "vocab_size": 40, "block_size": 16}, 3, "fp32", 0),
]
# the GPT's two switches, also exact: checkpointing none, some and all blocks, and QK-norm, on both
# attention paths (fused; the CPU's math path, which dropout selects) and in both precisions
SWITCHED = {"family": "gpt", "vocab_size": 29, "block_size": 12, "n_layer": 3, "n_head": 3, "n_embd": 24}
CASES += [({**SWITCHED, **extra}, 3, precision, 0) for extra, precision in [
    ({"activation_checkpointing": 0}, "fp32"),
    ({"activation_checkpointing": 1}, "fp32"),
    ({"activation_checkpointing": 3}, "fp32"),
    ({"activation_checkpointing": 2, "dropout": 0.1, "bias": True}, "fp32"),
    ({"activation_checkpointing": 3, "dropout": 0.1}, "bf16"),
    ({"qk_norm": True}, "fp32"),
    ({"qk_norm": True, "dropout": 0.1}, "fp32"),
    ({"qk_norm": True, "bias": True}, "bf16"),
    ({"qk_norm": True, "activation_checkpointing": 3, "dropout": 0.1}, "fp32"),
    ({"qk_norm": True, "activation_checkpointing": 1}, "bf16"),
]]
# the speedrun switches, exact as well: rotary (with and without QK-norm, on both attention paths),
# ReLU^2 and SwiGLU MLPs, an untied head, and all of them with checkpointing
CASES += [({**SWITCHED, **extra}, 3, precision, 0) for extra, precision in [
    ({"rotary": True}, "fp32"),
    ({"rotary": True}, "bf16"),
    ({"rotary": True, "dropout": 0.1}, "fp32"),
    ({"rotary": True, "qk_norm": True}, "bf16"),
    ({"rotary": True, "activation_checkpointing": 2}, "fp32"),
    ({"mlp": "relu2", "dropout": 0.1}, "fp32"),
    ({"mlp": "relu2"}, "bf16"),
    ({"mlp": "swiglu", "bias": True}, "fp32"),
    ({"mlp": "swiglu", "dropout": 0.1}, "bf16"),
    ({"tie_embeddings": False, "zero_init_head": True}, "bf16"),
    ({"rotary": True, "chunked_loss": True}, "fp32"),
    ({"rotary": True, "chunked_loss": True}, "bf16"),
    ({"rotary": True, "qk_norm": True, "mlp": "swiglu", "tie_embeddings": False, "activation_checkpointing": 3},
     "fp32"),
]]


def _case_id(i, case):
    spec, precision = case[0], case[2]
    switches = "".join(f"-ckpt{spec['activation_checkpointing']}" if key == "activation_checkpointing" else
                       "-qknorm" if key == "qk_norm" else "-rotary" if key == "rotary" else
                       f"-{spec['mlp']}" if key == "mlp" else "-untied" if key == "tie_embeddings" else ""
                       for key in spec)
    return f"{spec['family']}{switches}-{precision}-{i}"


@pytest.mark.parametrize("spec, batch_size, precision, tolerance", CASES,
                         ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_prediction_matches_measurement(spec, batch_size, precision, tolerance):
    torch.manual_seed(0)
    model = build_model(spec)
    generator = torch.Generator().manual_seed(1)
    # two separate tensors: views of one storage would be counted once, as the measurement should
    idx, targets = (torch.randint(0, spec["vocab_size"], (batch_size, spec["block_size"]), generator=generator)
                    for _ in range(2))
    predicted = predict_training_memory(spec, batch_size, precision=precision)
    measured = measure_training_memory(model, idx, targets, precision=precision)
    assert (predicted.parameters, predicted.gradients, predicted.optimizer_state) == \
           (measured.parameters, measured.gradients, measured.optimizer_state)
    assert predicted.logits == measured.logits
    ratio = (predicted.activations + predicted.logits) / (measured.activations + measured.logits)
    assert abs(ratio - 1) <= tolerance, (f"activations + logits: predicted {predicted.activations + predicted.logits} "
                                         f"bytes, measured {measured.activations + measured.logits} ({ratio:.4f})")


@pytest.mark.parametrize("spec", [SWITCHED, {**SWITCHED, "mlp": "swiglu", "tie_embeddings": False, "bias": True},
                                  {"family": "mlp", "vocab_size": 40, "block_size": 16, "context": 4, "n_embd": 8,
                                   "n_hidden": 64}], ids=["gpt", "gpt-swiglu-untied", "mlp"])
def test_muons_state_is_predicted_exactly_and_is_smaller(spec):
    torch.manual_seed(0)
    model = build_model(spec)
    idx = torch.randint(0, spec["vocab_size"], (2, spec["block_size"]), generator=torch.Generator().manual_seed(1))
    muon = predict_training_memory(spec, 2, optimizer="muon")
    assert muon.optimizer_state == measure_training_memory(model, idx, idx.clone(), optimizer="muon").optimizer_state
    assert muon.optimizer_state < predict_training_memory(spec, 2).optimizer_state  # one buffer, not AdamW's two


def test_muon_is_refused_for_a_model_without_hidden_matrices():
    with pytest.raises(ValueError, match="a lstm model has none: use optimizer 'adamw'"):
        predict_training_memory({"family": "lstm", "vocab_size": 11, "n_embd": 8, "n_hidden": 16}, 2, optimizer="muon")


def test_bf16_saves_less_than_fp32_and_accumulation_costs_nothing():
    spec = {"family": "gpt", "vocab_size": 37, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 32}
    fp32 = predict_training_memory(spec, 4)
    bf16 = predict_training_memory(spec, 4, precision="bf16")
    assert bf16.activations < fp32.activations and bf16.parameters == fp32.parameters
    assert predict_training_memory(spec, 4, grad_accum=8) == fp32
    # activations grow linearly with the batch (no dropout: no T x T term on the CPU)
    assert predict_training_memory(spec, 8).activations - 2 * fp32.activations == -8 * 16  # positions once
    assert "total" in str(fp32) and "MiB" in fp32.describe()


def test_checkpointing_every_block_keeps_a_fraction_of_the_activations():
    spec = {"family": "gpt", "vocab_size": 37, "block_size": 32, "n_layer": 4, "n_head": 4, "n_embd": 64}
    generator = torch.Generator().manual_seed(0)
    idx, targets = (torch.randint(0, 37, (4, 32), generator=generator) for _ in range(2))  # two storages
    measured = {}
    for k in (0, 2, 4):
        torch.manual_seed(0)
        measured[k] = measure_training_memory(build_model({**spec, "activation_checkpointing": k}), idx, targets)
        assert predict_training_memory({**spec, "activation_checkpointing": k}, 4).activations == \
            measured[k].activations
    assert measured[4].activations < measured[2].activations < measured[0].activations
    # none: 4 blocks' activations; all: 4 block inputs and one block's activations at a time
    assert 0.25 < measured[4].activations / measured[0].activations < 0.35
    # recomputing changes no parameter, gradient or AdamW state, nor the logits
    assert {dataclasses.replace(m, activations=0) for m in measured.values()} == \
        {dataclasses.replace(measured[0], activations=0)}


def test_measuring_leaves_the_model_unchanged():
    model = build_model(CASES[0][0])
    before = [p.detach().clone() for p in model.parameters()]
    idx = torch.zeros(2, 16, dtype=torch.long)
    measure_training_memory(model, idx, idx)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_available_memory_and_check_fits():
    free = available_memory("cpu")
    assert isinstance(free, int) and free > 0
    tiny = predict_training_memory({"family": "gpt", "n_layer": 1, "n_embd": 32, "n_head": 2}, batch_size=2)
    assert check_fits(tiny, "cpu") > 0  # the free bytes, when it fits
    absurd = predict_training_memory({"family": "gpt", "block_size": 4096}, batch_size=100_000)
    with pytest.raises(WillNotFit) as refused:
        check_fits(absurd, "cpu")
    message = str(refused.value)
    assert f"about {absurd.total / GiB:.1f} GiB" in message and "lower the batch size" in message


def test_check_fits_names_the_parts_and_the_free_memory():
    estimate = MemoryEstimate(parameters=GiB // 10, gradients=GiB // 10, optimizer_state=GiB // 5,
                              activations=26 * GiB // 10, logits=GiB // 5)
    with pytest.raises(WillNotFit, match=r"about 3\.2 GiB .*activations 2\.6.* and 1\.1 GiB is available"):
        check_fits(estimate, "cpu", available=int(1.1 * GiB))
    assert check_fits(estimate, "cpu", available=10 * GiB) == 10 * GiB
    weights_bound = MemoryEstimate(parameters=2 * GiB, gradients=2 * GiB, optimizer_state=4 * GiB,
                                   activations=GiB, logits=0)
    with pytest.raises(WillNotFit, match="smaller model"):
        check_fits(weights_bound, "cpu", available=4 * GiB)


@pytest.mark.parametrize("spec, error, words", [
    ({"family": "transformer"}, ValueError, "unknown model family"),
    ({"family": "gpt", "n_layers": 2}, ValueError, "unknown GPTConfig key"),
    ({"family": "gpt", "n_embd": 30, "n_head": 4}, ValueError, "divisible"),
    ({"family": "lstm", "n_hidden": "big"}, TypeError, "n_hidden must be int"),
])
def test_a_bad_spec_is_refused_by_name(spec, error, words):
    with pytest.raises(error, match=words):
        predict_training_memory(spec, batch_size=2)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="batch_size"):
        predict_training_memory({"family": "bigram"}, batch_size=0)
    with pytest.raises(ValueError, match="adamw"):
        predict_training_memory({"family": "bigram"}, batch_size=1, optimizer="sgd")
    with pytest.raises(ValueError, match="precision"):
        predict_training_memory({"family": "bigram"}, batch_size=1, precision="fp8")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_peak_rss_rise_is_the_step_and_its_temporaries():
    spec = {"family": "gpt", "vocab_size": 84, "block_size": 128, "n_layer": 4, "n_head": 4, "n_embd": 128}
    predicted = predict_training_memory(spec, 32)
    step = predicted.total - predicted.parameters  # what one step adds to a process that holds the weights
    rise = peak_rss_rise(spec, 32)
    # the system sees at least the tensors (a little page accounting aside), and the backward pass's
    # temporaries on top: at this size less than half again
    assert 0.95 * step <= rise <= 1.5 * step, (rise / step, rise, step)
    with pytest.raises(ValueError, match="batch_size"):
        peak_rss_rise(spec, 0)
    with pytest.raises(ValueError, match="unknown model family"):
        peak_rss_rise({"family": "transformer"}, 2)
