"""The PyTorch backend: ops on torch tensors, steps in eager mode.

``torch.compile`` raises on double backward ("aot_autograd does not currently support
double backward"), so the penalty steps run eagerly; optimizer updates are fused with
``torch._foreach_*`` and losses stay on the device until the core fetches them.

Data-parallel under torchrun (:mod:`wganx.distributed`): each rank steps on its slice of the
global batch and averages its gradients with the others through one ``torch.distributed``
all-reduce per step. ``DistributedDataParallel`` is not used: it reduces only the ``.grad``
that ``backward()`` fills, not what ``torch.autograd.grad`` returns (measured 0.57 off), and
its hooks do not fit a penalty's double backward (``static_graph`` was silently wrong).
"""
from __future__ import annotations

import datetime
import os
import warnings
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F

from wganx.backend import Backend, Session
from wganx.distributed import SINGLE, ReplicaLost, Replicas, launch_of, replica_slice
from wganx.errors import BackendUnavailableError
from wganx.ops import Ops, check_pad, linear_phases, unknown_interpolation
from wganx.optim import parse_state_name, state_name
from wganx.algorithm import (EMA_PREFIX, Program, critic_objective, ema_decay_at, ema_name, generator_objective,
                           split_params)


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
        self.grad_scale = None  # set by mixed precision: scale D before input gradients
        self.deferred = []  # (buffer, value) of defer_update, applied when a step ends
        # oneDNN convolves NHWC without reordering each operand; element-wise ops, pooling and
        # batch norm keep the layout, so convolutions chain in it (measured 1.2-1.5x faster
        # for seed 000's model on the CPU: docs/results/speed.md). Values stay NCHW-indexed.
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


class TorchBackend(Backend):
    """PyTorch on the CPU or a CUDA GPU (``cuda`` and ``cudnn`` both mean the GPU, with
    cuDNN autotuning enabled for ``cudnn``); data-parallel under torchrun (NCCL on GPUs,
    gloo on the CPU), each rank on GPU ``LOCAL_RANK``."""

    name = "torch"
    #: how long a collective waits for the other ranks before it fails (torch's NCCL default)
    collective_timeout = datetime.timedelta(minutes=10)

    def __init__(self, context="cpu", device_id=0, type_config="float"):
        super().__init__(context, device_id, type_config)
        if context == "cpu":
            self.device = torch.device("cpu")
        else:
            if not torch.cuda.is_available():
                raise BackendUnavailableError(
                    f"-c {context} needs a CUDA GPU, but this torch ({torch.__version__}) sees none; "
                    "install a CUDA build of torch (pip install torch) on a machine with an NVIDIA GPU")
            if device_id >= torch.cuda.device_count():
                raise BackendUnavailableError(
                    f"-d {device_id}: only {torch.cuda.device_count()} CUDA device(s) present")
            self.device = torch.device("cuda", device_id)
            torch.backends.cudnn.benchmark = context == "cudnn"
        if type_config == "half" and context == "cpu":
            raise BackendUnavailableError("-t half (mixed precision) needs -c cuda or -c cudnn with torch")
        self.dtype = torch.float64 if type_config == "double" else torch.float32
        # channels-last on the CPU in float32 (oneDNN); not yet measured on GPUs, so NCHW there
        self.ops = TorchOps(channels_last=context == "cpu" and self.dtype == torch.float32)

    def set_threads(self, threads):
        torch.set_num_threads(threads)

    def _start_engine(self, engine):
        import torch.distributed as dist

        launch = launch_of(engine, "torchrun", "torchrun --standalone --nproc-per-node 2 -m wganx train ...")
        if launch is None:
            return SINGLE
        if not dist.is_available():
            raise BackendUnavailableError(f"this torch ({torch.__version__}) is built without torch.distributed")
        size, rank = launch[1], launch[2]
        if self.context == "cpu":
            group = "gloo"
        else:
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if local >= torch.cuda.device_count():
                raise BackendUnavailableError(f"rank {rank} is LOCAL_RANK {local}, but this machine has "
                                              f"{torch.cuda.device_count()} CUDA device(s)")
            self.device_id, self.device = local, torch.device("cuda", local)
            torch.cuda.set_device(self.device)
            group = "nccl"
        if not dist.is_initialized():
            dist.init_process_group(group, timeout=self.collective_timeout)
            self._owns_group = True
        return Replicas(size=size, engine="torchrun", process=rank, processes=size, first=rank)

    def shutdown(self, finished=True):
        if getattr(self, "_owns_group", False):
            import torch.distributed as dist

            self._owns_group = False
            if finished:
                dist.barrier()  # a rank that leaves early can abort the others' last collective
            dist.destroy_process_group()

    def versions(self):
        return {"torch": torch.__version__}

    def compile(self, program: Program, seed: int = 0) -> "TorchSession":
        return TorchSession(self, program, seed)


class TorchSession(Session):
    def __init__(self, backend: TorchBackend, program: Program, seed: int):
        self.backend, self.program, self.ops = backend, program, backend.ops
        self.device, self.dtype = backend.device, backend.dtype
        self.half = backend.type_config == "half"
        self.params: Dict[str, torch.Tensor] = {}
        self.trainable = {"generator": [], "critic": []}
        for net, network in (("generator", program.arch.generator), ("critic", program.arch.critic)):
            for name, spec in sorted(network.params.items()):
                full = f"{net}/{name}"
                t = torch.zeros(spec.shape, dtype=self.dtype, device=self.device)
                t.requires_grad_(spec.trainable)
                self.params[full] = t
                if spec.trainable:
                    self.trainable[net].append(full)
        self.pg, self.pd = split_params(self.params)
        # the generator's moving average, beside the parameters (so states and checkpoints hold it)
        self.pg_ema = {n: torch.zeros_like(p).detach() for n, p in self.pg.items()} if program.ema_decay else {}
        self.params.update({ema_name(f"generator/{n}"): e for n, e in self.pg_ema.items()})
        pairs = [(e, self.pg[n]) for n, e in self.pg_ema.items()]
        self.ema_averaged = [(e, p.detach()) for e, p in pairs if p.requires_grad]  # the rest is copied
        self.ema_copied = [(e, p) for e, p in pairs if not p.requires_grad]
        self.optim = {"generator": program.generator_optimizer, "critic": program.critic_optimizer}
        self.slots = {net: {slot: [torch.zeros_like(self.params[n]).detach() for n in names]
                            for slot in self.optim[net].slots()}
                      for net, names in self.trainable.items()}
        self.steps = {"generator": 0, "critic": 0}
        self.loss_scale = 2.0 ** 16 if self.half else None
        self.clip = program.regularizer.clip
        self.replicas = backend.replicas
        # running statistics (and other buffers the forward updates), not the moving average
        self.statistics = [t for n, t in self.params.items() if not t.requires_grad and not n.startswith(EMA_PREFIX)]

    # -- state ------------------------------------------------------------------------------
    def set_state(self, arrays):
        with torch.no_grad():
            for name, value in arrays.items():
                if name in self.params:
                    self.params[name].copy_(torch.from_numpy(np.asarray(value)))
                elif (key := parse_state_name(name)) is not None:
                    net, pname, slot = key
                    if pname is None:
                        self.steps[net] = int(np.asarray(value))
                        continue
                    idx = self.trainable[net].index(f"{net}/{pname}")
                    self.slots[net][slot][idx].copy_(torch.from_numpy(np.asarray(value)))
                elif name == "loss_scale" and self.half:
                    self.loss_scale = float(np.asarray(value))

    def get_state(self):
        out = {k: v.detach().cpu().float().numpy().copy() for k, v in self.params.items()}
        for net, names in self.trainable.items():
            out[state_name(net)] = np.asarray(self.steps[net], np.float32)
            for slot, tensors in self.slots[net].items():
                for name, t in zip(names, tensors):
                    out[state_name(net, name.split("/", 1)[1], slot)] = t.cpu().float().numpy().copy()
        return out

    # -- steps ------------------------------------------------------------------------------
    def _step_inputs(self, inputs):
        """This rank's slice of the global batch, on the device."""
        if self.replicas.parallel:
            inputs = replica_slice(inputs, self.replicas.first, self.replicas.size)
        return self._inputs(inputs)

    def _inputs(self, inputs):
        out = {}
        for k, v in inputs.items():
            t = torch.from_numpy(np.asarray(v))
            if t.is_floating_point():
                t = t.to(self.dtype)
            out[k] = t.to(self.device, non_blocking=True)
        return out

    def _objective(self, step, inputs):
        fn = critic_objective if step == "critic" else generator_objective
        self.ops.deferred.clear()  # what an earlier gradients() or failed step left
        if not self.half:
            return fn(self.ops, self.program, self.pg, self.pd, inputs)
        self.ops.grad_scale = self.loss_scale
        try:
            with torch.autocast(self.device.type, dtype=torch.float16):
                values = fn(self.ops, self.program, self.pg, self.pd, inputs)
        finally:
            self.ops.grad_scale = None
        return {k: v.float() for k, v in values.items()}

    def _grads(self, net, values):
        """Gradients of the objective (and its scalars), averaged over the replicas."""
        names = self.trainable[net]
        params = [self.params[n] for n in names]
        if self.loss_scale is None:
            grads = list(torch.autograd.grad(values["loss"], params))
        else:
            grads = [g.float() / self.loss_scale
                     for g in torch.autograd.grad(values["loss"] * self.loss_scale, params)]
        scalars = {k: v.detach() for k, v in values.items()}
        if not self.replicas.parallel:
            return scalars, grads
        keys = sorted(scalars)
        # without synchronised batch norm, every rank keeps the replicas' mean of the statistics
        stats = [] if self.ops.sync_batch_norm else self.statistics
        reduced = self._all_mean(grads + [scalars[k].reshape(1).to(grads[0].dtype) for k in keys] + stats)
        n, k = len(grads), len(keys)
        with torch.no_grad():
            for buffer, mean in zip(stats, reduced[n + k:]):
                buffer.copy_(mean)
        return dict(zip(keys, (t.reshape(()) for t in reduced[n:n + k]))), reduced[:n]

    def _all_mean(self, tensors):
        """The replicas' mean of every tensor, in one all-reduce (one bucket); the mean of the
        per-slice means is the global batch's mean, the slices being equal."""
        flat = torch.cat([t.reshape(-1) for t in tensors])
        self._collective("all_reduce", flat)
        flat /= self.replicas.size
        return [chunk.view_as(t) for chunk, t in zip(torch.split(flat, [t.numel() for t in tensors]), tensors)]

    def _collective(self, what, tensor, op=None):
        import torch.distributed as dist

        try:
            dist.all_reduce(tensor, op=op or dist.ReduceOp.SUM)
        except (RuntimeError, dist.DistError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReplicaLost(f"rank {self.replicas.process}: {what} with the other "
                              f"{self.replicas.size - 1} rank(s) failed ({first})") from None

    def any_replica(self, flag):
        if not self.replicas.parallel:
            return bool(flag)
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self._collective("agreeing to stop", t, dist.ReduceOp.MAX)
        return bool(t.item())

    def _step(self, net, inputs):
        values = self._objective(net, self._step_inputs(inputs))
        values, grads = self._grads(net, values)
        if self.loss_scale is not None and not self._finite(grads):
            self.loss_scale /= 2.0  # skip this update, as torch.cuda.amp.GradScaler does
        else:
            self._update(net, grads)
        with torch.no_grad():
            for buffer, value in self.ops.deferred:
                buffer.copy_(value)
            self.ops.deferred.clear()
            if net == "generator" and self.pg_ema:
                self._update_ema()
        return values

    def _update_ema(self):
        """``ema = d ema + (1 - d) param`` (:func:`wganx.algorithm.ema_decay_at`), statistics copied."""
        d = ema_decay_at(self.program, self.steps["generator"])
        torch._foreach_lerp_([e for e, _ in self.ema_averaged], [p for _, p in self.ema_averaged], 1.0 - d)
        for e, p in self.ema_copied:
            e.copy_(p)

    @staticmethod
    def _finite(grads):
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

    @torch.no_grad()
    def _update(self, net, grads):
        cfg, slots = self.optim[net], self.slots[net]
        params = [self.params[n] for n in self.trainable[net]]
        self.steps[net] += 1
        t = self.steps[net]
        if cfg.kind == "adam":
            m, v = slots["m"], slots["v"]
            torch._foreach_lerp_(m, grads, 1.0 - cfg.beta1)
            torch._foreach_mul_(v, cfg.beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - cfg.beta2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, cfg.eps)
            step = cfg.lr * (1 - cfg.beta2 ** t) ** 0.5 / (1 - cfg.beta1 ** t)
            torch._foreach_addcdiv_(params, m, denom, value=-step)
        elif cfg.kind == "rmsprop":
            v = slots["v"]
            torch._foreach_mul_(v, cfg.rho)
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - cfg.rho)
            denom = torch._foreach_add(v, cfg.eps)
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-cfg.lr)
        else:
            raise ValueError(f"unknown optimizer {cfg.kind!r}")
        if net == "critic" and self.clip is not None:
            torch._foreach_clamp_min_(params, -self.clip)
            torch._foreach_clamp_max_(params, self.clip)

    def critic_step(self, inputs):
        return self._step("critic", inputs)

    def generator_step(self, inputs):
        return self._step("generator", inputs)

    def fetch(self, values):
        if not values:
            return {}
        keys = [k for k, v in values.items() if isinstance(v, torch.Tensor)]
        out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}  # already fetched
        if keys:  # one transfer; float64 is exact for every dtype, so -t double keeps its digits
            stacked = torch.stack([values[k].reshape(()).double() for k in keys]).cpu().numpy()
            out.update({k: float(x) for k, x in zip(keys, stacked)})
        return {k: out[k] for k in values}

    def gradients(self, step, inputs):
        running = {k: v.detach().clone() for k, v in self.params.items() if not v.requires_grad}
        values = self._objective(step, self._step_inputs(inputs))
        values, grads = self._grads(step, values)
        with torch.no_grad():  # "without updating anything": batch norm's running statistics too
            for k, v in running.items():
                self.params[k].copy_(v)
        return (self.fetch(values),
                {n: g.detach().contiguous().cpu().numpy() for n, g in zip(self.trainable[step], grads)})

    # -- inference --------------------------------------------------------------------------
    def _numpy(self, t):
        """Outputs in the session's dtype (float64 for ``-t double``), float32 otherwise."""
        return t.detach().to(self.dtype).contiguous().cpu().numpy()

    @torch.no_grad()
    def generate(self, z, labels=None, *, raw=False):
        inputs = self._inputs({"z": z} if labels is None else {"z": z, "labels": labels})
        params = self.pg if raw or not self.pg_ema else self.pg_ema
        x = self.program.arch.generator.forward(self.ops, params, inputs["z"], training=False,
                                                labels=inputs.get("labels"))
        return self._numpy(x)

    @torch.no_grad()
    def critic_values(self, x, labels=None):
        inputs = self._inputs({"x": x} if labels is None else {"x": x, "labels": labels})
        y = self.program.arch.critic.forward(self.ops, self.pd, inputs["x"], training=False,
                                             labels=inputs.get("labels"))
        return self._numpy(y)

    def input_gradient(self, x, labels=None):
        inputs = self._inputs({"x": x} if labels is None else {"x": x, "labels": labels})
        critic = self.program.arch.critic
        _, g = self.ops.input_grad(
            lambda v: critic.forward(self.ops, self.pd, v, training=False, labels=inputs.get("labels")),
            inputs["x"])
        return self._numpy(g)
