"""The TensorFlow session: each step one ``tf.function`` traced once from the program's input
shapes (optionally compiled by XLA) doing the whole of :meth:`wganx.session.Session._train_step`
in one call, the step's scalars (:class:`wganx.session.StepScalars`) fed as scalar inputs;
gradient penalties as a ``tf.GradientTape`` nested in the step's tape; data-parallel, the step
runs under ``strategy.run`` on every replica."""
from __future__ import annotations

from typing import Dict

import numpy as np

from wganx.algorithm import NETWORKS, OBJECTIVES, critic_input_gradient, critic_output, generator_output
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
        self.strategy = backend.strategy
        params: Dict[str, tf.Variable] = {}
        # data-parallel: one copy of each variable per replica (a MirroredVariable)
        with self.strategy.scope() if self.strategy else tf.device(self.device):
            for full, spec in self.param_specs():
                params[full] = tf.Variable(tf.zeros(to_tf_shape(spec.shape), self.dtype),
                                           trainable=spec.trainable, name=variable_name(full))
            # the generator's moving average, beside the parameters (so states and layouts are theirs)
            for average, param in self.ema_pairs:
                params[average] = tf.Variable(tf.zeros_like(params[param]), trainable=False,
                                              name=variable_name(average))
            self.slots = {net: {slot: [tf.Variable(tf.zeros_like(params[n]), trainable=False,
                                                   name=variable_name(state_name(*n.split("/", 1), slot)))
                                       for n in names]
                                for slot in self.optim[net].slots()}
                          for net, names in self.trainable.items()}
        self.hold(params)
        self.ema = [(params[a], params[p]) for a, p in self.ema_pairs]
        self.vars = {net: [params[n] for n in names] for net, names in self.trainable.items()}

        # autograph off: the objectives are plain Python with no tensor-dependent control flow,
        # and autograph's conversion of plugin code is a needless hazard.
        jit = backend.jit_compile
        self._step_fns, self._grad_fns = {}, {}
        for step in NETWORKS:
            if self.strategy is not None:  # per-replica inputs in, per-replica values out
                self._step_fns[step] = self._replicated(self._make_train(step))
                self._grad_fns[step] = self._replicated(self._make_gradients(step))
                continue
            sig = [self._signature(step), self._scalar_signature(step)]
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

    def _read_slots(self, net):
        return {name: {slot: from_tf(variables[i].numpy()) for slot, variables in self.slots[net].items()}
                for i, name in enumerate(self.trainable[net])}

    def _write_slots(self, net, slots):
        for name, values in slots.items():
            i = self.trainable[net].index(name)
            for slot, value in values.items():
                self.slots[net][slot][i].assign(to_tf(value).astype(self.np_dtype))

    # -- inputs -----------------------------------------------------------------------------
    def _signature(self, step):
        return {k: tf.TensorSpec(np.shape(v), self.dtype if np.asarray(v).dtype.kind == "f"
                                 else tf.as_dtype(np.asarray(v).dtype), name=k)
                for k, v in self.program.example_inputs(step).items()}

    def _scalar_names(self, step):
        """The :class:`~wganx.session.StepScalars` a traced step takes as inputs."""
        return ("step_size",) + (("ema_decay",) if step == "generator" and self.ema else ()) + \
            (("loss_scale",) if self.half else ())

    def _scalar_signature(self, step):
        return {k: tf.TensorSpec((), self.dtype, name=k) for k in self._scalar_names(step)}

    def _scalar_feed(self, step, scalars):
        return {k: np.asarray(getattr(scalars, k), self.np_dtype) for k in self._scalar_names(step)}

    def _graph_inputs(self, inputs):
        return {k: tf.transpose(v, TO_NHWC) if v.shape.rank == 4 else v for k, v in inputs.items()}

    # -- steps (traced) ---------------------------------------------------------------------
    def _objective(self, step, inputs, loss_scale):
        fn = OBJECTIVES[step]
        if loss_scale is None:
            return fn(self.ops, self.program, self.pg, self.pc, inputs)
        self.ops.grad_scale, self.ops.compute_dtype = loss_scale, tf.float16
        try:
            values = fn(self.ops, self.program, self.pg, self.pc, inputs)
        finally:
            self.ops.grad_scale, self.ops.compute_dtype = None, None
        return {k: tf.cast(v, tf.float32) for k, v in values.items()}

    def _grads(self, net, inputs, scalars):
        """Step 1 of the training step: the scalars and unscaled gradients, replicas' means."""
        variables = self.vars[net]
        loss_scale = scalars.get("loss_scale")
        self.ops.deferred = []
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(variables)
            values = self._objective(net, self._graph_inputs(inputs), loss_scale)
            loss = values["loss"]
            if loss_scale is not None:
                loss = loss * tf.cast(loss_scale, loss.dtype)
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        grads = [tf.convert_to_tensor(g) for g in grads]  # embeddings give IndexedSlices
        if loss_scale is not None:
            grads = [g / tf.cast(loss_scale, g.dtype) for g in grads]
        if in_replica():  # the replicas' mean: the global batch's gradients and scalars
            keys = sorted(values)
            reduced = all_reduce(grads + [values[k] for k in keys])
            grads, values = reduced[:len(grads)], dict(zip(keys, reduced[len(grads):]))
        return values, grads

    def _make_train(self, net):
        """:meth:`wganx.session.Session._train_step`'s five parts in one traced function."""
        clip = self.clip if net == "critic" else None

        def update(grads, scalars):
            apply_update(self.optim[net], scalars["step_size"], self.vars[net], grads, self.slots[net], clip)
            return tf.constant(True)

        def train(inputs, scalars):
            self.ops.update_stats = True
            values, grads = self._grads(net, inputs, scalars)
            finite = tf.constant(True)
            if self.half:  # the update only from finite gradients; the host moves the scale
                finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
                tf.cond(finite, lambda: update(grads, scalars), lambda: tf.constant(False))
            else:
                update(grads, scalars)
            for variable, value in self.ops.deferred:
                assign(variable, value)
            if "ema_decay" in scalars:  # running statistics are copied
                d = scalars["ema_decay"]
                for e, p in self.ema:
                    assign(e, d * e + (1.0 - d) * p if p.trainable else p)
            return values, finite
        train.__name__ = f"{net}_step"
        return train

    def _make_gradients(self, net):
        def gradients(inputs, scalars):
            self.ops.update_stats = False  # gradients() updates nothing, running stats included
            try:
                return self._grads(net, inputs, scalars)
            finally:
                self.ops.update_stats = True
        gradients.__name__ = f"{net}_gradients"
        return gradients

    def _run(self, fn, inputs, *args):
        with tf.device(self.device):
            return fn(self.as_arrays(inputs), *args)

    # -- data-parallel ----------------------------------------------------------------------
    def _replicated(self, fn):
        """``fn`` run on every replica by the strategy, as one ``tf.function``."""
        return tf.function(lambda *args: self.strategy.run(fn, args=args), autograph=False)

    def _run_replicas(self, fn, inputs, *args):
        """Each local replica's slice of this process's share in, the first replica's values
        out (they are all-reduced, so every replica holds the same)."""
        fed, first, local = self.as_arrays(inputs), self.replicas.first, self.replicas.local
        devices = self.strategy.extended.worker_devices

        def on_replica(ctx):
            index = ctx.replica_id_in_sync_group - first
            with tf.device(devices[index]):
                return {k: tf.constant(v) for k, v in replica_slice(fed, index, local).items()}

        try:
            out = fn(self.strategy.experimental_distribute_values_from_function(on_replica), *args)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as exc:
            raise ReplicaLost(f"worker {self.replicas.process}: a collective with the other workers failed "
                              f"({str(exc.message).strip().splitlines()[0]})") from None
        return tf.nest.map_structure(lambda v: self.strategy.experimental_local_results(v)[0], out)

    def _call(self, fns, step, inputs, scalars):
        args = (inputs, self._scalar_feed(step, scalars))
        if self.strategy is not None:
            return self._run_replicas(fns[step], *args)
        return self._run(fns[step], *args)

    def _train_step(self, net, inputs, scalars):
        values, finite = self._call(self._step_fns, net, inputs, scalars)
        return values, bool(finite.numpy()) if self.half else True  # float: no wait for the device

    def any_replica(self, flag):
        if not self.replicas.parallel:
            return bool(flag)
        flags = np.full((self.replicas.local,), float(flag), self.np_dtype)  # one per local replica
        return bool(self._run_replicas(self._any_fn, {"flag": flags}).numpy()[0] > 0)

    def _fetch(self, values):
        return {k: float(np.asarray(v.numpy()).reshape(())) for k, v in values.items()}

    def _gradients(self, step, inputs):
        values, grads = self._call(self._grad_fns, step, inputs, self.step_scalars(step))
        return (self.fetch(values),
                {n: from_tf(g.numpy()) for n, g in zip(self.trainable[step], grads)})

    # -- inference --------------------------------------------------------------------------
    def _generator_graph(self, inputs, raw):
        return generator_output(self.ops, self.program, self.generator_params(raw), inputs)

    def _critic_graph(self, inputs):
        return critic_output(self.ops, self.program, self.pc, self._graph_inputs(inputs))

    def _input_gradient_graph(self, inputs):
        return critic_input_gradient(self.ops, self.program, self.pc, self._graph_inputs(inputs))

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
