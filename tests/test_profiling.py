"""The profiler's categories: all present, disjoint, backward included, hooks gone afterwards; every matrix
multiply counted in its category, backward twice forward, as FlopCounterMode and the formulas count them;
the timed step is the trainer's step."""
import copy

import numpy as np
import pytest
import torch
from conftest import TINY_GPT, TINY_TRAIN

from lesson_lib.data import DataError
from lesson_lib.device import cpu_threads
from lesson_lib.models import build_model
from torch.utils.flop_counter import FlopCounterMode

from lesson_lib.profiling import (CATEGORIES, LABELS, MATMULS, STEP_LABEL, label, label_regions, overlap_us,
                                  profile_training, time_training_steps)
from lesson_lib.training import TrainConfig, TrainData, train

VOCAB = 20
TOKENS = np.random.default_rng(0).integers(0, VOCAB, 3000).astype(np.uint16)
TWO_BLOCKS = {**TINY_GPT, "vocab_size": VOCAB, "n_layer": 2}
CONFIG = TrainConfig(**{**TINY_TRAIN, "max_steps": 100})
STEPS = 3


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: two threads that wait on each other are far slower than one."""
    with cpu_threads(1):
        yield


def tiny_gpt(**fields):
    torch.manual_seed(0)
    return build_model({**TWO_BLOCKS, **fields})


@pytest.fixture(scope="module")
def profiled():
    return profile_training(tiny_gpt(), TOKENS, CONFIG, steps=STEPS, warmup=1)


def hooks_left(model):
    found = []
    for name, module in model.named_modules():
        for kind in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            if getattr(module, kind):
                found.append((name, kind))
    found += [(name, "post-accumulate") for name, p in model.named_parameters() if p._post_accumulate_grad_hooks]
    return found


def ancestors(event):
    while event.cpu_parent is not None:
        event = event.cpu_parent
        yield event


def test_every_category_is_present_and_the_times_add_up(profiled):
    table = profiled.table.set_index("category")
    assert list(table.index) == list(CATEGORIES)
    measured = table.drop(index="other")["ms per step"]
    assert (measured > 0).all(), measured
    assert measured.sum() <= profiled.step_ms  # disjoint ranges inside the step: never more than the step
    assert table["share"].sum() == pytest.approx(1.0)
    assert table.loc["other", "ms per step"] >= 0


def test_backward_time_is_attributed(profiled):
    table = profiled.table.set_index("category")
    for category in ("embedding and head", "attention", "MLP"):
        assert table.loc[category, "backward ms"] > 0, category
        assert table.loc[category, "ms per step"] > table.loc[category, "forward ms"], category
    names = [event.name for event in profiled.prof.events()]
    for direction in ("forward", "backward"):  # every block's range fired in every step
        assert names.count(label("attention", direction)) == STEPS * TWO_BLOCKS["n_layer"]
        assert names.count(label("MLP", direction)) == STEPS * TWO_BLOCKS["n_layer"]
        assert names.count(label("embedding and head", direction)) == 2 * STEPS  # the embeddings, then the head
    assert names.count(STEP_LABEL) == STEPS


def test_the_embeddings_backward_falls_inside_its_range(profiled):
    # the embeddings' inputs are integer ids: their full backward hook would fire before this op runs
    events = profiled.prof.events()
    ranges = [e for e in events if e.name == label("embedding and head", "backward")]
    backward_ops = [e for e in events if e.name == "aten::embedding_dense_backward"]
    assert len(backward_ops) == 2 * STEPS  # token and position embedding
    for op in backward_ops:
        assert any(r.time_range.start <= op.time_range.start and op.time_range.end <= r.time_range.end
                   for r in ranges), op


def test_the_ranges_never_nest_or_overlap(profiled):
    events = profiled.prof.events()
    assert overlap_us(events) == 0
    labelled = [event for event in events if event.name in LABELS]
    assert len(labelled) == STEPS * (2 + 2 * 2 + 2 * 2 * TWO_BLOCKS["n_layer"])  # data, optimizer; embedding, head; blocks
    for event in labelled:
        assert not [a.name for a in ancestors(event) if a.name in LABELS], event.name


def test_every_matrix_multiply_is_counted_in_its_category(profiled):
    work = profiled.flops.set_index("category")
    assert list(work.index) == list(CATEGORIES)
    assert work.loc["other", "matmuls per step"] == 0 and work.loc["data", "matmuls per step"] == 0
    C, T, B, V = TWO_BLOCKS["n_embd"], TWO_BLOCKS["block_size"], CONFIG.batch_size, VOCAB
    forward = {"embedding and head": 2 * V * C * B * T,  # the head; a lookup multiplies nothing
               "attention": TWO_BLOCKS["n_layer"] * 2 * 4 * C * C * B * T,  # queries, keys, values, projection
               "MLP": TWO_BLOCKS["n_layer"] * 2 * 8 * C * C * B * T}  # C -> 4C -> C
    for category, flops in forward.items():
        assert work.loc[category, "forward FLOPs"] == flops, category
        assert work.loc[category, "backward FLOPs"] == 2 * flops, category  # gradients of the input and the weight
        assert work.loc[category, "FLOPs per step"] == 3 * flops, category
    x = torch.from_numpy(TOKENS[:B * T].astype(np.int64)).view(B, T)
    with FlopCounterMode(display=False) as counter:
        tiny_gpt()(x, x)[1].backward()
    matmuls = {getattr(torch.ops.aten, name.split("::")[1]) for name in MATMULS}
    counted = sum(n for op, n in counter.get_flop_counts()["Global"].items() if op in matmuls)
    assert work.loc[list(forward), "FLOPs per step"].sum() == counted


def test_hooks_change_nothing_and_are_removed():
    model = tiny_gpt()
    x = torch.from_numpy(TOKENS[:32].astype(np.int64)).view(2, 16)

    def output_and_grads():
        model.zero_grad(set_to_none=True)
        logits, loss = model(x, x)
        loss.backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    before, grads_before = output_and_grads()
    with label_regions(model):
        inside, grads_inside = output_and_grads()
        assert hooks_left(model)
    after, grads_after = output_and_grads()
    assert hooks_left(model) == []
    assert torch.equal(before, inside) and torch.equal(before, after)
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(grads_before, grads_inside, grads_after))

    profile_training(model, TOKENS, CONFIG, steps=1, warmup=0)
    assert hooks_left(model) == []


def test_the_timed_step_is_the_trainers_step():
    model, config = tiny_gpt(), TrainConfig(**{**TINY_TRAIN, "max_steps": 6})  # the schedule ends at max_steps
    weights = copy.deepcopy(model.state_dict())
    timing = time_training_steps(model, TOKENS, config, steps=4, warmup=2)["eager"]
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # it trained a copy
    assert timing.name == "eager" and len(timing.losses) == 6
    assert 0 < timing.low_ms <= timing.step_ms <= timing.high_ms
    result = train(copy.deepcopy(model), TrainData(TOKENS, TOKENS[:500]), config, progress=False)
    assert [r["train_loss"] for r in result.records if r["kind"] == "train"] == timing.losses


def test_bf16_and_compile_give_the_same_losses():
    from torch._dynamo.utils import counters

    settings = {"fp32": {}, "bf16": {"precision": "bf16"}, "compiled": {"compile": True}}
    counters.clear()
    timings = time_training_steps(tiny_gpt(), TOKENS, CONFIG, settings, steps=2, warmup=1)
    assert list(timings) == list(settings) and all(len(t.losses) == 3 for t in timings.values())
    fp32, bf16, compiled = (timings[name].losses for name in settings)
    assert np.allclose(bf16, fp32, atol=0.02) and bf16 != fp32  # autocast ran, and changed little
    assert np.allclose(compiled, fp32, atol=1e-5)
    assert counters["stats"]["unique_graphs"] > 0  # the compiled setting really went through torch.compile


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="steps must be a whole number of at least 1"):
        profile_training(tiny_gpt(), TOKENS, CONFIG, steps=0)
    with pytest.raises(ValueError, match="warmup must be a whole number of at least 1"):
        time_training_steps(tiny_gpt(), TOKENS, CONFIG, warmup=0)
    with pytest.raises(ValueError, match="unknown option"):
        time_training_steps(tiny_gpt(), TOKENS, CONFIG, {"fast": {"compiled": True}})
    with pytest.raises(ValueError, match="share one compiled graph"):
        time_training_steps(tiny_gpt(), TOKENS, CONFIG, {"cold": {"compile": True, "compile_cache": False},
                                                         "warm": {"compile": True}})
    with pytest.raises(ValueError, match="precision must be one of"):
        time_training_steps(tiny_gpt(), TOKENS, CONFIG, {"half": {"precision": "fp8"}})
    lstm = build_model({"family": "lstm", "vocab_size": VOCAB, "n_embd": 8, "n_hidden": 8})
    with pytest.raises(ValueError, match="parts of a GPT"):
        profile_training(lstm, TOKENS, CONFIG)
    with pytest.raises(ValueError, match="activation_checkpointing=0"):
        profile_training(tiny_gpt(activation_checkpointing=1), TOKENS, CONFIG)
    with pytest.raises(DataError, match="longer than the data"):  # a ValueError too
        profile_training(tiny_gpt(), TOKENS[:10], CONFIG)
