"""Each model family on a tiny config: shapes, learning, greedy determinism, cache equality."""
import pytest
import torch

from lesson_lib.config import from_dict
from lesson_lib.models import FAMILIES, build_model, model_config, model_spec
from lesson_lib.sampling import SamplingConfig, generate_ids

TINY = {
    "bigram": {},
    "mlp": {"context": 4, "n_embd": 8, "n_hidden": 32},
    "lstm": {"n_embd": 16, "n_hidden": 32},
    "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 16},
}
VOCAB, BLOCK = 11, 8


def tiny(family, **extra):
    torch.manual_seed(0)
    return build_model({"family": family, "vocab_size": VOCAB, "block_size": BLOCK, **TINY[family], **extra})


@pytest.mark.parametrize("family", FAMILIES)
def test_shapes_and_loss(family):
    model = tiny(family)
    idx = torch.randint(0, VOCAB, (3, BLOCK))
    logits, loss = model(idx)
    assert logits.shape == (3, BLOCK, VOCAB) and loss is None
    _, loss = model(idx, idx)
    assert loss.shape == () and torch.isfinite(loss)
    assert model.num_params() > 0 and model.flops_per_token() > 0
    assert model_spec(model)["family"] == family


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_falls_on_a_repeating_pattern(family):
    model = tiny(family)
    pattern = torch.tensor([[i % 5 for i in range(BLOCK + 1)]] * 4)  # 0 1 2 3 4 0 1 ...: next token is determined
    x, y = pattern[:, :-1], pattern[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    first = model(x, y)[1].item()
    for _ in range(40):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_generation_is_deterministic(family):
    model = tiny(family)
    a = [t for t, _ in generate_ids(model, [1, 2, 3], SamplingConfig(max_new_tokens=20, temperature=0))]
    b = [t for t, _ in generate_ids(model, [1, 2, 3], SamplingConfig(max_new_tokens=20, temperature=0))]
    assert a == b and len(a) == 20 and all(0 <= t < VOCAB for t in a)


@pytest.mark.parametrize("family, extra", [("gpt", {}), ("gpt", {"qk_norm": True}), ("lstm", {})],
                         ids=["gpt", "gpt-qk_norm", "lstm"])
def test_cache_equals_full_recomputation_past_the_context(family, extra):
    model = tiny(family, **extra)
    with torch.no_grad():  # sharpen the model so greedy picks are not near-ties
        for p in model.parameters():
            p.mul_(3.0)
    steps = 3 * BLOCK  # well past the context, so the window jumps and the cache is rebuilt
    cached = list(generate_ids(model, [1, 2], SamplingConfig(max_new_tokens=steps, temperature=0, use_cache=True)))
    full = list(generate_ids(model, [1, 2], SamplingConfig(max_new_tokens=steps, temperature=0, use_cache=False)))
    assert [t for t, _ in cached] == [t for t, _ in full]
    for (_, p_cached), (_, p_full) in zip(cached, full):
        assert torch.equal(p_cached, p_full)  # greedy: one-hot on the same token


@pytest.mark.parametrize("qk_norm", [False, True])
def test_gpt_cached_logits_match_full_forward(qk_norm):
    model = tiny("gpt", qk_norm=qk_norm).eval()
    idx = torch.randint(0, VOCAB, (2, BLOCK))
    full, _ = model(idx)
    logits, cache = model.forward_cached(idx[:, :3], None)
    steps = [logits]
    for t in range(3, BLOCK):
        logits, cache = model.forward_cached(idx[:, t:t + 1], cache)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    two, _ = model.forward_cached(idx[:, 5:7], model.forward_cached(idx[:, :5], None)[1])  # several new tokens
    torch.testing.assert_close(two, full[:, 5:7], atol=1e-5, rtol=1e-5)


def test_gpt_ties_embedding_and_output():
    model = tiny("gpt")
    assert model.lm_head.weight is model.token_embedding.weight
    distinct = sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once
    assert model.num_params() == distinct


def test_gpt_refuses_more_than_its_context():
    with pytest.raises(ValueError, match="context"):
        tiny("gpt")(torch.zeros(1, BLOCK + 1, dtype=torch.long))


def test_out_of_vocabulary_ids_are_refused_clearly():
    with pytest.raises(ValueError, match="tokenizer"):
        tiny("gpt")(torch.tensor([[VOCAB]]))


def test_lstm_embedding_from_vectors_frozen():
    model = tiny("lstm", freeze_embedding=True)
    vectors = torch.randn(VOCAB, 16)
    model.load_embedding(vectors)
    assert torch.equal(model.token_embedding.weight, vectors)
    assert not model.token_embedding.weight.requires_grad
    with pytest.raises(ValueError, match="shape"):
        model.load_embedding(torch.randn(VOCAB, 5))


def test_registry_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown model family 'rnn'"):
        build_model({"family": "rnn"})
    with pytest.raises(ValueError, match="n_layers"):
        model_config({"family": "gpt", "n_layers": 2})
    with pytest.raises(TypeError, match="GPTConfig.n_layer"):
        model_config({"family": "gpt", "n_layer": "2"})
    with pytest.raises(ValueError, match="divisible"):
        build_model({"family": "gpt", "n_embd": 10, "n_head": 4})


# every size must be at least 1; every dropout a fraction in [0, 1)
SIZE_FIELDS = {
    "bigram": ["vocab_size", "block_size"],
    "mlp": ["vocab_size", "block_size", "context", "n_embd", "n_hidden"],
    "lstm": ["vocab_size", "block_size", "n_embd", "n_hidden", "n_layer"],
    "gpt": ["vocab_size", "block_size", "n_layer", "n_head", "n_embd"],
}
BAD_SIZES = [(family, field, value) for family, fields in SIZE_FIELDS.items() for field in fields
             for value in (0, -2)]


@pytest.mark.parametrize("family, field, value", BAD_SIZES)
def test_a_size_below_one_is_refused_naming_the_field(family, field, value):
    spec = {"family": family, "vocab_size": VOCAB, "block_size": BLOCK, **TINY[family], field: value}
    config_name = FAMILIES[family][0].__name__
    with pytest.raises(ValueError, match=rf"{config_name}\.{field} must be at least 1, got {value}"):
        model_config(spec)
    with pytest.raises(ValueError, match=rf"{config_name}\.{field}"):
        build_model(spec)


@pytest.mark.parametrize("family", ["mlp", "lstm", "gpt"])
@pytest.mark.parametrize("dropout", [-0.1, 1.0, 2.0, float("nan")])
def test_a_dropout_outside_zero_to_one_is_refused(family, dropout):
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        model_config({"family": family, **TINY[family], "dropout": dropout})


@pytest.mark.parametrize("config_cls, field, value", [
    (FAMILIES["gpt"][0], "n_head", 2.0),
    (FAMILIES["gpt"][0], "n_layer", True),
    (FAMILIES["lstm"][0], "n_hidden", "32"),
    (FAMILIES["mlp"][0], "dropout", "0.1"),
    (FAMILIES["bigram"][0], "vocab_size", None),
])
def test_configs_built_directly_check_their_types_too(config_cls, field, value):
    with pytest.raises(TypeError, match=rf"{config_cls.__name__}\.{field}"):
        config_cls(**{field: value})


def test_gpt_width_must_split_evenly_over_the_heads():
    from lesson_lib.models import GPTConfig

    with pytest.raises(ValueError, match=r"GPTConfig.n_embd \(10\) must be divisible by n_head \(4\).*8 or 12"):
        GPTConfig(n_embd=10, n_head=4)
    with pytest.raises(ValueError, match=r"n_head \(3\).*n_embd of 3, "):
        GPTConfig(n_embd=2, n_head=3)  # no smaller multiple of 3 than 3 itself
    assert GPTConfig(n_embd=12, n_head=4, n_layer=1, dropout=0.5).n_embd == 12


def test_from_dict_coerces_ints_to_floats_and_lists_to_tuples():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class C:
        rate: float = 0.5
        sizes: tuple[int, ...] = (1,)

    c = from_dict(C, {"rate": 1, "sizes": [2, 3]})
    assert c.rate == 1.0 and isinstance(c.rate, float) and c.sizes == (2, 3)


def test_word2vec_skipgram_learns_cooccurrence():
    import numpy as np

    from lesson_lib.models.word2vec import SkipGram, Word2VecConfig, noise_distribution, skipgram_pairs

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ids = np.array([0, 1, 2, 3] * 50 + [4, 5, 6, 7] * 50)  # two "topics" that never mix
    centers, contexts = skipgram_pairs(ids, window=2, generator=g)
    assert len(centers) == len(contexts) > len(ids)
    model = SkipGram(Word2VecConfig(vocab_size=8, n_embd=8, window=2, negatives=3))
    noise = noise_distribution(np.bincount(ids, minlength=8))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        negs = torch.multinomial(noise, len(centers) * 3, replacement=True, generator=g).view(-1, 3)
        loss = model(centers, contexts, negs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    v = torch.nn.functional.normalize(torch.tensor(model.vectors()), dim=1)
    same_topic, other_topic = (v[0] @ v[1]).item(), (v[0] @ v[5]).item()
    assert same_topic > other_topic + 0.3
