"""Chapter 4's exercises: a sigmoid's derivative, a layer's backward pass, Adam with bias correction,
and the skip-gram negative-sampling loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Wrong, describe, expect_close, expect_shape, exercise


@exercise("ch04.sigmoid-derivative", "the derivative of the sigmoid", level=1)
def _sigmoid_derivative(answer, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(20, generator=g, dtype=torch.float64) * 3).requires_grad_()
    torch.sigmoid(x).sum().backward()
    raw = answer(x.detach().clone())
    got = expect_shape(raw, (20,), "σ'(x)")
    if torch.allclose(got, torch.sigmoid(x.detach())):
        raise Wrong("that is σ(x) itself; differentiate it")
    expect_close(raw, x.grad, "σ'(x)")


@exercise("ch04.tanh-layer-backward", "one layer's backward pass, by hand", level=2)
def _layer_backward(answer, seed):
    g = torch.Generator().manual_seed(seed)
    N, n_in, n_out = 6, 5, 3
    x = torch.randn(N, n_in, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(n_out, n_in, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n_out, generator=g, dtype=torch.float64, requires_grad=True)
    grad_h = torch.randn(N, n_out, generator=g, dtype=torch.float64)
    h = torch.tanh(x @ W.T + b)
    h.backward(grad_h)
    got = answer(x.detach().clone(), W.detach().clone(), b.detach().clone(), grad_h.clone())
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        raise Wrong(f"return three tensors: (grad_x, grad_W, grad_b); got {describe(got)}")
    grad_x, grad_W, grad_b = got
    no_tanh = grad_h.T @ x.detach()
    if torch.allclose(expect_shape(grad_W, (n_out, n_in), "grad_W"), no_tanh):
        raise Wrong("grad_W ignores the tanh: multiply the incoming gradient by tanh'(z) = 1 - h² first")
    expect_close(grad_b, b.grad, "grad_b")
    expect_close(grad_W, W.grad, "grad_W")
    expect_close(grad_x, x.grad, "grad_x")


@exercise("ch04.adam-bias-correction", "Adam's update with bias correction", level=2)
def _adam(answer, seed):
    g = torch.Generator().manual_seed(seed)
    target = torch.randn(5, generator=g, dtype=torch.float64) * 10
    start = torch.randn(5, generator=g, dtype=torch.float64)
    lr, beta1, beta2, eps = 0.05, 0.9, 0.999, 1e-8
    param = start.clone().requires_grad_()
    optimizer = torch.optim.Adam([param], lr=lr, betas=(beta1, beta2), eps=eps)
    mine, m, v = start.clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for t in range(1, 6):
        optimizer.zero_grad()
        ((param - target) ** 2).sum().backward()
        grad = 2 * (mine - target)  # the same loss's gradient at the learner's parameters
        optimizer.step()
        out = answer(mine.clone(), grad.clone(), m.clone(), v.clone(), t, lr, beta1, beta2, eps)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Wrong(f"return (new_param, new_m, new_v); got {describe(out)}")
        names = ("new_param", "new_m", "new_v")
        mine, m, v = (expect_shape(x, (5,), f"{name} after step {t}") for x, name in zip(out, names))
        if t == 1:
            raw = start - lr * (1 - beta1) * grad / ((((1 - beta2) * grad**2).sqrt()) + eps)
            if torch.allclose(mine, raw):
                raise Wrong("step 1 moved too little: without bias correction m and v start near 0; divide m by "
                            "(1 - beta1^t) and v by (1 - beta2^t)")
        expect_close(mine, param.detach(), f"the parameters after step {t}", rtol=1e-9, atol=1e-10)


@exercise("ch04.sgns-loss", "the skip-gram negative-sampling loss", level=3)
def _sgns(answer, seed):
    g = torch.Generator().manual_seed(seed)
    C, K = 8, 5
    center, context = torch.randn(C, generator=g, dtype=torch.float64), torch.randn(C, generator=g, dtype=torch.float64)
    negatives = torch.randn(K, C, generator=g, dtype=torch.float64)
    expected = -F.logsigmoid(center @ context) - F.logsigmoid(-(negatives @ center)).sum()
    raw = answer(center.clone(), context.clone(), negatives.clone())
    got = expect_shape(raw, (), "the loss")
    flipped = -F.logsigmoid(center @ context) - F.logsigmoid(negatives @ center).sum()
    if torch.allclose(got, flipped):
        raise Wrong("the negatives are pulled closer: their term is log σ(-u·n), not log σ(u·n)")
    softmax = -torch.log_softmax(torch.cat([(center @ context)[None], negatives @ center]), 0)[0]
    if torch.allclose(got, softmax):
        raise Wrong("that is a softmax over the context and the negatives; negative sampling scores each pair "
                    "on its own with a sigmoid (erratum 5)")
    expect_close(raw, expected, "the loss")
