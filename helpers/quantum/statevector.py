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
import string
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
    """One gate. ``matrices``: (corners, 2, ..., 2) complex, the gate's 2k indices
    ordered as its qubits appear in ``view`` (outputs, then inputs); ``angles``: the
    indices of its trainable angles (empty for a fixed gate: one matrix); ``view``: the
    state's shape (batch, run, 2, run, 2, ..., run) with the gate's qubits as the 2s;
    ``equation``: the einsum that applies the gate to that view. ``block``: for a gate
    on the top k qubits, the view (batch, 2^k, rest) in which one matrix product
    applies it, with fewer operations than the einsum (elsewhere the einsum's own
    arrangement is faster), else None; ``columns``: the angles as a slice where they
    are consecutive, which autograd handles more cheaply than a list."""

    matrices: np.ndarray
    angles: list
    view: tuple
    equation: str
    block: tuple | None = None
    columns: object = None

    def __post_init__(self):
        k = (len(self.view) - 2) // 2
        if all(run == 1 for run in self.view[1:-1:2]):  # no qubit above or between
            self.block = (-1, 2**k, self.view[-1])
        first = self.angles[0] if self.angles else 0
        if self.angles == list(range(first, first + len(self.angles))):
            self.columns = slice(first, first + len(self.angles))
        else:
            self.columns = self.angles


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


def _layout(qubits, num_qubits, batched):
    """View shape and einsum equation for a gate on ``qubits``, and the order of its
    qubits in that view (most significant first: qubit q is axis n - q of a
    (batch, 2, ..., 2) state in Qiskit's little-endian order)."""
    ordered = sorted(qubits, reverse=True)
    view, state, gate_in, gate_out, out = [-1], "b", "", "", "b"
    above = num_qubits
    letters = iter(string.ascii_letters.replace("b", ""))
    for q in ordered:
        run, inp, outp = next(letters), next(letters), next(letters)
        view += [2 ** (above - q - 1), 2]
        state, out = state + run + inp, out + run + outp
        gate_in, gate_out = gate_in + inp, gate_out + outp
        above = q
    view.append(2**above)
    last = next(letters)
    state, out = state + last, out + last
    gate = ("b" if batched else "") + gate_out + gate_in
    return tuple(view), f"{gate},{state}->{out}", ordered


def _gate_tensor(matrices, qubits, ordered):
    """(corners, 2^k, 2^k) matrices, index bit i belonging to ``qubits[i]``, as
    (corners, 2, ..., 2) tensors with outputs then inputs in the order ``ordered``."""
    k = len(qubits)
    tensor = matrices.reshape((len(matrices),) + (2,) * (2 * k))
    # axis k - i holds the output bit of qubits[i], axis 2k - i its input bit
    outputs = [k - qubits.index(q) for q in ordered]
    inputs = [axis + k for axis in outputs]
    return np.ascontiguousarray(tensor.transpose([0] + outputs + inputs))


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
        view, equation, ordered = _layout(qubits, circuit.num_qubits, bool(slots))
        matrices = _gate_tensor(matrices, qubits, ordered)
        steps.append(_Step(matrices, angles, view, equation))
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
    parameter-shift path). Matrices are built once; copies per device are cached. The
    fixed gates before the first trainable one are applied once, here.
    """

    def __init__(self, shiftable, observables):
        self.num_qubits = shiftable.circuit.num_qubits
        self.n_angles = len(shiftable.angle_params)
        self.n_observables = len(observables)
        angle_index = {p: k for k, p in enumerate(shiftable.angle_params)}
        steps = _steps(shiftable.circuit, angle_index)
        fixed = next((i for i, step in enumerate(steps) if step.angles), len(steps))
        self.steps = steps[fixed:]
        self.groups = _observable_groups(observables, self.num_qubits)
        self._on_device = {}
        start = torch.zeros(1, 2**self.num_qubits, dtype=torch.complex128)
        start[0, 0] = 1.0
        for step in steps[:fixed]:
            start = _apply(start, torch.from_numpy(step.matrices[0]), step)
        self.start = start.reshape(1, -1).numpy()

    def _tensors(self, device):
        """Initial state, gate tensors and observable weights on ``device`` (cached)."""
        if device not in self._on_device:

            def move(array):
                return torch.tensor(array, dtype=torch.complex128, device=device)

            gates = [
                move(step.matrices if step.angles else step.matrices[0])
                for step in self.steps
            ]
            weights = [
                move(w) if axes else move(w).real.contiguous()
                for axes, w in self.groups
            ]
            self._on_device[device] = move(self.start), gates, weights
        return self._on_device[device]

    def expectations(self, angles):
        """<O> for each observable and row: ``(batch, angles)`` -> ``(batch, outputs)``,
        float64, on the angles' device."""
        if angles.dim() != 2 or angles.shape[1] != self.n_angles:
            raise ValueError(
                f"angles must have shape (batch, {self.n_angles}), "
                f"got {tuple(angles.shape)}"
            )
        start, gates, weights = self._tensors(angles.device)
        state = start.expand(len(angles), -1)
        half = angles.double() / 2
        for step, gate in zip(self.steps, gates):
            if step.angles:
                gate = _batched_gate(half[:, step.columns], gate)
            state = _apply(state, gate, step)
        return self._measure(state.reshape(len(angles), -1), weights)

    def __call__(self, angles):
        """NumPy evaluator: ``(parameter sets, angles)`` -> ``(parameter sets,
        observables)``."""
        with torch.no_grad():
            values = self.expectations(torch.as_tensor(angles, dtype=torch.float64))
        return values.numpy()

    def _measure(self, state, weights):
        """sum_i |psi_i|^2 w_0[i] + Re sum_(x != 0) sum_i conj(psi_i) w_x[i]
        psi_(i xor x), the flips done by ``torch.flip`` on the qubit axes."""
        batch = state.shape[0]
        total = None
        for (axes, _), w in zip(self.groups, weights):
            if not axes:
                term = torch.view_as_real(state).square().sum(-1) @ w
            else:
                flipped = state.reshape(batch, *[2] * self.num_qubits).flip(axes)
                term = ((state.conj() * flipped.reshape(batch, -1)) @ w).real
            total = term if total is None else total + term
        if total is None:  # every observable is zero: zeros, still in autograd's graph
            total = (0 * state.real[:, :1]).expand(batch, self.n_observables)
        return total


def _batched_gate(half, corners):
    """sum_s prod_j [cos or sin](a_j / 2) C_s for every row: (batch, 2, ..., 2)."""
    if half.shape[1] == 1:  # the common case, in one operation fewer
        weights = torch.cat([half.cos(), half.sin()], dim=1)
    else:
        trig = torch.stack([half.cos(), half.sin()], dim=2)  # (batch, m, 2)
        weights = trig[:, 0]
        for j in range(1, trig.shape[1]):
            weights = (weights[:, :, None] * trig[:, j, None, :]).flatten(1)
    flat = weights.to(corners.dtype) @ corners.flatten(1)
    return flat.reshape(len(half), *corners.shape[1:])


def _apply(state, gate, step):
    """One gate (one tensor, or one per row) applied to a (batch, ...) state."""
    if step.block is None:
        return torch.einsum(step.equation, gate, state.reshape(step.view))
    size = step.block[1]
    matrix = gate.reshape(-1, size, size) if step.angles else gate.reshape(size, size)
    return matrix @ state.reshape(step.block)
