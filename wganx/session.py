"""What every backend's session shares, written once: the backend-free half of a session.

A backend compiles a :class:`wganx.algorithm.Program` into a :class:`Session` subclass and
supplies only what depends on its framework: its tensors, the compiled steps and the
optimizer update on the device. Everything else is here, so the three backends cannot drift
apart: the names of parameters, moving averages and optimizer slots in states and
checkpoints, the checks of :meth:`Session.set_state`, the optimizer choice, label handling,
each process's share of a data-parallel batch, and the mixed-precision loss-scale policy
(:class:`LossScale`).
"""
from __future__ import annotations

import abc
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from .algorithm import NETWORKS, Program, ema_name, param_specs, state_shapes
from .distributed import replica_slice
from .errors import WganxError
from .optim import OPTIMIZERS, parse_state_name, state_name


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


def with_labels(inputs: dict, labels) -> dict:
    return inputs if labels is None else dict(inputs, labels=labels)


class Session(abc.ABC):
    """A compiled program holding the backend's parameters and optimizer state.

    A subclass calls ``super().__init__(backend, program)``, creates one tensor per name of
    :meth:`param_specs` (running statistics included) and, with a moving average, per
    average of :attr:`ema_pairs`, then implements the abstract methods below: the steps, and
    reading and writing its own tensors in the canonical numpy layout (NCHW, OIHW).
    """

    def __init__(self, backend, program: Program):
        self.backend, self.program, self.ops = backend, program, backend.ops
        self.replicas = backend.replicas
        self.half = backend.type_config == "half"
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
            self._write_optimizer(net, steps, slots)

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
            steps, slots = self._read_optimizer(net)
            out[state_name(net)] = np.asarray(steps, np.float32)
            for full, values in slots.items():
                for slot, value in values.items():
                    out[state_name(net, full.split("/", 1)[1], slot)] = np.asarray(value, np.float32)
        if self.loss_scale is not None:
            out.update(self.loss_scale.state())
        return out

    @abc.abstractmethod
    def _read_param(self, name: str) -> np.ndarray:
        """Parameter, running statistic or moving average ``name`` in the canonical layout."""

    @abc.abstractmethod
    def _write_param(self, name: str, value: np.ndarray) -> None:
        """Set ``name`` (canonical layout, already checked) in place."""

    @abc.abstractmethod
    def _read_optimizer(self, net: str) -> Tuple[int, Dict[str, Dict[str, np.ndarray]]]:
        """``(steps taken, {parameter: {slot: value}})`` of ``net``'s optimizer."""

    @abc.abstractmethod
    def _write_optimizer(self, net: str, steps: Optional[int], slots: Dict[str, Dict[str, np.ndarray]]) -> None:
        """Set the step count (unless None) and the given slots of ``net``'s optimizer."""

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

    def process_share(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """This process's contiguous share of the global batch: the slices of the replicas it
        drives (all of it when it runs alone). An input that is already the share's length
        passes as it is: the training loop reads only this process's rows of the real batch
        (:meth:`wganx.data.Dataset.share`)."""
        r = self.replicas
        if r.local == r.size:
            return inputs
        whole = {k: v for k, v in inputs.items() if len(v) == self.program.batch_size}
        return {**inputs, **replica_slice(whole, r.first // r.local, r.size // r.local)}

    def apply_update(self, finite) -> bool:
        """Whether a step applies its (reduced) gradients: always in float; under ``-t half``
        the loss-scale policy's decision on ``finite`` (every replica decides alike, on the
        same reduced gradients)."""
        return self.loss_scale is None or self.loss_scale.update(bool(finite))

    @abc.abstractmethod
    def _step(self, net: str, inputs: Mapping[str, np.ndarray]) -> Dict:
        """One update of ``net`` on this process's share of the batch."""

    @abc.abstractmethod
    def _gradients(self, step: str, inputs: Mapping[str, np.ndarray]) -> tuple:
        """:meth:`gradients` on this process's share."""

    @abc.abstractmethod
    def fetch(self, values: Mapping) -> Dict[str, float]:
        """Backend scalars -> Python floats (this synchronises); values that are Python
        numbers already pass through, so fetching twice is harmless."""

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
