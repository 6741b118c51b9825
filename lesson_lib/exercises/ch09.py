"""Chapter 9's exercises: recall done right, macro-F1, balanced class weights, a training-time estimate,
and an attention mask for a padded batch."""
from __future__ import annotations

import numpy as np
import torch

from .core import Wrong, as_number, describe, expect_close, expect_shape, exercise


def _confusion(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 8, size=(4, 4))
    matrix[np.diag_indices(4)] += rng.integers(5, 40, size=4)
    matrix[:, 3] += rng.integers(0, 15, size=4)  # a class predicted too often: precision and recall part ways
    return matrix


def _from_confusion(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels that give this confusion matrix (rows true, columns predicted)."""
    pairs = [(t, p) for t in range(matrix.shape[0]) for p in range(matrix.shape[1]) for _ in range(matrix[t, p])]
    true, pred = zip(*pairs)
    return np.array(true), np.array(pred)


@exercise("ch09.recall", "recall, defined correctly", level=1)
def _recall(answer, seed):
    from sklearn.metrics import precision_score, recall_score

    matrix = _confusion(seed)
    true, pred = _from_confusion(matrix)
    got = expect_shape(answer(matrix.copy()), (4,), "the recall of each class")
    if np.allclose(got.numpy(), precision_score(true, pred, average=None)):
        raise Wrong("that is precision, as the article defines recall (erratum 2): recall divides by how many "
                    "are truly of the class (a row of the matrix), not by how many were predicted so")
    expect_close(got, recall_score(true, pred, average=None), "the recall of each class")


@exercise("ch09.macro-f1", "macro-F1 from a confusion matrix", level=2)
def _macro_f1(answer, seed):
    from sklearn.metrics import accuracy_score, f1_score

    matrix = _confusion(seed)
    true, pred = _from_confusion(matrix)
    got = as_number(answer(matrix.copy()), "macro-F1")
    if abs(got - f1_score(true, pred, average="micro")) < 1e-9 or abs(got - accuracy_score(true, pred)) < 1e-9:
        raise Wrong("that is accuracy (micro-F1): macro-F1 is the plain mean of the F1 of each class")
    if abs(got - f1_score(true, pred, average="weighted")) < 1e-9:
        raise Wrong("that weights each class by its size: macro-F1 gives every class the same weight")
    expect_close(got, f1_score(true, pred, average="macro"), "macro-F1", atol=1e-9)


@exercise("ch09.class-weights", "balanced class weights", level=2)
def _class_weights(answer, seed):
    from sklearn.utils.class_weight import compute_class_weight

    rng = np.random.default_rng(seed)
    labels = rng.choice(4, size=300, p=[0.55, 0.25, 0.15, 0.05])
    expected = compute_class_weight("balanced", classes=np.arange(4), y=labels)
    got = expect_shape(answer(labels.copy(), 4), (4,), "the weights")
    if np.allclose(got.numpy(), 1 / np.bincount(labels, minlength=4)):
        raise Wrong("1/count makes the weights depend on the size of the data set: scale them so that a "
                    "balanced set would get weight 1 for every class, n / (classes * count)")
    expect_close(got, expected, "the weights")


@exercise("ch09.training-time", "how long training takes", level=1)
def _training_time(answer, seed):
    rng = np.random.default_rng(seed)
    n, d = float(rng.uniform(1e6, 1e9)), float(rng.uniform(1e8, 1e11))
    devices, peak, mfu = int(rng.integers(1, 9)), float(rng.uniform(1e11, 1e15)), float(rng.uniform(0.2, 0.6))
    expected = 6 * n * d / (devices * peak * mfu)
    got = as_number(answer(n, d, devices, peak, mfu), "the seconds")
    if abs(got - expected) <= 1e-9 * expected:
        return
    if abs(got - expected * mfu) <= 1e-9 * expected:
        raise Wrong("that assumes every device runs at its peak: divide by the fraction of it a real run gets (MFU)")
    if abs(got - expected * devices) <= 1e-9 * expected * devices:
        raise Wrong("the work is shared by the devices: divide by their number")
    expect_close(got, expected, "the seconds", rtol=1e-9, atol=0)


@exercise("ch09.padding-mask", "the attention mask of a padded batch", level=3)
def _padding_mask(answer, seed):
    rng = np.random.default_rng(seed)
    T = 7
    drawn = rng.integers(1, T + 1, size=4)
    drawn[0] = T
    # Two batches: the one drawn, in which every sequence may have the full length (then the right mask is the
    # causal mask alone, and must pass: it did not, on 3 seeds in 1,000), and one with a padded sequence for sure,
    # so that an answer that ignores the padding fails on every seed.
    padded = rng.integers(1, T + 1, size=4)
    padded[0], padded[1] = T, rng.integers(1, T)
    for lengths in (torch.tensor(drawn), torch.tensor(padded)):
        _one_padding_mask(answer, lengths, T)


def _one_padding_mask(answer, lengths, T):
    B = len(lengths)
    real = torch.arange(T)[None, :] < lengths[:, None]  # (B, T): right padding
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    expected = causal[None] & real[:, None, :]  # (B, T_query, T_key)
    got = answer(lengths.clone(), T)
    if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
        raise Wrong("return a boolean tensor: True where a query position may attend to a key position; got "
                    f"{'a tensor of ' + str(got.dtype) if isinstance(got, torch.Tensor) else describe(got)}")
    expect_shape(got, (B, T, T), "the mask (batch, query, key)")
    if torch.equal(got, expected):  # first: with no padding in the batch, the right mask is the causal one
        return
    if torch.equal(got, causal.expand(B, T, T)):
        raise Wrong("that is the causal mask alone: the padding positions must not be attended to either")
    if torch.equal(got, causal[None] & real[:, :, None]):
        raise Wrong("the padding is masked on the query side: mask the keys (the columns), so that no real "
                    "token reads a padding position")
    b, i, j = (int(x) for x in (got != expected).nonzero()[0])
    raise Wrong(f"sequence {b} (length {int(lengths[b])}) of a batch padded to {T}: query {i} and key {j} should "
                f"be {'allowed' if expected[b, i, j] else 'masked'}")
