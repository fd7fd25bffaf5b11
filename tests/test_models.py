"""Tests for helpers.models: the hybrid MNIST network and its classical twin."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers.models import ClassicalNet, ConvTrunk, HybridNet, log_probs_from_z
from helpers.reproducibility import seed_everything

MODELS = (HybridNet, ClassicalNet)


@pytest.fixture
def images():
    seed_everything()
    return torch.rand(5, 1, 28, 28)


@pytest.mark.parametrize("model_class", MODELS)
def test_output_shape_and_log_probabilities(model_class, images):
    model = model_class().eval()
    out = model(images)
    assert out.shape == (5, 2)
    assert (out <= 0).all()
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(5))


def test_trunk_gives_one_number_per_image(images):
    assert ConvTrunk()(images).shape == (5, 1)


def test_hybrid_head_is_minus_sin_theta(images):
    model = HybridNet().eval()
    theta = model.trunk(images)
    p1 = model(images).exp()[:, 1:]
    torch.testing.assert_close(p1, (1 + torch.sin(theta)) / 2, atol=1e-5, rtol=0)


def test_classical_head_is_a_logit(images):
    model = ClassicalNet().eval()
    logit = model.trunk(images)
    torch.testing.assert_close(model(images).exp()[:, 1:], torch.sigmoid(logit))


@pytest.mark.parametrize("model_class", MODELS)
def test_gradients_reach_the_conv_weights(model_class, images):
    model = model_class()
    F.nll_loss(model(images), torch.tensor([0, 1, 0, 1, 1])).backward()
    for layer in (model.trunk.conv1, model.trunk.conv2):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_hybrid_gradient_matches_the_closed_form(images):
    """Through the quantum layer, d loss / d theta is what -sin(theta) would give."""
    model = HybridNet().eval()
    theta = model.trunk(images).detach().requires_grad_()
    labels = torch.tensor([0, 1, 0, 1, 1])
    F.nll_loss(log_probs_from_z(model.quantum(theta)), labels).backward()
    closed = theta.detach().clone().requires_grad_()
    F.nll_loss(log_probs_from_z(-torch.sin(closed)), labels).backward()
    torch.testing.assert_close(theta.grad, closed.grad, atol=1e-5, rtol=1e-4)


def test_hybrid_on_the_torch_simulator_matches_aer(images):
    """Same weights, two simulators: the same outputs and the same conv gradients."""
    aer = HybridNet().eval()
    torch_sim = HybridNet(simulator="torch").eval()
    torch_sim.load_state_dict(aer.state_dict())
    assert "TorchStatevector" in repr(torch_sim.quantum)
    labels = torch.tensor([0, 1, 0, 1, 1])
    outputs = []
    for model in (aer, torch_sim):
        out = model(images)
        F.nll_loss(out, labels).backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        aer.trunk.conv1.weight.grad, torch_sim.trunk.conv1.weight.grad
    )


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)"
)
@pytest.mark.parametrize("simulator", ["aer", "torch"])
def test_hybrid_net_on_cuda_matches_the_cpu(images, simulator):
    """The model moved to a GPU: same outputs and conv gradients as on the CPU."""
    cpu = HybridNet(simulator=simulator).eval()
    gpu = HybridNet(simulator=simulator).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to("cuda")
    labels = torch.tensor([0, 1, 0, 1, 1])
    out_cpu, out_gpu = cpu(images), gpu(images.to("cuda"))
    assert out_gpu.device.type == "cuda"
    F.nll_loss(out_cpu, labels).backward()
    F.nll_loss(out_gpu, labels.to("cuda")).backward()
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        gpu.trunk.conv1.weight.grad.cpu(),
        cpu.trunk.conv1.weight.grad,
        atol=1e-5,
        rtol=1e-4,
    )


def test_log_probs_from_z_is_finite_at_the_ends():
    out = log_probs_from_z(torch.tensor([[-1.0], [0.0], [1.0]]))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1], torch.full((2,), math.log(0.5)))
    # <Z> = -1 is class 1, <Z> = +1 is class 0
    assert out[0, 1] > -1e-5 and out[2, 0] > -1e-5


@pytest.mark.parametrize("model_class", MODELS)
@pytest.mark.parametrize(
    "shape", [(5, 28, 28), (5, 784), (5, 3, 28, 28), (5, 1, 32, 32)]
)
def test_bad_input_shape_is_a_clear_error(model_class, shape):
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 28, 28\)"):
        model_class()(torch.rand(shape))


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        ClassicalNet()([[0.0] * 784])
