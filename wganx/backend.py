"""The contract between the core and a backend.

A backend is a class named by a :class:`wganx.records.BackendSpec`; the core constructs it
with the user's context flags (the same meaning as NNabla's ``get_extension_context``) and
asks it to :meth:`Backend.compile` a :class:`wganx.algorithm.Program` into a
:class:`wganx.session.Session`. Everything crosses as numpy: parameters by canonical name in
NCHW / OIHW layout, optimizer state as :mod:`wganx.optim` names it, step inputs drawn by the
core's RNG.
"""
from __future__ import annotations

import abc
import importlib.metadata
import os
from typing import Dict

from .algorithm import Program
from .distributed import AUTO, NONE, SINGLE, Replicas, check_engine
from .errors import BackendUnavailableError, WganxError
from .ops import Ops
from .session import Session

CONTEXTS = ("cpu", "cuda", "cudnn")
TYPE_CONFIGS = ("float", "half", "double")
PROTOBUF_IMPLEMENTATION = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"


def prefer_python_protobuf() -> None:
    """Select protobuf's pure-Python implementation where its C++ one breaks TensorFlow.

    With protobuf 3's C++ implementation (NNabla pins ``protobuf~=3.20``) ``import tensorflow``
    segfaults, alone or beside NNabla, and fails after torch; the pure-Python one works. So a
    backend calls this before its framework first imports protobuf (and so does anything else
    that may import protobuf before TensorFlow in one process: NNabla, the TensorBoard
    writer). Nothing changes for protobuf 4 and newer (upb), where TensorFlow works and the
    pure-Python implementation would only be slower, nor where the variable is set already;
    ``import wganx`` itself never calls it, so no other program in the environment is touched.
    """
    try:
        major = importlib.metadata.version("protobuf").split(".")[0]
    except importlib.metadata.PackageNotFoundError:
        return
    if major == "3":
        os.environ.setdefault(PROTOBUF_IMPLEMENTATION, "python")


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
    #: mixed precision on the CPU: off (slow, and not what anyone trains with); a subclass may
    #: allow it where its framework computes float16 on the CPU (the tests of -t half do)
    half_on_cpu = False

    def __init__(self, context: str = "cpu", device_id: int = 0, type_config: str = "float"):
        if context not in CONTEXTS:
            raise WganxError(f"unknown context {context!r}; choose one of: {', '.join(CONTEXTS)}")
        if type_config not in TYPE_CONFIGS:
            raise WganxError(f"unknown type config {type_config!r}; choose one of: {', '.join(TYPE_CONFIGS)}")
        if type_config == "half" and context == "cpu" and not self.half_on_cpu:
            raise BackendUnavailableError(f"-t half (mixed precision) needs -c cuda or -c cudnn with {self.name}")
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
    def compile(self, program: Program) -> Session:
        """Build the steps for ``program``; parameters are set afterwards by the core."""

    @abc.abstractmethod
    def versions(self) -> Dict[str, str]:
        """Framework name -> version, for ``config.json``."""

    def device_name(self) -> str:
        return self.context if self.context == "cpu" else f"{self.context}:{self.device_id}"
