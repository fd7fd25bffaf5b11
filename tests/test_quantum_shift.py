"""Tests of ``helpers.quantum.shift``: the batched parameter-shift rule, against closed
forms and the 2020 tutorial's bugs (kept as regression tests), and its chunked form.
"""

import math

import numpy as np
import pytest

from helpers.quantum import SHIFT, parameter_shift
from quantum_reference import (
    Counter,
    Z,
    a,
    make_layer,
    one_qubit,
    rand,
)

# --------------------------------------------------------------------------------------
# parameter_shift, and the 2020 tutorial's bugs as regression tests
# --------------------------------------------------------------------------------------


def tutorial_f(angles):
    """H then RY(theta), <Z> = -sin(theta): an evaluator from angle vectors (points, 1)
    to (points, 1).
    """
    return -np.sin(np.asarray(angles, float))


def shift_aliased(f, thetas, s=SHIFT):
    """The 2020 tutorial's backward: both shifted lists alias one list, so it computes
    f(t+s) - f(t), and no 1/2.
    """
    thetas = list(thetas)
    grads = []
    for k in range(len(thetas)):
        plus = thetas
        plus[k] = thetas[k] + s
        f_plus = f(np.array([plus]))[0, 0]
        # same list object: minus[k] starts from the already shifted value
        minus = thetas
        minus[k] = thetas[k] - s
        f_minus = f(np.array([minus]))[0, 0]
        grads.append(f_plus - f_minus)
    return np.array(grads)


def shift_copied_without_half(f, thetas, s=SHIFT):
    """Aliasing fixed (copies), but still no 1/2: f(t+s) - f(t-s)."""
    grads = []
    for k in range(len(thetas)):
        plus, minus = list(thetas), list(thetas)
        plus[k] += s
        minus[k] -= s
        grads.append(f(np.array([plus]))[0, 0] - f(np.array([minus]))[0, 0])
    return np.array(grads)


def shift_divided_by_two(f, thetas, s):
    """Right points, but divided by 2 instead of 2 sin s (only right for s = pi/2)."""
    return shift_copied_without_half(f, thetas, s) / 2


def matches_analytic(grad, theta):
    """The check a test would apply: agreement with the analytic derivative
    -cos(theta).
    """
    return np.allclose(grad, -np.cos(theta), atol=1e-9)


def helper_grad(theta, shift=SHIFT, evaluate=tutorial_f):
    return parameter_shift(evaluate, np.array([[theta]]), [0], shift=shift)[0, 0, 0]


def test_parameter_shift_right_at_theta_one_where_the_aliased_rule_has_the_wrong_sign():
    theta = 1.0
    exact = -math.cos(theta)  # about -0.54
    assert helper_grad(theta) == pytest.approx(exact, abs=1e-12)
    aliased = shift_aliased(tutorial_f, [theta])[0]  # f(1 + pi/2) - f(1) = +0.30
    assert np.sign(aliased) != np.sign(exact)
    assert np.sign(helper_grad(theta)) == np.sign(exact)


def test_the_check_distinguishes_the_tutorial_bugs_from_parameter_shift():
    for theta in [-2.0, 0.3, 1.0, 2.5]:
        assert matches_analytic(helper_grad(theta), theta)
        assert not matches_analytic(shift_aliased(tutorial_f, [theta])[0], theta)
        assert not matches_analytic(
            shift_copied_without_half(tutorial_f, [theta])[0], theta
        )
        # without the 1/2 the result is exactly twice the derivative
        assert shift_copied_without_half(tutorial_f, [theta])[0] == pytest.approx(
            2 * -math.cos(theta), abs=1e-12
        )


@pytest.mark.parametrize("shift", [0.3, 1.0, SHIFT, 2.0])
def test_parameter_shift_general_shift_uses_two_sin_s(shift):
    for theta in [-1.3, 0.0, 1.0, 2.2]:
        assert matches_analytic(helper_grad(theta, shift=shift), theta)
    if not math.isclose(shift, SHIFT):
        assert not matches_analytic(
            shift_divided_by_two(tutorial_f, [1.0], shift)[0], 1.0
        )


def test_parameter_shift_on_the_real_circuit_and_the_aliasing_bug():
    """The same checks with the layer's own evaluator on the tutorial's circuit
    (H, RY(theta), <Z>).
    """
    layer = make_layer(one_qubit(("h", 0), ("ry", a, 0)), [Z], [a])
    for theta in [1.0, 0.3]:
        assert matches_analytic(helper_grad(theta, evaluate=layer.evaluate), theta)
        assert matches_analytic(
            helper_grad(theta, shift=0.3, evaluate=layer.evaluate), theta
        )
        assert not matches_analytic(shift_aliased(layer.evaluate, [theta])[0], theta)
        assert not matches_analytic(
            shift_copied_without_half(layer.evaluate, [theta])[0], theta
        )


def test_parameter_shift_batched_many_angles_one_call():
    """f(a) = [cos a0 sin a1, sin a0 + cos a2]: shape (batch, which, outputs), one
    evaluator call.
    """

    def f(angles):
        return np.stack(
            [
                np.cos(angles[:, 0]) * np.sin(angles[:, 1]),
                np.sin(angles[:, 0]) + np.cos(angles[:, 2]),
            ],
            1,
        )

    counter = Counter(f)
    angles = rand((4, 3), seed=1)
    grads = parameter_shift(counter, angles, [2, 0], shift=0.7)
    assert counter.shapes == [(4 * 2 * 2, 3)]
    assert grads.shape == (4, 2, 2)
    a0, a1, a2 = angles.T
    np.testing.assert_allclose(grads[:, 0, 0], 0 * a0, atol=1e-12)
    np.testing.assert_allclose(grads[:, 0, 1], -np.sin(a2), atol=1e-12)
    np.testing.assert_allclose(grads[:, 1, 0], -np.sin(a0) * np.sin(a1), atol=1e-12)
    np.testing.assert_allclose(grads[:, 1, 1], np.cos(a0), atol=1e-12)


def test_parameter_shift_unshifted_adds_the_batch_itself_to_the_same_call():
    def f(angles):
        return np.stack(
            [
                np.cos(angles[:, 0]) * np.sin(angles[:, 1]),
                np.sin(angles[:, 0]) + np.cos(angles[:, 2]),
            ],
            1,
        )

    counter = Counter(f)
    angles = rand((4, 3), seed=2)
    values, grads = parameter_shift(counter, angles, [2, 0], shift=0.7, unshifted=True)
    assert counter.shapes == [(4 + 4 * 2 * 2, 3)]
    np.testing.assert_array_equal(values, f(angles))
    np.testing.assert_array_equal(grads, parameter_shift(f, angles, [2, 0], shift=0.7))


def test_parameter_shift_unshifted_with_nothing_to_shift():
    values, grads = parameter_shift(
        lambda v: np.sin(v), rand((3, 2), seed=3), [], unshifted=True
    )
    assert values.shape == (3, 2) and grads.shape == (3, 0, 2)
