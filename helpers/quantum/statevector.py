"""Step 2b: an exact, batched state-vector simulation in PyTorch.

``TorchStatevector`` simulates the rewritten circuit of a ``ShiftableCircuit`` for a
whole batch of angle vectors at once, on the angles' device, with ordinary PyTorch
operations: autograd differentiates through it (backpropagation, any order), and it can
also serve as a NumPy evaluator for the parameter-shift path.

Every matrix comes from Qiskit. A fixed gate is ``Operator(gate).data``. A gate whose
trainable angles ``a_1 .. a_m`` each enter as exp(-i a G) (G with eigenvalues c +- 1/2)
equals, up to a global phase, sum over s in {0, 1}^m of
prod_j [cos(a_j / 2) if s_j = 0 else sin(a_j / 2)] * C_s, with C_s Qiskit's matrix at
a = pi * s times the phase exp(i pi c . s); each offset c is read from Qiskit's matrix
at a quarter turn, and the whole form is checked against Qiskit at random angles.
Observables are applied term by term as bit flips (``torch.flip`` on qubit axes) times
a diagonal taken from Qiskit's sparse matrix: no 2^n x 2^n matrix is ever built.
"""

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from qiskit.circuit import ParameterExpression
from qiskit.quantum_info import Operator

# The trig form of each trainable gate is checked against Qiskit at this many random
# angle vectors, to this tolerance.
_CHECKS = 3
_CHECK_TOLERANCE = 1e-11
_SKIPPED = ("barrier", "delay")
# Corner matrices already computed, by gate class, trainable slots and fixed parameters.
_TRIG_FORMS = {}
_TRIG_FORMS_KEPT = 4096


@dataclass
class _Step:
    """One gate: ``matrices`` (corners, 2^k, 2^k) complex; ``angles`` the indices of its
    trainable angles (empty for a fixed gate, which then has one matrix); ``order`` the
    permutation of the state's axes that brings its qubits last, or None if they are
    last already."""

    matrices: np.ndarray
    angles: list
    order: tuple | None


def _matrix(op, params):
    """Qiskit's matrix of ``op`` with its parameters replaced by ``params``."""
    gate = op.copy()
    gate.params = list(params)
    return Operator(gate).data


def _phase_at_quarter_turn(m0, m_half_pi, m_pi):
    """w = exp(-i pi c / 2) for a gate L exp(-i a G) R with G = c + (+-1/2).

    At a = pi/2 the gate is (w M(0) + conj(w) M(pi)) / sqrt(2): solved for w by least
    squares over all matrix entries.
    """
    a, b = m0.ravel(), m_pi.ravel()
    target = np.sqrt(2) * m_half_pi.ravel()
    design = np.stack([a + b, 1j * (a - b)], axis=1)  # target = x (a + b) + i y (a - b)
    real_design = np.concatenate([design.real, design.imag])
    real_target = np.concatenate([target.real, target.imag])
    (x, y), *_ = np.linalg.lstsq(real_design, real_target, rcond=None)
    return complex(x, y)


def _trig_form(op, slots):
    """The corner matrices C_s of a gate whose parameters in ``slots`` are trainable,
    checked against Qiskit at random angles; a ValueError if the gate has no such form.
    """
    base = tuple(0.0 if j in slots else float(p) for j, p in enumerate(op.params))
    # trainable gates are standard gates (rotations, U, R): their matrix depends on
    # nothing but their class and parameters
    key = (type(op), op.name, op.num_qubits, tuple(slots), base)
    if key not in _TRIG_FORMS:
        if len(_TRIG_FORMS) >= _TRIG_FORMS_KEPT:
            _TRIG_FORMS.clear()

        def at(angles):
            params = list(base)
            for j, angle in zip(slots, angles):
                params[j] = angle
            return _matrix(op, params)

        corners = _corners(at, len(slots))
        _check_trig_form(at, corners, op.name)
        corners.setflags(write=False)
        _TRIG_FORMS[key] = corners
    return _TRIG_FORMS[key]


def _corners(at, m):
    """C_s = exp(i pi c . s) M(pi s) for s in {0, 1}^m, ``at(angles)`` giving Qiskit's
    matrix M; each exp(i pi c_j) is found with the other trainable angles at zero."""
    zero = at(np.zeros(m))
    phases = []
    for j in range(m):
        turn = np.zeros(m)
        turn[j] = np.pi / 2
        w = _phase_at_quarter_turn(zero, at(turn), at(2 * turn))
        phases.append(np.conj(w) ** 2)
    return np.stack(
        [
            np.prod([phases[j] for j in range(m) if s[j]]) * at(np.pi * np.array(s))
            for s in itertools.product((0, 1), repeat=m)
        ]
    )


def _trig_sum(angles, corners):
    """sum_s prod_j [cos or sin](a_j / 2) C_s, for one angle vector (NumPy)."""
    trig = [(np.cos(t / 2), np.sin(t / 2)) for t in angles]
    weights = [
        np.prod([trig[j][bit] for j, bit in enumerate(s)])
        for s in itertools.product((0, 1), repeat=len(angles))
    ]
    return np.tensordot(weights, corners, axes=1)


def _check_trig_form(at, corners, name):
    """Refuse a gate whose trig form differs from Qiskit's matrix by more than a global
    phase at some random angles."""
    m = corners.shape[0].bit_length() - 1
    for angles in np.random.default_rng(0).uniform(-np.pi, np.pi, (_CHECKS, m)):
        model, exact = _trig_sum(angles, corners), at(angles)
        phase = np.trace(model.conj().T @ exact) / len(exact)
        if not (
            abs(abs(phase) - 1) < _CHECK_TOLERANCE
            and np.abs(exact - phase * model).max() < _CHECK_TOLERANCE
        ):
            raise ValueError(
                f"gate '{name}' does not depend on its trainable angles as "
                "exp(-i a G) with G of eigenvalues c +- 1/2: the torch simulator "
                "cannot represent it"
            )


def _axis_order(qubits, num_qubits):
    """Axis permutation of a (batch, 2, ..., 2) state that puts the gate's qubits last,
    most significant first (Qiskit's little-endian order: qubit q is axis n - q)."""
    gate_axes = [num_qubits - q for q in reversed(qubits)]
    rest = [ax for ax in range(num_qubits + 1) if ax not in gate_axes]
    order = tuple(rest + gate_axes)
    return None if order == tuple(range(num_qubits + 1)) else order


def _steps(circuit, angle_index):
    """The circuit as a list of ``_Step``: barriers, delays and zero-qubit gates (a
    global phase) dropped."""
    steps = []
    for instruction in circuit.data:
        op = instruction.operation
        if op.name in _SKIPPED or op.num_qubits == 0:
            continue
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        slots, angles = [], []
        for j, p in enumerate(op.params):
            if isinstance(p, ParameterExpression):
                if p not in angle_index:
                    raise ValueError(
                        f"gate '{op.name}' has angle {p}, which is not one of the "
                        "rewritten circuit's angle parameters"
                    )
                slots.append(j)
                angles.append(angle_index[p])
        if slots:
            matrices = _trig_form(op, slots)
        else:
            matrices = Operator(op).data[None]
        steps.append(_Step(matrices, angles, _axis_order(qubits, circuit.num_qubits)))
    return steps


def _observable_groups(observables, num_qubits):
    """(flipped qubit axes, weights (2^n, observables)) pairs, one per pattern x of
    X and Y letters: <O_o> = Re sum_x sum_i conj(psi_i) w_x[i, o] psi_(i xor x), where
    w_x[i, o] is the entry O_o[i, i xor x] of Qiskit's sparse matrix."""
    size = 2**num_qubits
    groups = {}
    for o, observable in enumerate(observables):
        sparse = observable.to_matrix(sparse=True).tocoo()
        flips = sparse.row ^ sparse.col
        for x in np.unique(flips):
            if x not in groups:
                groups[x] = np.zeros((size, len(observables)), dtype=complex)
            chosen = flips == x
            groups[x][sparse.row[chosen], o] = sparse.data[chosen]
    result = []
    for x, weights in sorted(groups.items()):
        axes = tuple(num_qubits - q for q in range(num_qubits) if (int(x) >> q) & 1)
        result.append((axes, weights))
    return result


class TorchStatevector:
    """Exact expectation values by a batched state-vector simulation in PyTorch.

    ``expectations(angles)`` takes a tensor ``(batch, angles)`` on any device and
    returns ``(batch, observables)`` float64 on that device, differentiable to any
    order. Called with a NumPy array it returns a NumPy array (an evaluator for the
    parameter-shift path). Matrices are built once; copies per device are cached.
    """

    def __init__(self, shiftable, observables):
        self.num_qubits = shiftable.circuit.num_qubits
        self.n_angles = len(shiftable.angle_params)
        self.n_observables = len(observables)
        angle_index = {p: k for k, p in enumerate(shiftable.angle_params)}
        self.steps = _steps(shiftable.circuit, angle_index)
        self.groups = _observable_groups(observables, self.num_qubits)
        self._on_device = {}

    def _tensors(self, device):
        """The steps' matrices and the observables' weights on ``device`` (cached)."""
        if device not in self._on_device:

            def move(array):
                return torch.tensor(array, dtype=torch.complex128, device=device)

            # transposed, so that a row of amplitudes times the matrix applies the gate
            matrices = [move(step.matrices.transpose(0, 2, 1)) for step in self.steps]
            weights = [move(w) for _, w in self.groups]
            self._on_device[device] = matrices, weights
        return self._on_device[device]

    def expectations(self, angles):
        """<O> for each observable and row: ``(batch, angles)`` -> ``(batch, outputs)``,
        float64, on the angles' device."""
        if angles.dim() != 2 or angles.shape[1] != self.n_angles:
            raise ValueError(
                f"angles must have shape (batch, {self.n_angles}), "
                f"got {tuple(angles.shape)}"
            )
        matrices, weights = self._tensors(angles.device)
        state = self._initial_state(len(angles), angles.device)
        half = angles.double() / 2
        for step, transposed in zip(self.steps, matrices):
            if step.angles:
                transposed = self._batched_matrix(half[:, step.angles], transposed)
            state = self._apply(state, transposed, step.order)
        return self._measure(state, weights)

    def __call__(self, angles):
        """NumPy evaluator: ``(parameter sets, angles)`` -> ``(parameter sets,
        observables)``."""
        with torch.no_grad():
            values = self.expectations(torch.as_tensor(angles, dtype=torch.float64))
        return values.numpy()

    def _initial_state(self, batch, device):
        state = torch.zeros(
            batch, *[2] * self.num_qubits, dtype=torch.complex128, device=device
        )
        state[(slice(None),) + (0,) * self.num_qubits] = 1.0
        return state

    @staticmethod
    def _batched_matrix(half, corners):
        """Sum over corners s of prod_j trig_(s_j)(a_j / 2) C_s: (batch, 2^k, 2^k)."""
        trig = torch.stack([half.cos(), half.sin()], dim=2)  # (batch, m, 2)
        weights = trig[:, 0]
        for j in range(1, trig.shape[1]):
            weights = (weights[:, :, None] * trig[:, j, None, :]).flatten(1)
        return torch.einsum("bs,sij->bij", weights.to(corners.dtype), corners)

    def _apply(self, state, transposed, order):
        """Apply one gate (its matrix transposed: one, or one per row) to the state."""
        shape = state.shape
        if order is not None:
            state = state.permute(order)
        size = transposed.shape[-1]
        moved_shape = state.shape
        state = state.reshape(shape[0], -1, size) @ transposed
        state = state.reshape(moved_shape)
        if order is not None:
            state = state.permute(tuple(np.argsort(order)))
        return state

    def _measure(self, state, weights):
        """Re sum_x sum_i conj(psi_i) w_x[i] psi_(i xor x), the flips done by
        torch.flip."""
        batch = state.shape[0]
        conjugate = state.conj().reshape(batch, -1)
        total = 0
        for (axes, _), w in zip(self.groups, weights):
            flipped = state.flip(axes) if axes else state
            total = total + (conjugate * flipped.reshape(batch, -1)) @ w
        return total.real
