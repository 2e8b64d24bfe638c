"""Metrics on classifier outputs for generated samples: Inception Score and class coverage."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from wganx.errors import WganxError


def xlogy(x, y):
    """``x * log(y)``, 0 where ``x`` is 0 (scipy imported on use: listing plugins stays fast)."""
    from scipy.special import xlogy as scipy_xlogy

    return scipy_xlogy(x, y)

__all__ = ["inception_score", "class_coverage"]


def inception_score(probs, splits: int = 10) -> Tuple[float, float]:
    """Inception Score (Salimans et al. 2016): ``exp(E_x KL(p(y|x) || p(y)))``.

    As the original code: the samples are cut, in order and without shuffling, into
    ``splits`` consecutive parts (``N * i // splits`` boundaries); in each part ``p(y)`` is
    the mean of the rows, and the score is the exponential of the mean KL divergence.

    Args:
        probs: ``(N, C)`` class probabilities (softmax outputs); rows must sum to 1.
        splits: number of parts (at most ``N``).

    Returns:
        ``(mean, std)`` of the per-part scores (std with ``ddof=0``). The score lies in
        ``[1, C]``: ``C`` for confident predictions spread evenly over the classes, 1 when
        every sample gets the same prediction.
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1:
        raise WganxError(f"inception_score needs (samples, classes) probabilities, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise WganxError("inception_score needs probabilities (non-negative rows summing to 1); "
                         "apply softmax to logits first")
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise WganxError(f"inception_score: splits must be between 1 and {n}, got {splits}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(axis=0, keepdims=True)
        kl = (xlogy(part, part) - xlogy(part, py)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def class_coverage(pred_labels, num_classes: Optional[int] = None) -> Dict[str, float]:
    """How many classes, and how evenly, the generated samples hit.

    Args:
        pred_labels: ``(N,)`` integer labels predicted for generated samples, or ``(N, C)``
            scores or probabilities (then the arg-max is taken).
        num_classes: the number of classes; defaults to ``C`` for scores, else max label + 1.

    Returns:
        ``classes_covered`` (classes predicted at least once), ``classes_total``,
        ``entropy`` (of the class histogram, in nats) and ``normalized_entropy``
        (``entropy / log(num_classes)``: 1 for a uniform histogram, 0 for a single class).
    """
    a = np.asarray(pred_labels)
    if a.ndim == 2:
        if num_classes is None:
            num_classes = a.shape[1]
        a = a.argmax(axis=1)
    if a.ndim != 1 or a.size == 0:
        raise WganxError(f"class_coverage needs a non-empty 1-D array of labels, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.asarray(a, np.float64) == np.round(np.asarray(a, np.float64))):
            raise WganxError("class_coverage needs integer labels")
        a = a.astype(np.int64)
    if a.min() < 0:
        raise WganxError("class_coverage: labels must be non-negative")
    if num_classes is None:
        num_classes = int(a.max()) + 1
    if a.max() >= num_classes:
        raise WganxError(f"class_coverage: label {int(a.max())} out of range for {num_classes} classes")
    counts = np.bincount(a, minlength=num_classes)
    share = counts / counts.sum()
    entropy = float(-xlogy(share, share).sum())
    normalized = entropy / np.log(num_classes) if num_classes > 1 else 1.0
    return {
        "classes_covered": float((counts > 0).sum()),
        "classes_total": float(num_classes),
        "entropy": entropy,
        "normalized_entropy": float(normalized),
    }
