"""The neutral ops (:class:`wganx.ops.Ops`) on torch tensors, NCHW as the contract says;
on the CPU in float32, convolutions run channels-last (oneDNN's layout), which is invisible
to the programs."""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from wganx.ops import Ops, check_pad, linear_phases, unknown_interpolation


def _linear_axis(x, k, dim, mode):
    """Linear upsampling by ``k`` along ``dim`` (see :func:`wganx.ops.linear_phases`), made of
    slices and weighted sums, so autograd differentiates it to any order."""
    prev = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, x.shape[dim] - 1)], dim)
    nxt = torch.cat([x.narrow(dim, 1, x.shape[dim] - 1), x.narrow(dim, x.shape[dim] - 1, 1)], dim)
    phases = [x if d == 0 else (x * (1 - d) + nxt * d if d > 0 else x * (1 + d) - prev * d)
              for d in linear_phases(k, mode)]
    shape = list(x.shape)
    shape[dim] *= k
    return torch.stack(phases, dim + 1).reshape(shape)


class TorchOps(Ops):
    name = "torch"

    def __init__(self, channels_last: bool = False):
        super().__init__()  # grad_scale, deferred (applied when a step ends)
        # oneDNN convolves NHWC without reordering each operand; element-wise ops, pooling and
        # batch norm keep the layout, so convolutions chain in it (measured 1.2-1.5x faster
        # for the NNabla example's model on the CPU: docs/results/speed.md). Values stay NCHW-indexed.
        self.layout = torch.channels_last if channels_last else torch.contiguous_format

    def conv2d(self, x, w, b=None, *, stride=1, pad=0):
        return F.conv2d(x.contiguous(memory_format=self.layout), w, b, stride=stride, padding=pad)

    def deconv2d(self, x, w, b=None, *, stride=1, pad=0):
        return F.conv_transpose2d(x.contiguous(memory_format=self.layout), w, b, stride=stride, padding=pad)

    def affine(self, x, w, b=None):
        x = torch.flatten(x, 1)
        return x @ w if b is None else torch.addmm(b, x, w)  # one fused kernel

    def embedding(self, labels, w):
        return F.embedding(labels, w)

    def interpolate(self, x, scale, mode):
        if mode == "nearest":
            return F.interpolate(x, scale_factor=scale, mode="nearest")
        if mode == "bilinear":
            return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        if mode == "linear":  # PyTorch has no such mode: shift-and-average along W, then H
            return _linear_axis(_linear_axis(x, int(scale), 3, mode), int(scale), 2, mode)
        raise unknown_interpolation(mode)

    def unpool(self, x, kernel):
        return x.repeat_interleave(kernel, dim=2).repeat_interleave(kernel, dim=3)

    def avg_pool(self, x, kernel):
        return F.avg_pool2d(x, kernel)

    def batch_norm(self, x, gamma, beta, mean, var, *, training, decay=0.9, eps=1e-5):
        if training and self.sync_batch_norm:
            return self._sync_batch_norm(x, gamma, beta, mean, var, decay, eps)
        return F.batch_norm(x, mean, var, gamma, beta, training=training, momentum=1.0 - decay, eps=eps)

    def _sync_batch_norm(self, x, gamma, beta, mean, var, decay, eps):
        """Batch norm over the global batch: two differentiable all-reduces (the sum, then the
        centred squares; ``torch.distributed.nn``'s backward all-reduces the gradient), the
        running statistics updated as ``F.batch_norm`` does (unbiased variance)."""
        axes = [0] + list(range(2, x.dim()))
        count = x.numel() // x.shape[1] * torch.distributed.get_world_size()
        xs = x.float() if x.dtype == torch.float16 else x
        m = _global_sum(xs.sum(axes)) / count
        centred = xs - _per_channel(m, xs)
        v = _global_sum((centred * centred).sum(axes)) / count
        with torch.no_grad():
            mean.mul_(decay).add_(m.detach().to(mean.dtype), alpha=1.0 - decay)
            var.mul_(decay).add_(v.detach().to(var.dtype) * (count / max(count - 1, 1)), alpha=1.0 - decay)
        y = centred * _per_channel(torch.rsqrt(v + eps), xs) * _per_channel(gamma, xs) + _per_channel(beta, xs)
        return y.to(x.dtype)

    def layer_norm(self, x, gamma, beta, *, eps=1e-5):
        y = F.layer_norm(x, x.shape[1:], eps=eps)
        return y * _per_channel(gamma, x) + _per_channel(beta, x)

    def instance_norm(self, x, gamma, beta, *, eps=1e-5):
        return F.instance_norm(x, weight=gamma, bias=beta, eps=eps)

    def relu(self, x):
        return F.relu(x)

    def leaky_relu(self, x, slope):
        return F.leaky_relu(x, slope)

    def tanh(self, x):
        return torch.tanh(x)

    def sigmoid(self, x):
        return torch.sigmoid(x)

    def softplus(self, x):
        return F.softplus(x)

    def sqrt(self, x):
        return torch.sqrt(x)

    def abs(self, x):
        return torch.abs(x)

    def maximum(self, x, value):
        return torch.clamp_min(x, value)

    def flatten(self, x):
        return torch.flatten(x, 1)

    def reshape(self, x, shape):
        return torch.reshape(x, tuple(shape))

    def concat(self, xs, axis):
        return torch.cat(list(xs), dim=axis)

    def transpose(self, x, perm):
        return x.permute(*perm)

    def slice(self, x, axis, start, stop):
        return x.narrow(axis, start, stop - start)

    def flip(self, x, axis):
        return torch.flip(x, (int(axis),))

    def pad(self, x, widths, mode="constant"):
        flat = [v for w in reversed(check_pad(x.shape, widths, mode)) for v in w]  # last axis first
        if mode == "constant":
            return F.pad(x, flat)
        return F.pad(x, flat[:4], mode="reflect")  # reflect pads H and W only (checked)

    def depth_to_space(self, x, block):
        return F.pixel_shuffle(x, block)

    def matmul(self, a, b):
        return torch.matmul(a, b)

    def softmax(self, x, axis):
        return torch.softmax(x, dim=axis)

    def sum(self, x, axes=None, keepdims=False):
        return torch.sum(x) if axes is None else torch.sum(x, dim=tuple(axes), keepdim=keepdims)

    def mean(self, x, axes=None, keepdims=False):
        return torch.mean(x) if axes is None else torch.mean(x, dim=tuple(axes), keepdim=keepdims)

    def shape(self, x):
        return tuple(x.shape)

    def weight_rows(self, w):
        return w.reshape(w.shape[0], -1)

    def defer_update(self, buffer, value):
        self.deferred.append((buffer, value.detach()))

    def stop_gradient(self, x):
        return x.detach()

    def no_grad(self):
        return torch.no_grad()

    def input_grad(self, fn, x):
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        y = fn(x)
        total = y.float().sum()
        if self.grad_scale is not None:  # mixed precision: scale, differentiate, unscale
            (g,) = torch.autograd.grad(total * self.grad_scale, x, create_graph=True)
            return y, g.float() / self.grad_scale
        (g,) = torch.autograd.grad(total, x, create_graph=True)
        return y, g


def _global_sum(t):
    """The sum of ``t`` over the ranks, differentiable (its backward all-reduces the gradient)."""
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():  # deprecated for a private successor from torch 2.10 on
        warnings.filterwarnings("ignore", "torch.distributed.nn.functional", FutureWarning)
        return all_reduce(t)


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.dim() - 2))
