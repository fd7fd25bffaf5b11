"""A randomized test of the whole layer: 200 random parameterized circuits of 1-4
qubits, drawn with fixed seeds from Qiskit's standard gate library (controlled and
multi-qubit rotations included), with shared parameters, non-affine angle expressions
and nested sub-circuits. Each is checked against Qiskit's ``Statevector`` (values to
1e-10) and central finite differences of it (gradients to 1e-6); the same layer with
``simulator="torch"`` (backpropagation) must match Statevector's values and the Aer
layer's gradients to 1e-10.
"""

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Gate, ParameterVector
from qiskit.circuit.library import XXMinusYYGate, XXPlusYYGate
from qiskit.quantum_info import SparsePauliOp

from quantum_reference import jacobians, make_layer, sv_expectations, sv_gradient

CIRCUITS = 200
ROWS = 2

# (qubits, number of angles, how to append): every gate family the layer treats
# differently.
GATES = [
    (1, 1, lambda q, t, w: q.rx(t[0], w[0])),
    (1, 1, lambda q, t, w: q.ry(t[0], w[0])),
    (1, 1, lambda q, t, w: q.rz(t[0], w[0])),
    (1, 1, lambda q, t, w: q.p(t[0], w[0])),
    (1, 3, lambda q, t, w: q.u(t[0], t[1], t[2], w[0])),
    (1, 2, lambda q, t, w: q.r(t[0], t[1], w[0])),
    (2, 1, lambda q, t, w: q.rxx(t[0], w[0], w[1])),
    (2, 1, lambda q, t, w: q.ryy(t[0], w[0], w[1])),
    (2, 1, lambda q, t, w: q.rzz(t[0], w[0], w[1])),
    (2, 1, lambda q, t, w: q.rzx(t[0], w[0], w[1])),
    (2, 1, lambda q, t, w: q.crx(t[0], w[0], w[1])),
    (2, 1, lambda q, t, w: q.cry(t[0], w[0], w[1])),
    (2, 1, lambda q, t, w: q.crz(t[0], w[0], w[1])),
    (2, 1, lambda q, t, w: q.cp(t[0], w[0], w[1])),
    (2, 4, lambda q, t, w: q.cu(t[0], t[1], t[2], t[3], w[0], w[1])),
    (2, 2, lambda q, t, w: q.append(XXPlusYYGate(t[0], t[1]), [w[0], w[1]])),
    (2, 2, lambda q, t, w: q.append(XXMinusYYGate(t[0], t[1]), [w[0], w[1]])),
    (3, 1, lambda q, t, w: q.mcrx(t[0], [w[0], w[1]], w[2])),
    (3, 1, lambda q, t, w: q.mcry(t[0], [w[0], w[1]], w[2])),
    (3, 1, lambda q, t, w: q.mcrz(t[0], [w[0], w[1]], w[2])),
    (3, 1, lambda q, t, w: q.mcp(t[0], [w[0], w[1]], w[2])),
]
FIXED = [
    (1, lambda q, w: q.h(w[0])),
    (1, lambda q, w: q.sx(w[0])),
    (1, lambda q, w: q.t(w[0])),
    (2, lambda q, w: q.cx(w[0], w[1])),
    (2, lambda q, w: q.cz(w[0], w[1])),
    (2, lambda q, w: q.ch(w[0], w[1])),
    (2, lambda q, w: q.iswap(w[0], w[1])),
    (3, lambda q, w: q.ccx(w[0], w[1], w[2])),
]


def random_angle(rng, params):
    """An angle built from the shared parameters: affine, a product, or a smooth
    function.
    """
    p, q = rng.choice(len(params), 2)
    x, y = params[p], params[q]
    kind = rng.integers(7)
    scale, offset = float(rng.uniform(-2, 2)), float(rng.uniform(-1, 1))
    return [
        x,
        scale * x + offset,
        x + y,
        x * y,
        x.sin() * scale,
        (x * scale).cos() + y,
        2 * (np.pi - x) * (np.pi - y),
    ][kind]


def random_block(rng, qubits, params, depth):
    qc = QuantumCircuit(qubits)
    for _ in range(int(rng.integers(2, 6))):
        # a nested sub-circuit, as a gate or an instruction
        if depth < 2 and qubits > 1 and rng.random() < 0.15:
            size = int(rng.integers(1, qubits + 1))
            block = random_block(rng, size, params, depth + 1)
            wires = [int(w) for w in rng.permutation(qubits)[:size]]
            all_gates = all(isinstance(i.operation, Gate) for i in block.data)
            qc.append(
                block.to_gate()
                if all_gates and rng.random() < 0.5
                else block.to_instruction(),
                wires,
            )
        elif rng.random() < 0.3:
            width, build = FIXED[rng.integers(len(FIXED))]
            if width <= qubits:
                build(qc, [int(w) for w in rng.permutation(qubits)[:width]])
        else:
            width, n_angles, build = GATES[rng.integers(len(GATES))]
            if width <= qubits:
                build(
                    qc,
                    [random_angle(rng, params) for _ in range(n_angles)],
                    [int(w) for w in rng.permutation(qubits)[:width]],
                )
    return qc


def random_case(seed):
    rng = np.random.default_rng(seed)
    qubits = int(rng.integers(1, 5))
    params = list(ParameterVector(f"p{seed}", int(rng.integers(1, 5))))
    qc = QuantumCircuit(qubits)
    qc.ry(params[0], 0)  # every parameter is used at least once
    for k, p in enumerate(params[1:], 1):
        qc.rx(p, k % qubits)
    qc.compose(random_block(rng, qubits, params, 0), inplace=True)
    inputs = params[: int(rng.integers(1, len(params) + 1))]
    weights = params[len(inputs) :]
    labels = ["".join(rng.choice(list("IXYZ"), qubits)) for _ in range(3)]
    observables = [
        SparsePauliOp(labels[0]),
        SparsePauliOp(labels[1:], rng.uniform(-1, 1, 2)),
    ]
    return qc, observables, inputs, weights, rng


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
@pytest.mark.parametrize("block", range(10))
def test_random_circuits_match_statevector(block):
    """Ten blocks of twenty circuits each, so that a failure names its block and the
    seed inside it.
    """
    for seed in range(block * CIRCUITS // 10, (block + 1) * CIRCUITS // 10):
        qc, observables, inputs, weights, rng = random_case(seed)
        w = rng.uniform(-np.pi, np.pi, len(weights))
        layer = make_layer(qc, observables, inputs, weights, weight_values=w)
        xs = rng.uniform(-np.pi, np.pi, (ROWS, len(inputs)))
        x = torch.tensor(xs)
        y = layer(x).detach().numpy()
        dx, dw = jacobians(layer, x)
        torch_layer = make_layer(
            qc, observables, inputs, weights, weight_values=w, simulator="torch"
        )
        y_torch = torch_layer(x).detach().numpy()
        dx_torch, dw_torch = jacobians(torch_layer, x)
        for name, got, expected in (("input", dx_torch, dx), ("weight", dw_torch, dw)):
            np.testing.assert_allclose(
                got,
                expected,
                rtol=0,
                atol=1e-10,
                err_msg=f"torch {name} gradient, seed {seed}",
            )
        params = inputs + weights
        reference_dw = np.zeros_like(dw)
        for row in range(ROWS):
            values = np.concatenate([xs[row], w])
            expected = sv_expectations(qc, observables, params, values)
            np.testing.assert_allclose(
                y[row], expected, atol=1e-10, err_msg=f"values, seed {seed}"
            )
            np.testing.assert_allclose(
                y_torch[row],
                expected,
                rtol=0,
                atol=1e-10,
                err_msg=f"torch values, seed {seed}",
            )
            grad = sv_gradient(qc, observables, params, values)  # (params, outputs)
            np.testing.assert_allclose(
                dx[row],
                grad[: len(inputs)].T,
                atol=1e-6,
                err_msg=f"input gradient, seed {seed}",
            )
            reference_dw += grad[len(inputs) :].T
        np.testing.assert_allclose(
            dw, reference_dw, atol=1e-6, err_msg=f"weight gradient, seed {seed}"
        )


def _operations(circuit):
    for instruction in circuit.data:
        yield instruction.operation
        if instruction.operation.name.startswith("circuit-"):
            yield from _operations(instruction.operation.definition)


def test_the_random_set_covers_what_it_claims():
    counts = {
        "sub-circuit": 0,
        "controlled rotation": 0,
        "non-affine angle": 0,
        "shared parameter": 0,
    }
    qubit_counts = set()
    for seed in range(CIRCUITS):
        qc, _, _, _, _ = random_case(seed)
        qubit_counts.add(qc.num_qubits)
        ops = list(_operations(qc))
        names = [op.name for op in ops]
        counts["sub-circuit"] += any(n.startswith("circuit-") for n in names)
        counts["controlled rotation"] += any(
            n in ("crx", "cry", "crz", "cp", "cu", "mcrx", "mcry", "mcrz", "mcphase")
            for n in names
        )
        angles = [
            p
            for op in ops
            if not op.name.startswith("circuit-")
            for p in op.params
            if hasattr(p, "parameters")
        ]
        counts["non-affine angle"] += any(
            any(
                hasattr(p.gradient(q), "parameters") and p.gradient(q).parameters
                for q in p.parameters
            )
            for p in angles
        )
        counts["shared parameter"] += any(
            sum(q in p.parameters for p in angles) > 1 for q in qc.parameters
        )
    assert qubit_counts == {1, 2, 3, 4}
    assert min(counts.values()) >= 20, counts
