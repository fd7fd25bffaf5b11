"""Figures that several chapters share (network drawings from chapter 1, loss curves
from chapter 1 on, decision boundaries from chapter 2 on).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle, FancyBboxPatch

from helpers.training import predict

CLASSICAL_COLOR = "#4C72B0"
QUANTUM_COLOR = "#8E44AD"

# Font sizes of draw_network, in points: the book's column is 740 px wide (7.4 in at
# 100 dpi), so a drawing no wider than that is shown at full size and no text in it
# is smaller than 9 pt.
NODE_FONTSIZE = 12
EDGE_FONTSIZE = 11
LAYER_FONTSIZE = 11
MAX_WIDTH_IN = 7.4


def network_figsize(layer_sizes):
    """A figure size (inches) for ``draw_network(layer_sizes)``: at most 1 in between
    layers and between nodes, never wider than the column, room for a title.
    """
    unit = min(1.0, MAX_WIDTH_IN / (len(layer_sizes) + 0.2))
    width = max(4.0, unit * (len(layer_sizes) + 0.2))
    return width, unit * (max(layer_sizes) + 0.7) + 0.5


def draw_network(
    layer_sizes,
    *,
    ax=None,
    layer_names=None,
    node_labels=None,
    edge_labels=None,
    quantum_layers=(),
    edge_label_position=0.3,
):
    """Draw a feed-forward network as a layered graph,
    edges only between consecutive layers.

    ``node_labels[l][i]`` labels node i of layer l; ``edge_labels[l][(i, j)]`` labels
    the edge from node i of layer l to node j of layer l+1; layers listed in
    ``quantum_layers`` are drawn as purple boxes (parameterized circuits) instead of
    circles. ``edge_label_position`` is how far along each edge (0 = source,
    1 = target) its label sits. Returns the axes.
    """
    if isinstance(edge_label_position, bool) or not isinstance(
        edge_label_position, (int, float)
    ):
        raise TypeError(
            f"edge_label_position must be a number, got {edge_label_position!r}"
        )
    if not 0 <= edge_label_position <= 1:
        raise ValueError(
            f"edge_label_position must lie between 0 and 1, got {edge_label_position!r}"
        )
    if not layer_sizes or any(int(n) < 1 for n in layer_sizes):
        raise ValueError(f"layer_sizes must be positive integers, got {layer_sizes!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=network_figsize(layer_sizes), layout="constrained")
    radius = 0.3
    tallest = max(layer_sizes)
    # centred columns
    positions = [
        [(layer, (n - 1) / 2 - i) for i in range(n)]
        for layer, n in enumerate(layer_sizes)
    ]
    for layer in range(len(layer_sizes) - 1):
        for i, (x0, y0) in enumerate(positions[layer]):
            for j, (x1, y1) in enumerate(positions[layer + 1]):
                ax.annotate(
                    "",
                    xy=(x1 - radius, y1),
                    xytext=(x0 + radius, y0),
                    arrowprops=dict(
                        arrowstyle="-|>", color="0.55", lw=1, shrinkA=0, shrinkB=0
                    ),
                )
                label = (
                    (edge_labels or {}).get(layer, {}).get((i, j))
                    if edge_labels
                    else None
                )
                if label is not None:
                    t = edge_label_position
                    ax.text(
                        x0 + t * (x1 - x0),
                        y0 + t * (y1 - y0) + 0.08,
                        label,
                        ha="center",
                        fontsize=EDGE_FONTSIZE,
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none"),
                    )
    for layer, column in enumerate(positions):
        quantum = layer in quantum_layers
        color = QUANTUM_COLOR if quantum else CLASSICAL_COLOR
        for i, (x, y) in enumerate(column):
            if quantum:
                ax.add_patch(
                    FancyBboxPatch(
                        (x - radius, y - radius),
                        2 * radius,
                        2 * radius,
                        boxstyle="round,pad=0.02",
                        fc=color,
                        ec="black",
                        zorder=3,
                    )
                )
            else:
                ax.add_patch(Circle((x, y), radius, fc=color, ec="black", zorder=3))
            if node_labels and node_labels[layer] and node_labels[layer][i] is not None:
                ax.text(
                    x,
                    y,
                    node_labels[layer][i],
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=NODE_FONTSIZE,
                    zorder=4,
                )
        if layer_names:
            ax.text(
                layer,
                -(tallest - 1) / 2 - 0.45,
                layer_names[layer],
                ha="center",
                va="top",
                fontsize=LAYER_FONTSIZE,
            )
    ax.set_xlim(-0.6, len(layer_sizes) - 0.4)
    ax.set_ylim(-(tallest - 1) / 2 - 1.2, (tallest - 1) / 2 + 0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def plot_loss(history, *, ax=None, label=None, title="Training loss"):
    """Plot the mean loss of each epoch (as returned by ``helpers.training.fit``).
    Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(1, len(history) + 1), history, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if label is not None:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_decision_boundary(model, x, y, *, ax, title, steps=220):
    """Colour the plane by the model's probability of class 1 (the sigmoid of
    its logit), draw the 0.5 contour and the points ``x`` with labels ``y``.

    ``steps`` grid points across; the model sees ``steps * 15 // 22`` rows of
    them. Returns the filled contour set, for a colour bar.
    """
    xs = torch.linspace(-1.7, 2.7, steps)
    ys = torch.linspace(-1.2, 1.7, max(2, steps * 15 // 22))
    grid_x, grid_y = torch.meshgrid(xs, ys, indexing="xy")
    grid = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)
    prob = torch.sigmoid(predict(model, grid).float()).reshape(grid_x.shape)
    levels = np.linspace(0, 1, 11)
    plane = grid_x, grid_y, prob
    filled = ax.contourf(*plane, levels, cmap="RdBu_r", alpha=0.55)
    ax.contour(*plane, levels=[0.5], colors="black", linewidths=1.5)
    for label, marker, colour in ((0, "o", "tab:blue"), (1, "s", "tab:red")):
        pts = x[y == label]
        style = dict(marker=marker, c=colour, edgecolors="white", lw=0.3)
        ax.scatter(*pts.T, s=12, **style, label=f"class {label}")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title=title)
    ax.set_aspect("equal")
    return filled
