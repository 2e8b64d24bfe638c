"""The contract between the core and a backend.

A backend is a class named by a :class:`wganx.records.BackendSpec`; the core constructs it
with the user's context flags (the same meaning as NNabla's ``get_extension_context``) and
asks it to :meth:`Backend.compile` a :class:`wganx.algorithm.Program`. Everything crosses as
numpy: parameters by canonical name in NCHW / OIHW layout, optimizer state as
:mod:`wganx.optim` names it, step inputs drawn by the core's RNG.
"""
from __future__ import annotations

import abc
from typing import Dict, Mapping, Optional

import numpy as np

from .distributed import AUTO, NONE, SINGLE, Replicas, check_engine
from .ops import Ops
from .algorithm import Program

CONTEXTS = ("cpu", "cuda", "cudnn")
TYPE_CONFIGS = ("float", "half", "double")


class Session(abc.ABC):
    """A compiled program holding the backend's parameters and optimizer state."""

    @abc.abstractmethod
    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Load parameters (``generator/...``, ``critic/...``, running statistics included),
        optimizer state (``optimizer/...``) and the generator's moving average
        (``ema/generator/...``, :func:`wganx.algorithm.ema_name`); names not given keep their values."""

    @abc.abstractmethod
    def get_state(self) -> Dict[str, np.ndarray]:
        """Every parameter, running statistic, optimizer slot and moving average, as float32 numpy."""

    @abc.abstractmethod
    def critic_step(self, inputs: Mapping[str, np.ndarray]) -> Dict:
        """One critic update; returns the objective's scalars as backend values.

        The values stay on the device: call :meth:`fetch` only when logging, so a step
        never waits for the device.
        """

    @abc.abstractmethod
    def generator_step(self, inputs: Mapping[str, np.ndarray]) -> Dict:
        """One generator update, then the moving average's (:func:`wganx.algorithm.ema_decay_at`),
        on the device; returns ``{"loss": ...}`` as backend values."""

    @abc.abstractmethod
    def fetch(self, values: Mapping) -> Dict[str, float]:
        """Backend scalars -> Python floats (this synchronises); values that are Python
        numbers already pass through, so fetching twice is harmless."""

    @abc.abstractmethod
    def gradients(self, step: str, inputs: Mapping[str, np.ndarray]) -> tuple:
        """``(scalars, grads)`` of ``step``'s objective without updating anything.

        ``scalars`` maps the objective's scalars (as :meth:`critic_step` names them) to
        Python floats, already fetched; ``grads`` maps every trainable parameter of the
        stepped network (canonical name with its ``generator/`` or ``critic/`` prefix) to its
        gradient as a numpy array of the parameter's canonical shape. The same types on
        every backend.
        """

    @abc.abstractmethod
    def generate(self, z: np.ndarray, labels: Optional[np.ndarray] = None, *, raw: bool = False) -> np.ndarray:
        """Generator output in inference mode (batch norm uses running statistics).

        When the program keeps a moving average of the generator (``Program.ema_decay``), the
        output is the averaged generator's unless ``raw``.
        """

    @abc.abstractmethod
    def critic_values(self, x: np.ndarray, labels: Optional[np.ndarray] = None) -> np.ndarray:
        """``D(x)`` as ``(N, 1)`` numpy."""

    @abc.abstractmethod
    def input_gradient(self, x: np.ndarray, labels: Optional[np.ndarray] = None) -> np.ndarray:
        """``d sum D(x) / dx`` through ``ops.input_grad``, in the session's dtype."""

    def any_replica(self, flag: bool) -> bool:
        """True on every replica when ``flag`` is true on any (a collective: every process
        calls it at the same point); lets all replicas stop after the same iteration."""
        return bool(flag)


class Backend(abc.ABC):
    """A deep-learning framework behind the ops and the steps.

    Args:
        context: ``"cpu"``, ``"cuda"`` or ``"cudnn"`` (NNabla's names; ``cuda`` and
            ``cudnn`` both mean the GPU for frameworks that do not distinguish them).
        device_id: which GPU.
        type_config: ``"float"``, ``"half"`` (mixed precision) or ``"double"``
            (tests; where the backend supports it).
    """

    name = "abstract"
    ops: Ops
    #: the data-parallel engines this backend runs on: its record's ``engines``, set by
    #: :func:`wganx.build.load_backend`
    engines: tuple = ()
    replicas: Replicas = SINGLE

    def __init__(self, context: str = "cpu", device_id: int = 0, type_config: str = "float"):
        from .errors import WganxError

        if context not in CONTEXTS:
            raise WganxError(f"unknown context {context!r}; choose one of: {', '.join(CONTEXTS)}")
        if type_config not in TYPE_CONFIGS:
            raise WganxError(f"unknown type config {type_config!r}; choose one of: {', '.join(TYPE_CONFIGS)}")
        self.context, self.device_id, self.type_config = context, int(device_id), type_config

    def set_threads(self, threads: int) -> None:
        """Give the framework's CPU kernels ``threads`` intra-op threads; called by the core
        right after construction. The core has set :data:`wganx.threads.THREAD_VARS` before
        the framework loaded; override this where the framework takes the count at run time."""

    def replicate(self, engine: str = AUTO, *, sync_batch_norm: bool = True) -> Replicas:
        """Join the data-parallel job ``engine`` names (``auto``: the one this process was
        launched into, if any), before :meth:`compile`; sets and returns :attr:`replicas`.

        A backend with engines overrides :meth:`_start_engine`; batch norm in training mode
        then uses the statistics of the global batch when ``sync_batch_norm``. Calling it
        again keeps the job and changes only ``sync_batch_norm``.
        """
        check_engine(self.name, self.engines, engine)
        if engine != NONE and not self.replicas.parallel:
            self.replicas = self._start_engine(engine)
        self.ops.sync_batch_norm = bool(sync_batch_norm) and self.replicas.parallel
        return self.replicas

    def _start_engine(self, engine: str) -> Replicas:
        """Start or join ``engine`` (``auto``: the launcher's, else stay alone)."""
        return SINGLE

    def shutdown(self, finished: bool = True) -> None:
        """Leave the data-parallel job; ``finished``: every replica reached the same end
        (so a barrier cannot hang). The core calls it at the end of training; calling it
        again does nothing."""

    @abc.abstractmethod
    def compile(self, program: Program, seed: int = 0) -> Session:
        """Build the steps for ``program``; parameters are set afterwards by the core."""

    @abc.abstractmethod
    def versions(self) -> Dict[str, str]:
        """Framework name -> version, for ``config.json``."""

    def device_name(self) -> str:
        return self.context if self.context == "cpu" else f"{self.context}:{self.device_id}"
