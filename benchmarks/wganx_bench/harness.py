"""``wganx bench``: generator iterations per second of wganx against plain hand-written loops.

For every backend and configuration the harness runs, each in its own subprocess (so the
peak resident memory is that run's alone) and interleaved round by round (so a change in
the machine's load hits every variant alike):

* ``wganx``: the :class:`wganx.session.Session` API fed as the training loop feeds it,
  ``session.critic_step(step_inputs(...))`` ``n_critic`` times, then
  ``session.generator_step(step_inputs(...))``; real batches from a pool made beforehand.
* ``plain``: the hand-written loop of ``wganx_bench/reference/<framework>_loop.py`` (the
  way the seeds write it), real batches from the same kind of pool.
* ``trainer``: the full :class:`wganx.training.Trainer` loop (data prefetch thread, loss
  logging every 10 iterations, progress bar) on an in-memory synthetic dataset (images) or
  ``8gaussians`` (toy); checkpoints and sample tiles are left out of the timed windows.
* ``data-parallel`` (with ``--replicas N``): the ``wganx`` runner on ``N`` replicas of the
  backend's first engine, started by its own launcher (:func:`wganx.distributed.launcher`),
  each replica with the configuration's batch (weak scaling: a global batch ``N`` times
  larger); the scaling efficiency is its iterations per second over the one-replica
  ``wganx`` figure, i.e. N-replica throughput over N times one replica's.

Each subprocess runs warm-up iterations (excluded), then ``windows`` timed windows of
``iters`` generator iterations, each ending with a device sync. A variant's figure is the
median over all its windows and rounds, with min, max and the windows listed. ``ratio`` is
wganx / plain. The penalty's cost is the time of one critic step with ``gp`` against one
with ``none``, for wganx and for the plain loop.

Once per run, the work: the FLOPs of one generator iteration per configuration, counted from
the ops torch runs (:func:`count_flops`), and the device's peak (:func:`measure_peak`), from
which each row's FLOP/s and share of the peak follow.

``python benchmarks/speed.py`` runs the same code as ``wganx bench``.
"""
from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional

import numpy as np
import typer
from typing_extensions import Annotated

from wganx.options import Context, DeviceId
from wganx.config import CONTEXTS
from wganx.algorithm import generator_iteration, step_inputs
from wganx.distributed import engines, process_index
from wganx.errors import WganxError, check_choice
from wganx.threads import THREAD_VARS, resolve_threads, set_thread_env

POOL = 8  # distinct real batches cycled through
RESULT_TAG = "WGANX_BENCH_RESULT "
FRAMEWORK_OF = {"torch": "torch", "tensorflow": "tensorflow", "nnabla": "nnabla"}

# name -> sizes; "iters" is the default window length (generator iterations).
CONFIGS: Dict[str, dict] = {
    "cifar-m16": dict(arch="nnabla-cifar", data="image", image_size=32, channels=3, maps=16, latent=128,
                      batch_size=64, n_critic=5, iters=4, gpu_iters=40, description="nnabla-cifar, 32x32, maps 16, batch 64"),
    "cifar-m64": dict(arch="nnabla-cifar", data="image", image_size=32, channels=3, maps=64, latent=128,
                      batch_size=64, n_critic=5, iters=2, gpu_iters=40, description="nnabla-cifar, 32x32, maps 64, batch 64"),
    "cifar-m128": dict(arch="nnabla-cifar", data="image", image_size=32, channels=3, maps=128, latent=128,
                       batch_size=64, n_critic=5, iters=20, gpu_iters=30, gpu_only=True,
                       description="nnabla-cifar, 32x32, maps 128, batch 64 (GPU)"),
    "toy-mlp": dict(arch="mlp", data="points", data_dim=2, maps=512, latent=128, batch_size=256, n_critic=5,
                    iters=20, gpu_iters=100, description="WGAN-GP toy: 3x512 ReLU MLPs, 2-D data, batch 256"),
    "dcgan64": dict(arch="dcgan", data="image", image_size=64, channels=3, maps=64, latent=128,
                    batch_size=64, n_critic=5, iters=10, gpu_iters=20, gpu_only=True,
                    description="giakou4/gans DCGAN, 64x64, maps 64, batch 64 (GPU)"),
}
QUICK = {  # tiny sizes for tests: the harness runs end to end in seconds
    "cifar-m16": dict(maps=2, batch_size=4, latent=8, n_critic=2, iters=1),
    "cifar-m64": dict(maps=2, batch_size=4, latent=8, n_critic=2, iters=1),
    "cifar-m128": dict(maps=2, batch_size=4, latent=8, n_critic=2, iters=1),
    "toy-mlp": dict(maps=8, batch_size=8, latent=4, n_critic=2, iters=1),
    "dcgan64": dict(image_size=16, maps=2, batch_size=4, latent=8, n_critic=2, iters=1),
}
CPU_DEFAULT = ("cifar-m16", "cifar-m64", "toy-mlp")
GPU_DEFAULT = ("cifar-m16", "cifar-m128", "toy-mlp", "dcgan64")
VARIANTS = ("wganx", "plain", "trainer")


def reference_module(backend: str):
    """The plain loop of ``backend``'s framework (:mod:`wganx_bench.reference`), or None."""
    name = f"{__package__}.reference.{FRAMEWORK_OF.get(backend, backend)}_loop"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def launcher(engine: str, n: int, context: str = "cpu") -> tuple:
    """``(argv prefix, environment)`` that starts ``python -m MODULE ...`` as ``n`` replicas of
    ``engine`` on this machine, the way a user would: the
    :attr:`~wganx.records.EngineSpec.command` of the backend that declares it."""
    commands = {e.name: e.command for _, e in engines() if e.command is not None}
    if engine not in commands:
        raise WganxError(f"no single-machine launcher for --distribute {engine}; choose one of: "
                         f"{', '.join(commands)}")
    return commands[engine](n, context)


# -- the runners a worker times ------------------------------------------------------------------
class WganxRunner:
    """The Session API, fed like the training loop feeds it."""

    def __init__(self, spec, backend_name, regularizer="gp", engine=None):
        from wganx.build import initial_arrays, load_backend, make_program
        from wganx.plugins import registry
        from wganx.records import ArchConfig

        reg = registry()
        image = spec["data"] == "image"
        arch_config = ArchConfig(
            image_size=spec.get("image_size", 32), channels=spec.get("channels", 3) if image else 0,
            latent=spec["latent"], maps=spec["maps"],
            up=reg.get("upsampler", "nearest") if reg.get("architecture", spec["arch"]).uses_upsampler else None,
            data_kind=spec["data"], data_dim=spec.get("data_dim", 2))
        self.program = make_program(arch=spec["arch"], regularizer=regularizer, arch_config=arch_config,
                                    batch_size=spec["batch_size"], reg=reg)
        self.backend = load_backend(backend_name, spec["context"], spec["device_id"], spec["type_config"], reg)
        self.replicas = self.backend.replicate(engine) if engine else None
        self.session = self.backend.compile(self.program)
        self.session.set_state(initial_arrays(self.program, np.random.default_rng([0, 2])))
        self.rng = np.random.default_rng(0)
        shape = (spec["batch_size"],) + tuple(self.program.arch.sample_shape)
        self.pool = [self.rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(POOL)]
        self.n_critic, self.k, self.last = spec["n_critic"], 0, None

    def _next_batch(self):
        real = self.pool[self.k % POOL]
        self.k += 1
        return real, None

    def critic_step(self):
        self.last = self.session.critic_step(step_inputs(self.program, "critic", self.rng, *self._next_batch()))

    def generator_step(self):
        self.last = self.session.generator_step(step_inputs(self.program, "generator", self.rng))

    def iteration(self):
        """Algorithm 1's outer loop body, as the trainer runs it."""
        _, self.last = generator_iteration(self.session, self.program, self.rng, self._next_batch, self.n_critic)

    def sync(self):
        if self.last is not None:
            self.session.fetch(self.last)


def _timed_windows(runner, warmup, windows, iters, step="iteration"):
    fn = getattr(runner, step)
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    runner.sync()
    warm = time.perf_counter() - t0
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        runner.sync()
        rates.append(iters / (time.perf_counter() - t0))
    return warm, rates


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _device_peak(backend, spec) -> Optional[float]:
    if spec["context"] == "cpu":
        return None
    try:
        if backend == "torch":
            import torch

            return torch.cuda.max_memory_allocated(spec["device_id"]) / 2 ** 20
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.config.experimental.get_memory_info(f"GPU:{spec['device_id']}")["peak"] / 2 ** 20
    except Exception:  # noqa: BLE001 - memory figures are best effort
        return None
    return None


def _trainer_windows(spec, backend, warmup, windows, iters, dataset_seed=0, threads=0):
    """The user's loop: :class:`wganx.training.Trainer` with timestamps at its log calls."""
    from wganx import hookimpl
    from wganx.config import TrainConfig
    from wganx.data import ArrayDataset
    from wganx.plugins import Registry
    from wganx.records import DatasetSpec
    from wganx.training import Trainer

    image = spec["data"] == "image"
    n = spec["batch_size"]

    class _Synthetic:
        @hookimpl
        def wganx_datasets(self):
            def load(data_dir, size, download):
                rng = np.random.default_rng(dataset_seed)
                x = rng.integers(0, 256, (n * 16, spec["channels"], size, size), dtype=np.uint8)
                return ArrayDataset(x, name="bench-synthetic")
            return [DatasetSpec("bench-synthetic", load, "image", "uint8 noise held in memory (bench)")]

    reg = Registry.from_plugins([_Synthetic()])
    log_every = 10 if iters % 10 == 0 else iters
    total = warmup + windows * iters
    if warmup % log_every:
        warmup = (warmup // log_every + 1) * log_every
        total = warmup + windows * iters
    stamps: Dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="wganx-bench-") as folder:
        config = TrainConfig(
            backend=backend, context=spec["context"], device_id=spec["device_id"], type_config=spec["type_config"],
            arch=spec["arch"], maps=spec["maps"], latent=spec["latent"], image_size=spec.get("image_size", 32),
            batch_size=n, n_critic=spec["n_critic"], max_iter=total, log_interval=log_every,
            save_interval=10 ** 9, dataset="bench-synthetic" if image else "8gaussians", monitor_path=folder,
            progress=True, seed=0, threads=threads)

        class _Timed(Trainer):
            def _log(self, *args, **kwargs):
                row = super()._log(*args, **kwargs)  # fetches: the device is synced here
                stamps[int(args[2])] = time.perf_counter()
                return row

            def save(self, log=None):  # checkpoints and tiles are not the loop's speed
                return None

        t0 = time.perf_counter()
        trainer = _Timed(config, reg)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.run()
    marks = [warmup + k * iters for k in range(windows + 1)]
    rates = [iters / (stamps[b] - stamps[a]) for a, b in zip(marks[:-1], marks[1:])]
    return setup, stamps[warmup] - t0, rates


def limit_threads(n: int) -> None:
    """Give the plain loops what ``load_backend(threads=n)`` gives wganx: the thread variables
    (read by OpenMP, MKL and TensorFlow when they load) and torch's count."""
    set_thread_env(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


# -- the work and the hardware's limit ----------------------------------------------------------
# Dense datasheet peaks in TFLOP/s (fp32, TF32, bf16; no sparsity), by a part of the name
# torch reports; the first match wins, so the PCIe H100 comes before the SXM one.
GPU_PEAK_TFLOPS = (("H100 PCIe", (51.2, 378.0, 756.0)), ("H100", (67.0, 495.0, 989.0)),
                   ("H200", (67.0, 495.0, 989.0)), ("A100", (19.5, 156.0, 312.0)),
                   ("L40S", (91.6, 183.0, 362.0)), ("L40", (90.5, 181.0, 362.0)),
                   ("L4", (30.3, 60.0, 121.0)), ("A10", (31.2, 62.5, 125.0)))
PEAK_MATMUL, PEAK_REPEATS = 2048, 12  # the CPU's peak: the best of 12 fp32 products of this size


def count_flops(spec) -> dict:
    """FLOPs of one generator iteration (``n_critic`` critic steps and a generator step) and
    of one critic step with ``gp`` and with ``none``, counted from the ops torch runs: the same
    model, so the same work, on every backend."""
    from .flops import FlopCounter

    out = {}
    for regularizer in ("gp", "none"):
        runner = WganxRunner(spec, "torch", regularizer)
        runner.iteration()  # warm: lazily built state is not the step's work
        runner.sync()
        with FlopCounter() as critic:
            runner.critic_step()
            runner.sync()
        out[f"critic_{regularizer}"] = critic.total
        if regularizer == "gp":
            with FlopCounter() as whole:
                runner.iteration()
                runner.sync()
            out["iteration"], out["by_op"] = whole.total, dict(whole.by_op)
    return out


def measure_peak(spec) -> dict:
    """The device's fp32 peak: measured on the CPU (a large matrix product, best of 12, with the
    run's threads), the datasheet's on a known GPU."""
    if spec["context"] != "cpu":
        import torch

        name = torch.cuda.get_device_name(spec["device_id"])
        for part, (fp32, tf32, bf16) in GPU_PEAK_TFLOPS:
            if part in name:
                return {"source": f"datasheet ({name})", "fp32": fp32 * 1e12, "tf32": tf32 * 1e12,
                        "bf16": bf16 * 1e12}
        return {"source": f"unknown GPU {name!r}: no datasheet figure"}
    import torch

    a, b = torch.randn(PEAK_MATMUL, PEAK_MATMUL), torch.randn(PEAK_MATMUL, PEAK_MATMUL)
    best = float("inf")
    for _ in range(PEAK_REPEATS):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return {"source": f"measured: fp32 {PEAK_MATMUL}x{PEAK_MATMUL} matrix product, torch, "
                      f"{torch.get_num_threads()} thread(s)", "fp32": 2 * PEAK_MATMUL ** 3 / best}


MEASURES = {"flops": count_flops, "peak": measure_peak}  # once per run, not timed rounds


def worker(job: dict) -> dict:
    """Run one variant of one backend and configuration; called in a fresh process."""
    spec, backend, variant = job["spec"], job["backend"], job["variant"]
    limit_threads(job["threads"])
    out = {"backend": backend, "config": job["config"], "variant": variant, "ok": True}
    t0 = time.perf_counter()
    if variant in MEASURES:
        out.update(MEASURES[variant](spec))
        return out
    if variant == "trainer":
        setup, warm, rates = _trainer_windows(spec, backend, job["warmup"], job["windows"], spec["iters"],
                                              threads=job["threads"])
        out.update(setup_s=setup, warmup_s=warm, rates=rates)
    else:
        if variant in ("wganx", "data-parallel"):
            make = lambda reg: WganxRunner(spec, backend, reg, job.get("engine"))  # noqa: E731
        else:
            module = reference_module(backend)
            if module is None:
                raise RuntimeError(f"no plain reference loop for backend {backend!r} in {__package__}.reference")
            make = lambda reg: module.make_step(dict(spec, regularizer=reg, compile=job.get("compile")))  # noqa: E731
        runner = make("gp")
        out["setup_s"] = time.perf_counter() - t0
        out["warmup_s"], out["rates"] = _timed_windows(runner, job["warmup"], job["windows"], spec["iters"])
        if getattr(runner, "replicas", None) is not None:
            out["replicas"] = runner.replicas.size
            runner.backend.shutdown()
        if job.get("penalty"):
            steps = max(2, spec["iters"] * spec["n_critic"] // 2)
            _, gp = _timed_windows(runner, 1, 2, steps, "critic_step")
            out["rss_mib"] = _max_rss_mib()  # before the second model
            del runner
            _, none = _timed_windows(make("none"), 1, 2, steps, "critic_step")
            out["critic_step_ms"] = {"gp": 1000.0 / max(gp), "none": 1000.0 / max(none)}
    out.setdefault("rss_mib", _max_rss_mib())
    out["device_peak_mib"] = _device_peak(backend, spec)
    return out


# -- the orchestrator --------------------------------------------------------------------------
def _spec_for(name, args) -> dict:
    spec = dict(CONFIGS[name])
    if args.context != "cpu":
        spec["iters"] = spec["gpu_iters"]
    if args.quick:
        spec.update(QUICK[name])
    if args.iters:
        spec["iters"] = args.iters
    spec.update(context=args.context, device_id=args.device_id, type_config=args.type_config)
    return spec


def _available_backends(requested: List[str]) -> List[str]:
    from wganx.plugins import registry

    reg = registry()
    names = requested or [e.name for e in reg.entries("backend") if e.availability()[0]]
    return names


def _run_job(job, timeout, in_process=False) -> dict:
    replicas = job.get("replicas", 1)
    if in_process and replicas == 1:  # tests: no subprocess start-up, but RSS is then the whole process's
        try:
            return worker(job)
        except Exception as exc:  # noqa: BLE001
            return {"backend": job["backend"], "config": job["config"], "variant": job["variant"], "ok": False,
                    "error": f"{type(exc).__name__}: {exc}"}
    prefix, launch_env = launcher(job["engine"], replicas, job["spec"]["context"]) if replicas > 1 \
        else ([sys.executable], {})
    cmd = prefix + ["-m", "wganx_bench.harness", "--worker", json.dumps(job)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    env.update({var: str(job["threads"]) for var in THREAD_VARS})
    env.update(launch_env)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"backend": job["backend"], "config": job["config"], "variant": job["variant"], "ok": False,
                "error": f"timed out after {timeout} s"}
    except FileNotFoundError as exc:  # a launcher that is not installed (mpirun)
        return {"backend": job["backend"], "config": job["config"], "variant": job["variant"], "ok": False,
                "error": f"{exc.filename} not found"}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"backend": job["backend"], "config": job["config"], "variant": job["variant"], "ok": False,
            "error": " | ".join(tail) or f"exit status {proc.returncode}"}


def _summary(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def _machine(args) -> dict:
    info = {"host": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "processor": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if args.context != "cpu":
        try:
            import torch

            info["gpu"] = torch.cuda.get_device_name(args.device_id)
        except Exception:  # noqa: BLE001
            pass
    return info


def _versions(backends) -> dict:
    from importlib import metadata

    out = {}
    for name in ["numpy", "wganx"] + [FRAMEWORK_OF.get(b, b) for b in backends]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run(args, progress=print) -> dict:
    backends = _available_backends(args.backend)
    gpu = args.context != "cpu"
    configs = args.config or list(GPU_DEFAULT if gpu else CPU_DEFAULT)
    for name in configs:
        if name not in CONFIGS:
            raise SystemExit(f"wganx bench: unknown config {name!r}; choose from: {', '.join(CONFIGS)}")
    variants = list(args.variant or VARIANTS)
    engines = _engines(backends) if args.replicas > 1 else {}
    if args.replicas > 1:
        variants.append("data-parallel")
    warmup = 1 if args.quick else (args.warmup if args.warmup is not None else (2 if args.context == "cpu" else 5))
    windows = 1 if args.quick else args.windows
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    threads = resolve_threads(args.threads)  # once, so every run of the table has the same count
    progress(f"{threads} thread(s); the device's peak and each configuration's FLOPs ...")
    once = lambda variant, name: _run_job(  # noqa: E731
        {"backend": "torch", "config": name, "variant": variant, "spec": _spec_for(name, args), "threads": threads},
        args.timeout, args.in_process)
    peak = once("peak", configs[0])
    work = {name: once("flops", name) for name in configs}
    for what in [peak, *work.values()]:
        if not what["ok"]:
            progress(f"    not counted: {what['error']}")
    runs: List[dict] = []
    for r in range(args.repeats):
        for backend in backends:
            for name in configs:
                spec = _spec_for(name, args)
                if spec.get("gpu_only") and not gpu and name not in (args.config or []):
                    continue
                order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate per round
                for variant in order:
                    job = {"backend": backend, "config": name, "variant": variant, "spec": spec,
                           "warmup": warmup, "windows": windows, "penalty": args.penalty and variant != "trainer",
                           "compile": None, "threads": threads}
                    if variant == "data-parallel":
                        if not engines.get(backend):
                            progress(f"    {backend} has no data-parallel engine")
                            continue
                        job.update(_data_parallel_job(spec, engines[backend], args.replicas, threads))
                    progress(f"[round {r + 1}/{args.repeats}] {backend} {name} {variant} ...")
                    res = _run_job(job, args.timeout, args.in_process)
                    res["round"], res["load"] = r, list(os.getloadavg())
                    runs.append(res)
                    if not res["ok"]:
                        progress(f"    failed: {res['error']}")
                    else:
                        progress(f"    {statistics.median(res['rates']):.3f} it/s, {res['rss_mib']:.0f} MiB")
                if args.torch_compile and backend == "torch":
                    for what in ("generator",):
                        job = {"backend": backend, "config": name, "variant": f"plain-compile-{what}", "spec": spec,
                               "warmup": warmup + 1, "windows": windows, "penalty": False, "compile": what,
                               "threads": threads}
                        progress(f"[round {r + 1}/{args.repeats}] {backend} {name} plain+torch.compile({what}) ...")
                        res = _run_job(dict(job, variant="plain"), args.timeout, args.in_process)
                        res["variant"], res["round"], res["load"] = job["variant"], r, list(os.getloadavg())
                        runs.append(res)
    results = _aggregate(runs, work, peak, {name: _spec_for(name, args)["n_critic"] for name in configs})
    return {"schema": "wganx-bench/2", "started": started,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": _machine(args), "versions": _versions(backends),
            "settings": {"context": args.context, "device_id": args.device_id, "type_config": args.type_config,
                         "repeats": args.repeats, "warmup": warmup, "in_process": args.in_process,
                         "threads": threads, "windows": windows, "quick": args.quick,
                         "iters": {n: _spec_for(n, args)["iters"] for n in configs}},
            "load": {"before": list(load_before), "after": list(os.getloadavg()),
                     "during": [x["load"][0] for x in runs]},
            "configs": {n: {k: v for k, v in _spec_for(n, args).items() if k not in ("context", "device_id",
                                                                                    "type_config")}
                        for n in configs},
            "peak": peak, "work": work, "results": results, "runs": runs}


def _engines(backends) -> dict:
    """Each backend's first data-parallel engine, from its record (no framework imported)."""
    from wganx.plugins import registry

    reg = registry()
    return {b: next(iter(reg.entry("backend", b).record.engine_names), None) for b in backends}


def _data_parallel_job(spec, engine, replicas, threads) -> dict:
    """``replicas`` replicas of ``spec``'s per-replica batch; processes of a multi-process
    engine (one whose launcher starts a process per replica) share the CPU threads."""
    processes = replicas if any(e.name == engine and e.detect for _, e in engines()) else 1
    return {"engine": engine, "replicas": replicas, "penalty": False,
            "spec": dict(spec, batch_size=spec["batch_size"] * replicas),
            "threads": max(1, threads // processes) if spec["context"] == "cpu" else threads}


def _aggregate(runs, work=None, peak=None, n_critic=None) -> List[dict]:
    keys = []
    for x in runs:
        key = (x["backend"], x["config"])
        if key not in keys:
            keys.append(key)
    out = []
    for backend, config in keys:
        mine = [x for x in runs if (x["backend"], x["config"]) == (backend, config)]
        row = {"backend": backend, "config": config, "variants": {}}
        for variant in sorted({x["variant"] for x in mine}):
            ok = [x for x in mine if x["variant"] == variant and x["ok"]]
            errors = [x["error"] for x in mine if x["variant"] == variant and not x["ok"]]
            rates = [r for x in ok for r in x["rates"]]
            entry = {"its_per_s": _summary(rates), "rss_mib": max((x["rss_mib"] for x in ok), default=None),
                     "device_peak_mib": max((x["device_peak_mib"] for x in ok
                                             if x.get("device_peak_mib") is not None), default=None),
                     "setup_s": _summary([x["setup_s"] for x in ok]),
                     "warmup_s": _summary([x["warmup_s"] for x in ok])}
            steps = [x["critic_step_ms"] for x in ok if "critic_step_ms" in x]
            if steps:
                gp = statistics.median(s["gp"] for s in steps)
                none = statistics.median(s["none"] for s in steps)
                entry["critic_step_ms"] = {"gp": gp, "none": none, "gp_over_none": gp / none}
            if errors:
                entry["errors"] = errors
            row["variants"][variant] = entry
        med = {v: e["its_per_s"]["median"] for v, e in row["variants"].items() if e["its_per_s"]}
        if "plain" in med:
            row["ratio"] = {v: med[v] / med["plain"] for v in med if v != "plain"}
        if "data-parallel" in med and "wganx" in med:
            n = max(x.get("replicas", 0) for x in mine if x["variant"] == "data-parallel" and x["ok"])
            row["scaling"] = {"replicas": n, "efficiency": med["data-parallel"] / med["wganx"]}
        _add_work(row, med, (n_critic or {}).get(config), (work or {}).get(config) or {}, peak or {})
        out.append(row)
    return out


def _add_work(row, med, n_critic, counted, peak) -> None:
    """FLOP/s, share of the peak(s) and the penalty's shares of the FLOPs and of the time."""
    for variant, entry in row["variants"].items():
        c = entry.get("critic_step_ms")
        if c and variant in med and n_critic:  # n_critic steps' worth of penalty in one iteration's time
            entry["penalty_time_share"] = n_critic * (c["gp"] - c["none"]) / (1000.0 / med[variant])
    if not counted.get("ok") or not counted.get("iteration"):
        return
    flops = counted["iteration"]
    row["gflop_per_iteration"] = flops / 1e9
    row["penalty_flop_share"] = n_critic * (counted["critic_gp"] - counted["critic_none"]) / flops
    for variant, rate in med.items():
        entry = row["variants"][variant]
        entry["gflop_per_s"] = rate * flops / 1e9
        entry["share_of_peak"] = {kind: rate * flops / peak[kind] for kind in ("fp32", "tf32", "bf16")
                                  if peak.get(kind)}


def format_table(report) -> str:
    """A Markdown table of the results (``docs/speed.md``-ready)."""
    lines = ["| backend | config | plain it/s | wganx it/s | wganx/plain | Trainer it/s | Trainer/plain "
             "| peak MiB (plain / wganx / Trainer) | critic step gp/none ms (plain; wganx) |",
             "|---|---|---|---|---|---|---|---|---|"]

    def rate(e):
        s = e and e.get("its_per_s")
        return f"{s['median']:.3g} ({s['min']:.3g}-{s['max']:.3g})" if s else "-"

    def mem(e):
        if not e:
            return "-"
        v = e.get("device_peak_mib") or e.get("rss_mib")
        return f"{v:.0f}" if v else "-"

    def crit(e):
        c = e and e.get("critic_step_ms")
        return f"{c['gp']:.0f}/{c['none']:.0f}" if c else "-"

    for row in report["results"]:
        v = row["variants"]
        ratio = row.get("ratio", {})
        r = lambda k: f"{ratio[k]:.2f}" if k in ratio else "-"  # noqa: E731
        lines.append(f"| {row['backend']} | {row['config']} | {rate(v.get('plain'))} | {rate(v.get('wganx'))} "
                     f"| {r('wganx')} | {rate(v.get('trainer'))} | {r('trainer')} "
                     f"| {mem(v.get('plain'))} / {mem(v.get('wganx'))} / {mem(v.get('trainer'))} "
                     f"| {crit(v.get('plain'))}; {crit(v.get('wganx'))} |")
        for name, e in sorted(v.items()):
            if name.startswith("plain-compile"):
                lines.append(f"| {row['backend']} | {row['config']} | {name}: {rate(e)} | | "
                             f"{(ratio.get(name) or 0):.2f} x plain | | | | |")
    lines += [""] + format_work_table(report) + format_scaling_table(report)
    machine = report["machine"]
    where = machine.get("gpu") or machine.get("cpu") or machine.get("processor") or "?"
    load = report["load"]
    lines.append("")
    lines.append("Peak memory: max RSS of each run's process on the CPU, torch.cuda.max_memory_allocated "
                 "(TensorFlow: the GPU allocator's peak) on a GPU. Critic step: median ms of one critic "
                 "update with the gp penalty / with none.")
    lines.append("")
    lines.append(f"Generator iterations per second (median, min-max over {report['settings']['repeats']} "
                 f"interleaved rounds x {report['settings']['windows']} windows); {where}, "
                 f"{machine['cpu_count']} CPUs, context {report['settings']['context']}, "
                 f"-t {report['settings']['type_config']}; 1-min load average {load['before'][0]:.2f} before, "
                 f"{min(load['during'] or [0]):.2f}-{max(load['during'] or [0]):.2f} during; {report['started']}.")
    return "\n".join(lines)


def format_scaling_table(report) -> List[str]:
    """Data-parallel weak scaling, as Markdown lines (empty without ``--replicas``)."""
    rows = [r for r in report["results"] if "scaling" in r]
    if not rows:
        return []
    lines = ["", "| backend | config | replicas | 1 replica it/s | N replicas it/s (N x the batch) "
                 "| scaling efficiency |", "|---|---|---|---|---|---|"]
    for row in rows:
        v, s = row["variants"], row["scaling"]
        lines.append(f"| {row['backend']} | {row['config']} | {s['replicas']} "
                     f"| {v['wganx']['its_per_s']['median']:.3g} | {v['data-parallel']['its_per_s']['median']:.3g} "
                     f"| {100 * s['efficiency']:.0f}% |")
    lines += ["", "Scaling efficiency: the N-replica throughput (samples/s) over N times one replica's; "
                  "each replica has the configuration's batch."]
    return lines


def format_work_table(report) -> List[str]:
    """The work of one generator iteration against the device's limit, as Markdown lines."""
    peak = report.get("peak") or {}
    kinds = [k for k in ("fp32", "tf32", "bf16") if peak.get(k)]
    lines = ["| backend | config | GFLOP / iteration | GFLOP/s plain; wganx; Trainer "
             f"| share of the {' / '.join(kinds) or 'unknown'} peak: plain; wganx; Trainer "
             "| penalty's share: of the FLOPs; of the time (plain; wganx) |", "|---|---|---|---|---|---|"]

    def each(v, fn):
        return "; ".join(fn(v[k]) if k in v else "-" for k in ("plain", "wganx", "trainer"))

    def per_s(e):
        return f"{e['gflop_per_s']:.3g}" if e.get("gflop_per_s") else "-"

    def share(e):
        got = e.get("share_of_peak") or {}
        return " / ".join(f"{100 * got[k]:.1f}%" for k in kinds if k in got) or "-"

    def pct(x):
        return f"{100 * x:.0f}%" if x is not None else "-"

    for row in report["results"]:
        v = row["variants"]
        if "gflop_per_iteration" not in row:
            continue
        times = "; ".join(pct(v.get(k, {}).get("penalty_time_share")) for k in ("plain", "wganx"))
        lines.append(f"| {row['backend']} | {row['config']} | {row['gflop_per_iteration']:.3g} | {each(v, per_s)} "
                     f"| {each(v, share)} | {pct(row['penalty_flop_share'])}; {times} |")
    if len(lines) == 2:
        return []
    peaks = ", ".join(f"{k} {peak[k] / 1e12:.3g} TFLOP/s" for k in kinds)
    lines += ["", f"FLOPs: convolutions and matrix products (torch's formulas) of one generator iteration, "
                  f"the penalty's double backward included, counted once per configuration from the ops "
                  f"torch runs; the same model is the same work on every backend. Peak: {peaks} "
                  f"({peak.get('source', '?')}). Penalty: the gp critic step's FLOPs and time beyond "
                  "the unpenalised one's, times n_critic, over the iteration's."]
    return lines


Repeated = Optional[List[str]]


def command(
        backend: Annotated[Repeated, typer.Option(
            "--backend", help="backend to measure (repeatable; default: every available one)")] = None,
        config: Annotated[Repeated, typer.Option(
            "--config", help="configuration (repeatable; default: " + ", ".join(CPU_DEFAULT) + " on the CPU, "
                             + ", ".join(GPU_DEFAULT) + " on a GPU): " + ", ".join(CONFIGS))] = None,
        variant: Annotated[Repeated, typer.Option(
            "--variant", help="what to time (repeatable; default: all of " + ", ".join(VARIANTS) + ")")] = None,
        repeats: Annotated[int, typer.Option("--repeats", help="interleaved rounds")] = 3,
        iters: Annotated[int, typer.Option(
            "--iters", help="generator iterations per timed window (0: per configuration)")] = 0,
        windows: Annotated[int, typer.Option("--windows", help="timed windows per subprocess")] = 2,
        warmup: Annotated[Optional[int], typer.Option(
            "--warmup", help="untimed warm-up iterations (default: 2 on the CPU, 5 on a GPU)")] = None,
        context: Context = "cpu",
        device_id: DeviceId = 0,
        type_config: Annotated[str, typer.Option("-t", "--type-config", help="float or half")] = "float",
        penalty: Annotated[bool, typer.Option(
            "--penalty/--no-penalty", help="--no-penalty skips the critic-step cost of gp against none")] = True,
        torch_compile: Annotated[bool, typer.Option(
            "--torch-compile", help="also time the plain torch loop with torch.compile on the generator")] = False,
        quick: Annotated[bool, typer.Option("--quick", help="tiny sizes, one round (for tests)")] = False,
        replicas: Annotated[int, typer.Option(
            "--replicas", help="also time N data-parallel replicas on each backend's engine (torchrun, "
                               "mirrored, mpirun) and report the scaling efficiency (docs: Scaling out)")] = 1,
        threads: Annotated[int, typer.Option(
            "--threads", help="intra-op threads of torch / OpenMP / MKL in each run (0: as wganx train "
                              "chooses: the CPUs no other process keeps busy)")] = 0,
        in_process: Annotated[bool, typer.Option(
            "--in-process", help="run every variant in this process (fast, for tests; peak RSS is not per run)")] = False,
        timeout: Annotated[int, typer.Option("--timeout", help="seconds per subprocess")] = 1800,
        json: Annotated[Optional[str], typer.Option("--json", metavar="PATH", help="write the full report as JSON")] = None,
        markdown: Annotated[Optional[str], typer.Option("--markdown", metavar="PATH",
                                                        help="write the table as Markdown")] = None) -> int:
    """Measure training speed: generator iterations per second of wganx and of plain
    hand-written loops in each framework."""
    args = SimpleNamespace(**locals())
    for name in ("backend", "config", "variant"):
        if not getattr(args, name):
            setattr(args, name, [] if name == "backend" else None)
    check_choice("--context", context, CONTEXTS)
    check_choice("--type-config", type_config, ("float", "half"))
    for name in args.config or ():
        check_choice("--config", name, list(CONFIGS))
    for name in args.variant or ():
        check_choice("--variant", name, VARIANTS)
    if replicas < 1:
        raise WganxError(f"--replicas must be at least 1, got {replicas}")
    return main(args)


def main(args) -> int:
    if args.quick and args.repeats == 3:
        args.repeats = 1
    report = run(args, progress=lambda s: print(s, file=sys.stderr, flush=True))
    table = format_table(report)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + "\n")
    failed = [x for x in report["runs"] if not x["ok"]]
    return 1 if failed else 0


def _worker_main(payload: str) -> int:
    job = json.loads(payload)
    try:
        result = worker(job)
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
        import traceback

        traceback.print_exc()
        result = {"backend": job["backend"], "config": job["config"], "variant": job["variant"], "ok": False,
                  "error": f"{type(exc).__name__}: {exc}"}
    if process_index() == 0:  # one result per data-parallel job
        print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


def cli(argv=None) -> int:
    """``python -m wganx_bench.harness`` / ``benchmarks/speed.py``: ``wganx bench``'s options, or
    ``--worker JOB`` (internal: one timed subprocess)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        return _worker_main(argv[1])
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
    app.command()(command)
    try:
        app(args=argv, prog_name="wganx bench", standalone_mode=False)
    except WganxError as exc:
        print(f"wganx bench: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
