"""Class imbalance: rebalance a training set, or weight its loss (chapter 9, on chapter 6's genres).

A classifier trained on imbalanced classes learns that the big classes are the likely answer, and
it is right to: that lowers the average loss. What it costs is the small classes' recall. The four
remedies of the article's §9.2, each one call here:

    X, y = resample(features, labels, "oversample", seed)    # or "none", "undersample", "smote"
    weights = balanced_class_weights(labels, n_classes)        # for a class-weighted loss instead

- **random oversampling** repeats minority examples, drawn with replacement, until every class is as
  large as the largest; nothing new is learned from them, but they count as often as the majority's;
- **random undersampling** drops majority examples until every class is as small as the smallest:
  balanced, at the price of the data thrown away;
- **SMOTE** (Chawla et al. 2002) makes new minority examples on the straight line between one and
  one of its k nearest neighbours of the same class. It needs vectors that can be interpolated: the
  pooled features of a passage, never its characters (the middle of two passages' token ids is no text);
- **class weights** leave the data alone and multiply each example's loss by its class's weight,
  n / (k x n_c) for n examples, k classes and n_c of the class (scikit-learn's "balanced"): in
  expectation the same gradient as oversampling, without the copies.

The resamplers are imbalanced-learn's (`RandomOverSampler`, `RandomUnderSampler`, `SMOTE`), seeded.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLERS: tuple[str, ...] = ("none", "oversample", "undersample", "smote")


def resample(features: np.ndarray, labels: np.ndarray, method: str, seed: int = 0,
             smote_neighbours: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) rebalanced by `method` (one of RESAMPLERS; "none" returns them unchanged).

    `features` is (N, F): one vector per example (a resampler only ever picks rows, except SMOTE,
    which also makes new ones between rows); `labels` is (N,) ints. Every class ends as large as the
    largest (oversample, smote) or as the smallest (undersample).
    """
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim != 2 or labels.ndim != 1 or len(features) != len(labels):
        raise ValueError(f"features must be (N, F) and labels (N,) with the same N; got {features.shape} and "
                         f"{labels.shape}")
    if method not in RESAMPLERS:
        raise ValueError(f"unknown resampling method {method!r}; choose one of: {', '.join(RESAMPLERS)}")
    if method == "none":
        return features, labels
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    if method == "smote":
        smallest = int(np.bincount(labels)[np.unique(labels)].min())
        if smallest <= smote_neighbours:
            raise ValueError(f"SMOTE with {smote_neighbours} neighbours needs more than that many examples of "
                             f"every class; the smallest class has {smallest}: use fewer neighbours or more data")
        sampler = SMOTE(k_neighbors=smote_neighbours, random_state=seed)
    elif method == "oversample":
        sampler = RandomOverSampler(random_state=seed)
    else:
        sampler = RandomUnderSampler(random_state=seed)
    return sampler.fit_resample(features, labels)


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One weight per class, n / (n_classes x n_c): a class's examples together weigh as much as any
    other's (scikit-learn's `compute_class_weight("balanced")`). Every class must occur."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes)
    if len(counts) > n_classes:
        raise ValueError(f"labels go up to {len(counts) - 1}, beyond the {n_classes} classes")
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0).tolist()
        raise ValueError(f"class(es) {missing} have no example: a weight for them would be infinite")
    return counts.sum() / (n_classes * counts)


def keep_fraction(labels: np.ndarray, of_class: int, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of every example, less all but `fraction` of class `of_class` (drawn with
    `seed`, at least one kept): to make a class rarer than the data has it, on purpose."""
    labels = np.asarray(labels)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    members = np.flatnonzero(labels == of_class)
    if len(members) == 0:
        raise ValueError(f"class {of_class} has no example to keep")
    kept = np.random.default_rng(seed).choice(members, size=max(1, round(fraction * len(members))), replace=False)
    return np.sort(np.concatenate([np.flatnonzero(labels != of_class), kept]))


def class_counts(labels: np.ndarray, names: Sequence[str]) -> dict[str, int]:
    """Examples per class, by name (every class listed, also those with none)."""
    counts = np.bincount(np.asarray(labels), minlength=len(names))
    return {name: int(count) for name, count in zip(names, counts)}
