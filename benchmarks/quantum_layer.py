"""What does batching buy, and what do the other ways of writing the layer cost? The
one-qubit quantum layer sample by sample, against ``QuantumLayer``, the libraries, and
an 8-qubit circuit.

The layer is the 2020 tutorial's: H, then RY(theta), output <Z> = -sin(theta). Every
row times forward + backward (all outputs summed, gradient with respect to every input,
and to every weight where there are weights), in microseconds per sample: the median of
``--repeats`` runs after one warm-up run.

1. Batch sizes 1 to 256: (a) a per-sample loop with the tutorial's call structure (one
   primitive call per sample forward, one per sample and shift backward, Aer's exact
   ``EstimatorV2`` with ``runtime_parameter_bind_enable=True``, its fastest setting);
   (b) ``QuantumLayer`` on Aer, one call per batch with all shifted points; (c) the same
   layer with ``simulator="torch"``, a state-vector simulation in PyTorch
   differentiated by backpropagation.
2. Side by side at batch 64, on the same angles, the runs interleaved so that all rows
   share the machine's load: (b), (c), (a), qiskit-machine-learning's
   ``TorchConnector(EstimatorQNN)`` with input gradients (with the library's default
   estimator, and with Aer's ``EstimatorV2``), PennyLane's ``TorchLayer`` on
   ``default.qubit`` with ``diff_method="backprop"``, and the closed form in PyTorch.
3. An 8-qubit circuit at batch 256: RY(x_q) on every qubit, then 2 layers of RY and RX
   with trainable weights on every qubit and a ring of CNOTs; <Z_q> of every qubit;
   gradients with respect to the inputs and the 32 weights. Aer layer, torch path,
   PennyLane.

Before any timing every row is checked: exact rows against the closed forms (part 1 and
2) or the Aer layer (part 3) to 1e-10, the ``TorchConnector`` rows loosely (their output
is float32, and Aer's estimator at EstimatorQNN's default precision adds noise).
PennyLane is a benchmark-only package (``benchmarks/requirements.txt``, installed by
``make benchmark``); it and qiskit-machine-learning are imported only when their rows
are built, and a missing one makes its rows say "not installed". At the end: whether
the targets are met. The machine may be shared: run it more than once.

    .venv/bin/python benchmarks/quantum_layer.py        # from the repository root
    .venv/bin/python benchmarks/quantum_layer.py --repeats 9
"""

import argparse
import importlib
import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2

from helpers.circuits import one_qubit_circuit
from helpers.quantum import QuantumLayer
from helpers.reproducibility import seed_everything

BATCH_SIZES = (1, 16, 64, 256)
TARGET_BATCH = 64
TARGET_LAYER_US = 150.0  # QuantumLayer, forward + backward, per sample
TARGET_SPEEDUP = 10.0  # per-sample loop time / QuantumLayer time
SHIFT = math.pi / 2
TOLERANCE = 1e-10
# torch path time / PennyLane time, one-qubit layer at TARGET_BATCH: at most this
TARGET_TORCH_VS_PENNYLANE = 0.5
# TorchConnector time / Aer layer time, one-qubit layer at TARGET_BATCH: at least this
TARGET_AER_VS_CONNECTOR = 40.0
# The TorchConnector row returns float32, and an estimator with a ``precision`` (Aer's
# EstimatorV2 at EstimatorQNN's default 1/64) adds Gaussian noise of that standard
# deviation: about 4e-2 at worst over 64 samples. Checked to this, its error reported.
CONNECTOR_TOLERANCE = 0.1
MULTI_QUBITS, MULTI_LAYERS, MULTI_BATCH = 8, 2, 256
INSTALL_HINT = "pip install -r benchmarks/requirements.txt"


class PerSampleLoop:
    """Baseline (a): values and d<Z>/dtheta with three primitive calls per sample, as
    the tutorial did.
    """

    def __init__(self):
        self.circuit, _ = one_qubit_circuit()
        self.observable = SparsePauliOp("Z")
        self.estimator = EstimatorV2(
            options={"backend_options": {"runtime_parameter_bind_enable": True}}
        )

    def _expectation(self, theta):
        return float(
            self.estimator.run([(self.circuit, self.observable, [theta])])
            .result()[0]
            .data.evs
        )

    def __call__(self, thetas):
        """Values and gradients, two arrays of shape (batch,), for angles of shape
        (batch,).
        """
        values, grads = [], []
        for theta in thetas:
            values.append(self._expectation(theta))
            plus, minus = (
                self._expectation(theta + SHIFT),
                self._expectation(theta - SHIFT),
            )
            grads.append((plus - minus) / (2 * math.sin(SHIFT)))
        return np.array(values), np.array(grads)


class BatchedLayer:
    """Candidates (b) and (c): ``QuantumLayer`` forward and backward on the whole batch
    (``kwargs`` go to the layer: ``simulator="torch"`` for (c))."""

    def __init__(self, **kwargs):
        circuit, theta = one_qubit_circuit()
        self.layer = QuantumLayer(
            circuit, [SparsePauliOp("Z")], [theta], **kwargs
        ).double()

    def __call__(self, thetas):
        """Values and gradients, two arrays of shape (batch,), for angles of shape
        (batch,).
        """
        x = torch.tensor(np.asarray(thetas, dtype=float)[:, None], requires_grad=True)
        y = self.layer(x)
        y.sum().backward()
        return y.detach().numpy()[:, 0], x.grad.numpy()[:, 0]


def angles(batch, seed=0):
    """``batch`` angles drawn uniformly from [0, 2 pi), reproducibly."""
    return np.random.default_rng(seed).uniform(0, 2 * math.pi, batch)


def check_agreement(thetas, loop=None, layer=None, atol=TOLERANCE, torch_layer=None):
    """Assert that ``loop``, ``layer`` and ``torch_layer`` (defaults: the three above)
    agree, and agree with the closed forms.

    <Z> = -sin(theta) and d<Z>/dtheta = -cos(theta). Returns the largest difference
    found.
    """
    thetas = np.asarray(thetas, dtype=float)
    loop, layer = loop or PerSampleLoop(), layer or BatchedLayer()
    torch_layer = torch_layer or BatchedLayer(simulator="torch")
    (v_loop, g_loop), (v_layer, g_layer) = loop(thetas), layer(thetas)
    v_torch, g_torch = torch_layer(thetas)
    gaps = {
        "values, loop vs layer": np.abs(v_loop - v_layer).max(),
        "gradients, loop vs layer": np.abs(g_loop - g_layer).max(),
        "values, torch vs layer": np.abs(v_torch - v_layer).max(),
        "gradients, torch vs layer": np.abs(g_torch - g_layer).max(),
        "values vs -sin": np.abs(v_layer + np.sin(thetas)).max(),
        "gradients vs -cos": np.abs(g_layer + np.cos(thetas)).max(),
    }
    for name, gap in gaps.items():
        assert gap <= atol, f"{name}: largest difference {gap:.2e} exceeds {atol:.0e}"
    return max(gaps.values())


def microseconds_per_sample(fn, thetas, repeats):
    """Median time of ``fn(thetas)`` over ``repeats`` runs after one warm-up run, in µs
    per sample.
    """
    fn(thetas)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(thetas)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / len(thetas) * 1e6


def run(batch_sizes=BATCH_SIZES, repeats=5, seed=0):
    """Check, then time all three at every batch size; returns a list of
    (batch, loop µs, layer µs, speed-up, torch µs); ``report`` also takes rows without
    the torch column.
    """
    _check_repeats(repeats)
    if not batch_sizes or any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be positive integers, got {batch_sizes!r}")
    loop, layer = PerSampleLoop(), BatchedLayer()
    torch_layer = BatchedLayer(simulator="torch")
    for batch in batch_sizes:
        check_agreement(angles(batch, seed), loop, layer, torch_layer=torch_layer)
    rows = []
    for batch in batch_sizes:
        thetas = angles(batch, seed)
        loop_us = microseconds_per_sample(loop, thetas, repeats)
        layer_us = microseconds_per_sample(layer, thetas, repeats)
        torch_us = microseconds_per_sample(torch_layer, thetas, repeats)
        rows.append((batch, loop_us, layer_us, loop_us / layer_us, torch_us))
    return rows


def report(rows):
    """The table, then whether the targets at ``TARGET_BATCH`` are met (if that batch
    size was run).
    """
    lines = [
        f"{'batch':>5}  {'loop µs/sample':>14}  "
        f"{'layer µs/sample':>15}  {'speed-up':>8}  {'torch µs/sample':>15}",
    ]
    for batch, loop_us, layer_us, speedup, *torch_us in rows:
        torch_column = f"{torch_us[0]:15.1f}" if torch_us else f"{'-':>15}"
        lines.append(
            f"{batch:5d}  {loop_us:14.0f}  {layer_us:15.0f}  {speedup:7.1f}x  "
            f"{torch_column}"
        )
    at_target = [row for row in rows if row[0] == TARGET_BATCH]
    if at_target:
        _, _, layer_us, speedup, *torch_us = at_target[0]
        fast = layer_us <= TARGET_LAYER_US
        ahead = speedup >= TARGET_SPEEDUP
        lines += [
            "",
            f"targets at batch {TARGET_BATCH}:",
            f"  layer <= {TARGET_LAYER_US:.0f} µs/sample: "
            f"{'met' if fast else 'NOT met'} ({layer_us:.0f} µs)",
            f"  speed-up >= {TARGET_SPEEDUP:.0f}x:         "
            f"{'met' if ahead else 'NOT met'} ({speedup:.1f}x)",
        ]
        if torch_us:
            lines.append(
                f"torch path at batch {TARGET_BATCH}: {torch_us[0]:.1f} µs/sample, "
                f"{layer_us / torch_us[0]:.1f}x faster than the Aer layer"
            )
    return "\n".join(lines)


class NotInstalled(Exception):
    """A row's package is missing: the row is reported, not timed."""


def optional_import(name):
    """Module ``name``, or ``NotInstalled`` if it is missing.

    PennyLane is pinned in ``benchmarks/requirements.txt``, not in the book's
    requirements: it and qiskit-machine-learning (pinned by the book for one chapter)
    are imported here by name, when a row needs them, so that the book's tests and an
    environment without them still run.
    """
    try:
        return importlib.import_module(name)
    except ImportError as error:
        package = name.split(".")[0].replace("_", "-")
        raise NotInstalled(f"{package} not installed ({INSTALL_HINT})") from error


def _forward_backward(model, inputs, weight=None):
    """Values, input gradients and (if ``weight`` is given) weight gradients of
    ``model(inputs).sum()``, as NumPy arrays; ``inputs`` is a 2-D array."""
    x = torch.tensor(np.asarray(inputs, dtype=float), requires_grad=True)
    if weight is not None:
        weight.grad = None
    y = model(x)
    y.sum().backward()
    values = y.detach().double().reshape(len(x), -1).numpy()
    weight_grad = None if weight is None else weight.grad.detach().double().numpy()
    return values, x.grad.numpy(), weight_grad


class TorchModel:
    """A one-input model ``(batch, 1) -> (batch, 1)`` (or ``(batch,)``) as a row:
    values and input gradients, two arrays of shape (batch,), for angles (batch,)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, thetas):
        values, grads, _ = _forward_backward(self.model, np.asarray(thetas)[:, None])
        return values[:, 0], grads[:, 0]


def closed_form():
    """<Z> = -sin(theta) in PyTorch: the floor no simulation can go below."""
    return TorchModel(lambda x: -torch.sin(x))


def torch_connector(estimator=None):
    """qiskit-machine-learning's ``TorchConnector(EstimatorQNN)`` for the one-qubit
    circuit, with input gradients; ``estimator=None`` is the library's default."""
    qnn_module = optional_import("qiskit_machine_learning.neural_networks")
    connector = optional_import("qiskit_machine_learning.connectors")
    circuit, theta = one_qubit_circuit()
    qnn = qnn_module.EstimatorQNN(
        circuit=circuit,
        observables=SparsePauliOp("Z"),
        input_params=[theta],
        estimator=estimator,
        input_gradients=True,
    )
    return TorchModel(connector.TorchConnector(qnn))


def _connector_on_aer():
    """``torch_connector`` with Aer's ``EstimatorV2``: EstimatorQNN passes it a
    ``precision`` of 1/64, which Aer turns into Gaussian noise on the values."""
    return torch_connector(EstimatorV2())


def pennylane_one_qubit():
    """PennyLane's ``TorchLayer``: H, RY(theta), <Z> on ``default.qubit``, with
    backpropagation (the inputs broadcast over the batch)."""
    qml = optional_import("pennylane")

    @qml.qnode(qml.device("default.qubit", wires=1), diff_method="backprop")
    def circuit(inputs):
        qml.Hadamard(wires=0)
        qml.RY(inputs[..., 0], wires=0)
        return qml.expval(qml.PauliZ(0))

    return TorchModel(qml.qnn.TorchLayer(circuit, {}))


# The rows' names, as the tables print them and the targets find them.
AER, TORCH, PENNYLANE = "Aer layer", "torch path (backprop)", "PennyLane TorchLayer"
CONNECTORS = ("TorchConnector (QMLEstimator)", "TorchConnector (Aer Estimator)")
# Part 2's rows: name, how to build it, tolerance of its check.
ONE_QUBIT_ROWS = (
    (AER, BatchedLayer, TOLERANCE),
    (TORCH, lambda: BatchedLayer(simulator="torch"), TOLERANCE),
    ("per-sample loop (2020)", PerSampleLoop, TOLERANCE),
    (CONNECTORS[0], torch_connector, CONNECTOR_TOLERANCE),
    (CONNECTORS[1], _connector_on_aer, CONNECTOR_TOLERANCE),
    (PENNYLANE, pennylane_one_qubit, TOLERANCE),
    ("closed form -sin", closed_form, TOLERANCE),
)


@dataclass
class Row:
    """One row of a side-by-side table: its time (None if not measured), its largest
    differences from the reference (values, input gradients, weight gradients), or
    why it is missing."""

    name: str
    us: float | None = None
    errors: tuple = ()
    tolerance: float = TOLERANCE
    missing: str | None = None


def build_rows(specs):
    """Build each ``(name, factory, tolerance)``: (rows, callables); a missing
    package gives a row with ``missing`` set and no callable."""
    rows, runners = [], []
    for name, factory, tolerance in specs:
        try:
            runners.append(factory())
            rows.append(Row(name, tolerance=tolerance))
        except NotInstalled as reason:
            rows.append(Row(name, tolerance=tolerance, missing=str(reason)))
            runners.append(None)
    return rows, runners


def check_rows(rows, results, reference):
    """Record each row's largest differences from ``reference`` (a tuple of arrays)
    and raise AssertionError, naming the row, where one exceeds its tolerance."""
    labels = ("values", "input gradients", "weight gradients")
    for row, result in zip(rows, results):
        if result is None:
            continue
        row.errors = tuple(
            float(np.abs(np.asarray(got) - np.asarray(want)).max())
            for got, want in zip(result, reference)
        )
        for label, error in zip(labels, row.errors):
            assert error <= row.tolerance, (
                f"{row.name}: {label} differ from the reference by {error:.2e}, "
                f"more than {row.tolerance:.0e}"
            )
    return rows


def time_interleaved(runners, inputs, repeats):
    """Median µs per sample of every runner (None stays None): one warm-up each, then
    ``repeats`` rounds that run all of them in turn, so that they share the load."""
    active = [r for r in runners if r is not None]
    for runner in active:
        runner(inputs)
    times = {id(r): [] for r in active}
    for _ in range(repeats):
        for runner in active:
            start = time.perf_counter()
            runner(inputs)
            times[id(runner)].append(time.perf_counter() - start)
    return [
        None if r is None else statistics.median(times[id(r)]) / len(inputs) * 1e6
        for r in runners
    ]


def _check_repeats(repeats):
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")


def compare_one_qubit(batch=TARGET_BATCH, repeats=5, seed=0, specs=ONE_QUBIT_ROWS):
    """Part 2: check every row against -sin and -cos on the same angles, then time
    them interleaved; returns the list of ``Row``."""
    _check_repeats(repeats)
    thetas = angles(batch, seed)
    rows, runners = build_rows(specs)
    results = [None if r is None else r(thetas) for r in runners]
    check_rows(rows, results, (-np.sin(thetas), -np.cos(thetas)))
    for row, us in zip(rows, time_interleaved(runners, thetas, repeats)):
        row.us = us
    return rows


def entangling_circuit(num_qubits=MULTI_QUBITS, layers=MULTI_LAYERS):
    """RY(x_q) on every qubit, then ``layers`` times: RY(w) and RX(w') on every qubit
    and CNOTs in a ring. Returns (circuit, inputs, weights)."""
    x = ParameterVector("x", num_qubits)
    w = ParameterVector("w", 2 * layers * num_qubits)
    circuit = QuantumCircuit(num_qubits)
    for q in range(num_qubits):
        circuit.ry(x[q], q)
    for layer in range(layers):
        for q in range(num_qubits):
            k = 2 * (layer * num_qubits + q)
            circuit.ry(w[k], q)
            circuit.rx(w[k + 1], q)
        for q in range(num_qubits):
            circuit.cx(q, (q + 1) % num_qubits)
    return circuit, x, w


class MultiQubitModel:
    """A model ``(batch, qubits) -> (batch, qubits)`` with a weight tensor, as a row:
    values, input gradients and weight gradients (in the circuit's weight order)."""

    def __init__(self, model, weight):
        self.model, self.weight = model, weight

    def __call__(self, inputs):
        values, grads, weight_grad = _forward_backward(self.model, inputs, self.weight)
        return values, grads, weight_grad.reshape(-1)


def multi_qubit_layer(weights, **kwargs):
    """``QuantumLayer`` on ``entangling_circuit`` (``kwargs``: the simulator), with
    ``weights``, measuring <Z_q> on every qubit."""
    circuit, x, w = entangling_circuit(len(weights) // (2 * MULTI_LAYERS), MULTI_LAYERS)
    n = circuit.num_qubits
    observables = [SparsePauliOp.from_sparse_list([("Z", [q], 1)], n) for q in range(n)]
    layer = QuantumLayer(circuit, observables, list(x), list(w), **kwargs).double()
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weights))
    return MultiQubitModel(layer, layer.weight)


def pennylane_multi_qubit(weights):
    """The same circuit as PennyLane's ``TorchLayer`` on ``default.qubit`` with
    backpropagation, with ``weights``."""
    qml = optional_import("pennylane")
    n = len(weights) // (2 * MULTI_LAYERS)

    @qml.qnode(qml.device("default.qubit", wires=n), diff_method="backprop")
    def circuit(inputs, weights):
        for q in range(n):
            qml.RY(inputs[..., q], wires=q)
        for layer in range(MULTI_LAYERS):
            for q in range(n):
                qml.RY(weights[layer, q, 0], wires=q)
                qml.RX(weights[layer, q, 1], wires=q)
            for q in range(n):
                qml.CNOT(wires=[q, (q + 1) % n])
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    # float64 before the weights go in: TorchLayer creates them as float32
    layer = qml.qnn.TorchLayer(circuit, {"weights": (MULTI_LAYERS, n, 2)}).double()
    weight = layer.qnode_weights["weights"]
    with torch.no_grad():
        weight.copy_(torch.as_tensor(weights).reshape(weight.shape))
    return MultiQubitModel(layer, weight)


def compare_multi_qubit(
    batch=MULTI_BATCH, repeats=5, seed=0, num_qubits=MULTI_QUBITS, pennylane=None
):
    """Part 3: the Aer layer, the torch path and PennyLane on ``entangling_circuit``,
    checked against the Aer layer (values, input and weight gradients), then timed
    interleaved; returns the list of ``Row``. ``pennylane`` replaces PennyLane's row
    factory (tests)."""
    _check_repeats(repeats)
    rng = np.random.default_rng(seed)
    inputs = rng.uniform(0, 2 * math.pi, (batch, num_qubits))
    weights = rng.uniform(0, 2 * math.pi, 2 * MULTI_LAYERS * num_qubits)
    specs = (
        (AER, lambda: multi_qubit_layer(weights), TOLERANCE),
        (TORCH, lambda: multi_qubit_layer(weights, simulator="torch"), TOLERANCE),
        (PENNYLANE, lambda: (pennylane or pennylane_multi_qubit)(weights), TOLERANCE),
    )
    rows, runners = build_rows(specs)
    results = [None if r is None else r(inputs) for r in runners]
    check_rows(rows, results, results[0])
    for row, us in zip(rows, time_interleaved(runners, inputs, repeats)):
        row.us = us
    return rows


def _table(title, rows):
    lines = [
        title,
        f"  {'':<30} {'µs/sample':>10}  largest difference from the reference",
    ]
    for row in rows:
        if row.missing:
            lines.append(f"  {row.name:<30} {'-':>10}  {row.missing}")
            continue
        errors = " / ".join(f"{e:.1e}" for e in row.errors)
        lines.append(f"  {row.name:<30} {row.us:10.1f}  {errors}")
    return lines


def _target(text, rows, numerator, denominator, ok, ratio_text):
    """One target line: met / NOT met with the ratio of the times of the rows named
    ``numerator`` and ``denominator``, or which of them was not measured."""
    times = {row.name: row.us for row in rows if row.us is not None}
    missing = [name for name in (numerator, denominator) if name not in times]
    if missing:
        return f"  {text}: not checked ({', '.join(missing)} not measured)"
    ratio = times[numerator] / times[denominator]
    return f"  {text}: {'met' if ok(ratio) else 'NOT met'} ({ratio_text(ratio)})"


def report_comparison(one, multi):
    """Parts 2 and 3 as tables (times, errors: values / input gradients [/ weight
    gradients]), then the targets that compare rows, each met or NOT met."""
    lines = _table(
        f"one-qubit layer at batch {TARGET_BATCH}, side by side "
        "(reference: -sin, -cos; errors: values / input gradients)",
        one,
    )
    lines += [""] + _table(
        f"{MULTI_QUBITS}-qubit, {MULTI_LAYERS}-layer circuit at batch {MULTI_BATCH} "
        "(reference: the Aer layer; errors: values / input / weight gradients)",
        multi,
    )
    lines += [
        "",
        "targets, as ratios in this run:",
        _target(
            f"torch path <= {TARGET_TORCH_VS_PENNYLANE}x PennyLane, one qubit",
            one,
            TORCH,
            PENNYLANE,
            lambda r: r <= TARGET_TORCH_VS_PENNYLANE,
            lambda r: f"{r:.2f}x",
        ),
        _target(
            f"torch path faster than PennyLane, {MULTI_QUBITS} qubits",
            multi,
            TORCH,
            PENNYLANE,
            lambda r: r < 1,
            lambda r: f"{r:.2f}x",
        ),
    ]
    for connector in CONNECTORS:
        lines.append(
            _target(
                f"Aer layer >= {TARGET_AER_VS_CONNECTOR:.0f}x faster than {connector}",
                one,
                connector,
                AER,
                lambda r: r >= TARGET_AER_VS_CONNECTOR,
                lambda r: f"{r:.1f}x faster",
            )
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed runs per measurement (median; default 5)",
    )
    parser.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=list(BATCH_SIZES),
        help="batch sizes to time",
    )
    args = parser.parse_args(argv)
    seed_everything()
    print("one-qubit layer (H, RY(theta), <Z>), forward + backward, exact simulation")
    print('torch: QuantumLayer(..., simulator="torch"), backpropagation')
    print(
        f"median of {args.repeats} runs after a warm-up; "
        f"values and gradients checked to {TOLERANCE:.0e} first\n"
    )
    print(report(run(tuple(args.batches), args.repeats)), flush=True)
    print()
    one = compare_one_qubit(repeats=args.repeats)
    multi = compare_multi_qubit(repeats=args.repeats)
    print(report_comparison(one, multi))
    return one, multi


if __name__ == "__main__":
    main()
