"""The toy 2-D Gaussian mixtures of the WGAN-GP paper and mode-coverage metrics on them.

Centres and spreads follow ``gan_toy.py`` of Gulrajani et al. 2017: a sample is
``centre + std * N(0, I)`` and the whole data set is then divided by a constant (1.414 for
``8gaussians``, 2.828 for ``25gaussians``), so in data space the centres and the spread are
both divided by it. Every number is a parameter, so that the datasets plugin can share
these definitions later.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from wganx.errors import UnknownNameError, WganxError

from ._arrays import as_matrix

__all__ = [
    "GaussianMixture2D", "eight_gaussians", "twentyfive_gaussians", "toy_mixture", "TOY_MIXTURES",
    "nearest_mode", "high_quality_share", "mode_coverage",
    "HIGH_QUALITY_STDS", "MIN_MODE_SHARE",
]

#: a sample is "high quality" within this many standard deviations of its nearest centre
#: (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).
HIGH_QUALITY_STDS = 3.0
#: a mode counts as covered when at least this share of the samples are high-quality
#: samples assigned to it: PacGAN's 20 of 2500 for the 2-D grid.
MIN_MODE_SHARE = 20 / 2500


@dataclass(frozen=True)
class GaussianMixture2D:
    """Equal-weight isotropic Gaussian mixture, in data space.

    Attributes:
        centers: ``(K, 2)`` mode centres.
        std: standard deviation of every component (per coordinate).
    """

    centers: np.ndarray
    std: float

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` float32 samples, each from a uniformly chosen component."""
        idx = rng.integers(0, len(self.centers), n)
        return (self.centers[idx] + self.std * rng.standard_normal((n, 2))).astype(np.float32)


def eight_gaussians(scale: float = 2.0, std: float = 0.02, divisor: float = 1.414) -> GaussianMixture2D:
    """``8gaussians``: unit circle at multiples of 45 degrees, times ``scale``, spread ``std``,
    all divided by ``divisor``."""
    s = 1.0 / np.sqrt(2.0)
    unit = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    return GaussianMixture2D(unit * scale / divisor, std / divisor)


def twentyfive_gaussians(spacing: float = 2.0, std: float = 0.05, divisor: float = 2.828,
                         half_width: int = 2) -> GaussianMixture2D:
    """``25gaussians``: the grid ``spacing * {-2..2}^2``, spread ``std``, all divided by ``divisor``."""
    r = np.arange(-half_width, half_width + 1)
    grid = np.array([(x, y) for x in r for y in r], dtype=np.float64)
    return GaussianMixture2D(grid * spacing / divisor, std / divisor)


TOY_MIXTURES = {"8gaussians": eight_gaussians, "25gaussians": twentyfive_gaussians}


def toy_mixture(name: str, **params) -> GaussianMixture2D:
    """The mixture called ``name`` (``8gaussians`` or ``25gaussians``), ``params`` overriding
    the defaults of its factory."""
    if name not in TOY_MIXTURES:
        raise UnknownNameError("toy dataset with modes", name, TOY_MIXTURES)
    return TOY_MIXTURES[name](**params)


def nearest_mode(points, centers):
    """``(index, distance)`` of every point's nearest centre."""
    p = as_matrix(points, "points")
    c = as_matrix(centers, "centers")
    if p.shape[1] != c.shape[1]:
        raise WganxError(f"points have {p.shape[1]} coordinates but centres have {c.shape[1]}")
    d = np.sqrt(((p[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    idx = d.argmin(axis=1)
    return idx, d[np.arange(len(p)), idx]


def high_quality_share(points, centers, std: float, num_stds: float = HIGH_QUALITY_STDS) -> float:
    """Share of points within ``num_stds * std`` (Euclidean) of their nearest centre.

    For samples of the true mixture in 2-D this is ``1 - exp(-num_stds**2 / 2)``, 0.989.
    """
    _, dist = nearest_mode(points, centers)
    return float((dist <= num_stds * std).mean())


def mode_coverage(points, centers, std: float, min_count: Optional[int] = None,
                  min_share: float = MIN_MODE_SHARE,
                  num_stds: float = HIGH_QUALITY_STDS) -> Dict[str, float]:
    """Modes covered by generated points, following VEEGAN and PacGAN.

    Each point is assigned to its nearest centre and is *high quality* when within
    ``num_stds * std`` of it. A mode is covered when at least ``min_count`` high-quality
    points are assigned to it; by default ``min_count = ceil(min_share * N)``, at least 1,
    which is PacGAN's threshold of 20 for 2500 samples.

    Returns:
        ``modes_covered``, ``modes_total`` and ``high_quality_share``.
    """
    c = as_matrix(centers, "centers")
    idx, dist = nearest_mode(points, c)
    good = dist <= num_stds * std
    if min_count is None:
        min_count = max(1, math.ceil(min_share * len(idx) - 1e-9))
    counts = np.bincount(idx[good], minlength=len(c))
    return {
        "modes_covered": float((counts >= min_count).sum()),
        "modes_total": float(len(c)),
        "high_quality_share": float(good.mean()),
    }
