"""``gp-onesided``: the one-sided gradient penalty on random interpolates.

.. math::

    \\lambda \\, \\mathbb{E}_{\\hat x}\\big[\\max(0, \\lVert \\nabla_{\\hat x} D(\\hat x) \\rVert - 1)^2\\big],
    \\qquad \\hat x = \\epsilon x_{real} + (1 - \\epsilon) x_{fake}, \\quad \\epsilon \\sim U[0, 1)

WGAN-GP's two-sided penalty pulls the critic's gradient norm towards 1 everywhere between the
data and the generator's samples; the one-sided variant only pushes it down where it exceeds
1, which is exactly the 1-Lipschitz constraint (Gulrajani et al. 2017, appendix; Petzka et
al. 2018). As in the built-in ``gp``: one ``epsilon`` per sample (broadcast over C, H, W),
the norm per sample over all of C, H, W, and a tiny epsilon inside the square root so that
the penalty's own gradient stays finite where the input gradient vanishes. The interpolation
weights are drawn by ``sample_noise`` from the core's seeded generator, never inside the
backend, which is what keeps every backend on the same numbers.
"""
from __future__ import annotations

import numpy as np

from wganx.records import RegularizerSpec

NAME = "gp-onesided"
NORM_EPS = 1e-12


def sample_noise(rng: np.random.Generator, batch_size: int, sample_shape: tuple) -> dict:
    """One interpolation weight per sample, shaped to broadcast over the sample's axes.

    >>> noise = sample_noise(np.random.default_rng(0), 4, (3, 8, 8))
    >>> noise["eps"].shape, noise["eps"].dtype.name
    ((4, 1, 1, 1), 'float32')
    """
    shape = (batch_size,) + (1,) * len(sample_shape)
    return {"eps": rng.uniform(0.0, 1.0, shape).astype(np.float32)}


def penalty(ops, critic, real, fake, noise):
    """``mean(max(0, ||dD/dx_hat|| - 1)^2)`` over the batch of interpolates ``x_hat``."""
    eps = noise["eps"]
    x_hat = eps * real + (1.0 - eps) * fake
    _, grad = ops.input_grad(critic, x_hat)
    axes = tuple(range(1, len(ops.shape(grad))))  # per sample: all of C, H, W
    norm = ops.sqrt(ops.sum(grad * grad, axes=axes) + NORM_EPS)
    return ops.mean(ops.maximum(norm - 1.0, 0.0) ** 2.0)


SPEC = RegularizerSpec(
    NAME, penalty=penalty, sample_noise=sample_noise, weight=10.0, needs_input_grad=True,
    description="one-sided gradient penalty max(0, |grad D| - 1)^2 on interpolates (wganx-example-plugin)",
    # the exact value for a linear critic, whose input gradient is w everywhere: wganx parity checks it
    linear_critic=lambda norm: max(norm - 1.0, 0.0) ** 2)
