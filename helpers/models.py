"""The book's MNIST networks (introduced in chapter 6):
a hybrid net and its classical twin.

Both share one convolutional trunk that turns a 28x28 image into a single number. They
differ only in the head that turns that number into two class log-probabilities:

- ``HybridNet``: the number is the angle of a one-qubit circuit (H, then RY), whose
  measured expectation value <Z> sets the class probabilities.
- ``ClassicalNet``: the number is used directly as a logit.
"""

import torch
import torch.nn.functional as F
from qiskit.quantum_info import SparsePauliOp
from torch import nn

from helpers.circuits import one_qubit_circuit
from helpers.quantum import QuantumLayer

IMAGE_SHAPE = (1, 28, 28)
# How chapter 6 trains both networks (benchmarks/hybrid_mnist.py times the same run).
EPOCHS, BATCH_SIZE, LEARNING_RATE = 30, 25, 1e-3
# The smallest probability a head reports: log(EPS) bounds the loss of a confidently
# wrong prediction.
EPS = 1e-6


class ConvTrunk(nn.Module):
    """Two conv layers, then 320 -> 50 -> 1:
    one real number per image, shape (batch, 1).
    """

    def __init__(self, dropout=0.5):
        super().__init__()
        # 28x28 -> 10 maps of 24x24, pooled to 12x12
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        # -> 20 maps of 8x8, pooled to 4x4: 320 numbers
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        # silences whole feature maps of conv2 in training
        self.map_dropout = nn.Dropout2d(dropout)
        self.fc1 = nn.Linear(320, 50)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(50, 1)

    def forward(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"input must have shape (batch, 1, 28, 28), got {tuple(x.shape)}"
            )
        maps = F.relu(F.max_pool2d(self.conv1(x), kernel_size=2))
        maps = self.map_dropout(self.conv2(maps))
        maps = F.relu(F.max_pool2d(maps, kernel_size=2))
        hidden = F.relu(self.fc1(torch.flatten(maps, start_dim=1)))
        return self.fc2(self.drop(hidden))


def log_probs_from_z(z, eps=EPS):
    """Two class log-probabilities from <Z> in [-1, 1]: p(class 1) = (1 - <Z>)/2,
    p(class 0) = (1 + <Z>)/2.

    ``z`` has shape (batch, 1). Probabilities are clamped to [eps, 1 - eps] before the
    log, so a saturated circuit gives a large but finite loss instead of -inf.
    """
    p1 = ((1 - z) / 2).clamp(eps, 1 - eps)
    return torch.cat([torch.log1p(-p1), torch.log(p1)], dim=1)


class HybridNet(nn.Module):
    """``ConvTrunk`` -> one-qubit quantum layer (theta = the trunk's number, no weights)
    -> log-probabilities.

    The circuit H, RY(theta) has <Z> = -sin(theta); the output has shape (batch, 2),
    ready for ``F.nll_loss``. ``shots``, ``seed``, ``estimator`` and ``simulator`` are
    passed to ``QuantumLayer`` (default: exact Aer simulation).
    """

    def __init__(self, *, shots=None, seed=None, estimator=None, simulator="aer"):
        super().__init__()
        self.trunk = ConvTrunk()
        circuit, theta = one_qubit_circuit()
        self.quantum = QuantumLayer(
            circuit,
            [SparsePauliOp("Z")],
            [theta],
            shots=shots,
            seed=seed,
            estimator=estimator,
            simulator=simulator,
        )

    def forward(self, x):
        theta = self.trunk(x)
        return log_probs_from_z(self.quantum(theta))


class ClassicalNet(nn.Module):
    """``ConvTrunk`` -> its number used as the logit of class 1 -> log-probabilities,
    shape (batch, 2).
    """

    def __init__(self):
        super().__init__()
        self.trunk = ConvTrunk()

    def forward(self, x):
        logit = self.trunk(x)
        # log p(1) = log sigmoid(logit), log p(0) = log sigmoid(-logit): stable for any
        # logit.
        return torch.cat([F.logsigmoid(-logit), F.logsigmoid(logit)], dim=1)
