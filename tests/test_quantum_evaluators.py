"""Tests of ``helpers.quantum.evaluators`` through the layer: real shots (reproducible,
unbiased) and any ``BaseEstimatorV2`` used as given.
"""

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit, transpile
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from helpers.quantum import CircuitRewrittenWarning, QuantumLayer
from quantum_reference import (
    ENTANGLING_OBSERVABLES,
    SIGMAS,
    THETAS,
    Z,
    a,
    c,
    entangling_circuit,
    make_layer,
    one_qubit,
    rand,
    sv_expectations,
    sv_gradient,
)

# --------------------------------------------------------------------------------------
# Shots: real sampling, reproducible, unbiased
# --------------------------------------------------------------------------------------


def multi_term_circuit():
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(c, 1)
    qc.cx(0, 1)
    qc.ry(a + c, 1)
    return qc


MULTI_TERM = [
    SparsePauliOp.from_list(
        [("XY", 0.6), ("ZZ", -0.5), ("YI", 0.4), ("IX", 0.3), ("II", 0.2)]
    ),
    SparsePauliOp("XX"),
]


def multi_term_layer(weight, **kwargs):
    """A float64 layer of ``multi_term_circuit`` with outputs ``MULTI_TERM``."""
    return make_layer(
        multi_term_circuit(), MULTI_TERM, [a], [c], weight_values=[weight], **kwargs
    )


@pytest.mark.parametrize("observable", ["Z", "X", "Y"])
def test_one_shot_gives_plus_or_minus_one(observable):
    layer = make_layer(
        one_qubit(("ry", a, 0), ("rz", c, 0)),
        [SparsePauliOp(observable)],
        [a],
        [c],
        weight_values=[0.8],
        shots=1,
        seed=11,
    )
    x = torch.tensor(rand((40, 1), seed=10))
    y = layer(x).detach().numpy()
    assert set(np.unique(y)) <= {-1.0, 1.0}
    # both outcomes occur: it is sampling, not a sign of the exact value
    assert len(np.unique(y)) == 2


def test_shot_values_are_multiples_of_two_over_n():
    shots = 7
    observables = [
        SparsePauliOp("ZZ"),
        SparsePauliOp.from_list([("XI", 1.0), ("II", 0.25)]),
    ]
    layer = make_layer(
        multi_term_circuit(),
        observables,
        [a],
        [c],
        weight_values=[0.5],
        shots=shots,
        seed=12,
    )
    y = layer(torch.tensor(rand((30, 1), seed=13))).detach().numpy()
    k0 = (y[:, 0] + 1) * shots / 2
    k1 = (y[:, 1] - 0.25 + 1) * shots / 2
    np.testing.assert_allclose(k0, np.round(k0), atol=1e-9)
    np.testing.assert_allclose(k1, np.round(k1), atol=1e-9)
    assert np.all((k0 >= -1e-9) & (k0 <= shots + 1e-9))
    exact = np.array(
        [
            sv_expectations(multi_term_circuit(), observables, [a, c], [x, 0.5])
            for x in rand((30, 1), seed=13)[:, 0]
        ]
    )
    assert np.abs(y - exact).max() > 1e-3  # really sampled


def test_same_seed_same_outputs_different_seed_different():
    def run(seed):
        layer = multi_term_layer(0.5, shots=50, seed=seed)
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
    layer = multi_term_layer(0.5, shots=50, seed=5)
    x = torch.tensor(rand((6, 1), seed=14))
    assert not np.array_equal(layer(x).detach().numpy(), layer(x).detach().numpy())


def test_shot_results_are_unbiased_for_multi_term_observables():
    """Mean over seeds (and independent rows) of the sampled values = the exact value,
    within 5 SE.
    """
    shots, seeds, rows = 100, 6, 50
    x_value, w_value = 0.9, -0.6
    exact = sv_expectations(
        multi_term_circuit(), MULTI_TERM, [a, c], [x_value, w_value]
    )
    samples = []
    for seed in range(seeds):
        layer = multi_term_layer(w_value, shots=shots, seed=seed)
        samples.append(
            layer(torch.full((rows, 1), x_value, dtype=torch.float64)).detach().numpy()
        )
    samples = np.concatenate(samples)
    mean, se = samples.mean(0), samples.std(0, ddof=1) / math.sqrt(len(samples))
    assert np.all(se > 0)
    assert np.all(np.abs(mean - exact) < SIGMAS * se), (mean, exact, se)


def test_shot_gradients_are_unbiased():
    """Mean over seeds of the sampled parameter-shift gradients = the exact gradient,
    within 5 SE.
    """
    shots, seeds, rows = 50, 8, 12
    x_value, w_value = 0.9, -0.6
    # (params, outputs)
    grad = sv_gradient(multi_term_circuit(), MULTI_TERM, [a, c], [x_value, w_value])
    x_grads, w_grads = [], []
    for seed in range(seeds):
        layer = multi_term_layer(w_value, shots=shots, seed=seed)
        x = torch.full((rows, 1), x_value, dtype=torch.float64, requires_grad=True)
        y = layer(x)
        # upstream gradient mixes both outputs
        (y[:, 0] + 0.5 * y[:, 1]).sum().backward()
        x_grads.append(x.grad.numpy()[:, 0])
        w_grads.append(layer.weight.grad.item() / rows)
    for samples, exact in [
        (np.concatenate(x_grads), grad[0, 0] + 0.5 * grad[0, 1]),
        (np.array(w_grads), grad[1, 0] + 0.5 * grad[1, 1]),
    ]:
        se = samples.std(ddof=1) / math.sqrt(len(samples))
        assert se > 0
        assert abs(samples.mean() - exact) < SIGMAS * se, (samples.mean(), exact, se)


def test_shot_layer_without_seed_follows_torch_seed():
    def run():
        torch.manual_seed(21)
        layer = QuantumLayer(multi_term_circuit(), MULTI_TERM, [a], [c], shots=30)
        return layer(torch.tensor([[0.3], [0.8]])).detach().numpy()

    np.testing.assert_array_equal(run(), run())


# --------------------------------------------------------------------------------------
# Any BaseEstimatorV2, used as given
# --------------------------------------------------------------------------------------


class CountingEstimator(StatevectorEstimator):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def run(self, pubs, *, precision=None):
        self.calls += 1
        return super().run(pubs, precision=precision)


# the warning is tested on its own
@pytest.mark.filterwarnings("ignore::helpers.quantum.CircuitRewrittenWarning")
def test_estimator_is_used_and_matches_statevector():
    qc, inputs, weights = entangling_circuit()
    estimator = CountingEstimator()
    w = [0.3, -0.8, 1.9]
    layer = make_layer(
        qc,
        ENTANGLING_OBSERVABLES,
        inputs,
        weights,
        weight_values=w,
        estimator=estimator,
    )
    xs = rand((3, 2), seed=15)
    x = torch.tensor(xs, requires_grad=True)
    y = layer(x)
    assert estimator.calls == 1  # the values and every shifted point, in one call
    y.sum().backward()
    assert estimator.calls == 1
    for row in range(3):
        allv = np.concatenate([xs[row], w])
        np.testing.assert_allclose(
            y[row].detach().numpy(),
            sv_expectations(qc, ENTANGLING_OBSERVABLES, inputs + weights, allv),
            atol=1e-10,
        )
        grad = sv_gradient(qc, ENTANGLING_OBSERVABLES, inputs + weights, allv)
        np.testing.assert_allclose(x.grad[row].numpy(), grad[:2].sum(1), atol=1e-7)


def test_aer_estimator_exact():
    layer = make_layer(
        one_qubit(("h", 0), ("ry", a, 0)), [Z], [a], estimator=AerEstimatorV2()
    )
    x = THETAS.clone().requires_grad_(True)
    y = layer(x)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), -np.sin(THETAS.numpy()), atol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), -np.cos(THETAS.numpy()), atol=1e-10)


def test_noisy_aer_estimator_is_used_as_given():
    """Depolarizing noise p after RX: <Z> = (1 - p) cos x, d/dx = -(1 - p) sin x
    (density matrix, exact).
    """
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
    """The layer rewrites trainable gates (u -> rz ry rz, r -> u3 -> rz ry rz,
    crx -> ry/cx...) before handing the circuit to the estimator, so a noise model on
    'u' or 'r' no longer applies: the layer's value differs from what the same
    estimator returns for the user's circuit (which has the noise)."""
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
    direct = float(
        estimator.run([(qc, SparsePauliOp("ZI"), [0.3])]).result()[0].data.evs
    )
    # the noise acts on the user's circuit
    assert direct == pytest.approx((1 - p) * math.cos(0.3), abs=1e-9)
    assert layer(torch.tensor([[0.3]], dtype=torch.float64)).item() == pytest.approx(
        direct, abs=1e-9
    )


# --------------------------------------------------------------------------------------
# A noise model keyed on a gate the layer rewrites: never silent
# --------------------------------------------------------------------------------------


def _cry_circuit():
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cry(a, 0, 1)
    return qc


def _noise_on(gates, qubits):
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.5, qubits), gates)
    return AerEstimatorV2(
        options={"backend_options": {"method": "density_matrix", "noise_model": noise}}
    )


def test_rewritten_gate_under_an_estimator_warns_naming_it():
    with pytest.warns(
        CircuitRewrittenWarning, match=r"gates cry of your circuit.*transpile"
    ):
        QuantumLayer(
            _cry_circuit(), [SparsePauliOp("ZI")], [a], estimator=_noise_on(["cry"], 2)
        )


@pytest.mark.parametrize(
    "kwargs", [{}, {"shots": 10, "seed": 1}], ids=["exact", "shots"]
)
def test_no_warning_where_the_rewrite_is_exact_by_construction(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CircuitRewrittenWarning)
        QuantumLayer(_cry_circuit(), [SparsePauliOp("ZI")], [a], **kwargs)


def test_no_warning_for_a_circuit_the_estimator_receives_gate_for_gate():
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.cx(0, 1)
    # a sub-circuit of basis gates: nothing a noise model names changes
    qc.append(_sub_block(), [0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CircuitRewrittenWarning)
        QuantumLayer(qc, [SparsePauliOp("ZZ")], [a], [c], estimator=AerEstimatorV2())


def _sub_block():
    sub = QuantumCircuit(2)
    sub.rz(c, 1)
    sub.cx(1, 0)
    return sub


def test_transpiled_circuit_keeps_the_noise_on_the_gates_the_user_means():
    """The pattern the warning asks for: transpile first; then the layer's values are
    the estimator's own.
    """
    estimator = _noise_on(["ry", "rz", "sx", "x"], 1)
    basis = transpile(
        _cry_circuit(), basis_gates=["ry", "rz", "cx", "sx", "x"], optimization_level=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", CircuitRewrittenWarning)
        layer = make_layer(
            basis, [SparsePauliOp("ZI"), SparsePauliOp("XX")], [a], estimator=estimator
        )
    x = np.array([[0.4], [2.1]])
    y = layer(torch.tensor(x)).detach().numpy()
    direct = (
        estimator.run(
            [(basis, [[SparsePauliOp("ZI"), SparsePauliOp("XX")]], x[:, None, :])]
        )
        .result()[0]
        .data.evs
    )
    np.testing.assert_allclose(y, direct, atol=1e-10)
    noiseless = sv_expectations(
        basis, [SparsePauliOp("ZI"), SparsePauliOp("XX")], [a], x[1]
    )
    assert np.abs(y[1] - noiseless).max() > 0.05  # the noise really applies


# --------------------------------------------------------------------------------------
# Copies of a shots layer: the same random stream, unless reseeded
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copy_of_a_shot_layer_continues_the_same_stream_until_reseeded(how):
    layer = make_layer(one_qubit(("ry", a, 0)), [Z], [a], shots=50, seed=3)
    x = torch.tensor(rand((20, 1), seed=70))
    with torch.no_grad():
        layer(x)  # advance the stream a little first
        twin = (
            copy.deepcopy(layer)
            if how == "deepcopy"
            else pickle.loads(pickle.dumps(layer))
        )
        first, second = layer(x), twin(x)
        # identical noise: documented in QuantumLayer's docstring
        assert torch.equal(first, second)
        twin.reseed(4)
        assert not torch.equal(layer(x), twin(x))
        layer.reseed(4)
        twin.reseed(4)
        assert torch.equal(layer(x), twin(x))


def test_reseed_is_refused_without_shots():
    with pytest.raises(ValueError, match="reseed only applies with shots"):
        make_layer(one_qubit(("ry", a, 0)), [Z], [a]).reseed(1)
