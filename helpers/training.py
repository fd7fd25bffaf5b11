"""Minibatch training and evaluation
(introduced in chapter 1, used in chapters 2 and 6).
"""

import torch

BAR_WIDTH = 10


def progress_line(desc, epoch, epochs, loss):
    """One line of ``fit``'s progress: a text bar and the latest epoch's loss.

    It holds nothing that depends on the machine (no rates, no times), so the line a
    finished run leaves is the same on every run with the same seed.
    """
    filled = round(BAR_WIDTH * epoch / epochs)
    bar = "█" * filled + "·" * (BAR_WIDTH - filled)
    return f"{desc} {bar} epoch {epoch}/{epochs}, loss {loss:.4f}"


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

    Shuffling draws from torch's seeded generator. Unless ``progress=False``, one
    line redrawn after each epoch shows how far it is. Returns the mean training loss
    of each epoch.
    """
    _check(x, y, epochs, batch_size)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(1, epochs + 1):
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
        if progress:
            # "\r" redraws the line in place, in a notebook as in a terminal.
            end = "\n" if epoch == epochs else ""
            line = progress_line(desc, epoch, epochs, history[-1])
            print(f"\r{line}", end=end, flush=True)
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
