"""Generation-quality measures: exact values on small texts, and the sampler's probabilities re-derived."""
import math

import pytest
import torch

from lesson_lib.generation_quality import (distinct_n, generate_scored, mean_log_prob, ngrams, non_word_share, quality,
                                           repetition, score_continuation, words)
from lesson_lib.models import build_model
from lesson_lib.sampling import SamplingConfig
from lesson_lib.tokenizers import CharTokenizer

from conftest import TEXT, TINY_GPT


def test_words_lowercase_and_keep_inner_apostrophes():
    assert words("Ay, my LORD! O'er the sea, 'tis 3 o'clock.") == ["ay", "my", "lord", "o'er", "the", "sea", "tis",
                                                                 "o'clock"]


def test_distinct_n_counts_unique_over_all():
    tokens = "a b a b a c".split()
    assert ngrams(tokens, 2) == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a"), ("a", "c")]
    assert distinct_n(tokens, 1) == 3 / 6
    assert distinct_n(tokens, 2) == 3 / 5  # ab, ba, ac
    assert distinct_n(tokens, 3) == 3 / 4  # aba, bab, bac
    assert distinct_n("abcd", 1) == 1.0  # a string counts in characters
    with pytest.raises(ValueError, match="no 3-gram"):
        distinct_n(["a", "b"], 3)


def test_repetition_of_the_last_part():
    assert repetition(list("abcdefgh"), n=1) == 0.0  # nothing repeats
    assert repetition(list("abababab"), n=2) == 1.0  # a loop: every late bigram was seen
    # bigrams ab bc cd da ab bc: the last half (da ab bc) holds two seen before (ab, bc)
    assert repetition(list("abcdabc"), n=2) == pytest.approx(2 / 3)
    # a repeat inside the tail counts too: bigrams xy yz za aa aa, tail = za aa aa
    assert repetition(list("xyzaaa"), n=2, tail=0.6) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="too few"):
        repetition(["a", "b"], n=2)


def test_mean_log_prob():
    assert mean_log_prob([1.0, 1.0]) == 0.0
    assert mean_log_prob([0.5, 0.25]) == pytest.approx((math.log(0.5) + math.log(0.25)) / 2)
    with pytest.raises(ValueError, match="-inf"):
        mean_log_prob([0.5, 0.0])


def test_generated_probabilities_equal_a_teacher_forced_pass():
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(TEXT)
    model = build_model({**TINY_GPT, "vocab_size": tokenizer.vocab_size}).eval()
    prompt = "ROMEO: "
    scored = generate_scored(model, tokenizer, prompt, SamplingConfig(max_new_tokens=8, temperature=1.5, seed=3))
    assert len(scored.probs) == len(scored.token_ids) == 8 and scored.text == tokenizer.decode(scored.token_ids)
    again = score_continuation(model, tokenizer.encode(prompt), scored.token_ids)
    assert again == pytest.approx(scored.probs, rel=1e-4)  # the model's own probabilities, not the sampled ones
    greedy = generate_scored(model, tokenizer, prompt, SamplingConfig(max_new_tokens=8, temperature=0))
    row = quality(["a b c d " + greedy.text], [greedy.probs], ns=(1,), repeat_n=1)
    assert set(row) == {"distinct-1", "repeated 1-grams", "mean log-prob"}
    with pytest.raises(ValueError, match="context"):
        score_continuation(model, [0] * 10, [0] * 10)  # 19 inputs > context 16


def test_quality_pools_texts_without_crossing_them():
    row = quality(["a b a", "b a b"], [[0.5], [0.5, 0.5]], ns=(1, 2), repeat_n=1)
    assert row["distinct-1"] == 2 / 6
    assert row["distinct-2"] == 2 / 4  # ab ba | ba ab: "a" + "b" across the boundary is not counted
    assert row["repeated 1-grams"] == pytest.approx(1 / 2)  # each text: the last 2 of 3 words, one seen before
    assert row["mean log-prob"] == pytest.approx(math.log(0.5))
    with pytest.raises(TypeError, match="list of texts"):
        quality("a b c", [[0.5]])


def test_non_word_share_counts_words_outside_the_vocabulary():
    vocabulary = {"to", "be", "or", "not"}
    assert non_word_share(["To be, or nott", "tobe xq"], vocabulary) == 3 / 6  # nott, tobe, xq
    assert non_word_share(["to be"], vocabulary) == 0
    row = quality(["to be or nott"], [[0.5]], ns=(1,), repeat_n=1, vocabulary=vocabulary)
    assert row["non-words"] == 1 / 4
    assert "non-words" not in quality(["to be or nott"], [[0.5]], ns=(1,), repeat_n=1)
    with pytest.raises(TypeError, match="list of texts"):
        non_word_share("to be", vocabulary)
    with pytest.raises(ValueError, match="no word"):
        non_word_share(["!?", ""], vocabulary)
