"""The 2-D toy distributions of the WGAN-GP paper (Gulrajani et al. 2017, ``gan_toy.py``).

Each is drawn fresh from the generator passed in (the core's seeded RNG), with the
paper's constants, including its final division by a rough standard deviation. The
paper cycles a fixed 100,000-point sample of ``25gaussians``; here every batch is new,
which is the same distribution. :func:`mode_centers` and :func:`mode_std` give the
mixtures' modes in output coordinates, for metrics that count covered modes.
"""
from __future__ import annotations

import numpy as np

from wganx.errors import WganxError

_R = 1.0 / np.sqrt(2.0)
# name -> (centres before scaling, std before scaling, divisor applied by the paper)
_MIXTURES = {
    "8gaussians": (2.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1),
                                   (_R, _R), (_R, -_R), (-_R, _R), (-_R, -_R)]), 0.02, 1.414),
    "25gaussians": (np.array([(2.0 * x, 2.0 * y) for x in range(-2, 3) for y in range(-2, 3)]),
                    0.05, 2.828),
}
SWISSROLL_NOISE, SWISSROLL_DIVISOR = 0.25, 7.5

TOY_NAMES = ("8gaussians", "25gaussians", "swissroll")


def _mixture(name: str):
    if name not in _MIXTURES:
        raise WganxError(f"{name!r} has no modes; mixtures of gaussians are: {', '.join(_MIXTURES)}")
    return _MIXTURES[name]


def mode_centers(name: str) -> np.ndarray:
    """The (K, 2) centres of a toy mixture, in the coordinates its samples have."""
    centres, _, divisor = _mixture(name)
    return centres / divisor


def mode_std(name: str) -> float:
    """The per-axis standard deviation of each mode, in sample coordinates."""
    _, std, divisor = _mixture(name)
    return std / divisor


def sample_mixture(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    centres, std, divisor = _mixture(name)
    points = centres[rng.integers(0, len(centres), size=n)] + std * rng.standard_normal((n, 2))
    return (points / divisor).astype(np.float32)


def sample_swissroll(rng, n: int) -> np.ndarray:
    """``sklearn.datasets.make_swiss_roll(n, noise=0.25)[0][:, [0, 2]] / 7.5``, drawn from
    ``rng`` in the same order as scikit-learn so a RandomState gives identical points."""
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    height = 21 * rng.uniform(size=n)
    roll = np.vstack((t * np.cos(t), height, t * np.sin(t)))
    roll += SWISSROLL_NOISE * rng.standard_normal(size=(3, n))
    return (roll[[0, 2]].T / SWISSROLL_DIVISOR).astype(np.float32)


def sample(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` points of toy set ``name`` as float32 (n, 2)."""
    if name == "swissroll":
        return sample_swissroll(rng, n)
    return sample_mixture(name, rng, n)
