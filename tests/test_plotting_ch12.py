"""Tests for the optional ``edge_label_position`` of ``draw_network`` (added for
chapters 1 and 2).
"""

import matplotlib

matplotlib.use("Agg")  # tests draw off-screen; notebooks keep the inline backend
import matplotlib.pyplot as plt
import pytest

from helpers.plotting import draw_network


def _label_x(**kwargs):
    ax = draw_network([1, 1], edge_labels={0: {(0, 0): "w"}}, **kwargs)
    (text,) = [t for t in ax.texts if t.get_text() == "w"]
    plt.close("all")
    return text.get_position()[0]


def test_edge_label_position_defaults_to_old_placement():
    assert _label_x() == pytest.approx(0.3)


def test_edge_label_position_moves_label_along_the_edge():
    assert _label_x(edge_label_position=0.6) == pytest.approx(0.6)


@pytest.mark.parametrize(
    "bad, error",
    [(-0.1, ValueError), (1.5, ValueError), ("middle", TypeError), (True, TypeError)],
)
def test_edge_label_position_refuses_bad_values(bad, error):
    with pytest.raises(error, match="edge_label_position"):
        draw_network([2, 1], edge_label_position=bad)
