"""What does batching buy? The one-qubit quantum layer, sample by sample against
``QuantumLayer``.

The layer is the 2020 tutorial's: H, then RY(theta), output <Z>. For each batch size
this script times forward + backward (all outputs summed, gradient with respect to every
input) of

(a) a per-sample loop with the tutorial's call structure: one primitive call per sample
    for the forward pass and one per sample and per shift for the backward pass, using
    Aer's exact ``EstimatorV2`` with ``runtime_parameter_bind_enable=True`` (its fastest
    setting, so the baseline is fair);
(b) ``helpers.quantum.QuantumLayer`` with its default exact evaluator: one call per
    batch, which carries the batch and all its shifted points;
(c) the same layer with ``simulator="torch"``: an exact state-vector simulation in
    PyTorch, differentiated by backpropagation.

Before any timing it checks that (a), (b) and (c) give the same values and gradients.
Times are the median of ``--repeats`` runs after one warm-up run, in microseconds per
sample. The machine may be shared, so run it more than once. At the end it says whether
the targets at batch 64 are met.

    .venv/bin/python benchmarks/quantum_layer.py        # from the repository root
    .venv/bin/python benchmarks/quantum_layer.py --repeats 9
"""

import argparse
import math
import statistics
import time

import numpy as np
import torch
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2

from helpers.models import one_qubit_circuit
from helpers.quantum import QuantumLayer
from helpers.reproducibility import seed_everything

BATCH_SIZES = (1, 16, 64, 256)
TARGET_BATCH = 64
TARGET_LAYER_US = 150.0  # QuantumLayer, forward + backward, per sample
TARGET_SPEEDUP = 10.0  # per-sample loop time / QuantumLayer time
SHIFT = math.pi / 2
TOLERANCE = 1e-10


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
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
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
                f"{layer_us / torch_us[0]:.1f}x faster than the Aer layer (no target)"
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
    print(report(run(tuple(args.batches), args.repeats)))


if __name__ == "__main__":
    main()
