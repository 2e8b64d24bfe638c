"""The NNabla session: each step a static graph built once per input shape and fed through
``.d``, as NNabla's WGAN-GP example trains; the penalty differentiates with ``nn.grad``
inside the graph."""
from __future__ import annotations

import contextlib
from typing import Dict

import nnabla as nn
import nnabla.functions as F
import numpy as np

from wganx.algorithm import EMA_PREFIX, OBJECTIVES, ema_decay_at, ema_name, learning_rate
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

    @contextlib.contextmanager
    def _scope(self):
        with nn.context_scope(self.ctx), nn.auto_forward(False):
            yield

    # -- state ------------------------------------------------------------------------------
    def _read_param(self, name):
        return np.array(self.params[name].d, np.float32)

    def _write_param(self, name, value):
        self.params[name].d = np.asarray(value, np.float32)

    def _read_optimizer(self, net):
        steps, slots = self.solvers[net].get()
        return steps, {f"{net}/{pname}": values for pname, values in slots.items()}

    def _write_optimizer(self, net, steps, slots):
        self.solvers[net].set(steps, {full.split("/", 1)[1]: {k: np.asarray(v, np.float32) for k, v in values.items()}
                                      for full, values in slots.items()})

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
        G, D = self.program.arch.generator, self.program.arch.critic
        if kind in ("critic", "generator"):
            fn = OBJECTIVES[kind]
            pg = self._net_params("generator", kind == "generator")
            pc = self._net_params("critic", kind == "critic")
            self.ops.grad_scale = self.scale_var if self.half else None
            try:
                values = fn(self.ops, self.program, pg, pc, t)
            finally:
                self.ops.grad_scale = None
            outputs = {k: _v(v) for k, v in values.items()}
        elif kind in ("generate", "generate-ema"):
            pg = self._net_params("generator" if kind == "generate" else ema_name("generator"), False)
            outputs = {"x": _v(G.forward(self.ops, pg, t["z"], training=False, labels=t.get("labels")))}
        elif kind == "critic_values":
            pc = self._net_params("critic", False)
            outputs = {"y": _v(D.forward(self.ops, pc, t["x"], training=False, labels=t.get("labels")))}
        elif kind == "input_gradient":
            pc = self._net_params("critic", False)
            self.ops.grad_scale = self.scale_var if self.half else None
            try:
                _, g = self.ops.input_grad(
                    lambda v: D.forward(self.ops, pc, v, training=False, labels=t.get("labels")), t["x"])
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
            arrays += [v.data for n, v in self.params.items() if not v.need_grad and not n.startswith(EMA_PREFIX)]
        return arrays

    def any_replica(self, flag):
        if self.comm is None:
            return bool(flag)
        a = nn.NdArray.from_numpy_array(np.array([1.0 if flag else 0.0], np.float32))
        self.comm.all_reduce([a], division=False, inplace=False)
        return float(a.data[0]) > 0

    def _step(self, net, inputs):
        return self._update(net, self._forward_backward(net, inputs))

    def _update(self, net, graph):
        """The solver's update from the (reduced) gradients; under mixed precision, only from
        finite ones (every replica decides alike)."""
        solver = self.solvers[net]
        with self._scope():
            if self.apply_update(self.loss_scale is None or solver.finite()):
                if self.loss_scale is not None:
                    solver.scale_grad(1.0 / self.loss_scale.scale)
                solver.update(learning_rate(self.program, net, self.solvers["generator"].steps()))
                if net == "critic" and self.clip is not None:
                    c = float(self.clip)
                    for name in self.trainable["critic"]:
                        self.params[name].data.copy_from(F.clip_by_value(self.params[name].data, -c, c))
            self._apply_updates(graph)
            if net == "generator" and self.ema:
                self._update_ema()
            return self._snapshot(graph.outputs)

    def _update_ema(self):
        """``ema = d ema + (1 - d) param`` (:func:`wganx.algorithm.ema_decay_at`), on the device;
        running statistics are copied."""
        self._ema_graph(ema_decay_at(self.program, self.solvers["generator"].steps())).forward(clear_buffer=True)

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

    def fetch(self, values):
        out = {}
        for k, v in values.items():
            arr = v.d if isinstance(v, nn.Variable) else (v.data if isinstance(v, nn.NdArray) else v)
            out[k] = float(np.asarray(arr, np.float64).reshape(()))
        return out

    def _gradients(self, step, inputs):
        # "Without updating anything": batch norm's forward updates its running statistics
        # in place, so they are put back afterwards.
        running = {n: np.array(v.d) for n, v in self.params.items() if not v.need_grad}
        graph = self._forward_backward(step, inputs)
        for n, value in running.items():
            self.params[n].d = value
        scale = 1.0 if self.loss_scale is None else 1.0 / self.loss_scale.scale
        grads = {n: np.array(self.params[n].g, np.float32) * scale for n in self.trainable[step]}
        return self.fetch(graph.outputs), grads

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
