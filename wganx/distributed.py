"""Data parallelism on each framework's own engine: the core's side of it.

The core keeps drawing every random number of the **global** batch (``--batch-size``) from
its one seeded generator, in every process, so every replica holds the same inputs; replica
``i`` of ``n`` computes the objective on its slice :func:`replica_slice`, the engine averages
the gradients (and the logged scalars) over the replicas, and every replica applies the same
update. Each objective is a mean over samples and the gradient penalty is per sample, so an
``n``-replica step equals the one-process step on the global batch up to the order of float
additions. Only the writer (process 0) touches the run folder.

The engines are the frameworks' own, and each is declared by the backend that runs on it
(:class:`wganx.records.EngineSpec` in its :class:`~wganx.records.BackendSpec`): its name for
``--distribute``, and how its launcher's environment says that a process is one of several.
The core knows no engine by name: ``--distribute`` offers ``auto``, ``none`` and the union
of what the installed backends register (:func:`engine_names`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

from .deprecation import moved
from .errors import WganxError

AUTO, NONE = "auto", "none"
# TensorFlow's logical CPU devices belong to its backend now
__getattr__ = moved(__name__, {"TF_CPU_DEVICES_ENV": "wganx_tensorflow.plugin.CPU_DEVICES_ENV"})

class ReplicaLost(WganxError):
    """A collective failed: another replica stopped (or its connection broke)."""


@dataclass(frozen=True)
class Replicas:
    """Where this process stands in a data-parallel job.

    ``size`` replicas in all (devices, or logical CPU devices); this process drives
    ``local`` of them, starting at replica ``first``; it is process ``process`` of
    ``processes``. One process on one device is ``Replicas()``.
    """

    size: int = 1
    engine: str = NONE
    process: int = 0
    processes: int = 1
    first: int = 0
    local: int = 1

    @property
    def writer(self) -> bool:
        """Process 0 writes checkpoints, samples, logs and the progress bar; the others only
        report errors."""
        return self.process == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    @property
    def process_share(self) -> tuple:
        """``(index, count)``: this process's contiguous share of a global batch, one of
        ``count`` (the replicas it drives take it together)."""
        return self.first // self.local, self.size // self.local


SINGLE = Replicas()


def local_batch(batch_size: int, replicas: Replicas) -> int:
    """The per-replica batch; ``--batch-size`` is the global one and must divide evenly."""
    if batch_size % replicas.size:
        raise WganxError(f"--batch-size {batch_size} is the global batch and must divide by the "
                         f"{replicas.size} replicas ({replicas.engine}); try {_nearest_multiple(batch_size, replicas.size)}")
    return batch_size // replicas.size


def _nearest_multiple(n: int, k: int) -> int:
    return max(k, round(n / k) * k)


def replica_slice(inputs: Mapping, index: int, size: int) -> Dict:
    """Replica ``index``'s contiguous share of every input's first (batch) axis."""
    out = {}
    for name, value in inputs.items():
        n = len(value)
        if n % size:
            raise WganxError(f"input {name!r} has {n} samples, which do not divide by {size} replicas")
        share = n // size
        out[name] = value[index * share:(index + 1) * share]
    return out


# -- the engines the backends declare, and their launchers' environments -------------------------
def engines() -> List:
    """``(backend name, EngineSpec)`` of every installed backend, in the registry's order."""
    from .plugins import registry

    return [(entry.name, engine) for entry in registry().entries("backend") for engine in entry.record.engines]


def engine_names() -> tuple:
    """What ``--distribute`` takes: ``auto``, ``none`` and every registered engine."""
    return (AUTO, NONE) + tuple(dict.fromkeys(engine.name for _, engine in engines()))


def launched_by() -> Optional[tuple]:
    """``(launcher, processes, process)`` when this process is one of several that a launcher
    of a registered engine started (:attr:`wganx.records.EngineSpec.detect`), else None.

    Read before anything heavy, so that only the writer ever checks or locks the run folder.
    """
    for _, engine in engines():
        found = engine.detect(os.environ) if engine.detect else None
        if found is not None and found[0] > 1:
            return (engine.launcher or engine.name,) + tuple(found)
    return None


def world_from_env(environ: Mapping[str, str], launcher: str, size: str, rank: str) -> Optional[tuple]:
    """``(processes, process)`` from a launcher's variables ``size`` and ``rank`` (None when
    ``size`` is unset): the :attr:`~wganx.records.EngineSpec.detect` of most launchers."""
    if size not in environ:
        return None
    try:
        return int(environ[size]), int(environ.get(rank, "0"))
    except ValueError:
        raise WganxError(f"{launcher} set a world size {environ[size]!r} and rank "
                         f"{environ.get(rank)!r} that are not numbers") from None


def launch_of(requested: str, engine) -> Optional[tuple]:
    """``launched_by()`` when ``engine``'s launcher (an :class:`~wganx.records.EngineSpec`)
    started this process; None when it did not and ``--distribute`` was ``auto`` (the process
    stays alone); else a one-line error showing the engine's example."""
    launch = launched_by()
    if launch is not None and launch[0] == engine.launcher:
        return launch
    if requested == AUTO:
        return None
    raise WganxError(f"--distribute {requested}: start wganx with {engine.launcher}, e.g. {engine.example}")


def process_index() -> int:
    """This process's index in the job (0 when it runs alone)."""
    launch = launched_by()
    return launch[2] if launch else 0


def check_engine(backend: str, engines: tuple, requested: str) -> None:
    """``--distribute`` names an engine ``backend`` runs on; the message lists those it has."""
    if requested not in (AUTO, NONE) and requested not in engines:
        known = engine_names()
        if requested not in known:
            raise WganxError(f"--distribute must be one of {', '.join(known)}, got {requested!r}")
        runs = ", ".join(engines) if engines else "none (it runs on one device)"
        raise WganxError(f"backend {backend!r} cannot run data-parallel with --distribute {requested}; "
                         f"its engines: {runs}")


def check_launch(backend: str, replicas: Replicas) -> None:
    """Several processes started by a launcher must form one job, not train alone side by side."""
    launch = launched_by()
    if launch and replicas.processes != launch[1]:
        how = "; ".join(f"{name} under {engine.launcher}, e.g. {engine.example}"
                        for name, engine in engines() if engine.launcher and engine.example)
        raise WganxError(f"this process is one of {launch[1]} that {launch[0]} started, but backend "
                         f"{backend!r} runs them as {replicas.processes} job(s) of {replicas.size} replica(s) "
                         f"(--distribute {replicas.engine}); launch {how}")
