"""Domain classifiers in pure numpy: the feature space of a dataset's own images.

Inception features say little about 28x28 greyscale digits, and Inception weights cannot be
fetched offline. A classifier trained once on the dataset's training split gives a feature
space of the data's own domain instead, framework-free so that every backend is measured by
the same numbers:

* MNIST and Fashion-MNIST: an MLP ``784-256-128-10`` with ReLU on grey 28x28 images;
* CIFAR-10: a small convolutional network (:mod:`wganx_plugins.metrics.convnet`: three
  conv3x3-ReLU-maxpool stages of 32, 64 and 128 maps, a 128-unit ReLU layer, 10 outputs) on
  RGB 32x32 images, trained with random horizontal flips.

Each is trained with Adam (cosine learning-rate decay) from a fixed seed.

* :meth:`Classifier.features`: the 128 penultimate ReLU activations, for FID, KID and
  precision/recall "in the classifier's feature space" (reported as ``domain_*``; these
  values are *not* comparable with Inception FIDs from papers);
* :meth:`Classifier.predict_proba`: softmax class probabilities, for the classifier
  Inception Score and class coverage.

Trained weights are cached as safetensors in ``$WGANX_CACHE_DIR/classifiers/<dataset>.safetensors``
(default ``~/.cache/wganx/classifiers/``) with the recipe and the test accuracy in the
metadata; a cached file written with another recipe is retrained. Training takes about half
a minute for MNIST and some minutes for CIFAR-10 on two CPU cores, once.

Inputs are NCHW images in [-1, 1] (what generators and the dataset loaders produce, or
uint8 in [0, 255]), one channel or three, any size: the MLP averages colour to grey and
resizes to 28x28, the convnet repeats grey to RGB and resizes to 32x32.
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

from . import convnet

__all__ = ["Recipe", "Classifier", "RECIPES", "DOMAIN_DATASETS", "cache_dir", "train_classifier",
           "load_classifier", "prepare"]

FORMAT = "wganx-classifier-1"
SIZE = 28


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the trained weights (together with the data)."""

    model: str = "mlp"  # "mlp" (grey 28x28) or "convnet" (RGB 32x32)
    hidden: tuple = (256, 128)  # the MLP's widths; the convnet's one dense layer
    channels: tuple = ()  # the convnet's convolution widths
    epochs: int = 8
    batch_size: int = 128
    lr: float = 1e-3
    final_lr: float = 5e-5  # cosine decay from lr to this over the epochs
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    flip: bool = False  # random horizontal flips of the training batches
    seed: int = 0


COLOUR = Recipe(model="convnet", channels=(32, 64, 128), hidden=(128,), epochs=12, flip=True)
RECIPES = {"mnist": Recipe(epochs=6), "fashion-mnist": Recipe(epochs=10), "cifar10": COLOUR, "folder": COLOUR}
#: image datasets that have a domain classifier (a folder: when its subfolders are classes)
DOMAIN_DATASETS = tuple(RECIPES)
#: the held-out share of a labelled folder without a test/ split, for the test accuracy
FOLDER_TEST_EVERY = 10


def cache_dir() -> Path:
    """``$WGANX_CACHE_DIR/classifiers``, else ``~/.cache/wganx/classifiers``."""
    root = os.environ.get("WGANX_CACHE_DIR")
    base = Path(root).expanduser() if root else Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "wganx"
    return base / "classifiers"


# ------------------------------------------------------------------------------ inputs

def _nchw(images) -> np.ndarray:
    """Images as float32 NCHW in [-1, 1], checked."""
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
    return x


def prepare(images, model: str = "mlp") -> np.ndarray:
    """Images -> the model's input: ``(N, 784)`` grey 28x28 for the MLP, ``(N, 32, 32, 3)``
    RGB channels-last for the convnet; float32 in [-1, 1]."""
    x = _nchw(images)
    if model == "convnet":
        if x.shape[1] == 1:
            x = np.repeat(x, 3, axis=1)
        if x.shape[-2:] != (convnet.SIZE, convnet.SIZE):
            x = np.stack([_resize(x[:, c], convnet.SIZE) for c in range(3)], axis=1)
        return np.ascontiguousarray(np.clip(x, -1.0, 1.0).transpose(0, 2, 3, 1))
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

def _mlp_init(recipe: Recipe, rng: np.random.Generator, classes: int) -> Dict[str, np.ndarray]:
    dims = (SIZE * SIZE,) + tuple(recipe.hidden) + (classes,)
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        params[f"W{i}"] = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)  # He
        params[f"b{i}"] = np.zeros(b, np.float32)
    return params


def _layers(params) -> int:
    return sum(1 for k in params if k.startswith("W"))


def _mlp_forward(params, x, keep=False):
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


def _mlp_features(params, x):
    h = x
    for i in range(_layers(params) - 1):
        h = np.maximum(h @ params[f"W{i}"] + params[f"b{i}"], 0)
    return h


def _mlp_backward(params, acts, g):
    grads = {}
    for i in range(_layers(params) - 1, -1, -1):
        grads[f"W{i}"] = acts[i].T @ g
        grads[f"b{i}"] = g.sum(axis=0)
        if i > 0:
            g = g @ params[f"W{i}"].T
            g *= acts[i] > 0
    return grads


class _Model:
    """One classifier architecture: its input preparation, initialisation, passes."""

    def __init__(self, name, init, forward, features, backward):
        self.name, self.init, self.forward, self.features, self.backward = name, init, forward, features, backward

    def prepare(self, images):
        return prepare(images, self.name)


MODELS = {
    "mlp": _Model("mlp", _mlp_init, _mlp_forward, _mlp_features, _mlp_backward),
    "convnet": _Model("convnet", lambda r, rng, classes: convnet.init(tuple(r.channels), r.hidden[0], classes, rng),
                      convnet.forward, convnet.features, convnet.backward),
}


def _softmax(logits):
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class Classifier:
    """A trained classifier; see the module docstring."""

    def __init__(self, params: Dict[str, np.ndarray], meta: Optional[dict] = None):
        self.params = {k: np.asarray(v, np.float32) for k, v in params.items()}
        self.meta = dict(meta or {})
        self.model = MODELS[self.meta.get("recipe", {}).get("model", "mlp")]

    @property
    def test_accuracy(self) -> float:
        return float(self.meta.get("test_accuracy", float("nan")))

    @property
    def description(self) -> str:
        return f"{self.meta.get('dataset', 'domain')} numpy {self.model.name} classifier"

    @property
    def feature_dim(self) -> int:
        return self.params["fc1/W" if self.model.name == "convnet" else f"W{_layers(self.params) - 1}"].shape[0]

    def _run(self, images, batch_size: int, what: str) -> np.ndarray:
        outs = []
        for start in range(0, len(images), batch_size):
            x = self.model.prepare(images[start:start + batch_size])
            outs.append(self.model.features(self.params, x) if what == "features"
                        else self.model.forward(self.params, x))
        return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)

    def features(self, images, batch_size: int = 1000) -> np.ndarray:
        """Penultimate-layer activations ``(N, 128)``."""
        return self._run(images, batch_size, "features")

    def logits(self, images, batch_size: int = 1000) -> np.ndarray:
        return self._run(images, batch_size, "logits")

    def predict_proba(self, images, batch_size: int = 1000) -> np.ndarray:
        """Softmax probabilities ``(N, classes)`` (float64, rows sum to 1)."""
        return _softmax(self.logits(images, batch_size).astype(np.float64))

    def predict(self, images, batch_size: int = 1000) -> np.ndarray:
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
    """Train the recipe's model with Adam (cosine learning-rate decay) and softmax
    cross-entropy; batches are prepared as they are drawn (the images stay as given).

    Deterministic for a given recipe (seed included), data and BLAS thread count: every
    random number (initialisation, epoch order, flips) comes from ``numpy.random.default_rng(seed)``.
    """
    if recipe.model not in MODELS:
        raise WganxError(f"unknown classifier model {recipe.model!r}; choose one of: {', '.join(MODELS)}")
    model = MODELS[recipe.model]
    x, y = x_train, np.asarray(y_train, np.int64)
    if len(x) != len(y) or len(x) < recipe.batch_size:
        raise WganxError(f"classifier training needs at least {recipe.batch_size} labelled images, "
                         f"got {len(x)} images and {len(y)} labels")
    rng = np.random.default_rng(recipe.seed)
    classes = int(y.max()) + 1
    params = model.init(recipe, rng, classes)
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    steps_per_epoch = len(x) // recipe.batch_size
    total = steps_per_epoch * recipe.epochs
    b1, b2, eps = recipe.beta1, recipe.beta2, 1e-8
    t = 0
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        order = rng.permutation(len(x))
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * recipe.batch_size:(s + 1) * recipe.batch_size])
            xb, yb = model.prepare(x[idx]), y[idx]
            if recipe.flip:  # the convnet's NHWC images, mirrored along W
                flip = rng.random(len(xb)) < 0.5
                xb[flip] = xb[flip, :, ::-1]
            logits, cache = model.forward(params, xb, keep=True)
            g = _softmax(logits)
            g[np.arange(len(yb)), yb] -= 1.0
            g /= np.float32(len(yb))
            grads = model.backward(params, cache, g)
            t += 1
            lr = recipe.final_lr + 0.5 * (recipe.lr - recipe.final_lr) * (1 + np.cos(np.pi * (t - 1) / total))
            corr = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            for k, p in params.items():
                gk = grads[k]
                if recipe.weight_decay and k.endswith("W"):
                    gk = gk + np.float32(recipe.weight_decay) * p
                m[k] *= np.float32(b1)
                m[k] += np.float32(1 - b1) * gk
                v[k] *= np.float32(b2)
                v[k] += np.float32(1 - b2) * gk * gk
                p -= np.float32(lr * corr) * m[k] / (np.sqrt(v[k]) + np.float32(eps))
        if log is not None:
            log(f"epoch {epoch + 1}/{recipe.epochs} ({time.perf_counter() - start:.1f} s)")
    meta = {"recipe": _recipe_dict(recipe), "train_samples": int(len(x)), "classes": classes,
            "train_seconds": round(time.perf_counter() - start, 2)}
    clf = Classifier(params, meta)
    if x_test is not None and y_test is not None:
        clf.meta["test_accuracy"] = clf.accuracy(x_test, y_test)
    return clf


def _recipe_dict(recipe: Recipe) -> dict:
    d = asdict(recipe)
    d["hidden"], d["channels"] = list(d["hidden"]), list(d["channels"])
    return d


def load_classifier(dataset: str, data_dir=None, *, cache: Optional[Path] = None, retrain: bool = False,
                    download: bool = False, log: Optional[Callable[[str], None]] = None) -> Classifier:
    """The cached classifier of ``dataset`` (``mnist``, ``fashion-mnist``, ``cifar10``, or a
    ``folder`` whose subfolders are classes), training and caching it first when needed on
    the dataset's train split and measuring it on the test split (a folder without ``test/``:
    every tenth image, held out)."""
    if dataset not in RECIPES:
        raise WganxError(f"no domain classifier for {dataset!r}; there is one for: {', '.join(RECIPES)}")
    recipe = RECIPES[dataset]
    name = dataset
    if dataset == "folder":
        from wganx_plugins.datasets import folder_signature

        name = f"folder-{folder_signature(data_dir)}"  # one classifier per folder and its contents
    path = Path(cache or cache_dir()) / f"{name}.safetensors"
    if path.is_file() and not retrain:
        clf = Classifier.load(path)
        if clf.meta.get("recipe") == _recipe_dict(recipe) and clf.meta.get("dataset") == name:
            return clf
    (x, y), (x_test, y_test) = _splits(dataset, data_dir, download)
    if log is not None:
        log(f"training the {dataset} domain classifier (once; cached in {path})")
    clf = train_classifier(x, y, recipe, x_test, y_test, log=log)
    clf.meta["dataset"] = name
    clf.save(path)
    return clf


def _splits(dataset: str, data_dir, download: bool) -> tuple:
    """``((x, labels), (x_test, labels_test))`` to train and measure ``dataset``'s classifier."""
    from wganx_plugins.datasets import load_split

    size = convnet.SIZE if dataset == "folder" else None  # a folder's images may differ in size
    train = load_split(dataset, data_dir, "train", size, download)
    if train.labels is None:
        raise WganxError(f"{dataset} {data_dir}: a domain classifier needs labels, and the images have none "
                         "(put them in one subfolder per class), or use --features inception")
    if dataset == "folder" and not (Path(data_dir).expanduser() / "test").is_dir():
        held = np.zeros(len(train.labels), bool)
        held[::FOLDER_TEST_EVERY] = True
        return (train.x[~held], train.labels[~held]), (train.x[held], train.labels[held])
    test = load_split(dataset, data_dir, "test", size, download)
    return (train.x, train.labels), (test.x, test.labels)
