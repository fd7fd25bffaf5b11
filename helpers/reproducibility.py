"""Seeding, so that every run of a chapter prints the same numbers.

Every chapter calls ``seed_everything`` in its first cell; the front page "How this
book runs" explains what it does and why.
"""

import os
import random

import numpy as np
import torch

DEFAULT_SEED = 1234


def seed_everything(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy and PyTorch, and make PyTorch pick deterministic kernels.

    Returns the seed, so a chapter can print or reuse it.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    # On a GPU, cuBLAS runs deterministically only with this set before its first use.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # One thread: results then do not depend on the core count, and the book's small
    # models and Aer's simulations run faster than with threads that wait on each other.
    torch.set_num_threads(1)
    return seed
