"""How many CPU threads the frameworks' kernels get (``--threads``).

Why not the frameworks' defaults: PyTorch and TensorFlow start one intra-op thread per
core, and their OpenMP/Eigen pools wait for every thread at each kernel. When another
process holds a core, each kernel waits for a thread that is not scheduled: on a 2-core
machine with one busy process, the NNabla example's model at ``--maps 16`` trained about 2x slower on
2 threads than on 1 (``docs/results/speed.md``). So the default counts the CPUs this process
may use (affinity and a cgroup quota) and leaves out those that other processes keep busy
when the run starts.
"""
from __future__ import annotations

import math
import os
import statistics
import time
from typing import Optional

from .errors import Range

THREADS = Range(0)  # --threads: 0 picks the idle CPUs (train checks the flag against it too)
# Read by OpenMP, MKL, OpenBLAS and TensorFlow when they start: set before a framework loads.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS")


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def busy_cpus(samples: int = 5, interval: float = 0.01) -> int:
    """Other runnable tasks right now: the median of ``procs_running`` in ``/proc/stat``
    (which counts this process once) over a few samples; else the 1-minute load average."""
    counts = []
    for k in range(samples):
        try:
            with open("/proc/stat") as f:
                counts += [int(line.split()[1]) - 1 for line in f if line.startswith("procs_running")]
        except (OSError, ValueError, IndexError):
            break
        if k + 1 < samples:
            time.sleep(interval)
    if counts:
        return max(0, round(statistics.median(counts)))
    try:
        return max(0, round(os.getloadavg()[0]))
    except (AttributeError, OSError):
        return 0


def default_threads() -> int:
    """The usable CPUs that no other process is keeping busy, at least 1."""
    return max(1, usable_cpus() - busy_cpus())


def resolve_threads(threads: Optional[int]) -> Optional[int]:
    """``None``: leave the frameworks as they are; ``0``: :func:`default_threads`; ``N``: N."""
    if threads is None:
        return None
    THREADS.check("--threads", threads)
    return threads or default_threads()


def set_thread_env(threads: int) -> None:
    """Tell OpenMP, MKL, OpenBLAS and TensorFlow ``threads`` before they load."""
    os.environ.update({var: str(threads) for var in THREAD_VARS})
