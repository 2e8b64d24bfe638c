"""Data parallelism on each framework's own engine: the core's side of it.

The core keeps drawing every random number of the **global** batch (``--batch-size``) from
its one seeded generator, in every process, so every replica holds the same inputs; replica
``i`` of ``n`` computes the objective on its slice :func:`replica_slice`, the engine averages
the gradients (and the logged scalars) over the replicas, and every replica applies the same
update. Each objective is a mean over samples and the gradient penalty is per sample, so an
``n``-replica step equals the one-process step on the global batch up to the order of float
additions. Only the writer (process 0) touches the run folder.

The engines are the frameworks' own: torchrun and ``torch.distributed`` (``torchrun``),
``tf.distribute`` (``mirrored``, ``multi-worker``) and NNabla's communicator under mpirun
(``mpi``). A backend names those it runs on (:attr:`wganx.backend.Backend.engines`) and
starts one in :meth:`wganx.backend.Backend.replicate`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

from .errors import WganxError

AUTO, NONE = "auto", "none"
ENGINES = (AUTO, NONE, "torchrun", "mirrored", "multi-worker", "mpi")
# N > 1 splits the CPU into N logical devices for TensorFlow's --distribute mirrored on -c cpu
# (to try data parallelism on a machine without GPUs; TensorFlow has no switch of its own).
TF_CPU_DEVICES_ENV = "WGANX_TF_CPU_DEVICES"


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


# -- the launchers' environments ---------------------------------------------------------------
def launched_by() -> Optional[tuple]:
    """``(launcher, processes, process)`` when this process is one of several that a launcher
    started (torchrun, mpirun, a TensorFlow cluster in ``TF_CONFIG``), else None.

    Read before anything heavy, so that only the writer ever checks or locks the run folder.
    """
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env or ("WORLD_SIZE" in env and "LOCAL_RANK" in env):
        return _launch("torchrun", env.get("WORLD_SIZE", "1"), env.get("RANK", "0"))
    for size, rank in (("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"), ("PMI_SIZE", "PMI_RANK"),
                       ("PMIX_SIZE", "PMIX_RANK")):  # Open MPI, MPICH / Intel MPI, PMIx
        if size in env:
            return _launch("mpirun", env[size], env.get(rank, "0"))
    if env.get("TF_CONFIG"):
        cluster, task = tf_config()
        workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
        index = task.get("index", 0) + (len(cluster.get("chief", [])) if task.get("type") == "worker" else 0)
        return ("TF_CONFIG", workers, index) if workers > 1 else None
    return None


def _launch(name: str, size: str, rank: str) -> Optional[tuple]:
    try:
        size_, rank_ = int(size), int(rank)
    except ValueError:
        raise WganxError(f"{name} set a world size {size!r} and rank {rank!r} that are not numbers") from None
    return (name, size_, rank_) if size_ > 1 else None


def launch_of(engine: str, launcher_name: str, example: str) -> Optional[tuple]:
    """``launched_by()`` when ``launcher_name`` started this process; None when it did not and
    ``engine`` is ``auto`` (the process stays alone); else a one-line error showing ``example``."""
    launch = launched_by()
    if launch is not None and launch[0] == launcher_name:
        return launch
    if engine == AUTO:
        return None
    raise WganxError(f"--distribute {engine}: start wganx with {launcher_name}, e.g. {example}")


def tf_config() -> tuple:
    """``(cluster, task)`` of ``TF_CONFIG`` (TensorFlow's multi-worker description)."""
    try:
        spec = json.loads(os.environ["TF_CONFIG"])
        return dict(spec.get("cluster", {})), dict(spec.get("task", {}))
    except (ValueError, AttributeError, TypeError):
        raise WganxError("TF_CONFIG is not valid JSON of the form "
                         '{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": 0}}') from None


def process_index() -> int:
    """This process's index in the job (0 when it runs alone)."""
    launch = launched_by()
    return launch[2] if launch else 0


def check_engine(backend: str, engines: tuple, requested: str) -> None:
    """``--distribute`` names an engine ``backend`` runs on; the message lists those it has."""
    if requested not in ENGINES:
        raise WganxError(f"--distribute must be one of {', '.join(ENGINES)}, got {requested!r}")
    if requested not in (AUTO, NONE) and requested not in engines:
        runs = ", ".join(engines) if engines else "none (it runs on one device)"
        raise WganxError(f"backend {backend!r} cannot run data-parallel with --distribute {requested}; "
                         f"its engines: {runs}")


def check_launch(backend: str, replicas: Replicas) -> None:
    """Several processes started by a launcher must form one job, not train alone side by side."""
    launch = launched_by()
    if launch and replicas.processes != launch[1]:
        raise WganxError(f"this process is one of {launch[1]} that {launch[0]} started, but backend "
                         f"{backend!r} runs them as {replicas.processes} job(s) of {replicas.size} replica(s) "
                         f"(--distribute {replicas.engine}); launch torch with torchrun, nnabla with mpirun, "
                         "tensorflow with --distribute multi-worker and TF_CONFIG")
