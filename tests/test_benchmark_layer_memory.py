"""Keeps benchmarks/layer_memory.py from rotting: its layer and its training step on a
tiny batch (no timing).
"""

import importlib.util
import json

from tools.book import ROOT

spec = importlib.util.spec_from_file_location(
    "layer_memory_benchmark", ROOT / "benchmarks" / "layer_memory.py"
)
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)  # importing must not run the benchmark


def test_the_layer_has_eight_qubits_and_56_angles():
    layer = benchmark.entangling_layer(chunk_size=100)
    assert layer.circuit.num_qubits == 8 and len(layer.shiftable.angle_params) == 56


def test_chunked_and_unchunked_steps_train_to_the_same_weights(capsys):
    runs = []
    for chunk_size in (7, benchmark.UNCHUNKED):
        benchmark.child(chunk_size, batch=2, steps=2)
        runs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert runs[0]["peak_gb"] > 0 and runs[0]["seconds"] > 0
    pairs = zip(runs[0]["weights"], runs[1]["weights"])
    assert max(abs(p - q) for p, q in pairs) < 1e-12
