"""A parameterized Qiskit circuit as a PyTorch layer, with exact parameter-shift
gradients.

Used from chapter 3 on; chapter 5 builds a teaching copy and checks the two agree, and
appendix A walks through this package. One file per step:

1. ``rewrite``: ``shiftable_form`` rewrites the circuit so that every angle that depends
   on a trainable parameter sits in its own gate exp(-i a G), G with eigenvalues +-1/2,
   and computes the angles from the parameter values in PyTorch (one matrix product for
   affine angles, compiled expressions otherwise).
2. ``evaluators``: turn a batch of angle vectors into expectation values in one call:
   exact (Aer), sampled with real shots (Aer's sampler), or any ``BaseEstimatorV2``.
2b. ``statevector``: ``TorchStatevector``, an exact batched simulation in PyTorch on the
   angles' device, built from Qiskit's gate matrices; autograd differentiates through
   it (``QuantumLayer(..., simulator="torch")``), or it serves as an evaluator.
3. ``shift``: ``parameter_shift`` differentiates with respect to every angle by the
   two-term rule [f(a + s) - f(a - s)] / (2 sin s); when training, the batch and all its
   shifted points go to the evaluator together, in chunks of bounded size.
4. ``layer``: the autograd function and ``QuantumLayer``; autograd applies the chain
   rule through the angles, and differentiating a derivative applies the shift rule
   again (exact Hessians). With the torch simulator, backpropagation replaces the
   shift rule by default.
"""

from helpers.quantum.evaluators import (
    PACKED_QUBITS,
    Estimated,
    ExactAer,
    SampledAer,
    in_chunks,
)
from helpers.quantum.layer import (
    CHUNK_SIZE,
    GRADIENTS,
    SIMULATORS,
    CircuitRewrittenWarning,
    QuantumFunction,
    QuantumLayer,
)
from helpers.quantum.rewrite import TWO_TERM_GATES, ShiftableCircuit, shiftable_form
from helpers.quantum.shift import SHIFT, parameter_shift, shift_in_blocks
from helpers.quantum.statevector import TorchStatevector

__all__ = [
    "CHUNK_SIZE",
    "GRADIENTS",
    "PACKED_QUBITS",
    "SHIFT",
    "SIMULATORS",
    "TWO_TERM_GATES",
    "CircuitRewrittenWarning",
    "Estimated",
    "ExactAer",
    "QuantumFunction",
    "QuantumLayer",
    "SampledAer",
    "ShiftableCircuit",
    "TorchStatevector",
    "in_chunks",
    "parameter_shift",
    "shift_in_blocks",
    "shiftable_form",
]
