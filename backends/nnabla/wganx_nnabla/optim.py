"""The optimizers of :mod:`wganx.optim` on NNabla parameters: ``S.Adam`` where it computes
wganx's Adam, RMSProp written out where NNabla's differs."""
from __future__ import annotations

import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
import numpy as np


class Adam:
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

    def update(self, scalars):
        """The step at ``scalars.lr``: ``S.Adam`` applies the bias correction of its own count,
        which :meth:`set_steps` keeps equal to the session's (it counts updates alike)."""
        self.solver.set_learning_rate(scalars.lr)
        self.solver.update()

    def get(self):
        """``{param: {slot: numpy}}``."""
        return {n: {s: np.array(st.pstate[k].d, np.float32) for s, k in self.slots.items()}
                for n, st in self.solver.get_states().items()}

    def set(self, slots):
        states = self.solver.get_states()
        for n, st in states.items():
            for s, value in slots.get(n, {}).items():
                st.pstate[self.slots[s]].d = value
        self.solver.set_states(states)

    def set_steps(self, t):
        states = self.solver.get_states()
        for st in states.values():
            st.t = int(t)
        self.solver.set_states(states)


class RMSProp:
    """RMSProp with epsilon inside the root (:mod:`wganx.optim`).

    NNabla's ``S.RMSprop`` divides by ``sqrt(v) + eps`` (measured: 12% off the contract
    with ``eps = 0.5``), so this update is written with imperative NNabla functions on the
    parameters' arrays, in float even under mixed precision.
    """

    def __init__(self, cfg, params, ctx):
        self.cfg, self.params, self.ctx = cfg, params, ctx
        with nn.context_scope(ctx):
            self.v = {n: zeros(p.shape) for n, p in params.items()}

    def zero_grad(self):
        for p in self.params.values():
            p.grad.zero()

    def scale_grad(self, s):
        with nn.context_scope(self.ctx):
            for p in self.params.values():
                p.grad.copy_from(F.mul_scalar(p.grad, s))

    def finite(self):
        return all(np.isfinite(p.g).all() for p in self.params.values())

    def update(self, scalars):
        c, lr = self.cfg, scalars.step_size
        with nn.context_scope(self.ctx):
            for n, p in self.params.items():
                g, v = p.grad, self.v[n]
                v.copy_from(F.add2(F.mul_scalar(v, c.rho), F.mul_scalar(F.mul2(g, g), 1.0 - c.rho)))
                step = F.div2(g, F.pow_scalar(F.add_scalar(v, c.eps), 0.5))
                p.data.copy_from(F.sub2(p.data, F.mul_scalar(step, lr)))

    def get(self):
        return {n: {"v": np.array(v.data, np.float32)} for n, v in self.v.items()}

    def set(self, slots):
        for n, s in slots.items():
            if "v" in s:
                self.v[n].data = s["v"]

    def set_steps(self, t):
        """The session counts; RMSProp's update does not depend on it."""


def zeros(shape):
    a = nn.NdArray(tuple(shape))
    a.zero()
    return a
