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

import torch

from wganx.algorithm import OBJECTIVES, critic_input_gradient, critic_output, generator_output
from wganx.distributed import ReplicaLost
from wganx.session import Session


class TorchSession(Session):
    def __init__(self, backend, program):
        super().__init__(backend, program)
        self.device, self.dtype = backend.device, backend.dtype
        params: Dict[str, torch.Tensor] = {}
        for full, spec in self.param_specs():
            params[full] = torch.zeros(spec.shape, dtype=self.dtype, device=self.device)
            params[full].requires_grad_(spec.trainable)
        for average, param in self.ema_pairs:  # beside the parameters, so states hold them
            params[average] = torch.zeros_like(params[param]).detach()
        self.hold(params)
        pairs = [(params[a], params[p]) for a, p in self.ema_pairs]
        self.ema_averaged = [(e, p.detach()) for e, p in pairs if p.requires_grad]  # the rest is copied
        self.ema_copied = [(e, p) for e, p in pairs if not p.requires_grad]
        self.slots = {net: {slot: [torch.zeros_like(params[n]).detach() for n in names]
                            for slot in self.optim[net].slots()}
                      for net, names in self.trainable.items()}
        self.statistics = [params[n] for n in self.buffers]

    # -- state ------------------------------------------------------------------------------
    def _read_param(self, name):
        return self.params[name].detach().cpu().numpy().copy()

    @torch.no_grad()
    def _write_param(self, name, value):
        self.params[name].copy_(torch.from_numpy(value))

    def _read_slots(self, net):
        return {name: {slot: tensors[i].cpu().float().numpy().copy() for slot, tensors in self.slots[net].items()}
                for i, name in enumerate(self.trainable[net])}

    @torch.no_grad()
    def _write_slots(self, net, slots):
        for name, values in slots.items():
            i = self.trainable[net].index(name)
            for slot, value in values.items():
                self.slots[net][slot][i].copy_(torch.from_numpy(value))

    # -- steps ------------------------------------------------------------------------------
    def _inputs(self, inputs):
        return {k: torch.from_numpy(v).to(self.device, non_blocking=True) for k, v in self.as_arrays(inputs).items()}

    def _objective(self, step, inputs, loss_scale):
        fn = OBJECTIVES[step]
        self.ops.deferred.clear()  # what an earlier gradients() or failed step left
        if loss_scale is None:
            return fn(self.ops, self.program, self.pg, self.pc, inputs)
        self.ops.grad_scale = loss_scale
        try:
            with torch.autocast(self.device.type, dtype=torch.float16):
                values = fn(self.ops, self.program, self.pg, self.pc, inputs)
        finally:
            self.ops.grad_scale = None
        return {k: v.float() for k, v in values.items()}

    def _differentiate(self, net, inputs, scalars):
        """Gradients of the objective (and its scalars), averaged over the replicas."""
        scale = scalars.loss_scale
        values = self._objective(net, self._inputs(inputs), scale)
        params = [self.params[n] for n in self.trainable[net]]
        if scale is None:
            grads = list(torch.autograd.grad(values["loss"], params))
        else:
            grads = [g.float() / scale for g in torch.autograd.grad(values["loss"] * scale, params)]
        detached = {k: v.detach() for k, v in values.items()}
        if not self.replicas.parallel:
            return detached, grads
        keys = sorted(detached)
        # without synchronised batch norm, every rank keeps the replicas' mean of the statistics
        stats = [] if self.ops.sync_batch_norm else self.statistics
        reduced = self._all_mean(grads + [detached[k].reshape(1).to(grads[0].dtype) for k in keys] + stats)
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

    @torch.no_grad()
    def _write_buffers(self):
        for buffer, value in self.ops.deferred:
            buffer.copy_(value)
        self.ops.deferred.clear()

    @torch.no_grad()
    def _update_average(self, decay):
        torch._foreach_lerp_([e for e, _ in self.ema_averaged], [p for _, p in self.ema_averaged], 1.0 - decay)
        for e, p in self.ema_copied:
            e.copy_(p)

    def _all_finite(self, grads):
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())

    @torch.no_grad()
    def _apply_update(self, net, grads, scalars):
        cfg, slots = self.optim[net], self.slots[net]
        params = [self.params[n] for n in self.trainable[net]]
        if cfg.kind == "adam":
            m, v = slots["m"], slots["v"]
            torch._foreach_lerp_(m, grads, 1.0 - cfg.beta1)
            torch._foreach_mul_(v, cfg.beta2)
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - cfg.beta2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, cfg.eps)
            torch._foreach_addcdiv_(params, m, denom, value=-scalars.step_size)
        else:  # rmsprop
            v = slots["v"]
            torch._foreach_mul_(v, cfg.rho)
            torch._foreach_addcmul_(v, grads, grads, value=1.0 - cfg.rho)
            denom = torch._foreach_add(v, cfg.eps)
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-scalars.step_size)
        if scalars.clip is not None:
            torch._foreach_clamp_min_(params, -scalars.clip)
            torch._foreach_clamp_max_(params, scalars.clip)

    def _fetch(self, values):
        # one transfer; float64 is exact for every dtype, so -t double keeps its digits
        stacked = torch.stack([v.reshape(()).double() for v in values.values()]).cpu().numpy()
        return {k: float(x) for k, x in zip(values, stacked)}

    def _gradient_arrays(self, net, grads):
        return [g.detach().contiguous().cpu().numpy() for g in grads]

    # -- inference --------------------------------------------------------------------------
    def _numpy(self, t):
        """Outputs in the session's dtype (float64 for ``-t double``), float32 otherwise."""
        return t.detach().to(self.dtype).contiguous().cpu().numpy()

    @torch.no_grad()
    def _generate(self, inputs, raw):
        return self._numpy(generator_output(self.ops, self.program, self.generator_params(raw), self._inputs(inputs)))

    @torch.no_grad()
    def _critic_values(self, inputs):
        return self._numpy(critic_output(self.ops, self.program, self.pc, self._inputs(inputs)))

    def _input_gradient(self, inputs):
        return self._numpy(critic_input_gradient(self.ops, self.program, self.pc, self._inputs(inputs)))
