import matplotlib

matplotlib.use("Agg")  # tests draw off-screen; notebooks keep the inline backend
import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import Circle, FancyBboxPatch

from helpers.plotting import draw_network, plot_decision_boundary, plot_loss


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


def test_plot_decision_boundary_draws_the_half_probability_contour_where_it_is():
    # a model whose logit is x1 - 0.5: the boundary is the vertical line x1 = 0.5
    def model(points):
        return points[:, 0] - 0.5

    model.eval = lambda: None
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([0.0, 1.0])
    fig, ax = plt.subplots()
    filled = plot_decision_boundary(model, x, y, ax=ax, title="t", steps=45)
    line = ax.collections[-3].get_paths()[0].vertices  # the 0.5 contour
    assert abs(line[:, 0] - 0.5).max() < 1e-6
    assert filled.levels[0] == 0 and filled.levels[-1] == 1
    assert ax.get_title() == "t" and len(ax.collections) >= 3
    plt.close(fig)


@pytest.mark.parametrize("sizes", [[3, 1], [2, 4, 4, 1], [2, 4, 4, 1, 1, 1], [8] * 9])
def test_draw_network_fits_the_column_with_readable_text(sizes):
    # the book's column is 740 px, 7.4 in at 100 dpi; no text smaller than 9 pt
    n = len(sizes)
    ax = draw_network(
        sizes,
        layer_names=[f"layer {i}" for i in range(n)],
        node_labels=[["v"] * k for k in sizes],
        edge_labels={0: {(0, 0): "w"}},
    )
    width, _ = ax.figure.get_size_inches()
    assert width <= 7.4
    assert all(t.get_fontsize() >= 9 for t in ax.texts if t.get_text())
    plt.close("all")


# draw_network's optional edge_label_position (chapters 1 and 2)


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
