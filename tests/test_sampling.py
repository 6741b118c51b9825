"""Sampling: the distribution filters, seeds, streaming, and clear errors for bad settings."""
import pytest
import torch

from lesson_lib.models import build_model
from lesson_lib.models.base import LanguageModel
from lesson_lib.sampling import (
    MAX_NEW_TOKENS,
    SamplingConfig,
    generate,
    generate_ids,
    next_token_probs,
    stream,
    stream_tokens,
)
from lesson_lib.tokenizers import BPETokenizer, CharTokenizer, UnknownCharactersError, train_tokenizer

LOGITS = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))


def test_greedy_is_one_hot_on_the_argmax():
    assert next_token_probs(LOGITS, temperature=0).tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]


def test_temperature_one_is_the_softmax_and_top_k_renormalises():
    torch.testing.assert_close(next_token_probs(LOGITS), torch.exp(LOGITS))
    top2 = next_token_probs(LOGITS, top_k=2)
    torch.testing.assert_close(top2, torch.tensor([[0.5 / 0.7, 0.2 / 0.7, 0, 0, 0]]))


def test_top_p_keeps_the_smallest_set_reaching_p():
    kept = next_token_probs(LOGITS, top_p=0.8)  # 0.5 + 0.2 = 0.7 < 0.8, so 0.15 joins: 0.85
    torch.testing.assert_close(kept, torch.tensor([[0.5, 0.2, 0.15, 0, 0]]) / 0.85)
    assert next_token_probs(LOGITS, top_p=0.01)[0, 0] == 1.0  # the top token always stays


def test_low_temperature_sharpens():
    assert next_token_probs(LOGITS, temperature=0.5)[0, 0] > 0.5 > next_token_probs(LOGITS, temperature=2.0)[0, 0]


@pytest.mark.parametrize("options, match", [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_k": 0}, "top_k must be at least 1"),
    ({"max_new_tokens": -1}, "max_new_tokens"),
    ({"max_new_tokens": MAX_NEW_TOKENS + 1}, f"max_new_tokens.*at most {MAX_NEW_TOKENS}"),
    ({"temperature": float("nan")}, "temperature must be a finite number"),
    ({"temperature": float("inf")}, "temperature must be a finite number"),
    ({"top_p": float("nan")}, r"top_p must be in \(0, 1\]"),
])
def test_bad_settings_are_refused_clearly(options, match):
    with pytest.raises(ValueError, match=match):
        SamplingConfig(**options)


@pytest.mark.parametrize("options, match", [
    ({"max_new_tokens": 2.5}, "max_new_tokens must be a whole number"),
    ({"max_new_tokens": 100.0}, "max_new_tokens must be a whole number"),
    ({"max_new_tokens": True}, "max_new_tokens must be a whole number"),
    ({"max_new_tokens": "300"}, "max_new_tokens must be a whole number"),
    ({"top_k": 2.0}, "top_k must be a whole number"),
    ({"top_k": True}, "top_k must be a whole number"),
    ({"temperature": "hot"}, "temperature must be a number"),
    ({"temperature": True}, "temperature must be a number"),
    ({"top_p": "0.9"}, "top_p must be a number"),
    ({"seed": 1.5}, "seed must be a whole number"),
])
def test_settings_of_the_wrong_type_are_refused_clearly(options, match):
    with pytest.raises(TypeError, match=match):
        SamplingConfig(**options)


def test_the_largest_allowed_settings_are_accepted():
    import numpy as np

    config = SamplingConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=0, top_k=np.int64(5), top_p=1)
    assert config.max_new_tokens == MAX_NEW_TOKENS
    assert SamplingConfig(max_new_tokens=0, temperature=100.0).max_new_tokens == 0


@pytest.fixture
def char_model():
    tokenizer = CharTokenizer.train("abcdefgh ROMEO:\n")
    torch.manual_seed(0)
    model = build_model({"family": "gpt", "vocab_size": tokenizer.vocab_size, "block_size": 8, "n_layer": 1,
                         "n_head": 2, "n_embd": 16})
    return model, tokenizer


def test_same_seed_same_text_and_stream_pieces_add_up(char_model):
    model, tokenizer = char_model
    a = generate(model, tokenizer, "ROMEO:", max_new_tokens=30, temperature=1.0, seed=7)
    b = generate(model, tokenizer, "ROMEO:", max_new_tokens=30, temperature=1.0, seed=7)
    c = generate(model, tokenizer, "ROMEO:", max_new_tokens=30, temperature=1.0, seed=8)
    assert a == b != c and a.startswith("ROMEO:") and len(a) == len("ROMEO:") + 30
    pieces = list(stream(model, tokenizer, "ROMEO:", max_new_tokens=30, temperature=1.0, seed=7))
    assert "ROMEO:" + "".join(pieces) == a and len(pieces) == 30


def test_prompt_with_unknown_characters_names_them(char_model):
    model, tokenizer = char_model
    with pytest.raises(UnknownCharactersError, match="'Z'"):
        generate(model, tokenizer, "ROMEO Z", max_new_tokens=5)


def test_empty_prompt_is_refused(char_model):
    model, _ = char_model
    with pytest.raises(ValueError, match="prompt is empty"):
        list(generate_ids(model, [], SamplingConfig(max_new_tokens=3)))


class Scripted(LanguageModel):
    """Emits a fixed token sequence, whatever the input: lets a test choose what is generated."""

    def __init__(self, script, prompt_len, vocab_size):
        super().__init__()
        self.script, self.prompt_len = script, prompt_len
        self.config = type("Config", (), {"vocab_size": vocab_size})()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so the sampler can find the device

    def forward(self, idx, targets=None):
        logits = torch.zeros(idx.size(0), idx.size(1), self.config.vocab_size)
        logits[:, -1, self.script[idx.size(1) - self.prompt_len]] = 1.0
        return logits, None


def test_streamed_bpe_pieces_hold_back_a_character_split_over_tokens():
    tokenizer = BPETokenizer.train("plain ascii text only " * 20, vocab_size=260)
    script = tokenizer.encode("ab\u2603cd")  # the snowman is 3 bytes, unseen in training: 3 byte tokens
    assert len(script) == 7
    model = Scripted(script, prompt_len=1, vocab_size=tokenizer.vocab_size)
    pieces = list(stream(model, tokenizer, "x", max_new_tokens=len(script), temperature=0))
    assert pieces == ["a", "b", "\u2603", "c", "d"]


def test_stream_tokens_reports_the_models_own_probabilities(char_model):
    model, tokenizer = char_model
    generated = list(stream_tokens(model, tokenizer, "ROMEO:", max_new_tokens=12, temperature=0, top=5))
    assert "".join(g.text for g in generated) == generate(model, tokenizer, "ROMEO:", max_new_tokens=12,
                                                          temperature=0)[len("ROMEO:"):]
    for g in generated:
        ranked = [p for _, p in g.top]
        assert len(g.top) == 5 and ranked == sorted(ranked, reverse=True) and 0 < ranked[0] <= 1
        assert g.top[0][0] == g.token and g.prob == pytest.approx(ranked[0])  # greedy picks the top token
    hot = list(stream_tokens(model, tokenizer, "ROMEO:", max_new_tokens=12, temperature=5.0, seed=3, top=3))
    # temperature changes what is drawn, not the model's own distribution that is reported
    assert all(0 < g.prob <= 1 for g in hot) and any(g.token != g.top[0][0] for g in hot)


# --- streamed text equals the whole decode, at a cost linear in the tokens -------------------------------

STREAM_TEXT = ("To be, or not to be (that is the question): [whether] 'tis nobler; {so} it seems!\n"
               "生存还是毁灭，这是一个问题。🙂👍🏽 café naïve ☃\n") * 10
PROMPT = "To be, or not"


def bigram_for(kind):
    """A tokenizer of `kind` and a bigram over its vocabulary: uniform at init, so any id may follow any."""
    tokenizer = train_tokenizer(kind, STREAM_TEXT, vocab_size=300 if kind == "bpe" else None)
    return build_model({"family": "bigram", "vocab_size": tokenizer.vocab_size}), tokenizer


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_streamed_pieces_equal_the_whole_decode(kind):
    model, tokenizer = bigram_for(kind)
    generated = list(stream_tokens(model, tokenizer, PROMPT, max_new_tokens=500, seed=1))
    prompt_ids = tokenizer.encode(PROMPT)
    whole = tokenizer.decode(prompt_ids + [g.token for g in generated])
    assert "".join(g.text for g in generated) == whole[len(tokenizer.decode(prompt_ids)):]


def test_streamed_bpe_text_with_chinese_and_emoji_is_exact():
    tokenizer = train_tokenizer("bpe", STREAM_TEXT, vocab_size=300)
    text = "生存还是毁灭，这是一个问题。🙂👍🏽 café ☃ 新字🦀"  # the last two never seen in training
    script = tokenizer.encode(text)
    assert len(script) > len(text)  # some characters span several tokens
    model = Scripted(script, prompt_len=1, vocab_size=tokenizer.vocab_size)
    pieces = [g.text for g in stream_tokens(model, tokenizer, "x", max_new_tokens=len(script), temperature=0)]
    assert "".join(pieces) == text and "\ufffd" not in "".join(pieces)
    assert pieces[-1] == "🦀"  # 4 byte tokens: nothing shown until the last one


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_streaming_decodes_a_number_of_ids_linear_in_the_tokens(kind, monkeypatch):
    model, tokenizer = bigram_for(kind)
    decoded = []
    real_decode = tokenizer.decode
    monkeypatch.setattr(tokenizer, "decode", lambda ids: decoded.append(len(ids)) or real_decode(ids))
    n_new = 2000
    for _ in stream_tokens(model, tokenizer, PROMPT, max_new_tokens=n_new, seed=0, top=1):
        pass
    # a handful of ids per token; decoding the whole text at every token would be about 2 million
    assert sum(decoded) < 10 * n_new


@pytest.mark.parametrize("extra", [{}, {"rotary": True}, {"mlp": "swiglu", "qk_norm": True, "tie_embeddings": False}],
                         ids=["learned", "rotary", "swiglu-qknorm-untied"])
def test_the_fixed_size_cache_of_cuda_graphs_decodes_the_same_tokens(extra):
    """`cuda_graph=True` decodes through GPT.forward_static (a cache of fixed size, what a CUDA graph
    captures; on a CPU it runs without one). Its logits match the growing cache's at every token,
    across the window jumps of the context rule, so greedy and seeded sampling give the same tokens."""
    from lesson_lib.models import build_model
    from lesson_lib.sampling import generate_steps

    torch.manual_seed(0)
    model = build_model({"family": "gpt", "vocab_size": 40, "block_size": 16, "n_layer": 2, "n_head": 2,
                         "n_embd": 32, **extra})
    with torch.no_grad():  # sharper weights than at init, so that the text is not one token repeated
        for p in model.parameters():
            p.mul_(4)
    for options in ({"temperature": 0}, {"temperature": 0.9, "seed": 5}):
        growing = list(generate_steps(model, [1, 2, 3], SamplingConfig(max_new_tokens=60, **options)))
        fixed = list(generate_steps(model, [1, 2, 3], SamplingConfig(max_new_tokens=60, cuda_graph=True, **options)))
        assert [s.token for s in fixed] == [s.token for s in growing]  # 60 tokens: the window jumps 4 times
        assert max((a.model_probs - b.model_probs).abs().max().item() for a, b in zip(fixed, growing)) < 1e-5
    assert len({s.token for s in growing}) > 5


def test_a_model_without_a_fixed_size_path_ignores_cuda_graph(char_model):
    model, tokenizer = char_model
    plain = generate(model, tokenizer, "ab", max_new_tokens=20, seed=1)
    assert generate(model, tokenizer, "ab", max_new_tokens=20, seed=1, cuda_graph=True) == plain
