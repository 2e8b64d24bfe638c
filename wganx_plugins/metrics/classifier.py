"""A small domain classifier for MNIST and Fashion-MNIST, in pure numpy.

Inception features say little about 28x28 greyscale digits, and Inception weights cannot be
fetched offline. This classifier gives a feature space of the data's own domain instead:
an MLP ``784-256-128-10`` with ReLU, trained with Adam on the real training split from a
fixed seed, framework-free so that every backend is measured by the same numbers.

* :meth:`Classifier.features`: the 128 penultimate ReLU activations, for FID, KID and
  precision/recall "in the classifier's feature space" (reported as ``domain_*``; these
  values are *not* comparable with Inception FIDs from papers);
* :meth:`Classifier.predict_proba`: softmax class probabilities, for the classifier
  Inception Score and class coverage.

Trained weights are cached as safetensors in ``$WGANX_CACHE_DIR/classifiers/<dataset>.safetensors``
(default ``~/.cache/wganx/classifiers/``) with the recipe and the test accuracy in the
metadata; a cached file written with another recipe is retrained. Training the MNIST model
takes about half a minute on two CPU cores.

Inputs are NCHW images in [-1, 1] (what generators and the dataset loaders produce, or
uint8 in [0, 255]); one channel or three (averaged to grey); any size (resized to 28x28).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from wganx.errors import WganxError

__all__ = ["Recipe", "Classifier", "RECIPES", "DOMAIN_DATASETS", "cache_dir", "train_classifier",
           "load_classifier", "prepare"]

FORMAT = "wganx-classifier-1"
SIZE = 28


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the trained weights (together with the data)."""

    hidden: tuple = (256, 128)
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    final_lr: float = 5e-5  # cosine decay from lr to this over the epochs
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    seed: int = 0


RECIPES = {"mnist": Recipe(epochs=6), "fashion-mnist": Recipe(epochs=10)}
#: image datasets that have a domain classifier
DOMAIN_DATASETS = tuple(RECIPES)


def cache_dir() -> Path:
    """``$WGANX_CACHE_DIR/classifiers``, else ``~/.cache/wganx/classifiers``."""
    root = os.environ.get("WGANX_CACHE_DIR")
    base = Path(root).expanduser() if root else Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "wganx"
    return base / "classifiers"


# ------------------------------------------------------------------------------ inputs

def prepare(images) -> np.ndarray:
    """Images -> ``(N, 784)`` float32 in [-1, 1] (grey, 28x28)."""
    x = np.asarray(images)
    if x.ndim == 3:  # (N, H, W)
        x = x[:, None]
    if x.ndim != 4:
        raise WganxError(f"the classifier needs NCHW images, got shape {x.shape}")
    if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):  # NHWC
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise WganxError(f"the classifier needs 1 or 3 channels, got shape {x.shape}")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise WganxError("images contain NaN or infinite values")
    if x.shape[1] == 3:
        x = x.mean(axis=1, keepdims=True)
    if x.shape[-2:] != (SIZE, SIZE):
        x = _resize(x[:, 0], SIZE)[:, None]
    return np.clip(x, -1.0, 1.0).reshape(len(x), SIZE * SIZE)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    """(N, H, W) float -> (N, size, size), bilinear (antialiased when shrinking), via PIL."""
    from PIL import Image

    h, w = x.shape[1:]
    out = np.empty((len(x), size, size), np.float32)
    for i in range(len(x)):
        img = x[i]
        if h != w:
            s = min(h, w)
            top, left = (h - s) // 2, (w - s) // 2
            img = img[top:top + s, left:left + s]
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(img, np.float32), mode="F")
                            .resize((size, size), Image.BILINEAR))
    return out


# ------------------------------------------------------------------------------ model

def _init(recipe: Recipe, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    dims = (SIZE * SIZE,) + tuple(recipe.hidden) + (10,)
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        params[f"W{i}"] = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)  # He
        params[f"b{i}"] = np.zeros(b, np.float32)
    return params


def _layers(params) -> int:
    return sum(1 for k in params if k.startswith("W"))


def _forward(params, x, keep=False):
    """Logits, and (``keep``) every layer's input for the backward pass."""
    acts = [x]
    h = x
    n = _layers(params)
    for i in range(n):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        if i < n - 1:
            np.maximum(h, 0, out=h)
            if keep:
                acts.append(h)
    return (h, acts) if keep else h


def _softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class Classifier:
    """A trained MLP; see the module docstring."""

    def __init__(self, params: Dict[str, np.ndarray], meta: Optional[dict] = None):
        self.params = {k: np.asarray(v, np.float32) for k, v in params.items()}
        self.meta = dict(meta or {})

    @property
    def test_accuracy(self) -> float:
        return float(self.meta.get("test_accuracy", float("nan")))

    @property
    def description(self) -> str:
        return f"{self.meta.get('dataset', 'domain')} numpy MLP classifier"

    @property
    def feature_dim(self) -> int:
        return self.params[f"W{_layers(self.params) - 1}"].shape[0]

    def _run(self, images, batch_size: int, what: str) -> np.ndarray:
        x = prepare(images)
        n = _layers(self.params)
        outs = []
        for start in range(0, len(x), batch_size):
            h = x[start:start + batch_size]
            for i in range(n - 1):
                h = np.maximum(h @ self.params[f"W{i}"] + self.params[f"b{i}"], 0)
            if what == "logits":
                h = h @ self.params[f"W{n - 1}"] + self.params[f"b{n - 1}"]
            outs.append(h)
        return np.concatenate(outs) if outs else np.zeros((0, 10), np.float32)

    def features(self, images, batch_size: int = 2000) -> np.ndarray:
        """Penultimate-layer activations ``(N, 128)``."""
        return self._run(images, batch_size, "features")

    def logits(self, images, batch_size: int = 2000) -> np.ndarray:
        return self._run(images, batch_size, "logits")

    def predict_proba(self, images, batch_size: int = 2000) -> np.ndarray:
        """Softmax probabilities ``(N, 10)`` (float64, rows sum to 1)."""
        return _softmax(self.logits(images, batch_size).astype(np.float64))

    def predict(self, images, batch_size: int = 2000) -> np.ndarray:
        return self.logits(images, batch_size).argmax(axis=1)

    def accuracy(self, images, labels) -> float:
        return float((self.predict(images) == np.asarray(labels)).mean())

    def save(self, path) -> Path:
        from safetensors.numpy import save_file

        from wganx.checkpoint import atomic_write

        meta = {"format": FORMAT, "wganx": json.dumps(self.meta, sort_keys=True)}
        tensors = {k: np.ascontiguousarray(v) for k, v in self.params.items()}
        atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))
        return Path(path)

    @classmethod
    def load(cls, path) -> "Classifier":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                metadata = f.metadata() or {}
                params = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:
            raise WganxError(f"{path} is not a readable classifier ({exc}); delete it to retrain") from None
        if metadata.get("format") != FORMAT:
            raise WganxError(f"{path} is not a wganx classifier (format {metadata.get('format')!r})")
        return cls(params, json.loads(metadata["wganx"]))


# ------------------------------------------------------------------------------ training

def train_classifier(x_train, y_train, recipe: Recipe = Recipe(), x_test=None, y_test=None,
                     log: Optional[Callable[[str], None]] = None) -> Classifier:
    """Train the MLP with Adam (cosine learning-rate decay) and softmax cross-entropy.

    Deterministic for a given recipe (seed included), data and BLAS thread count: every
    random number (initialisation, epoch order) comes from ``numpy.random.default_rng(seed)``.
    """
    x = prepare(x_train)
    y = np.asarray(y_train, np.int64)
    if len(x) != len(y) or len(x) < recipe.batch_size:
        raise WganxError(f"classifier training needs at least {recipe.batch_size} labelled images, "
                         f"got {len(x)} images and {len(y)} labels")
    rng = np.random.default_rng(recipe.seed)
    params = _init(recipe, rng)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    n_layers = _layers(params)
    steps_per_epoch = len(x) // recipe.batch_size
    total = steps_per_epoch * recipe.epochs
    b1, b2, eps = recipe.beta1, recipe.beta2, 1e-8
    t = 0
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        order = rng.permutation(len(x))
        for s in range(steps_per_epoch):
            idx = order[s * recipe.batch_size:(s + 1) * recipe.batch_size]
            xb, yb = x[idx], y[idx]
            logits, acts = _forward(params, xb, keep=True)
            g = _softmax(logits)
            g[np.arange(len(yb)), yb] -= 1.0
            g /= np.float32(len(yb))
            grads = {}
            for i in range(n_layers - 1, -1, -1):
                grads[f"W{i}"] = acts[i].T @ g
                grads[f"b{i}"] = g.sum(axis=0)
                if i > 0:
                    g = g @ params[f"W{i}"].T
                    g *= acts[i] > 0
            t += 1
            lr = recipe.final_lr + 0.5 * (recipe.lr - recipe.final_lr) * (1 + np.cos(np.pi * (t - 1) / total))
            corr = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            for k, p in params.items():
                gk = grads[k]
                if recipe.weight_decay and k.startswith("W"):
                    gk = gk + np.float32(recipe.weight_decay) * p
                m[k] *= np.float32(b1)
                m[k] += np.float32(1 - b1) * gk
                v[k] *= np.float32(b2)
                v[k] += np.float32(1 - b2) * gk * gk
                p -= np.float32(lr * corr) * m[k] / (np.sqrt(v[k]) + np.float32(eps))
        if log is not None:
            log(f"epoch {epoch + 1}/{recipe.epochs} ({time.perf_counter() - start:.1f} s)")
    meta = {"recipe": _recipe_dict(recipe), "train_samples": int(len(x)),
            "train_seconds": round(time.perf_counter() - start, 2)}
    clf = Classifier(params, meta)
    if x_test is not None and y_test is not None:
        clf.meta["test_accuracy"] = clf.accuracy(x_test, y_test)
    return clf


def _recipe_dict(recipe: Recipe) -> dict:
    d = asdict(recipe)
    d["hidden"] = list(d["hidden"])
    return d


def load_classifier(dataset: str, data_dir=None, *, cache: Optional[Path] = None, retrain: bool = False,
                    download: bool = False, log: Optional[Callable[[str], None]] = None) -> Classifier:
    """The cached classifier of ``dataset`` (``mnist`` or ``fashion-mnist``), training and
    caching it first when needed (reads the dataset's train and test splits from ``data_dir``)."""
    if dataset not in RECIPES:
        raise WganxError(f"no domain classifier for {dataset!r}; there is one for: {', '.join(RECIPES)}")
    recipe = RECIPES[dataset]
    path = Path(cache or cache_dir()) / f"{dataset}.safetensors"
    if path.is_file() and not retrain:
        clf = Classifier.load(path)
        if clf.meta.get("recipe") == _recipe_dict(recipe) and clf.meta.get("dataset") == dataset:
            return clf
    from wganx_plugins.datasets import load_split

    train = load_split(dataset, data_dir, "train", None, download)
    test = load_split(dataset, data_dir, "test", None, download)
    if log is not None:
        log(f"training the {dataset} domain classifier (once; cached in {path})")
    clf = train_classifier(train.x, train.labels, recipe, test.x, test.labels, log=log)
    clf.meta["dataset"] = dataset
    clf.save(path)
    return clf
