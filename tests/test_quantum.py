"""Unit tests for ``helpers.quantum``: the quantum layer, its parameter-shift gradients and its input checks.

Reference values never come from the code under test: they are closed forms, central finite differences,
or an independent state-vector computation with ``qiskit.quantum_info.Statevector``. Statistical tests use
fixed seeds (deterministic) and a tolerance of five standard errors.

Tests named ``test_regression_*`` pin defects once found in ``helpers/quantum.py`` (Aer mis-binding controlled
phases, untranspiled gates, silent Trotterization, lost noise-model gate names, unsimplified observables, wrong
error types), so that they stay fixed.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.circuit.library import (
    CPhaseGate,
    CRXGate,
    CU1Gate,
    CU3Gate,
    GlobalPhaseGate,
    PauliEvolutionGate,
    RVGate,
    RXGate,
    U2Gate,
    U3Gate,
    XXMinusYYGate,
    XXPlusYYGate,
)
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from helpers.quantum import SHIFT, QuantumLayer, parameter_shift

SIGMAS = 5.0  # statistical tolerance, in standard errors
a, b, c, d = (Parameter(name) for name in "abcd")


# ---------------------------------------------------------------------------------------------
# Independent references and small tools
# ---------------------------------------------------------------------------------------------


def sv_expectations(circuit, observables, params, values):
    """<O> for each observable, from Qiskit's Statevector of the circuit with ``params = values``."""
    state = Statevector(circuit.assign_parameters(dict(zip(params, [float(v) for v in values]))))
    return np.array([state.expectation_value(obs).real for obs in observables])


def sv_gradient(circuit, observables, params, values, h=1e-5):
    """Central finite differences of ``sv_expectations``: shape (params, observables)."""
    rows = []
    for k in range(len(values)):
        up, down = np.array(values, float), np.array(values, float)
        up[k] += h
        down[k] -= h
        rows.append((sv_expectations(circuit, observables, params, up)
                     - sv_expectations(circuit, observables, params, down)) / (2 * h))
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
        gx, gw = torch.autograd.grad(y[:, o].sum(), [x, layer.weight], retain_graph=True)
        dx.append(gx)
        dw.append(gw)
    return torch.stack(dx, 1).numpy(), torch.stack(dw).numpy()


class Counter:
    """Wraps an evaluator; records the shape of every batch of angle vectors it is called with."""

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


# ---------------------------------------------------------------------------------------------
# Analytic cases
# ---------------------------------------------------------------------------------------------

THETAS = torch.tensor([[-2.5], [-1.0], [0.0], [0.4], [1.0], [math.pi / 2], [3.0]], dtype=torch.float64)


@pytest.mark.parametrize(
    "gates, observable, f, df",
    [
        ([("h", 0), ("ry", a, 0)], Z, lambda t: -np.sin(t), lambda t: -np.cos(t)),  # the 2020 tutorial's circuit
        ([("rx", a, 0)], Z, np.cos, lambda t: -np.sin(t)),
        ([("ry", a, 0)], Z, np.cos, lambda t: -np.sin(t)),
        ([("ry", a, 0)], X, np.sin, np.cos),
        ([("rx", a, 0)], Y, lambda t: -np.sin(t), lambda t: -np.cos(t)),
        ([("h", 0), ("rz", a, 0)], X, np.cos, lambda t: -np.sin(t)),
        ([("h", 0), ("p", a, 0)], Y, np.sin, np.cos),
        ([("ry", 2 * a + 1, 0)], Z, lambda t: np.cos(2 * t + 1), lambda t: -2 * np.sin(2 * t + 1)),
        ([("rx", -a / 2, 0)], Z, lambda t: np.cos(t / 2), lambda t: -np.sin(t / 2) / 2),
    ],
    ids=["h-ry-Z", "rx-Z", "ry-Z", "ry-X", "rx-Y", "h-rz-X", "h-p-Y", "ry(2a+1)-Z", "rx(-a/2)-Z"],
)
def test_analytic_one_qubit(gates, observable, f, df):
    layer = make_layer(one_qubit(*gates), [observable], [a])
    x = THETAS.clone().requires_grad_(True)
    y = layer(x)
    assert y.shape == (len(THETAS), 1)
    np.testing.assert_allclose(y.detach().numpy(), f(THETAS.numpy()), atol=1e-10)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), df(THETAS.numpy()), atol=1e-10)


def test_analytic_input_and_weight():
    """RX(x) RY(w) |0>: <Z> = cos x cos w, d/dx = -sin x cos w, d/dw = -cos x sin w (summed over the batch)."""
    layer = make_layer(one_qubit(("rx", a, 0), ("ry", b, 0)), [Z], [a], [b], weight_values=[0.7])
    x = THETAS.clone().requires_grad_(True)
    y = layer(x)
    t, w = THETAS.numpy(), 0.7
    np.testing.assert_allclose(y.detach().numpy(), np.cos(t) * np.cos(w), atol=1e-10)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -np.sin(t) * np.cos(w), atol=1e-10)
    np.testing.assert_allclose(layer.weight.grad.numpy(), [np.sum(-np.cos(t) * np.sin(w))], atol=1e-10)


def test_analytic_bell_pair():
    """RY(x) on q0, CX: <Z1> = cos x, <Z0 Z1> = 1, <X0 X1> = sin x."""
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.cx(0, 1)
    observables = [SparsePauliOp("ZI"), SparsePauliOp("ZZ"), SparsePauliOp("XX")]
    layer = make_layer(qc, observables, [a])
    x = THETAS.clone().requires_grad_(True)
    y = layer(x)
    t = THETAS.numpy()[:, 0]
    expected = np.stack([np.cos(t), np.ones_like(t), np.sin(t)], 1)
    np.testing.assert_allclose(y.detach().numpy(), expected, atol=1e-10)
    dx, _ = jacobians(layer, THETAS)
    np.testing.assert_allclose(dx[:, :, 0], np.stack([-np.sin(t), 0 * t, np.cos(t)], 1), atol=1e-10)


def test_weight_is_parameter_with_one_entry_per_weight_param():
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(b, 1)
    qc.rz(c, 0)
    qc.cx(0, 1)
    layer = QuantumLayer(qc, [SparsePauliOp("ZZ")], [a], [c, b])
    assert isinstance(layer.weight, torch.nn.Parameter)
    assert layer.weight.shape == (2,)
    assert any(p is layer.weight for p in layer.parameters())


def test_parameter_order_follows_the_lists_not_the_circuit():
    """Columns of x follow ``input_params``, entries of the weight follow ``weight_params``."""
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(b, 1)
    qc.ry(c, 1)
    qc.rx(d, 0)
    observables = [SparsePauliOp("IZ"), SparsePauliOp("ZI")]
    layer = make_layer(qc, observables, [b, a], [d, c], weight_values=[0.3, -1.1])
    x = torch.tensor([[0.5, 2.0]], dtype=torch.float64)
    expected = sv_expectations(qc, observables, [b, a, d, c], [0.5, 2.0, 0.3, -1.1])
    np.testing.assert_allclose(layer(x).detach().numpy()[0], expected, atol=1e-10)


def test_parameter_vectors_are_accepted():
    xs, ws = ParameterVector("x", 2), ParameterVector("w", 2)
    qc = QuantumCircuit(2)
    qc.ry(xs[0], 0)
    qc.ry(xs[1], 1)
    qc.cx(0, 1)
    qc.rx(ws[0], 0)
    qc.rz(ws[1], 1)
    observables = [SparsePauliOp("ZZ"), SparsePauliOp("XY")]
    layer = make_layer(qc, observables, xs, ws, weight_values=[0.2, 0.9])
    x = torch.tensor([[0.1, -0.7]], dtype=torch.float64)
    expected = sv_expectations(qc, observables, list(xs) + list(ws), [0.1, -0.7, 0.2, 0.9])
    np.testing.assert_allclose(layer(x).detach().numpy()[0], expected, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# parameter_shift, and the 2020 tutorial's bugs as regression tests
# ---------------------------------------------------------------------------------------------


def tutorial_f(angles):
    """H then RY(theta), <Z> = -sin(theta): an evaluator from angle vectors (points, 1) to (points, 1)."""
    return -np.sin(np.asarray(angles, float))


def shift_aliased(f, thetas, s=SHIFT):
    """The 2020 tutorial's backward: both shifted lists alias one list, so it computes f(t+s) - f(t), and no 1/2."""
    thetas = list(thetas)
    grads = []
    for k in range(len(thetas)):
        plus = thetas
        plus[k] = thetas[k] + s
        f_plus = f(np.array([plus]))[0, 0]
        minus = thetas  # same list object: minus[k] starts from the already shifted value
        minus[k] = thetas[k] - s
        f_minus = f(np.array([minus]))[0, 0]
        grads.append(f_plus - f_minus)
    return np.array(grads)


def shift_copied_without_half(f, thetas, s=SHIFT):
    """Aliasing fixed (copies), but still no 1/2: f(t+s) - f(t-s)."""
    grads = []
    for k in range(len(thetas)):
        plus, minus = list(thetas), list(thetas)
        plus[k] += s
        minus[k] -= s
        grads.append(f(np.array([plus]))[0, 0] - f(np.array([minus]))[0, 0])
    return np.array(grads)


def shift_divided_by_two(f, thetas, s):
    """Right points, but divided by 2 instead of 2 sin s (only right for s = pi/2)."""
    return shift_copied_without_half(f, thetas, s) / 2


def matches_analytic(grad, theta):
    """The check a test would apply: agreement with the analytic derivative -cos(theta)."""
    return np.allclose(grad, -np.cos(theta), atol=1e-9)


def helper_grad(theta, shift=SHIFT, evaluate=tutorial_f):
    return parameter_shift(evaluate, np.array([[theta]]), [0], shift=shift)[0, 0, 0]


def test_parameter_shift_right_at_theta_one_where_the_aliased_rule_has_the_wrong_sign():
    theta = 1.0
    exact = -math.cos(theta)  # about -0.54
    assert helper_grad(theta) == pytest.approx(exact, abs=1e-12)
    aliased = shift_aliased(tutorial_f, [theta])[0]  # f(1 + pi/2) - f(1) = +0.30
    assert np.sign(aliased) != np.sign(exact)
    assert np.sign(helper_grad(theta)) == np.sign(exact)


def test_the_check_distinguishes_the_tutorial_bugs_from_parameter_shift():
    for theta in [-2.0, 0.3, 1.0, 2.5]:
        assert matches_analytic(helper_grad(theta), theta)
        assert not matches_analytic(shift_aliased(tutorial_f, [theta])[0], theta)
        assert not matches_analytic(shift_copied_without_half(tutorial_f, [theta])[0], theta)
        # without the 1/2 the result is exactly twice the derivative
        assert shift_copied_without_half(tutorial_f, [theta])[0] == pytest.approx(2 * -math.cos(theta), abs=1e-12)


@pytest.mark.parametrize("shift", [0.3, 1.0, SHIFT, 2.0])
def test_parameter_shift_general_shift_uses_two_sin_s(shift):
    for theta in [-1.3, 0.0, 1.0, 2.2]:
        assert matches_analytic(helper_grad(theta, shift=shift), theta)
    if not math.isclose(shift, SHIFT):
        assert not matches_analytic(shift_divided_by_two(tutorial_f, [1.0], shift)[0], 1.0)


def test_parameter_shift_on_the_real_circuit_and_the_aliasing_bug():
    """The same checks with the layer's own evaluator on the tutorial's circuit (H, RY(theta), <Z>)."""
    layer = make_layer(one_qubit(("h", 0), ("ry", a, 0)), [Z], [a])
    for theta in [1.0, 0.3]:
        assert matches_analytic(helper_grad(theta, evaluate=layer.evaluate), theta)
        assert matches_analytic(helper_grad(theta, shift=0.3, evaluate=layer.evaluate), theta)
        assert not matches_analytic(shift_aliased(layer.evaluate, [theta])[0], theta)
        assert not matches_analytic(shift_copied_without_half(layer.evaluate, [theta])[0], theta)


def test_parameter_shift_batched_many_angles_one_call():
    """f(a) = [cos a0 sin a1, sin a0 + cos a2]: shape (batch, which, outputs), one evaluator call."""

    def f(angles):
        return np.stack([np.cos(angles[:, 0]) * np.sin(angles[:, 1]), np.sin(angles[:, 0]) + np.cos(angles[:, 2])], 1)

    counter = Counter(f)
    angles = rand((4, 3), seed=1)
    grads = parameter_shift(counter, angles, [2, 0], shift=0.7)
    assert counter.shapes == [(4 * 2 * 2, 3)]
    assert grads.shape == (4, 2, 2)
    a0, a1, a2 = angles.T
    np.testing.assert_allclose(grads[:, 0, 0], 0 * a0, atol=1e-12)
    np.testing.assert_allclose(grads[:, 0, 1], -np.sin(a2), atol=1e-12)
    np.testing.assert_allclose(grads[:, 1, 0], -np.sin(a0) * np.sin(a1), atol=1e-12)
    np.testing.assert_allclose(grads[:, 1, 1], np.cos(a0), atol=1e-12)


def test_parameter_shift_unshifted_adds_the_batch_itself_to_the_same_call():
    def f(angles):
        return np.stack([np.cos(angles[:, 0]) * np.sin(angles[:, 1]), np.sin(angles[:, 0]) + np.cos(angles[:, 2])], 1)

    counter = Counter(f)
    angles = rand((4, 3), seed=2)
    values, grads = parameter_shift(counter, angles, [2, 0], shift=0.7, unshifted=True)
    assert counter.shapes == [(4 + 4 * 2 * 2, 3)]
    np.testing.assert_array_equal(values, f(angles))
    np.testing.assert_array_equal(grads, parameter_shift(f, angles, [2, 0], shift=0.7))


def test_parameter_shift_unshifted_with_nothing_to_shift():
    values, grads = parameter_shift(lambda v: np.sin(v), rand((3, 2), seed=3), [], unshifted=True)
    assert values.shape == (3, 2) and grads.shape == (3, 0, 2)


# ---------------------------------------------------------------------------------------------
# gradcheck and finite differences on entangling circuits with several observables
# ---------------------------------------------------------------------------------------------


def entangling_circuit():
    """Three qubits, two inputs and four weights; parameters used several times, scaled and offset."""
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
    SparsePauliOp.from_list([("XYZ", 0.5), ("ZZI", -0.3), ("IIX", 0.7), ("YIY", 0.2), ("III", 0.25)]),
    SparsePauliOp("IYI"),
]


def test_gradcheck_exact_inputs_and_weights():
    qc, inputs, weights = entangling_circuit()
    layer = make_layer(qc, ENTANGLING_OBSERVABLES, inputs, weights, weight_values=[0.3, -0.8, 1.9])
    x = torch.tensor(rand((2, 2), seed=2), requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)

    def f(x, w):
        return torch.func.functional_call(layer, {"weight": w}, (x,))

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_through_a_classical_layer():
    """Linear -> QuantumLayer -> Linear, float64: gradients reach the classical weights correctly."""
    qc, inputs, weights = entangling_circuit()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 2), QuantumLayer(qc, ENTANGLING_OBSERVABLES, inputs, weights), torch.nn.Linear(3, 1)
    ).double()
    x = torch.tensor(rand((2, 3), seed=3), requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-6, rtol=1e-5)
    model.zero_grad()
    model(x).sum().backward()
    assert model[0].weight.grad.abs().sum() > 0


def test_entangling_circuit_matches_statevector_and_finite_differences():
    qc, inputs, weights = entangling_circuit()
    w = np.array([0.3, -0.8, 1.9])
    layer = make_layer(qc, ENTANGLING_OBSERVABLES, inputs, weights, weight_values=w)
    xs = rand((3, 2), seed=4)
    x = torch.tensor(xs)
    y = layer(x).detach().numpy()
    dx, dw = jacobians(layer, x)
    params = inputs + weights
    ref_dw = np.zeros((len(ENTANGLING_OBSERVABLES), len(w)))
    for row, values in enumerate(xs):
        allv = np.concatenate([values, w])
        np.testing.assert_allclose(y[row], sv_expectations(qc, ENTANGLING_OBSERVABLES, params, allv), atol=1e-10)
        grad = sv_gradient(qc, ENTANGLING_OBSERVABLES, params, allv)  # (params, outputs)
        np.testing.assert_allclose(dx[row], grad[:2].T, atol=1e-7)
        ref_dw += grad[2:].T
    np.testing.assert_allclose(dw, ref_dw, atol=1e-7)

    # central differences of the layer itself, h = 1e-5
    h = 1e-5
    for i in range(2):
        step = torch.zeros_like(x)
        step[:, i] = h
        fd = (layer(x + step) - layer(x - step)).detach().numpy() / (2 * h)
        np.testing.assert_allclose(dx[:, :, i], fd, atol=1e-7)
    for j in range(len(w)):
        with torch.no_grad():
            layer.weight[j] += h
            up = layer(x).sum(0)
            layer.weight[j] -= 2 * h
            down = layer(x).sum(0)
            layer.weight[j] += h
        np.testing.assert_allclose(dw[:, j], ((up - down) / (2 * h)).numpy(), atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Every way a parameter can appear in a circuit of standard gates
# ---------------------------------------------------------------------------------------------


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
    "rx-ry-rz-p": (2, lambda q: (q.rx(a, 0), q.ry(c, 1), q.rz(a, 0), q.cx(0, 1), q.p(c, 1))),
    "same-param-several-gates": (2, lambda q: (q.ry(a, 0), q.cx(0, 1), q.rz(2 * a + 1, 1), q.rx(-a / 2, 0))),
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
    "rx.control(2)": (3, lambda q: q.append(RXGate(a).control(2, annotated=False), [0, 1, 2])),
    "pauli-evolution-XY": (2, lambda q: q.append(PauliEvolutionGate(SparsePauliOp("XY"), time=a), [0, 1])),
    "pauli-evolution-commuting": (
        2,
        lambda q: q.append(PauliEvolutionGate(SparsePauliOp(["ZZ", "ZI", "IX"], [0.5, -0.7, 0.0]), time=2 * a), [0, 1]),
    ),
    "global-phase-and-gate": (1, lambda q: (q.rx(a, 0), setattr(q, "global_phase", c))),
    "global-phase-gate": (1, lambda q: (q.rx(a, 0), q.append(GlobalPhaseGate(c), []))),
    "custom-composite": (2, lambda q: q.append(_inner.to_gate(), [1, 0])),
    "nested-composite": (3, lambda q: q.append(_outer.to_gate(), [1, 2, 0])),
    "controlled-composite-with-phase": (2, lambda q: q.append(_phase_inner.to_gate().control(1), [0, 1])),
    "barrier-and-fixed-unitary": (1, lambda q: (q.barrier(), q.unitary(np.array([[0, 1], [1, 0]]), [0]), q.rx(a, 0))),
}


def _observables(n):
    return [
        SparsePauliOp("Z" * n),
        SparsePauliOp.from_list([("X" * n, 0.5), ("Y" + "Z" * (n - 1), -0.3), ("I" * n, 0.2)]),
        SparsePauliOp("I" * (n - 1) + "Y"),
    ]


def assert_exact_against_statevector(qc, observables, rows=2, seed=0):
    """The layer (input a; weights: the other parameters) matches Statevector values and FD gradients."""
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
        np.testing.assert_allclose(y[row], sv_expectations(qc, observables, [a] + weights, allv), atol=1e-9)
        grad = sv_gradient(qc, observables, [a] + weights, allv)
        np.testing.assert_allclose(dx[row, :, 0], grad[0], atol=1e-7)
        ref_dw += grad[1:].T
    np.testing.assert_allclose(dw, ref_dw, atol=1e-7)


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


@pytest.mark.parametrize(
    "angle, names",
    [
        (lambda: a * a, "a"),
        (lambda: a.sin(), "a"),
        (lambda: a * c, "a|c"),
        (lambda: a.exp(), "a"),
        (lambda: c / (a + 1), "a|c"),
        (lambda: a.cos() + a, "a"),
    ],
    ids=["a*a", "sin(a)", "a*c", "exp(a)", "c/(a+1)", "cos(a)+a"],
)
def test_non_affine_angles_are_refused(angle, names):
    qc = QuantumCircuit(2)
    qc.ry(angle(), 1)
    qc.rx(c, 0)
    with pytest.raises(ValueError, match=rf"'ry'.*not affine in ({names})"):
        QuantumLayer(qc, [SparsePauliOp("ZZ")], [a], [c])


def test_non_affine_angle_inside_a_composite_gate_is_refused():
    inner = QuantumCircuit(1, name="inner")
    inner.rz(a * c, 0)
    qc = QuantumCircuit(1)
    qc.append(inner.to_gate(), [0])
    with pytest.raises(ValueError, match="not affine"):
        QuantumLayer(qc, [Z], [a], [c])


def test_non_affine_in_controlled_rotation_is_refused():
    qc = QuantumCircuit(2)
    qc.crx(a * a, 0, 1)
    with pytest.raises(ValueError, match="not affine"):
        QuantumLayer(qc, [SparsePauliOp("ZZ")], [a])


# ----- Bugs found: parameterized controlled-phase gates (Aer ignores their bound parameter) --------------

CONTROLLED_PHASE_CASES = {
    "cp": lambda q: q.cp(a, 0, 1),
    "cu1": lambda q: q.append(CU1Gate(a), [0, 1]),
    "cp-open-control": lambda q: q.append(CPhaseGate(a, ctrl_state=0), [0, 1]),
    "mcp": lambda q: q.mcp(a, [0, 1], 2),
}


def assert_exact_or_refused(qc, observables, gate_name):
    """The spec's contract: exact values and gradients, or a ValueError at construction naming the gate."""
    try:
        QuantumLayer(qc, observables, [a], sorted(set(qc.parameters) - {a}, key=lambda p: p.name))
    except ValueError as error:
        assert gate_name in str(error)
        return
    assert_exact_against_statevector(qc, observables)


@pytest.mark.parametrize("name", list(CONTROLLED_PHASE_CASES))
def test_regression_parameterized_controlled_phase_gates_are_exact(name):
    """cp/cu1/mcphase count as two-term gates and are passed to Aer with a parameter; Aer's parameter binding
    mishandles parameterized controlled gates (qiskit-aer issues #2403, #2323): outputs do not depend on
    the angle, gradients are 0. Expected: exact (e.g. expand them to p + cx), or a ValueError."""
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.ry(b, 0)
    CONTROLLED_PHASE_CASES[name](qc)
    assert_exact_or_refused(qc, _observables(3), name.split("-")[0])


def test_regression_controlled_phase_closed_form_exact_mode():
    """Minimal reproducer: H H, CP(t), <XX> = (1 + cos t) / 2; the layer returns 1 for every t."""
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    qc.cp(a, 0, 1)
    layer = make_layer(qc, [SparsePauliOp("XX")], [a])
    x = torch.tensor([[0.7], [2.0]], dtype=torch.float64)
    np.testing.assert_allclose(layer(x).detach().numpy(), (1 + np.cos(x.numpy())) / 2, atol=1e-10)


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


# ----- Bugs found: PauliEvolutionGate and other composite gates ------------------------------------------


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
def test_regression_non_commuting_pauli_evolution_is_refused():
    """exp(-i t (0.3 X + 0.7 Z)) is replaced by its one-step Lie-Trotter synthesis (the gate's definition):
    values and gradients are those of a different circuit. Expected: exact, or refused with a ValueError."""
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
    [(kind, "exact") for kind in ["pauli-evolution", "custom-gate", "ch", "cs", "iswap", "dcx", "xx_plus_yy"]]
    + [("ch", "shots")],
)
def test_regression_untrainable_gates_unknown_to_aer_are_expanded(kind, mode):
    """A gate without trainable parameter is passed to Aer untranspiled; if Aer has no such instruction
    (PauliEvolution, a custom gate, ch, cs, iswap, dcx, xx_plus_yy, ...), the first forward pass raises
    AerError 'unknown instruction' instead of a correct value (or a ValueError at construction)."""
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
    """``RXGate(a).control(2, annotated=True)`` (the default of ``Gate.control`` from Qiskit 3.0) is a unitary
    AnnotatedOperation; the layer calls it 'not a unitary gate' and tells the user to remove measurements.
    Expected: exact, or a ValueError that does not blame measurements."""
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
    """RVGate (a standard gate) with a parameter: qiskit's CircuitError escapes instead of a ValueError."""
    qc = QuantumCircuit(1)
    qc.append(RVGate(a, 0.1, 0.2), [0])
    with pytest.raises(ValueError, match="rv"):
        QuantumLayer(qc, [Z], [a])


# ---------------------------------------------------------------------------------------------
# Batching: one evaluator call per training step, no loop over samples
# ---------------------------------------------------------------------------------------------


def counting_layer(**kwargs):
    qc, inputs, weights = entangling_circuit()
    layer = make_layer(qc, ENTANGLING_OBSERVABLES, inputs, weights, weight_values=[0.3, -0.8, 1.9], **kwargs)
    layer.evaluate = Counter(layer.evaluate)
    return layer


@pytest.mark.parametrize("batch", [1, 5, 7])
def test_one_call_per_training_step(batch):
    """Forward sends the batch and all its shifted points in one call; backward makes no call."""
    layer = counting_layer()
    x = torch.tensor(rand((batch, 2), seed=5), requires_grad=True)
    y = layer(x)
    n_angles = len(layer.shiftable.angle_params)
    # every angle depends on some input or weight here: the batch, then two shifted points per angle and sample
    assert layer.evaluate.shapes == [((1 + 2 * n_angles) * batch, n_angles)]
    y.sum().backward()
    assert len(layer.evaluate.shapes) == 1


def test_no_gradient_wanted_means_no_shifted_points():
    """Under torch.no_grad, or when neither the input nor the weights require a gradient: values only."""
    x = torch.tensor(rand((3, 2), seed=5))
    layer = counting_layer()
    with torch.no_grad():
        layer(x.clone().requires_grad_(True))
    layer.weight.requires_grad_(False)
    y = layer(x)
    n_angles = len(layer.shiftable.angle_params)
    assert layer.evaluate.shapes == [(3, n_angles), (3, n_angles)]
    assert not y.requires_grad


def test_values_are_the_same_with_and_without_gradients():
    layer = counting_layer()
    x = torch.tensor(rand((5, 2), seed=16))
    with torch.no_grad():
        plain = layer(x)
    fused = layer(x.clone().requires_grad_(True))
    # the rows sit in different packed copies, so agreement is to rounding, not bit for bit
    torch.testing.assert_close(fused.detach(), plain, atol=1e-14, rtol=0)


def test_backward_twice_gives_the_same_gradient_without_new_calls():
    layer = counting_layer()
    x = torch.tensor(rand((4, 2), seed=17), requires_grad=True)
    y = layer(x)
    y.sum().backward(retain_graph=True)
    first = x.grad.clone()
    x.grad = None
    y.sum().backward()
    torch.testing.assert_close(x.grad, first, atol=0, rtol=0)
    assert len(layer.evaluate.shapes) == 1


def test_batch_result_equals_per_sample_results():
    layer = counting_layer()
    xs = torch.tensor(rand((7, 2), seed=6), requires_grad=True)
    y = layer(xs)
    y.backward(torch.ones_like(y))
    batch_x_grad, batch_w_grad = xs.grad.clone(), layer.weight.grad.clone()
    w_grad_sum = torch.zeros_like(batch_w_grad)
    for i in range(len(xs)):
        layer.weight.grad = None
        xi = xs[i : i + 1].detach().clone().requires_grad_(True)
        yi = layer(xi)
        torch.testing.assert_close(yi, y[i : i + 1], atol=1e-12, rtol=0)
        yi.sum().backward()
        torch.testing.assert_close(xi.grad, batch_x_grad[i : i + 1], atol=1e-12, rtol=0)
        w_grad_sum += layer.weight.grad
    torch.testing.assert_close(w_grad_sum, batch_w_grad, atol=1e-10, rtol=0)


def test_batch_result_equals_per_sample_results_with_an_estimator():
    qc, inputs, weights = entangling_circuit()
    layer = make_layer(qc, ENTANGLING_OBSERVABLES, inputs, weights, weight_values=[0.3, -0.8, 1.9],
                       estimator=StatevectorEstimator())
    xs = torch.tensor(rand((3, 2), seed=7))
    y = layer(xs)
    for i in range(3):
        torch.testing.assert_close(layer(xs[i : i + 1]), y[i : i + 1], atol=1e-12, rtol=0)


def test_wide_circuit_without_packing():
    """Seven qubits (no room for two copies in one simulation): still exact, batch of 3."""
    n = 7
    qc = QuantumCircuit(n)
    for q in range(n):
        qc.ry(a if q % 2 else c, q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    observables = [SparsePauliOp("Z" * n), SparsePauliOp("I" * (n - 1) + "X")]
    layer = make_layer(qc, observables, [a], [c], weight_values=[0.4])
    xs = rand((3, 1), seed=8)
    y = layer(torch.tensor(xs)).detach().numpy()
    for row in range(3):
        np.testing.assert_allclose(y[row], sv_expectations(qc, observables, [a, c], [xs[row, 0], 0.4]), atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Only the angles that need it are shifted
# ---------------------------------------------------------------------------------------------


def mixed_circuit():
    """Angles: a (input), 2a (input), c (weight), d (weight), d (weight), a + c (both): 6 angles."""
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(2 * a, 1)
    qc.cx(0, 1)
    qc.ry(c, 1)
    qc.rz(d, 0)
    qc.rx(d, 0)
    qc.rzz(a + c, 0, 1)
    return qc


def test_inputs_without_grad_shift_only_weight_angles():
    batch = 3
    layer = make_layer(mixed_circuit(), [SparsePauliOp("ZZ"), SparsePauliOp("XI")], [a], [c, d],
                       weight_values=[0.2, -0.4])
    layer.evaluate = Counter(layer.evaluate)
    x = torch.tensor(rand((batch, 1), seed=9))  # requires_grad False
    layer(x).sum().backward()
    weight_angles = 4  # c, d, d, a + c
    assert layer.evaluate.shapes == [((1 + 2 * weight_angles) * batch, 6)]
    assert x.grad is None and layer.weight.grad is not None


def test_frozen_weights_shift_only_input_angles():
    batch = 3
    layer = make_layer(mixed_circuit(), [SparsePauliOp("ZZ")], [a], [c, d], weight_values=[0.2, -0.4])
    layer.weight.requires_grad_(False)
    layer.evaluate = Counter(layer.evaluate)
    x = torch.tensor(rand((batch, 1), seed=9), requires_grad=True)
    layer(x).sum().backward()
    input_angles = 3  # a, 2a, a + c
    assert layer.evaluate.shapes == [((1 + 2 * input_angles) * batch, 6)]
    # the input gradient is still right
    for row in range(batch):
        grad = sv_gradient(mixed_circuit(), [SparsePauliOp("ZZ")], [a, c, d], [x[row, 0].item(), 0.2, -0.4])
        assert x.grad[row, 0].item() == pytest.approx(grad[0, 0], abs=1e-7)


def test_no_grad_evaluates_the_batch_only():
    layer = make_layer(mixed_circuit(), [SparsePauliOp("ZZ")], [a], [c, d])
    layer.evaluate = Counter(layer.evaluate)
    with torch.no_grad():
        layer(torch.tensor([[0.1], [0.2]], dtype=torch.float64))
    assert layer.evaluate.shapes == [(2, 6)]


# ---------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.float64])
def test_dtypes(dtype, weight_dtype):
    layer = QuantumLayer(one_qubit(("rx", a, 0), ("ry", b, 0)), [Z, X], [a], [b]).to(weight_dtype)
    with torch.no_grad():
        layer.weight.fill_(0.7)
    x = torch.tensor([[0.3], [-1.2]], dtype=dtype, requires_grad=True)
    y = layer(x)
    assert y.dtype == dtype
    y[:, 0].sum().backward()
    assert x.grad.dtype == dtype
    assert layer.weight.grad.dtype == weight_dtype
    t = x.detach().double().numpy()[:, 0]
    tol = 1e-6 if torch.float32 in (dtype, weight_dtype) else 1e-10
    np.testing.assert_allclose(y.detach().double().numpy()[:, 0], np.cos(t) * np.cos(0.7), atol=tol)
    np.testing.assert_allclose(x.grad.double().numpy()[:, 0], -np.sin(t) * np.cos(0.7), atol=tol)
    assert layer.weight.grad.item() == pytest.approx(np.sum(-np.cos(t) * np.sin(0.7)), abs=tol)


def test_default_weights_are_float32_and_layer_double_makes_them_float64():
    layer = QuantumLayer(one_qubit(("rx", a, 0), ("ry", b, 0)), [Z], [a], [b])
    assert layer.weight.dtype == torch.float32
    assert layer.double().weight.dtype == torch.float64


# ---------------------------------------------------------------------------------------------
# Shots: real sampling, reproducible, unbiased
# ---------------------------------------------------------------------------------------------


def multi_term_circuit():
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(c, 1)
    qc.cx(0, 1)
    qc.ry(a + c, 1)
    return qc


MULTI_TERM = [
    SparsePauliOp.from_list([("XY", 0.6), ("ZZ", -0.5), ("YI", 0.4), ("IX", 0.3), ("II", 0.2)]),
    SparsePauliOp("XX"),
]


@pytest.mark.parametrize("observable", ["Z", "X", "Y"])
def test_one_shot_gives_plus_or_minus_one(observable):
    layer = make_layer(one_qubit(("ry", a, 0), ("rz", c, 0)), [SparsePauliOp(observable)], [a], [c],
                       weight_values=[0.8], shots=1, seed=11)
    x = torch.tensor(rand((40, 1), seed=10))
    y = layer(x).detach().numpy()
    assert set(np.unique(y)) <= {-1.0, 1.0}
    assert len(np.unique(y)) == 2  # both outcomes occur: it is sampling, not a sign of the exact value


def test_shot_values_are_multiples_of_two_over_n():
    shots = 7
    observables = [SparsePauliOp("ZZ"), SparsePauliOp.from_list([("XI", 1.0), ("II", 0.25)])]
    layer = make_layer(multi_term_circuit(), observables, [a], [c], weight_values=[0.5], shots=shots, seed=12)
    y = layer(torch.tensor(rand((30, 1), seed=13))).detach().numpy()
    k0 = (y[:, 0] + 1) * shots / 2
    k1 = (y[:, 1] - 0.25 + 1) * shots / 2
    np.testing.assert_allclose(k0, np.round(k0), atol=1e-9)
    np.testing.assert_allclose(k1, np.round(k1), atol=1e-9)
    assert np.all((k0 >= -1e-9) & (k0 <= shots + 1e-9))
    exact = np.array([sv_expectations(multi_term_circuit(), observables, [a, c], [x, 0.5])
                      for x in rand((30, 1), seed=13)[:, 0]])
    assert np.abs(y - exact).max() > 1e-3  # really sampled


def test_same_seed_same_outputs_different_seed_different():
    def run(seed):
        layer = make_layer(multi_term_circuit(), MULTI_TERM, [a], [c], weight_values=[0.5], shots=50, seed=seed)
        x = torch.tensor(rand((6, 1), seed=14), requires_grad=True)
        y = layer(x)
        y.sum().backward()
        return y.detach().numpy(), x.grad.numpy(), layer.weight.grad.numpy()

    first, again, other = run(3), run(3), run(4)
    for u, v in zip(first, again):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[1], other[1])


def test_repeated_calls_see_fresh_shot_noise():
    layer = make_layer(multi_term_circuit(), MULTI_TERM, [a], [c], weight_values=[0.5], shots=50, seed=5)
    x = torch.tensor(rand((6, 1), seed=14))
    assert not np.array_equal(layer(x).detach().numpy(), layer(x).detach().numpy())


def test_shot_results_are_unbiased_for_multi_term_observables():
    """Mean over seeds (and independent rows) of the sampled values = the exact value, within 5 SE."""
    shots, seeds, rows = 100, 6, 50
    x_value, w_value = 0.9, -0.6
    exact = sv_expectations(multi_term_circuit(), MULTI_TERM, [a, c], [x_value, w_value])
    samples = []
    for seed in range(seeds):
        layer = make_layer(multi_term_circuit(), MULTI_TERM, [a], [c], weight_values=[w_value], shots=shots, seed=seed)
        samples.append(layer(torch.full((rows, 1), x_value, dtype=torch.float64)).detach().numpy())
    samples = np.concatenate(samples)
    mean, se = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(len(samples))
    assert np.all(se > 0)
    assert np.all(np.abs(mean - exact) < SIGMAS * se), (mean, exact, se)


def test_shot_gradients_are_unbiased():
    """Mean over seeds of the sampled parameter-shift gradients = the exact gradient, within 5 SE."""
    shots, seeds, rows = 50, 8, 12
    x_value, w_value = 0.9, -0.6
    grad = sv_gradient(multi_term_circuit(), MULTI_TERM, [a, c], [x_value, w_value])  # (params, outputs)
    x_grads, w_grads = [], []
    for seed in range(seeds):
        layer = make_layer(multi_term_circuit(), MULTI_TERM, [a], [c], weight_values=[w_value], shots=shots, seed=seed)
        x = torch.full((rows, 1), x_value, dtype=torch.float64, requires_grad=True)
        y = layer(x)
        (y[:, 0] + 0.5 * y[:, 1]).sum().backward()  # upstream gradient mixes both outputs
        x_grads.append(x.grad.numpy()[:, 0])
        w_grads.append(layer.weight.grad.item() / rows)
    for samples, exact in [(np.concatenate(x_grads), grad[0, 0] + 0.5 * grad[0, 1]),
                           (np.array(w_grads), grad[1, 0] + 0.5 * grad[1, 1])]:
        se = samples.std(ddof=1) / math.sqrt(len(samples))
        assert se > 0
        assert abs(samples.mean() - exact) < SIGMAS * se, (samples.mean(), exact, se)


def test_shot_layer_without_seed_follows_torch_seed():
    def run():
        torch.manual_seed(21)
        layer = QuantumLayer(multi_term_circuit(), MULTI_TERM, [a], [c], shots=30)
        return layer(torch.tensor([[0.3], [0.8]])).detach().numpy()

    np.testing.assert_array_equal(run(), run())


# ---------------------------------------------------------------------------------------------
# Any BaseEstimatorV2, used as given
# ---------------------------------------------------------------------------------------------


class CountingEstimator(StatevectorEstimator):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def run(self, pubs, *, precision=None):
        self.calls += 1
        return super().run(pubs, precision=precision)


def test_estimator_is_used_and_matches_statevector():
    qc, inputs, weights = entangling_circuit()
    estimator = CountingEstimator()
    w = [0.3, -0.8, 1.9]
    layer = make_layer(qc, ENTANGLING_OBSERVABLES, inputs, weights, weight_values=w, estimator=estimator)
    xs = rand((3, 2), seed=15)
    x = torch.tensor(xs, requires_grad=True)
    y = layer(x)
    assert estimator.calls == 1  # the values and every shifted point, in one call
    y.sum().backward()
    assert estimator.calls == 1
    for row in range(3):
        allv = np.concatenate([xs[row], w])
        np.testing.assert_allclose(y[row].detach().numpy(), sv_expectations(qc, ENTANGLING_OBSERVABLES, inputs + weights, allv),
                                   atol=1e-10)
        grad = sv_gradient(qc, ENTANGLING_OBSERVABLES, inputs + weights, allv)
        np.testing.assert_allclose(x.grad[row].numpy(), grad[:2].sum(1), atol=1e-7)


def test_aer_estimator_exact():
    layer = make_layer(one_qubit(("h", 0), ("ry", a, 0)), [Z], [a], estimator=AerEstimatorV2())
    x = THETAS.clone().requires_grad_(True)
    y = layer(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), -np.sin(THETAS.numpy()), atol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), -np.cos(THETAS.numpy()), atol=1e-10)


def test_noisy_aer_estimator_is_used_as_given():
    """Depolarizing noise p after RX: <Z> = (1 - p) cos x, d/dx = -(1 - p) sin x (density matrix, exact)."""
    p = 0.2
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(p, 1), ["rx"])
    estimator = AerEstimatorV2(options={"backend_options": {"noise_model": noise}})
    layer = make_layer(one_qubit(("rx", a, 0)), [Z], [a], estimator=estimator)
    x = THETAS.clone().requires_grad_(True)
    y = layer(x)
    y.sum().backward()
    t = THETAS.numpy()
    np.testing.assert_allclose(y.detach().numpy(), (1 - p) * np.cos(t), atol=1e-9)
    np.testing.assert_allclose(x.grad.numpy(), -(1 - p) * np.sin(t), atol=1e-9)


@pytest.mark.parametrize("gate", ["u", "r"])
def test_regression_noise_model_on_u_and_r_gates_still_applies(gate):
    """The layer rewrites trainable gates (u -> rz ry rz, r -> u3 -> rz ry rz, crx -> ry/cx...) before handing
    the circuit to the estimator, so a noise model on 'u' or 'r' no longer applies: the layer's value differs
    from what the same estimator returns for the user's circuit (which has the noise)."""
    p = 0.2
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(p, 1), [gate])
    estimator = AerEstimatorV2(options={"backend_options": {"noise_model": noise}})
    qc = QuantumCircuit(2)
    qc.x(0)
    if gate == "u":
        qc.u(a, 0, 0, 1)
    else:
        qc.r(a, math.pi / 2, 1)
    layer = make_layer(qc, [SparsePauliOp("ZI")], [a], estimator=estimator)
    direct = float(estimator.run([(qc, SparsePauliOp("ZI"), [0.3])]).result()[0].data.evs)
    assert direct == pytest.approx((1 - p) * math.cos(0.3), abs=1e-9)  # the noise acts on the user's circuit
    assert layer(torch.tensor([[0.3]], dtype=torch.float64)).item() == pytest.approx(direct, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# No DeprecationWarning in any mode
# ---------------------------------------------------------------------------------------------


def _noisy_estimator():
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ["ry", "rx"])
    return AerEstimatorV2(options={"backend_options": {"noise_model": noise}})


@pytest.mark.parametrize(
    "kwargs",
    [lambda: {}, lambda: {"shots": 10, "seed": 1}, lambda: {"estimator": AerEstimatorV2()},
     lambda: {"estimator": StatevectorEstimator()}, lambda: {"estimator": _noisy_estimator()}],
    ids=["exact", "shots", "aer-estimator", "statevector-estimator", "noisy-aer-estimator"],
)
def test_no_deprecation_warning(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        qc, inputs, weights = entangling_circuit()
        layer = QuantumLayer(qc, ENTANGLING_OBSERVABLES, inputs, weights, **kwargs())
        x = torch.tensor(rand((2, 2), seed=16), dtype=torch.float32, requires_grad=True)
        layer(x).sum().backward()
        assert x.grad is not None and layer.weight.grad is not None


# ---------------------------------------------------------------------------------------------
# Bad input: a ValueError or TypeError that names the problem
# ---------------------------------------------------------------------------------------------


def _ok_circuit():
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.cx(0, 1)
    qc.rx(c, 1)
    return qc


ZZ = SparsePauliOp("ZZ")


@pytest.fixture(scope="module")
def ok_layer():
    return QuantumLayer(_ok_circuit(), [ZZ], [a], [c])


@pytest.mark.parametrize(
    "x, error, match",
    [
        (lambda: torch.tensor([0.1, 0.2]), ValueError, r"shape \(batch, 1\)"),
        (lambda: torch.zeros(3, 2), ValueError, r"shape \(batch, 1\).*\(3, 2\)"),
        (lambda: torch.zeros(3, 1, 1), ValueError, "shape"),
        (lambda: torch.zeros(3, 1, dtype=torch.int64), TypeError, "floating"),
        (lambda: np.zeros((3, 1)), TypeError, "torch.Tensor"),
        (lambda: [[0.1]], TypeError, "torch.Tensor"),
        (lambda: torch.tensor([[0.1], [float("nan")]]), ValueError, "NaN"),
        (lambda: torch.tensor([[float("inf")]]), ValueError, "infinite"),
        (lambda: torch.zeros(0, 1), ValueError, "empty"),
    ],
    ids=["1-D", "wrong-features", "3-D", "int", "numpy", "list", "nan", "inf", "empty"],
)
def test_bad_forward_input(ok_layer, x, error, match):
    with pytest.raises(error, match=match):
        ok_layer(x())


def test_nan_weights_are_refused():
    layer = QuantumLayer(_ok_circuit(), [ZZ], [a], [c])
    with torch.no_grad():
        layer.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="weights"):
        layer(torch.zeros(1, 1))


class NotAnEstimator:
    def run(self, pubs):
        raise AssertionError("must not be called")


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: ([SparsePauliOp("Z")], [a], [c], {}), ValueError, "observable 0 acts on 1 qubits but the circuit has 2"),
        (lambda: ([ZZ, SparsePauliOp("ZZZ")], [a], [c], {}), ValueError, "observable 1 acts on 3"),
        (lambda: ([SparsePauliOp(["ZZ", "XX"], [1.0, 0.5j])], [a], [c], {}), ValueError, "Hermitian"),
        (lambda: ([], [a], [c], {}), ValueError, "non-empty list"),
        (lambda: (ZZ, [a], [c], {}), ValueError, "list"),
        (lambda: (["ZZ"], [a], [c], {}), TypeError, "SparsePauliOp"),
        (lambda: ([ZZ], [a, d], [c], {}), ValueError, "not in the circuit: d"),
        (lambda: ([ZZ], [a], [c, d], {}), ValueError, "not in the circuit: d"),
        (lambda: ([ZZ], [a, a], [c], {}), ValueError, "more than once: a"),
        (lambda: ([ZZ], [a, c], [c], {}), ValueError, "more than once: c"),
        (lambda: ([ZZ], [a], [], {}), ValueError, "neither input nor weight: c"),
        (lambda: ([ZZ], ["a"], [c], {}), TypeError, "Parameter"),
        (lambda: ([ZZ], [a], [c], {"shots": -3}), ValueError, "shots"),
        (lambda: ([ZZ], [a], [c], {"shots": 0}), ValueError, "shots must be a positive integer, got 0"),
        (lambda: ([ZZ], [a], [c], {"shots": True}), ValueError, "shots must be a positive integer, got True"),
        (lambda: ([ZZ], [a], [c], {"shots": 2.5}), ValueError, "shots must be a positive integer, got 2.5"),
        (lambda: ([ZZ], [a], [c], {"shots": "100"}), ValueError, "shots"),
        (lambda: ([ZZ], [a], [c], {"shots": 10, "estimator": StatevectorEstimator()}), ValueError, "shots or estimator"),
        (lambda: ([ZZ], [a], [c], {"seed": 1}), ValueError, "seed only applies with shots"),
        (lambda: ([ZZ], [a], [c], {"shots": 10, "seed": -1}), ValueError, "seed"),
        (lambda: ([ZZ], [a], [c], {"shots": 10, "seed": 1.5}), ValueError, "seed"),
        (lambda: ([ZZ], [a], [c], {"estimator": NotAnEstimator()}), TypeError, "BaseEstimatorV2.*NotAnEstimator"),
        (lambda: ([ZZ], [a], [c], {"estimator": StatevectorSampler()}), TypeError, "BaseEstimatorV2"),
    ],
    ids=[
        "obs-narrow", "obs-wide", "non-hermitian", "empty-observables", "bare-sparsepauliop", "str-observable",
        "input-not-in-circuit", "weight-not-in-circuit", "input-twice", "input-and-weight", "unlisted",
        "non-parameter", "shots-negative", "shots-0", "shots-True", "shots-2.5", "shots-str",
        "shots-and-estimator", "seed-without-shots", "seed-negative", "seed-float", "estimator-object",
        "estimator-is-sampler",
    ],
)
def test_bad_construction(build, error, match):
    observables, inputs, weights, kwargs = build()
    with pytest.raises(error, match=match):
        QuantumLayer(_ok_circuit(), observables, inputs, weights, **kwargs)


@pytest.mark.parametrize("kwargs", [{"shots": 10, "seed": 0}, {"estimator": StatevectorEstimator()}],
                         ids=["shots", "estimator"])
def test_non_hermitian_observable_refused_in_every_mode(kwargs):
    with pytest.raises(ValueError, match="observable 1 is not Hermitian"):
        QuantumLayer(_ok_circuit(), [ZZ, SparsePauliOp(["ZZ", "XY"], [1.0, 0.5j])], [a], [c], **kwargs)


@pytest.mark.parametrize(
    "extra, match",
    [
        (lambda qc: qc.measure_all(), "measure"),
        (lambda qc: qc.reset(0), "reset"),
    ],
    ids=["measure", "reset"],
)
def test_non_unitary_circuits_are_refused(extra, match):
    qc = _ok_circuit()
    extra(qc)
    with pytest.raises(ValueError, match=match):
        QuantumLayer(qc, [ZZ], [a], [c])


def test_measurement_with_shots_is_refused_too():
    qc = _ok_circuit()
    qc.measure_all()
    with pytest.raises(ValueError, match="measure"):
        QuantumLayer(qc, [ZZ], [a], [c], shots=10)


@pytest.mark.parametrize("circuit", [lambda: "ry(a)", lambda: _ok_circuit().to_gate(), lambda: None],
                         ids=["str", "gate", "None"])
def test_circuit_must_be_a_quantum_circuit(circuit):
    with pytest.raises(TypeError, match="QuantumCircuit"):
        QuantumLayer(circuit(), [ZZ], [a], [c])


def test_regression_hermitian_observable_with_cancelling_imaginary_terms_accepted():
    """1j*Z - 1j*Z + X is Hermitian (= X): the layer's own check simplifies and accepts it, but the exact
    evaluator hands the unsimplified operator to Aer, which raises 'Input operator is not Hermitian'."""
    obs = SparsePauliOp(["Z", "Z", "X"], [1j, -1j, 1.0])
    layer = make_layer(one_qubit(("ry", a, 0)), [obs], [a])
    assert layer(torch.tensor([[0.4]], dtype=torch.float64)).item() == pytest.approx(math.sin(0.4), abs=1e-10)
