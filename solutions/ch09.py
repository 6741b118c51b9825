"""Chapter 9: reference solutions, and wrong answers the checks must catch."""
import numpy as np
import torch


def recall(confusion):
    return np.diag(confusion) / confusion.sum(axis=1)  # rows: the true class


def macro_f1(confusion):
    tp = np.diag(confusion)
    precision, recall_ = tp / confusion.sum(axis=0), tp / confusion.sum(axis=1)
    return float(np.mean(2 * precision * recall_ / (precision + recall_)))


def class_weights(labels, n_classes):
    counts = np.bincount(labels, minlength=n_classes)
    return len(labels) / (n_classes * counts)


def training_time(n_params, tokens, devices, peak_flops, mfu):
    return 6 * n_params * tokens / (devices * peak_flops * mfu)


def padding_mask(lengths, T):
    real = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # (T, T)
    return causal[None] & real[:, None, :]  # (B, query, key)


SOLUTIONS = {"ch09.recall": recall, "ch09.macro-f1": macro_f1, "ch09.class-weights": class_weights,
             "ch09.training-time": training_time, "ch09.padding-mask": padding_mask}


def _articles_recall(confusion):
    return np.diag(confusion) / confusion.sum(axis=0)  # the article's definition: precision


def _accuracy(confusion):
    return np.trace(confusion) / confusion.sum()


def _causal_only(lengths, T):
    return torch.ones(T, T, dtype=torch.bool).tril().expand(len(lengths), T, T)


WRONG = [("ch09.recall", _articles_recall, "that is precision"),
         ("ch09.macro-f1", _accuracy, "micro-F1"),
         ("ch09.class-weights", lambda labels, k: 1 / np.bincount(labels, minlength=k), "1/count"),
         ("ch09.training-time", lambda n, d, g, peak, mfu: 6 * n * d / (g * peak), "MFU"),
         ("ch09.padding-mask", _causal_only, "causal mask alone")]
