"""The NNabla session: each step a static graph built once per input shape and fed through
``.d``, as NNabla's WGAN-GP example trains; the penalty differentiates with ``nn.grad``
inside the graph."""
from __future__ import annotations

import contextlib
from typing import Dict

import nnabla as nn
import nnabla.functions as F
import numpy as np

from wganx.algorithm import OBJECTIVES, critic_input_gradient, critic_output, ema_name, generator_output
from wganx.session import Session

from .ops import Tensor, _v
from .optim import Adam, RMSProp


class _Graph:
    """One static graph: its input variables and its output variables."""

    __slots__ = ("inputs", "outputs", "head", "updates")

    def __init__(self, inputs, outputs, head, updates=()):
        self.inputs, self.outputs, self.head = inputs, outputs, head
        self.updates = list(updates)  # (buffer, value) that a training step copies when it ends


class NNablaSession(Session):
    def __init__(self, backend, program):
        super().__init__(backend, program)
        self.ctx, self.comm = backend.ctx, backend.comm
        self.params: Dict[str, nn.Variable] = {}
        with self._scope():
            for full, spec in self.param_specs():
                self.params[full] = nn.Variable(tuple(spec.shape), need_grad=spec.trainable)
                self.params[full].data.zero()
            # the generator's moving average: (average, parameter) pairs beside the parameters
            for average, param in self.ema_pairs:
                self.params[average] = nn.Variable(self.params[param].shape, need_grad=False)
                self.params[average].data.zero()
            self.ema = [(self.params[a], self.params[p]) for a, p in self.ema_pairs]
            self._ema_graphs = {}
            self.solvers = {}
            for net, cfg in self.optim.items():
                params = {full.split("/", 1)[1]: self.params[full] for full in self.trainable[net]}
                self.solvers[net] = Adam(cfg, params) if cfg.kind == "adam" else RMSProp(cfg, params, backend.float_ctx)
            # the loss scale, as the penalty graphs see it
            self.scale_var = nn.Variable(()) if self.half else None
        self.graphs: Dict[tuple, _Graph] = {}
        self._updates = []  # the defer_update pairs of the step being taken

    @contextlib.contextmanager
    def _scope(self):
        with nn.context_scope(self.ctx), nn.auto_forward(False):
            yield

    # -- state ------------------------------------------------------------------------------
    def _read_param(self, name):
        return np.array(self.params[name].d, np.float32)

    def _write_param(self, name, value):
        self.params[name].d = np.asarray(value, np.float32)

    def _read_slots(self, net):
        return {f"{net}/{pname}": values for pname, values in self.solvers[net].get().items()}

    def _write_slots(self, net, slots):
        self.solvers[net].set({full.split("/", 1)[1]: {k: np.asarray(v, np.float32) for k, v in values.items()}
                               for full, values in slots.items()})

    def _steps_set(self, net, steps):
        self.solvers[net].set_steps(steps)

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
            self.scale_var.d = self.loss_scale.scale
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
        if kind in ("critic", "generator"):
            pg = self._net_params("generator", kind == "generator")
            pc = self._net_params("critic", kind == "critic")
            values = self._scaled(OBJECTIVES[kind], pg, pc, t)
            outputs = {k: _v(v) for k, v in values.items()}
        elif kind in ("generate", "generate-ema"):
            pg = self._net_params("generator" if kind == "generate" else ema_name("generator"), False)
            outputs = {"x": _v(generator_output(self.ops, self.program, pg, t))}
        elif kind == "critic_values":
            outputs = {"y": _v(critic_output(self.ops, self.program, self._net_params("critic", False), t))}
        elif kind == "input_gradient":
            g = self._scaled(lambda ops, program, pg, pc, t: critic_input_gradient(ops, program, pc, t),
                             None, self._net_params("critic", False), t)
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

    def _scaled(self, fn, pg, pc, t):
        """``fn(ops, program, pg, pc, t)`` with ``ops.grad_scale`` the loss scale's variable
        under ``-t half`` (fed every step from :class:`wganx.session.StepScalars`)."""
        self.ops.grad_scale = self.scale_var if self.half else None
        try:
            return fn(self.ops, self.program, pg, pc, t)
        finally:
            self.ops.grad_scale = None

    # -- steps ------------------------------------------------------------------------------
    def _forward_backward(self, net, inputs):
        graph = self._graph(net, inputs)
        self._feed(graph, inputs)
        loss = graph.outputs["loss"]
        with self._scope():
            self.solvers[net].zero_grad()
            graph.head.forward(clear_no_need_grad=True)
            if self.loss_scale is None:
                loss.backward(clear_buffer=True)
            else:
                loss.backward(self.loss_scale.scale, clear_buffer=True)
        if self.comm is not None:
            self.comm.all_reduce(self._reduced(net, graph), division=True, inplace=False)
        return graph

    def _reduced(self, net, graph) -> list:
        """What the replicas average after a backward: the gradients, the step's scalars and,
        without synchronised batch norm, the running statistics (so that every replica keeps
        the same)."""
        arrays = [self.params[n].grad for n in self.trainable[net]] + [v.data for v in graph.outputs.values()]
        if not self.ops.sync_batch_norm:
            arrays += [self.params[n].data for n in self.buffers]
        return arrays

    def _differentiate(self, net, inputs, scalars):
        return self._differentiated(net, self._forward_backward(net, inputs))

    def _differentiated(self, net, graph):
        """After the (reduced) backward: copies of the scalars, and the solver holding the
        gradients, unscaled; the graph's ``defer_update`` pairs wait for :meth:`_write_buffers`."""
        solver = self.solvers[net]
        if self.loss_scale is not None:
            with self._scope():
                solver.scale_grad(1.0 / self.loss_scale.scale)
        self._updates = graph.updates
        return self._snapshot(graph.outputs), solver

    def any_replica(self, flag):
        if self.comm is None:
            return bool(flag)
        a = nn.NdArray.from_numpy_array(np.array([1.0 if flag else 0.0], np.float32))
        self.comm.all_reduce([a], division=False, inplace=False)
        return float(a.data[0]) > 0

    def _all_finite(self, solver):
        return solver.finite()

    def _apply_update(self, net, solver, scalars):
        with self._scope():
            solver.update(scalars)
            if scalars.clip is not None:
                c = float(scalars.clip)
                for name in self.trainable[net]:
                    self.params[name].data.copy_from(F.clip_by_value(self.params[name].data, -c, c))

    def _write_buffers(self):
        for buffer, value in self._updates:
            buffer.data.copy_from(value.data)
        self._updates = []

    def _update_average(self, decay):
        """One graph of ``F.assign`` per decay (:meth:`_ema_graph`), on the device."""
        with self._scope():
            self._ema_graph(decay).forward(clear_buffer=True)

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

    def _snapshot(self, outputs):
        """Copies of the step's scalars on the device (the next step overwrites the graph's)."""
        out = {}
        for k, v in outputs.items():
            a = nn.NdArray(v.shape)
            a.copy_from(v.data)
            out[k] = a
        return out

    def _fetch(self, values):
        out = {}
        for k, v in values.items():
            arr = v.d if isinstance(v, nn.Variable) else v.data
            out[k] = float(np.asarray(arr, np.float64).reshape(()))
        return out

    def _gradient_arrays(self, net, solver):
        return [np.array(self.params[n].g, np.float32) for n in self.trainable[net]]

    # -- inference --------------------------------------------------------------------------
    def _run(self, kind, inputs, out):
        graph = self._graph(kind, inputs)
        self._feed(graph, inputs)
        y = graph.outputs[out]
        with self._scope():
            graph.head.forward(clear_buffer=True)
        return np.array(y.d, np.float32)

    def _generate(self, inputs, raw):
        return self._run("generate" if raw else "generate-ema", inputs, "x")

    def _critic_values(self, inputs):
        return self._run("critic_values", inputs, "y")

    def _input_gradient(self, inputs):
        return self._run("input_gradient", inputs, "g")
