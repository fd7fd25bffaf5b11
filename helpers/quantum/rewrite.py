"""Step 1: rewrite the circuit so that every trainable angle has its own two-term gate.

``shiftable_form`` expands every gate (and every sub-circuit) whose trainable angles
have no exact two-term shift rule into its definition, then gives each angle that
depends on the layer's parameters a fresh parameter ``a[k]``. The angles themselves are
computed in PyTorch from the parameter values: affine angles (``c * x + d``, the common
case) by one matrix product, any other differentiable expression (``sin(x)``,
``w * x``, ``(pi - x0) * (pi - x1)``) by a function compiled once from the expression.
Autograd then applies the chain rule through the angles, to any order.
"""

import math
from dataclasses import dataclass, field

import numpy as np
import sympy
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import (
    AnnotatedOperation,
    ControlFlowOp,
    Gate,
    ParameterExpression,
    ParameterVector,
)
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
from qiskit.circuit.library.standard_gates import get_standard_gate_name_mapping
from qiskit_aer import AerSimulator

# Gates exp(-i a G) whose generator G has exactly two eigenvalues, 1 apart (up to a
# global phase): for these the two-term shift rule is exact. Controlled phases (cp, cu1,
# mcphase) would qualify too, but Aer mis-simulates parameterized controlled gates under
# parameter binding (qiskit-aer #2323, #2403), so they are expanded through their
# definitions instead, like every other gate.
# For U, U2, U3 each angle on its own is such a rotation (U(t, p, l) = RZ(p) RY(t) RZ(l)
# up to a phase), and so is R's first angle: these gates reach the simulator intact when
# only those slots are trainable.
TWO_TERM_GATES = {
    **{
        gate: (0,)
        for gate in (
            RXGate,
            RYGate,
            RZGate,
            PhaseGate,
            U1Gate,
            RXXGate,
            RYYGate,
            RZZGate,
            RZXGate,
        )
    },
    UGate: (0, 1, 2),
    U3Gate: (0, 1, 2),
    U2Gate: (0, 1),
    RGate: (0,),
}

_NOT_GATES_ALLOWED = ("barrier", "delay")
# Gates without trainable angles stay as they are if Aer simulates them; others are
# expanded.
_AER_GATES = frozenset(AerSimulator(method="statevector").configuration().basis_gates)
# Gate names a noise model or a backend can refer to: rewriting one of these is worth a
# warning.
_NAMED_GATES = frozenset(get_standard_gate_name_mapping()) | _AER_GATES

# How sympy's functions are computed on tensors: every function a ParameterExpression
# can hold.
_TORCH_FUNCTIONS = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "asin": torch.asin,
    "acos": torch.acos,
    "atan": torch.atan,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "Abs": torch.abs,
    "sign": torch.sign,
    "conjugate": lambda t: t,
    "pi": math.pi,
    "E": math.e,
}


@dataclass
class ShiftableCircuit:
    """A circuit with one fresh parameter per trainable angle,
    and how to compute the angles.

    ``values`` are the layer's parameters (inputs first, then weights). Affine angles
    are ``values @ jacobian.T + offset``; the angles listed in ``curved`` are computed
    by ``curve``, a function compiled from their expressions. ``depends[k, p]`` says
    whether angle k uses value p. ``rewritten`` names the standard gates of the user's
    circuit that were replaced by their definitions.
    """

    circuit: QuantumCircuit
    angle_params: ParameterVector
    jacobian: np.ndarray  # (angles, values); zero rows for curved angles
    offset: np.ndarray  # (angles,)
    depends: np.ndarray  # (angles, values), bool
    # indices of the angles that are not affine
    curved: list = field(default_factory=list)
    # values (batch, values) tensor -> list of curved angles, each (batch,)
    curve: object = None
    rewritten: list = field(default_factory=list)

    def angles(self, values):
        """Angle vectors, shape (batch, angles), for value vectors of shape
        (batch, values).

        Takes and returns a tensor (differentiable, on the values' device).
        """
        jacobian = torch.as_tensor(
            self.jacobian, dtype=values.dtype, device=values.device
        )
        angles = values @ jacobian.T + torch.as_tensor(
            self.offset, dtype=values.dtype, device=values.device
        )
        if self.curved:
            curved = [
                torch.as_tensor(c, dtype=values.dtype, device=values.device).expand(
                    len(values)
                )
                for c in self.curve(*values.T)
            ]
            index = torch.as_tensor(self.curved, device=values.device)
            angles = angles.index_copy(1, index, torch.stack(curved, dim=1))
        return angles


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
    """The gate's definition as a circuit of other gates,
    or a ValueError that names the gate.
    """
    if isinstance(op, PauliEvolutionGate):
        # terms with zero weight do not count
        terms = [
            p
            for operator in (
                op.operator if isinstance(op.operator, list) else [op.operator]
            )
            for p in operator.simplify().paulis
        ]
        if any(not a.commutes(b) for i, a in enumerate(terms) for b in terms[i + 1 :]):
            raise ValueError(
                f"gate '{op.name}' evolves under non-commuting Pauli terms: its "
                "definition is only a product-formula approximation, so the layer "
                "cannot use it exactly"
            )
    try:
        definition = op.definition
    except Exception as error:
        # some gates cannot build a definition while their angles are symbolic
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
    """Whether every angle of ``op`` that uses a trainable parameter
    sits in a two-term slot.
    """
    slots = TWO_TERM_GATES.get(op.base_class, ())
    return all(
        j in slots
        for j, value in enumerate(op.params)
        if isinstance(value, ParameterExpression) and value.parameters & trainable
    )


def _check_instruction(op):
    """Refuse an instruction that is not a gate unless it is a sub-circuit made of gates
    (checked inside).
    """
    if op.name == "initialize":
        raise ValueError(
            "the circuit contains 'initialize', which begins with a reset and so is "
            "not unitary; to start from a given state, use StatePreparation "
            "(qiskit.circuit.library), a unitary gate"
        )
    if (
        isinstance(op, ControlFlowOp)
        or op.num_clbits
        or op.name in ("measure", "reset")
        or op.definition is None
    ):
        raise ValueError(
            f"the circuit contains '{op.name}', which is not a unitary gate; the layer "
            "measures its observables itself, so remove measurements, resets and "
            "classical control"
        )


def _expand(circuit, qubit_map, trainable, out, rewritten):
    """Append ``(operation, qubits)`` to ``out`` until every trainable angle is in a
    two-term gate and every other gate is one that Aer simulates; record in
    ``rewritten`` the named gates replaced."""
    for instruction in circuit.data:
        op = instruction.operation
        qubits = [qubit_map[circuit.find_bit(q).index] for q in instruction.qubits]
        if isinstance(op, AnnotatedOperation):
            raise ValueError(
                f"'{op.name}' is an annotated operation: build it with annotated=False "
                "(for example gate.control(2, annotated=False)) so that the layer can "
                "see its gates"
            )
        if not isinstance(op, Gate):
            if op.name in _NOT_GATES_ALLOWED:
                out.append((op, qubits))
            else:
                # a sub-circuit appended as an instruction:
                # unitary if everything inside is
                _check_instruction(op)
                _expand(op.definition, qubits, trainable, out, rewritten)
            continue
        used = _trainable_in(op, trainable)
        if used and _two_term(op, trainable):
            out.append((op, qubits))
        elif not used and op.name in _AER_GATES:
            out.append((op, qubits))
        else:
            if op.name in _NAMED_GATES:
                rewritten.append(op.name)
            _expand(_definition(op, used), qubits, trainable, out, rewritten)


def _affine(expression, order):
    """Coefficients and offset of ``expression`` in the parameters ``order``, or None if
    not affine.
    """
    coefficients = np.zeros(len(order))
    for parameter in expression.parameters:
        slope = expression.gradient(parameter)
        if isinstance(slope, ParameterExpression) and slope.parameters:
            return None
        coefficients[order[parameter]] = complex(slope).real
    offset = complex(expression.bind({p: 0.0 for p in expression.parameters}))
    return coefficients, offset.real


def _compile(expressions, order):
    """One function computing every non-affine angle from the value columns, vectorized
    over the batch.
    """
    symbols = [sympy.Symbol(f"v{i}") for i in range(len(order))]
    by_name = {p.name: symbols[i] for p, i in order.items()}
    converted = [
        e.sympify().subs({s: by_name[s.name] for s in e.sympify().free_symbols})
        for e in expressions
    ]
    return sympy.lambdify(symbols, converted, modules=[_TORCH_FUNCTIONS, "math"])


def _check_compiled(curve, expressions, n_values):
    """Evaluate the compiled angles once, at a generic point, so that a bad expression
    fails here.
    """
    probe = torch.full((1, n_values), 0.6180339887, dtype=torch.float64)
    try:
        results = curve(*probe.T)
    except Exception as error:
        raise ValueError(
            f"an angle expression could not be evaluated in PyTorch ({error})"
        ) from error
    for expression, result in zip(expressions, results):
        if not torch.is_tensor(result) or result.is_complex():
            raise ValueError(
                f"angle {expression} does not give a real number per sample"
            )


def shiftable_form(circuit, parameters):
    """Rewrite ``circuit`` so that each angle that depends on ``parameters`` has its own
    two-term gate.

    Raises ``ValueError`` naming the gate when some use of a parameter cannot be
    differentiated exactly.
    """
    order = {p: i for i, p in enumerate(parameters)}
    expanded, rewritten = [], []
    _expand(
        circuit, list(range(circuit.num_qubits)), set(parameters), expanded, rewritten
    )

    rows, offsets, depends, curved, expressions, rebuilt = [], [], [], [], [], []
    for op, qubits in expanded:
        new_params, changed = [], False
        for value in op.params:
            if isinstance(value, ParameterExpression) and value.parameters:
                if value.sympify().has(sympy.I):
                    raise ValueError(
                        f"gate '{op.name}' has angle {value} with a complex coefficient"
                    )
                affine = _affine(value, order)
                if affine is None:
                    curved.append(len(rows))
                    expressions.append(value)
                    affine = np.zeros(len(order)), 0.0
                rows.append(affine[0])
                offsets.append(affine[1])
                depends.append([p in value.parameters for p in order])
                # index of the fresh angle, filled in below
                new_params.append(len(rows) - 1)
                changed = True
            else:
                new_params.append(value)
        rebuilt.append((op, qubits, new_params if changed else None))

    if not rows:
        raise ValueError(
            "no parameter of the layer reaches a gate: "
            "the output could not depend on them"
        )
    curve = None
    if curved:
        curve = _compile(expressions, order)
        _check_compiled(curve, expressions, len(order))
    angle_params = ParameterVector("a", len(rows))
    # the global phase is dropped: it changes no expectation value
    core = QuantumCircuit(circuit.num_qubits)
    for op, qubits, new_params in rebuilt:
        if new_params is not None:
            op = op.to_mutable()
            op.params = [
                angle_params[p] if isinstance(p, int) else p for p in new_params
            ]
        core.append(op, qubits)
    return ShiftableCircuit(
        core,
        angle_params,
        np.array(rows),
        np.array(offsets),
        np.array(depends, dtype=bool),
        curved,
        curve,
        sorted(set(rewritten)),
    )
