"""Keeps benchmarks/quantum_layer.py from rotting: its correctness check runs here (its
timing does not).
"""

import importlib.util
import sys

import numpy as np
import pytest

from tools.book import ROOT

PATH = ROOT / "benchmarks" / "quantum_layer.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_quantum_layer", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing must not run the benchmark
    return module


def test_loop_and_layer_agree_on_a_small_batch(bench):
    assert bench.check_agreement(bench.angles(5)) <= bench.TOLERANCE


def test_check_catches_the_tutorials_missing_half(bench):
    """A loop without the 1/(2 sin s) of the shift rule, as in the 2020 tutorial, must
    fail the check.
    """

    class MissingHalf(bench.PerSampleLoop):
        def __call__(self, thetas):
            values, grads = super().__call__(thetas)
            return values, 2 * grads

    with pytest.raises(AssertionError, match="gradients"):
        bench.check_agreement(bench.angles(3), loop=MissingHalf())


def test_report_states_the_targets(bench):
    rows = [(64, 3000.0, 100.0, 30.0)]
    text = bench.report(rows)
    assert "met (100 µs)" in text and "met (30.0x)" in text and "NOT" not in text
    assert "NOT met" in bench.report([(64, 1000.0, 200.0, 5.0)])


def test_run_rejects_bad_arguments(bench):
    with pytest.raises(ValueError, match="repeats"):
        bench.run((1,), repeats=0)
    with pytest.raises(ValueError, match="batch sizes"):
        bench.run((0,), repeats=1)


def test_angles_are_reproducible(bench):
    np.testing.assert_array_equal(bench.angles(4, seed=3), bench.angles(4, seed=3))


# The side-by-side rows (part 2) and the 8-qubit rows (part 3). PennyLane is a
# benchmark-only package: these tests pass with or without it.


def _without(monkeypatch, *modules):
    """Make ``import`` of each module fail, as if it were not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_every_installed_row_agrees_on_a_small_batch(bench):
    rows = bench.compare_one_qubit(batch=3, repeats=1)
    assert [row.name for row in rows] == [spec[0] for spec in bench.ONE_QUBIT_ROWS]
    for row in rows:
        if row.missing:
            assert "not installed" in row.missing
            continue
        assert row.us > 0 and len(row.errors) == 2
        assert max(row.errors) <= row.tolerance
    exact = [r for r in rows if not r.missing and not r.name.startswith("Torch")]
    assert all(max(row.errors) <= bench.TOLERANCE for row in exact)


def test_missing_pennylane_is_reported_not_fatal(bench, monkeypatch):
    _without(monkeypatch, "pennylane")
    wanted = ("torch path (backprop)", "PennyLane TorchLayer", "closed form -sin")
    specs = [spec for spec in bench.ONE_QUBIT_ROWS if spec[0] in wanted]
    one = bench.compare_one_qubit(batch=2, repeats=1, specs=specs)
    multi = bench.compare_multi_qubit(batch=2, repeats=1)
    for rows in (one, multi):
        missing = [row for row in rows if row.missing]
        assert [row.name for row in missing] == ["PennyLane TorchLayer"]
        assert missing[0].us is None
        assert "pennylane not installed" in missing[0].missing
        assert "benchmarks/requirements.txt" in missing[0].missing
    text = bench.report_comparison(one, multi)
    assert text.count("pennylane not installed") == 2
    assert "one qubit: not checked (PennyLane TorchLayer not measured)" in text
    assert "8 qubits: not checked (PennyLane TorchLayer not measured)" in text


def test_missing_qiskit_machine_learning_is_reported(bench, monkeypatch):
    _without(
        monkeypatch,
        "qiskit_machine_learning",
        "qiskit_machine_learning.neural_networks",
        "qiskit_machine_learning.connectors",
    )
    with pytest.raises(bench.NotInstalled, match="qiskit-machine-learning not inst"):
        bench.torch_connector()


def test_eight_qubit_rows_agree(bench):
    rows = bench.compare_multi_qubit(batch=2, repeats=1)
    assert [row.name for row in rows][:2] == ["Aer layer", "torch path (backprop)"]
    for row in rows:
        if not row.missing:
            assert len(row.errors) == 3 and max(row.errors) <= bench.TOLERANCE


def test_a_wrong_weight_gradient_is_caught(bench):
    """A row with wrong weight gradients (here: doubled) fails the check, by name."""

    def doubled(weights):
        row = bench.multi_qubit_layer(weights, simulator="torch")

        class Doubled(bench.MultiQubitModel):
            def __call__(self, inputs):
                values, grads, weight_grads = super().__call__(inputs)
                return values, grads, 2 * weight_grads

        return Doubled(row.model, row.weight)

    with pytest.raises(AssertionError, match="PennyLane TorchLayer: weight gradients"):
        bench.compare_multi_qubit(batch=2, repeats=1, num_qubits=3, pennylane=doubled)


def test_check_rows_applies_each_rows_tolerance(bench):
    reference = (np.zeros(4), np.zeros(4))
    noisy = (np.full(4, 0.05), np.zeros(4))  # like an estimator with precision 1/64
    loose = bench.Row("connector", tolerance=bench.CONNECTOR_TOLERANCE)
    bench.check_rows([loose], [noisy], reference)
    assert loose.errors == (0.05, 0.0)
    with pytest.raises(AssertionError, match="exact: values differ .* 5.00e-02"):
        bench.check_rows([bench.Row("exact")], [noisy], reference)
    missing = bench.Row("absent", missing="absent not installed")
    assert bench.check_rows([missing], [None], reference)[0].errors == ()


def _rows(bench, **times):
    names = {
        "aer": "Aer layer",
        "torch": "torch path (backprop)",
        "pennylane": "PennyLane TorchLayer",
        "qml": "TorchConnector (QMLEstimator)",
        "qml_aer": "TorchConnector (Aer Estimator)",
    }
    return [
        bench.Row(names[key], us=us, errors=(0.0, 0.0)) for key, us in times.items()
    ]


def test_report_comparison_states_each_target(bench):
    one = _rows(
        bench, aer=100.0, torch=10.0, pennylane=30.0, qml=5000.0, qml_aer=3000.0
    )
    multi = _rows(bench, aer=30000.0, torch=400.0, pennylane=500.0)
    text = bench.report_comparison(one, multi)
    assert "one qubit: met (0.33x)" in text
    assert "8 qubits: met (0.80x)" in text
    assert "TorchConnector (QMLEstimator): met (50.0x faster)" in text
    assert "TorchConnector (Aer Estimator): NOT met (30.0x faster)" in text
    assert text.count("NOT met") == 1
    one = _rows(
        bench, aer=100.0, torch=20.0, pennylane=30.0, qml=5000.0, qml_aer=5000.0
    )
    multi = _rows(bench, aer=30000.0, torch=600.0, pennylane=500.0)
    text = bench.report_comparison(one, multi)
    assert "one qubit: NOT met (0.67x)" in text and "8 qubits: NOT met (1.20x)" in text


def test_optional_import_says_how_to_install(bench):
    with pytest.raises(bench.NotInstalled, match="pip install -r benchmarks/req"):
        bench.optional_import("no_such_package_for_this_test")
