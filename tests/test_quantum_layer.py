"""Tests of ``helpers.quantum.layer``: the autograd function and ``QuantumLayer``
(values, gradients of every order, batching, dtypes, warnings and input checks), against
closed forms, finite differences and Statevector.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorEstimator, StatevectorSampler
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from helpers.quantum import QuantumLayer
from quantum_reference import (
    ENTANGLING_OBSERVABLES,
    SIGMAS,
    THETAS,
    Counter,
    X,
    Y,
    Z,
    a,
    b,
    c,
    d,
    entangling_circuit,
    entangling_layer,
    jacobians,
    make_layer,
    one_qubit,
    rand,
    sv_expectations,
    sv_gradient,
)

# --------------------------------------------------------------------------------------
# Analytic cases
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gates, observable, f, df",
    [
        # the 2020 tutorial's circuit
        ([("h", 0), ("ry", a, 0)], Z, lambda t: -np.sin(t), lambda t: -np.cos(t)),
        ([("rx", a, 0)], Z, np.cos, lambda t: -np.sin(t)),
        ([("ry", a, 0)], Z, np.cos, lambda t: -np.sin(t)),
        ([("ry", a, 0)], X, np.sin, np.cos),
        ([("rx", a, 0)], Y, lambda t: -np.sin(t), lambda t: -np.cos(t)),
        ([("h", 0), ("rz", a, 0)], X, np.cos, lambda t: -np.sin(t)),
        ([("h", 0), ("p", a, 0)], Y, np.sin, np.cos),
        (
            [("ry", 2 * a + 1, 0)],
            Z,
            lambda t: np.cos(2 * t + 1),
            lambda t: -2 * np.sin(2 * t + 1),
        ),
        ([("rx", -a / 2, 0)], Z, lambda t: np.cos(t / 2), lambda t: -np.sin(t / 2) / 2),
    ],
    ids=[
        "h-ry-Z",
        "rx-Z",
        "ry-Z",
        "ry-X",
        "rx-Y",
        "h-rz-X",
        "h-p-Y",
        "ry(2a+1)-Z",
        "rx(-a/2)-Z",
    ],
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
    """RX(x) RY(w) |0>: <Z> = cos x cos w, d/dx = -sin x cos w, d/dw = -cos x sin w
    (summed over the batch).
    """
    layer = make_layer(
        one_qubit(("rx", a, 0), ("ry", b, 0)), [Z], [a], [b], weight_values=[0.7]
    )
    x = THETAS.clone().requires_grad_(True)
    y = layer(x)
    t, w = THETAS.numpy(), 0.7
    np.testing.assert_allclose(y.detach().numpy(), np.cos(t) * np.cos(w), atol=1e-10)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -np.sin(t) * np.cos(w), atol=1e-10)
    np.testing.assert_allclose(
        layer.weight.grad.numpy(), [np.sum(-np.cos(t) * np.sin(w))], atol=1e-10
    )


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
    np.testing.assert_allclose(
        dx[:, :, 0], np.stack([-np.sin(t), 0 * t, np.cos(t)], 1), atol=1e-10
    )


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
    """Columns of x follow ``input_params``, entries of the weight follow
    ``weight_params``.
    """
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
    expected = sv_expectations(
        qc, observables, list(xs) + list(ws), [0.1, -0.7, 0.2, 0.9]
    )
    np.testing.assert_allclose(layer(x).detach().numpy()[0], expected, atol=1e-10)


# --------------------------------------------------------------------------------------
# gradcheck and finite differences on entangling circuits with several observables
# --------------------------------------------------------------------------------------


def test_gradcheck_exact_inputs_and_weights():
    qc, inputs, weights = entangling_circuit()
    layer = entangling_layer()
    x = torch.tensor(rand((2, 2), seed=2), requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)

    def f(x, w):
        return torch.func.functional_call(layer, {"weight": w}, (x,))

    assert torch.autograd.gradcheck(f, (x, w), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_through_a_classical_layer():
    """Linear -> QuantumLayer -> Linear, float64: gradients reach the classical weights
    correctly.
    """
    qc, inputs, weights = entangling_circuit()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 2),
        QuantumLayer(qc, ENTANGLING_OBSERVABLES, inputs, weights),
        torch.nn.Linear(3, 1),
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
        np.testing.assert_allclose(
            y[row],
            sv_expectations(qc, ENTANGLING_OBSERVABLES, params, allv),
            atol=1e-10,
        )
        # (params, outputs)
        grad = sv_gradient(qc, ENTANGLING_OBSERVABLES, params, allv)
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


# --------------------------------------------------------------------------------------
# Batching: one evaluator call per training step, no loop over samples
# --------------------------------------------------------------------------------------


def counting_layer(**kwargs):
    qc, inputs, weights = entangling_circuit()
    layer = entangling_layer(**kwargs)
    layer.evaluate = Counter(layer.evaluate)
    return layer


@pytest.mark.parametrize("batch", [1, 5, 7])
def test_one_call_per_training_step(batch):
    """Forward sends the batch and all its shifted points in one call; backward makes no
    call.
    """
    layer = counting_layer()
    x = torch.tensor(rand((batch, 2), seed=5), requires_grad=True)
    y = layer(x)
    n_angles = len(layer.shiftable.angle_params)
    # every angle depends on some input or weight here: the batch, then two shifted
    # points per angle and sample
    assert layer.evaluate.shapes == [((1 + 2 * n_angles) * batch, n_angles)]
    y.sum().backward()
    assert len(layer.evaluate.shapes) == 1


def test_no_gradient_wanted_means_no_shifted_points():
    """Under torch.no_grad, or when neither the input nor the weights require a
    gradient: values only.
    """
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
    # the rows sit in different packed copies, so agreement is to rounding,
    # not bit for bit
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


# the warning is tested on its own
@pytest.mark.filterwarnings("ignore::helpers.quantum.CircuitRewrittenWarning")
def test_batch_result_equals_per_sample_results_with_an_estimator():
    qc, inputs, weights = entangling_circuit()
    layer = entangling_layer(
        estimator=StatevectorEstimator(),
    )
    xs = torch.tensor(rand((3, 2), seed=7))
    y = layer(xs)
    for i in range(3):
        torch.testing.assert_close(
            layer(xs[i : i + 1]), y[i : i + 1], atol=1e-12, rtol=0
        )


def test_wide_circuit_without_packing():
    """Seven qubits (no room for two copies in one simulation): still exact,
    batch of 3.
    """
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
        np.testing.assert_allclose(
            y[row],
            sv_expectations(qc, observables, [a, c], [xs[row, 0], 0.4]),
            atol=1e-10,
        )


# --------------------------------------------------------------------------------------
# Only the angles that need it are shifted
# --------------------------------------------------------------------------------------


def mixed_circuit():
    """Angles: a (input), 2a (input), c (weight), d (weight), d (weight), a + c (both):
    6 angles.
    """
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
    layer = make_layer(
        mixed_circuit(),
        [SparsePauliOp("ZZ"), SparsePauliOp("XI")],
        [a],
        [c, d],
        weight_values=[0.2, -0.4],
    )
    layer.evaluate = Counter(layer.evaluate)
    x = torch.tensor(rand((batch, 1), seed=9))  # requires_grad False
    layer(x).sum().backward()
    weight_angles = 4  # c, d, d, a + c
    assert layer.evaluate.shapes == [((1 + 2 * weight_angles) * batch, 6)]
    assert x.grad is None and layer.weight.grad is not None


def test_frozen_weights_shift_only_input_angles():
    batch = 3
    layer = make_layer(
        mixed_circuit(), [SparsePauliOp("ZZ")], [a], [c, d], weight_values=[0.2, -0.4]
    )
    layer.weight.requires_grad_(False)
    layer.evaluate = Counter(layer.evaluate)
    x = torch.tensor(rand((batch, 1), seed=9), requires_grad=True)
    layer(x).sum().backward()
    input_angles = 3  # a, 2a, a + c
    assert layer.evaluate.shapes == [((1 + 2 * input_angles) * batch, 6)]
    # the input gradient is still right
    for row in range(batch):
        grad = sv_gradient(
            mixed_circuit(),
            [SparsePauliOp("ZZ")],
            [a, c, d],
            [x[row, 0].item(), 0.2, -0.4],
        )
        assert x.grad[row, 0].item() == pytest.approx(grad[0, 0], abs=1e-7)


def test_no_grad_evaluates_the_batch_only():
    layer = make_layer(mixed_circuit(), [SparsePauliOp("ZZ")], [a], [c, d])
    layer.evaluate = Counter(layer.evaluate)
    with torch.no_grad():
        layer(torch.tensor([[0.1], [0.2]], dtype=torch.float64))
    assert layer.evaluate.shapes == [(2, 6)]


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("weight_dtype", [torch.float32, torch.float64])
def test_dtypes(dtype, weight_dtype):
    layer = QuantumLayer(one_qubit(("rx", a, 0), ("ry", b, 0)), [Z, X], [a], [b]).to(
        weight_dtype
    )
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
    np.testing.assert_allclose(
        y.detach().double().numpy()[:, 0], np.cos(t) * np.cos(0.7), atol=tol
    )
    np.testing.assert_allclose(
        x.grad.double().numpy()[:, 0], -np.sin(t) * np.cos(0.7), atol=tol
    )
    assert layer.weight.grad.item() == pytest.approx(
        np.sum(-np.cos(t) * np.sin(0.7)), abs=tol
    )


def test_default_weights_are_float32_and_layer_double_makes_them_float64():
    layer = QuantumLayer(one_qubit(("rx", a, 0), ("ry", b, 0)), [Z], [a], [b])
    assert layer.weight.dtype == torch.float32
    assert layer.double().weight.dtype == torch.float64


# --------------------------------------------------------------------------------------
# No DeprecationWarning in any mode
# --------------------------------------------------------------------------------------


def _noisy_estimator():
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.05, 1), ["ry", "rx"])
    return AerEstimatorV2(options={"backend_options": {"noise_model": noise}})


# the warning is tested on its own
@pytest.mark.filterwarnings("ignore::helpers.quantum.CircuitRewrittenWarning")
@pytest.mark.parametrize(
    "kwargs",
    [
        lambda: {},
        lambda: {"shots": 10, "seed": 1},
        lambda: {"estimator": AerEstimatorV2()},
        lambda: {"estimator": StatevectorEstimator()},
        lambda: {"estimator": _noisy_estimator()},
    ],
    ids=[
        "exact",
        "shots",
        "aer-estimator",
        "statevector-estimator",
        "noisy-aer-estimator",
    ],
)
def test_no_deprecation_warning(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        qc, inputs, weights = entangling_circuit()
        layer = QuantumLayer(qc, ENTANGLING_OBSERVABLES, inputs, weights, **kwargs())
        x = torch.tensor(rand((2, 2), seed=16), dtype=torch.float32, requires_grad=True)
        layer(x).sum().backward()
        assert x.grad is not None and layer.weight.grad is not None


# --------------------------------------------------------------------------------------
# Bad input: a ValueError or TypeError that names the problem
# --------------------------------------------------------------------------------------


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
        (
            lambda: ([SparsePauliOp("Z")], [a], [c], {}),
            ValueError,
            "observable 0 acts on 1 qubits but the circuit has 2",
        ),
        (
            lambda: ([ZZ, SparsePauliOp("ZZZ")], [a], [c], {}),
            ValueError,
            "observable 1 acts on 3",
        ),
        (
            lambda: ([SparsePauliOp(["ZZ", "XX"], [1.0, 0.5j])], [a], [c], {}),
            ValueError,
            "Hermitian",
        ),
        (lambda: ([], [a], [c], {}), ValueError, "non-empty list"),
        (lambda: ("ZZ", [a], [c], {}), TypeError, "SparsePauliOp or a list of them"),
        (
            lambda: ([ZZ], [a], "c", {}),
            TypeError,
            "weight_params must be a qiskit Parameter or a list",
        ),
        (
            lambda: ([ZZ], 3, [c], {}),
            TypeError,
            "input_params must be a qiskit Parameter or a list",
        ),
        (
            lambda: ([ZZ], [a], [c], {"chunk_size": 0}),
            ValueError,
            "chunk_size must be a positive integer",
        ),
        (lambda: (["ZZ"], [a], [c], {}), TypeError, "SparsePauliOp"),
        (lambda: ([ZZ], [a, d], [c], {}), ValueError, "not in the circuit: d"),
        (lambda: ([ZZ], [a], [c, d], {}), ValueError, "not in the circuit: d"),
        (lambda: ([ZZ], [a, a], [c], {}), ValueError, "more than once: a"),
        (lambda: ([ZZ], [a, c], [c], {}), ValueError, "more than once: c"),
        (lambda: ([ZZ], [a], [], {}), ValueError, "neither input nor weight: c"),
        (lambda: ([ZZ], ["a"], [c], {}), TypeError, "Parameter"),
        (lambda: ([ZZ], [a], [c], {"shots": -3}), ValueError, "shots"),
        (
            lambda: ([ZZ], [a], [c], {"shots": 0}),
            ValueError,
            "shots must be a positive integer, got 0",
        ),
        (
            lambda: ([ZZ], [a], [c], {"shots": True}),
            ValueError,
            "shots must be a positive integer, got True",
        ),
        (
            lambda: ([ZZ], [a], [c], {"shots": 2.5}),
            ValueError,
            "shots must be a positive integer, got 2.5",
        ),
        (lambda: ([ZZ], [a], [c], {"shots": "100"}), ValueError, "shots"),
        (
            lambda: (
                [ZZ],
                [a],
                [c],
                {"shots": 10, "estimator": StatevectorEstimator()},
            ),
            ValueError,
            "shots or estimator",
        ),
        (
            lambda: ([ZZ], [a], [c], {"seed": 1}),
            ValueError,
            "seed only applies with shots",
        ),
        (lambda: ([ZZ], [a], [c], {"shots": 10, "seed": -1}), ValueError, "seed"),
        (lambda: ([ZZ], [a], [c], {"shots": 10, "seed": 1.5}), ValueError, "seed"),
        (
            lambda: ([ZZ], [a], [c], {"estimator": NotAnEstimator()}),
            TypeError,
            "BaseEstimatorV2.*NotAnEstimator",
        ),
        (
            lambda: ([ZZ], [a], [c], {"estimator": StatevectorSampler()}),
            TypeError,
            "BaseEstimatorV2",
        ),
    ],
    ids=[
        "obs-narrow",
        "obs-wide",
        "non-hermitian",
        "empty-observables",
        "observables-str",
        "weights-str",
        "inputs-int",
        "chunk-size-0",
        "str-observable",
        "input-not-in-circuit",
        "weight-not-in-circuit",
        "input-twice",
        "input-and-weight",
        "unlisted",
        "non-parameter",
        "shots-negative",
        "shots-0",
        "shots-True",
        "shots-2.5",
        "shots-str",
        "shots-and-estimator",
        "seed-without-shots",
        "seed-negative",
        "seed-float",
        "estimator-object",
        "estimator-is-sampler",
    ],
)
def test_bad_construction(build, error, match):
    observables, inputs, weights, kwargs = build()
    with pytest.raises(error, match=match):
        QuantumLayer(_ok_circuit(), observables, inputs, weights, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"shots": 10, "seed": 0}, {"estimator": StatevectorEstimator()}],
    ids=["shots", "estimator"],
)
def test_non_hermitian_observable_refused_in_every_mode(kwargs):
    with pytest.raises(ValueError, match="observable 1 is not Hermitian"):
        QuantumLayer(
            _ok_circuit(),
            [ZZ, SparsePauliOp(["ZZ", "XY"], [1.0, 0.5j])],
            [a],
            [c],
            **kwargs,
        )


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


@pytest.mark.parametrize(
    "circuit",
    [lambda: "ry(a)", lambda: _ok_circuit().to_gate(), lambda: None],
    ids=["str", "gate", "None"],
)
def test_circuit_must_be_a_quantum_circuit(circuit):
    with pytest.raises(TypeError, match="QuantumCircuit"):
        QuantumLayer(circuit(), [ZZ], [a], [c])


def test_regression_hermitian_observable_with_cancelling_imaginary_terms_accepted():
    """1j*Z - 1j*Z + X is Hermitian (= X): the layer's own check simplifies and accepts
    it, but the exact evaluator hands the unsimplified operator to Aer, which raises
    'Input operator is not Hermitian'."""
    obs = SparsePauliOp(["Z", "Z", "X"], [1j, -1j, 1.0])
    layer = make_layer(one_qubit(("ry", a, 0)), [obs], [a])
    assert layer(torch.tensor([[0.4]], dtype=torch.float64)).item() == pytest.approx(
        math.sin(0.4), abs=1e-10
    )


# --------------------------------------------------------------------------------------
# Second (and higher) derivatives: the shift rule applied to the shift rule's
# derivatives
# --------------------------------------------------------------------------------------


def test_hessian_of_cos_is_minus_cos():
    """RY(x), <Z> = cos x: d2/dx2 = -cos x
    (once_differentiable used to return 0 here).
    """
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a])
    for x0 in (0.3, 1.0, 2.5):
        hessian = torch.autograd.functional.hessian(
            lambda x: layer(x.reshape(1, 1)).sum(),
            torch.tensor([x0], dtype=torch.float64),
        )
        assert hessian.item() == pytest.approx(-math.cos(x0), abs=1e-12)


def test_gradient_penalty_reaches_the_weights():
    """loss = y + (dy/dx)^2 with RX(x) RY(w): <Z> = cos x cos w, dy/dx = -sin x cos w.
    d loss/dw = -cos x sin w - 2 sin^2 x cos w sin w
    (the penalty term used to vanish)."""
    layer = make_layer(
        one_qubit(("rx", a, 0), ("ry", b, 0)), [Z], [a], [b], weight_values=[0.7]
    )
    x = torch.tensor([[1.2]], dtype=torch.float64, requires_grad=True)
    y = layer(x).sum()
    (dy_dx,) = torch.autograd.grad(y, x, create_graph=True)
    (y + (dy_dx**2).sum()).backward()
    xv, wv = 1.2, 0.7
    expected = -math.cos(xv) * math.sin(wv) - 2 * math.sin(xv) ** 2 * math.cos(
        wv
    ) * math.sin(wv)
    assert layer.weight.grad.item() == pytest.approx(expected, abs=1e-12)


def _functional(layer):
    def f(x, w):
        return torch.func.functional_call(layer, {"weight": w}, (x,))

    return f


def _shared_scaled_curved_circuit():
    """Two qubits, shared, scaled and non-affine angles, entangled: every Hessian entry
    is non-trivial.
    """
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(2 * a - c, 1)
    qc.cx(0, 1)
    qc.crz(c * b, 1, 0)
    qc.ry(b.sin() + a, 1)
    qc.rzz(c, 0, 1)
    return qc


@pytest.mark.parametrize(
    "build",
    [entangling_circuit, lambda: (_shared_scaled_curved_circuit(), [a], [b, c])],
    ids=["entangling", "curved"],
)
def test_gradgradcheck(build):
    qc, inputs, weights = build()
    layer = make_layer(
        qc,
        ENTANGLING_OBSERVABLES
        if len(weights) == 3
        else [SparsePauliOp("ZX"), SparsePauliOp("YY")],
        inputs,
        weights,
        weight_values=rand(len(weights), seed=40),
    )
    x = torch.tensor(rand((2, len(inputs)), seed=41), requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(
        _functional(layer), (x, w), eps=1e-6, atol=1e-5, rtol=1e-4
    )


def test_hessian_matches_statevector_finite_differences():
    qc = _shared_scaled_curved_circuit()
    obs = [SparsePauliOp.from_list([("ZX", 0.8), ("YY", -0.5)])]
    params = [a, b, c]
    point = np.array([0.4, -1.1, 0.9])
    layer = make_layer(qc, obs, params)
    hessian = torch.autograd.functional.hessian(
        lambda v: layer(v[None]).sum(), torch.tensor(point)
    ).numpy()
    h = 1e-4
    reference = np.zeros((3, 3))
    for i in range(3):
        step = np.zeros(3)
        step[i] = h
        reference[i] = (
            sv_gradient(qc, obs, params, point + step)
            - sv_gradient(qc, obs, params, point - step)
        )[:, 0] / (2 * h)
    np.testing.assert_allclose(hessian, reference, atol=1e-6)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)


def test_hessian_cost_is_one_more_call_of_2k_times_1_plus_2k_points():
    """Forward: B(1 + 2K) parameter sets; a Hessian adds one call of 2K B (1 + 2K)
    (vectorized).
    """
    layer = make_layer(
        one_qubit(("rx", a, 0), ("ry", b, 0), ("rz", c, 0), ("ry", a * b, 0)),
        [Z],
        [a, b, c],
    )
    layer.evaluate = Counter(layer.evaluate)
    k, batch = 4, 1  # four angles, all depending on the inputs
    torch.autograd.functional.hessian(
        lambda v: layer(v[None]).sum(),
        torch.tensor([0.1, 0.2, 0.3]).double(),
        vectorize=True,
    )
    assert layer.evaluate.shapes == [
        (batch * (1 + 2 * k), 4),
        (2 * k * batch * (1 + 2 * k), 4),
    ]


def test_third_derivative_is_exact():
    """RY(x), <Z> = cos x: d3/dx3 = sin x, three levels of the shift rule."""
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a])
    x = torch.tensor([[0.8]], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    (g3,) = torch.autograd.grad(g2.sum(), x)
    assert (g.item(), g2.item(), g3.item()) == pytest.approx(
        (-math.sin(0.8), -math.cos(0.8), math.sin(0.8)), abs=1e-12
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"shots": 20000, "seed": 5}, {"estimator": StatevectorEstimator()}],
    ids=["shots", "estimator"],
)
def test_second_derivative_in_every_mode(kwargs):
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a], **kwargs)
    hessian = torch.autograd.functional.hessian(
        lambda x: layer(x.reshape(1, 1)).sum(), torch.tensor([1.0]).double()
    )
    # 1/2 [f(+pi) - f(0)] style noise
    tolerance = SIGMAS * math.sqrt(2 / 20000) if "shots" in kwargs else 1e-12
    assert hessian.item() == pytest.approx(-math.cos(1.0), abs=tolerance)


# --------------------------------------------------------------------------------------
# torch.func: reverse mode and vmap work; forward mode fails with a message that says
# what to use
# --------------------------------------------------------------------------------------


def test_torch_func_grad_jacrev_and_hessian_by_jacrev_twice():
    layer = make_layer(
        one_qubit(("rx", a, 0), ("ry", b, 0)), [Z], [a], [b], weight_values=[0.7]
    )

    def f(x):
        return layer(x.reshape(1, 1)).sum()

    x0 = torch.tensor(0.4, dtype=torch.float64)
    assert torch.func.grad(f)(x0).item() == pytest.approx(
        -math.sin(0.4) * math.cos(0.7), abs=1e-12
    )
    assert torch.func.jacrev(f)(x0).item() == pytest.approx(
        -math.sin(0.4) * math.cos(0.7), abs=1e-12
    )
    second = torch.func.jacrev(torch.func.jacrev(f))(x0).item()
    assert second == pytest.approx(-math.cos(0.4) * math.cos(0.7), abs=1e-12)


def test_vmap_joins_the_batch_in_one_call():
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a])
    layer.evaluate = Counter(layer.evaluate)
    x = torch.tensor(rand((3, 4, 1), seed=50))
    with torch.no_grad():
        y = torch.func.vmap(layer)(x)
    np.testing.assert_allclose(y.numpy(), np.cos(x.numpy()), atol=1e-12)
    assert layer.evaluate.shapes == [(12, 1)]


def test_jacrev_over_a_batch():
    layer = make_layer(one_qubit(("ry", a, 0)), [Z, X], [a])
    x = torch.tensor(rand((3, 1), seed=51))
    jac = torch.func.jacrev(layer)(x).detach()  # (3, 2, 3, 1)
    t = x.numpy()[:, 0]
    np.testing.assert_allclose(jac[:, 0, :, 0].numpy(), np.diag(-np.sin(t)), atol=1e-12)
    np.testing.assert_allclose(jac[:, 1, :, 0].numpy(), np.diag(np.cos(t)), atol=1e-12)


# the FutureWarning comes from inside torch's jacfwd
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
@pytest.mark.parametrize("transform", ["jacfwd", "hessian", "jvp"])
def test_forward_mode_fails_with_a_message_naming_the_alternative(transform):
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a])

    def f(x):
        return layer(x.reshape(1, 1)).sum()

    x0 = torch.tensor(0.4, dtype=torch.float64)
    with pytest.raises(NotImplementedError, match="QuantumLayer.*reverse-mode.*jacrev"):
        if transform == "jvp":
            torch.func.jvp(f, (x0,), (torch.ones_like(x0),))
        else:
            getattr(torch.func, transform)(f)(x0)


# --------------------------------------------------------------------------------------
# Friendlier arguments: what is unambiguous is accepted
# --------------------------------------------------------------------------------------


def test_single_parameter_single_observable_and_none_weights_are_accepted():
    qc = one_qubit(("ry", a, 0))
    layer = make_layer(qc, Z, a, None)
    assert (
        layer.input_params == [a]
        and layer.weight_params == []
        and len(layer.observables) == 1
    )
    assert layer(torch.tensor([[0.5]], dtype=torch.float64)).item() == pytest.approx(
        math.cos(0.5), abs=1e-12
    )


def test_observables_and_parameters_from_any_iterable():
    qc = one_qubit(("rx", a, 0), ("ry", b, 0))
    layer = make_layer(
        qc, (o for o in [Z, X]), (p for p in [a]), iter([b]), weight_values=[0.3]
    )
    y = layer(torch.tensor([[0.5]], dtype=torch.float64))
    assert y.shape == (1, 2) and layer.weight_params == [b]


def test_layer_without_inputs_is_called_without_arguments():
    layer = make_layer(one_qubit(("ry", b, 0)), [Z], None, [b], weight_values=[0.4])
    y = layer()
    assert y.shape == (1, 1) and y.item() == pytest.approx(math.cos(0.4), abs=1e-12)
    y.sum().backward()
    assert layer.weight.grad.item() == pytest.approx(-math.sin(0.4), abs=1e-12)
    with pytest.raises(
        ValueError, match=r"shape \(batch, 0\).*called with no argument"
    ):
        layer(torch.zeros(2, 1, dtype=torch.float64))


def test_layer_with_inputs_called_without_arguments_says_how():
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a])
    with pytest.raises(
        ValueError, match=r"call it with a tensor of shape \(batch, 1\)"
    ):
        layer()


# --------------------------------------------------------------------------------------
# Chunks: at most chunk_size parameter sets per evaluator call, the same numbers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 5, 13, 64])
def test_chunked_calls_give_the_same_values_and_gradients(chunk_size):
    qc, inputs, weights = entangling_circuit()
    x = torch.tensor(rand((7, 2), seed=60))
    results = []
    for size in (chunk_size, 10_000):
        layer = entangling_layer(chunk_size=size)
        layer.evaluate = Counter(layer.evaluate)
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        y.sum().backward()
        results.append((y.detach(), xi.grad, layer.weight.grad, layer.evaluate.shapes))
    (y1, gx1, gw1, shapes), (y2, gx2, gw2, _) = results
    assert max(rows for rows, _ in shapes) <= chunk_size
    # every angle of the circuit is shifted once
    assert sum(rows for rows, _ in shapes) == 7 * (1 + 2 * 11)
    torch.testing.assert_close(y1, y2, atol=1e-13, rtol=0)
    torch.testing.assert_close(gx1, gx2, atol=1e-13, rtol=0)
    torch.testing.assert_close(gw1, gw2, atol=1e-13, rtol=0)


def test_chunked_no_grad_forward():
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a], chunk_size=4)
    layer.evaluate = Counter(layer.evaluate)
    with torch.no_grad():
        y = layer(torch.tensor(rand((10, 1), seed=61)))
    assert layer.evaluate.shapes == [(4, 1), (4, 1), (2, 1)] and y.shape == (10, 1)
