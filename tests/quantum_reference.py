"""Independent references and small tools shared by the tests of ``helpers.quantum``.

Reference values never come from the code under test: they are closed forms, central
finite differences, or an independent state-vector computation with
``qiskit.quantum_info.Statevector``.
"""

import math

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import (
    CRXGate,
    CU3Gate,
    GlobalPhaseGate,
    PauliEvolutionGate,
    RXGate,
    U2Gate,
    U3Gate,
    XXMinusYYGate,
    XXPlusYYGate,
)
from qiskit.quantum_info import SparsePauliOp, Statevector

from helpers.quantum import QuantumLayer

SIGMAS = 5.0  # statistical tolerance, in standard errors
a, b, c, d = (Parameter(name) for name in "abcd")

# --------------------------------------------------------------------------------------
# Independent references and small tools
# --------------------------------------------------------------------------------------


def sv_expectations(circuit, observables, params, values):
    """<O> for each observable, from Qiskit's Statevector of the circuit with
    ``params = values``.
    """
    state = Statevector(
        circuit.assign_parameters(dict(zip(params, [float(v) for v in values])))
    )
    return np.array([state.expectation_value(obs).real for obs in observables])


def sv_gradient(circuit, observables, params, values, h=1e-5):
    """Central finite differences of ``sv_expectations``: shape
    (params, observables).
    """
    rows = []
    for k in range(len(values)):
        up, down = np.array(values, float), np.array(values, float)
        up[k] += h
        down[k] -= h
        rows.append(
            (
                sv_expectations(circuit, observables, params, up)
                - sv_expectations(circuit, observables, params, down)
            )
            / (2 * h)
        )
    return np.array(rows)


def make_layer(circuit, observables, inputs, weights=(), weight_values=None, **kwargs):
    """A float64 layer with the given weight values."""
    layer = QuantumLayer(circuit, observables, inputs, weights, **kwargs).double()
    if weight_values is not None:
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(weight_values, dtype=torch.float64))
    return layer


def jacobians(layer, x):
    """Autograd Jacobians: d y[b, o] / d x[b, i] as (batch, outputs, inputs) and
    d sum_b y[b, o] / d w as (outputs, weights)."""
    x = x.detach().clone().requires_grad_(True)
    y = layer(x)
    dx, dw = [], []
    for o in range(y.shape[1]):
        gx, gw = torch.autograd.grad(
            y[:, o].sum(), [x, layer.weight], retain_graph=True
        )
        dx.append(gx)
        dw.append(gw)
    return torch.stack(dx, 1).numpy(), torch.stack(dw).numpy()


class Counter:
    """Wraps an evaluator; records the shape of every batch of angle vectors it is
    called with.
    """

    def __init__(self, evaluate):
        self.evaluate, self.shapes = evaluate, []

    def __call__(self, angles):
        self.shapes.append(np.shape(angles))
        return self.evaluate(angles)


def rand(shape, seed, low=-math.pi, high=math.pi):
    return np.random.default_rng(seed).uniform(low, high, shape)


def one_qubit(*gates):
    """A one-qubit circuit made of the given (method, *args) gates."""
    qc = QuantumCircuit(1)
    for name, *args in gates:
        getattr(qc, name)(*args)
    return qc


Z, X, Y = SparsePauliOp("Z"), SparsePauliOp("X"), SparsePauliOp("Y")


def entangling_circuit():
    """Three qubits, two inputs and four weights; parameters used several times, scaled
    and offset.
    """
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.ry(a, 0)
    qc.rx(2 * b + 0.5, 1)
    qc.cx(0, 1)
    qc.crz(c, 1, 2)
    qc.rzz(d - a, 0, 2)
    qc.u(c, -b / 2, 1.0, 2)
    w = Parameter("w")
    qc.rxx(w, 1, 2)
    qc.cry(a, 2, 0)
    qc.ry(w, 1)
    return qc, [a, b], [c, d, w]


ENTANGLING_OBSERVABLES = [
    SparsePauliOp("ZII"),
    SparsePauliOp.from_list(
        [("XYZ", 0.5), ("ZZI", -0.3), ("IIX", 0.7), ("YIY", 0.2), ("III", 0.25)]
    ),
    SparsePauliOp("IYI"),
]

ENTANGLING_WEIGHTS = [0.3, -0.8, 1.9]


def entangling_layer(**kwargs):
    """The entangling circuit as a float64 layer with ``ENTANGLING_WEIGHTS``."""
    qc, inputs, weights = entangling_circuit()
    return make_layer(
        qc,
        ENTANGLING_OBSERVABLES,
        inputs,
        weights,
        weight_values=ENTANGLING_WEIGHTS,
        **kwargs,
    )


def _prep(n):
    qc = QuantumCircuit(n)
    qc.h(range(n))
    qc.ry(b, 0)  # b is always a weight; makes the states generic
    return qc


def _case(n, build):
    qc = _prep(n)
    build(qc)
    return qc


_inner = QuantumCircuit(2, name="block")
_inner.ry(a, 0)
_inner.cx(0, 1)
_inner.crz(2 * c, 1, 0)
_inner.u(a, c, a, 1)
_outer = QuantumCircuit(3, name="outer")
_outer.append(_inner.to_gate(), [2, 0])
_outer.rx(c, 1)
_phase_inner = QuantumCircuit(1, global_phase=a)
_phase_inner.rx(c, 0)

SUPPORTED_CASES = {
    "rx-ry-rz-p": (
        2,
        lambda q: (q.rx(a, 0), q.ry(c, 1), q.rz(a, 0), q.cx(0, 1), q.p(c, 1)),
    ),
    "same-param-several-gates": (
        2,
        lambda q: (q.ry(a, 0), q.cx(0, 1), q.rz(2 * a + 1, 1), q.rx(-a / 2, 0)),
    ),
    "u(a,a,0)": (1, lambda q: q.u(a, a, 0, 0)),
    "u(a,c,-a/2)": (1, lambda q: q.u(a, c, -a / 2, 0)),
    "u(c,a+c,3a)": (1, lambda q: q.u(c, a + c, 3 * a, 0)),
    "u1": (1, lambda q: q.p(a, 0)),
    "u2": (1, lambda q: q.append(U2Gate(a, 2 * a - c), [0])),
    "u3": (1, lambda q: q.append(U3Gate(a, c, a), [0])),
    "r": (1, lambda q: q.r(a, c, 0)),
    "crx": (2, lambda q: q.crx(a, 0, 1)),
    "cry(-a/2)": (2, lambda q: q.cry(-a / 2, 0, 1)),
    "crz(2a+1)": (2, lambda q: q.crz(2 * a + 1, 0, 1)),
    "crx-open-control": (2, lambda q: q.append(CRXGate(a, ctrl_state=0), [0, 1])),
    "cu": (2, lambda q: q.cu(a, c, 2 * a, -c, 0, 1)),
    "cu3": (2, lambda q: q.append(CU3Gate(a, c, a), [0, 1])),
    "rxx": (2, lambda q: q.rxx(a, 0, 1)),
    "ryy": (2, lambda q: q.ryy(a, 1, 0)),
    "rzz": (2, lambda q: q.rzz(a, 0, 1)),
    "rzx": (2, lambda q: q.rzx(a, 1, 0)),
    "xx_plus_yy": (2, lambda q: q.append(XXPlusYYGate(a, c), [0, 1])),
    "xx_minus_yy": (2, lambda q: q.append(XXMinusYYGate(a, c), [0, 1])),
    "mcrx": (3, lambda q: q.mcrx(a, [0, 1], 2)),
    "mcry": (3, lambda q: q.mcry(a, [0, 2], 1)),
    "mcrz": (3, lambda q: q.mcrz(a, [0, 1], 2)),
    "rx.control(2)": (
        3,
        lambda q: q.append(RXGate(a).control(2, annotated=False), [0, 1, 2]),
    ),
    "pauli-evolution-XY": (
        2,
        lambda q: q.append(PauliEvolutionGate(SparsePauliOp("XY"), time=a), [0, 1]),
    ),
    "pauli-evolution-commuting": (
        2,
        lambda q: q.append(
            PauliEvolutionGate(
                SparsePauliOp(["ZZ", "ZI", "IX"], [0.5, -0.7, 0.0]), time=2 * a
            ),
            [0, 1],
        ),
    ),
    "global-phase-and-gate": (
        1,
        lambda q: (q.rx(a, 0), setattr(q, "global_phase", c)),
    ),
    "global-phase-gate": (
        1,
        lambda q: (q.rx(a, 0), q.append(GlobalPhaseGate(c), [])),
    ),
    "custom-composite": (2, lambda q: q.append(_inner.to_gate(), [1, 0])),
    "nested-composite": (3, lambda q: q.append(_outer.to_gate(), [1, 2, 0])),
    "controlled-composite-with-phase": (
        2,
        lambda q: q.append(_phase_inner.to_gate().control(1), [0, 1]),
    ),
    "barrier-and-fixed-unitary": (
        1,
        lambda q: (
            q.barrier(),
            q.unitary(np.array([[0, 1], [1, 0]]), [0]),
            q.rx(a, 0),
        ),
    ),
}


def _observables(n):
    return [
        SparsePauliOp("Z" * n),
        SparsePauliOp.from_list(
            [("X" * n, 0.5), ("Y" + "Z" * (n - 1), -0.3), ("I" * n, 0.2)]
        ),
        SparsePauliOp("I" * (n - 1) + "Y"),
    ]


def assert_exact_against_statevector(qc, observables, rows=2, seed=0):
    """The layer (input a; weights: the other parameters) matches Statevector values and
    FD gradients.
    """
    params = sorted(qc.parameters, key=lambda p: p.name)
    weights = [p for p in params if p != a]
    values_w = rand(len(weights), seed=seed + 100, low=-2, high=2)
    layer = make_layer(qc, observables, [a], weights, weight_values=values_w)
    xs = rand((rows, 1), seed=seed, low=-2, high=2)
    x = torch.tensor(xs)
    y = layer(x).detach().numpy()
    dx, dw = jacobians(layer, x)
    ref_dw = np.zeros_like(dw)
    for row in range(rows):
        allv = np.concatenate([xs[row], values_w])
        np.testing.assert_allclose(
            y[row], sv_expectations(qc, observables, [a] + weights, allv), atol=1e-9
        )
        grad = sv_gradient(qc, observables, [a] + weights, allv)
        np.testing.assert_allclose(dx[row, :, 0], grad[0], atol=1e-7)
        ref_dw += grad[1:].T
    np.testing.assert_allclose(dw, ref_dw, atol=1e-7)


THETAS = torch.tensor(
    [[-2.5], [-1.0], [0.0], [0.4], [1.0], [math.pi / 2], [3.0]], dtype=torch.float64
)
