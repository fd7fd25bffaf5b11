"""Keeps benchmarks/hybrid_mnist.py from rotting: its code path on a few images for one
epoch (no timing).
"""

import importlib.util

import pytest

from tools.book import ROOT

spec = importlib.util.spec_from_file_location(
    "hybrid_mnist_benchmark", ROOT / "benchmarks" / "hybrid_mnist.py"
)
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


def test_one_epoch_on_a_few_images(capsys):
    results = benchmark.main(
        [
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--repeats",
            "1",
            "--train-per-class",
            "4",
            "--test-per-class",
            "4",
        ]
    )
    for name in ("hybrid", "hybrid_torch", "classical"):
        assert results[name]["seconds"] > 0
        assert 0 <= results[name]["accuracy"] <= 1
    assert results["setting"] == dict(
        epochs=1, batch_size=4, repeats=1, n_train=8, n_test=8
    )
    # the two simulators are exact: same seed, same training, same predictions
    assert results["differing_predictions"] == 0
    assert results["hybrid"]["final_loss"] == pytest.approx(
        results["hybrid_torch"]["final_loss"], abs=1e-9
    )
    printed = capsys.readouterr().out
    assert "ratio hybrid / classical" in printed and printed.count("target ") == 4
    assert "hybrid (torch path) at most 1.2x the classical time" in printed
    assert "not the reference setting" in printed


def test_report_says_met_or_not_for_each_ratio():
    row = dict(seconds=1.0, final_loss=0.1, accuracy=1.0)
    results = dict(
        hybrid=row,
        hybrid_torch=row,
        classical=row,
        ratio=1.9,
        ratio_torch=1.3,
        differing_predictions=0,
        setting=dict(epochs=30, batch_size=25, repeats=1, n_train=200, n_test=800),
    )
    lines = benchmark.report(results)
    assert "target met: hybrid (Aer) at most 2x the classical time (1.90x)" in lines
    assert (
        "target NOT met: hybrid (torch path) at most 1.2x the classical time (1.30x)"
        in lines
    )
    assert "held-out predictions that differ, torch path vs Aer: 0 of 800" in lines


def test_bad_repeats_is_a_clear_error():
    with pytest.raises(ValueError, match="repeats"):
        benchmark.run(repeats=0)
