"""Metrics on feature vectors of real and generated images: FID, KID, precision/recall.

All functions are plain numpy/scipy; the feature extractor (Inception, a domain
classifier) is someone else's business: these take ``(N, D)`` arrays.
"""
from __future__ import annotations

import warnings
from typing import Dict, Tuple

import numpy as np

from wganx.errors import WganxError

from ._arrays import RngLike, as_matrix, make_rng, same_width

__all__ = [
    "feature_stats", "frechet_distance", "polynomial_kernel", "mmd2_unbiased",
    "kernel_inception_distance", "pairwise_distances", "knn_radii", "precision_recall", "prdc",
]


# --------------------------------------------------------------------------- FID

def feature_stats(features) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``(N, D)`` features, as FID uses them.

    Returns:
        ``(mu, sigma)``: ``mu`` of shape ``(D,)`` and ``sigma = np.cov(features,
        rowvar=False)`` of shape ``(D, D)`` (unbiased, divides by ``N - 1``).
    """
    f = as_matrix(features, "features", min_rows=2)
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # "Matrix is singular ..." : handled by the caller
        warnings.simplefilter("ignore")
        from scipy import linalg  # on use: listing plugins stays fast

        return linalg.sqrtm(a)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))`` (Heusel et
    al. 2017), computed as pytorch-fid does: ``scipy.linalg.sqrtm`` of the product; when
    that is not finite (near-singular covariances, e.g. fewer samples than features)
    ``eps * I`` is added to both covariances and the root taken again; a complex result
    with negligible imaginary diagonal (``atol=1e-3``) is replaced by its real part, a
    larger imaginary part is an error.

    Args:
        mu1, mu2: means of shape ``(D,)``.
        sigma1, sigma2: covariances of shape ``(D, D)``.
        eps: offset added to the diagonals when the square root is not finite.

    Returns:
        The squared Fréchet distance (what is reported as "FID"), a float.

    Raises:
        WganxError: mismatched shapes, or a square root with a large imaginary part.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise WganxError(f"FID means have different or bad shapes: {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise WganxError(f"FID covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise WganxError(f"FID: the matrix square root has an imaginary component {m:.3g}; "
                             "are the covariances valid (symmetric, positive semi-definite)?")
        covmean = covmean.real
    if not np.isfinite(covmean).all():
        raise WganxError("FID: the matrix square root is not finite even with an eps offset")
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


# --------------------------------------------------------------------------- KID

def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma=None,
                      coef0: float = 1.0) -> np.ndarray:
    """``k(x, y) = (gamma * x.y + coef0) ** degree`` for all rows; ``gamma`` defaults to 1/D."""
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma=None,
                  coef0: float = 1.0) -> float:
    """Unbiased MMD^2 estimate with the polynomial kernel, as Binkowski et al. 2018.

    ``(sum_{i!=j} k(x_i, x_j)) / (m (m-1)) + (sum_{i!=j} k(y_i, y_j)) / (n (n-1))
    - 2 sum_{i,j} k(x_i, y_j) / (m n)``; with ``m == n`` exactly the estimator of their
    code and of torch-fidelity.
    """
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise WganxError("unbiased MMD needs at least 2 samples in each set")
    k_xx = polynomial_kernel(x, x, degree, gamma, coef0)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef0)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef0)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.sum() / (m * n))


def kernel_inception_distance(f1, f2, num_subsets: int = 100, subset_size: int = 1000,
                              rng: RngLike = None, degree: int = 3, gamma=None,
                              coef0: float = 1.0) -> Tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018), as torch-fidelity computes it.

    For each of ``num_subsets`` subsets, draws ``subset_size`` rows of each feature set
    without replacement and takes the unbiased MMD^2 with the kernel
    ``k(x, y) = (x.y / D + 1) ** 3``. ``subset_size`` is capped at the smaller sample count
    for one subset, and at half of it for several: subsets of every row are permutations of
    one set, whose "standard deviation" is round-off (1e-13 was reported for a short MNIST
    run evaluated on 1,000 samples); torch-fidelity refuses such a size instead.

    Args:
        f1, f2: ``(N1, D)`` and ``(N2, D)`` features.
        num_subsets: how many subsets to average over.
        subset_size: rows per subset (capped at ``min(N1, N2)``, or half of it for several subsets).
        rng: a numpy Generator or seed; None means seed 0 (reproducible).

    Returns:
        ``(mean, std)`` of the subset estimates (std with ``ddof=0``, as torch-fidelity).
    """
    a, b = as_matrix(f1, "f1", 2), as_matrix(f2, "f2", 2)
    same_width(a, b, "KID feature sets")
    if num_subsets < 1 or subset_size < 2:
        raise WganxError("KID needs num_subsets >= 1 and subset_size >= 2")
    smaller = min(a.shape[0], b.shape[0])
    size = int(min(subset_size, smaller if num_subsets == 1 else max(smaller // 2, 2)))
    gen = make_rng(rng)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = a[gen.choice(a.shape[0], size, replace=False)]
        y = b[gen.choice(b.shape[0], size, replace=False)]
        values[i] = mmd2_unbiased(x, y, degree, gamma, coef0)
    return float(values.mean()), float(values.std())


# ------------------------------------------------------------- precision / recall

def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows of ``x`` and ``y`` through one matrix product."""
    return np.sqrt(np.maximum(_squared_distances(x, y), 0.0))


def _squared_distances(x, y, nx=None, ny=None):
    nx = (x * x).sum(1) if nx is None else nx
    ny = (y * y).sum(1) if ny is None else ny
    return nx[:, None] + ny[None, :] - 2.0 * (x @ y.T)


def _exact_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``||a_i - b_i||``, computed directly (symmetric to the last bit)."""
    return np.sqrt(((a - b) ** 2).sum(axis=1))


# Squared distances through the matrix product are off by about eps * D * (|x|^2 + |y|^2);
# pairs this close to a radius are decided by direct computation instead.
_SLACK = 1e-8


def _inside(x, y, d2, scale, radius) -> np.ndarray:
    """``||x_a - y_b|| <= radius[a, b]`` for the block ``d2`` of squared distances.

    Clear cases are read off ``d2``; pairs within the rounding slack of the radius are
    recomputed directly, so a point lying exactly on a ball's boundary (the k-th
    neighbour that defined the radius, as happens for overlapping sets) counts as inside.
    """
    radius = np.broadcast_to(radius, d2.shape)
    r2 = radius ** 2
    slack = _SLACK * scale
    hit = d2 <= r2 - slack
    a, b = np.nonzero(np.abs(d2 - r2) <= slack)
    if a.size:
        hit[a, b] = _exact_distances(x[a], y[b]) <= radius[a, b]
    return hit


def knn_radii(features, k: int = 3, batch_size: int = 1000) -> np.ndarray:
    """Distance of every row to its ``k``-th nearest neighbour in the same set, self excluded.

    Neighbours are ranked through a matrix product, ``batch_size`` rows at a time (10k x
    10k needs about ``batch_size * N`` floats at once); the distance to the chosen
    neighbour is then computed directly. Duplicates of a row count as neighbours.
    """
    f = as_matrix(features, "features")
    n = f.shape[0]
    if not 1 <= k < n:
        raise WganxError(f"k must be between 1 and {n - 1} for {n} samples, got {k}")
    norms = (f * f).sum(1)
    radii = np.empty(n)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        rows = np.arange(start, stop)
        d2 = _squared_distances(f[start:stop], f, norms[start:stop], norms)
        d2[rows - start, rows] = -np.inf  # self always ranks first
        nn = np.argpartition(d2, k, axis=1)[:, k]
        radii[start:stop] = _exact_distances(f[start:stop], f[nn])
    return radii


def prdc(real_features, fake_features, k: int = 3, batch_size: int = 1000) -> Dict[str, float]:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    Each set's manifold is the union of balls around its samples with radius the distance
    to the sample's ``k``-th nearest neighbour (self excluded). A point is inside when its
    distance to some centre is ``<=`` that centre's radius (Kynkäänniemi et al.'s ``<=``).

    * precision: share of fake samples inside the real manifold;
    * recall: share of real samples inside the fake manifold;
    * density: ``1/(k M) * sum_j #{real balls containing fake_j}`` (about 1 for matching
      distributions, ``(k+1)/k`` for identical sets);
    * coverage: share of real balls that contain at least one fake sample.

    Distances are computed ``batch_size`` rows at a time (10k x 10k fits in memory): the
    two radius passes and one pass over fake x real.
    """
    real = as_matrix(real_features, "real_features", 2)
    fake = as_matrix(fake_features, "fake_features", 2)
    same_width(real, fake, "real and fake features")
    r_real = knn_radii(real, k, batch_size)
    r_fake = knn_radii(fake, k, batch_size)
    n_real, n_fake = (real * real).sum(1), (fake * fake).sum(1)

    inside_real = np.empty(fake.shape[0], dtype=bool)
    balls_per_fake = np.empty(fake.shape[0])
    covered = np.zeros(real.shape[0], dtype=bool)
    inside_fake = np.zeros(real.shape[0], dtype=bool)
    for start in range(0, fake.shape[0], batch_size):
        stop = min(start + batch_size, fake.shape[0])
        fb = fake[start:stop]
        d2 = _squared_distances(fb, real, n_fake[start:stop], n_real)
        scale = n_fake[start:stop, None] + n_real[None, :]
        hit = _inside(fb, real, d2, scale, r_real[None, :])  # fake_j in real ball i
        inside_real[start:stop] = hit.any(axis=1)
        balls_per_fake[start:stop] = hit.sum(axis=1)
        covered |= hit.any(axis=0)
        hit = _inside(fb, real, d2, scale, r_fake[start:stop, None])  # real_i in fake ball j
        inside_fake |= hit.any(axis=0)

    return {
        "precision": float(inside_real.mean()),
        "recall": float(inside_fake.mean()),
        "density": float(balls_per_fake.sum() / (k * fake.shape[0])),
        "coverage": float(covered.mean()),
    }


def precision_recall(real_features, fake_features, k: int = 3,
                     batch_size: int = 1000) -> Tuple[float, float]:
    """``(precision, recall)`` of Kynkäänniemi et al. 2019; see :func:`prdc`."""
    out = prdc(real_features, fake_features, k, batch_size)
    return out["precision"], out["recall"]
