"""Does chunking bound the layer's memory? An 8-qubit, 56-angle layer trained at
batch 4096.

One training step (forward, backward, optimizer step) of ``QuantumLayer`` sends the
batch and every shifted point to the simulator: 4096 x (1 + 2 x 56) = 462,848 parameter
sets. In one call that takes gigabytes; ``chunk_size`` caps the parameter sets per call.
Each configuration runs in a fresh child process, so that its peak resident memory
(``ru_maxrss``) is its own:

(a) chunked, the layer's default ``chunk_size``;
(b) unchunked, ``chunk_size`` larger than a step's parameter sets (how the layer
    worked before).

It prints the peak memory and the time per step of both, and whether the targets are
met: peak memory under 1.5 GB, and the chunked step at most 25% slower than the
unchunked one.

    .venv/bin/python benchmarks/layer_memory.py               # from the repository root
    .venv/bin/python benchmarks/layer_memory.py --batch 512   # a quick look
"""

import argparse
import json
import resource
import subprocess
import sys
import time

QUBITS, LAYERS, BATCH, STEPS = 8, 3, 4096, 1
TARGET_PEAK_GB = 1.5
TARGET_SLOWDOWN = 1.25
UNCHUNKED = 10**9


def entangling_layer(chunk_size):
    """8 inputs (RY encoding) and 48 weights (RY, RZ per qubit and layer, CX chain):
    56 angles.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.quantum_info import SparsePauliOp

    from helpers.quantum import QuantumLayer

    inputs = ParameterVector("x", QUBITS)
    weights = ParameterVector("w", 2 * QUBITS * LAYERS)
    qc = QuantumCircuit(QUBITS)
    for q in range(QUBITS):
        qc.ry(inputs[q], q)
    for layer in range(LAYERS):
        for q in range(QUBITS):
            qc.ry(weights[2 * (layer * QUBITS + q)], q)
            qc.rz(weights[2 * (layer * QUBITS + q) + 1], q)
        for q in range(QUBITS - 1):
            qc.cx(q, q + 1)
    observables = [
        SparsePauliOp("I" * (QUBITS - 1 - q) + "Z" + "I" * q) for q in range(2)
    ]
    return QuantumLayer(qc, observables, inputs, weights, chunk_size=chunk_size)


def child(chunk_size, batch, steps):
    """Train for ``steps`` steps and print the seconds per step and the peak memory, as
    JSON.
    """
    import torch

    from helpers.reproducibility import seed_everything

    seed_everything(0)
    layer = entangling_layer(chunk_size)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)
    x = torch.rand(batch, QUBITS) * 3.14
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = layer(x).pow(2).mean()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": min(times),
                "peak_gb": peak_kb / 2**20,
                "loss": loss.item(),
                "weights": layer.weight.detach().tolist(),
            }
        )
    )


def run(chunk_size, batch, steps):
    command = [
        sys.executable,
        __file__,
        "--child",
        str(chunk_size),
        "--batch",
        str(batch),
        "--steps",
        str(steps),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.batch, args.steps)

    from helpers.quantum import CHUNK_SIZE

    print(
        f"{QUBITS} qubits, {QUBITS * (1 + 2 * LAYERS)} angles, batch {args.batch}: "
        f"{args.batch * (1 + 2 * QUBITS * (1 + 2 * LAYERS))} parameter sets per step, "
        f"best of {args.steps} steps"
    )
    chunked = run(CHUNK_SIZE, args.batch, args.steps)
    unchunked = run(UNCHUNKED, args.batch, args.steps)
    print(f"{'':22}{'peak memory':>14}{'s per step':>12}")
    print(
        f"{f'chunk_size={CHUNK_SIZE}':22}{chunked['peak_gb']:>11.2f} GB"
        f"{chunked['seconds']:>12.2f}"
    )
    print(
        f"{'unchunked':22}{unchunked['peak_gb']:>11.2f} GB{unchunked['seconds']:>12.2f}"
    )
    pairs = zip(chunked["weights"], unchunked["weights"])
    same = max(abs(p - q) for p, q in pairs) < 1e-12
    print(f"same trained weights: {same}")
    slowdown = chunked["seconds"] / unchunked["seconds"]
    for text, ok in [
        (
            f"peak memory with chunks {chunked['peak_gb']:.2f} GB "
            f"< {TARGET_PEAK_GB} GB",
            chunked["peak_gb"] < TARGET_PEAK_GB,
        ),
        (
            f"chunked / unchunked time {slowdown:.2f} <= {TARGET_SLOWDOWN}",
            slowdown <= TARGET_SLOWDOWN,
        ),
        ("chunked and unchunked training agree", same),
    ]:
        print(f"{'met' if ok else 'NOT met':>8}: {text}")


if __name__ == "__main__":
    main()
