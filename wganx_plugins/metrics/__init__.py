"""The standard wganx metrics: pure numpy/scipy arithmetic on arrays.

Every metric is a :class:`wganx.records.MetricSpec` whose ``compute(samples, reference,
**options)`` takes arrays: ``samples`` come from the generator, ``reference`` from the real
data. Which arrays depends on ``kinds``:

* ``points``: raw toy samples ``(N, D)`` (``modes``, ``energy``);
* ``features``: feature vectors ``(N, D)`` of images (``fid``, ``kid``, ``precision-recall``);
  turning images into features (Inception, a domain classifier) happens elsewhere;
* ``probs``: class probabilities ``(N, C)`` (``inception-score``);
* ``labels``: predicted class labels ``(N,)`` (``class-coverage``).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from wganx import hookimpl
from wganx.errors import WganxError
from wganx.records import FeatureSpec, MetricSpec

from .classes import class_coverage, inception_score
from .features import (
    feature_stats, frechet_distance, kernel_inception_distance, knn_radii, mmd2_unbiased,
    pairwise_distances, polynomial_kernel, precision_recall, prdc,
)
from .points import energy_distance, sliced_wasserstein, wasserstein_1d
from .toy import high_quality_share, mode_coverage, nearest_mode

__all__ = [
    "class_coverage", "inception_score", "feature_stats", "frechet_distance",
    "kernel_inception_distance", "knn_radii", "mmd2_unbiased", "pairwise_distances",
    "polynomial_kernel", "precision_recall", "prdc", "energy_distance", "sliced_wasserstein",
    "wasserstein_1d", "nearest_mode", "high_quality_share", "mode_coverage", "wganx_metrics",
]


def _need(reference, metric: str):
    if reference is None:
        raise WganxError(f"metric {metric!r} needs reference (real) data")
    return reference


def _stats(x, what: str):
    """``(mu, sigma)`` of features, or precomputed ``{"mu": ..., "sigma": ...}`` (an .npz)."""
    if isinstance(x, Mapping) or hasattr(x, "files"):  # dict or np.load(...) of an .npz
        if "mu" not in x or "sigma" not in x:
            raise WganxError(f"precomputed FID statistics for {what} need 'mu' and 'sigma'")
        return np.asarray(x["mu"]), np.asarray(x["sigma"])
    return feature_stats(x)


def _modes(samples, reference=None, dataset: str = "8gaussians", centers=None, std=None,
           **options):
    # The centres of the data the model was trained on: the datasets plugin is their one source.
    from wganx_plugins.datasets import mode_centers, mode_std

    c = mode_centers(dataset) if centers is None else centers
    s = mode_std(dataset) if std is None else std
    return mode_coverage(samples, c, s, **options)


def _energy(samples, reference, num_projections: int = 128, seed=0, p: float = 1.0):
    _need(reference, "energy")
    return {
        "energy_distance": energy_distance(samples, reference),
        "sliced_wasserstein": sliced_wasserstein(samples, reference, num_projections, seed, p),
    }


def _fid(samples, reference, eps: float = 1e-6):
    mu1, s1 = _stats(samples, "samples")
    mu2, s2 = _stats(_need(reference, "fid"), "reference")
    return {"fid": frechet_distance(mu1, s1, mu2, s2, eps)}


def _kid(samples, reference, num_subsets: int = 100, subset_size: int = 1000, seed=0):
    mean, std = kernel_inception_distance(samples, _need(reference, "kid"), num_subsets,
                                          subset_size, seed)
    return {"kid_mean": mean, "kid_std": std}


def _precision_recall(samples, reference, k: int = 3, batch_size: int = 1000):
    return prdc(_need(reference, "precision-recall"), samples, k, batch_size)


def _inception_score(samples, reference=None, splits: int = 10):
    mean, std = inception_score(samples, splits)
    return {"is_mean": mean, "is_std": std}


def _class_coverage(samples, reference=None, num_classes=None):
    if num_classes is None and reference is not None:
        ref = np.asarray(reference)
        num_classes = ref.shape[1] if ref.ndim == 2 else int(ref.max()) + 1
    return class_coverage(samples, num_classes)


@hookimpl
def wganx_metrics():
    both = ("domain", "inception")
    return [
        MetricSpec("modes", _modes, kinds=("points",), uses=("modes",),
                   description="modes covered and high-quality share on 8gaussians/25gaussians "
                               "(VEEGAN/PacGAN; option dataset=)"),
        MetricSpec("energy", _energy, kinds=("points",), options={"num_projections": 128}, default_in=("points",),
                   description="energy distance and sliced Wasserstein-1 to the reference points"),
        MetricSpec("fid", _fid, kinds=("features",), default_in=both,
                   description="Fréchet distance between feature Gaussians (Heusel et al. 2017)"),
        MetricSpec("kid", _kid, kinds=("features",), options={"num_subsets": 100, "subset_size": 1000},
                   default_in=both,
                   description="kernel distance, unbiased cubic-kernel MMD^2 over subsets "
                               "(Binkowski et al. 2018)"),
        MetricSpec("precision-recall", _precision_recall, kinds=("features",), options={"k": 3},
                   default_in=("domain",),
                   description="k-NN precision/recall (Kynkäänniemi et al. 2019), "
                               "density/coverage (Naeem et al. 2020)"),
        MetricSpec("inception-score", _inception_score, kinds=("probs",), options={"splits": 10}, default_in=both,
                   description="Inception Score over splits (Salimans et al. 2016)"),
        MetricSpec("class-coverage", _class_coverage, kinds=("labels",), default_in=("domain",),
                   description="classes hit by generated samples and entropy of their histogram"),
    ]


@hookimpl
def wganx_features():
    from . import inception

    return [FeatureSpec("inception", lambda weights=None, device="cpu": inception.InceptionFeatures(weights, device),
                        check=inception.check_available,
                        description="Inception-v3 pool features and logits through torch-fidelity "
                                    "(the FID and IS papers)")]
