"""Input checks shared by the metrics: clean :class:`wganx.errors.WganxError` messages."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from wganx.errors import WganxError

RngLike = Union[None, int, np.random.Generator]


def as_matrix(x, name: str, min_rows: int = 1) -> np.ndarray:
    """``x`` as a finite float64 ``(N, D)`` array; a 1-D array is read as ``(N, 1)``."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise WganxError(f"{name} must be a (samples, features) array, got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise WganxError(f"{name} needs at least {min_rows} samples, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise WganxError(f"{name} contains NaN or infinite values")
    return a


def same_width(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise WganxError(f"{names} have different feature sizes: {a.shape[1]} and {b.shape[1]}")


def make_rng(rng: RngLike, default_seed: Optional[int] = 0) -> np.random.Generator:
    """A numpy Generator; ``None`` gives a fixed seed so that metrics are reproducible."""
    if rng is None:
        rng = default_seed
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
