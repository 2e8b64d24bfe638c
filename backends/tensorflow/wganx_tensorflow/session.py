"""The TensorFlow session: each step one ``tf.function`` traced once from the program's input
shapes (optionally compiled by XLA), the optimizer update of :mod:`wganx.optim` inside it,
gradient penalties as a ``tf.GradientTape`` nested in the step's tape; data-parallel, the
step runs under ``strategy.run`` on every replica."""
from __future__ import annotations

from typing import Dict

import numpy as np

from wganx.algorithm import EMA_PREFIX, NETWORKS, OBJECTIVES, learning_rate, split_params
from wganx.distributed import ReplicaLost, replica_slice
from wganx.optim import state_name
from wganx.session import Session

from .layout import TO_NCHW, TO_NHWC, from_tf, to_tf, variable_name, to_tf_shape
from .optim import apply_update
from .replicas import all_reduce, assign, in_replica
from .runtime import tf


class TensorFlowSession(Session):
    def __init__(self, backend, program):
        super().__init__(backend, program)
        self.device, self.dtype = backend.device, backend.dtype
        self.np_dtype = self.dtype.as_numpy_dtype
        self.strategy = backend.strategy
        self.params: Dict[str, tf.Variable] = {}
        # data-parallel: one copy of each variable per replica (a MirroredVariable)
        with self.strategy.scope() if self.strategy else tf.device(self.device):
            for full, spec in self.param_specs():
                self.params[full] = tf.Variable(tf.zeros(to_tf_shape(spec.shape), self.dtype),
                                                trainable=spec.trainable, name=variable_name(full))
            # the generator's moving average, beside the parameters (so states and layouts are theirs)
            for average, param in self.ema_pairs:
                self.params[average] = tf.Variable(tf.zeros_like(self.params[param]), trainable=False,
                                                   name=variable_name(average))
            self.slots = {net: {slot: [tf.Variable(tf.zeros_like(self.params[n]), trainable=False,
                                                   name=variable_name(state_name(*n.split("/", 1), slot)))
                                       for n in names]
                                for slot in self.optim[net].slots()}
                          for net, names in self.trainable.items()}
            self.steps = {net: tf.Variable(0, dtype=tf.int64, trainable=False,
                                           name=state_name(net)) for net in self.trainable}
            # the loss scale as the traced steps read it; the policy (wganx.session.LossScale) sets it
            self.scale_var = tf.Variable(self.loss_scale.scale, dtype=tf.float32, trainable=False,
                                         name="loss_scale") if self.half else None
        self.pg, self.pc = split_params(self.params)
        self.pg_ema = split_params({k[len(EMA_PREFIX):]: v for k, v in self.params.items()
                                    if k.startswith(EMA_PREFIX)})[0]
        self.ema = [(self.params[a], self.params[p]) for a, p in self.ema_pairs]
        self.vars = {net: [self.params[n] for n in names] for net, names in self.trainable.items()}

        # autograph off: the objectives are plain Python with no tensor-dependent control flow,
        # and autograph's conversion of plugin code is a needless hazard.
        jit = backend.jit_compile
        self._step_fns, self._grad_fns = {}, {}
        for step in NETWORKS:
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
            lambda inputs: all_reduce([tf.identity(inputs["flag"])], tf.distribute.ReduceOp.SUM)[0]) \
            if self.strategy is not None else None
        self._generate_fns = {raw: tf.function(lambda inputs, raw=raw: self._generator_graph(inputs, raw),
                                               autograph=False) for raw in (False, True)}
        self._critic_fn = tf.function(self._critic_graph, autograph=False)
        self._input_grad_fn = tf.function(self._input_gradient_graph, autograph=False)

    # -- state ------------------------------------------------------------------------------
    def _read_param(self, name):
        return from_tf(self.params[name].numpy())

    def _write_param(self, name, value):
        self.params[name].assign(to_tf(value).astype(self.np_dtype))

    def _read_optimizer(self, net):
        return int(self.steps[net].numpy()), {
            name: {slot: from_tf(variables[i].numpy()) for slot, variables in self.slots[net].items()}
            for i, name in enumerate(self.trainable[net])}

    def _write_optimizer(self, net, steps, slots):
        if steps is not None:
            self.steps[net].assign(steps)
        for name, values in slots.items():
            i = self.trainable[net].index(name)
            for slot, value in values.items():
                self.slots[net][slot][i].assign(to_tf(value).astype(self.np_dtype))

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
        return {k: tf.TensorSpec(shape, dtype, name=k) for k, (shape, dtype) in shapes.items()}

    def _feed(self, inputs):
        """numpy (NCHW) -> arrays of the session's dtype; the step transposes images to NHWC."""
        out = {}
        for k, v in inputs.items():
            v = np.asarray(v)
            if v.dtype.kind == "f":
                v = v.astype(self.np_dtype, copy=False)
            elif k == "labels":
                v = v.astype(np.int64, copy=False)
            out[k] = v
        return out

    def _graph_inputs(self, inputs):
        return {k: tf.transpose(v, TO_NHWC) if v.shape.rank == 4 else v for k, v in inputs.items()}

    # -- steps (traced) ---------------------------------------------------------------------
    def _objective(self, step, inputs):
        fn = OBJECTIVES[step]
        if not self.half:
            return fn(self.ops, self.program, self.pg, self.pc, inputs)
        self.ops.grad_scale, self.ops.compute_dtype = self.scale_var, tf.float16
        try:
            values = fn(self.ops, self.program, self.pg, self.pc, inputs)
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
                loss = loss * self.scale_var
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        grads = [tf.convert_to_tensor(g) for g in grads]  # embeddings give IndexedSlices
        if self.half:
            grads = [g / tf.cast(self.scale_var, g.dtype) for g in grads]
        if in_replica():  # the replicas' mean: the global batch's gradients and scalars
            keys = sorted(values)
            reduced = all_reduce(grads + [values[k] for k in keys])
            grads, values = reduced[:len(grads)], dict(zip(keys, reduced[len(grads):]))
        return values, grads

    def _update(self, net, grads):
        lr = learning_rate(self.program, net, tf.cast(self.steps["generator"], tf.float64), tf.maximum)
        apply_update(self.optim[net], lr, self.steps[net], self.vars[net], grads, self.slots[net], self.dtype,
                     self.clip if net == "critic" else None)

    def _make_train(self, net):
        def train(inputs):
            self.ops.update_stats = True
            values, grads = self._grads(net, inputs)
            finite = tf.constant(True)
            if self.half:  # the update only from finite gradients; the host moves the scale
                finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

                def apply():
                    self._update(net, grads)
                    return tf.constant(True)

                tf.cond(finite, apply, lambda: tf.constant(False))
            else:
                self._update(net, grads)
            for variable, value in self.ops.deferred:
                assign(variable, value)
            if net == "generator" and self.ema:
                self._update_ema()
            return values, finite
        train.__name__ = f"{net}_step"
        return train

    def _update_ema(self):
        """:func:`wganx.algorithm.ema_decay_at` on the step counter: ``d = ema_decay`` once the
        step passes ``ema_start``, else 0; running statistics are copied."""
        past_start = self.steps["generator"] > self.program.ema_start
        d = tf.where(past_start, tf.constant(self.program.ema_decay, self.dtype), tf.constant(0.0, self.dtype))
        for e, p in self.ema:
            assign(e, d * e + (1.0 - d) * p if p.trainable else p)

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
        """Each local replica's slice of this process's share in, the first replica's values
        out (they are all-reduced, so every replica holds the same)."""
        fed, first, local = self._feed(inputs), self.replicas.first, self.replicas.local
        devices = self.strategy.extended.worker_devices

        def on_replica(ctx):
            index = ctx.replica_id_in_sync_group - first
            with tf.device(devices[index]):
                return {k: tf.constant(v) for k, v in replica_slice(fed, index, local).items()}

        try:
            out = fn(self.strategy.experimental_distribute_values_from_function(on_replica))
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as exc:
            raise ReplicaLost(f"worker {self.replicas.process}: a collective with the other workers failed "
                              f"({str(exc.message).strip().splitlines()[0]})") from None
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def _call(self, fns, step, inputs):
        if self.strategy is not None:
            return self._run_replicas(fns[step], inputs)
        return self._run(fns[step], inputs)

    def _step(self, net, inputs):
        values, finite = self._call(self._step_fns, net, inputs)
        if self.half:  # the graph applied the update exactly when the gradients were finite
            self.apply_update(bool(finite.numpy()))
            if float(self.scale_var.numpy()) != self.loss_scale.scale:
                self.scale_var.assign(self.loss_scale.scale)
        return values

    def any_replica(self, flag):
        if not self.replicas.parallel:
            return bool(flag)
        flags = np.full((self.replicas.local,), float(flag), self.np_dtype)  # one per local replica
        return bool(self._run_replicas(self._any_fn, {"flag": flags}).numpy()[0] > 0)

    def fetch(self, values):
        return {k: float(np.asarray(v.numpy() if hasattr(v, "numpy") else v).reshape(()))
                for k, v in values.items()}

    def _gradients(self, step, inputs):
        values, grads = self._call(self._grad_fns, step, inputs)
        return (self.fetch(values),
                {n: from_tf(g.numpy()) for n, g in zip(self.trainable[step], grads)})

    # -- inference --------------------------------------------------------------------------
    def _generator_graph(self, inputs, raw):
        return self.program.arch.generator.forward(self.ops, self.pg if raw else self.pg_ema, inputs["z"],
                                                   training=False, labels=inputs.get("labels"))

    def _critic_graph(self, inputs):
        inputs = self._graph_inputs(inputs)
        return self.program.arch.critic.forward(self.ops, self.pc, inputs["x"], training=False,
                                                labels=inputs.get("labels"))

    def _input_gradient_graph(self, inputs):
        inputs = self._graph_inputs(inputs)
        critic = self.program.arch.critic
        _, g = self.ops.input_grad(
            lambda v: critic.forward(self.ops, self.pc, v, training=False, labels=inputs.get("labels")),
            inputs["x"])
        return g

    def _numpy(self, y):
        """NCHW numpy in the session's dtype (float64 for ``-t double``), float32 otherwise."""
        y = y.numpy()
        y = y.transpose(TO_NCHW) if y.ndim == 4 else y
        return y.astype(self.np_dtype, copy=False)

    def _generate(self, inputs, raw):
        return self._numpy(self._run(self._generate_fns[bool(raw)], inputs))

    def _critic_values(self, inputs):
        return self._numpy(self._run(self._critic_fn, inputs))

    def _input_gradient(self, inputs):
        return self._numpy(self._run(self._input_grad_fn, inputs))
