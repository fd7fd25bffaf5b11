import os
import random

import numpy as np
import pytest
import torch

from helpers.reproducibility import seed_everything


def draw():
    return random.random(), np.random.rand(), torch.rand(3).tolist()


def test_same_seed_same_numbers_everywhere():
    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first
    seed_everything(8)
    assert draw() != first


def test_returns_the_seed_and_makes_torch_deterministic():
    assert seed_everything(3) == 3
    assert torch.are_deterministic_algorithms_enabled()
    # what deterministic mode needs on a CUDA device
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")


@pytest.mark.parametrize("seed", [-1, 1.5, "1", True, None])
def test_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(seed)
