"""The number task's references, the split by number, and a seq2seq model that learns a tiny version."""
import numpy as np
import pytest
import torch

from lesson_lib.device import cpu_threads
from lesson_lib.seq2seq import (WORD_VALUES, NumberTask, Seq2Seq, Seq2SeqConfig, Vocab, digit_value, exact_match,
                                number_to_chinese, number_to_words, train_seq2seq, translate)
from lesson_lib.training import TrainConfig


@pytest.mark.parametrize("n, words, chinese", [
    (0, "zero", "零"), (7, "seven", "七"), (10, "ten", "十"), (15, "fifteen", "十五"),
    (21, "twenty one", "二十一"),
    (101, "one hundred and one", "一百零一"), (110, "one hundred and ten", "一百一十"),
    (1001, "one thousand and one", "一千零一"), (1010, "one thousand and ten", "一千零一十"),
    (1100, "one thousand one hundred", "一千一百"), (4012, "four thousand and twelve", "四千零一十二"),
    (9999, "nine thousand nine hundred and ninety nine", "九千九百九十九"),
])
def test_references(n, words, chinese):
    assert number_to_words(n) == words and number_to_chinese(n) == chinese


def test_out_of_range_is_refused():
    with pytest.raises(ValueError, match="0 to 9999"):
        number_to_words(10000)


def test_split_by_number_is_disjoint_and_seeded():
    task = NumberTask.build("digits", test_fraction=0.2, seed=1)
    assert len(task.test_numbers) == 2000 and len(task.train_numbers) == 8000
    assert not set(task.test_numbers) & set(task.train_numbers)
    assert np.array_equal(task.test_numbers, NumberTask.build("digits", test_fraction=0.2, seed=1).test_numbers)
    src, lengths, tgt = task.batch([4012, 7])
    assert lengths.tolist() == [4, 1] and src[1, 1:].eq(Vocab.PAD).all()
    assert tgt[0].tolist()[0] == Vocab.BOS and task.target_vocab.decode(tgt[0, 1:].tolist()) == list("4012")


def test_a_small_model_learns_and_attention_is_a_distribution():
    torch.manual_seed(0)
    task = NumberTask.build("digits", seed=0)
    model = Seq2Seq(Seq2SeqConfig(len(task.source_vocab), len(task.target_vocab), n_embd=16, hidden=32))
    config = TrainConfig(max_steps=150, batch_size=64, lr=1e-2, min_lr=1e-3, warmup_steps=10, weight_decay=0.0, seed=0)
    with cpu_threads(1):  # tiny recurrent steps: a second thread only waits (see device.cpu_threads)
        records = train_seq2seq(model, task, config)
        numbers = task.test_numbers[:200].tolist()
        texts, attention = translate(model, task, numbers)
    assert records[-1]["train_loss"] < 0.2 * records[0]["train_loss"]
    assert exact_match(texts, [str(n) for n in numbers]) > 0.5  # held-out numbers, after 150 steps
    for n, weights in zip(numbers[:5], attention[:5]):
        assert weights.shape[1] == len(number_to_words(n).split())
        assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)


def test_digit_values_of_characters_and_words():
    assert [digit_value(c) for c in "八8千零0<"] == [8, 8, None, 0, 0, None]
    assert WORD_VALUES["eighteen"] == 18 and WORD_VALUES["eighty"] == 80 and "hundred" not in WORD_VALUES


def test_config_names_a_bad_size():
    with pytest.raises(TypeError, match="Seq2SeqConfig.hidden must be a whole number"):
        Seq2SeqConfig(10, 10, hidden=64.0)
    with pytest.raises(ValueError, match="Seq2SeqConfig.hidden must be even"):
        Seq2SeqConfig(10, 10, hidden=63)
