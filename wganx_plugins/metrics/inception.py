"""Inception-v3 features for FID, KID, precision/recall and the Inception Score.

wganx does not re-implement the Inception network: it uses **torch-fidelity**
(``pip install torch-fidelity``), whose ``FeatureExtractorInceptionV3`` reproduces the
TensorFlow graph of the original FID and IS code (bilinear resize to 299x299 as TF 1.x,
2048-d pool features, 1008 logits), and the weights it converts from TensorFlow,
``weights-inception-2015-12-05-6726825d.pth``. Neither is a dependency of wganx.

Where the weights come from, first found wins:

1. ``weights=`` (``wganx evaluate --inception-weights PATH``);
2. ``$WGANX_INCEPTION_WEIGHTS``;
3. torch's hub cache, ``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch/hub/checkpoints/``),
   where torch-fidelity itself stores them;
4. a download from torch-fidelity's release page into that cache (needs network).

Anything missing is a :class:`wganx.errors.WganxError` naming the package or the file, the
URL and where to put it. Features need the torch package only, not a torch *backend*: the
extractor runs on numpy input, so samples from any backend are measured the same way.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from wganx.errors import WganxError

__all__ = ["WEIGHTS_FILE", "WEIGHTS_URL", "InceptionFeatures", "find_weights", "to_uint8_rgb",
           "hub_dir", "load_inception"]

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + WEIGHTS_FILE
ENV = "WGANX_INCEPTION_WEIGHTS"
FEATURE_DIM, NUM_LOGITS = 2048, 1008


def hub_dir() -> Path:
    """torch's hub checkpoint folder, computed without importing torch."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def find_weights(weights=None) -> Optional[Path]:
    """The weights file to use, or None when it must be downloaded.

    An explicit path (argument or ``$WGANX_INCEPTION_WEIGHTS``) that does not exist is an
    error at once: the user said where the file is, and it is not there.
    """
    for given, what in ((weights, "--inception-weights"), (os.environ.get(ENV) or None, f"${ENV}")):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise WganxError(
                    f"Inception weights not found at {path} (given by {what}). Download {WEIGHTS_FILE} "
                    f"from {WEIGHTS_URL} and pass its path, or put it in {hub_dir()}/")
            return path
    cached = hub_dir() / WEIGHTS_FILE
    return cached if cached.is_file() else None


def to_uint8_rgb(images) -> np.ndarray:
    """NCHW images in [-1, 1] (or uint8) -> NCHW uint8 with 3 channels, as torch-fidelity
    wants them (grey images are repeated over RGB; the extractor resizes to 299x299)."""
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise WganxError(f"Inception features need NCHW images with 1 or 3 channels, got shape {x.shape}")
    if x.dtype != np.uint8:
        x = np.asarray(x, np.float32)
        if not np.isfinite(x).all():
            raise WganxError("images contain NaN or infinite values")
        x = np.clip((x + 1.0) * 127.5, 0, 255).round().astype(np.uint8)  # as monitor.to_uint8
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.ascontiguousarray(x)


MISSING_TORCH_FIDELITY = ("Inception metrics (fid, kid, inception-score, precision-recall on Inception features) "
                          "need torch-fidelity: pip install torch-fidelity (it brings torch and torchvision). "
                          "MNIST and Fashion-MNIST are measured with wganx's domain classifier, which needs neither")


def check_available(weights=None) -> None:
    """Raise WganxError now, without importing torch, when Inception features cannot be had:
    torch-fidelity missing, or weights named that are not there."""
    import importlib.util

    if importlib.util.find_spec("torch_fidelity") is None:
        raise WganxError(MISSING_TORCH_FIDELITY)
    find_weights(weights)


def _import_extractor():
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError as exc:
        raise WganxError(f"{MISSING_TORCH_FIDELITY} (import failed: {exc}; wganx evaluate: --features domain "
                         "for MNIST and Fashion-MNIST)") from None
    return FeatureExtractorInceptionV3


class InceptionFeatures:
    """2048-d pool features and 1008 logits of Inception-v3, through torch-fidelity.

    Args:
        weights: path of ``weights-inception-2015-12-05-6726825d.pth`` (see the module docstring).
        device: ``"cpu"`` or ``"cuda"`` (a torch device string).
        batch_size: images per forward pass.
        extractor: an already built module with torch-fidelity's interface (``forward(uint8
            NCHW) -> (pool, logits)``), for tests and for callers that hold one already.
    """

    def __init__(self, weights=None, device: str = "cpu", batch_size: int = 64, extractor=None):
        self.batch_size, self.device = int(batch_size), device
        if extractor is None:
            extractor = load_inception(weights, device)
        self.extractor = extractor

    def __call__(self, images) -> tuple:
        """``(features (N, 2048) float64, probs (N, 1008) float64)``."""
        import torch

        x = to_uint8_rgb(images)
        feats, logits = [], []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(x[start:start + self.batch_size]).to(self.device)
                f, l = self.extractor(batch)
                feats.append(f.detach().cpu().numpy().astype(np.float64))
                logits.append(l.detach().cpu().numpy().astype(np.float64))
        f = np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM))
        l = np.concatenate(logits) if logits else np.zeros((0, NUM_LOGITS))
        l = l - l.max(axis=1, keepdims=True)
        p = np.exp(l)
        return f, p / p.sum(axis=1, keepdims=True)

    def features(self, images) -> np.ndarray:
        return self(images)[0]

    def predict_proba(self, images) -> np.ndarray:
        return self(images)[1]


def load_inception(weights=None, device: str = "cpu"):
    """torch-fidelity's Inception-v3 with pool features and logits, weights loaded, on ``device``."""
    problems, path, extractor_cls = [], None, None
    try:
        path = find_weights(weights)
    except WganxError as exc:
        problems.append(str(exc))
    try:
        extractor_cls = _import_extractor()
    except WganxError as exc:
        problems.append(str(exc))
    if problems:  # say everything that is missing at once
        raise WganxError(" Also: ".join(problems))
    try:
        if path is None:  # torch-fidelity downloads into the hub cache
            model = extractor_cls("inception-v3-compat", ["2048", "logits_unbiased"])
        else:
            model = extractor_cls("inception-v3-compat", ["2048", "logits_unbiased"],
                                  feature_extractor_weights_path=str(path))
    except WganxError:
        raise
    except Exception as exc:
        where = f"the file {path}" if path else f"a download from {WEIGHTS_URL}"
        raise WganxError(
            f"could not load the Inception weights from {where} ({type(exc).__name__}: {exc}). Without "
            f"network, download {WEIGHTS_FILE} elsewhere and pass --inception-weights PATH, set ${ENV}, or "
            f"put it in {hub_dir()}/") from None
    return model.to(device).eval()
