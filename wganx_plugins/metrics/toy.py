"""Mode coverage of samples of a 2-D Gaussian mixture (VEEGAN, PacGAN).

The mixtures themselves, the WGAN-GP paper's ``8gaussians`` and ``25gaussians``, are defined
once, by the datasets plugin (:func:`wganx_plugins.datasets.mode_centers`,
:func:`wganx_plugins.datasets.mode_std`); these functions take any centres and spread.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from wganx.errors import WganxError

from ._arrays import as_matrix

__all__ = ["nearest_mode", "high_quality_share", "mode_coverage", "HIGH_QUALITY_STDS", "MIN_MODE_SHARE"]

#: a sample is "high quality" within this many standard deviations of its nearest centre
#: (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).
HIGH_QUALITY_STDS = 3.0
#: a mode counts as covered when at least this share of the samples are high-quality
#: samples assigned to it: PacGAN's 20 of 2500 for the 2-D grid.
MIN_MODE_SHARE = 20 / 2500


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
