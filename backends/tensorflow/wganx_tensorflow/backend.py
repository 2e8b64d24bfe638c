"""The TensorFlow backend: ops on NHWC tensors with NCHW semantics, steps as ``tf.function``.

TensorFlow's CPU kernels only convolve NHWC, so every 4-D tensor inside this backend is an
NHWC image; the ops translate the NCHW axes and shapes of :mod:`wganx.ops` (``flatten``
transposes back to NCHW first, so affine weights keep their canonical layout). Weights live
as ``tf.Variable`` in TensorFlow's layouts (conv HWIO, transposed conv ``[h, w, out, in]``)
and cross the seam as canonical OIHW / IOHW numpy. Each step is one ``tf.function`` traced
once from the program's input shapes, optionally compiled by XLA, with the optimizer update
of :mod:`wganx.optim` written out inside it. Gradient penalties nest a ``tf.GradientTape``
in the step's tape.

Data-parallel (:mod:`wganx.distributed`) on ``tf.distribute``: ``MirroredStrategy`` (the
local GPUs, or ``WGANX_TF_CPU_DEVICES`` logical CPUs) and ``MultiWorkerMirroredStrategy``
(one process per worker, ``TF_CONFIG``). Each replica steps on its slice of the global
batch, all-reduces the gradients (a mean) and applies the same update to its own copy of
every variable, so the copies never need a merge (a variable updated in-replica with
differing values would silently diverge). XLA stays off there: compiled replica functions
that touch variables fail on logical CPU devices.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")  # see wganx/__init__

# What TensorFlow's native code prints on a machine without a GPU, whatever
# TF_CPP_MIN_LOG_LEVEL says (absl writes it before its log level is read): not errors.
START_UP_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory|All log messages before absl::InitializeLog|"
    r"computation placer already registered|failed call to cuInit|Could not find cuda drivers|"
    r"oneDNN custom operations are on|cpu_feature_guard|To enable the following instructions")


@contextlib.contextmanager
def _quiet_start_up():
    """Hold back file descriptor 2 while TensorFlow starts, then pass on every line that
    is not known start-up noise; ``wganx -v`` (TF_CPP_MIN_LOG_LEVEL=0) shows everything."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().decode(errors="replace").splitlines() if not START_UP_NOISE.search(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


with _quiet_start_up():
    import tensorflow as tf  # noqa: E402

    tf.config.list_physical_devices("GPU")  # CUDA's initialisation message comes here

from typing import Dict, Optional  # noqa: E402

import numpy as np  # noqa: E402

from wganx.backend import Backend, Session  # noqa: E402
from wganx.distributed import (AUTO, SINGLE, TF_CPU_DEVICES_ENV as CPU_DEVICES_ENV, ReplicaLost, Replicas,  # noqa: E402
                               launched_by, replica_slice, tf_config)
from wganx.errors import BackendUnavailableError, WganxError, notice  # noqa: E402
from wganx.ops import Ops, check_pad, linear_phases, unknown_interpolation  # noqa: E402
from wganx.optim import parse_state_name, state_name  # noqa: E402
from wganx.algorithm import Program, critic_objective, ema_name, generator_objective, split_params  # noqa: E402

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}
# Canonical OIHW (conv) and IOHW (deconv) both become TensorFlow's layout by one transpose:
# OIHW -> HWIO (tf.nn.conv2d) and IOHW -> HWOI (tf.nn.conv2d_transpose's [h, w, out, in]).
TO_TF_KERNEL = (2, 3, 1, 0)
FROM_TF_KERNEL = (3, 2, 0, 1)

# "1"/"0" forces XLA on/off; unset picks the default measured faster for the device.
XLA_ENV = "WGANX_TF_XLA"


# One strategy per engine and process: a second one would reuse the first one's collective
# keys (measured: "shape mismatch in the collective instance 100"), and TensorFlow allows one
# MultiWorkerMirroredStrategy per process.
_STRATEGIES = {}


def _strategy(engine: str, make):
    if engine not in _STRATEGIES:
        _STRATEGIES[engine] = make()
    return _STRATEGIES[engine]


def _in_replica() -> bool:
    """Inside ``strategy.run`` of a real strategy (not TensorFlow's default one)."""
    return tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context()


def _assign(variable, value):
    """``variable = value``; inside a replica, on that replica's own copy. Every replica assigns
    the same value (made from reduced gradients or global statistics), so the copies stay
    equal without a cross-replica merge."""
    if _in_replica():
        tf.raw_ops.AssignVariableOp(resource=variable.handle, value=tf.cast(value, variable.dtype))
    else:
        variable.assign(tf.cast(value, variable.dtype))


def _all_reduce(values, op=None):
    """The replicas' mean (or ``op``) of each tensor in ``values``, differentiable; the values
    themselves outside a replica."""
    if not _in_replica():
        return list(values)
    return tf.distribute.get_replica_context().all_reduce(op or tf.distribute.ReduceOp.MEAN, list(values))


def _is_image(x) -> bool:
    return x.shape.rank == 4


def _axis(x, axis: int) -> int:
    rank = x.shape.rank
    axis = axis + rank if axis < 0 else axis
    return NCHW_TO_NHWC_AXIS[axis] if rank == 4 else axis


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
        self.grad_scale = None  # mixed precision: scale D before input gradients
        self.compute_dtype = None  # mixed precision: tf.float16 for convolutions and matmuls
        self.update_stats = True  # False while tracing gradients(): batch norm leaves its stats
        self.deferred = []  # (variable, value) of defer_update while a step is traced

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
        xc, wc = self._low(x, w)
        padding = [[0, 0], [pad, pad], [pad, pad], [0, 0]] if pad else "VALID"
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
        half-pixel rule is exact repetition), measured 20-30% faster in seed 000's generator
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
        if training and self.sync_batch_norm and _in_replica():
            m, v, count = self._global_moments(x, axes, count)
            self._update_stats(mean, var, m, v * (count / max(count - 1, 1)), decay)
        elif training and rank == 4 and x.dtype in (tf.float32, tf.float16):
            # One fused kernel (forward and backward) instead of a dozen elementwise ops: the
            # generator step of seed 000's model was 30% slower than Keras' without it. Its
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
        (s,) = _all_reduce([tf.reduce_sum(xs, axes)], tf.distribute.ReduceOp.SUM)
        m = s / total
        rank = x.shape.rank
        centred = xs - (m if rank in (2, 4) else tf.reshape(m, [1, -1] + [1] * (rank - 2)))  # NHWC or (N, C)
        (q,) = _all_reduce([tf.reduce_sum(centred * centred, axes)], tf.distribute.ReduceOp.SUM)
        return tf.cast(m, x.dtype), tf.cast(q / total, x.dtype), total

    def _update_stats(self, mean, var, batch_mean, batch_var, decay):
        """Running statistics, ``stat = decay stat + (1 - decay) batch`` (unbiased variance);
        data-parallel without synchronised statistics, the replicas' mean of the batch's, so
        every replica keeps the same running statistics."""
        if self.update_stats and hasattr(mean, "assign"):
            batch_mean, batch_var = _all_reduce([tf.stop_gradient(batch_mean), tf.stop_gradient(batch_var)])
            _assign(mean, decay * mean + (1.0 - decay) * tf.cast(batch_mean, mean.dtype))
            _assign(var, decay * var + (1.0 - decay) * tf.cast(batch_var, var.dtype))

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

    def maximum(self, x, value):
        return tf.maximum(x, tf.cast(value, x.dtype))

    # -- shapes and reductions ------------------------------------------------------------
    def flatten(self, x):
        if x.shape.rank == 2:
            return x
        if _is_image(x):
            _, h, w, c = x.shape
            if not (h == 1 and w == 1) and c != 1:
                x = tf.transpose(x, TO_NCHW)
        return tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])

    def reshape(self, x, shape):
        if _is_image(x):
            x = tf.transpose(x, TO_NCHW)
        shape = [int(s) if not isinstance(s, tf.Tensor) else s for s in shape]
        y = tf.reshape(x, shape)
        return tf.transpose(y, TO_NHWC) if len(shape) == 4 else y

    def concat(self, xs, axis):
        xs = list(xs)
        return tf.concat(xs, axis=_axis(xs[0], axis))

    def transpose(self, x, perm):
        perm = [int(a) for a in perm]
        if _is_image(x) and len(perm) == 4:  # NHWC in and out: one permutation of the stored axes
            perm = [TO_NCHW[perm[k]] for k in TO_NHWC]
        return tf.transpose(x, perm)

    def slice(self, x, axis, start, stop):
        index = [slice(None)] * x.shape.rank
        index[_axis(x, axis)] = slice(start, stop)
        return x[tuple(index)]

    def pad(self, x, widths, mode="constant"):
        full = check_pad(self.shape(x), widths, mode)
        if _is_image(x):
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
        return tf.nn.softmax(x, axis=_axis(x, axis))

    def sum(self, x, axes=None, keepdims=False):
        if axes is None:
            return tf.reduce_sum(x)
        return tf.reduce_sum(x, axis=[_axis(x, a) for a in axes], keepdims=keepdims)

    def mean(self, x, axes=None, keepdims=False):
        if axes is None:
            return tf.reduce_mean(x)
        return tf.reduce_mean(x, axis=[_axis(x, a) for a in axes], keepdims=keepdims)

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


def _variable_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-/]", "_", name)


def _to_tf(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    return value.transpose(TO_TF_KERNEL) if value.ndim == 4 else value


def _from_tf(value: np.ndarray) -> np.ndarray:
    return value.transpose(FROM_TF_KERNEL) if value.ndim == 4 else value


class TensorFlowBackend(Backend):
    """TensorFlow 2 on the CPU or an NVIDIA GPU (``cuda`` and ``cudnn`` both mean the GPU;
    TensorFlow always convolves with cuDNN there).

    Args:
        jit_compile: compile the steps with XLA; None reads ``WGANX_TF_XLA`` ("1"/"0"),
            else off (XLA measured about 15-50% slower on a 2-core CPU for seed 000's
            model at batch 64; not yet measured on a GPU).
        host_transpose: transpose NCHW images to NHWC with numpy before the step (True)
            or inside the compiled step (False, the default; the two measured within the
            noise of a shared 2-core CPU).
    """

    name = "tensorflow"
    #: how long a collective waits for the other workers before it fails
    collective_timeout_s = 600.0

    def __init__(self, context="cpu", device_id=0, type_config="float", *,
                 jit_compile: Optional[bool] = None, host_transpose: bool = False):
        super().__init__(context, device_id, type_config)
        if context == "cpu":
            if type_config == "half":
                raise BackendUnavailableError(
                    "-t half (mixed precision) needs -c cuda or -c cudnn with tensorflow")
            self.device = "/CPU:0"
        else:
            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                raise BackendUnavailableError(
                    f"-c {context} needs a GPU, but this tensorflow ({tf.__version__}) sees none; "
                    "install a CUDA build (pip install 'tensorflow[and-cuda]') on a machine with "
                    "an NVIDIA GPU")
            if device_id >= len(gpus):
                raise BackendUnavailableError(f"-d {device_id}: only {len(gpus)} GPU(s) visible")
            self.device = f"/GPU:{device_id}"
        self.dtype = tf.float64 if type_config == "double" else tf.float32
        if jit_compile is None:
            env = os.environ.get(XLA_ENV, "").strip().lower()
            if env in ("1", "true", "yes", "on"):
                jit_compile = True
            elif env in ("0", "false", "no", "off"):
                jit_compile = False
            else:  # measured slower on the CPU (seed 000 arch, batch 64); not measured on a GPU
                jit_compile = False
        self.jit_compile = bool(jit_compile)
        self.host_transpose = bool(host_transpose)
        self.ops = TensorFlowOps()
        self.strategy = None  # a tf.distribute strategy once replicate() joined one

    def set_threads(self, threads):
        try:  # setting the count the runtime already has is a no-op, another one raises
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            notice(f"TensorFlow's runtime started earlier in this process; --threads {threads} "
                   "applies to a new process")

    def _start_engine(self, engine):
        launch = launched_by()
        if engine == AUTO:
            if launch is None or launch[0] != "TF_CONFIG":
                return SINGLE
            engine = "multi-worker"
        try:
            if engine == "multi-worker":
                if not os.environ.get("TF_CONFIG"):
                    raise WganxError('--distribute multi-worker needs TF_CONFIG in each worker\'s environment, e.g. '
                                     '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                                     '"task": {"type": "worker", "index": 0}}')
                tf_config()  # a one-line error for malformed JSON
                options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=self.collective_timeout_s)
                self.strategy = _strategy(engine, lambda: tf.distribute.MultiWorkerMirroredStrategy(
                    communication_options=options))
                process, processes = (launch[2], launch[1]) if launch else (0, 1)
            else:
                self.strategy = _strategy((engine, self.context),
                                          lambda: tf.distribute.MirroredStrategy(self._mirrored_devices()))
                process, processes = 0, 1
        except (RuntimeError, ValueError) as exc:
            raise WganxError(f"--distribute {engine}: TensorFlow could not start it: {str(exc).splitlines()[0]}") from None
        local = len(self.strategy.extended.worker_devices)
        self.device = self.strategy.extended.worker_devices[0]
        return Replicas(size=self.strategy.num_replicas_in_sync, engine=engine, process=process,
                        processes=processes, first=process * local, local=local)

    def _mirrored_devices(self):
        """The local GPUs; on the CPU, ``WGANX_TF_CPU_DEVICES`` logical CPU devices (default 1)."""
        if self.context != "cpu":
            return [d.name for d in tf.config.list_logical_devices("GPU")]
        try:
            n = int(os.environ.get(CPU_DEVICES_ENV, "1"))
        except ValueError:
            raise WganxError(f"{CPU_DEVICES_ENV} must be a number of CPU devices, "
                             f"got {os.environ[CPU_DEVICES_ENV]!r}") from None
        if n > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            try:
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
            except RuntimeError:
                raise WganxError(f"{CPU_DEVICES_ENV}={n} must be set before TensorFlow's runtime starts "
                                 "in this process") from None
        return [d.name for d in tf.config.list_logical_devices("CPU")]

    def versions(self):
        return {"tensorflow": tf.__version__}

    def compile(self, program: Program, seed: int = 0) -> "TensorFlowSession":
        return TensorFlowSession(self, program, seed)


class TensorFlowSession(Session):
    def __init__(self, backend: TensorFlowBackend, program: Program, seed: int):
        self.backend, self.program, self.ops = backend, program, backend.ops
        self.device, self.dtype = backend.device, backend.dtype
        self.np_dtype = self.dtype.as_numpy_dtype
        self.half = backend.type_config == "half"
        self.host_transpose = backend.host_transpose
        self.clip = program.regularizer.clip
        self.strategy, self.replicas = backend.strategy, backend.replicas
        self.optim = {"generator": program.generator_optimizer, "critic": program.critic_optimizer}
        for cfg in self.optim.values():
            if cfg.kind not in ("adam", "rmsprop"):
                raise WganxError(f"unknown optimizer {cfg.kind!r}; choose one of: adam, rmsprop")
        self.params: Dict[str, tf.Variable] = {}
        self.trainable = {"generator": [], "critic": []}
        # data-parallel: one copy of each variable per replica (a MirroredVariable)
        with self.strategy.scope() if self.strategy else tf.device(self.device):
            for net, network in (("generator", program.arch.generator), ("critic", program.arch.critic)):
                for name, spec in sorted(network.params.items()):
                    full = f"{net}/{name}"
                    shape = tuple(spec.shape)
                    if len(shape) == 4:
                        shape = tuple(shape[i] for i in TO_TF_KERNEL)
                    self.params[full] = tf.Variable(tf.zeros(shape, self.dtype), trainable=spec.trainable,
                                                    name=_variable_name(full))
                    if spec.trainable:
                        self.trainable[net].append(full)
            self.slots = {net: {slot: [tf.Variable(tf.zeros_like(self.params[n]), trainable=False,
                                                   name=_variable_name(state_name(*n.split("/", 1), slot)))
                                       for n in names]
                                for slot in self.optim[net].slots()}
                          for net, names in self.trainable.items()}
            self.steps = {net: tf.Variable(0, dtype=tf.int64, trainable=False,
                                           name=state_name(net)) for net in self.trainable}
            self.loss_scale = (tf.Variable(2.0 ** 16, dtype=tf.float32, trainable=False, name="loss_scale")
                               if self.half else None)
            # the generator's moving average, beside the parameters (so states and layouts are theirs)
            self.ema = {n: tf.Variable(tf.zeros_like(v), trainable=False, name=_variable_name(ema_name(n)))
                        for n, v in self.params.items() if n.startswith("generator/")} if program.ema_decay else {}
        self.pg, self.pd = split_params(self.params)
        self.pg_ema = split_params(self.ema)[0]
        self.params.update({ema_name(n): v for n, v in self.ema.items()})
        self.vars = {net: [self.params[n] for n in names] for net, names in self.trainable.items()}

        # autograph off: the objectives are plain Python with no tensor-dependent control flow,
        # and autograph's conversion of plugin code is a needless hazard.
        jit = backend.jit_compile
        self._step_fns, self._grad_fns = {}, {}
        for step in ("critic", "generator"):
            if self.strategy is not None:  # per-replica inputs in, per-replica values out
                self._step_fns[step] = self._replicated(self._make_train(step))
                self._grad_fns[step] = self._replicated(self._make_gradients(step))
                continue
            sig = [self._signature(step)]
            self._step_fns[step] = tf.function(self._make_train(step), input_signature=sig,
                                               jit_compile=jit, autograph=False)
            self._grad_fns[step] = tf.function(self._make_gradients(step), input_signature=sig,
                                               jit_compile=jit, autograph=False)
        # (tf.identity: an input tensor has no device of its own, which the all-reduce needs)
        self._any_fn = self._replicated(
            lambda inputs: _all_reduce([tf.identity(inputs["flag"])], tf.distribute.ReduceOp.SUM)[0]) \
            if self.strategy is not None else None
        self._generate_fns = {raw: tf.function(lambda inputs, raw=raw: self._generate(inputs, raw), autograph=False)
                              for raw in (False, True)}
        self._critic_fn = tf.function(self._critic_values, autograph=False)
        self._input_grad_fn = tf.function(self._input_gradient, autograph=False)

    # -- state ------------------------------------------------------------------------------
    def set_state(self, arrays):
        for name, value in arrays.items():
            if name in self.params:
                var = self.params[name]
                value = np.asarray(value)
                expected = _from_tf(np.empty(tuple(var.shape), np.int8)).shape
                if tuple(value.shape) != tuple(expected):
                    raise WganxError(f"{name}: expected shape {tuple(expected)}, got {tuple(value.shape)}")
                var.assign(_to_tf(value).astype(self.np_dtype))
            elif (key := parse_state_name(name)) is not None:
                net, pname, slot = key
                if net not in self.steps:
                    continue
                if pname is None:
                    self.steps[net].assign(int(np.asarray(value)))
                    continue
                idx = self.trainable[net].index(f"{net}/{pname}")
                self.slots[net][slot][idx].assign(_to_tf(np.asarray(value)).astype(self.np_dtype))
            elif name == "loss_scale" and self.half:
                self.loss_scale.assign(float(np.asarray(value)))

    def get_state(self):
        out = {k: _from_tf(v.numpy()).astype(np.float32) for k, v in self.params.items()}
        for net, names in self.trainable.items():
            out[state_name(net)] = np.asarray(self.steps[net].numpy(), np.float32)
            for slot, variables in self.slots[net].items():
                for name, v in zip(names, variables):
                    out[state_name(net, name.split("/", 1)[1], slot)] = _from_tf(v.numpy()).astype(np.float32)
        return out

    # -- inputs -----------------------------------------------------------------------------
    def _signature(self, step):
        program = self.program
        shapes = {k: (tuple(s), tf.int64 if k == "labels" else self.dtype)
                  for k, s in program.input_shapes(step).items()}
        if step == "critic":  # the noise's shapes, from a throwaway generator
            noise = program.regularizer.sample_noise(np.random.default_rng(0), program.batch_size,
                                                     tuple(program.arch.sample_shape))
            for k, v in noise.items():
                v = np.asarray(v)
                shapes[k] = (v.shape, self.dtype if v.dtype.kind == "f" else tf.as_dtype(v.dtype))
        spec = {}
        for k, (shape, dtype) in shapes.items():
            if self.host_transpose and len(shape) == 4:
                shape = tuple(shape[i] for i in TO_NHWC)
            spec[k] = tf.TensorSpec(shape, dtype, name=k)
        return spec

    def _feed(self, inputs):
        """numpy (NCHW) -> arrays of the session's dtype (NHWC already when host_transpose)."""
        out = {}
        for k, v in inputs.items():
            v = np.asarray(v)
            if v.dtype.kind == "f":
                v = v.astype(self.np_dtype, copy=False)
                if self.host_transpose and v.ndim == 4:
                    v = np.ascontiguousarray(v.transpose(TO_NHWC))
            elif k == "labels":
                v = v.astype(np.int64, copy=False)
            out[k] = v
        return out

    def _graph_inputs(self, inputs):
        if self.host_transpose:
            return dict(inputs)
        return {k: tf.transpose(v, TO_NHWC) if v.shape.rank == 4 else v for k, v in inputs.items()}

    # -- steps (traced) ---------------------------------------------------------------------
    def _objective(self, step, inputs):
        fn = critic_objective if step == "critic" else generator_objective
        if not self.half:
            return fn(self.ops, self.program, self.pg, self.pd, inputs)
        self.ops.grad_scale, self.ops.compute_dtype = self.loss_scale, tf.float16
        try:
            values = fn(self.ops, self.program, self.pg, self.pd, inputs)
        finally:
            self.ops.grad_scale, self.ops.compute_dtype = None, None
        return {k: tf.cast(v, tf.float32) for k, v in values.items()}

    def _grads(self, net, inputs):
        variables = self.vars[net]
        self.ops.deferred = []
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            values = self._objective(net, self._graph_inputs(inputs))
            loss = values["loss"]
            if self.half:
                loss = loss * self.loss_scale
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        grads = [tf.convert_to_tensor(g) for g in grads]  # embeddings give IndexedSlices
        if self.half:
            grads = [g / tf.cast(self.loss_scale, g.dtype) for g in grads]
        if _in_replica():  # the replicas' mean: the global batch's gradients and scalars
            keys = sorted(values)
            reduced = _all_reduce(grads + [values[k] for k in keys])
            grads, values = reduced[:len(grads)], dict(zip(keys, reduced[len(grads):]))
        return values, grads

    def _update(self, net, grads):
        cfg, slots, params = self.optim[net], self.slots[net], self.vars[net]
        t = self.steps[net]
        _assign(t, t + 1)
        if cfg.kind == "adam":
            # TensorFlow's fused Adam kernel computes wganx's Adam (eps outside the root, the
            # bias correction folded into the step) in one pass per tensor: measured 5-10%
            # faster per step than the same update written as separate ops.
            tt = tf.cast(t, tf.float64)
            const = {k: tf.constant(getattr(cfg, k), self.dtype) for k in ("lr", "beta1", "beta2", "eps")}
            powers = [tf.cast(tf.pow(tf.constant(b, tf.float64), tt), self.dtype) for b in (cfg.beta1, cfg.beta2)]
            for p, g, m, v in zip(params, grads, slots["m"], slots["v"]):
                tf.raw_ops.ResourceApplyAdam(
                    var=p.handle, m=m.handle, v=v.handle, beta1_power=powers[0], beta2_power=powers[1],
                    lr=const["lr"], beta1=const["beta1"], beta2=const["beta2"], epsilon=const["eps"], grad=g)
        else:  # rmsprop
            for p, g, v in zip(params, grads, slots["v"]):
                _assign(v, cfg.rho * v + (1.0 - cfg.rho) * g * g)
                _assign(p, p - cfg.lr * g / tf.sqrt(v + cfg.eps))
        if net == "critic" and self.clip is not None:
            for p in params:
                _assign(p, tf.clip_by_value(p, -self.clip, self.clip))

    def _make_train(self, net):
        def train(inputs):
            self.ops.update_stats = True
            values, grads = self._grads(net, inputs)
            if self.half:
                finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

                def apply():
                    self._update(net, grads)
                    return tf.constant(True)

                def skip():  # skip this update and halve the scale, as GradScaler does
                    _assign(self.loss_scale, self.loss_scale / 2.0)
                    return tf.constant(False)

                tf.cond(finite, apply, skip)
            else:
                self._update(net, grads)
            for variable, value in self.ops.deferred:
                _assign(variable, value)
            if net == "generator" and self.ema:
                self._update_ema()
            return values
        train.__name__ = f"{net}_step"
        return train

    def _update_ema(self):
        """:func:`wganx.algorithm.ema_decay_at` on the step counter: ``d = ema_decay`` once the
        step passes ``ema_start``, else 0; running statistics are copied."""
        past_start = self.steps["generator"] > self.program.ema_start
        d = tf.where(past_start, tf.constant(self.program.ema_decay, self.dtype), tf.constant(0.0, self.dtype))
        for name, e in self.ema.items():
            p = self.params[name]
            _assign(e, d * e + (1.0 - d) * p if p.trainable else p)

    def _make_gradients(self, net):
        def gradients(inputs):
            self.ops.update_stats = False  # gradients() updates nothing, running stats included
            try:
                return self._grads(net, inputs)
            finally:
                self.ops.update_stats = True
        gradients.__name__ = f"{net}_gradients"
        return gradients

    def _run(self, fn, inputs):
        with tf.device(self.device):
            return fn(self._feed(inputs))

    # -- data-parallel ----------------------------------------------------------------------
    def _replicated(self, fn):
        """``fn`` run on every replica by the strategy, as one ``tf.function``."""
        return tf.function(lambda inputs: self.strategy.run(fn, args=(inputs,)), autograph=False)

    def _run_replicas(self, fn, inputs):
        """Each local replica's slice of the global batch in, the first replica's values out
        (they are all-reduced, so every replica holds the same)."""
        fed, size, first = self._feed(inputs), self.replicas.size, self.replicas.first
        devices = self.strategy.extended.worker_devices

        def on_replica(ctx):
            with tf.device(devices[ctx.replica_id_in_sync_group - first]):
                return {k: tf.constant(v) for k, v in replica_slice(fed, ctx.replica_id_in_sync_group, size).items()}

        try:
            out = fn(self.strategy.experimental_distribute_values_from_function(on_replica))
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as exc:
            raise ReplicaLost(f"worker {self.replicas.process}: a collective with the other workers failed "
                              f"({str(exc.message).strip().splitlines()[0]})") from None
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def _step(self, net, inputs):
        if self.strategy is not None:
            return self._run_replicas(self._step_fns[net], inputs)
        return self._run(self._step_fns[net], inputs)

    def any_replica(self, flag):
        if not self.replicas.parallel:
            return bool(flag)
        flags = np.full((self.replicas.size,), float(flag), self.np_dtype)  # one per replica, each takes its own
        return bool(self._run_replicas(self._any_fn, {"flag": flags}).numpy()[0] > 0)

    def critic_step(self, inputs):
        return self._step("critic", inputs)

    def generator_step(self, inputs):
        return self._step("generator", inputs)

    def fetch(self, values):
        return {k: float(np.asarray(v.numpy() if hasattr(v, "numpy") else v).reshape(()))
                for k, v in values.items()}

    def gradients(self, step, inputs):
        if self.strategy is not None:
            values, grads = self._run_replicas(self._grad_fns[step], inputs)
        else:
            values, grads = self._run(self._grad_fns[step], inputs)
        return (self.fetch(values),
                {n: _from_tf(g.numpy()) for n, g in zip(self.trainable[step], grads)})

    # -- inference --------------------------------------------------------------------------
    def _generate(self, inputs, raw):
        params = self.pg if raw or not self.ema else self.pg_ema
        return self.program.arch.generator.forward(self.ops, params, inputs["z"], training=False,
                                                   labels=inputs.get("labels"))

    def _critic_values(self, inputs):
        inputs = self._graph_inputs(inputs)
        return self.program.arch.critic.forward(self.ops, self.pd, inputs["x"], training=False,
                                                labels=inputs.get("labels"))

    def _input_gradient(self, inputs):
        inputs = self._graph_inputs(inputs)
        critic = self.program.arch.critic
        _, g = self.ops.input_grad(
            lambda v: critic.forward(self.ops, self.pd, v, training=False, labels=inputs.get("labels")),
            inputs["x"])
        return g

    def _numpy(self, y):
        """NCHW numpy in the session's dtype (float64 for ``-t double``), float32 otherwise."""
        y = y.numpy()
        y = y.transpose(TO_NCHW) if y.ndim == 4 else y
        return y.astype(self.np_dtype, copy=False)

    @staticmethod
    def _with_labels(key, x, labels):
        return {key: x} if labels is None else {key: x, "labels": labels}

    def generate(self, z, labels=None, *, raw=False):
        return self._numpy(self._run(self._generate_fns[bool(raw)], self._with_labels("z", z, labels)))

    def critic_values(self, x, labels=None):
        return self._numpy(self._run(self._critic_fn, self._with_labels("x", x, labels)))

    def input_gradient(self, x, labels=None):
        return self._numpy(self._run(self._input_grad_fn, self._with_labels("x", x, labels)))
