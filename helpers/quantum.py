"""A parameterized Qiskit circuit as a PyTorch layer, with exact parameter-shift gradients.

Introduced in chapters 3 (the circuit as a hidden layer), 4 (the parameter-shift rule)
and 5 (where this module is built up piece by piece).

The plan, in four steps:

1. ``shiftable_form`` rewrites the circuit so that every angle that depends on a trainable
   parameter sits in its own gate of the form exp(-i a G), G with eigenvalues +-1/2, and
   records each angle as an affine function of the parameters: ``angles = values @ J.T + b``.
2. An evaluator turns a batch of angle vectors into expectation values in one call:
   exact (Aer), sampled with real shots (Aer's sampler), or any ``BaseEstimatorV2``.
3. ``parameter_shift`` differentiates with respect to every angle by the two-term rule
   [f(a + s) - f(a - s)] / (2 sin s). When training, the batch and all its shifted points go to
   the evaluator in one call, during the forward pass.
4. The backward pass applies the chain rule through ``J``: gradients for inputs and weights.
"""

from dataclasses import dataclass
import math

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import AnnotatedOperation, Gate, Parameter, ParameterExpression, ParameterVector
from qiskit.circuit.library import (
    PauliEvolutionGate,
    PhaseGate,
    RGate,
    RXGate,
    RXXGate,
    RYGate,
    RYYGate,
    RZGate,
    RZXGate,
    RZZGate,
    U1Gate,
    U2Gate,
    U3Gate,
    UGate,
)
from qiskit.primitives import BaseEstimatorV2
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import SamplerV2

SHIFT = math.pi / 2

# Gates exp(-i a G) whose generator G has exactly two eigenvalues, 1 apart (up to a global phase):
# for these the two-term shift rule is exact. Controlled phases (cp, cu1, mcphase) would qualify too,
# but Aer mis-simulates controlled parameterized gates under parameter binding (qiskit-aer #2323,
# #2391), so they are expanded through their definitions instead, like every other gate.
# For U, U2, U3 each angle on its own is such a rotation (U(t, p, l) = RZ(p) RY(t) RZ(l) up to a phase),
# and so is R's first angle: these gates reach the simulator intact when only those slots are trainable.
TWO_TERM_GATES = {
    **{gate: (0,) for gate in (RXGate, RYGate, RZGate, PhaseGate, U1Gate, RXXGate, RYYGate, RZZGate, RZXGate)},
    UGate: (0, 1, 2), U3Gate: (0, 1, 2), U2Gate: (0, 1), RGate: (0,),
}

# Qubits in one packed exact simulation: small circuits are simulated several copies at a time.
PACKED_QUBITS = 6

_NOT_GATES_ALLOWED = ("barrier", "delay")
# Gates without trainable angles stay as they are if Aer simulates them; others are expanded.
_AER_GATES = frozenset(AerSimulator(method="statevector").configuration().basis_gates)


# ---------------------------------------------------------------------------------------------
# Step 1: rewrite the circuit so that every trainable angle has its own two-term gate
# ---------------------------------------------------------------------------------------------


@dataclass
class ShiftableCircuit:
    """A circuit whose gate angles are ``angles = values @ jacobian.T + offset``.

    ``values`` are the layer's parameters (inputs first, then weights); ``circuit`` has one
    fresh parameter per angle (``angle_params``), each in a gate where the two-term rule is exact.
    """

    circuit: QuantumCircuit
    angle_params: ParameterVector
    jacobian: np.ndarray  # (angles, values)
    offset: np.ndarray  # (angles,)

    def angles(self, values):
        """Angle vectors, shape (batch, angles), for value vectors of shape (batch, values)."""
        return values @ self.jacobian.T + self.offset


def _names(params):
    return ", ".join(sorted(p.name for p in params))


def _trainable_in(op, trainable):
    """The trainable parameters that appear in the operation's parameters."""
    found = set()
    for value in op.params:
        if isinstance(value, ParameterExpression):
            found |= value.parameters & trainable
    return found


def _definition(op, used):
    """The gate's definition as a circuit of other gates, or a ValueError that names the gate."""
    if isinstance(op, PauliEvolutionGate):
        terms = [p for operator in (op.operator if isinstance(op.operator, list) else [op.operator])
                 for p in operator.simplify().paulis]  # terms with zero weight do not count
        if any(not a.commutes(b) for i, a in enumerate(terms) for b in terms[i + 1:]):
            raise ValueError(
                f"gate '{op.name}' evolves under non-commuting Pauli terms: its definition is only a "
                "product-formula approximation, so the layer cannot use it exactly"
            )
    try:
        definition = op.definition
    except Exception as error:  # some gates cannot build a definition while their angles are symbolic
        definition, reason = None, f" ({error})"
    else:
        reason = ""
    if definition is None:
        uses = f"uses parameter(s) {_names(used)} but " if used else ""
        raise ValueError(
            f"gate '{op.name}' {uses}has no definition in terms of gates the layer can "
            f"differentiate and simulate exactly{reason}"
        )
    return definition


def _two_term(op, trainable):
    """Whether every angle of ``op`` that uses a trainable parameter sits in a two-term slot."""
    slots = TWO_TERM_GATES.get(op.base_class, ())
    return all(
        j in slots for j, value in enumerate(op.params)
        if isinstance(value, ParameterExpression) and value.parameters & trainable
    )


def _expand(circuit, qubit_map, trainable, out):
    """Append ``(operation, qubits)`` to ``out`` until every trainable angle is in a two-term gate
    and every other gate is one that Aer simulates."""
    for instruction in circuit.data:
        op = instruction.operation
        qubits = [qubit_map[circuit.find_bit(q).index] for q in instruction.qubits]
        if isinstance(op, AnnotatedOperation):
            raise ValueError(
                f"'{op.name}' is an annotated operation: build it with annotated=False (for example "
                "gate.control(2, annotated=False)) so that the layer can see its gates"
            )
        if not isinstance(op, Gate):
            if op.name in _NOT_GATES_ALLOWED:
                out.append((op, qubits))
                continue
            raise ValueError(
                f"the circuit contains '{op.name}', which is not a unitary gate; the layer measures "
                "its observables itself, so remove measurements, resets and classical control"
            )
        used = _trainable_in(op, trainable)
        if used and _two_term(op, trainable):
            out.append((op, qubits))
        elif not used and op.name in _AER_GATES:
            out.append((op, qubits))
        else:
            _expand(_definition(op, used), qubits, trainable, out)


def _affine(expression, order, op_name):
    """Coefficients and offset of ``expression`` as an affine function of the parameters ``order``."""
    coefficients = np.zeros(len(order))
    for parameter in expression.parameters:
        slope = expression.gradient(parameter)
        if isinstance(slope, ParameterExpression) and slope.parameters:
            raise ValueError(
                f"gate '{op_name}' has angle {expression}, which is not affine in {parameter.name}; "
                "the shift rule needs angles of the form c*x + d"
            )
        slope = complex(slope)
        if slope.imag != 0:
            raise ValueError(f"gate '{op_name}' has angle {expression} with a complex coefficient")
        coefficients[order[parameter]] = slope.real
    offset = complex(expression.bind({p: 0.0 for p in expression.parameters}))
    return coefficients, offset.real


def shiftable_form(circuit, parameters):
    """Rewrite ``circuit`` so that each angle that depends on ``parameters`` has its own two-term gate.

    Raises ``ValueError`` naming the gate when some use of a parameter cannot be differentiated exactly.
    """
    order = {p: i for i, p in enumerate(parameters)}
    expanded = []
    _expand(circuit, list(range(circuit.num_qubits)), set(parameters), expanded)

    rows, offsets, rebuilt = [], [], []
    for op, qubits in expanded:
        new_params, changed = [], False
        for value in op.params:
            if isinstance(value, ParameterExpression) and value.parameters:
                coefficients, offset = _affine(value, order, op.name)
                rows.append(coefficients)
                offsets.append(offset)
                new_params.append(len(rows) - 1)  # index of the fresh angle, filled in below
                changed = True
            else:
                new_params.append(value)
        rebuilt.append((op, qubits, new_params if changed else None))

    if not rows:
        raise ValueError("no parameter of the layer reaches a gate: the output could not depend on them")
    angle_params = ParameterVector("a", len(rows))
    core = QuantumCircuit(circuit.num_qubits)  # the global phase is dropped: it changes no expectation value
    for op, qubits, new_params in rebuilt:
        if new_params is not None:
            op = op.to_mutable()
            op.params = [angle_params[p] if isinstance(p, int) else p for p in new_params]
        core.append(op, qubits)
    return ShiftableCircuit(core, angle_params, np.array(rows), np.array(offsets))


# ---------------------------------------------------------------------------------------------
# Step 2: evaluators, from a batch of angle vectors to expectation values, one call per batch
# ---------------------------------------------------------------------------------------------


class ExactAer:
    """Exact expectation values from Aer's statevector simulator, one simulation per call.

    Aer pays a fixed cost per parameter set, so a small circuit is laid out several times side by
    side (``packed_qubits`` qubits in all, ``PACKED_QUBITS`` by default) and each copy serves a different
    row of the batch.
    """

    def __init__(self, shiftable, observables, packed_qubits=PACKED_QUBITS):
        n = shiftable.circuit.num_qubits
        self.copies = max(1, packed_qubits // n)
        self.n_observables = len(observables)
        self.copy_params = [ParameterVector(f"c{j}", len(shiftable.angle_params)) for j in range(self.copies)]
        packed = QuantumCircuit(n * self.copies)
        for j, params in enumerate(self.copy_params):
            copy = shiftable.circuit.assign_parameters(dict(zip(shiftable.angle_params, params)))
            packed.compose(copy, qubits=range(j * n, (j + 1) * n), inplace=True)
        for j in range(self.copies):
            for o, observable in enumerate(observables):
                packed.save_expectation_value(observable, range(j * n, (j + 1) * n), label=f"c{j}o{o}")
        self.packed = packed
        # One thread: these circuits are tiny, and OpenMP threads only wait on each other (2-4x slower).
        self.simulator = AerSimulator(method="statevector", runtime_parameter_bind_enable=True, max_parallel_threads=1)

    def __call__(self, angles):
        batch, n_angles = angles.shape
        rows = -(-batch // self.copies)
        padded = np.concatenate([angles, np.repeat(angles[-1:], rows * self.copies - batch, axis=0)])
        padded = padded.reshape(rows, self.copies, n_angles)
        binds = {
            params[i]: padded[:, j, i].tolist() for j, params in enumerate(self.copy_params) for i in range(n_angles)
        }
        result = self.simulator.run(self.packed, parameter_binds=[binds]).result()
        if not result.success:
            raise RuntimeError(f"Aer simulation failed: {result.status}")
        labels = [f"c{j}o{o}" for j in range(self.copies) for o in range(self.n_observables)]
        values = np.array([[getattr(r.data, label) for label in labels] for r in result.results])
        return values.reshape(rows * self.copies, self.n_observables)[:batch]


class SampledAer:
    """Expectation values estimated from ``shots`` real measurement samples per circuit (Aer's SamplerV2).

    Pauli terms that commute qubit by qubit share one measured circuit; each call draws a fresh seed
    from ``rng``, so repeated calls see independent shot noise while the whole run stays reproducible.
    """

    def __init__(self, shiftable, observables, shots, rng):
        self.shots, self.rng = shots, rng
        self.n_observables = len(observables)
        self.constant = np.zeros(self.n_observables)
        labels = sorted({p for obs in observables for p in obs.paulis.to_labels() if set(p) != {"I"}})
        groups = SparsePauliOp(labels).group_commuting(qubit_wise=True) if labels else []
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
        backend_options = {"runtime_parameter_bind_enable": True, "max_parallel_threads": 1}
        self.sampler = SamplerV2(options={"backend_options": backend_options})

    @staticmethod
    def _diagonal_parts(observables, group_labels):
        """Per observable, its terms in this group with X and Y turned into Z (measured after rotation)."""
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
        self.sampler.options.run_options["seed_simulator"] = int(self.rng.integers(2**31 - 1))
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
    """Expectation values from any Qiskit ``BaseEstimatorV2``, one broadcast PUB per call.

    The estimator receives the rewritten circuit: gates whose trainable angles need more than two shift
    terms (controlled rotations, for example) arrive decomposed, so key a noise model on basis gates, or
    transpile to the backend's basis before building the layer.
    """

    def __init__(self, shiftable, observables, estimator):
        self.circuit, self.estimator = shiftable.circuit, estimator
        self.observables = [list(observables)]  # shape (1, n): broadcasts against (batch, 1) parameter sets

    def __call__(self, angles):
        pub = (self.circuit, self.observables, angles[:, None, :])
        return np.asarray(self.estimator.run([pub]).result()[0].data.evs, dtype=float)


# ---------------------------------------------------------------------------------------------
# Step 3: the parameter-shift rule, batched
# ---------------------------------------------------------------------------------------------


def parameter_shift(evaluate, angles, which, shift=SHIFT, unshifted=False):
    """d f / d angle for the angles listed in ``which``, by [f(a+s) - f(a-s)] / (2 sin s).

    ``angles`` has shape (batch, angles); ``evaluate`` is called once, on all shifted points.
    Returns shape (batch, len(which), observables). With ``unshifted=True`` the angles themselves join
    the same call, and the result is the pair ``(f(angles), derivatives)``.
    """
    batch, n_angles = angles.shape
    steps = np.zeros((len(which), n_angles))
    steps[np.arange(len(which)), which] = shift
    plus = angles[:, None, :] + steps  # (batch, which, angles)
    minus = angles[:, None, :] - steps
    points = np.stack([plus, minus], axis=1).reshape(-1, n_angles)
    if unshifted:
        points = np.concatenate([angles, points])
    f = evaluate(points)
    shifted = (f[batch:] if unshifted else f).reshape(batch, 2, len(which), f.shape[1])
    derivatives = (shifted[:, 0] - shifted[:, 1]) / (2 * math.sin(shift))
    return (f[:batch], derivatives) if unshifted else derivatives


# ---------------------------------------------------------------------------------------------
# Step 4: the autograd function and the nn.Module
# ---------------------------------------------------------------------------------------------


class QuantumFunction(torch.autograd.Function):
    """Forward: expectation values of a batch and, when a gradient will be wanted, their parameter-shift
    derivatives, all from one evaluator call. Backward: the chain rule, with no further call."""

    @staticmethod
    def forward(ctx, inputs, weights, layer, grad_enabled):
        batch, n_inputs = inputs.shape
        values = torch.cat([inputs.detach().double(), weights.detach().double().expand(batch, -1)], dim=1)
        angles = layer.shiftable.angles(values.cpu().numpy())
        jacobian = layer.shiftable.jacobian  # (angles, values)
        wanted = np.zeros(jacobian.shape[1], dtype=bool)  # the values autograd will ask about
        wanted[:n_inputs] = grad_enabled and ctx.needs_input_grad[0]
        wanted[n_inputs:] = grad_enabled and ctx.needs_input_grad[1]
        ctx.which = np.flatnonzero((jacobian[:, wanted] != 0).any(axis=1))  # angles worth shifting
        if len(ctx.which):
            out, ctx.d_angles = parameter_shift(layer.evaluate, angles, ctx.which, unshifted=True)
        else:
            out, ctx.d_angles = layer.evaluate(angles), None
        ctx.layer, ctx.weights_dtype = layer, weights.dtype
        return torch.as_tensor(out, dtype=inputs.dtype, device=inputs.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        layer, n_inputs = ctx.layer, len(ctx.layer.input_params)
        jacobian = layer.shiftable.jacobian
        grad_values = np.zeros((grad_output.shape[0], jacobian.shape[1]))
        if ctx.d_angles is not None:  # (batch, which, outputs)
            d_values = np.einsum("bko,kp->bpo", ctx.d_angles, jacobian[ctx.which])
            grad_values = np.einsum("bpo,bo->bp", d_values, grad_output.detach().cpu().double().numpy())
        grad_values = torch.as_tensor(grad_values, device=grad_output.device)
        grad_inputs = grad_values[:, :n_inputs].to(grad_output.dtype) if ctx.needs_input_grad[0] else None
        grad_weights = grad_values[:, n_inputs:].sum(0).to(ctx.weights_dtype) if ctx.needs_input_grad[1] else None
        return grad_inputs, grad_weights, None, None


def _as_parameters(params, what):
    params = list(params)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{what} must be qiskit Parameters, got {p!r}")
    return params


class QuantumLayer(torch.nn.Module):
    """A parameterized circuit as a layer: ``(batch, inputs)`` in, one expectation value per observable out.

    ``input_params`` are fed from the previous layer, ``weight_params`` are trained here.
    Exact Aer by default; ``shots=N`` samples N real shots per circuit (seeded by ``seed``);
    ``estimator=`` uses any ``BaseEstimatorV2`` as given. Gradients: exact parameter shift, computed in
    the forward pass whenever autograd may ask for them; evaluate under ``torch.no_grad()`` to skip that.
    """

    def __init__(self, circuit, observables, input_params, weight_params=(), *, estimator=None, shots=None, seed=None):
        super().__init__()
        if not isinstance(circuit, QuantumCircuit):
            raise TypeError(f"circuit must be a qiskit QuantumCircuit, got {type(circuit).__name__}")
        if isinstance(observables, SparsePauliOp) or not len(observables):
            raise ValueError("observables must be a non-empty list of SparsePauliOp (one per output)")
        for i, obs in enumerate(observables):
            if not isinstance(obs, SparsePauliOp):
                raise TypeError(f"observable {i} must be a SparsePauliOp, got {type(obs).__name__}")
            if obs.num_qubits != circuit.num_qubits:
                raise ValueError(
                    f"observable {i} acts on {obs.num_qubits} qubits but the circuit has {circuit.num_qubits}"
                )
            if np.any(np.abs(obs.simplify().coeffs.imag) > 1e-12):
                raise ValueError(f"observable {i} is not Hermitian (complex coefficients): its expectation is not real")
        self.input_params = _as_parameters(input_params, "input_params")
        self.weight_params = _as_parameters(weight_params, "weight_params")
        listed = self.input_params + self.weight_params
        repeated = {p for p in listed if listed.count(p) > 1}
        if repeated:
            raise ValueError(f"parameter(s) listed more than once: {_names(repeated)}")
        missing = set(listed) - set(circuit.parameters)
        if missing:
            raise ValueError(f"parameter(s) not in the circuit: {_names(missing)}")
        unlisted = set(circuit.parameters) - set(listed)
        if unlisted:
            raise ValueError(f"circuit parameter(s) neither input nor weight: {_names(unlisted)}")
        if estimator is not None and shots is not None:
            raise ValueError("give either shots or estimator: set the shots on the estimator itself")
        if estimator is not None and not isinstance(estimator, BaseEstimatorV2):
            raise TypeError(f"estimator must be a qiskit BaseEstimatorV2, got {type(estimator).__name__}")
        if shots is not None and (not isinstance(shots, (int, np.integer)) or isinstance(shots, bool) or shots < 1):
            raise ValueError(f"shots must be a positive integer, got {shots!r}")
        if seed is not None and shots is None:
            raise ValueError("seed only applies with shots: exact evaluation has no randomness")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

        # Simplified, with real coefficients: what every evaluator receives.
        observables = [SparsePauliOp(o.simplify().paulis, o.simplify().coeffs.real) for o in observables]
        self.circuit, self.observables, self.shots = circuit, observables, shots
        self.shiftable = shiftable_form(circuit, listed)
        if estimator is not None:
            self.evaluate = Estimated(self.shiftable, self.observables, estimator)
        elif shots is not None:
            if seed is None:  # follow torch's generator, which helpers.reproducibility seeds
                seed = int(torch.randint(0, 2**62, ()).item())
            self.evaluate = SampledAer(self.shiftable, self.observables, shots, np.random.default_rng(seed))
        else:
            self.evaluate = ExactAer(self.shiftable, self.observables)
        self.weight = torch.nn.Parameter(2 * math.pi * torch.rand(len(self.weight_params)))

    def forward(self, x):
        """Expectation values, shape ``(batch, len(observables))``, for inputs of shape ``(batch, len(input_params))``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
        n = len(self.input_params)
        if x.dim() != 2 or x.shape[1] != n:
            raise ValueError(f"input must have shape (batch, {n}) for {n} input parameter(s), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError("input batch is empty")
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or infinite values")
        if not torch.isfinite(self.weight).all():
            raise ValueError("the layer's weights contain NaN or infinite values")
        return QuantumFunction.apply(x, self.weight, self, torch.is_grad_enabled())

    def extra_repr(self):
        mode = f"shots={self.shots}" if self.shots else type(self.evaluate).__name__
        return (
            f"qubits={self.circuit.num_qubits}, inputs={len(self.input_params)}, "
            f"weights={len(self.weight_params)}, outputs={len(self.observables)}, {mode}"
        )
