"""What every backend's session shares, written once: the backend-free half of a session.

A backend compiles a :class:`wganx.algorithm.Program` into a :class:`Session` subclass and
supplies only what depends on its framework: its tensors, differentiating an objective,
applying an update on the device, and writing buffers. Everything else is here, so the
backends cannot drift apart: the order of a training step (:meth:`Session._step`,
:meth:`Session._train_step`), its scalars (:class:`StepScalars`: learning rate, Adam's step
size, clipping, the moving average's decay, the loss scale), the step counts, the names of
parameters, moving averages and optimizer slots in states and checkpoints, the checks of
:meth:`Session.set_state`, the optimizer choice, label handling, each process's share of a
data-parallel batch, and the mixed-precision loss-scale policy (:class:`LossScale`).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from .algorithm import (EMA_PREFIX, NETWORKS, Program, ema_decay_at, ema_name, learning_rate, param_specs,
                        split_params, state_shapes)
from .distributed import replica_slice
from .errors import WganxError
from .optim import OPTIMIZERS, parse_state_name, state_name, step_size


class LossScale:
    """Dynamic loss scaling for ``-t half``, one policy for every backend (the rule of
    ``torch.amp.GradScaler``, with the start and the cap a float16 graph can hold).

    The loss is multiplied by :attr:`scale` before the backward and the gradients divided by
    it after. A step whose gradients are not all finite is skipped and halves the scale; after
    :attr:`GROWTH_INTERVAL` finite steps in a row the scale doubles, up to :attr:`MAX`.
    ``2**15`` is the largest power of two a float16 holds (65504 is its maximum): NNabla
    seeds the backward in the graph's dtype. One scale serves the critic and the generator
    steps. The state (:meth:`state`) is part of every session state and checkpoint, so a
    resumed ``-t half`` run continues with the scale it stopped with.
    """

    INITIAL = MAX = 2.0 ** 15
    GROWTH_INTERVAL = 2000
    KEYS = ("loss_scale", "loss_scale_finite_steps")

    def __init__(self):
        self.scale, self.finite_steps = self.INITIAL, 0

    def update(self, finite: bool) -> bool:
        """After a step's gradients: whether to apply them; moves the scale."""
        if not finite:
            self.scale, self.finite_steps = self.scale / 2.0, 0
            return False
        self.finite_steps += 1
        if self.finite_steps >= self.GROWTH_INTERVAL:
            self.scale, self.finite_steps = min(self.scale * 2.0, self.MAX), 0
        return True

    def state(self) -> Dict[str, np.ndarray]:
        return {"loss_scale": np.asarray(self.scale, np.float32),
                "loss_scale_finite_steps": np.asarray(self.finite_steps, np.float32)}

    def load(self, name: str, value) -> None:
        if name == "loss_scale":
            self.scale = float(scalar(name, value))
        else:
            self.finite_steps = int(scalar(name, value))


def scalar(name: str, value) -> np.ndarray:
    """A state's 0-d counter as a 0-d array.

    Checkpoints written by wganx 0.1.0 hold the counters (optimizer steps, the loss scale) with
    shape ``(1,)``; numpy 2.4 refuses ``int()`` of such an array, so both shapes are read here,
    and anything larger is an error naming the array.
    """
    value = np.asarray(value)
    if value.shape not in ((), (1,)):
        raise WganxError(f"{name}: expected a scalar, got shape {tuple(value.shape)}")
    return value.reshape(())


@dataclass(frozen=True)
class StepScalars:
    """The numbers of one update that do not depend on the framework, computed once by
    :meth:`Session.step_scalars` before the step and handed to the backend (as Python
    numbers; a traced backend feeds them to its compiled step as scalar inputs, so it never
    retraces).

    Attributes:
        t: this update's number for the stepped network (1-based; Adam's ``t``): the updates
            it applied before, plus one. Each network counts its own.
        lr: the learning rate (:func:`wganx.algorithm.learning_rate`) at the generator's
            count of applied updates: the critic's steps of one iteration share the
            generator's schedule.
        step_size: what multiplies the update direction (:func:`wganx.optim.step_size`):
            Adam's bias-corrected ``lr * sqrt(1 - b2^t) / (1 - b1^t)``, RMSProp's ``lr``.
        clip: the bound the critic's weights are clipped to after its update (the
            regularizer's ``clip``); None for the generator or without clipping.
        ema_decay: after a generator step, the moving average's weight of its old value,
            :func:`wganx.algorithm.ema_decay_at` of ``t``; None for the critic, or without
            an average.
        loss_scale: under ``-t half``, what the loss is multiplied by before differentiating
            and the gradients divided by after (:class:`LossScale`); None otherwise.
    """

    t: int
    lr: float
    step_size: float
    clip: Optional[float] = None
    ema_decay: Optional[float] = None
    loss_scale: Optional[float] = None


def with_labels(inputs: dict, labels) -> dict:
    return inputs if labels is None else dict(inputs, labels=labels)


class Session(abc.ABC):
    """A compiled program holding the backend's parameters and optimizer state.

    A subclass calls ``super().__init__(backend, program)``, creates one tensor per name of
    :meth:`param_specs` (running statistics included) and, with a moving average, per
    average of :attr:`ema_pairs` (and may hand them to :meth:`hold`), then implements the
    abstract methods below: reading and writing its own tensors in the canonical numpy
    layout (NCHW, OIHW), the training step's parts, and inference.
    """

    def __init__(self, backend, program: Program):
        self.backend, self.program, self.ops = backend, program, backend.ops
        self.replicas = backend.replicas
        self.half = backend.type_config == "half"
        #: the numpy dtype the session computes in: float64 under ``-t double``, else float32
        #: (``-t half`` casts inside its steps)
        self.np_dtype = np.dtype(np.float64 if backend.type_config == "double" else np.float32)
        self.clip = program.regularizer.clip
        self.optim = {net: program.optimizer(net) for net in NETWORKS}
        for cfg in self.optim.values():
            if cfg.kind not in OPTIMIZERS:
                raise WganxError(f"unknown optimizer {cfg.kind!r}; choose one of: {', '.join(OPTIMIZERS)}")
        #: every tensor of the state but the optimizer's, by name, in the canonical shape
        self.shapes = state_shapes(program)
        #: trainable parameters by network, canonical names in a fixed order
        self.trainable: Dict[str, List[str]] = {
            net: [name for name, spec in self.param_specs(net) if spec.trainable] for net in NETWORKS}
        #: ``(average, parameter)`` names of the generator's moving average
        self.ema_pairs = [(ema_name(name), name) for name, _ in self.param_specs("generator")] \
            if program.ema_decay else []
        self.loss_scale = LossScale() if self.half else None
        #: updates applied, per network: the count of every :class:`StepScalars` and of
        #: ``optimizer/<net>/t`` in states
        self.steps = {net: 0 for net in NETWORKS}
        #: running statistics and other buffers the forward writes (not the moving average)
        self.buffers = [name for name, spec in self.param_specs() if not spec.trainable]

    def hold(self, params: Mapping[str, Any]) -> None:
        """Keep the backend's tensors by canonical name (parameters, running statistics and
        averages): sets :attr:`params`, and the generator's, the critic's and the averaged
        generator's by their names inside the network (:attr:`pg`, :attr:`pc`,
        :attr:`pg_ema`), as the objectives and architectures take them."""
        self.params = dict(params)
        self.pg, self.pc = split_params(self.params)
        self.pg_ema = split_params({k[len(EMA_PREFIX):]: v for k, v in self.params.items()
                                    if k.startswith(EMA_PREFIX)})[0]

    def generator_params(self, raw: bool) -> Mapping[str, Any]:
        """The generator's tensors (``raw``) or its moving average's, as :meth:`hold` keeps them."""
        return self.pg if raw else self.pg_ema

    def param_specs(self, net: Optional[str] = None) -> Iterator[Tuple[str, object]]:
        """:func:`wganx.algorithm.param_specs` of this session's program."""
        return param_specs(self.program, net)

    # -- state --------------------------------------------------------------------------------
    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Load parameters (``generator/...``, ``critic/...``, running statistics included),
        optimizer state (``optimizer/...``), the generator's moving average
        (``ema/generator/...``, :func:`wganx.algorithm.ema_name`) and the loss scale; names
        not given keep their values, names the session does not hold are ignored, a wrong
        shape is an error naming the array."""
        optimizer = {}  # net -> [steps, {parameter: {slot: value}}], written once per network
        for name, value in arrays.items():
            if name in self.shapes:
                self._write_param(name, self._checked(name, value, self.shapes[name]))
            elif name in LossScale.KEYS:
                if self.loss_scale is not None:
                    self.loss_scale.load(name, value)
            elif (key := parse_state_name(name)) is not None:
                net, pname, slot = key
                slots = optimizer.setdefault(net, [None, {}])[1]
                if pname is None:
                    optimizer[net][0] = int(scalar(name, value))
                    continue
                full = f"{net}/{pname}"
                if full not in self.trainable[net]:
                    raise WganxError(f"{name}: {full} is not a trainable parameter of this program")
                if slot not in self.optim[net].slots():
                    raise WganxError(f"{name}: the {net}'s {self.optim[net].kind} has no slot {slot!r}")
                slots.setdefault(full, {})[slot] = self._checked(name, value, self.shapes[full])
        for net, (steps, slots) in optimizer.items():
            if steps is not None:
                self.steps[net] = steps
                self._steps_set(net, steps)
            if slots:
                self._write_slots(net, slots)

    @staticmethod
    def _checked(name: str, value, shape: tuple) -> np.ndarray:
        value = np.asarray(value)
        if tuple(value.shape) != tuple(shape):
            raise WganxError(f"{name}: expected shape {tuple(shape)}, got {tuple(value.shape)}")
        return value

    def get_state(self) -> Dict[str, np.ndarray]:
        """Every parameter, running statistic, moving average, optimizer slot and step count,
        and the loss scale under ``-t half``, as float32 numpy."""
        out = {name: np.asarray(self._read_param(name), np.float32) for name in self.shapes}
        for net in NETWORKS:
            out[state_name(net)] = np.asarray(self.steps[net], np.float32)
            for full, values in self._read_slots(net).items():
                for slot, value in values.items():
                    out[state_name(net, full.split("/", 1)[1], slot)] = np.asarray(value, np.float32)
        if self.loss_scale is not None:
            out.update(self.loss_scale.state())
        return out

    @abc.abstractmethod
    def _read_param(self, name: str) -> np.ndarray:
        """Parameter, running statistic or moving average ``name`` in the canonical layout,
        with the precision the session holds it in (float64 under ``-t double``), so that
        writing it back restores it exactly."""

    @abc.abstractmethod
    def _write_param(self, name: str, value: np.ndarray) -> None:
        """Set ``name`` (canonical layout, already checked) in place."""

    @abc.abstractmethod
    def _read_slots(self, net: str) -> Dict[str, Dict[str, np.ndarray]]:
        """``{parameter: {slot: value}}`` of ``net``'s optimizer (canonical layout)."""

    @abc.abstractmethod
    def _write_slots(self, net: str, slots: Dict[str, Dict[str, np.ndarray]]) -> None:
        """Set the given slots of ``net``'s optimizer (already checked)."""

    def _steps_set(self, net: str, steps: int) -> None:
        """A state set :attr:`steps` of ``net``: a framework optimizer that keeps its own
        count (NNabla's ``S.Adam``) follows here; most backends need nothing."""

    # -- steps --------------------------------------------------------------------------------
    def critic_step(self, inputs: Mapping[str, np.ndarray]) -> Dict:
        """One critic update on the global batch ``inputs`` (this process computes on its
        share); returns the objective's scalars as backend values.

        The values stay on the device: call :meth:`fetch` only when logging, so a step
        never waits for the device.
        """
        return self._step("critic", self.process_share(inputs))

    def generator_step(self, inputs: Mapping[str, np.ndarray]) -> Dict:
        """One generator update, then the moving average's (:func:`wganx.algorithm.ema_decay_at`),
        on the device; returns ``{"loss": ...}`` as backend values."""
        return self._step("generator", self.process_share(inputs))

    def gradients(self, step: str, inputs: Mapping[str, np.ndarray]) -> tuple:
        """``(scalars, grads)`` of ``step``'s objective without updating anything.

        ``scalars`` maps the objective's scalars (as :meth:`critic_step` names them) to
        Python floats, already fetched; ``grads`` maps every trainable parameter of the
        stepped network (canonical name with its ``generator/`` or ``critic/`` prefix) to its
        gradient as a numpy array of the parameter's canonical shape. The same types on
        every backend; data-parallel, the gradients of the global batch.
        """
        return self._gradients(step, self.process_share(inputs))

    def as_arrays(self, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Step and inference inputs as the session computes with them: floating arrays in
        :attr:`np_dtype`, labels int64; the rest as given."""
        out = {}
        for k, v in inputs.items():
            v = np.asarray(v)
            if v.dtype.kind == "f":
                v = v.astype(self.np_dtype, copy=False)
            elif k == "labels":
                v = v.astype(np.int64, copy=False)
            out[k] = v
        return out

    def process_share(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """This process's contiguous share of the global batch: the slices of the replicas it
        drives (all of it when it runs alone). An input that is already the share's length
        passes as it is: the training loop reads only this process's rows of the real batch
        (:meth:`wganx.data.Dataset.share`)."""
        r = self.replicas
        if r.local == r.size:
            return inputs
        whole = {k: v for k, v in inputs.items() if len(v) == self.program.batch_size}
        return {**inputs, **replica_slice(whole, *r.process_share)}

    def record_update(self, net: str, finite) -> bool:
        """After a step of ``net``: whether it applied its (reduced) gradients, always in
        float, under ``-t half`` the loss-scale policy's decision on ``finite`` (every replica
        decides alike, on the same reduced gradients), which also moves the scale; an applied
        update is counted in :attr:`steps`."""
        applied = self.loss_scale is None or self.loss_scale.update(bool(finite))
        if applied:
            self.steps[net] += 1
        return applied

    def step_scalars(self, net: str) -> StepScalars:
        """The scalars of ``net``'s next update (:class:`StepScalars`)."""
        cfg, t = self.optim[net], self.steps[net] + 1
        lr = learning_rate(self.program, net, self.steps["generator"])
        return StepScalars(
            t=t, lr=lr, step_size=step_size(cfg, lr, t), clip=self.clip if net == "critic" else None,
            ema_decay=ema_decay_at(self.program, t) if net == "generator" and self.ema_pairs else None,
            loss_scale=None if self.loss_scale is None else self.loss_scale.scale)

    def _step(self, net: str, inputs: Mapping[str, np.ndarray]) -> Dict:
        """One update of ``net`` on this process's share of the batch: its scalars, the
        backend's :meth:`_train_step`, then the bookkeeping (the loss scale, the step count).
        The backend's values stay on the device."""
        values, finite = self._train_step(net, inputs, self.step_scalars(net))
        self.record_update(net, finite)
        return values

    def _train_step(self, net: str, inputs: Mapping[str, np.ndarray], scalars: StepScalars) -> tuple:
        """``(values, finite)``: one training step in the order every backend follows.

        1. differentiate ``OBJECTIVES[net]``'s ``"loss"`` by ``net``'s trainable parameters,
           in training mode (batch norm updates its running statistics, of both networks:
           the critic step runs the generator too), with the gradients and the objective's
           scalars averaged over the replicas (:meth:`_differentiate`);
        2. under ``-t half``, whether every gradient is finite (:meth:`_all_finite`); the
           update is applied only then, and the base class moves the loss scale;
        3. the optimizer's update of :mod:`wganx.optim` with ``scalars.step_size`` (and
           ``scalars.clip``: the critic's weights clipped after it) (:meth:`_apply_update`);
        4. the ``defer_update`` writes the objective asked for (:meth:`_write_buffers`),
           whether or not the update was applied;
        5. after a generator step, the moving average with ``scalars.ema_decay``
           (:meth:`_update_average`; running statistics are copied, not averaged).

        This default drives the parts from the host (PyTorch, NNabla). A traced backend
        overrides it with one compiled function doing the same, with ``scalars`` as its
        scalar inputs, and returns ``finite`` as a Python bool (``True`` when not ``-t
        half``, so that a float step never waits for the device).
        """
        return self._finish_step(net, *self._differentiate(net, inputs, scalars), scalars)

    def _finish_step(self, net: str, values, grads, scalars: StepScalars) -> tuple:
        """Steps 2 to 5 of :meth:`_train_step`, after the (reduced) gradients."""
        finite = self.loss_scale is None or self._all_finite(grads)
        if finite:
            self._apply_update(net, grads, scalars)
        self._write_buffers()
        if scalars.ema_decay is not None:
            self._update_average(scalars.ema_decay)
        return values, finite

    # The parts of the default _train_step; a backend that overrides it needs none of them.
    def _differentiate(self, net: str, inputs: Mapping[str, np.ndarray], scalars: StepScalars) -> tuple:
        """``(values, grads)``: the objective's scalars on the device and the gradients of its
        loss (unscaled by ``scalars.loss_scale``), both averaged over the replicas; running
        statistics updated, ``defer_update`` writes collected for :meth:`_write_buffers`."""
        raise NotImplementedError(f"{type(self).__name__} overrides neither _train_step nor _differentiate")

    def _all_finite(self, grads) -> bool:
        """Whether every gradient is finite (asked under ``-t half`` only)."""
        raise NotImplementedError

    def _apply_update(self, net: str, grads, scalars: StepScalars) -> None:
        """The optimizer's update of ``net`` from ``grads``, then clipping to ``scalars.clip``."""
        raise NotImplementedError

    def _write_buffers(self) -> None:
        """Copy the step's ``defer_update`` values into their buffers."""
        raise NotImplementedError

    def _update_average(self, decay: float) -> None:
        """``ema = decay * ema + (1 - decay) * param`` for each trainable pair of
        :attr:`ema_pairs`; running statistics copied."""
        raise NotImplementedError

    def _gradients(self, step: str, inputs: Mapping[str, np.ndarray]) -> tuple:
        """:meth:`gradients` on this process's share: the default for a backend with the parts
        of :meth:`_train_step` differentiates, then puts back the running statistics that
        batch norm's forward wrote (the ``defer_update`` pairs are dropped by the next
        :meth:`_differentiate`). A backend that overrides :meth:`_train_step` overrides this."""
        kept = {name: self._read_param(name) for name in self.buffers}
        values, grads = self._differentiate(step, inputs, self.step_scalars(step))
        for name, value in kept.items():
            self._write_param(name, value)
        return self.fetch(values), dict(zip(self.trainable[step], self._gradient_arrays(step, grads)))

    def _gradient_arrays(self, net: str, grads) -> List[np.ndarray]:
        """What :meth:`_differentiate` returned as numpy, one per ``self.trainable[net]``."""
        raise NotImplementedError

    def fetch(self, values: Mapping) -> Dict[str, float]:
        """Backend scalars -> Python floats (this synchronises); values that are Python
        numbers already pass through, so fetching twice is harmless."""
        out = {k: float(v) for k, v in values.items() if isinstance(v, (int, float, np.generic))}
        pending = {k: v for k, v in values.items() if k not in out}
        if pending:
            out.update(self._fetch(pending))
        return {k: out[k] for k in values}

    @abc.abstractmethod
    def _fetch(self, values: Mapping) -> Dict[str, float]:
        """The backend's scalars -> Python floats, in one transfer where the framework can."""

    def any_replica(self, flag: bool) -> bool:
        """True on every replica when ``flag`` is true on any (a collective: every process
        calls it at the same point); lets all replicas stop after the same iteration."""
        return bool(flag)

    # -- inference ----------------------------------------------------------------------------
    def generate(self, z: np.ndarray, labels: Optional[np.ndarray] = None, *, raw: bool = False) -> np.ndarray:
        """Generator output in inference mode (batch norm uses running statistics).

        When the program keeps a moving average of the generator (``Program.ema_decay``), the
        output is the averaged generator's unless ``raw``.
        """
        return self._generate(with_labels({"z": z}, labels), raw or not self.program.ema_decay)

    def critic_values(self, x: np.ndarray, labels: Optional[np.ndarray] = None) -> np.ndarray:
        """``D(x)`` as ``(N, 1)`` numpy."""
        return self._critic_values(with_labels({"x": x}, labels))

    def input_gradient(self, x: np.ndarray, labels: Optional[np.ndarray] = None) -> np.ndarray:
        """``d sum D(x) / dx`` through ``ops.input_grad``, in the session's dtype."""
        return self._input_gradient(with_labels({"x": x}, labels))

    @abc.abstractmethod
    def _generate(self, inputs: Mapping[str, np.ndarray], raw: bool) -> np.ndarray:
        """The generator (``raw``) or its moving average on ``inputs["z"]`` (and labels)."""

    @abc.abstractmethod
    def _critic_values(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The critic on ``inputs["x"]``."""

    @abc.abstractmethod
    def _input_gradient(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """``d sum D(x) / dx`` at ``inputs["x"]``."""
