"""Step 4: the autograd function and the ``nn.Module``.

``QuantumLayer.forward`` computes the circuit's angles from the inputs and weights in
PyTorch (so autograd applies the chain rule through them) and hands the angles to
``QuantumFunction``. That function returns the expectation values and, when a gradient
will be wanted, their derivatives with respect to the angles, all from one evaluator
call. Its backward pass is a product with those derivatives; differentiated again, it
applies the shift rule to the derivatives themselves, which gives exact second (and
higher) derivatives. With ``simulator="torch"`` and ``gradient="backprop"`` the layer
skips ``QuantumFunction``: the simulation is made of PyTorch operations, and autograd
differentiates through it.
"""

import math
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives import BaseEstimatorV2
from qiskit.quantum_info import SparsePauliOp

from helpers.quantum.evaluators import Estimated, ExactAer, SampledAer, in_chunks
from helpers.quantum.rewrite import _names, shiftable_form
from helpers.quantum.shift import SHIFT, shift_in_blocks
from helpers.quantum.statevector import TorchStatevector

# At most this many parameter sets go to the simulator in one call: about 20 KB of
# memory each in Aer.
CHUNK_SIZE = 4096
SIMULATORS = ("aer", "torch")
GRADIENTS = ("shift", "backprop")
_NON_FINITE_ANGLES = (
    "the circuit's angles are NaN or infinite: check the input, the weights and the "
    "angle expressions"
)


class CircuitRewrittenWarning(UserWarning):
    """The estimator will receive gates other than the ones in the user's circuit."""


class QuantumFunction(torch.autograd.Function):
    """Angles ``(batch, angles)`` -> expectation values ``(batch, outputs)`` and their
    derivatives ``(batch, len(which), outputs)`` with respect to the angles listed in
    ``which``: one evaluator call."""

    @staticmethod
    def forward(angles, layer, which):
        points = angles.detach().cpu().double().numpy()
        if not np.isfinite(points).all():
            raise ValueError(_NON_FINITE_ANGLES)
        if which:
            values, derivatives = shift_in_blocks(
                layer.evaluate, points, list(which), layer.chunk_size
            )
        else:
            values = in_chunks(layer.evaluate, points, layer.chunk_size)
            derivatives = np.zeros((len(points), 0, values.shape[1]))

        def as_tensor(a):
            return torch.as_tensor(a, dtype=torch.float64, device=angles.device)

        return as_tensor(values), as_tensor(derivatives)

    @staticmethod
    def setup_context(ctx, inputs, output):
        angles, layer, which = inputs
        ctx.layer, ctx.which = layer, which
        ctx.save_for_backward(angles, output[1])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, grad_values, grad_derivatives):
        angles, derivatives = ctx.saved_tensors
        if not ctx.which or (grad_values is None and grad_derivatives is None):
            return None, None, None
        grad = 0
        # first order: the chain rule with the shift-rule derivatives
        if grad_values is not None:
            grad = grad + (derivatives * grad_values[:, None, :]).sum(2)
        # reached only when a derivative is differentiated again
        if grad_derivatives is not None:
            second = QuantumFunction.second_derivatives(angles, ctx.layer, ctx.which)
            grad = grad + (second * grad_derivatives[:, None]).sum((2, 3))
        select = torch.zeros(
            len(ctx.which), angles.shape[1], dtype=grad.dtype, device=grad.device
        )
        select[torch.arange(len(ctx.which)), list(ctx.which)] = 1.0
        return grad @ select, None, None

    @staticmethod
    def second_derivatives(angles, layer, which):
        """d^2 f / d a_l d a_k, shape (batch, l, k, outputs): the shift rule applied to
        the shift rule's derivatives, at the 2 * len(which) shifted points of every row
        (one more evaluator call)."""
        batch, n_angles = angles.shape
        steps = torch.zeros(
            len(which), n_angles, dtype=angles.dtype, device=angles.device
        )
        steps[torch.arange(len(which)), list(which)] = SHIFT
        points = torch.stack(
            [angles[:, None] + steps, angles[:, None] - steps], dim=1
        ).reshape(-1, n_angles)
        # differentiable again: third order
        _, derivatives = QuantumFunction.apply(points, layer, which)
        derivatives = derivatives.reshape(batch, 2, len(which), len(which), -1)
        return (derivatives[:, 0] - derivatives[:, 1]) / (2 * math.sin(SHIFT))

    @staticmethod
    def vmap(info, in_dims, angles, layer, which):
        """Under ``torch.func.vmap`` the extra dimension simply joins the batch:
        still one call.
        """
        if in_dims[0] is None:
            return QuantumFunction.apply(angles, layer, which), (None, None)
        flat = angles.movedim(in_dims[0], 0)
        values, derivatives = QuantumFunction.apply(
            flat.reshape(-1, flat.shape[-1]), layer, which
        )
        lead = flat.shape[:2]
        return (
            values.reshape(*lead, -1),
            derivatives.reshape(*lead, *derivatives.shape[1:]),
        ), (0, 0)

    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError(
            "QuantumLayer supports reverse-mode differentiation only, not forward mode "
            "(torch.func.jvp, jacfwd, torch.func.hessian): use torch.func.jacrev "
            "(twice for a Hessian), torch.autograd.grad or "
            "torch.autograd.functional.hessian instead"
        )


def _as_parameters(params, what):
    """A list of Parameters from a Parameter, any iterable of them (a ParameterVector
    too) or None.
    """
    if params is None:
        return []
    if isinstance(params, Parameter):
        return [params]
    if not isinstance(params, Iterable) or isinstance(params, str):
        raise TypeError(
            f"{what} must be a qiskit Parameter or a list of them, "
            f"got {type(params).__name__}"
        )
    params = list(params)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{what} must be qiskit Parameters, got {p!r}")
    return params


def _as_observables(observables, num_qubits):
    """A non-empty list of Hermitian SparsePauliOps on ``num_qubits`` qubits, from one
    or an iterable.
    """
    if isinstance(observables, SparsePauliOp):
        observables = [observables]
    elif not isinstance(observables, Iterable) or isinstance(observables, str):
        raise TypeError(
            f"observables must be a SparsePauliOp or a list of them (one per output), "
            f"got {type(observables).__name__}"
        )
    observables = list(observables)
    if not observables:
        raise ValueError(
            "observables must be a non-empty list of SparsePauliOp (one per output)"
        )
    for i, obs in enumerate(observables):
        if not isinstance(obs, SparsePauliOp):
            raise TypeError(
                f"observable {i} must be a SparsePauliOp, got {type(obs).__name__}"
            )
        if obs.num_qubits != num_qubits:
            raise ValueError(
                f"observable {i} acts on {obs.num_qubits} qubits "
                f"but the circuit has {num_qubits}"
            )
        if np.any(np.abs(obs.simplify().coeffs.imag) > 1e-12):
            raise ValueError(
                f"observable {i} is not Hermitian (complex coefficients): "
                "its expectation is not real"
            )
    # Simplified, with real coefficients: what every evaluator receives.
    return [
        SparsePauliOp(o.simplify().paulis, o.simplify().coeffs.real)
        for o in observables
    ]


def _torch_in_chunks(evaluate, angles, chunk_size):
    """``evaluate(angles)`` on tensors, at most ``chunk_size`` rows per call."""
    if len(angles) <= chunk_size:
        return evaluate(angles)
    return torch.cat([evaluate(part) for part in angles.split(chunk_size)])


def _all_finite(tensor):
    """Whether every entry is finite; True where torch.func.vmap hides the values
    (QuantumFunction checks).
    """
    try:
        return bool(torch.isfinite(tensor).all())
    except RuntimeError:  # under vmap a data-dependent check cannot run here
        return True


def _check_choice(value, what, choices):
    if not isinstance(value, str) or value not in choices:
        names = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{what} must be {names}, got {value!r}")


def _resolve_simulation(simulator, gradient, shots, estimator):
    """The gradient method, after refusing combinations that cannot work."""
    _check_choice(simulator, "simulator", SIMULATORS)
    if gradient is not None:
        _check_choice(gradient, "gradient", GRADIENTS)
    if simulator == "torch" and shots is not None:
        raise ValueError(
            "simulator='torch' is exact and takes no shots: "
            "for sampled values use the default simulator='aer' with shots"
        )
    if simulator == "torch" and estimator is not None:
        raise ValueError(
            "give either simulator='torch' or an estimator: the estimator does the "
            "simulation itself"
        )
    if gradient == "backprop" and simulator != "torch":
        raise ValueError(
            "gradient='backprop' needs simulator='torch': autograd cannot see inside "
            "Aer or an estimator, whose gradients come from the parameter-shift rule "
            "(gradient='shift')"
        )
    if gradient is None:
        return "backprop" if simulator == "torch" else "shift"
    return gradient


def _check_counting_number(value, what, minimum):
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or value < minimum
    ):
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise ValueError(f"{what} must be {kind} integer, got {value!r}")


class QuantumLayer(torch.nn.Module):
    """A parameterized circuit as a layer: ``(batch, inputs)`` in, one expectation value
    per observable out.

    ``input_params`` are fed from the previous layer, ``weight_params`` are trained
    here; angles may be any differentiable expression of them. Exact Aer by default;
    ``shots=N`` samples N real shots per circuit (seeded by ``seed``; a copy of the
    layer continues the same random stream, see ``reseed``); ``estimator=`` uses any
    ``BaseEstimatorV2`` (it warns with ``CircuitRewrittenWarning`` if some standard
    gates reach it rewritten: transpile to the backend's basis first);
    ``simulator="torch"`` simulates exactly in PyTorch, on the input's device
    (``TorchStatevector``). Gradients: exact parameter shift, to any order, computed in
    the forward pass whenever autograd may ask for them (evaluate under
    ``torch.no_grad()`` to skip that); with the torch simulator, backpropagation through
    the simulation by default (``gradient="backprop"``), or ``gradient="shift"``. At
    most ``chunk_size`` parameter sets per call.
    """

    def __init__(
        self,
        circuit,
        observables,
        input_params,
        weight_params=(),
        *,
        estimator=None,
        shots=None,
        seed=None,
        chunk_size=CHUNK_SIZE,
        simulator="aer",
        gradient=None,
    ):
        super().__init__()
        if not isinstance(circuit, QuantumCircuit):
            raise TypeError(
                f"circuit must be a qiskit QuantumCircuit, got {type(circuit).__name__}"
            )
        observables = _as_observables(observables, circuit.num_qubits)
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
            raise ValueError(
                f"circuit parameter(s) neither input nor weight: {_names(unlisted)}"
            )
        if estimator is not None and shots is not None:
            raise ValueError(
                "give either shots or estimator: set the shots on the estimator itself"
            )
        if estimator is not None and not isinstance(estimator, BaseEstimatorV2):
            raise TypeError(
                "estimator must be a qiskit BaseEstimatorV2, "
                f"got {type(estimator).__name__}"
            )
        if shots is not None:
            _check_counting_number(shots, "shots", 1)
        if seed is not None and shots is None:
            raise ValueError(
                "seed only applies with shots: exact evaluation has no randomness"
            )
        if seed is not None:
            _check_counting_number(seed, "seed", 0)
        _check_counting_number(chunk_size, "chunk_size", 1)
        self.gradient = _resolve_simulation(simulator, gradient, shots, estimator)

        self.circuit, self.observables = circuit, observables
        self.shots, self.chunk_size = shots, chunk_size
        self.shiftable = shiftable_form(circuit, listed)
        if estimator is not None:
            if self.shiftable.rewritten:
                warnings.warn(
                    "the estimator will not see the gates "
                    f"{', '.join(self.shiftable.rewritten)} of your circuit: the layer "
                    "replaces them by their definitions so that every trainable angle "
                    "has an exact shift rule. A noise model keyed on these names will "
                    "not apply, and noise on the gates they are made of will. To keep "
                    "noise on the gates you mean, transpile the circuit to the "
                    "backend's basis gates before building the layer.",
                    CircuitRewrittenWarning,
                    stacklevel=2,
                )
            self.evaluate = Estimated(self.shiftable, self.observables, estimator)
        elif shots is not None:
            # follow torch's generator, which helpers.reproducibility seeds
            if seed is None:
                seed = int(torch.randint(0, 2**62, ()).item())
            self.evaluate = SampledAer(
                self.shiftable, self.observables, shots, np.random.default_rng(seed)
            )
        elif simulator == "torch":
            self.evaluate = TorchStatevector(self.shiftable, self.observables)
        else:
            self.evaluate = ExactAer(self.shiftable, self.observables)
        self.weight = torch.nn.Parameter(
            2 * math.pi * torch.rand(len(self.weight_params))
        )

    def reseed(self, seed):
        """Start a fresh random stream for the shots (a copied layer otherwise repeats
        the original's).
        """
        if self.shots is None:
            raise ValueError(
                "reseed only applies with shots: exact evaluation has no randomness"
            )
        _check_counting_number(seed, "seed", 0)
        self.evaluate.rng = np.random.default_rng(seed)

    def forward(self, x=None):
        """Expectation values, shape ``(batch, len(observables))``, for inputs of shape
        ``(batch, len(input_params))``. A layer without inputs may be called with no
        argument (batch 1)."""
        n = len(self.input_params)
        if x is None:
            if n:
                raise ValueError(
                    f"this layer has {n} input parameter(s): "
                    f"call it with a tensor of shape (batch, {n})"
                )
            x = torch.zeros(1, 0, dtype=self.weight.dtype, device=self.weight.device)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"input must be a floating-point tensor, got {x.dtype}")
        if x.dim() != 2 or x.shape[1] != n:
            hint = (
                " (a layer without inputs can be called with no argument)"
                if n == 0
                else ""
            )
            raise ValueError(
                f"input must have shape (batch, {n}) for {n} input parameter(s), "
                f"got {tuple(x.shape)}{hint}"
            )
        if x.shape[0] == 0:
            raise ValueError("input batch is empty")
        if not _all_finite(x):
            raise ValueError("input contains NaN or infinite values")
        if not _all_finite(self.weight):
            raise ValueError("the layer's weights contain NaN or infinite values")
        values = torch.cat([x.double(), self.weight.double().expand(len(x), -1)], dim=1)
        angles = self.shiftable.angles(values)
        if self.gradient == "backprop":
            if not _all_finite(angles):
                raise ValueError(_NON_FINITE_ANGLES)
            values_out = _torch_in_chunks(
                self.evaluate.expectations, angles, self.chunk_size
            )
        else:
            which = self._angles_to_shift(x)
            values_out, _ = QuantumFunction.apply(angles, self, which)
        return values_out.to(x.dtype)

    def _angles_to_shift(self, x):
        """The angles whose derivatives autograd may ask for: those that use a value
        needing a gradient.
        """
        if not torch.is_grad_enabled():
            return ()
        wanted = np.zeros(self.shiftable.depends.shape[1], dtype=bool)
        wanted[: len(self.input_params)] = x.requires_grad
        wanted[len(self.input_params) :] = self.weight.requires_grad
        return tuple(
            int(k)
            for k in np.flatnonzero(self.shiftable.depends[:, wanted].any(axis=1))
        )

    def extra_repr(self):
        mode = f"shots={self.shots}" if self.shots else type(self.evaluate).__name__
        if isinstance(self.evaluate, TorchStatevector):
            mode += f", gradient={self.gradient}"
        return (
            f"qubits={self.circuit.num_qubits}, inputs={len(self.input_params)}, "
            f"weights={len(self.weight_params)}, outputs={len(self.observables)}, "
            f"{mode}"
        )
