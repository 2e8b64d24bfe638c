"""The PyTorch session: the steps in eager mode, the optimizer update fused on the device.

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

from typing import Dict

import numpy as np
import torch

from wganx.algorithm import EMA_PREFIX, OBJECTIVES, ema_decay_at, learning_rate, split_params
from wganx.distributed import ReplicaLost
from wganx.session import Session


class TorchSession(Session):
    def __init__(self, backend, program):
        super().__init__(backend, program)
        self.device, self.dtype = backend.device, backend.dtype
        self.params: Dict[str, torch.Tensor] = {}
        for full, spec in self.param_specs():
            self.params[full] = torch.zeros(spec.shape, dtype=self.dtype, device=self.device)
            self.params[full].requires_grad_(spec.trainable)
        for average, param in self.ema_pairs:  # beside the parameters, so states hold them
            self.params[average] = torch.zeros_like(self.params[param]).detach()
        self.pg, self.pc = split_params(self.params)
        self.pg_ema = split_params({k[len(EMA_PREFIX):]: v for k, v in self.params.items()
                                    if k.startswith(EMA_PREFIX)})[0]
        pairs = [(self.params[a], self.params[p]) for a, p in self.ema_pairs]
        self.ema_averaged = [(e, p.detach()) for e, p in pairs if p.requires_grad]  # the rest is copied
        self.ema_copied = [(e, p) for e, p in pairs if not p.requires_grad]
        self.slots = {net: {slot: [torch.zeros_like(self.params[n]).detach() for n in names]
                            for slot in self.optim[net].slots()}
                      for net, names in self.trainable.items()}
        self.steps = {"generator": 0, "critic": 0}
        # running statistics (and other buffers the forward updates), not the moving average
        self.statistics = [t for n, t in self.params.items() if not t.requires_grad and not n.startswith(EMA_PREFIX)]

    # -- state ------------------------------------------------------------------------------
    def _read_param(self, name):
        return self.params[name].detach().cpu().float().numpy().copy()

    @torch.no_grad()
    def _write_param(self, name, value):
        self.params[name].copy_(torch.from_numpy(value))

    def _read_optimizer(self, net):
        return self.steps[net], {name: {slot: tensors[i].cpu().float().numpy().copy()
                                        for slot, tensors in self.slots[net].items()}
                                 for i, name in enumerate(self.trainable[net])}

    @torch.no_grad()
    def _write_optimizer(self, net, steps, slots):
        if steps is not None:
            self.steps[net] = steps
        for name, values in slots.items():
            i = self.trainable[net].index(name)
            for slot, value in values.items():
                self.slots[net][slot][i].copy_(torch.from_numpy(value))

    # -- steps ------------------------------------------------------------------------------
    def _inputs(self, inputs):
        out = {}
        for k, v in inputs.items():
            t = torch.from_numpy(np.asarray(v))
            if t.is_floating_point():
                t = t.to(self.dtype)
            out[k] = t.to(self.device, non_blocking=True)
        return out

    def _objective(self, step, inputs):
        fn = OBJECTIVES[step]
        self.ops.deferred.clear()  # what an earlier gradients() or failed step left
        if not self.half:
            return fn(self.ops, self.program, self.pg, self.pc, inputs)
        self.ops.grad_scale = self.loss_scale.scale
        try:
            with torch.autocast(self.device.type, dtype=torch.float16):
                values = fn(self.ops, self.program, self.pg, self.pc, inputs)
        finally:
            self.ops.grad_scale = None
        return {k: v.float() for k, v in values.items()}

    def _grads(self, net, values):
        """Gradients of the objective (and its scalars), averaged over the replicas."""
        params = [self.params[n] for n in self.trainable[net]]
        if self.loss_scale is None:
            grads = list(torch.autograd.grad(values["loss"], params))
        else:
            scale = self.loss_scale.scale
            grads = [g.float() / scale for g in torch.autograd.grad(values["loss"] * scale, params)]
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
        values, grads = self._grads(net, self._objective(net, self._inputs(inputs)))
        if self.apply_update(self.loss_scale is None or self._finite(grads)):
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
        lr = learning_rate(self.program, net, self.steps["generator"])
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
            step = lr * (1 - cfg.beta2 ** t) ** 0.5 / (1 - cfg.beta1 ** t)
            torch._foreach_addcdiv_(params, m, denom, value=-step)
        else:  # rmsprop
            v = slots["v"]
            torch._foreach_mul_(v, cfg.rho)
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - cfg.rho)
            denom = torch._foreach_add(v, cfg.eps)
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-lr)
        if net == "critic" and self.clip is not None:
            torch._foreach_clamp_min_(params, -self.clip)
            torch._foreach_clamp_max_(params, self.clip)

    def fetch(self, values):
        if not values:
            return {}
        keys = [k for k, v in values.items() if isinstance(v, torch.Tensor)]
        out = {k: float(v) for k, v in values.items() if not isinstance(v, torch.Tensor)}  # already fetched
        if keys:  # one transfer; float64 is exact for every dtype, so -t double keeps its digits
            stacked = torch.stack([values[k].reshape(()).double() for k in keys]).cpu().numpy()
            out.update({k: float(x) for k, x in zip(keys, stacked)})
        return {k: out[k] for k in values}

    def _gradients(self, step, inputs):
        running = {k: v.detach().clone() for k, v in self.params.items() if not v.requires_grad}
        values, grads = self._grads(step, self._objective(step, self._inputs(inputs)))
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
    def _generate(self, inputs, raw):
        inputs = self._inputs(inputs)
        x = self.program.arch.generator.forward(self.ops, self.pg if raw else self.pg_ema, inputs["z"],
                                                training=False, labels=inputs.get("labels"))
        return self._numpy(x)

    @torch.no_grad()
    def _critic_values(self, inputs):
        inputs = self._inputs(inputs)
        y = self.program.arch.critic.forward(self.ops, self.pc, inputs["x"], training=False,
                                             labels=inputs.get("labels"))
        return self._numpy(y)

    def _input_gradient(self, inputs):
        inputs = self._inputs(inputs)
        critic = self.program.arch.critic
        _, g = self.ops.input_grad(
            lambda v: critic.forward(self.ops, self.pc, v, training=False, labels=inputs.get("labels")),
            inputs["x"])
        return self._numpy(g)
