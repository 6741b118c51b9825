"""lesson_lib.embeddings: tiny, seeded, exact where possible."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lesson_lib.embeddings import (Vocab, analogy_accuracy, build_vocab, corpus_sentences, keep_probabilities,
                                   load_vectors, nearest, save_vectors, sgns_step, similarity_spearman,
                                   train_word2vec)
from lesson_lib.models.word2vec import SkipGram, Word2VecConfig, skipgram_pairs


def test_sentences_and_vocab_min_count():
    sentences = corpus_sentences("The king, the KING!\n'Tis o'er.\n\n\nthe queen")
    assert sentences == [["the", "king", "the", "king", "'tis", "o'er"], ["the", "queen"]]
    vocab = build_vocab(sentences, min_count=2)
    assert vocab.words == ("the", "king") and vocab.counts == (3, 2)
    assert "queen" not in vocab and vocab.index["king"] == 1


def test_clear_errors():
    with pytest.raises(ValueError, match="no words"):
        build_vocab([[], []])
    with pytest.raises(ValueError, match="min_count"):
        build_vocab([["a"]], min_count=5)
    vocab = build_vocab([["a", "b"]], min_count=1)
    with pytest.raises(ValueError, match="fewer than two"):
        train_word2vec([["a"]], vocab, Word2VecConfig(2, 4, 2, 1))
    with pytest.raises(ValueError, match="vocab_size"):
        train_word2vec([["a", "b"]], vocab, Word2VecConfig(3, 4, 2, 1))
    with pytest.raises(KeyError, match="not in the vocabulary"):
        nearest(np.eye(2, dtype=np.float32), vocab, "zebra")


def test_subsampling_formula_and_determinism():
    keep = keep_probabilities([1000, 10, 1], sample=1e-3)
    f = 1000 / 1011
    assert keep[0] == pytest.approx((np.sqrt(f / 1e-3) + 1) * 1e-3 / f)
    assert keep[2] == 1.0 and keep[0] < keep[1]
    sentences = [["a", "b", "a", "c", "a", "b"] * 20]
    vocab = build_vocab(sentences, 1)
    config = Word2VecConfig(len(vocab), 8, 2, 2)
    one = train_word2vec(sentences, vocab, config, epochs=2, batch_size=16, sample=1e-2, seed=3)
    two = train_word2vec(sentences, vocab, config, epochs=2, batch_size=16, sample=1e-2, seed=3)
    assert np.array_equal(one.vectors, two.vectors) and one.pairs == two.pairs


def test_pairs_stay_inside_sentences_and_windows():
    ids = torch.arange(10)
    owner = torch.tensor([0] * 5 + [1] * 5)
    centers, contexts = skipgram_pairs(ids, 3, torch.Generator().manual_seed(0), owner=owner)
    assert len(centers) > 0
    assert torch.all(owner[centers] == owner[contexts])
    distance = (centers - contexts).abs()
    assert distance.min() >= 1 and distance.max() <= 3


def test_sgns_step_equals_autograd():
    model = SkipGram(Word2VecConfig(vocab_size=20, n_embd=6, window=2, negatives=3)).double()
    torch.nn.init.normal_(model.context_vectors.weight, std=0.3)
    g = torch.Generator().manual_seed(0)
    center, context = torch.randint(20, (32,), generator=g), torch.randint(20, (32,), generator=g)
    negatives = (context.unsqueeze(1) + 1 + torch.randint(19, (32, 3), generator=g)) % 20
    grads = torch.autograd.grad(model(center, context, negatives) * 32, list(model.parameters()))
    expected = [p.detach() - 0.1 * grad for p, grad in zip(model.parameters(), grads)]
    sgns_step(model, center, context, negatives, 0.1)
    for p, e in zip(model.parameters(), expected):
        assert torch.allclose(p, e, atol=1e-12)


def test_training_puts_cooccurring_words_closer():
    sentences = [["red", "green", "blue", "pink"] * 3, ["cat", "dog", "cow", "pig"] * 3] * 40
    vocab = build_vocab(sentences, 1)
    result = train_word2vec(sentences, vocab, Word2VecConfig(len(vocab), 16, 2, 3), epochs=20, lr=0.1,
                            batch_size=64, sample=0, seed=0)
    unit = result.vectors / np.linalg.norm(result.vectors, axis=1, keepdims=True)
    topic = np.array([w in {"red", "green", "blue", "pink"} for w in vocab.words])
    similarity = unit @ unit.T
    same = (topic[:, None] == topic[None, :]) & ~np.eye(len(vocab), dtype=bool)
    assert similarity[same].mean() > similarity[topic[:, None] != topic[None, :]].mean() + 0.2
    assert nearest(result.vectors, vocab, "cat", 3)[0][0] in {"dog", "cow", "pig"}
    assert result.records and result.records[-1]["train_loss"] < result.records[0]["train_loss"]


def test_spearman_and_analogy_on_hand_made_vectors():
    vocab = Vocab(("man", "woman", "king", "queen", "apple"), (5, 4, 3, 2, 1))
    vectors = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, -1]], dtype=np.float32)
    pairs = [("man", "woman", 8.0), ("king", "queen", 9.0), ("man", "apple", 1.0), ("king", "zebra", 5.0)]
    rho, coverage = similarity_spearman(vectors, vocab, pairs)
    assert coverage == 0.75 and rho == pytest.approx(1.0)
    accuracy, covered = analogy_accuracy(vectors, vocab, [("man", "woman", "king", "queen"),
                                                          ("man", "king", "woman", "apple"),
                                                          ("man", "zebra", "king", "queen")])
    assert covered == 2 and accuracy == 0.5  # king - man + woman = queen; woman + king - man != apple


def test_save_load_round_trip(tmp_path):
    vocab = Vocab(("a", "b"), (2, 1))
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3)
    folder = save_vectors(tmp_path / "w2v", vectors, vocab, meta={"epochs": 1})
    loaded, loaded_vocab, meta = load_vectors(folder)
    assert np.array_equal(loaded, vectors) and loaded_vocab == vocab and meta == {"epochs": 1}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left
    with pytest.raises(FileNotFoundError, match="chapter 4"):
        load_vectors(tmp_path / "nothing")
