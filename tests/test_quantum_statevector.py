"""Tests of ``helpers.quantum.statevector`` and ``QuantumLayer(simulator="torch")``:
values and gradients of both gradient modes against the Aer layer (1e-10) for every
supported circuit, gradcheck and gradgradcheck through the backpropagation path, wide
circuits against Qiskit's ``Statevector``, devices, and the refused combinations.
"""

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp, Statevector

from helpers.quantum import ExactAer, QuantumLayer, TorchStatevector, shiftable_form
from helpers.reproducibility import seed_everything
from quantum_reference import (
    ENTANGLING_OBSERVABLES,
    ENTANGLING_WEIGHTS,
    SUPPORTED_CASES,
    _case,
    _observables,
    a,
    b,
    c,
    entangling_circuit,
    entangling_layer,
    jacobians,
    make_layer,
    rand,
    sv_expectations,
    sv_gradient,
)

EXACT = 1e-10
GRADIENT_MODES = [{"simulator": "torch"}, {"simulator": "torch", "gradient": "shift"}]
MODE_IDS = ["backprop", "shift"]


def _functional(layer):
    def f(x, w):
        return torch.func.functional_call(layer, {"weight": w}, (x,))

    return f


# --------------------------------------------------------------------------------------
# Agreement with the Aer layer: values and gradients, every supported circuit
# --------------------------------------------------------------------------------------


def _supported(name):
    """Circuit, observables, inputs, weights and their values for a supported case
    (input a, the other parameters are weights), or the entangling layer."""
    if name == "entangling":
        qc, inputs, weights = entangling_circuit()
        return qc, ENTANGLING_OBSERVABLES, inputs, weights, ENTANGLING_WEIGHTS
    qc = _case(*SUPPORTED_CASES[name])
    weights = sorted((p for p in qc.parameters if p != a), key=lambda p: p.name)
    values = rand(len(weights), seed=7, low=-2, high=2)
    return qc, _observables(qc.num_qubits), [a], weights, values


@functools.cache
def _aer_reference(name):
    """Values and input/weight Jacobians of the default (Aer) layer at three rows."""
    qc, observables, inputs, weights, values = _supported(name)
    layer = make_layer(qc, observables, inputs, weights, weight_values=values)
    x = torch.tensor(rand((3, len(inputs)), seed=8, low=-2, high=2))
    return x, layer(x).detach().numpy(), *jacobians(layer, x)


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
@pytest.mark.parametrize("kwargs", GRADIENT_MODES, ids=MODE_IDS)
@pytest.mark.parametrize("name", [*SUPPORTED_CASES, "entangling"])
def test_matches_the_aer_layer(name, kwargs):
    qc, observables, inputs, weights, values = _supported(name)
    x, y_aer, dx_aer, dw_aer = _aer_reference(name)
    layer = make_layer(qc, observables, inputs, weights, weight_values=values, **kwargs)
    np.testing.assert_allclose(layer(x).detach().numpy(), y_aer, rtol=0, atol=EXACT)
    dx, dw = jacobians(layer, x)
    np.testing.assert_allclose(dx, dx_aer, rtol=0, atol=EXACT)
    np.testing.assert_allclose(dw, dw_aer, rtol=0, atol=EXACT)


def test_evaluator_matches_exact_aer_on_numpy_arrays():
    qc, inputs, weights = entangling_circuit()
    shiftable = shiftable_form(qc, inputs + weights)
    angles = rand((5, len(shiftable.angle_params)), seed=9)
    ours = TorchStatevector(shiftable, ENTANGLING_OBSERVABLES)(angles)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    aer = ExactAer(shiftable, ENTANGLING_OBSERVABLES)(angles)
    np.testing.assert_allclose(ours, aer, rtol=0, atol=EXACT)


def test_shift_mode_calls_the_torch_evaluator_once_per_step():
    layer = entangling_layer(simulator="torch", gradient="shift")
    calls = []
    evaluate = layer.evaluate
    layer.evaluate = lambda angles: calls.append(angles.shape) or evaluate(angles)
    x = torch.tensor(rand((4, 2), seed=10), requires_grad=True)
    layer(x).sum().backward()
    assert len(calls) == 1 and calls[0][0] > 4  # the batch and its shifted points


# --------------------------------------------------------------------------------------
# Backpropagation: gradcheck, second derivatives, non-affine angles, transforms
# --------------------------------------------------------------------------------------


def _curved_circuit():
    """Non-affine angles: a product of parameters, a sine, a product of differences."""
    qc = QuantumCircuit(2)
    qc.h([0, 1])
    qc.ry(a.sin(), 0)
    qc.rx(a * c, 1)
    qc.cx(0, 1)
    qc.crz((math.pi - a) * (math.pi - b), 1, 0)
    qc.u(b * b, c, a.cos(), 1)
    qc.rzz(c, 0, 1)
    return qc


CURVED_OBSERVABLES = [
    SparsePauliOp.from_list([("ZX", 0.8), ("YY", -0.5)]),
    SparsePauliOp("XI"),
]


def test_gradcheck_through_the_simulation():
    layer = entangling_layer(simulator="torch")
    x = torch.tensor(rand((2, 2), seed=2), requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        _functional(layer), (x, w), eps=1e-6, atol=1e-7, rtol=1e-6
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda: (entangling_circuit(), ENTANGLING_OBSERVABLES),
        lambda: ((_curved_circuit(), [a], [b, c]), CURVED_OBSERVABLES),
    ],
    ids=["entangling", "curved"],
)
def test_gradgradcheck_through_the_simulation(build):
    (qc, inputs, weights), observables = build()
    layer = make_layer(
        qc,
        observables,
        inputs,
        weights,
        weight_values=rand(len(weights), seed=40),
        simulator="torch",
    )
    x = torch.tensor(rand((2, len(inputs)), seed=41), requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(
        _functional(layer), (x, w), eps=1e-6, atol=1e-6, rtol=1e-5
    )


def test_non_affine_angles_match_statevector_and_the_aer_layer():
    qc = _curved_circuit()
    weights = [b, c]
    w = np.array([0.7, -1.3])
    xs = rand((3, 1), seed=12)
    x = torch.tensor(xs)
    torch_layer = make_layer(
        qc, CURVED_OBSERVABLES, [a], weights, weight_values=w, simulator="torch"
    )
    aer_layer = make_layer(qc, CURVED_OBSERVABLES, [a], weights, weight_values=w)
    y = torch_layer(x).detach().numpy()
    dx, dw = jacobians(torch_layer, x)
    dx_aer, dw_aer = jacobians(aer_layer, x)
    np.testing.assert_allclose(dx, dx_aer, rtol=0, atol=EXACT)
    np.testing.assert_allclose(dw, dw_aer, rtol=0, atol=EXACT)
    for row in range(len(xs)):
        values = np.concatenate([xs[row], w])
        np.testing.assert_allclose(
            y[row],
            sv_expectations(qc, CURVED_OBSERVABLES, [a, b, c], values),
            rtol=0,
            atol=EXACT,
        )
        grad = sv_gradient(qc, CURVED_OBSERVABLES, [a, b, c], values)
        np.testing.assert_allclose(dx[row, :, 0], grad[0], atol=1e-7)


def test_hessian_matches_the_shift_rule_hessian():
    qc = _curved_circuit()
    observables = [CURVED_OBSERVABLES[0]]

    def hessian(**kwargs):
        layer = make_layer(qc, observables, [a, b, c], simulator="torch", **kwargs)
        point = torch.tensor([[0.4, -1.1, 0.9]])
        return torch.autograd.functional.hessian(lambda v: layer(v).sum(), point)

    np.testing.assert_allclose(
        hessian().numpy(), hessian(gradient="shift").numpy(), rtol=0, atol=EXACT
    )


# PyTorch's forward mode loads decompositions through torch.jit.script, which warns
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_forward_mode_and_vmap_work_with_backprop():
    """The Aer layer refuses forward mode; the torch simulation is plain PyTorch."""
    layer = entangling_layer(simulator="torch")
    x = torch.tensor(rand((3, 2), seed=13))
    forward = torch.func.jacfwd(layer)(x).detach()
    reverse = torch.func.jacrev(layer)(x).detach()
    np.testing.assert_allclose(forward.numpy(), reverse.numpy(), rtol=0, atol=EXACT)
    per_row = torch.func.vmap(lambda row: layer(row[None])[0])(x).detach()
    np.testing.assert_allclose(per_row.numpy(), layer(x).detach().numpy(), atol=EXACT)


@pytest.mark.parametrize("chunk_size", [1, 2, 5])
def test_chunks_give_the_same_values_and_gradients(chunk_size):
    x = torch.tensor(rand((5, 2), seed=14))
    whole = jacobians(entangling_layer(simulator="torch"), x)
    chunked_layer = entangling_layer(simulator="torch", chunk_size=chunk_size)
    chunked = jacobians(chunked_layer, x)
    for got, expected in zip(chunked, whole):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        chunked_layer(x).detach().numpy(),
        entangling_layer(simulator="torch")(x).detach().numpy(),
        rtol=0,
        atol=1e-14,
    )


def test_nan_angles_are_refused_with_backprop():
    qc = QuantumCircuit(1)
    qc.ry(a.log(), 0)
    layer = QuantumLayer(qc, SparsePauliOp("Z"), [a], simulator="torch")
    with pytest.raises(ValueError, match="angles are NaN or infinite"):
        layer(torch.tensor([[-1.0]]))


# --------------------------------------------------------------------------------------
# Wide circuits: no 2^n x 2^n matrix anywhere
# --------------------------------------------------------------------------------------


def _wide_circuit(n, params):
    """Rotations on every qubit, a ring of CX, two-qubit rotations, then more rotations;
    the parameters are used round-robin."""
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for q in range(n):
        qc.ry(params[q % len(params)] * (1 + q / n), q)
    for q in range(n):
        qc.cx(q, (q + 1) % n)
    qc.rzz(params[0], 0, n - 1)
    qc.rxx(params[-1], n // 2, 1)
    qc.crx(params[1], n - 1, n // 3)
    for q in range(0, n, 3):
        qc.u(params[q % len(params)], 0.3, params[(q + 1) % len(params)], q)
    return qc


def _wide_observables(n):
    return [
        SparsePauliOp("Z" * n),
        SparsePauliOp.from_list(
            [
                ("X" + "I" * (n - 2) + "Y", 0.5),
                ("I" * (n - 3) + "ZZX", -0.4),
                ("I" * n, 0.1),
            ]
        ),
        SparsePauliOp("I" * (n // 2) + "Y" + "I" * (n - n // 2 - 1)),
    ]


@pytest.mark.parametrize("n, rows", [(12, 2), (20, 1)])
def test_wide_circuit_matches_statevector(n, rows):
    params = list(ParameterVector("t", 4))
    qc = _wide_circuit(n, params)
    observables = _wide_observables(n)
    layer = make_layer(qc, observables, params[:2], params[2:], simulator="torch")
    xs = rand((rows, 2), seed=n)
    y = layer(torch.tensor(xs)).detach().numpy()
    w = layer.weight.detach().numpy()
    for row in range(rows):
        values = np.concatenate([xs[row], w])
        state = Statevector(qc.assign_parameters(dict(zip(params, values))))
        expected = [state.expectation_value(o).real for o in observables]
        np.testing.assert_allclose(y[row], expected, rtol=0, atol=EXACT)


def test_wide_circuit_gradients_match_the_aer_layer():
    n = 8
    params = list(ParameterVector("t", 4))
    qc = _wide_circuit(n, params)
    observables = _wide_observables(n)
    w = rand(2, seed=15)
    x = torch.tensor(rand((2, 2), seed=16))
    layers = [
        make_layer(qc, observables, params[:2], params[2:], weight_values=w, **kwargs)
        for kwargs in ({}, {"simulator": "torch"})
    ]
    (dx_aer, dw_aer), (dx, dw) = (jacobians(layer, x) for layer in layers)
    np.testing.assert_allclose(dx, dx_aer, rtol=0, atol=EXACT)
    np.testing.assert_allclose(dw, dw_aer, rtol=0, atol=EXACT)


# --------------------------------------------------------------------------------------
# Devices and dtypes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_on_the_inputs_device_and_dtype(dtype):
    layer = entangling_layer(simulator="torch").to(dtype)
    x = torch.tensor(rand((3, 2), seed=17), dtype=dtype, requires_grad=True)
    y = layer(x)
    assert y.device == x.device and y.dtype == dtype
    y.sum().backward()
    assert x.grad.device == x.device and layer.weight.grad.device == x.device


def test_simulator_output_is_float64_on_the_angles_device():
    qc, inputs, weights = entangling_circuit()
    shiftable = shiftable_form(qc, inputs + weights)
    simulator = TorchStatevector(shiftable, ENTANGLING_OBSERVABLES)
    angles = torch.tensor(rand((2, len(shiftable.angle_params)), seed=18))
    out = simulator.expectations(angles.float())
    assert out.dtype == torch.float64 and out.device == angles.device
    assert out.shape == (2, len(ENTANGLING_OBSERVABLES))
    n_angles = len(shiftable.angle_params)
    with pytest.raises(ValueError, match=rf"shape \(batch, {n_angles}\), got \(2, 3\)"):
        simulator.expectations(angles[:, :3])


def _values_and_gradients(layer, x):
    """Values and the gradients of their sum (input, weights), each checked to be on
    the input's device, as NumPy arrays."""
    x = x.clone().requires_grad_(True)
    y = layer(x)
    gx, gw = torch.autograd.grad(y.sum(), [x, layer.weight])
    assert y.device == gx.device == gw.device == x.device
    return [t.detach().cpu().numpy() for t in (y, gx, gw)]


NO_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)"
)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=NO_CUDA)])
@pytest.mark.parametrize("kwargs", GRADIENT_MODES, ids=MODE_IDS)
def test_device_matches_the_cpu(device, kwargs):
    seed_everything()  # deterministic mode, as in the chapters (and cuBLAS's setting)
    x = torch.tensor(rand((4, 2), seed=19))
    layer = entangling_layer(**kwargs).to(device)
    got = _values_and_gradients(layer, x.to(device))
    expected = _values_and_gradients(entangling_layer(**kwargs), x)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)
    # backprop simulates on the device itself; the shift rule's evaluator on the CPU
    simulated_on = {d.type for d in layer.evaluate._on_device}
    assert simulated_on == {device if layer.gradient == "backprop" else "cpu"}


# --------------------------------------------------------------------------------------
# Options: names, refused combinations, repr, warnings
# --------------------------------------------------------------------------------------


def _one_qubit():
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.ry(a, 0)
    return qc


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"simulator": "torch", "shots": 100}, "takes no shots"),
        (
            {"simulator": "torch", "estimator": StatevectorEstimator()},
            "either simulator='torch' or an estimator",
        ),
        (
            {"simulator": "pennylane"},
            "simulator must be 'aer' or 'torch', got 'pennylane'",
        ),
        ({"simulator": None}, "simulator must be 'aer' or 'torch', got None"),
        (
            {"simulator": "torch", "gradient": "finite"},
            "gradient must be 'shift' or 'backprop', got 'finite'",
        ),
        ({"gradient": "backprop"}, "gradient='backprop' needs simulator='torch'"),
        (
            {"gradient": "backprop", "shots": 10},
            "gradient='backprop' needs simulator='torch'",
        ),
        (
            {"gradient": "backprop", "estimator": StatevectorEstimator()},
            "gradient='backprop' needs simulator='torch'",
        ),
    ],
    ids=[
        "torch-shots",
        "torch-estimator",
        "unknown-simulator",
        "simulator-none",
        "unknown-gradient",
        "backprop-aer",
        "backprop-shots",
        "backprop-estimator",
    ],
)
def test_bad_combinations_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QuantumLayer(_one_qubit(), SparsePauliOp("Z"), [a], **kwargs)


def test_simulator_and_gradient_are_keyword_only():
    with pytest.raises(TypeError):
        QuantumLayer(_one_qubit(), SparsePauliOp("Z"), [a], [], None, None, None)


def test_repr_names_the_simulator_and_the_gradient():
    def text(**kwargs):
        return repr(QuantumLayer(_one_qubit(), SparsePauliOp("Z"), [a], **kwargs))

    assert text().endswith("outputs=1, ExactAer)")  # unchanged default
    assert text(gradient="shift").endswith("outputs=1, ExactAer)")
    assert text(simulator="torch").endswith("TorchStatevector, gradient=backprop)")
    assert text(simulator="torch", gradient="shift").endswith(
        "TorchStatevector, gradient=shift)"
    )


@pytest.mark.parametrize("kwargs", GRADIENT_MODES, ids=MODE_IDS)
def test_no_warning(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = entangling_layer(**kwargs)
        x = torch.tensor(rand((2, 2), seed=20), requires_grad=True)
        layer(x).sum().backward()
        assert x.grad is not None and layer.weight.grad is not None


def test_an_observable_that_cancels_to_zero_gives_zero():
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    observables = [SparsePauliOp(["ZZ", "ZZ"], [1.0, -1.0]), SparsePauliOp("IX")]
    layer = make_layer(qc, observables, [a], simulator="torch")
    x = torch.tensor([[0.3]], dtype=torch.float64, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), [[0.0, math.sin(0.3)]], atol=EXACT)
    np.testing.assert_allclose(x.grad.numpy(), [[math.cos(0.3)]], atol=EXACT)


@pytest.mark.parametrize("simulator", ["aer", "torch"])
def test_all_zero_observables_give_zero_values_and_zero_gradients(simulator):
    qc = QuantumCircuit(1)
    qc.ry(a, 0)
    layer = make_layer(qc, [SparsePauliOp("Z", 0.0)], [a], simulator=simulator)
    x = torch.tensor([[0.3], [1.1]], dtype=torch.float64, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), np.zeros((2, 1)), atol=EXACT)
    np.testing.assert_allclose(x.grad.numpy(), np.zeros((2, 1)), atol=EXACT)
