import matplotlib

matplotlib.use("Agg")  # tests draw off-screen; notebooks keep the inline backend
import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import Circle, FancyBboxPatch

from helpers.plotting import draw_network, plot_loss


def test_draw_network_draws_every_node_and_every_edge_between_consecutive_layers():
    ax = draw_network([3, 4, 2, 1], quantum_layers=(2,))
    circles = [p for p in ax.patches if isinstance(p, Circle)]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(circles) == 3 + 4 + 1 and len(boxes) == 2
    assert len(arrows) == 3 * 4 + 4 * 2 + 2 * 1
    plt.close("all")


def test_draw_network_labels():
    ax = draw_network(
        [2, 1],
        node_labels=[["a", "b"], ["y"]],
        edge_labels={0: {(0, 0): "w1"}},
        layer_names=["in", "out"],
    )
    texts = {t.get_text() for t in ax.texts}
    assert {"a", "b", "y", "w1", "in", "out"} <= texts
    plt.close("all")


@pytest.mark.parametrize("sizes", [[], [2, 0], [-1]])
def test_draw_network_refuses_empty_layers(sizes):
    with pytest.raises(ValueError, match="layer_sizes"):
        draw_network(sizes)


def test_plot_loss_plots_one_point_per_epoch():
    ax = plot_loss([3.0, 2.0, 1.0], label="run")
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [1, 2, 3]
    assert list(line.get_ydata()) == [3.0, 2.0, 1.0]
    plt.close("all")
