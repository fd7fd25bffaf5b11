"""Tests of ``helpers.quantum.rewrite``: every way a parameter can appear in a circuit
(standard gates, composite gates, sub-circuits, any differentiable angle expression)
gives exact values and gradients, and what cannot be handled exactly is refused with a
ValueError that names it.

Tests named ``test_regression_*`` pin defects once found (Aer mis-binding controlled
phases, untranspiled gates, silent Trotterization), so that they stay fixed.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit.library import (
    CPhaseGate,
    CU1Gate,
    PauliEvolutionGate,
    RVGate,
    RXGate,
    StatePreparation,
    UCRYGate,
    XXPlusYYGate,
)
from qiskit.quantum_info import SparsePauliOp

from helpers.quantum import QuantumLayer, shiftable_form
from quantum_reference import (
    SIGMAS,
    SUPPORTED_CASES,
    Z,
    _case,
    _observables,
    _prep,
    a,
    assert_exact_against_statevector,
    b,
    c,
    make_layer,
    rand,
    sv_expectations,
)

# --------------------------------------------------------------------------------------
# Every way a parameter can appear in a circuit of standard gates
# --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
@pytest.mark.parametrize("name", list(SUPPORTED_CASES))
def test_parameter_appearances_exact(name):
    n, build = SUPPORTED_CASES[name]
    qc = _case(n, build)
    assert_exact_against_statevector(qc, _observables(n))


def test_parameter_only_in_global_phase_has_zero_gradient():
    qc = QuantumCircuit(1, global_phase=2 * c + 1)
    qc.rx(a, 0)
    layer = make_layer(qc, [Z], [a], [c], weight_values=[0.4])
    x = torch.tensor([[0.9]], dtype=torch.float64, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert y.item() == pytest.approx(math.cos(0.9), abs=1e-12)
    assert layer.weight.grad.item() == 0.0
    assert x.grad.item() == pytest.approx(-math.sin(0.9), abs=1e-12)


def test_parameter_only_in_global_phase_alone_is_refused():
    qc = QuantumCircuit(1, global_phase=a)
    qc.h(0)
    with pytest.raises(ValueError, match="no parameter"):
        QuantumLayer(qc, [Z], [a])


NON_AFFINE_ANGLES = {
    "a*a": lambda: a * a,
    "sin(a)": lambda: a.sin(),
    "a*c": lambda: a * c,
    "exp(a)": lambda: a.exp(),
    "c/(a+2)": lambda: c / (a + 2),
    "cos(a)+a": lambda: a.cos() + a,
    "atan(a)*tan(c)": lambda: a.arctan() * c.tan(),
    "log(a^2+1)-abs(c)": lambda: (a * a + 1).log() - abs(c),
    "zz-feature-map": lambda: 2 * (math.pi - a) * (math.pi - c),
}


@pytest.mark.parametrize("name", list(NON_AFFINE_ANGLES))
def test_non_affine_angles_are_exact(name):
    """Any differentiable angle expression: the chain rule through it is exact (it used
    to be refused).
    """
    qc = _prep(2)
    qc.ry(NON_AFFINE_ANGLES[name](), 1)
    qc.cx(1, 0)
    qc.rx(c, 0)
    assert_exact_against_statevector(qc, _observables(2))


@pytest.mark.parametrize(
    "build",
    [
        lambda q: q.crx(a * a, 0, 1),
        lambda q: q.append(_composite(a * c), [1, 0]),
        lambda q: q.u(a.sin(), c * a, 0.3, 1),
    ],
    ids=["crx(a*a)", "composite-rz(a*c)", "u(sin a, c*a, .3)"],
)
def test_non_affine_angles_inside_expanded_gates_are_exact(build):
    qc = _prep(2)
    build(qc)
    assert_exact_against_statevector(qc, _observables(2))


def _composite(angle):
    inner = QuantumCircuit(2, name="inner")
    inner.rz(angle, 0)
    inner.cx(0, 1)
    return inner.to_gate()


def test_affine_angles_take_the_matrix_path_and_curved_ones_the_compiled_path():
    qc = QuantumCircuit(1)
    qc.ry(2 * a + 1, 0)
    qc.rx(a * c, 0)
    shiftable = shiftable_form(qc, [a, c])
    assert shiftable.curved == [1]
    np.testing.assert_array_equal(shiftable.jacobian, [[2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(shiftable.depends, [[True, False], [True, True]])
    values = torch.tensor([[0.5, 3.0], [-1.0, 2.0]], dtype=torch.float64)
    np.testing.assert_allclose(
        shiftable.angles(values).numpy(), [[2.0, 1.5], [-1.0, -2.0]], atol=1e-15
    )


def test_compiled_angles_are_vectorized_not_bound_sample_by_sample(monkeypatch):
    """The expression is compiled once at construction; a forward pass never binds it
    symbolically.
    """
    qc = QuantumCircuit(1)
    qc.ry(a.sin() * c, 0)
    layer = make_layer(qc, [Z], [a], [c], weight_values=[0.7])
    from qiskit.circuit import ParameterExpression

    def refuse(*args, **kwargs):
        raise AssertionError("bound symbolically during forward")

    monkeypatch.setattr(ParameterExpression, "bind", refuse)
    monkeypatch.setattr(ParameterExpression, "assign", refuse)
    x = torch.tensor(rand((50, 1), seed=3))
    np.testing.assert_allclose(
        layer(x).detach().numpy()[:, 0],
        np.cos(np.sin(x.numpy()[:, 0]) * 0.7),
        atol=1e-12,
    )


def test_complex_angle_is_refused():
    qc = QuantumCircuit(1)
    qc.ry(a * 1j, 0)
    with pytest.raises(ValueError, match="complex"):
        QuantumLayer(qc, [Z], [a])


# ----- Bugs found: parameterized controlled-phase gates -------------------------------
# (Aer ignores their bound parameter)

CONTROLLED_PHASE_CASES = {
    "cp": lambda q: q.cp(a, 0, 1),
    "cu1": lambda q: q.append(CU1Gate(a), [0, 1]),
    "cp-open-control": lambda q: q.append(CPhaseGate(a, ctrl_state=0), [0, 1]),
    "mcp": lambda q: q.mcp(a, [0, 1], 2),
}


def assert_exact_or_refused(qc, observables, gate_name):
    """The spec's contract: exact values and gradients, or a ValueError at construction
    naming the gate.
    """
    try:
        QuantumLayer(
            qc, observables, [a], sorted(set(qc.parameters) - {a}, key=lambda p: p.name)
        )
    except ValueError as error:
        assert gate_name in str(error)
        return
    assert_exact_against_statevector(qc, observables)


@pytest.mark.parametrize("name", list(CONTROLLED_PHASE_CASES))
def test_regression_parameterized_controlled_phase_gates_are_exact(name):
    """cp/cu1/mcphase count as two-term gates and are passed to Aer with a parameter;
    Aer's parameter binding mishandles parameterized controlled gates (qiskit-aer issues
    #2403, #2323): outputs do not depend on the angle, gradients are 0. Expected: exact
    (e.g. expand them to p + cx), or a ValueError."""
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.ry(b, 0)
    CONTROLLED_PHASE_CASES[name](qc)
    assert_exact_or_refused(qc, _observables(3), name.split("-")[0])


def test_regression_controlled_phase_closed_form_exact_mode():
    """Minimal reproducer: H H, CP(t), <XX> = (1 + cos t) / 2; the layer returns 1 for
    every t.
    """
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    qc.cp(a, 0, 1)
    layer = make_layer(qc, [SparsePauliOp("XX")], [a])
    x = torch.tensor([[0.7], [2.0]], dtype=torch.float64)
    np.testing.assert_allclose(
        layer(x).detach().numpy(), (1 + np.cos(x.numpy())) / 2, atol=1e-10
    )


def test_regression_controlled_phase_closed_form_shots_mode():
    """The same circuit sampled with shots: the samples never see the angle either."""
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    qc.cp(a, 0, 1)
    shots = 2000
    layer = make_layer(qc, [SparsePauliOp("XX")], [a], shots=shots, seed=1)
    x = torch.tensor([[2.0]], dtype=torch.float64)
    exact = (1 + math.cos(2.0)) / 2
    se = math.sqrt((1 - exact**2) / shots)
    assert abs(layer(x).item() - exact) < SIGMAS * se


# ----- Bugs found: PauliEvolutionGate and other composite gates -----------------------


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
def test_regression_non_commuting_pauli_evolution_is_refused():
    """exp(-i t (0.3 X + 0.7 Z)) is replaced by its one-step Lie-Trotter synthesis (the
    gate's definition): values and gradients are those of a different circuit.
    Expected: exact, or refused with a ValueError."""
    qc = _prep(1)
    qc.append(PauliEvolutionGate(SparsePauliOp(["X", "Z"], [0.3, 0.7]), time=a), [0])
    assert_exact_or_refused(qc, _observables(1), "PauliEvolution")


def _fixed_gate(kind, qc):
    if kind == "pauli-evolution":
        qc.append(PauliEvolutionGate(SparsePauliOp("XY"), time=0.4), [0, 1])
    elif kind == "custom-gate":
        fixed = QuantumCircuit(2, name="fixed")
        fixed.rx(0.3, 0)
        fixed.cx(0, 1)
        qc.append(fixed.to_gate(), [0, 1])
    elif kind == "xx_plus_yy":
        qc.append(XXPlusYYGate(0.4, 0.1), [0, 1])
    else:
        getattr(qc, kind)(0, 1)


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
@pytest.mark.parametrize(
    "kind, mode",
    [
        (kind, "exact")
        for kind in [
            "pauli-evolution",
            "custom-gate",
            "ch",
            "cs",
            "iswap",
            "dcx",
            "xx_plus_yy",
        ]
    ]
    + [("ch", "shots")],
)
def test_regression_untrainable_gates_unknown_to_aer_are_expanded(kind, mode):
    """A gate without trainable parameter is passed to Aer untranspiled; if Aer has no
    such instruction (PauliEvolution, a custom gate, ch, cs, iswap, dcx, xx_plus_yy,
    ...), the first forward pass raises AerError 'unknown instruction' instead of a
    correct value (or a ValueError at construction)."""
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.h(1)
    _fixed_gate(kind, qc)
    observables = [SparsePauliOp("ZZ"), SparsePauliOp("XI")]
    kwargs = {"shots": 4000, "seed": 2} if mode == "shots" else {}
    try:
        layer = make_layer(qc, observables, [a], **kwargs)
    except ValueError:
        return
    y = layer(torch.tensor([[0.6]], dtype=torch.float64)).detach().numpy()[0]
    exact = sv_expectations(qc, observables, [a], [0.6])
    tolerance = SIGMAS / math.sqrt(4000) if mode == "shots" else 1e-10
    np.testing.assert_allclose(y, exact, atol=tolerance)


def test_regression_annotated_operation_refused_with_its_own_message():
    """``RXGate(a).control(2, annotated=True)`` (the default of ``Gate.control`` from
    Qiskit 3.0) is a unitary AnnotatedOperation; the layer calls it 'not a unitary gate'
    and tells the user to remove measurements. Expected: exact, or a ValueError that
    does not blame measurements."""
    qc = QuantumCircuit(3)
    qc.h([0, 1])
    qc.ry(b, 2)
    qc.append(RXGate(a).control(2, annotated=True), [0, 1, 2])
    try:
        QuantumLayer(qc, _observables(3), [a], [b])
    except ValueError as error:
        assert "measurement" not in str(error), str(error)
        return
    assert_exact_against_statevector(qc, _observables(3))


def test_regression_parameterized_rv_gate_refused_with_value_error():
    """RVGate (a standard gate) with a parameter: qiskit's CircuitError escapes instead
    of a ValueError.
    """
    qc = QuantumCircuit(1)
    qc.append(RVGate(a, 0.1, 0.2), [0])
    with pytest.raises(ValueError, match="rv"):
        QuantumLayer(qc, [Z], [a])


# --------------------------------------------------------------------------------------
# Sub-circuits appended as instructions: unitary if everything inside is a gate
# --------------------------------------------------------------------------------------


def _sub_circuit():
    sub = QuantumCircuit(2)
    sub.ry(a, 0)
    sub.barrier()
    sub.crx(c, 0, 1)
    sub.rz(a * c, 1)
    return sub


def _nested_instruction():
    inner = _sub_circuit().to_instruction()
    outer = QuantumCircuit(3)
    outer.append(inner, [2, 0])
    outer.ry(c, 1)
    return outer.to_instruction()


INSTRUCTION_CASES = {
    "append-circuit": (2, lambda q: q.append(_sub_circuit(), [1, 0])),
    "to_instruction": (2, lambda q: q.append(_sub_circuit().to_instruction(), [0, 1])),
    "nested-instructions": (3, lambda q: q.append(_nested_instruction(), [1, 2, 0])),
    "real_amplitudes-barriers": (
        2,
        lambda q: q.compose(_library("real_amplitudes"), inplace=True),
    ),
    "efficient_su2-barriers": (
        2,
        lambda q: q.compose(_library("efficient_su2"), inplace=True),
    ),
    "RealAmplitudes-class-barriers": (
        2,
        lambda q: q.append(_library("RealAmplitudes"), [0, 1]),
    ),
    "fixed-ucry": (
        2,
        lambda q: (q.append(UCRYGate([0.3, -1.1]), [0, 1]), q.rx(a + c, 1)),
    ),
    "state-preparation": (
        2,
        lambda q: (
            q.append(StatePreparation([0.6, 0.8j]), [1]),
            q.ry(a, 1),
            q.rz(c, 0),
        ),
    ),
}


def _library(name):
    """A library ansatz with barriers, its first parameter renamed to a and the others
    to c (shared).
    """
    import qiskit.circuit.library as library

    with warnings.catch_warnings():
        # the class forms are deprecated since Qiskit 2.1
        warnings.simplefilter("ignore", DeprecationWarning)
        ansatz = getattr(library, name)(2, reps=1, insert_barriers=True)
    params = sorted(ansatz.parameters, key=lambda p: p.name)
    return ansatz.assign_parameters(
        {p: (a if i == 0 else (i + 1) * c) for i, p in enumerate(params)}
    )


@pytest.mark.parametrize("name", list(INSTRUCTION_CASES))
def test_sub_circuit_instructions_are_expanded_and_exact(name):
    n, build = INSTRUCTION_CASES[name]
    assert_exact_against_statevector(_case(n, build), _observables(n))


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda q: q.initialize([0, 1], 0), "StatePreparation"),
        (lambda q: q.append(_with_measurement(), [0, 1], [0]), "remove measurements"),
        (lambda q: q.reset(1), "not a unitary gate"),
    ],
    ids=["initialize", "sub-circuit-with-measurement", "reset"],
)
def test_non_unitary_instructions_still_refused(build, match):
    qc = QuantumCircuit(2, 1)
    qc.ry(a, 0)
    build(qc)
    with pytest.raises(ValueError, match=match):
        QuantumLayer(qc, [SparsePauliOp("ZZ")], [a])


def _with_measurement():
    sub = QuantumCircuit(2, 1)
    sub.h(0)
    sub.measure(0, 0)
    return sub.to_instruction()
