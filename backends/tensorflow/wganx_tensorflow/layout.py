"""NCHW semantics on NHWC tensors: the axis and weight layouts that cross the seam.

TensorFlow's CPU kernels only convolve NHWC, so every 4-D tensor inside this backend is an
NHWC image; weights live in TensorFlow's layouts (conv HWIO, transposed conv
``[h, w, out, in]``) and cross the seam as the canonical OIHW / IOHW numpy.
"""
from __future__ import annotations

import re

import numpy as np

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}
# Canonical OIHW (conv) and IOHW (deconv) both become TensorFlow's layout by one transpose:
# OIHW -> HWIO (tf.nn.conv2d) and IOHW -> HWOI (tf.nn.conv2d_transpose's [h, w, out, in]).
TO_TF_KERNEL = (2, 3, 1, 0)
FROM_TF_KERNEL = (3, 2, 0, 1)


def is_image(x) -> bool:
    return x.shape.rank == 4


def nhwc_axis(x, axis: int) -> int:
    rank = x.shape.rank
    axis = axis + rank if axis < 0 else axis
    return NCHW_TO_NHWC_AXIS[axis] if rank == 4 else axis


def variable_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)


def to_tf(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    return value.transpose(TO_TF_KERNEL) if value.ndim == 4 else value


def from_tf(value: np.ndarray) -> np.ndarray:
    return value.transpose(FROM_TF_KERNEL) if value.ndim == 4 else value


def to_tf_shape(shape) -> tuple:
    """A parameter's canonical shape -> its variable's (4-D kernels transposed)."""
    return tuple(shape[i] for i in TO_TF_KERNEL) if len(shape) == 4 else tuple(shape)
