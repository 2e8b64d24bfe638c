"""A small convolutional classifier in numpy: the domain feature extractor of colour images.

``conv3x3(c1) relu maxpool2 -> conv3x3(c2) relu maxpool2 -> conv3x3(c3) relu maxpool2 ->
affine(hidden) relu -> affine(10)`` on 32x32 RGB, channels last inside (the im2col layout
that makes each convolution one matrix product). The ``hidden`` ReLU activations are the
features of FID, KID and precision/recall; the softmax of the last layer gives the class
probabilities. Forward and backward are written out here (checked against central
differences in ``tests/test_evaluate.py``), so the features are the same whatever backend
produced the samples, and no framework is needed to measure them.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SIZE = 32


def init(channels: Tuple[int, ...], hidden: int, classes: int, rng: np.random.Generator,
         in_channels: int = 3) -> Dict[str, np.ndarray]:
    """He-initialised parameters: ``conv{i}/W`` as ``(9 * C_in, C_out)`` (rows ordered
    ``ky, kx, c``), ``fc{i}/W`` as ``(in, out)``."""
    params, c_in = {}, in_channels
    for i, c_out in enumerate(channels):
        params[f"conv{i}/W"] = (rng.standard_normal((9 * c_in, c_out)) * np.sqrt(2.0 / (9 * c_in))).astype(np.float32)
        params[f"conv{i}/b"] = np.zeros(c_out, np.float32)
        c_in = c_out
    flat = c_in * (SIZE >> len(channels)) ** 2
    for i, (a, b) in enumerate(((flat, hidden), (hidden, classes))):
        params[f"fc{i}/W"] = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
        params[f"fc{i}/b"] = np.zeros(b, np.float32)
    return params


def _convs(params) -> int:
    return sum(1 for k in params if k.startswith("conv") and k.endswith("/W"))


def _im2col(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N * H * W, 9 * C): the 3x3 neighbourhoods of a zero-padded input."""
    n, h, w, c = x.shape
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = sliding_window_view(padded, (3, 3), axis=(1, 2))  # (N, H, W, C, 3, 3)
    return np.ascontiguousarray(windows.transpose(0, 1, 2, 4, 5, 3)).reshape(n * h * w, 9 * c)


def _col2im(cols: np.ndarray, shape: tuple) -> np.ndarray:
    """The adjoint of :func:`_im2col`: sums each neighbourhood's entries back into the input."""
    n, h, w, c = shape
    cols = cols.reshape(n, h, w, 3, 3, c)
    padded = np.zeros((n, h + 2, w + 2, c), cols.dtype)
    for ky in range(3):
        for kx in range(3):
            padded[:, ky:ky + h, kx:kx + w, :] += cols[:, :, :, ky, kx, :]
    return padded[:, 1:-1, 1:-1, :]


def _relu_pool(y: np.ndarray) -> tuple:
    """ReLU then 2x2 max pooling of ``y``; returns the output and, for the backward pass, where
    the gradient flows: the positive maxima. (A tie between two positive maxima, which float
    data all but never has, would pass the gradient to both; tied zeros pass none, as ReLU's
    gradient there is zero.)"""
    n, h, w, c = y.shape
    blocks = y.reshape(n, h // 2, 2, w // 2, 2, c)
    out = np.maximum(blocks.max(axis=(2, 4)), 0)
    gate = (blocks == out[:, :, None, :, None, :]) & (blocks > 0)
    return out, gate


def forward(params, x: np.ndarray, keep: bool = False):
    """Logits of NHWC images, and (``keep``) what :func:`backward` needs."""
    caches, h = [], x
    for i in range(_convs(params)):
        cols = _im2col(h)
        y = (cols @ params[f"conv{i}/W"] + params[f"conv{i}/b"]).reshape(h.shape[:3] + (-1,))
        pooled, gate = _relu_pool(y)
        if keep:
            caches.append((cols, h.shape, gate))
        h = pooled
    flat = h.reshape(len(h), -1)
    hidden = np.maximum(flat @ params["fc0/W"] + params["fc0/b"], 0)
    logits = hidden @ params["fc1/W"] + params["fc1/b"]
    return (logits, (caches, h.shape, flat, hidden)) if keep else logits


def features(params, x: np.ndarray) -> np.ndarray:
    """The ``hidden`` ReLU activations (the penultimate layer) of NHWC images."""
    h = x
    for i in range(_convs(params)):
        h = _relu_pool((_im2col(h) @ params[f"conv{i}/W"] + params[f"conv{i}/b"]).reshape(h.shape[:3] + (-1,)))[0]
    return np.maximum(h.reshape(len(h), -1) @ params["fc0/W"] + params["fc0/b"], 0)


def backward(params, cache, dlogits: np.ndarray) -> Dict[str, np.ndarray]:
    """Gradients of every parameter, given ``d loss / d logits``."""
    caches, pooled_shape, flat, hidden = cache
    grads = {"fc1/W": hidden.T @ dlogits, "fc1/b": dlogits.sum(axis=0)}
    d = (dlogits @ params["fc1/W"].T) * (hidden > 0)
    grads["fc0/W"], grads["fc0/b"] = flat.T @ d, d.sum(axis=0)
    d = (d @ params["fc0/W"].T).reshape(pooled_shape)
    for i in range(len(caches) - 1, -1, -1):
        cols, shape, gate = caches[i]
        n, h, w, _ = shape
        dy = (gate * d[:, :, None, :, None, :]).reshape(n * h * w, -1)  # back through the pool and ReLU
        grads[f"conv{i}/W"], grads[f"conv{i}/b"] = cols.T @ dy, dy.sum(axis=0)
        if i > 0:
            d = _col2im(dy @ params[f"conv{i}/W"].T, shape)
    return grads
