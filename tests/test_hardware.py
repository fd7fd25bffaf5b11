"""Tests of ``helpers.hardware``: a layer transpiled for a (fake, offline) IBM backend
and an estimator that counts what it is asked for.
"""

import math
import warnings

import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_ibm_runtime.executor_estimator import Estimator
from qiskit_ibm_runtime.fake_provider import FakeManilaV2

from helpers.circuits import one_qubit_circuit
from helpers.hardware import CountingEstimator, layer_for_backend
from helpers.quantum import CircuitRewrittenWarning

THETAS = torch.tensor([[-2.0], [-0.3], [0.0], [0.7], [2.5]], dtype=torch.float64)


@pytest.fixture(scope="module")
def backend():
    return FakeManilaV2()


def exact_layer(backend, estimator=None):
    circuit, theta = one_qubit_circuit()
    return layer_for_backend(
        circuit,
        SparsePauliOp("Z"),
        [theta],
        backend=backend,
        estimator=estimator or AerEstimatorV2(),
    )


def test_the_layer_gets_an_isa_circuit_and_a_mapped_observable(backend):
    layer = exact_layer(backend)
    native = set(backend.operation_names)
    assert {i.operation.name for i in layer.circuit.data} <= native
    assert layer.circuit.num_qubits == backend.num_qubits
    physical = layer.circuit.layout.initial_index_layout(filter_ancillas=True)[0]
    label = layer.observables[0].paulis[0].to_label()
    assert label[::-1][physical] == "Z" and set(label) == {"I", "Z"}


def test_values_and_gradients_survive_transpilation(backend):
    # a noiseless estimator: the transpiled layer still computes -sin and -cos
    layer = exact_layer(backend)
    thetas = THETAS.clone().requires_grad_()
    values = layer(thetas)
    values.sum().backward()
    assert torch.allclose(values[:, 0], -torch.sin(THETAS[:, 0]), atol=1e-6)
    assert torch.allclose(thetas.grad[:, 0], -torch.cos(THETAS[:, 0]), atol=1e-6)


def test_transpiling_first_leaves_nothing_to_rewrite(backend):
    x, w = Parameter("x"), Parameter("w")
    circuit = QuantumCircuit(2)
    circuit.ry(x, 0)
    circuit.cry(w, 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CircuitRewrittenWarning)
        layer = layer_for_backend(
            circuit,
            [SparsePauliOp("ZZ")],
            [x],
            [w],
            backend=backend,
            estimator=AerEstimatorV2(),
        )
    assert not layer.shiftable.rewritten
    with torch.no_grad():
        layer.weight.fill_(0.8)
        value = layer(torch.tensor([[0.5]], dtype=torch.float64))[0, 0].item()
    # <ZZ> after RY(x) on 0 and CRY(w) 0 -> 1: qubit 0 reads 1 with probability p1,
    # and only then is qubit 1 rotated, to <Z> = cos(w)
    p1 = math.sin(0.5 / 2) ** 2
    expected = (1 - p1) - p1 * math.cos(0.8)
    assert value == pytest.approx(expected, abs=1e-6)


def test_counting_estimator_counts_one_job_per_call(backend):
    counter = CountingEstimator(AerEstimatorV2())
    layer = exact_layer(backend, estimator=counter)
    thetas = THETAS.clone().requires_grad_()
    layer(thetas).sum().backward()
    # the batch and its two shifted copies, in one call
    assert (counter.jobs, counter.parameter_sets) == (1, 3 * len(THETAS))
    with torch.no_grad():
        layer(THETAS)
    assert (counter.jobs, counter.parameter_sets) == (2, 4 * len(THETAS))


def test_counting_estimator_counts_an_unparameterized_pub_once():
    circuit = QuantumCircuit(1)
    circuit.h(0)
    counter = CountingEstimator(AerEstimatorV2())
    result = counter.run([(circuit, SparsePauliOp("X"))]).result()
    assert result[0].data.evs == pytest.approx(1.0)
    assert (counter.jobs, counter.parameter_sets) == (1, 1)


def test_chapter_8_hardware_options_run_in_local_testing_mode(backend):
    # the options of chapter 8's hardware cells, on a fake backend: seeded and offline
    options = {
        "default_shots": 100,
        "resilience_level": 1,
        "max_execution_time": 300,
        "simulator": {"seed_simulator": 1},
    }
    layer = exact_layer(backend, estimator=Estimator(mode=backend, options=options))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            values = layer(torch.tensor([[-math.pi / 2], [math.pi / 2]]))[:, 0]
    assert values[0] > 0.8 and values[1] < -0.8
