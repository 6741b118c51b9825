"""Chapter 3: reference solutions, and wrong answers the checks must catch."""
import torch


def char_encode(text):
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return [index[c] for c in text]


def cross_entropy(logits, targets):
    shifted = logits - logits.max(dim=-1, keepdim=True).values  # log-sum-exp without overflow
    log_probs = shifted - shifted.exp().sum(dim=-1, keepdim=True).log()
    return -log_probs.gather(-1, targets.unsqueeze(-1)).mean()


def embedding_gradient(ids, upstream, vocab_size):
    grad = torch.zeros(vocab_size, upstream.size(1), dtype=upstream.dtype)
    return grad.index_add(0, ids, upstream)


SOLUTIONS = {"ch03.char-encode": char_encode, "ch03.cross-entropy": cross_entropy,
             "ch03.embedding-gradient": embedding_gradient}


def _first_seen_order(text):
    vocab = list(dict.fromkeys(text))
    return [vocab.index(c) for c in text]


def _naive_cross_entropy(logits, targets):
    probs = logits.exp() / logits.exp().sum(dim=-1, keepdim=True)
    return -probs.gather(-1, targets.unsqueeze(-1)).log().mean()


def _overwrite(ids, upstream, vocab_size):
    grad = torch.zeros(vocab_size, upstream.size(1), dtype=upstream.dtype)
    grad[ids] = upstream  # a repeated id keeps only one of its gradients
    return grad


WRONG = [("ch03.char-encode", _first_seen_order, "sorted order"),
         ("ch03.cross-entropy", _naive_cross_entropy, "subtract each row's maximum"),
         ("ch03.embedding-gradient", _overwrite, "adds up the gradients")]
