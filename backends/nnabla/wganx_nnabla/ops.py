"""The neutral ops (:class:`wganx.ops.Ops`) on ``nn.Variable``, built into static graphs.

NNabla's arithmetic does not broadcast operands of different rank, which the neutral
programs rely on (a scalar minus an image batch); tensors therefore travel through the
programs wrapped in :class:`Tensor`, whose operators align ranks first.
"""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import numpy as np

from wganx.ops import Ops, check_pad, unknown_interpolation


def _v(x):
    """The ``nn.Variable`` behind a :class:`Tensor` (or the variable itself)."""
    return x.v if isinstance(x, Tensor) else x


def _align(a, b):
    """Reshape the lower-rank operand so both have one rank (numpy-style broadcasting)."""
    da, db = a.ndim, b.ndim
    if da < db:
        a = F.reshape(a, (1,) * (db - da) + tuple(a.shape), inplace=False)
    elif db < da:
        b = F.reshape(b, (1,) * (da - db) + tuple(b.shape), inplace=False)
    return a, b


class Tensor:
    """An ``nn.Variable`` with numpy broadcasting for ``+ - * /`` (graph-building time only)."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    @property
    def shape(self):
        return tuple(self.v.shape)

    def _bin(self, other, fn, scalar_fn):
        if isinstance(other, (int, float, np.floating, np.integer)):
            return Tensor(scalar_fn(self.v, float(other)))
        a, b = _align(self.v, _v(other))
        return Tensor(fn(a, b))

    def _rbin(self, other, fn, scalar_fn):
        if isinstance(other, (int, float, np.floating, np.integer)):
            return Tensor(scalar_fn(self.v, float(other)))
        a, b = _align(_v(other), self.v)
        return Tensor(fn(a, b))

    def __add__(self, o):
        return self._bin(o, F.add2, F.add_scalar)

    def __radd__(self, o):
        return self._rbin(o, F.add2, F.add_scalar)

    def __sub__(self, o):
        return self._bin(o, F.sub2, lambda x, c: F.add_scalar(x, -c))

    def __rsub__(self, o):
        return self._rbin(o, F.sub2, F.r_sub_scalar)

    def __mul__(self, o):
        return self._bin(o, F.mul2, F.mul_scalar)

    def __rmul__(self, o):
        return self._rbin(o, F.mul2, F.mul_scalar)

    def __truediv__(self, o):
        return self._bin(o, F.div2, lambda x, c: F.mul_scalar(x, 1.0 / c))

    def __rtruediv__(self, o):
        return self._rbin(o, F.div2, F.r_div_scalar)

    def __neg__(self):
        return Tensor(F.mul_scalar(self.v, -1.0))

    def __pow__(self, e):
        return Tensor(F.pow_scalar(self.v, float(e)))


def _per_channel(p, ndim):
    """A ``(C,)`` norm parameter as ``(1, C, 1, ...)`` for an ``ndim``-D input.

    A leaf (a parameter) becomes an unlinked view sharing data and gradient, which batch
    norm needs for its running statistics (updated in place, no parent allowed); a computed
    value is reshaped in the graph.
    """
    v = _v(p)
    shape = (1, v.shape[0]) + (1,) * (ndim - 2)
    if v.parent is None:
        view = v.reshape(shape, unlink=True)
        view.need_grad = v.need_grad
        return view
    return F.reshape(v, shape, inplace=False)


def _slice(v, axis, start, stop):
    begin, end = [0] * v.ndim, list(v.shape)
    begin[axis], end[axis] = start, stop
    return F.slice(v, begin, end, [1] * v.ndim)


def _mirrored(v, axis, before, after):
    """The pieces of a reflect pad along ``axis``: ``x[before], ..., x[1], x, x[-2], ...``,
    one-wide slices (``F.flip`` has no double backward either)."""
    def row(i):
        return _slice(v, axis, i, i + 1)

    size = v.shape[axis]
    return [row(i) for i in range(before, 0, -1)] + [v] + [row(size - 2 - k) for k in range(after)]


def _axes(axes):
    return None if axes is None else [int(a) for a in axes]


class NNablaOps(Ops):
    name = "nnabla"

    def __init__(self):
        # grad_scale: under mixed precision, a () variable holding the loss scale, fed every
        # step; deferred: the defer_update pairs of the graph being built
        super().__init__()
        self.comm = None  # data-parallel: the communicator synchronised batch norm reduces over

    def conv2d(self, x, w, b=None, *, stride=1, pad=0):
        return Tensor(F.convolution(_v(x), _v(w), None if b is None else _v(b),
                                    pad=(pad, pad), stride=(stride, stride)))

    def deconv2d(self, x, w, b=None, *, stride=1, pad=0):
        return Tensor(F.deconvolution(_v(x), _v(w), None if b is None else _v(b),
                                      pad=(pad, pad), stride=(stride, stride)))

    def affine(self, x, w, b=None):
        return Tensor(F.affine(_v(x), _v(w), None if b is None else _v(b), base_axis=1))

    def embedding(self, labels, w):
        return Tensor(F.embed(_v(labels), _v(w)))

    def interpolate(self, x, scale, mode):
        if mode == "nearest":
            return Tensor(F.interpolate(_v(x), scale=(scale, scale), mode="nearest", align_corners=False))
        if mode in ("linear", "bilinear"):  # "linear": the NNabla example's call, NNabla's defaults
            return Tensor(F.interpolate(_v(x), scale=(scale, scale), mode="linear",
                                        align_corners=False, half_pixel=mode == "bilinear"))
        raise unknown_interpolation(mode)

    def unpool(self, x, kernel):
        return Tensor(F.unpooling(_v(x), (kernel, kernel)))

    def avg_pool(self, x, kernel):
        return Tensor(F.average_pooling(_v(x), (kernel, kernel)))

    def batch_norm(self, x, gamma, beta, mean, var, *, training, decay=0.9, eps=1e-5):
        # NNabla updates the running variance with the unbiased batch variance, as the
        # contract asks (checked against PyTorch in the parity suite).
        x = _v(x)
        nd = x.ndim
        stats = (_per_channel(beta, nd), _per_channel(gamma, nd), _per_channel(mean, nd), _per_channel(var, nd))
        if training and self.sync_batch_norm and self.comm is not None:
            return Tensor(F.sync_batch_normalization(x, *stats, self.comm, group="world", axes=[1],
                                                     decay_rate=decay, eps=eps, batch_stat=True))
        return Tensor(F.batch_normalization(x, *stats, axes=[1], decay_rate=decay, eps=eps, batch_stat=training))

    def _normalize(self, x, axes, gamma, beta, eps):
        # Composed from means: F.layer_normalization wants (1, C, H, W) scales, and the
        # composition has double backward for every input-gradient penalty.
        x = _v(x)
        mu = F.mean(x, axis=axes, keepdims=True)
        d = F.sub2(x, mu)
        var = F.mean(F.mul2(d, d), axis=axes, keepdims=True)
        y = F.mul2(d, F.pow_scalar(F.add_scalar(var, eps), -0.5))
        return Tensor(F.add2(F.mul2(y, _per_channel(gamma, x.ndim)), _per_channel(beta, x.ndim)))

    def layer_norm(self, x, gamma, beta, *, eps=1e-5):
        return self._normalize(x, list(range(1, _v(x).ndim)), gamma, beta, eps)

    def instance_norm(self, x, gamma, beta, *, eps=1e-5):
        return self._normalize(x, list(range(2, _v(x).ndim)), gamma, beta, eps)

    def relu(self, x):
        return Tensor(F.relu(_v(x)))

    def leaky_relu(self, x, slope):
        return Tensor(F.leaky_relu(_v(x), alpha=slope))

    def tanh(self, x):
        return Tensor(F.tanh(_v(x)))

    def sigmoid(self, x):
        return Tensor(F.sigmoid(_v(x)))

    def softplus(self, x):
        return Tensor(F.softplus(_v(x)))  # max(x, 0) + log1p(exp(-|x|)): stable

    def sqrt(self, x):
        return Tensor(F.pow_scalar(_v(x), 0.5))

    def abs(self, x):
        v = _v(x)  # F.abs has derivative 1 at 0; the contract's is 0 (relu's at 0 is)
        return Tensor(F.relu(v) + F.relu(-v))

    def maximum(self, x, value):
        return Tensor(F.maximum_scalar(_v(x), float(value)))

    def flatten(self, x):
        v = _v(x)
        return Tensor(F.reshape(v, (v.shape[0], int(np.prod(v.shape[1:]))), inplace=False))

    def reshape(self, x, shape):
        return Tensor(F.reshape(_v(x), tuple(int(s) for s in shape), inplace=False))

    def concat(self, xs, axis):
        return Tensor(F.concatenate(*[_v(x) for x in xs], axis=axis))

    def transpose(self, x, perm):
        return Tensor(F.transpose(_v(x), [int(a) for a in perm]))

    def slice(self, x, axis, start, stop):
        return Tensor(_slice(_v(x), axis, start, stop))

    # flip: the base class's reversed slices; nn.grad has no double backward for F.flip
    # ("flip_backward is not implemented", NNabla 1.39)

    def pad(self, x, widths, mode="constant"):
        v = _v(x)
        full = check_pad(v.shape, widths, mode)
        if mode == "constant":
            return Tensor(F.pad(v, [p for w in full for p in w]))
        # nn.grad has no double backward for F.pad(mode="reflect"): mirrored slices instead
        for axis, (before, after) in enumerate(full):
            if before or after:
                v = F.concatenate(*_mirrored(v, axis, before, after), axis=axis)
        return Tensor(v)

    def depth_to_space(self, x, block):
        v = _v(x)
        n, c, h, w = v.shape
        c //= block * block
        y = F.reshape(v, (n, c, block, block, h, w), inplace=False)  # channel c * b * b + i * b + j
        y = F.transpose(y, (0, 1, 4, 2, 5, 3))  # (N, C, H, i, W, j)
        return Tensor(F.reshape(y, (n, c, h * block, w * block), inplace=False))

    def matmul(self, a, b):
        a, b = _v(a), _v(b)
        if a.ndim == 2:
            return Tensor(F.affine(a, b, base_axis=1))
        return Tensor(F.batch_matmul(a, b))

    def softmax(self, x, axis):
        return Tensor(F.softmax(_v(x), axis=axis))

    def sum(self, x, axes=None, keepdims=False):
        return Tensor(F.sum(_v(x), axis=_axes(axes), keepdims=keepdims))

    def mean(self, x, axes=None, keepdims=False):
        return Tensor(F.mean(_v(x), axis=_axes(axes), keepdims=keepdims))

    def shape(self, x):
        return tuple(_v(x).shape)

    def weight_rows(self, w):
        v = _v(w)
        return Tensor(F.reshape(v, (v.shape[0], -1), inplace=False))

    def defer_update(self, buffer, value):
        self.deferred.append((_v(buffer), _v(value)))

    def spectral_norm(self, w, u, **kw):
        return super().spectral_norm(Tensor(_v(w)), u, **kw)  # so that w / sigma broadcasts

    def stop_gradient(self, x):
        y = F.identity(_v(x))
        y.need_grad = False  # the example's x_fake.need_grad = False
        return Tensor(y)

    def input_grad(self, fn, x):
        xi = F.identity(_v(x))  # a fresh variable, so the gradient is w.r.t. this use only
        xi.need_grad = True
        y = fn(Tensor(xi))
        if self.grad_scale is None:
            (g,) = nn.grad([_v(y)], [xi])
            return y, Tensor(g)
        # mixed precision: differentiate the scaled output, unscale before any norm
        yv = _v(y)
        scale = F.reshape(self.grad_scale, (1,) * yv.ndim, inplace=False)
        (g,) = nn.grad([yv], [xi], grad_outputs=[F.broadcast(scale, yv.shape)])
        return y, Tensor(F.div2(g, F.reshape(self.grad_scale, (1,) * g.ndim, inplace=False)))
