"""The NNabla backend: ops on ``nn.Variable``, each step a static graph built once per shape.

This follows NNabla's own WGAN-GP example (``sony/nnabla-examples``, ``GANs/wgan-gp``): the
graph of each step is built once, inputs are fed through ``.d``, the gradient penalty
differentiates with ``nn.grad`` inside the graph, the fake batch carries ``need_grad =
False`` so the critic's backward stops at the generator, and a step is ``zero_grad;
forward(clear_no_need_grad=True); backward(clear_buffer=True); update``.

Two things differ from a script that uses the global parameter scope:

* every session owns its ``nn.Variable`` parameters, keyed by canonical name, and its
  context (applied with ``nn.context_scope`` while building and running), so sessions and
  backends in one process do not collide;
* the network that a step does not train sees its parameters through views that share the
  data but not ``need_grad``, so no weight gradient of the other network is computed
  (the example computes them and throws them away).

NNabla's arithmetic does not broadcast operands of different rank, which the neutral
programs rely on (a scalar minus an image batch); tensors therefore travel through the
programs wrapped in :class:`Tensor`, whose operators align ranks first.

Data-parallel under ``mpirun`` (:mod:`wganx.distributed`), as the NNabla examples train on
several GPUs: a ``MultiProcessDataParallelCommunicator`` (nnabla-ext-cuda with MPI and
NCCL; there is no CPU one), each rank on GPU ``comm.local_rank`` with its slice of the global
batch, ``comm.all_reduce(..., division=True)`` of the gradients and the step's scalars, and
``F.sync_batch_normalization`` for synchronised batch norm.
"""
from __future__ import annotations

import contextlib
from typing import Dict

import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
from nnabla.ext_utils import get_extension_context

from wganx.backend import Backend, Session
from wganx.distributed import SINGLE, Replicas, launch_of, replica_slice
from wganx.errors import BackendUnavailableError
from wganx.ops import Ops, check_pad, unknown_interpolation
from wganx.optim import parse_state_name, state_name
from wganx.algorithm import EMA_PREFIX, Program, critic_objective, ema_decay_at, ema_name, generator_objective

# Mixed precision: initial loss scale, halved on overflow. 2**15 is the largest power of
# two a float16 holds (65504 is the maximum), and NNabla seeds backward in the graph's dtype.
LOSS_SCALE = 2.0 ** 15


# -- tensors --------------------------------------------------------------------------------
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
        # mixed precision: a () variable holding the loss scale, fed every step, by which D
        # is scaled before input gradients (and the gradients unscaled before any norm)
        self.grad_scale = None
        self.deferred = []  # (buffer, value) of defer_update while a graph is built
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
        return Tensor(F.abs(_v(x)))

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


# -- optimizers -----------------------------------------------------------------------------
class _Adam:
    """NNabla's ``S.Adam``: the epsilon-hat form of :mod:`wganx.optim` (pstate mean/var)."""

    slots = {"m": "mean", "v": "var"}

    def __init__(self, cfg, params):
        self.solver = S.Adam(cfg.lr, cfg.beta1, cfg.beta2, cfg.eps)
        self.solver.set_parameters(params, reset=True, retain_state=False)

    def zero_grad(self):
        self.solver.zero_grad()

    def scale_grad(self, s):
        self.solver.scale_grad(s)

    def finite(self):
        return not self.solver.check_inf_or_nan_grad()

    def update(self):
        self.solver.update()

    def steps(self):
        states = self.solver.get_states()
        return next(iter(states.values())).t if states else 0

    def get(self):
        """``(t, {param: {slot: numpy}})``."""
        states = self.solver.get_states()
        return self.steps(), {n: {s: np.array(st.pstate[k].d, np.float32) for s, k in self.slots.items()}
                              for n, st in states.items()}

    def set(self, t, slots):
        states = self.solver.get_states()
        for n, st in states.items():
            if t is not None:
                st.t = int(t)
            for s, value in slots.get(n, {}).items():
                st.pstate[self.slots[s]].d = value
        self.solver.set_states(states)


class _RMSProp:
    """RMSProp with epsilon inside the root (:mod:`wganx.optim`).

    NNabla's ``S.RMSprop`` divides by ``sqrt(v) + eps`` (measured: 12% off the contract
    with ``eps = 0.5``), so this update is written with imperative NNabla functions on the
    parameters' arrays, in float even under mixed precision.
    """

    def __init__(self, cfg, params, ctx):
        self.cfg, self.params, self.ctx = cfg, params, ctx
        with nn.context_scope(ctx):
            self.v = {n: _zeros(p.shape) for n, p in params.items()}
        self.t = 0

    def zero_grad(self):
        for p in self.params.values():
            p.grad.zero()

    def scale_grad(self, s):
        with nn.context_scope(self.ctx):
            for p in self.params.values():
                p.grad.copy_from(F.mul_scalar(p.grad, s))

    def finite(self):
        return all(np.isfinite(p.g).all() for p in self.params.values())

    def update(self):
        c = self.cfg
        with nn.context_scope(self.ctx):
            for n, p in self.params.items():
                g, v = p.grad, self.v[n]
                v.copy_from(F.add2(F.mul_scalar(v, c.rho), F.mul_scalar(F.mul2(g, g), 1.0 - c.rho)))
                step = F.div2(g, F.pow_scalar(F.add_scalar(v, c.eps), 0.5))
                p.data.copy_from(F.sub2(p.data, F.mul_scalar(step, c.lr)))
        self.t += 1

    def steps(self):
        return self.t

    def get(self):
        return self.t, {n: {"v": np.array(v.data, np.float32)} for n, v in self.v.items()}

    def set(self, t, slots):
        if t is not None:
            self.t = int(t)
        for n, s in slots.items():
            if "v" in s:
                self.v[n].data = s["v"]


def _zeros(shape):
    a = nn.NdArray(tuple(shape))
    a.zero()
    return a


# -- backend --------------------------------------------------------------------------------
class NNablaBackend(Backend):
    """NNabla with its extension context (``cpu``, ``cuda``, ``cudnn``; ``-t half`` is
    NNabla's mixed precision with loss scaling)."""

    name = "nnabla"

    def __init__(self, context="cpu", device_id=0, type_config="float"):
        super().__init__(context, device_id, type_config)
        if type_config == "double":
            raise BackendUnavailableError("the nnabla backend supports -t float and -t half, not double")
        if context != "cpu":
            try:
                import nnabla_ext.cuda  # noqa: F401
            except ImportError as e:
                raise BackendUnavailableError(
                    f"-c {context} needs NNabla's CUDA extension ({e}); install the one matching "
                    f"your CUDA: pip install nnabla-ext-cuda<version> (e.g. nnabla-ext-cuda120 "
                    f"for CUDA 12.0), of the same version as nnabla {nn.__version__}") from None
        elif type_config == "half":
            raise BackendUnavailableError("-t half (mixed precision) needs -c cuda or -c cudnn with nnabla")
        self.ctx = get_extension_context(context, device_id=str(self.device_id), type_config=type_config)
        # the solvers' own arithmetic (RMSProp) runs in float even under mixed precision
        self.float_ctx = get_extension_context(context, device_id=str(self.device_id), type_config="float")
        self.ops = NNablaOps()
        self.comm = None

    def _start_engine(self, engine):
        launch = launch_of(engine, "mpirun", "mpirun -n 4 wganx train --backend nnabla -c cudnn ...")
        if launch is None:
            return SINGLE
        if self.context == "cpu":
            raise BackendUnavailableError(
                f"this process is one of {launch[1]} that mpirun started, but NNabla's data-parallel "
                "communicator runs on GPUs only: use -c cudnn, with nnabla-ext-cuda (built with MPI "
                "and NCCL), Open MPI and NCCL installed")
        import nnabla.communicators as C

        make = getattr(C, "MultiProcessDataParallelCommunicator", None) or C.MultiProcessDataParalellCommunicator
        try:
            comm = make(self.ctx)
            comm.init()
        except Exception as exc:  # noqa: BLE001 - NNabla raises RuntimeError or its own errors
            raise BackendUnavailableError(
                f"NNabla's communicator did not start ({str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r});"
                " it needs nnabla-ext-cuda built with MPI and NCCL (pip install nnabla-ext-cuda<version>), "
                "Open MPI (mpirun) and NCCL") from None
        self.comm, self.ops.comm = comm, comm
        self.device_id = int(comm.local_rank)  # each rank on its own GPU, as the NNabla examples do
        self.ctx = get_extension_context(self.context, device_id=str(self.device_id), type_config=self.type_config)
        self.float_ctx = get_extension_context(self.context, device_id=str(self.device_id), type_config="float")
        return Replicas(size=comm.size, engine="mpi", process=comm.rank, processes=comm.size, first=comm.rank)

    def shutdown(self, finished=True):
        if self.comm is not None and finished:
            self.comm.barrier()

    def versions(self):
        out = {"nnabla": nn.__version__}
        if self.context != "cpu":
            try:
                import nnabla_ext.cuda as cu
                out["nnabla-ext-cuda"] = getattr(cu, "__version__", "?")
            except ImportError:
                pass
        return out

    def compile(self, program: Program, seed: int = 0) -> "NNablaSession":
        return NNablaSession(self, program, seed)


class _Graph:
    """One static graph: its input variables and its output variables."""

    __slots__ = ("inputs", "outputs", "head", "updates")

    def __init__(self, inputs, outputs, head, updates=()):
        self.inputs, self.outputs, self.head = inputs, outputs, head
        self.updates = list(updates)  # (buffer, value) that a training step copies when it ends


class NNablaSession(Session):
    def __init__(self, backend: NNablaBackend, program: Program, seed: int):
        self.backend, self.program, self.ops = backend, program, backend.ops
        self.ctx = backend.ctx
        self.half = backend.type_config == "half"
        self.replicas, self.comm = backend.replicas, backend.comm
        self.params: Dict[str, nn.Variable] = {}
        self.trainable = {"generator": {}, "critic": {}}
        with self._scope():
            for net, network in (("generator", program.arch.generator), ("critic", program.arch.critic)):
                for name, spec in sorted(network.params.items()):
                    v = nn.Variable(tuple(spec.shape), need_grad=spec.trainable)
                    v.data.zero()
                    self.params[f"{net}/{name}"] = v
                    if spec.trainable:
                        self.trainable[net][name] = v
            # the generator's moving average: (average, parameter) pairs beside the parameters
            self.ema, self._ema_graphs = [], {}
            for name in sorted(program.arch.generator.params) if program.ema_decay else ():
                p = self.params[f"generator/{name}"]
                e = nn.Variable(p.shape, need_grad=False)
                e.data.zero()
                self.ema.append((e, p))
                self.params[ema_name(f"generator/{name}")] = e
            self.optim = {}
            for net, cfg in (("generator", program.generator_optimizer), ("critic", program.critic_optimizer)):
                if cfg.kind == "adam":
                    self.optim[net] = _Adam(cfg, self.trainable[net])
                elif cfg.kind == "rmsprop":
                    self.optim[net] = _RMSProp(cfg, self.trainable[net], backend.float_ctx)
                else:
                    raise ValueError(f"unknown optimizer {cfg.kind!r}; choose one of: adam, rmsprop")
        self.loss_scale = LOSS_SCALE if self.half else None
        if self.half:
            with self._scope():
                self.scale_var = nn.Variable(())  # the loss scale, as the penalty graphs see it
        self.clip = program.regularizer.clip
        self.graphs: Dict[tuple, _Graph] = {}

    @contextlib.contextmanager
    def _scope(self):
        with nn.context_scope(self.ctx), nn.auto_forward(False):
            yield

    # -- state ------------------------------------------------------------------------------
    def set_state(self, arrays):
        opt = {}
        for name, value in arrays.items():
            if name in self.params:
                p = self.params[name]
                value = np.asarray(value, np.float32)
                if value.shape != p.shape:
                    raise ValueError(f"{name}: expected shape {p.shape}, got {value.shape}")
                p.d = value
            elif (key := parse_state_name(name)) is not None:
                net, pname, slot = key
                slots = opt.setdefault(net, [None, {}])[1]
                if pname is None:
                    opt[net][0] = int(np.asarray(value))
                    continue
                if pname not in self.trainable[net]:
                    raise KeyError(f"{name}: no trainable parameter {net}/{pname}")
                slots.setdefault(pname, {})[slot] = np.asarray(value, np.float32)
            elif name == "loss_scale" and self.half:
                self.loss_scale = float(np.asarray(value))
        for net, (t, slots) in opt.items():
            self.optim[net].set(t, slots)

    def get_state(self):
        out = {k: np.array(v.d, np.float32) for k, v in self.params.items()}
        for net in ("generator", "critic"):
            t, slots = self.optim[net].get()
            out[state_name(net)] = np.asarray(t, np.float32)
            for pname, s in slots.items():
                for slot, value in s.items():
                    out[state_name(net, pname, slot)] = value
        return out

    # -- graphs -----------------------------------------------------------------------------
    def _net_params(self, net, train):
        """Parameters of ``net`` as the graph sees them: the variables themselves when the
        graph trains ``net``, else views sharing the data without ``need_grad``."""
        prefix = f"{net}/"
        out = {}
        for full, v in self.params.items():
            if not full.startswith(prefix):
                continue
            if not train and v.need_grad:
                view = v.reshape(v.shape, unlink=True)
                view.need_grad = False
                v = view
            out[full[len(prefix):]] = Tensor(v)
        return out

    @staticmethod
    def _key(kind, inputs):
        return (kind,) + tuple(sorted((k, tuple(np.shape(v))) for k, v in inputs.items()))

    def _input_vars(self, inputs):
        return {k: nn.Variable(tuple(np.shape(v))) for k, v in inputs.items()}

    def _feed(self, graph, inputs):
        if self.half:
            self.scale_var.d = self.loss_scale
        for k, value in inputs.items():
            var = graph.inputs[k]
            value = np.asarray(value)
            if value.dtype.kind in "iu":
                var.data.cast(np.int32)[...] = value
            else:
                var.d = value

    def _graph(self, kind, inputs):
        key = self._key(kind, inputs)
        graph = self.graphs.get(key)
        if graph is None:
            with self._scope():
                graph = self._build(kind, inputs)
            self.graphs[key] = graph
        return graph

    def _build(self, kind, inputs):
        self.ops.deferred = []
        ivars = self._input_vars(inputs)
        t = {k: Tensor(v) for k, v in ivars.items()}
        G, D = self.program.arch.generator, self.program.arch.critic
        if kind in ("critic", "generator"):
            fn = critic_objective if kind == "critic" else generator_objective
            pg = self._net_params("generator", kind == "generator")
            pd = self._net_params("critic", kind == "critic")
            self.ops.grad_scale = self.scale_var if self.half else None
            try:
                values = fn(self.ops, self.program, pg, pd, t)
            finally:
                self.ops.grad_scale = None
            outputs = {k: _v(v) for k, v in values.items()}
        elif kind in ("generate", "generate-ema"):
            pg = self._net_params("generator" if kind == "generate" else ema_name("generator"), False)
            outputs = {"x": _v(G.forward(self.ops, pg, t["z"], training=False, labels=t.get("labels")))}
        elif kind == "critic_values":
            pd = self._net_params("critic", False)
            outputs = {"y": _v(D.forward(self.ops, pd, t["x"], training=False, labels=t.get("labels")))}
        elif kind == "input_gradient":
            pd = self._net_params("critic", False)
            self.ops.grad_scale = self.scale_var if self.half else None
            try:
                _, g = self.ops.input_grad(
                    lambda v: D.forward(self.ops, pd, v, training=False, labels=t.get("labels")), t["x"])
            finally:
                self.ops.grad_scale = None
            outputs = {"g": _v(g)}
        else:
            raise ValueError(kind)
        updates = self.ops.deferred
        ends = list(outputs.values()) + [value for _, value in updates]
        for v in ends:
            v.persistent = True  # survives clear_no_need_grad / clear_buffer
        # one forward computes every output (``wasserstein`` is not an ancestor of ``loss``)
        head = ends[0] if len(ends) == 1 else F.sink(*ends)
        return _Graph(ivars, outputs, head, updates)

    # -- steps ------------------------------------------------------------------------------
    def _forward_backward(self, net, inputs):
        graph = self._graph(net, inputs)
        self._feed(graph, inputs)
        loss = graph.outputs["loss"]
        opt = self.optim[net]
        with self._scope():
            opt.zero_grad()
            graph.head.forward(clear_no_need_grad=True)
            if self.loss_scale is None:
                loss.backward(clear_buffer=True)
            else:
                loss.backward(self.loss_scale, clear_buffer=True)
        return graph

    def _local(self, inputs):
        """This rank's slice of the global batch."""
        if self.replicas.parallel:
            return replica_slice(inputs, self.replicas.first, self.replicas.size)
        return inputs

    def _reduced(self, net, graph) -> list:
        """What the replicas average after a backward: the gradients, the step's scalars and,
        without synchronised batch norm, the running statistics (so that every replica keeps
        the same)."""
        arrays = [p.grad for p in self.trainable[net].values()] + [v.data for v in graph.outputs.values()]
        if not self.ops.sync_batch_norm:
            arrays += [v.data for n, v in self.params.items() if not v.need_grad and not n.startswith(EMA_PREFIX)]
        return arrays

    def any_replica(self, flag):
        if self.comm is None:
            return bool(flag)
        a = nn.NdArray.from_numpy_array(np.array([1.0 if flag else 0.0], np.float32))
        self.comm.all_reduce([a], division=False, inplace=False)
        return float(a.data[0]) > 0

    def _step(self, net, inputs):
        graph = self._forward_backward(net, self._local(inputs))
        if self.comm is not None:
            self.comm.all_reduce(self._reduced(net, graph), division=True, inplace=False)
        return self._update(net, graph)

    def _update(self, net, graph):
        """The solver's update from the (reduced) gradients; with mixed precision, skipped on
        every replica alike when they are not finite."""
        opt = self.optim[net]
        with self._scope():
            if self.loss_scale is not None:
                if not opt.finite():
                    self.loss_scale /= 2.0  # skip this update, as the torch backend does
                    self._apply_updates(graph)
                    return self._snapshot(graph.outputs)
                opt.scale_grad(1.0 / self.loss_scale)
            opt.update()
            if net == "critic" and self.clip is not None:
                c = float(self.clip)
                for p in self.trainable["critic"].values():
                    p.data.copy_from(F.clip_by_value(p.data, -c, c))
            self._apply_updates(graph)
            if net == "generator" and self.ema:
                self._update_ema()
            return self._snapshot(graph.outputs)

    def _update_ema(self):
        """``ema = d ema + (1 - d) param`` (:func:`wganx.algorithm.ema_decay_at`), on the device;
        running statistics are copied."""
        self._ema_graph(ema_decay_at(self.program, self.optim["generator"].steps())).forward(clear_buffer=True)

    def _ema_graph(self, d):
        """One graph of ``F.assign`` moving every average with decay ``d`` (0 or the decay):
        one forward instead of three imperative functions per parameter (measured for 30
        tensors: 0.33 ms against 6.3 ms a generator step)."""
        graph = self._ema_graphs.get(d)
        if graph is None:
            with self._scope():
                ends = []
                for e, p in self.ema:
                    value = p.get_unlinked_variable(need_grad=False)
                    if p.need_grad:
                        value = F.add2(F.mul_scalar(e, d), F.mul_scalar(value, 1.0 - d))
                    ends.append(F.assign(e, value))
                graph = self._ema_graphs[d] = ends[0] if len(ends) == 1 else F.sink(*ends)
        return graph

    @staticmethod
    def _apply_updates(graph):
        for buffer, value in graph.updates:
            buffer.data.copy_from(value.data)

    def _snapshot(self, outputs):
        """Copies of the step's scalars on the device (the next step overwrites the graph's)."""
        out = {}
        for k, v in outputs.items():
            a = nn.NdArray(v.shape)
            a.copy_from(v.data)
            out[k] = a
        return out

    def critic_step(self, inputs):
        return self._step("critic", inputs)

    def generator_step(self, inputs):
        return self._step("generator", inputs)

    def fetch(self, values):
        out = {}
        for k, v in values.items():
            arr = v.d if isinstance(v, nn.Variable) else (v.data if isinstance(v, nn.NdArray) else v)
            out[k] = float(np.asarray(arr, np.float64).reshape(()))
        return out

    def gradients(self, step, inputs):
        # "Without updating anything": batch norm's forward updates its running statistics
        # in place, so they are put back afterwards.
        running = {n: np.array(v.d) for n, v in self.params.items() if not v.need_grad}
        graph = self._forward_backward(step, self._local(inputs))
        if self.comm is not None:
            self.comm.all_reduce(self._reduced(step, graph), division=True, inplace=False)
        for n, value in running.items():
            self.params[n].d = value
        scale = 1.0 if self.loss_scale is None else 1.0 / self.loss_scale
        grads = {f"{step}/{n}": np.array(p.g, np.float32) * scale for n, p in self.trainable[step].items()}
        return self.fetch(graph.outputs), grads

    # -- inference --------------------------------------------------------------------------
    def _run(self, kind, inputs, out):
        graph = self._graph(kind, inputs)
        self._feed(graph, inputs)
        y = graph.outputs[out]
        with self._scope():
            graph.head.forward(clear_buffer=True)
        return np.array(y.d, np.float32)

    def generate(self, z, labels=None, *, raw=False):
        kind = "generate" if raw or not self.ema else "generate-ema"
        return self._run(kind, {"z": z} if labels is None else {"z": z, "labels": labels}, "x")

    def critic_values(self, x, labels=None):
        return self._run("critic_values", {"x": x} if labels is None else {"x": x, "labels": labels}, "y")

    def input_gradient(self, x, labels=None):
        return self._run("input_gradient", {"x": x} if labels is None else {"x": x, "labels": labels}, "g")
