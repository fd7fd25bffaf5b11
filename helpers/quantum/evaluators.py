"""Step 2: evaluators, from a batch of angle vectors to expectation values in one call.

Each evaluator is called with an array of shape ``(parameter sets, angles)`` and
returns ``(parameter sets, observables)``: exact (``ExactAer``), sampled with real
shots (``SampledAer``), or from any Qiskit ``BaseEstimatorV2`` (``Estimated``).
``in_chunks`` caps how many parameter sets one call receives, which bounds the memory a
large batch takes.
"""

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2

# Qubits in one packed exact simulation: small circuits are simulated several copies at
# a time.
PACKED_QUBITS = 6


def in_chunks(evaluate, points, chunk_size):
    """``evaluate(points)``, in calls of at most ``chunk_size`` parameter sets each."""
    if len(points) <= chunk_size:
        return evaluate(points)
    return np.concatenate(
        [
            evaluate(points[i : i + chunk_size])
            for i in range(0, len(points), chunk_size)
        ]
    )


class ExactAer:
    """Exact expectation values from Aer's statevector simulator,
    one simulation per call.

    Aer pays a fixed cost per parameter set, so a small circuit is laid out several
    times side by side (``packed_qubits`` qubits in all, ``PACKED_QUBITS`` by default)
    and each copy serves a different row of the batch.
    """

    def __init__(self, shiftable, observables, packed_qubits=PACKED_QUBITS):
        n = shiftable.circuit.num_qubits
        self.copies = max(1, packed_qubits // n)
        self.n_observables = len(observables)
        self.copy_params = [
            ParameterVector(f"c{j}", len(shiftable.angle_params))
            for j in range(self.copies)
        ]
        packed = QuantumCircuit(n * self.copies)
        for j, params in enumerate(self.copy_params):
            copy = shiftable.circuit.assign_parameters(
                dict(zip(shiftable.angle_params, params))
            )
            packed.compose(copy, qubits=range(j * n, (j + 1) * n), inplace=True)
        for j in range(self.copies):
            for o, observable in enumerate(observables):
                packed.save_expectation_value(
                    observable, range(j * n, (j + 1) * n), label=f"c{j}o{o}"
                )
        self.packed = packed
        # One thread: these circuits are tiny, and OpenMP threads only wait on each
        # other (2-4x slower).
        self.simulator = AerSimulator(
            method="statevector",
            runtime_parameter_bind_enable=True,
            max_parallel_threads=1,
        )

    def __call__(self, angles):
        batch, n_angles = angles.shape
        rows = -(-batch // self.copies)
        padded = np.concatenate(
            [angles, np.repeat(angles[-1:], rows * self.copies - batch, axis=0)]
        )
        padded = padded.reshape(rows, self.copies, n_angles)
        binds = {
            params[i]: padded[:, j, i].tolist()
            for j, params in enumerate(self.copy_params)
            for i in range(n_angles)
        }
        result = self.simulator.run(self.packed, parameter_binds=[binds]).result()
        if not result.success:
            raise RuntimeError(f"Aer simulation failed: {result.status}")
        labels = [
            f"c{j}o{o}" for j in range(self.copies) for o in range(self.n_observables)
        ]
        values = np.array(
            [[getattr(r.data, label) for label in labels] for r in result.results]
        )
        return values.reshape(rows * self.copies, self.n_observables)[:batch]


class SampledAer:
    """Expectation values estimated from ``shots`` real measurement samples per circuit
    (Aer's SamplerV2).

    Pauli terms that commute qubit by qubit share one measured circuit; each call draws
    a fresh seed from ``rng``, so repeated calls see independent shot noise while the
    whole run stays reproducible.
    """

    def __init__(self, shiftable, observables, shots, rng):
        self.shots, self.rng = shots, rng
        self.n_observables = len(observables)
        self.constant = np.zeros(self.n_observables)
        labels = sorted(
            {
                p
                for obs in observables
                for p in obs.paulis.to_labels()
                if set(p) != {"I"}
            }
        )
        groups = (
            SparsePauliOp(labels).group_commuting(qubit_wise=True) if labels else []
        )
        self.circuits, self.diagonals = [], []
        for group in groups:
            group_labels = group.paulis.to_labels()
            circuit = shiftable.circuit.copy()
            for qubit in range(circuit.num_qubits):
                letters = {label[-1 - qubit] for label in group_labels} - {"I"}
                if letters == {"X"}:
                    circuit.h(qubit)
                elif letters == {"Y"}:
                    circuit.sdg(qubit)
                    circuit.h(qubit)
            circuit.measure_all()
            self.circuits.append(circuit)
            self.diagonals.append(self._diagonal_parts(observables, set(group_labels)))
        for o, obs in enumerate(observables):
            for label, coeff in zip(obs.paulis.to_labels(), obs.coeffs):
                if set(label) == {"I"}:
                    self.constant[o] += coeff.real
        backend_options = {
            "runtime_parameter_bind_enable": True,
            "max_parallel_threads": 1,
        }
        self.sampler = SamplerV2(options={"backend_options": backend_options})

    @staticmethod
    def _diagonal_parts(observables, group_labels):
        """Per observable, its terms in this group with X and Y turned into Z (measured
        after rotation).
        """
        parts = []
        for obs in observables:
            terms = [
                (label.replace("X", "Z").replace("Y", "Z"), coeff.real)
                for label, coeff in zip(obs.paulis.to_labels(), obs.coeffs)
                if label in group_labels
            ]
            parts.append(SparsePauliOp.from_list(terms) if terms else None)
        return parts

    def __call__(self, angles):
        self.sampler.options.run_options["seed_simulator"] = int(
            self.rng.integers(2**31 - 1)
        )
        pubs = [(circuit, angles) for circuit in self.circuits]
        results = self.sampler.run(pubs, shots=self.shots).result() if pubs else []
        values = np.tile(self.constant, (len(angles), 1))
        for result, parts in zip(results, self.diagonals):
            bits = result.data.meas
            for o, part in enumerate(parts):
                if part is not None:
                    values[:, o] += bits.expectation_values(part)
        return values


class Estimated:
    """Expectation values from any Qiskit ``BaseEstimatorV2``,
    one broadcast PUB per call.

    The estimator receives the rewritten circuit: standard gates whose trainable angles
    need more than two shift terms (controlled rotations, for example) arrive
    decomposed, and ``QuantumLayer`` warns when that happens
    (``CircuitRewrittenWarning``). Transpile to the backend's basis first.
    """

    def __init__(self, shiftable, observables, estimator):
        self.circuit, self.estimator = shiftable.circuit, estimator
        # shape (1, n): broadcasts against (batch, 1) parameter sets
        self.observables = [list(observables)]

    def __call__(self, angles):
        pub = (self.circuit, self.observables, angles[:, None, :])
        return np.asarray(self.estimator.run([pub]).result()[0].data.evs, dtype=float)
