"""Step 3: the parameter-shift rule, batched.

``parameter_shift`` differentiates with respect to every listed angle by the two-term
rule [f(a + s) - f(a - s)] / (2 sin s), evaluating all shifted points of a batch in one
call. ``shift_in_blocks`` does the same over a large batch in blocks, so that no call
exceeds a chunk size.
"""

import math

import numpy as np

from helpers.quantum.evaluators import in_chunks

SHIFT = math.pi / 2


def parameter_shift(evaluate, angles, which, shift=SHIFT, unshifted=False):
    """d f / d angle for the angles listed in ``which``, by
    [f(a+s) - f(a-s)] / (2 sin s).

    ``angles`` has shape (batch, angles); ``evaluate`` is called once, on all shifted
    points. Returns shape (batch, len(which), observables). With ``unshifted=True`` the
    angles themselves join the same call, and the result is the pair
    ``(f(angles), derivatives)``.
    """
    batch, n_angles = angles.shape
    steps = np.zeros((len(which), n_angles))
    steps[np.arange(len(which)), which] = shift
    plus = angles[:, None, :] + steps  # (batch, which, angles)
    minus = angles[:, None, :] - steps
    points = np.stack([plus, minus], axis=1).reshape(-1, n_angles)
    if unshifted:
        points = np.concatenate([angles, points])
    f = evaluate(points)
    shifted = (f[batch:] if unshifted else f).reshape(batch, 2, len(which), f.shape[1])
    derivatives = (shifted[:, 0] - shifted[:, 1]) / (2 * math.sin(shift))
    return (f[:batch], derivatives) if unshifted else derivatives


def shift_in_blocks(evaluate, angles, which, chunk_size):
    """``parameter_shift(..., unshifted=True)`` over blocks of the batch: at most
    ``chunk_size`` parameter sets per call of ``evaluate``, so memory stays bounded
    however large the batch."""
    per_sample = 1 + 2 * len(which)
    block = max(1, chunk_size // per_sample)

    def evaluate_chunked(points):
        return in_chunks(evaluate, points, chunk_size)

    parts = [
        parameter_shift(evaluate_chunked, angles[i : i + block], which, unshifted=True)
        for i in range(0, len(angles), block)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
