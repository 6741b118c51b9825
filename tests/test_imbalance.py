"""Rebalancing a training set (random over- and undersampling, SMOTE) and balanced class weights."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.utils.class_weight import compute_class_weight

from lesson_lib.classify import fine_tune, predict
from lesson_lib.device import cpu_threads
from lesson_lib.imbalance import RESAMPLERS, balanced_class_weights, class_counts, keep_fraction, resample
from lesson_lib.training import TrainConfig


def imbalanced(counts=(40, 25, 8), seed=0, spread=1.0):
    """Gaussian blobs in 2-D, one per class, centred apart: `counts` examples of each class."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [1.5, 2.5]])
    features = np.concatenate([rng.normal(centres[c], spread, size=(n, 2)) for c, n in enumerate(counts)])
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return features, labels


def rows_of(a):
    return {tuple(row) for row in np.asarray(a).round(12)}


def test_none_changes_nothing():
    X, y = imbalanced()
    X2, y2 = resample(X, y, "none")
    assert X2 is X and y2 is y


def test_oversampling_repeats_rows_until_every_class_is_the_largest():
    X, y = imbalanced()
    X2, y2 = resample(X, y, "oversample", seed=1)
    assert np.bincount(y2).tolist() == [40, 40, 40]
    assert rows_of(X2) == rows_of(X)  # copies of the originals, every one kept
    for c in range(3):
        assert rows_of(X2[y2 == c]) <= rows_of(X[y == c])  # a copy keeps its label


def test_undersampling_drops_rows_until_every_class_is_the_smallest():
    X, y = imbalanced()
    X2, y2 = resample(X, y, "undersample", seed=1)
    assert np.bincount(y2).tolist() == [8, 8, 8]
    assert len(rows_of(X2)) == 24 and rows_of(X2) <= rows_of(X)
    assert rows_of(X2[y2 == 2]) == rows_of(X[y == 2])  # the smallest class is kept whole


def test_smote_adds_points_between_two_of_the_same_class():
    X, y = imbalanced()
    X2, y2 = resample(X, y, "smote", seed=1, smote_neighbours=3)
    assert np.bincount(y2).tolist() == [40, 40, 40]
    assert rows_of(X) <= rows_of(X2)  # the originals stay
    minority = X[y == 2]
    new = [p for p in X2[y2 == 2] if tuple(p.round(12)) not in rows_of(minority)]
    assert len(new) == 32
    for point in new:  # on a segment a + t (b - a), t in [0, 1], between two minority points
        on_segment = False
        for a in minority:
            for b in minority:
                d = b - a
                if d @ d == 0:
                    continue
                t = (point - a) @ d / (d @ d)
                if -1e-9 <= t <= 1 + 1e-9 and np.allclose(a + t * d, point, atol=1e-9):
                    on_segment = True
        assert on_segment, point


@pytest.mark.parametrize("method", RESAMPLERS[1:])
def test_resampling_is_seeded(method):
    X, y = imbalanced()
    first, again, other = (resample(X, y, method, seed=s) for s in (3, 3, 4))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_bad_input_is_refused():
    X, y = imbalanced()
    with pytest.raises(ValueError, match="unknown resampling method"):
        resample(X, y, "duplicate")
    with pytest.raises(ValueError, match="same N"):
        resample(X, y[:-1], "oversample")
    with pytest.raises(ValueError, match="smallest class has 3"):
        resample(*imbalanced((10, 10, 3)), "smote")


def test_balanced_weights_give_every_class_the_same_total():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    weights = balanced_class_weights(y, 3)
    assert weights.tolist() == pytest.approx([9 / 18, 9 / 6, 9 / 3])
    assert np.allclose(weights, compute_class_weight("balanced", classes=np.arange(3), y=y))
    assert np.allclose(weights * np.bincount(y), len(y) / 3)
    with pytest.raises(ValueError, match=r"\[1\] have no example"):
        balanced_class_weights(np.array([0, 0, 2]), 3)


def test_class_weights_and_oversampling_weigh_each_class_alike():
    # chapter 9: "two routes to the same expected gradient". The weighted loss is the plain mean of the classes'
    # mean losses; so is the oversampled set's mean loss, in expectation over the resampling's draws
    _, y = imbalanced((30, 12, 6))
    logits = torch.randn(len(y), 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logits[:, 0] += 2.0  # a model that favours the big class: its loss is low, the others' high
    losses = torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="none").numpy()  # (N,)
    weights = torch.tensor(balanced_class_weights(y, 3), dtype=torch.float64)
    weighted = torch.nn.functional.cross_entropy(logits, torch.tensor(y), weight=weights).item()
    per_class = np.mean([losses[y == c].mean() for c in range(3)])
    assert weighted == pytest.approx(per_class, rel=1e-12)
    assert abs(losses.mean() - per_class) > 0.05  # the unweighted mean is another number
    row = np.arange(len(y), dtype=float)[:, None]  # each example's index as its feature, to find it again
    oversampled = [losses[resample(row, y, "oversample", seed)[0][:, 0].astype(int)].mean() for seed in range(400)]
    assert np.mean(oversampled) == pytest.approx(per_class, rel=0.01)


def test_keep_fraction_thins_one_class_and_nothing_else():
    y = np.array([0] * 10 + [1] * 20 + [2] * 5)
    kept = keep_fraction(y, of_class=1, fraction=0.25, seed=0)
    assert class_counts(y[kept], ["a", "b", "c"]) == {"a": 10, "b": 5, "c": 5}
    assert np.all(np.diff(kept) > 0)
    assert np.array_equal(kept, keep_fraction(y, 1, 0.25, seed=0))
    assert not np.array_equal(kept, keep_fraction(y, 1, 0.25, seed=1))
    assert (y[keep_fraction(y, 2, 0.01)] == 2).sum() == 1  # at least one is kept
    with pytest.raises(ValueError):
        keep_fraction(y, 1, 0.0)


def minority_recall(features, labels, method, class_weights=None, seed=0):
    X, y = resample(features, labels, method, seed)
    torch.manual_seed(seed)
    head = nn.Linear(2, 3)
    config = TrainConfig(max_steps=150, batch_size=32, lr=0.05, min_lr=0.005, warmup_steps=10, weight_decay=0.0,
                         seed=seed)
    fine_tune(head, torch.tensor(X, dtype=torch.float32), y, config, class_weights=class_weights)
    test_X, test_y = imbalanced((200, 200, 200), seed=9)
    predicted = predict(head, torch.tensor(test_X, dtype=torch.float32))
    return (predicted[test_y == 2] == 2).mean()


def test_every_remedy_finds_more_of_the_rare_class():
    X, y = imbalanced((300, 300, 12), spread=1.4)  # overlapping blobs, one class rare
    with cpu_threads(1):
        plain = minority_recall(X, y, "none")
        weights = torch.tensor(balanced_class_weights(y, 3), dtype=torch.float32)
        remedies = [minority_recall(X, y, m) for m in RESAMPLERS[1:]] + [minority_recall(X, y, "none", weights)]
    assert plain < 0.4, plain
    assert min(remedies) > plain + 0.2, (plain, remedies)
