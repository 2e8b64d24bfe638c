"""Keeping the critic Lipschitz: gradient penalties, weight clipping, and their relatives.

Every norm is per sample over all of C, H, W (not over the batch, not over one axis), with
a small epsilon inside the square root so that the penalty's own gradient is finite where
the input gradient vanishes. All random numbers (interpolation weights, perturbations) are
drawn by the core's seeded generator and arrive in ``noise``.
"""
import numpy as np

from wganx import hookimpl
from wganx.records import RegularizerSpec

NORM_EPS = 1e-12
LP_SIGMA = 0.1  # WGAN-LP perturbation scale, in data units (data in [-1, 1])


def _per_sample_axes(ops, x):
    return tuple(range(1, len(ops.shape(x))))


def grad_norm(ops, critic, x):
    """``||dD/dx||`` per sample, ``(N,)``."""
    _, g = ops.input_grad(critic, x)
    return ops.sqrt(ops.sum(g * g, axes=_per_sample_axes(ops, g)) + NORM_EPS)


def grad_sq_norm(ops, critic, x):
    """``||dD/dx||^2`` per sample, ``(N,)``; no root, so no epsilon is needed."""
    _, g = ops.input_grad(critic, x)
    return ops.sum(g * g, axes=_per_sample_axes(ops, g))


def _uniform_per_sample(key):
    def sample(rng, batch_size, shape):
        # One weight per sample, broadcast over C, H, W (not per pixel, not per batch).
        return {key: rng.uniform(0.0, 1.0, (batch_size,) + (1,) * len(shape)).astype(np.float32)}
    return sample


def _interpolate(real, fake, eps):
    return eps * real + (1.0 - eps) * fake


def gp_penalty(ops, critic, real, fake, noise):
    """Gulrajani et al. 2017: ``E[(||grad D(x_hat)|| - 1)^2]`` on random interpolates."""
    norm = grad_norm(ops, critic, _interpolate(real, fake, noise["eps"]))
    return ops.mean((norm - 1.0) ** 2.0)


def gp0_penalty(ops, critic, real, fake, noise):
    """Zero-centred penalty (Thanh-Tung et al. 2019): ``E[||grad D(x_hat)||^2]``."""
    return ops.mean(grad_sq_norm(ops, critic, _interpolate(real, fake, noise["eps"])))


def lp_penalty(ops, critic, real, fake, noise):
    """Petzka et al. 2018 (WGAN-LP, the TF2 WGAN-LP example): one-sided ``E[max(0, ||grad D|| - 1)^2]``
    over the union of real and fake samples, each perturbed with Gaussian noise. The two
    halves go through the critic separately so that a conditional critic sees each sample
    with its own label."""
    def one_sided(x):
        return ops.mean(ops.maximum(grad_norm(ops, critic, x) - 1.0, 0.0) ** 2.0)

    return 0.5 * (one_sided(real + noise["lp_real"]) + one_sided(fake + noise["lp_fake"]))


def _lp_noise(rng, batch_size, shape):
    size = (batch_size,) + tuple(shape)
    return {key: (LP_SIGMA * rng.standard_normal(size)).astype(np.float32) for key in ("lp_real", "lp_fake")}


def r1_penalty(ops, critic, real, fake, noise):
    """Mescheder et al. 2018: ``E[||grad D(real)||^2] / 2`` on real data only."""
    return 0.5 * ops.mean(grad_sq_norm(ops, critic, real))


def dragan_penalty(ops, critic, real, fake, noise):
    """Kodali et al. 2017: two-sided penalty around real data,
    ``x + 0.5 * std(x) * u`` with ``u ~ U[0, 1)`` per element."""
    centred = real - ops.mean(real)
    std = ops.sqrt(ops.mean(centred * centred))
    norm = grad_norm(ops, critic, real + 0.5 * std * noise["dragan_u"])
    return ops.mean((norm - 1.0) ** 2.0)


def _dragan_noise(rng, batch_size, shape):
    return {"dragan_u": rng.uniform(0.0, 1.0, (batch_size,) + tuple(shape)).astype(np.float32)}


REGULARIZERS = [
    RegularizerSpec("gp", gp_penalty, _uniform_per_sample("eps"), weight=10.0, needs_input_grad=True,
                    description="two-sided gradient penalty on interpolates (WGAN-GP)",
                    linear_critic=lambda norm: (norm - 1.0) ** 2),
    RegularizerSpec("lp", lp_penalty, _lp_noise, weight=10.0, needs_input_grad=True,
                    description="one-sided Lipschitz penalty on perturbed samples (WGAN-LP, the TF2 WGAN-LP example)",
                    linear_critic=lambda norm: max(norm - 1.0, 0.0) ** 2),
    RegularizerSpec("clip", clip=0.01,
                    description="weight clipping to [-0.01, 0.01] (original WGAN, the TF1 WGAN example)"),
    RegularizerSpec("none", description="no constraint (plain GAN losses)"),
    RegularizerSpec("gp0", gp0_penalty, _uniform_per_sample("eps"), weight=10.0, needs_input_grad=True,
                    description="zero-centred gradient penalty on interpolates", linear_critic=lambda norm: norm ** 2),
    RegularizerSpec("r1", r1_penalty, weight=10.0, needs_input_grad=True,
                    description="R1: squared gradient norm on real data", linear_critic=lambda norm: norm ** 2 / 2),
    RegularizerSpec("dragan", dragan_penalty, _dragan_noise, weight=10.0, needs_input_grad=True,
                    description="DRAGAN: gradient penalty around perturbed real data",
                    linear_critic=lambda norm: (norm - 1.0) ** 2),
]


@hookimpl
def wganx_regularizers():
    return list(REGULARIZERS)
