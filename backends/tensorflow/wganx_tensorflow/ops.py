"""The neutral ops (:class:`wganx.ops.Ops`) on TensorFlow tensors: NCHW semantics, NHWC
inside (:mod:`wganx_tensorflow.layout`)."""
from __future__ import annotations

import numpy as np

from wganx.ops import Ops, check_pad, linear_phases, unknown_interpolation

from .layout import TO_NCHW, TO_NHWC, nhwc_axis, is_image
from .replicas import all_reduce, assign, in_replica
from .runtime import tf


def _moments(x, axes, keepdims=False):
    """Mean and biased variance. Not ``tf.nn.moments``: it stops the gradient through the
    mean inside the variance, harmless for first derivatives but wrong for the second ones
    that gradient penalties take through layer and instance norm."""
    m = tf.reduce_mean(x, axes, keepdims=True)
    v = tf.reduce_mean(tf.square(x - m), axes, keepdims=keepdims)
    return (m if keepdims else tf.squeeze(m, axes)), v


def _static(dim):
    return dim if dim is not None else -1


def _nearest_up(x, h, w, k):
    @tf.custom_gradient
    def up(v):
        return tf.image.resize(v, [h * k, w * k], method="nearest"), lambda dy: _nearest_down(dy, h, w, k)
    return up(x)


def _nearest_down(dy, h, w, k):
    @tf.custom_gradient
    def down(d):
        y = tf.raw_ops.ResizeNearestNeighborGrad(grads=d, size=[h, w], align_corners=False, half_pixel_centers=True)
        return y, lambda dx: _nearest_up(dx, h, w, k)
    return down(dy)


class TensorFlowOps(Ops):
    """:class:`wganx.ops.Ops` on TensorFlow tensors; 4-D tensors are NHWC inside."""

    name = "tensorflow"

    def __init__(self):
        super().__init__()  # grad_scale, and deferred: the defer_update pairs of the step being traced
        self.compute_dtype = None  # mixed precision: tf.float16 for convolutions and matmuls
        self.update_stats = True  # False while tracing gradients(): batch norm leaves its stats

    # -- mixed precision ------------------------------------------------------------------
    def _low(self, *ts):
        if self.compute_dtype is None:
            return ts
        return tuple(tf.cast(t, self.compute_dtype) for t in ts)

    @staticmethod
    def _like(y, dtype):
        return y if y.dtype == dtype else tf.cast(y, dtype)

    @staticmethod
    def _bias(y, b):
        return y if b is None else tf.nn.bias_add(y, tf.cast(b, y.dtype))

    # -- layers ---------------------------------------------------------------------------
    def conv2d(self, x, w, b=None, *, stride=1, pad=0):
        """Zero padding as ``SAME`` where that is exactly it, else ``tf.pad`` and ``VALID``: the
        CPU kernels for an explicit padding list are the slow ones (the NNabla example's
        generator step took 43.5 ms with them, 27.3 ms without; Keras' loop 32.1 ms)."""
        xc, wc = self._low(x, w)
        k = int(w.shape[0])
        if pad and stride == 1 and int(w.shape[1]) == k and 2 * pad == k - 1:
            padding = "SAME"
        else:
            padding = "VALID"
            if pad:
                xc = tf.pad(xc, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        y = tf.nn.conv2d(xc, wc, strides=stride, padding=padding)
        return self._bias(self._like(y, x.dtype), b)

    def deconv2d(self, x, w, b=None, *, stride=1, pad=0):
        xc, wc = self._low(x, w)
        n = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
        h, wd = int(x.shape[1]), int(x.shape[2])
        kh, kw, out = int(w.shape[0]), int(w.shape[1]), int(w.shape[2])
        ho, wo = (h - 1) * stride + kh, (wd - 1) * stride + kw
        y = tf.nn.conv2d_transpose(xc, wc, tf.stack([n, ho, wo, out]), strides=stride, padding="VALID")
        if pad:
            y = y[:, pad:ho - pad, pad:wo - pad, :]
        return self._bias(self._like(y, x.dtype), b)

    def affine(self, x, w, b=None):
        x = self.flatten(x)
        xc, wc = self._low(x, w)
        return self._bias(self._like(tf.matmul(xc, wc), x.dtype), b)

    def embedding(self, labels, w):
        return tf.gather(w, labels)

    # -- resampling -----------------------------------------------------------------------
    @staticmethod
    def _repeat(x, k):
        """Each pixel repeated k x k: TensorFlow's nearest resize (for integer scales its
        half-pixel rule is exact repetition), measured 20-30% faster in the NNabla example's generator
        step than tile-and-reshape. The resize and its gradient op (block sums) are each
        other's adjoints; TensorFlow registers no gradient for the latter, so both are
        wrapped here, which makes the pair differentiable to any order."""
        _, h, w, _ = x.shape
        return _nearest_up(x, h, w, k)

    @staticmethod
    def _linear_axis(x, k, axis, mode):
        """Linear upsampling by ``k`` along ``axis`` (see :func:`wganx.ops.linear_phases`).

        Built from slices and weighted sums, so it is differentiable to any order (the
        ``ResizeBilinearGrad`` op has no gradient) and keeps float64 (``tf.image.resize``
        returns float32). ``bilinear`` equals ``tf.image.resize(method="bilinear")``,
        ``linear`` equals ``tf.compat.v1.image.resize_bilinear``.
        """
        size = int(x.shape[axis])
        first = tf.gather(x, [0], axis=axis)
        last = tf.gather(x, [size - 1], axis=axis)
        padded = tf.concat([first, x, last], axis=axis)
        begin = [0] * 4

        def window(start):
            b = list(begin)
            b[axis] = start
            s = [-1] * 4
            s[axis] = size
            return tf.slice(padded, b, s)

        prev, nxt = window(0), window(2)
        phases = [x if d == 0 else (x * (1.0 - d) + nxt * d if d > 0 else x * (1.0 + d) - prev * d)
                  for d in linear_phases(k, mode)]
        y = tf.stack(phases, axis=axis + 1)
        shape = [_static(s) for s in x.shape]
        shape[axis] = size * k
        shape[0] = -1
        return tf.reshape(y, shape)

    def interpolate(self, x, scale, mode):
        if mode == "nearest":
            return self._repeat(x, int(scale))
        if mode in ("linear", "bilinear"):
            return self._linear_axis(self._linear_axis(x, int(scale), 2, mode), int(scale), 1, mode)
        raise unknown_interpolation(mode)

    def unpool(self, x, kernel):
        return self._repeat(x, int(kernel))

    def avg_pool(self, x, kernel):
        return tf.nn.avg_pool2d(x, kernel, kernel, "VALID")

    # -- normalisation --------------------------------------------------------------------
    def batch_norm(self, x, gamma, beta, mean, var, *, training, decay=0.9, eps=1e-5):
        rank = x.shape.rank
        channel = rank - 1 if rank == 4 else 1
        axes = [a for a in range(rank) if a != channel]
        count = 1
        for a in axes:
            count *= int(x.shape[a])
        if training and self.sync_batch_norm and in_replica():
            m, v, count = self._global_moments(x, axes, count)
            self._update_stats(mean, var, m, v * (count / max(count - 1, 1)), decay)
        elif training and rank == 4 and x.dtype in (tf.float32, tf.float16):
            # One fused kernel (forward and backward) instead of a dozen elementwise ops: the
            # generator step of the NNabla example's model was 30% slower than Keras' without it. Its
            # batch variance output is already the unbiased one the running average uses.
            y, bm, bv = tf.compat.v1.nn.fused_batch_norm(x, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32),
                                                         epsilon=eps, data_format="NHWC", is_training=True)
            self._update_stats(mean, var, bm, bv, decay)
            return y
        elif training:
            m, v = _moments(x, axes)
            self._update_stats(mean, var, m, v * (count / max(count - 1, 1)), decay)
        else:
            m, v = tf.cast(mean, x.dtype), tf.cast(var, x.dtype)
        if rank != 4 and rank > 2:  # (N, C, L...): channels on axis 1
            shape = [1, -1] + [1] * (rank - 2)
            m, v = tf.reshape(m, shape), tf.reshape(v, shape)
            gamma, beta = tf.reshape(gamma, shape), tf.reshape(beta, shape)
        return (x - m) * tf.math.rsqrt(v + eps) * gamma + beta

    @staticmethod
    def _global_moments(x, axes, count):
        """Mean, biased variance and sample count of the global batch: the sum, then the centred
        squares, each all-reduced over the replicas (differentiably; two passes keep float32
        accurate)."""
        total = count * tf.distribute.get_replica_context().num_replicas_in_sync
        xs = tf.cast(x, tf.float32) if x.dtype == tf.float16 else x
        (s,) = all_reduce([tf.reduce_sum(xs, axes)], tf.distribute.ReduceOp.SUM)
        m = s / total
        rank = x.shape.rank
        centred = xs - (m if rank in (2, 4) else tf.reshape(m, [1, -1] + [1] * (rank - 2)))  # NHWC or (N, C)
        (q,) = all_reduce([tf.reduce_sum(centred * centred, axes)], tf.distribute.ReduceOp.SUM)
        return tf.cast(m, x.dtype), tf.cast(q / total, x.dtype), total

    def _update_stats(self, mean, var, batch_mean, batch_var, decay):
        """Running statistics, ``stat = decay stat + (1 - decay) batch`` (unbiased variance);
        data-parallel without synchronised statistics, the replicas' mean of the batch's, so
        every replica keeps the same running statistics."""
        if self.update_stats and hasattr(mean, "assign"):
            batch_mean, batch_var = all_reduce([tf.stop_gradient(batch_mean), tf.stop_gradient(batch_var)])
            assign(mean, decay * mean + (1.0 - decay) * tf.cast(batch_mean, mean.dtype))
            assign(var, decay * var + (1.0 - decay) * tf.cast(batch_var, var.dtype))

    def layer_norm(self, x, gamma, beta, *, eps=1e-5):
        m, v = _moments(x, list(range(1, x.shape.rank)), keepdims=True)
        return (x - m) * tf.math.rsqrt(v + eps) * gamma + beta

    def instance_norm(self, x, gamma, beta, *, eps=1e-5):
        m, v = _moments(x, [1, 2], keepdims=True)
        return (x - m) * tf.math.rsqrt(v + eps) * gamma + beta

    # -- elementwise ----------------------------------------------------------------------
    def relu(self, x):
        return tf.nn.relu(x)

    def leaky_relu(self, x, slope):
        if x.dtype == tf.float64:  # the op's alpha attribute is float32: 0.2 -> 0.2000000030
            return tf.where(x > 0, x, x * slope)
        return tf.nn.leaky_relu(x, alpha=slope)

    def tanh(self, x):
        return tf.tanh(x)

    def sigmoid(self, x):
        return tf.sigmoid(x)

    def softplus(self, x):
        return tf.nn.softplus(x)

    def sqrt(self, x):
        return tf.sqrt(x)

    def abs(self, x):
        return tf.abs(x)

    def maximum(self, x, value):  # tf.maximum's derivative is 1 at x == value; the contract's is 0
        return tf.where(x > value, x, tf.cast(value, x.dtype))

    # -- shapes and reductions ------------------------------------------------------------
    def flatten(self, x):
        if x.shape.rank == 2:
            return x
        if is_image(x):
            _, h, w, c = x.shape
            if not (h == 1 and w == 1) and c != 1:
                x = tf.transpose(x, TO_NCHW)
        return tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])

    def reshape(self, x, shape):
        if is_image(x):
            x = tf.transpose(x, TO_NCHW)
        shape = [int(s) if not isinstance(s, tf.Tensor) else s for s in shape]
        y = tf.reshape(x, shape)
        return tf.transpose(y, TO_NHWC) if len(shape) == 4 else y

    def concat(self, xs, axis):
        xs = list(xs)
        return tf.concat(xs, axis=nhwc_axis(xs[0], axis))

    def transpose(self, x, perm):
        perm = [int(a) for a in perm]
        if is_image(x) and len(perm) == 4:  # NHWC in and out: one permutation of the stored axes
            perm = [TO_NCHW[perm[k]] for k in TO_NHWC]
        return tf.transpose(x, perm)

    def slice(self, x, axis, start, stop):
        index = [slice(None)] * x.shape.rank
        index[nhwc_axis(x, axis)] = slice(start, stop)
        return x[tuple(index)]

    def flip(self, x, axis):
        return tf.reverse(x, [nhwc_axis(x, int(axis))])

    def pad(self, x, widths, mode="constant"):
        full = check_pad(self.shape(x), widths, mode)
        if is_image(x):
            full = [full[a] for a in TO_NHWC]
        return tf.pad(x, full, mode=mode.upper())

    def depth_to_space(self, x, block):
        _, h, w, c = x.shape
        c //= block * block
        y = tf.reshape(x, [-1, h, w, c, block, block])  # channel c * b * b + i * b + j
        y = tf.transpose(y, [0, 1, 4, 2, 5, 3])  # (N, H, i, W, j, C)
        return tf.reshape(y, [-1, h * block, w * block, c])

    def matmul(self, a, b):
        ac, bc = self._low(a, b)
        return self._like(tf.matmul(ac, bc), a.dtype)

    def softmax(self, x, axis):
        return tf.nn.softmax(x, axis=nhwc_axis(x, axis))

    def sum(self, x, axes=None, keepdims=False):
        if axes is None:
            return tf.reduce_sum(x)
        return tf.reduce_sum(x, axis=[nhwc_axis(x, a) for a in axes], keepdims=keepdims)

    def mean(self, x, axes=None, keepdims=False):
        if axes is None:
            return tf.reduce_mean(x)
        return tf.reduce_mean(x, axis=[nhwc_axis(x, a) for a in axes], keepdims=keepdims)

    def shape(self, x):
        dims = tuple(x.shape)
        if len(dims) == 4:
            n, h, w, c = dims
            return (n, c, h, w)
        return dims

    # -- autodiff -------------------------------------------------------------------------
    def weight_rows(self, w):
        if w.shape.rank == 4:  # conv HWIO, deconv [h, w, out, in]: the canonical first axis is last
            return tf.transpose(tf.reshape(w, [-1, w.shape[-1]]))
        return tf.reshape(w, [w.shape[0], -1])

    def defer_update(self, buffer, value):
        self.deferred.append((buffer, tf.stop_gradient(value)))

    def stop_gradient(self, x):
        return tf.stop_gradient(x)

    def input_grad(self, fn, x):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            y = fn(x)
            total = tf.reduce_sum(y)
            if self.grad_scale is not None:  # mixed precision: scale, differentiate, unscale
                total = total * tf.cast(self.grad_scale, total.dtype)
        g = tape.gradient(total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if self.grad_scale is not None:
            g = g / tf.cast(self.grad_scale, g.dtype)
        return y, g
