"""Chapter 4: reference solutions, and wrong answers the checks must catch."""
import torch
import torch.nn.functional as F


def sigmoid_derivative(x):
    s = torch.sigmoid(x)
    return s * (1 - s)


def tanh_layer_backward(x, W, b, grad_h):
    h = torch.tanh(x @ W.T + b)
    delta = grad_h * (1 - h**2)  # through the tanh
    return delta @ W, delta.T @ x, delta.sum(0)


def adam_step(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


def sgns_loss(center, context, negatives):
    return -F.logsigmoid(center @ context) - F.logsigmoid(-(negatives @ center)).sum()


SOLUTIONS = {"ch04.sigmoid-derivative": sigmoid_derivative, "ch04.tanh-layer-backward": tanh_layer_backward,
             "ch04.adam-bias-correction": adam_step, "ch04.sgns-loss": sgns_loss}


def _no_tanh(x, W, b, grad_h):
    return grad_h @ W, grad_h.T @ x, grad_h.sum(0)


def _no_bias_correction(param, grad, m, v, t, lr, beta1, beta2, eps):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return param - lr * m / (v.sqrt() + eps), m, v


def _pulls_negatives(center, context, negatives):
    return -F.logsigmoid(center @ context) - F.logsigmoid(negatives @ center).sum()


WRONG = [("ch04.sigmoid-derivative", torch.sigmoid, "σ(x) itself"),
         ("ch04.tanh-layer-backward", _no_tanh, "ignores the tanh"),
         ("ch04.adam-bias-correction", _no_bias_correction, "bias correction"),
         ("ch04.sgns-loss", _pulls_negatives, "pulled closer")]
