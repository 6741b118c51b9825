"""Chapter 5: reference solutions, and wrong answers the checks must catch."""
import math

import torch


def one_hot_bytes(n_labels, vocab_size):
    return 4 * n_labels * vocab_size  # one float32 per word of the vocabulary, per label


def bits_per_char(loss_nats_per_token, chars_per_token):
    return loss_nats_per_token / math.log(2) / chars_per_token


def lstm_cell(x, h, c, weight_ih, weight_hh, bias):
    gates = x @ weight_ih.T + h @ weight_hh.T + bias  # (B, 4H): input, forget, cell, output
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gpt_params(vocab_size, block_size, n_layer, n_embd):
    embeddings = vocab_size * n_embd + block_size * n_embd  # the output layer reuses the token embedding
    block = 2 * n_embd + 3 * n_embd**2 + n_embd**2 + 2 * 4 * n_embd**2  # two norms, attention, MLP
    return embeddings + n_layer * block + n_embd  # and the final norm


SOLUTIONS = {"ch05.one-hot-bytes": one_hot_bytes, "ch05.bits-per-char": bits_per_char, "ch05.lstm-cell": lstm_cell,
             "ch05.gpt-params": gpt_params}


def _gates_in_another_order(x, h, c, weight_ih, weight_hh, bias):
    gates = x @ weight_ih.T + h @ weight_hh.T + bias
    f, i, g, o = gates.chunk(4, dim=1)  # forget first, as some write it: not PyTorch's layout
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _untied(vocab_size, block_size, n_layer, n_embd):
    return gpt_params(vocab_size, block_size, n_layer, n_embd) + vocab_size * n_embd


WRONG = [("ch05.one-hot-bytes", lambda n, v: n * v, "4 bytes"),
         ("ch05.bits-per-char", lambda loss, cpt: loss / math.log(2), "bits per token"),
         ("ch05.bits-per-char", lambda loss, cpt: loss / cpt, "nats per character"),
         ("ch05.lstm-cell", _gates_in_another_order, "PyTorch's order"),
         ("ch05.gpt-params", _untied, "weight tying")]
