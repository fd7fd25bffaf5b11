"""Keeps benchmarks/quantum_layer.py from rotting: its correctness check runs here (its
timing does not).
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "quantum_layer.py"


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
