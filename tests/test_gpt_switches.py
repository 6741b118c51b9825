"""The GPT's two switches for chapter 8: QK-norm and activation checkpointing, from config to CLI."""
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_FLAGS
from lesson_lib.cli import _parser, build_spec, main
from lesson_lib.config import from_dict
from lesson_lib.experiment import check_spec, load_trained
from lesson_lib.models import GPTConfig, build_model, model_config, model_spec
from lesson_lib.models.gpt import padding_positions_and_mask

VOCAB, BLOCK = 13, 8
SMALL = {"family": "gpt", "vocab_size": VOCAB, "block_size": BLOCK, "n_layer": 3, "n_head": 2, "n_embd": 16}


def gpt(**extra):
    torch.manual_seed(0)
    return build_model({**SMALL, **extra})


def batch(seed=1, size=3):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, VOCAB, (size, BLOCK), generator=generator) for _ in range(2))


# --- the config ---

@pytest.mark.parametrize("value", [-1, 4, 10])
def test_activation_checkpointing_outside_zero_to_n_layer_is_refused(value):
    with pytest.raises(ValueError, match=rf"GPTConfig\.activation_checkpointing must be between 0 .* n_layer "
                                         rf"\(3, every block\), got {value}"):
        model_config({**SMALL, "activation_checkpointing": value})


@pytest.mark.parametrize("field, value", [("activation_checkpointing", 1.0), ("activation_checkpointing", True),
                                          ("qk_norm", 1), ("qk_norm", "yes"), ("chunked_loss", 1)])
def test_the_switches_check_their_types(field, value):
    with pytest.raises(TypeError, match=rf"GPTConfig\.{field}"):
        GPTConfig(**{field: value})  # built directly
    with pytest.raises(TypeError, match=rf"GPTConfig\.{field}"):
        from_dict(GPTConfig, {field: value})  # and from a spec


def test_the_switches_default_off_and_round_trip_through_the_spec():
    assert (GPTConfig().qk_norm, GPTConfig().activation_checkpointing) == (False, 0)
    model = gpt(qk_norm=True, activation_checkpointing=3)
    spec = model_spec(model)
    assert spec == {**SMALL, "dropout": 0.0, "bias": False, "qk_norm": True, "activation_checkpointing": 3,
                    "rotary": False, "mlp": "gelu", "tie_embeddings": True, "zero_init_head": False,
                    "chunked_loss": False}
    rebuilt = build_model(spec)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())  # the same parameters, names included
    assert any(name.endswith("attn.q_norm.weight") for name in model.state_dict())
    assert not any("q_norm" in name for name in gpt().state_dict())  # off: checkpoints as before


def test_a_run_spec_accepts_the_switches_and_checks_them():
    spec = check_spec({"model": {**SMALL, "qk_norm": True, "activation_checkpointing": 2}})
    assert spec["model"]["qk_norm"] is True and spec["model"]["activation_checkpointing"] == 2
    with pytest.raises(ValueError, match="activation_checkpointing"):
        check_spec({"model": {**SMALL, "activation_checkpointing": 5}})


# --- QK-norm ---

def test_qk_norm_adds_a_layernorm_over_head_dim_for_queries_and_keys():
    plain, normed = gpt(), gpt(qk_norm=True)
    head_dim = SMALL["n_embd"] // SMALL["n_head"]
    assert normed.num_params() - plain.num_params() == SMALL["n_layer"] * 2 * head_dim  # no bias unless bias=True
    with_bias = gpt(qk_norm=True, bias=True).num_params() - gpt(bias=True).num_params()
    assert with_bias == SMALL["n_layer"] * 4 * head_dim


def _attention_inputs(model, idx, monkeypatch):
    """The queries and keys each block's attention kernel receives in an ordinary forward pass."""
    seen, kernel = [], F.scaled_dot_product_attention

    def record(q, k, v, **options):
        seen.append((q.detach().clone(), k.detach().clone()))
        return kernel(q, k, v, **options)

    monkeypatch.setattr(F, "scaled_dot_product_attention", record)
    with torch.no_grad():
        model(idx)
    monkeypatch.setattr(F, "scaled_dot_product_attention", kernel)
    return seen


@pytest.mark.parametrize("qk_norm", [False, True])
def test_attention_logit_max_equals_the_logits_the_kernel_sees(qk_norm, monkeypatch):
    model = gpt(qk_norm=qk_norm, dropout=0.3)
    with torch.no_grad():  # larger logits than the initialisation's, so a wrong scale would show
        for block in model.blocks:
            block.attn.qkv.weight.mul_(10.0)
    idx, _ = batch()
    model.eval()
    expected = []
    for q, k in _attention_inputs(model, idx, monkeypatch):
        logits = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
        causal = torch.tril(torch.ones(BLOCK, BLOCK, dtype=torch.bool))
        expected.append(logits[..., causal].abs().max().item())
    model.train()  # the reading is taken without dropout, and leaves the mode as it was
    measured = model.attention_logit_max(idx)
    assert model.training and len(measured) == SMALL["n_layer"]
    assert measured == pytest.approx(expected, rel=1e-5)
    assert min(expected) > 0.5  # not a vacuous match of near-zero numbers


def test_qk_norm_bounds_the_attention_logits_where_plain_attention_grows():
    # LayerNorm (gain 1, no bias) gives q and k the length sqrt(head_dim), so |q.k| / sqrt(head_dim)
    # is at most sqrt(head_dim) however large the weights grow; without it the logits grow with their square
    idx, _ = batch()
    head_dim = SMALL["n_embd"] // SMALL["n_head"]
    readings = {}
    for qk_norm in (False, True):
        model = gpt(qk_norm=qk_norm)
        before = max(model.attention_logit_max(idx))
        with torch.no_grad():
            for block in model.blocks:
                block.attn.qkv.weight.mul_(30.0)
        readings[qk_norm] = before, max(model.attention_logit_max(idx))
    plain_before, plain_after = readings[False]
    assert plain_after > 500 * plain_before and plain_after > 2 * math.sqrt(head_dim)
    assert max(readings[True]) <= math.sqrt(head_dim) * (1 + 1e-4)


def test_attention_logit_max_refuses_too_long_an_input():
    with pytest.raises(ValueError, match="context"):
        gpt().attention_logit_max(torch.zeros(1, BLOCK + 1, dtype=torch.long))


# --- activation checkpointing ---

def _gradients(model, idx, targets, seed=5):
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)  # the dropout masks
    _, loss = model(idx, targets)
    loss.backward()
    return loss.item(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("checkpointed", [1, 3])
def test_checkpointing_gives_the_same_loss_and_gradients(dropout, checkpointed):
    idx, targets = batch()
    loss, reference = _gradients(gpt(dropout=dropout, qk_norm=True), idx, targets)
    loss_ckpt, grads = _gradients(gpt(dropout=dropout, qk_norm=True, activation_checkpointing=checkpointed),
                                  idx, targets)
    assert loss_ckpt == loss
    for name, grad in reference.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-6, atol=1e-8, msg=name)
    if dropout:  # the recomputation must replay these masks: another seed draws other ones
        _, other = _gradients(gpt(dropout=dropout, qk_norm=True), idx, targets, seed=6)
        assert not torch.allclose(other["blocks.0.attn.qkv.weight"], reference["blocks.0.attn.qkv.weight"])


def _block_calls(model, run):
    calls = [0] * len(model.blocks)
    # a pre-hook: a recomputation stops as soon as it has what backward needs, before the block returns
    handles = [block.register_forward_pre_hook(lambda module, args, i=i: calls.__setitem__(i, calls[i] + 1))
               for i, block in enumerate(model.blocks)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return calls


def test_only_the_first_blocks_are_recomputed_and_only_when_training():
    model = gpt(activation_checkpointing=2)
    idx, targets = batch()

    def step():
        _, loss = model(idx, targets)
        loss.backward()

    model.train()
    assert _block_calls(model, step) == [2, 2, 1]  # the backward pass ran blocks 0 and 1 again
    model.eval()
    assert _block_calls(model, step) == [1, 1, 1]  # evaluation mode: nothing is checkpointed
    model.train()
    with torch.no_grad():
        assert _block_calls(model, lambda: model(idx)) == [1, 1, 1]


def test_checkpointing_keeps_generation_unchanged():
    from lesson_lib.sampling import SamplingConfig, generate_ids

    config = SamplingConfig(max_new_tokens=12, temperature=0)
    plain = [t for t, _ in generate_ids(gpt(qk_norm=True).eval(), [1, 2], config)]
    checkpointed = [t for t, _ in generate_ids(gpt(qk_norm=True, activation_checkpointing=3).eval(), [1, 2], config)]
    assert plain == checkpointed


# --- the command line ---

def test_the_flags_go_into_the_model_spec():
    args = _parser().parse_args(["train", "--qk-norm", "--activation-checkpointing", "2"])
    model = build_spec(args)["model"]
    assert model["qk_norm"] is True and model["activation_checkpointing"] == 2
    untouched = build_spec(_parser().parse_args(["train"]))["model"]
    assert "qk_norm" not in untouched and "activation_checkpointing" not in untouched  # the preset decides


def test_cli_trains_with_both_switches_and_refuses_a_bad_count(runs_root, text_file, capsys):
    flags = ["--data", str(text_file), "--steps", "4", "--eval-interval", "2", *TINY_FLAGS]
    assert main(["train", "--name", "switched", "--qk-norm", "--activation-checkpointing", "1", *flags]) == 0
    assert "finished: run 'switched', step 4" in capsys.readouterr().out
    model, _, _ = load_trained("switched")  # from the run's config.json and checkpoint
    assert model.config.qk_norm is True and model.config.activation_checkpointing == 1
    assert main(["generate", "--run", "switched", "--max-new-tokens", "5", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["train", "--name", "too-many", "--activation-checkpointing", "2", *flags]) == 2  # one layer
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "activation_checkpointing must be between 0" in err
    assert main(["train", "--resume", "switched", "--qk-norm"]) == 2
    assert "--resume takes only --steps" in capsys.readouterr().err


# --- a padded batch: the attention mask (chapter 9) ---

def padded(sequences, length, side, pad_id):
    """A (B, length) batch of the sequences padded with pad_id on one side, and its mask of real tokens."""
    rows, masks = [], []
    for seq in sequences:
        fill, real = [pad_id] * (length - len(seq)), [True] * len(seq)
        rows.append(fill + seq if side == "left" else seq + fill)
        masks.append([False] * len(fill) + real if side == "left" else real + [False] * len(fill))
    return torch.tensor(rows), torch.tensor(masks)


def unpadded_logits(model, sequences):
    with torch.no_grad():
        return [model(torch.tensor([seq]))[0][0] for seq in sequences]  # (len, V) each


def real_rows(logits, mask, b):
    return logits[b][mask[b]]  # (real tokens, V)


SEQUENCES = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3, 5, 8, 9], [7, 9, 3]]


def test_padding_positions_and_mask_skip_the_padding():
    positions, mask = padding_positions_and_mask(torch.tensor([[False, False, True, True, True],
                                                               [True, True, True, False, False]]))
    assert positions.tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 2, 2]]
    assert mask.shape == (2, 1, 5, 5)
    left = mask[0, 0].int().tolist()
    assert left == [[1, 0, 0, 0, 0],  # a pad sees only itself
                    [0, 1, 0, 0, 0],
                    [0, 0, 1, 0, 0],  # the first real token: itself
                    [0, 0, 1, 1, 0],
                    [0, 0, 1, 1, 1]]
    right = mask[1, 0].int().tolist()
    assert right[2] == [1, 1, 1, 0, 0] and right[4] == [1, 1, 1, 0, 1]  # a pad after the text: its output is unused


def test_left_padding_changes_the_logits_unless_masked():
    model = gpt().eval()
    idx, mask = padded(SEQUENCES, BLOCK, "left", pad_id=0)
    alone = unpadded_logits(model, SEQUENCES)
    with torch.no_grad():
        plain, _ = model(idx)
        masked, _ = model(idx, attention_mask=mask)
        other_pad, _ = model(padded(SEQUENCES, BLOCK, "left", pad_id=11)[0], attention_mask=mask)
    for b, expected in enumerate(alone):
        torch.testing.assert_close(real_rows(masked, mask, b), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(real_rows(other_pad, mask, b), expected, atol=1e-5, rtol=1e-5)
        if not mask[b].all():  # padded: the real tokens saw the pads and sat at shifted positions
            assert (real_rows(plain, mask, b) - expected).abs().max() > 1e-3
    assert torch.isfinite(masked).all()  # pads attend to themselves: no empty softmax row


def test_right_padding_is_harmless_to_a_causal_model_even_without_the_mask():
    model = gpt().eval()
    idx, mask = padded(SEQUENCES, BLOCK, "right", pad_id=0)
    with torch.no_grad():
        plain, _ = model(idx)
        masked, _ = model(idx, attention_mask=mask)
    for b, expected in enumerate(unpadded_logits(model, SEQUENCES)):
        torch.testing.assert_close(real_rows(plain, mask, b), expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(real_rows(masked, mask, b), expected, atol=1e-5, rtol=1e-5)


def test_a_full_mask_is_the_default_path():
    model = gpt().eval()
    idx, _ = batch()
    with torch.no_grad():
        torch.testing.assert_close(model(idx, attention_mask=torch.ones_like(idx, dtype=torch.bool))[0], model(idx)[0])


def test_padded_targets_are_ignored_by_the_loss():
    model = gpt().eval()
    idx, mask = padded(SEQUENCES, BLOCK, "left", pad_id=0)
    targets = torch.where(mask, (idx + 1) % VOCAB, -1)  # any target for a real token; -1 under a pad
    with torch.no_grad():
        _, loss = model(idx, targets, attention_mask=mask)
        total, count = 0.0, 0
        for seq in SEQUENCES:
            logits, _ = model(torch.tensor([seq]))
            want = (torch.tensor(seq) + 1) % VOCAB
            total += F.cross_entropy(logits[0], want, reduction="sum").item()
            count += len(seq)
    assert loss.item() == pytest.approx(total / count, rel=1e-5)


def test_checkpointing_with_a_mask_gives_the_same_gradients():
    idx, mask = padded(SEQUENCES, BLOCK, "left", pad_id=0)
    targets = torch.where(mask, (idx + 1) % VOCAB, -1)
    grads = []
    for checkpointed in (0, 2):
        model = gpt(activation_checkpointing=checkpointed).train()
        _, loss = model(idx, targets, attention_mask=mask)
        loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name])


def test_a_mask_of_the_wrong_shape_or_with_a_cache_is_refused():
    model = gpt().eval()
    idx, _ = batch()
    with pytest.raises(ValueError, match="shape"):
        model(idx, attention_mask=torch.ones(idx.size(0), idx.size(1) - 1, dtype=torch.bool))
    _, cache = model.forward_cached(idx[:, :4], None)
    with pytest.raises(ValueError, match="cache"):
        model.forward_cached(idx[:, 4:5], cache, torch.ones(idx.size(0), 1, dtype=torch.bool))


# --- the speedrun switches: rotary positions, the MLP's activation, an untied (zero) head ---

SPEEDRUN = [{"rotary": True}, {"mlp": "relu2"}, {"mlp": "swiglu"}, {"tie_embeddings": False},
            {"tie_embeddings": False, "zero_init_head": True},
            {"rotary": True, "qk_norm": True, "mlp": "swiglu", "tie_embeddings": False, "activation_checkpointing": 2}]


@pytest.mark.parametrize("extra", SPEEDRUN, ids=lambda e: "-".join(f"{k}={v}" for k, v in e.items()))
def test_each_switch_round_trips_and_keeps_the_cache_and_the_mask_exact(extra):
    model = gpt(**extra).eval()
    rebuilt = build_model(model_spec(model))
    rebuilt.load_state_dict(model.state_dict())
    idx, _ = batch()
    logits, _ = model(idx)
    assert torch.equal(rebuilt(idx)[0], logits)
    first, cache = model.forward_cached(idx[:, :5], None)  # then the last 3 tokens one call later
    rest, _ = model.forward_cached(idx[:, 5:], cache)
    assert torch.allclose(torch.cat([first, rest], dim=1), logits, atol=1e-5)
    real = torch.ones_like(idx, dtype=torch.bool)
    real[0, :3] = False  # three tokens of left padding in front of the first sequence
    padded, _ = model(idx, attention_mask=real)
    assert torch.allclose(padded[0, 3:], model(idx[:1, 3:])[0][0], atol=1e-5)


def test_the_switches_change_what_they_say():
    plain = gpt()
    C, V, T, L = SMALL["n_embd"], VOCAB, BLOCK, SMALL["n_layer"]
    rotary = gpt(rotary=True)
    assert rotary.position_embedding is None and plain.num_params() - rotary.num_params() == T * C
    assert gpt(tie_embeddings=False).num_params() - plain.num_params() == V * C
    assert gpt(mlp="relu2").num_params() == plain.num_params()
    from lesson_lib.models.gpt import swiglu_width

    assert [swiglu_width(c) for c in (16, 128, 192, 384)] == [48, 344, 512, 1024]  # 8C/3 up to a multiple of 8
    swiglu = gpt(mlp="swiglu")
    assert swiglu.blocks[0].mlp.up.weight.shape == (2 * 48, C)
    assert swiglu.num_params() - plain.num_params() == L * (3 * C * 48 - 8 * C * C)
    zero = gpt(tie_embeddings=False, zero_init_head=True)
    assert not zero.lm_head.weight.any()
    logits, loss = zero(*batch())
    assert torch.equal(logits, torch.zeros_like(logits)) and loss.item() == pytest.approx(math.log(V))


def test_relu2_and_swiglu_compute_their_formulas():
    x = torch.randn(2, 5, SMALL["n_embd"], generator=torch.Generator().manual_seed(3))
    relu2 = gpt(mlp="relu2").blocks[0].mlp
    assert torch.allclose(relu2(x), relu2.down(torch.clamp(relu2.up(x), min=0) ** 2))
    swiglu = gpt(mlp="swiglu").blocks[0].mlp
    gate, value = swiglu.up(x).chunk(2, dim=-1)
    assert torch.allclose(swiglu(x), swiglu.down(gate * torch.sigmoid(gate) * value), atol=1e-6)


def test_rotary_scores_depend_on_the_distance_between_positions_only():
    """q . k after rotation is the same for positions (m, n) and (m + s, n + s): the attention sees how
    far back a key is, not where it is."""
    from lesson_lib.models.gpt import rotary_angles, rotate

    generator = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, 1, 1, 8, generator=generator) for _ in range(2))  # (B, T, H, D)

    def score(m, n):
        return (rotate(q, *rotary_angles(torch.tensor([m]), 8)) * rotate(k, *rotary_angles(torch.tensor([n]), 8))).sum().item()

    assert score(5, 2) == pytest.approx(score(45, 42), abs=1e-4) == pytest.approx(score(3, 0), abs=1e-4)
    assert abs(score(5, 2) - score(5, 4)) > 1e-3  # another distance, another score
    assert torch.allclose(rotate(q, *rotary_angles(torch.tensor([0]), 8)), q)  # position 0 is not turned
    norms = [rotate(q, *rotary_angles(torch.tensor([p]), 8)).norm().item() for p in (0, 7, 63)]
    assert norms[0] == pytest.approx(norms[1]) == pytest.approx(norms[2])  # a rotation keeps the length


@pytest.mark.parametrize("config, error, words", [
    ({"mlp": "tanh"}, ValueError, "GPTConfig.mlp must be one of gelu, relu2, swiglu"),
    ({"rotary": 1}, TypeError, "GPTConfig.rotary must be True or False"),
    ({"zero_init_head": True}, ValueError, "set tie_embeddings=False with it"),
    ({"rotary": True, "n_embd": 18, "n_head": 6}, ValueError, "must be even"),
])
def test_bad_switches_are_refused_with_what_to_do(config, error, words):
    with pytest.raises(error, match=words):
        GPTConfig(**config)


def test_the_speedrun_flags_go_into_the_model_spec_and_train(runs_root, text_file, capsys):
    args = _parser().parse_args(["train", "--rotary", "--mlp", "swiglu", "--untied-head", "--zero-init-head",
                                 "--optimizer", "muon"])
    spec = build_spec(args)
    assert {k: spec["model"][k] for k in ("rotary", "mlp", "tie_embeddings", "zero_init_head")} == \
           {"rotary": True, "mlp": "swiglu", "tie_embeddings": False, "zero_init_head": True}
    assert spec["train"]["optimizer"] == "muon"
    untouched = build_spec(_parser().parse_args(["train"]))
    assert not {"rotary", "mlp", "tie_embeddings", "zero_init_head"} & set(untouched["model"])
    flags = ["--data", str(text_file), "--steps", "4", "--eval-interval", "2", *TINY_FLAGS]
    assert main(["train", "--name", "sped", "--rotary", "--mlp", "relu2", "--untied-head", *flags]) == 0
    model, _, _ = load_trained("sped")
    assert model.config.rotary and model.config.mlp == "relu2" and not model.config.tie_embeddings
    assert main(["generate", "--run", "sped", "--max-new-tokens", "5", "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "sped", "--untied-head"]) == 2
    assert "(got --untied-head)" in capsys.readouterr().err


# --- the chunked loss ---

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows, vocab", [(64, 300), (5, 3), (1, 1)])
def test_the_chunked_loss_equals_cross_entropy_in_value_and_gradient(dtype, rows, vocab):
    from lesson_lib.models.base import chunked_cross_entropy

    generator = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(rows, vocab, generator=generator)).to(dtype).requires_grad_()
    targets = torch.randint(0, vocab, (rows,), generator=generator)
    targets[::4] = -1  # ignored, as padding is
    before = logits.detach().clone()
    want = F.cross_entropy(logits.float(), targets, ignore_index=-1)
    (want_grad,) = torch.autograd.grad(2.5 * want, logits)
    got = chunked_cross_entropy(logits, targets, block_elements=2 * vocab)  # two rows a block: many blocks
    (got_grad,) = torch.autograd.grad(2.5 * got, logits)
    assert got.dtype == torch.float32 and got_grad.dtype == dtype
    assert torch.equal(logits.detach(), before)  # worked on copies of its blocks, never the caller's logits
    if rows == 1:  # the one row is ignored: no target left, so no mean, as F.cross_entropy says
        assert math.isnan(got.item()) and math.isnan(want.item())
        return
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert torch.allclose(got_grad.float(), want_grad.float(), rtol=1e-2 if dtype == torch.bfloat16 else 1e-5,
                          atol=1e-7)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_gpt_with_the_chunked_loss_trains_as_one_without(precision):
    from lesson_lib.device import autocast

    idx, targets = batch()
    plain, chunked = gpt(rotary=True), gpt(rotary=True, chunked_loss=True)
    chunked.load_state_dict(plain.state_dict())
    losses = []
    for model in (plain, chunked):
        with autocast(torch.device("cpu"), precision):
            _, loss = model(idx, targets)
        loss.backward()
        losses.append(loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    for (name, a), b in zip(plain.named_parameters(), chunked.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-3, atol=1e-6), name


def test_the_chunked_loss_flag_goes_into_the_model_spec():
    spec = build_spec(_parser().parse_args(["train", "--chunked-loss"]))
    assert spec["model"]["chunked_loss"] is True
    assert "chunked_loss" not in build_spec(_parser().parse_args(["train"]))["model"]
