"""Genre data split by work, the GPT classification head, its fine-tuning loop, and the scores."""
import numpy as np
import pytest
import torch

from lesson_lib.classify import (GENRE_NAMES, GPTClassifier, bag_of_words_baseline, encode_passages, fine_tune,
                                 genre_splits, predict, scores, split_works, work_passages)
from lesson_lib.data import Corpus, Work
from lesson_lib.device import cpu_threads
from lesson_lib.models import build_model
from lesson_lib.tokenizers import CharTokenizer
from lesson_lib.training import TrainConfig

from conftest import TINY_GPT

# each genre writes one letter over and over, so a classifier can learn it in a few steps
LETTER = {"comedy": "a", "tragedy": "b", "history": "c", "poem": "d"}


def tiny_corpus(works_per_genre=(4, 4, 3, 3), chars=400) -> Corpus:
    works = []
    for genre, count in zip(GENRE_NAMES, works_per_genre):
        for i in range(count):
            works.append(Work(f"{genre}_{i}", f"{genre} {i}", genre, (LETTER[genre] + " ") * (chars // 2)))
    works.append(Work("poem_short", "short", "poem", "d " * 5))  # too short to be a test work
    works = tuple(sorted(works, key=lambda w: w.stem))
    return Corpus("tiny", "\n\n".join(w.text for w in works), works)


def test_split_by_work_is_stratified_disjoint_and_seeded():
    corpus = tiny_corpus()
    train, test = split_works(corpus, test_fraction=0.25, seed=3, min_test_chars=100)
    assert not set(train) & set(test) and set(train) | set(test) == {w.stem for w in corpus.works}
    assert {corpus.work(s).genre for s in test} == set(GENRE_NAMES)  # every genre is tested
    assert {corpus.work(s).genre for s in train} == set(GENRE_NAMES)  # and trained
    assert "poem_short" in train  # shorter than min_test_chars: never a test work
    assert (train, test) == split_works(corpus, test_fraction=0.25, seed=3, min_test_chars=100)
    many = {split_works(corpus, 0.25, seed, 100)[1] for seed in range(10)}
    assert len(many) > 1  # the seed matters


def test_passages_and_counts():
    assert work_passages("abcdefghij", 3) == ["abc", "def", "ghi"]
    picked = work_passages("abcdefghijkl", 3, max_passages=2, seed=0)
    assert len(picked) == 2 and all(p in ["abc", "def", "ghi", "jkl"] for p in picked)
    splits = genre_splits(tiny_corpus(), length=16, max_per_work=5, seed=0, min_test_chars=100)
    assert all(len(t) == 16 for t in splits.train.texts + splits.test.texts)
    assert not set(splits.train.works) & set(splits.test.works)
    counts = splits.counts()
    assert counts.loc["total", "train passages"] == len(splits.train)
    assert counts.loc["total", "test works"] == len(splits.test_works)
    assert list(counts.index[:4]) == list(GENRE_NAMES)


def test_chunked_features_are_the_mean_of_the_pieces():
    torch.manual_seed(0)
    gpt = build_model({**TINY_GPT, "vocab_size": 5}).eval()
    model = GPTClassifier(gpt, 4).eval()
    idx = torch.randint(0, 5, (3, 32))  # two contexts of 16
    whole = model.features(idx)
    pieces = (model.features(idx[:, :16]) + model.features(idx[:, 16:])) / 2
    torch.testing.assert_close(whole, pieces)
    assert model(idx).shape == (3, 4)
    with pytest.raises(ValueError, match="multiple"):
        model.features(torch.zeros(1, 20, dtype=torch.long))


def test_fine_tuning_learns_an_easy_task_and_scores_agree():
    corpus = tiny_corpus()
    splits = genre_splits(corpus, length=16, max_per_work=10, seed=0, min_test_chars=100)
    tokenizer = CharTokenizer.train(corpus.text)
    torch.manual_seed(0)
    model = GPTClassifier(build_model({**TINY_GPT, "vocab_size": tokenizer.vocab_size}), len(GENRE_NAMES))
    config = TrainConfig(max_steps=40, batch_size=16, lr=1e-2, min_lr=1e-3, warmup_steps=4, seed=0)
    with cpu_threads(1):
        records = fine_tune(model, encode_passages(splits.train.texts, tokenizer), splits.train.labels, config)
        predicted = predict(model, encode_passages(splits.test.texts, tokenizer))
    assert records[-1]["train_loss"] < 0.3 * records[0]["train_loss"]
    result = scores(splits.test.labels, predicted)
    assert result["accuracy"] == 1.0 and result["macro-F1"] == 1.0
    assert result["confusion"].trace() == len(splits.test)


def test_scores_and_the_baseline():
    y_true, y_pred = np.array([0, 0, 1, 2, 3, 3]), np.array([0, 1, 1, 2, 3, 0])
    result = scores(y_true, y_pred)
    assert result["accuracy"] == pytest.approx(4 / 6)
    f1 = [2 * 1 / (2 * 1 + 1 + 1), 2 * 1 / (2 + 1), 1.0, 2 * 1 / (2 + 1)]  # 2TP / (2TP + FP + FN) per class
    assert result["macro-F1"] == pytest.approx(np.mean(f1))
    assert result["confusion"].tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]]
    texts = ["the king my lord", "my lord the king", "sweet love sweet", "love sweet heart"] * 3
    labels = np.array([2, 2, 0, 0] * 3)
    assert bag_of_words_baseline(texts, labels, ["the king", "sweet heart"]).tolist() == [2, 0]


def test_masked_features_pool_the_real_tokens_only():
    torch.manual_seed(0)
    model = GPTClassifier(build_model({**TINY_GPT, "vocab_size": 5}), 4).eval()
    short = torch.randint(1, 5, (1, 10))  # shorter than the context of 16
    for side in ("left", "right"):
        pad = torch.zeros(1, 6, dtype=torch.long)
        idx = torch.cat([pad, short], dim=1) if side == "left" else torch.cat([short, pad], dim=1)  # (1, 16)
        mask = idx != 0
        with torch.no_grad():
            torch.testing.assert_close(model.features(idx, mask), model.features(short), atol=1e-5, rtol=1e-5)
            assert (model.features(idx) - model.features(short)).abs().max() > 1e-3  # the pads' states are averaged in
    idx = torch.randint(1, 5, (2, 16))
    with torch.no_grad():  # a mask of real tokens only is the default path
        torch.testing.assert_close(model(idx, torch.ones_like(idx, dtype=torch.bool)), model(idx))
    with pytest.raises(ValueError, match="shape"):
        model.features(idx, torch.ones(2, 15, dtype=torch.bool))


def test_masked_features_of_a_long_passage_average_over_its_real_tokens():
    torch.manual_seed(1)
    model = GPTClassifier(build_model({**TINY_GPT, "vocab_size": 5}), 4).eval()
    first, rest = torch.randint(1, 5, (1, 16)), torch.randint(1, 5, (1, 8))
    idx = torch.cat([first, rest, torch.zeros(1, 8, dtype=torch.long)], dim=1)  # two contexts, the second half padding
    with torch.no_grad():
        expected = (16 * model.features(first) + 8 * model.features(rest)) / 24  # each piece is read on its own
        torch.testing.assert_close(model.features(idx, idx != 0), expected, atol=1e-5, rtol=1e-5)
