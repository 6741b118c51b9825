"""Chapter 2: reference solutions, and wrong answers the checks must catch."""
import torch
import torch.nn.functional as F


def global_grad_norm(grads):
    return sum((g**2).sum() for g in grads).sqrt().item()


def clip_gradients(grads, max_norm):
    total = global_grad_norm(grads)
    scale = min(1.0, max_norm / (total + 1e-6))  # what torch.nn.utils.clip_grad_norm_ does
    return [g * scale for g in grads]


def loop_with_clipping(model, batches, lr, max_norm):
    losses = []
    for x, y in batches:
        loss = F.mse_loss(model(x), y)
        model.zero_grad()
        loss.backward()
        grads = clip_gradients([p.grad for p in model.parameters()], max_norm)
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= lr * g
        losses.append(loss.item())
    return losses


SOLUTIONS = {"ch02.global-grad-norm": global_grad_norm, "ch02.clip-gradients": clip_gradients,
             "ch02.loop-with-clipping": loop_with_clipping}


def _per_tensor(grads, max_norm):
    return [g * min(1.0, max_norm / (g.norm().item() + 1e-6)) for g in grads]


def _no_clipping(model, batches, lr, max_norm):
    return loop_with_clipping(model, batches, lr, 1e12)


WRONG = [("ch02.global-grad-norm", lambda grads: sum(g.norm().item() for g in grads), "norm of all the gradients"),
         ("ch02.global-grad-norm", lambda grads: sum((g**2).sum() for g in grads).item(), "square root"),
         ("ch02.clip-gradients", _per_tensor, "one factor"),
         ("ch02.loop-with-clipping", _no_clipping, "without clipping")]
