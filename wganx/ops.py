"""The neutral ops vocabulary that architectures, upsamplers, regularizers and losses use.

Each backend supplies one :class:`Ops` object. Semantics are NCHW: images are
``(N, C, H, W)``, conv weights OIHW, deconv weights IOHW, affine weights ``(in, out)``,
norm scales and biases ``(C,)``. A backend that computes in another layout (TensorFlow
runs NHWC on the CPU) translates inside its ops, so ``flatten`` gives the NCHW order
everywhere and the same weights give the same numbers on every backend.

Tensors support ``+ - * /`` with tensors and Python floats, unary ``-`` and ``**``
with a float exponent; everything else goes through these methods.
"""
from __future__ import annotations

import abc
import contextlib


INTERPOLATION_MODES = ("nearest", "linear", "bilinear")
PAD_MODES = ("constant", "reflect")


def linear_phases(scale: int, mode: str):
    """Linear upsampling by ``scale`` along one axis as a shift-and-average: output pixel
    ``i * scale + r`` is ``(1 - d) * x[i] + d * x[i + 1]`` (``d >= 0``) or
    ``(1 + d) * x[i] - d * x[i - 1]`` (``d < 0``) with neighbours beyond the border
    replicated, where ``d`` is the ``r``-th offset returned here.

    >>> from wganx.ops import linear_phases
    >>> linear_phases(2, "linear"), linear_phases(2, "bilinear")
    ([0.0, 0.5], [-0.25, 0.25])
    """
    if mode == "linear":
        return [r / scale for r in range(scale)]
    if mode == "bilinear":
        return [(r + 0.5) / scale - 0.5 for r in range(scale)]
    raise ValueError(f"unknown linear interpolation mode {mode!r}; choose one of: linear, bilinear")


def unknown_interpolation(mode: str) -> ValueError:
    return ValueError(f"unknown interpolation mode {mode!r}; choose one of: {', '.join(INTERPOLATION_MODES)}")


def check_pad(shape, widths, mode: str) -> list:
    """``widths`` as ``(before, after)`` pairs for every axis of ``shape`` (leading ones 0),
    after the checks every backend makes the same way."""
    if mode not in PAD_MODES:
        raise ValueError(f"unknown pad mode {mode!r}; choose one of: {', '.join(PAD_MODES)}")
    widths = [tuple(int(v) for v in w) for w in widths]
    if len(widths) > len(shape) or any(len(w) != 2 or min(w) < 0 for w in widths):
        raise ValueError(f"pad widths {widths} must be (before, after) pairs >= 0, at most one per axis of {shape}")
    full = [(0, 0)] * (len(shape) - len(widths)) + widths
    if mode == "reflect":
        for axis, (w, size) in enumerate(zip(full, shape)):
            if max(w) and (len(shape) != 4 or axis < 2 or max(w) >= size):
                raise ValueError(f"reflect pads only H and W of an image, by less than their size: {widths} on {shape}")
    return full


class Ops(abc.ABC):
    """The contract every backend's ops meet; the parity suite is its acceptance test."""

    name = "abstract"
    #: set by :meth:`wganx.backend.Backend.replicate`: batch norm in training mode takes the
    #: mean and variance of the global batch, over every replica (differentiably)
    sync_batch_norm = False

    def __init__(self):
        #: set by the session while it builds an objective under ``-t half`` (the step's
        #: :attr:`wganx.session.StepScalars.loss_scale`, a number or a scalar tensor), else
        #: None: :meth:`input_grad` multiplies the critic's output by it before
        #: differentiating and divides the input gradient by it after, so a float16 input
        #: gradient neither underflows nor reaches the penalty scaled
        self.grad_scale = None
        #: the ``(buffer, value)`` pairs :meth:`defer_update` collected for the step being
        #: built, in call order; the session writes them after the update
        #: (:meth:`wganx.session.Session._write_buffers`) and empties the list before the next
        #: objective. These two, and :attr:`sync_batch_norm`, are all the core and a session
        #: share with the ops; a backend may add private ones between its own classes.
        self.deferred = []

    # -- layers ---------------------------------------------------------------------------
    @abc.abstractmethod
    def conv2d(self, x, w, b=None, *, stride=1, pad=0):
        """2-D cross-correlation, ``w`` OIHW, symmetric zero padding ``pad``."""

    @abc.abstractmethod
    def deconv2d(self, x, w, b=None, *, stride=1, pad=0):
        """Transposed convolution, ``w`` IOHW; output ``(H - 1) * stride - 2 * pad + k``."""

    @abc.abstractmethod
    def affine(self, x, w, b=None):
        """``flatten(x) @ w + b`` with ``w`` of shape ``(in, out)``."""

    @abc.abstractmethod
    def embedding(self, labels, w):
        """Rows ``w[labels]`` of a ``(num_classes, dim)`` table; labels are int tensors."""

    # -- resampling -----------------------------------------------------------------------
    @abc.abstractmethod
    def interpolate(self, x, scale: int, mode: str):
        """Upsample H and W by an integer ``scale``; ``mode`` is one of :data:`INTERPOLATION_MODES`.

        ``"nearest"`` replicates pixels. The two linear modes differ in where an output pixel
        samples the input (clamped to the border), see :func:`linear_phases`:

        * ``"linear"``: output ``j`` samples input ``j / scale``. NNabla's
          ``F.interpolate(mode="linear")`` with its defaults (``align_corners=False,
          half_pixel=False``), as the NNabla WGAN-GP example calls it, and TensorFlow's
          ``tf.compat.v1.image.resize_bilinear``.
        * ``"bilinear"``: half-pixel centres, output ``j`` samples ``(j + 0.5) / scale - 0.5``.
          PyTorch's ``bilinear`` with ``align_corners=False``, ``tf.image.resize``'s
          ``bilinear`` and NNabla's ``half_pixel=True``.

        Both must be differentiable to second order: a penalty differentiates through them twice.
        """

    @abc.abstractmethod
    def unpool(self, x, kernel: int):
        """NNabla's ``F.unpooling``: each value replicated into a ``kernel`` x ``kernel`` block."""

    @abc.abstractmethod
    def avg_pool(self, x, kernel: int):
        """Average pooling with stride ``kernel``, borders that do not fit are dropped."""

    # -- normalisation --------------------------------------------------------------------
    @abc.abstractmethod
    def batch_norm(self, x, gamma, beta, mean, var, *, training: bool, decay=0.9, eps=1e-5):
        """Batch norm over all axes but 1 (channels / features).

        In training it normalises with the batch's biased variance and updates the running
        statistics in place: ``mean = decay * mean + (1 - decay) * batch_mean`` and
        ``var = decay * var + (1 - decay) * unbiased_batch_var`` (NNabla's and PyTorch's rule).
        """

    @abc.abstractmethod
    def layer_norm(self, x, gamma, beta, *, eps=1e-5):
        """Per sample over all of C, H, W: ``(x - mean) / sqrt(var + eps) * gamma + beta`` with
        the biased variance (divided by the count); ``gamma`` and ``beta`` are per channel ``(C,)``."""

    @abc.abstractmethod
    def instance_norm(self, x, gamma, beta, *, eps=1e-5):
        """Per sample and channel over H, W, as :meth:`layer_norm` computes (biased variance, eps
        inside the square root); ``gamma`` and ``beta`` ``(C,)``."""

    # -- elementwise ----------------------------------------------------------------------
    @abc.abstractmethod
    def relu(self, x):
        """``max(x, 0)``; its derivative at 0 is 0 (so are ``abs``'s at 0 and ``maximum``'s at a tie)."""

    @abc.abstractmethod
    def leaky_relu(self, x, slope: float): ...

    @abc.abstractmethod
    def tanh(self, x): ...

    @abc.abstractmethod
    def sigmoid(self, x): ...

    @abc.abstractmethod
    def softplus(self, x):
        """``log(1 + exp(x))``, computed stably."""

    @abc.abstractmethod
    def sqrt(self, x): ...

    @abc.abstractmethod
    def abs(self, x):
        """``|x|``; its derivative at 0 is 0."""

    @abc.abstractmethod
    def maximum(self, x, value: float):
        """Elementwise ``max(x, value)`` with a float; the derivative is 1 where ``x > value``
        and 0 elsewhere, at ``x == value`` included."""

    # -- shapes and reductions ------------------------------------------------------------
    @abc.abstractmethod
    def flatten(self, x):
        """``(N, ...) -> (N, prod(...))`` in NCHW order."""

    @abc.abstractmethod
    def reshape(self, x, shape):
        """Reshape with NCHW semantics; ``shape`` includes the batch axis."""

    @abc.abstractmethod
    def concat(self, xs, axis: int):
        """Concatenate along an NCHW axis."""

    @abc.abstractmethod
    def transpose(self, x, perm):
        """Permute NCHW axes, ``numpy.transpose`` semantics (``perm`` covers every axis)."""

    @abc.abstractmethod
    def slice(self, x, axis: int, start: int, stop: int):
        """``x[..., start:stop, ...]`` along one NCHW ``axis``; ``0 <= start < stop <= size``."""

    def flip(self, x, axis: int):
        """``x`` reversed along one NCHW ``axis`` (``numpy.flip``); a permutation, so its
        gradient is the flip of the incoming one, to any order. This default concatenates
        single slices in reverse order; a backend overrides it with its framework's own where
        that has a double backward (``torch.flip``, ``tf.reverse``; NNabla's ``F.flip`` has
        none, so NNabla keeps this default)."""
        size = self.shape(x)[axis]
        return self.concat([self.slice(x, axis, i, i + 1) for i in reversed(range(size))], axis)

    @abc.abstractmethod
    def pad(self, x, widths, mode: str = "constant"):
        """Pad the last ``len(widths)`` NCHW axes by ``(before, after)`` pairs.

        ``mode`` is one of :data:`PAD_MODES`: ``"constant"`` pads zeros, ``"reflect"``
        mirrors without repeating the border value (``numpy.pad``'s ``reflect``, PyTorch's
        ``ReflectionPad2d``); it pads only H and W of an image, by less than their size.
        """

    @abc.abstractmethod
    def depth_to_space(self, x, block: int):
        """``(N, C * b * b, H, W) -> (N, C, H * b, W * b)`` with PyTorch's ``pixel_shuffle``
        order (ONNX ``DepthToSpace`` mode ``CRD``): input channel ``c * b * b + i * b + j``
        becomes output pixel ``(h * b + i, w * b + j)`` of channel ``c``. TensorFlow's own
        ``tf.nn.depth_to_space`` orders channels the other way (``DCR``)."""

    @abc.abstractmethod
    def matmul(self, a, b):
        """Batched matrix product ``(B, M, K) @ (B, K, P) -> (B, M, P)`` (or 2-D by 2-D)."""

    @abc.abstractmethod
    def softmax(self, x, axis: int):
        """``exp(x) / sum(exp(x))`` along an NCHW ``axis``, computed stably."""

    @abc.abstractmethod
    def sum(self, x, axes=None, keepdims=False):
        """Sum over NCHW ``axes`` (all when None)."""

    @abc.abstractmethod
    def mean(self, x, axes=None, keepdims=False):
        """Mean over NCHW ``axes`` (all when None)."""

    @abc.abstractmethod
    def shape(self, x) -> tuple:
        """The NCHW shape as a tuple of ints."""

    # -- weights and state ----------------------------------------------------------------
    @abc.abstractmethod
    def weight_rows(self, w):
        """A conv, deconv or affine weight as a matrix of ``w``'s canonical first axis (O of
        OIHW, I of IOHW, in of affine) by everything else, columns in any order."""

    @abc.abstractmethod
    def defer_update(self, buffer, value):
        """Give the non-trainable parameter ``buffer`` the value ``value`` (no gradient) when
        the training step being computed ends. :meth:`wganx.session.Session.gradients` and
        inference drop deferred updates; so every call in one step reads the same ``buffer``,
        in whatever order a backend's graph runs them."""

    def spectral_norm(self, w, u, *, training: bool, iterations: int = 1, eps: float = 1e-12):
        """``w / sigma``, spectral normalisation (Miyato et al. 2018, Algorithm 1).

        ``sigma`` estimates the largest singular value of :meth:`weight_rows` ``W`` by power
        iteration from the stored vector ``u`` (a non-trainable ``(rows,)`` parameter, see
        :func:`wganx.params.spectral`): ``v = W^T u / |W^T u|``, ``u = W v / |W v|`` (each norm
        at least ``eps``), ``iterations`` times in training, then ``sigma = u^T W v`` with ``u``
        and ``v`` held constant in the gradient, as PyTorch's ``spectral_norm`` computes it.
        In training the new ``u`` is kept (:meth:`defer_update`): one power iteration per
        step, the paper's rule. Outside training ``u`` is used as stored and ``v`` follows
        from it.
        """
        rows = self.weight_rows(w)
        fixed = self.stop_gradient(rows)
        count = self.shape(u)[0]

        def normalized(x):
            return x / self.maximum(self.sqrt(self.sum(x * x)), eps)

        u_ = normalized(self.reshape(self.stop_gradient(u), (1, count)))
        v = normalized(self.matmul(u_, fixed))
        for i in range(iterations if training else 0):
            if i:
                v = normalized(self.matmul(u_, fixed))
            u_ = normalized(self.matmul(v, self.transpose(fixed, (1, 0))))
        if training:
            self.defer_update(u, self.reshape(u_, (count,)))
        return w / self.sum(self.matmul(u_, rows) * v)

    # -- autodiff -------------------------------------------------------------------------
    @abc.abstractmethod
    def stop_gradient(self, x):
        """``x`` in the forward pass, no gradient through it."""

    def no_grad(self):
        """A context in which nothing is recorded for differentiation.

        The critic step runs the generator inside it: recording that graph only to cut it
        with :meth:`stop_gradient` costs time and memory (measured in PyTorch: 5 to 15% of
        a critic step). Backends whose :meth:`stop_gradient` already prunes the graph
        (TensorFlow inside a tape, NNabla's ``need_grad=False``) keep this default.
        """
        return contextlib.nullcontext()

    @abc.abstractmethod
    def input_grad(self, fn, x):
        """``(fn(x), d sum(fn(x)) / dx)``, the gradient itself differentiable.

        This is the double backward behind every gradient penalty: PyTorch's
        ``autograd.grad(create_graph=True)``, a ``tf.GradientTape`` nested in the step's,
        NNabla's ``nn.grad`` in the static graph.
        """
