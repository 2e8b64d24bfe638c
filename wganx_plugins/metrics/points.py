"""Sample-based distances between point sets (toy data such as ``swissroll``)."""
from __future__ import annotations

import numpy as np

from ._arrays import RngLike, as_matrix, make_rng, same_width
from wganx.errors import WganxError

__all__ = ["energy_distance", "sliced_wasserstein", "wasserstein_1d"]


def _mean_distance(a: np.ndarray, b: np.ndarray, batch_size: int) -> float:
    from scipy.spatial.distance import cdist  # on use: listing plugins stays fast

    total = 0.0
    for start in range(0, a.shape[0], batch_size):
        total += cdist(a[start:start + batch_size], b).sum()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x, y, batch_size: int = 2048) -> float:
    """Energy distance between two samples in any dimension (Székely and Rizzo).

    ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)`` with every expectation a plain mean over all
    pairs (zero self-distances included), which is what ``scipy.stats.energy_distance``
    returns in 1-D. It is 0 for identical sets. Pairwise distances are summed
    ``batch_size`` rows at a time.
    """
    a, b = as_matrix(x, "x"), as_matrix(y, "y")
    same_width(a, b, "x and y")
    sq = (2.0 * _mean_distance(a, b, batch_size) - _mean_distance(a, a, batch_size)
          - _mean_distance(b, b, batch_size))
    return float(np.sqrt(max(sq, 0.0)))


def wasserstein_1d(u: np.ndarray, v: np.ndarray, p: float = 1.0) -> np.ndarray:
    """``W_p^p`` between equal-weight empirical distributions, per column.

    ``u`` is ``(n, P)``, ``v`` is ``(m, P)``: column ``j`` of each is one 1-D sample; the
    sizes may differ (the quantile functions are compared on the union of their steps).
    """
    u, v = np.sort(u, axis=0), np.sort(v, axis=0)
    n, m = u.shape[0], v.shape[0]
    if n == m:
        return (np.abs(u - v) ** p).mean(axis=0)
    # steps k/n and k/m; equal fractions round to equal floats, so union1d merges them
    levels = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    edges = np.concatenate([[0.0], levels])
    widths, mid = np.diff(edges), (edges[:-1] + edges[1:]) / 2
    iu = np.minimum((mid * n).astype(np.int64), n - 1)
    iv = np.minimum((mid * m).astype(np.int64), m - 1)
    return (widths[:, None] * np.abs(u[iu] - v[iv]) ** p).sum(axis=0)


def sliced_wasserstein(x, y, num_projections: int = 128, rng: RngLike = None,
                       p: float = 1.0) -> float:
    """Sliced Wasserstein-p distance ``(E_theta W_p^p(theta.X, theta.Y))^(1/p)``.

    Projects both samples on ``num_projections`` directions drawn uniformly on the unit
    sphere and compares the 1-D empirical distributions exactly (see :func:`wasserstein_1d`;
    the sample sizes may differ). In 1-D every direction is +-1, so the result is the
    Wasserstein-p distance itself (``scipy.stats.wasserstein_distance`` for ``p=1``).

    Args:
        rng: a numpy Generator or seed; None means seed 0 (reproducible).
    """
    a, b = as_matrix(x, "x"), as_matrix(y, "y")
    same_width(a, b, "x and y")
    if num_projections < 1 or p < 1:
        raise WganxError("sliced_wasserstein needs num_projections >= 1 and p >= 1")
    theta = make_rng(rng).standard_normal((a.shape[1], num_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    return float(wasserstein_1d(a @ theta, b @ theta, p).mean() ** (1.0 / p))
