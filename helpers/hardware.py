"""Taking a quantum layer to a device, real or simulated (introduced in chapter 8).

- ``layer_for_backend`` transpiles the circuit to a backend's instruction set *before*
  building the ``QuantumLayer``, and maps the observables onto the physical qubits the
  transpiler chose. The estimator then receives the gates the device really runs, so a
  noise model keyed on their names applies to them, and a real device accepts them.
- ``CountingEstimator`` wraps any estimator and counts the jobs and the parameter sets
  (bound circuits) it is asked for: what costs time and money on a device.

Chapter 8 prints both with ``inspect.getsource``; their lines stay within 78 characters
so that they fit the book's text column.
"""

import numpy as np
from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from helpers.quantum import QuantumLayer


def layer_for_backend(
    circuit,
    observables,
    input_params,
    weight_params=(),
    *,
    backend,
    estimator,
    optimization_level=1,
    seed_transpiler=0,
):
    """A ``QuantumLayer`` whose circuit is first transpiled for ``backend``
    (seeded preset pass manager), with the observables moved to the qubits
    the transpiler chose.

    ``estimator``: any ``BaseEstimatorV2``, for example a noisy simulator of
    the backend, or the device itself through ``qiskit-ibm-runtime``. The
    transpiled circuit becomes the layer's ``circuit``.
    """
    if isinstance(observables, SparsePauliOp):
        observables = [observables]
    pass_manager = generate_preset_pass_manager(
        optimization_level=optimization_level,
        backend=backend,
        seed_transpiler=seed_transpiler,
    )
    isa_circuit = pass_manager.run(circuit)
    mapped = [o.apply_layout(isa_circuit.layout) for o in observables]
    return QuantumLayer(
        isa_circuit,
        mapped,
        input_params,
        weight_params,
        estimator=estimator,
    )


class CountingEstimator(BaseEstimatorV2):
    """Passes every call on to ``estimator`` and counts what it asked for.

    ``jobs`` counts ``run`` calls, one job each on a device;
    ``parameter_sets`` counts the bound circuits in their PUBs. A device
    runs each of those once per shot (and per measurement basis that the
    observables need).
    """

    def __init__(self, estimator):
        super().__init__()
        self.estimator = estimator
        self.jobs = 0
        self.parameter_sets = 0

    def run(self, pubs, *, precision=None):
        pubs = [EstimatorPub.coerce(pub) for pub in pubs]
        self.jobs += 1
        self.parameter_sets += sum(
            int(np.prod(pub.parameter_values.shape)) for pub in pubs
        )
        return self.estimator.run(pubs, precision=precision)
