"""Minibatch training and evaluation
(introduced in chapter 1, used in chapters 2 and 6).
"""

import torch
from tqdm.auto import tqdm


def _check(x, y, epochs, batch_size):
    if len(x) != len(y):
        raise ValueError(
            f"x and y must have the same length, got {len(x)} and {len(y)}"
        )
    if len(x) == 0:
        raise ValueError("no training data")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def fit(
    model,
    x,
    y,
    loss_fn,
    *,
    epochs,
    batch_size,
    lr=1e-3,
    optimizer=None,
    progress=True,
    desc="training",
):
    """Train ``model`` on ``(x, y)`` with shuffled minibatches (Adam at ``lr`` unless
    ``optimizer`` is given).

    Shuffling draws from torch's seeded generator. Returns the mean training loss of
    each epoch.
    """
    _check(x, y, epochs, batch_size)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    bar = tqdm(range(epochs), desc=desc, disable=not progress)
    for _ in bar:
        model.train()
        order = torch.randperm(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        history.append(total / len(x))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    return history


@torch.no_grad()
def predict(model, x, batch_size=512):
    """The model's outputs for ``x`` in evaluation mode (dropout off),
    without gradients.
    """
    model.eval()
    return torch.cat(
        [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    )


def predicted_classes(outputs):
    """Class predictions from outputs: argmax over columns,
    or ``logit > 0`` for a single column.
    """
    if outputs.dim() == 2 and outputs.shape[1] > 1:
        return outputs.argmax(dim=1)
    return (outputs.reshape(-1) > 0).long()


def accuracy(model, x, y):
    """Fraction of ``x`` that the model classifies as ``y`` (outputs: logits or
    log-probabilities).
    """
    return (predicted_classes(predict(model, x)) == y).float().mean().item()
