"""Data-parallel training on each framework's own engine (docs/scaling.rst).

N replicas must compute what one process computes: ``replicas_worker.py`` runs, in every
process of a real launch (torchrun with gloo; TensorFlow's MultiWorkerMirroredStrategy with
two localhost workers; MirroredStrategy over two logical CPUs), a data-parallel session and a
one-process session side by side on the same global batches and reports their differences.
Bounds: float64 1e-8 relative (round-off of a different summation order), float32 1e-5
(the toy MLP; a model with batch norm has zero-gradient biases whose float32 round-off Adam
amplifies in one process already, so it is held in float64). Every launch is bounded in
time and its processes are killed by PID.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wganx import checkpoint
from wganx.cli import main as cli_main
from wganx.config import TrainConfig
from wganx.distributed import (Replicas, check_engine, check_launch, engine_names, launched_by, local_batch,
                               replica_slice)
from wganx.errors import WganxError
from wganx.records import BackendSpec, EngineSpec

from conftest import available_backends

HERE = Path(__file__).resolve().parent
WORKER = HERE / "replicas_worker.py"
BOUND = {"double": 1e-8, "float": 1e-5}
LAUNCH_TIMEOUT = 240
TOY = ["--backend", "torch", "--dataset", "8gaussians", "--arch", "mlp", "--maps", "8", "--latent", "2", "-b", "16",
       "--log-interval", "1", "--save-interval", "2", "--num-samples", "16", "--no-progress", "--threads", "1"]
needs_torch = pytest.mark.skipif("torch" not in available_backends(), reason="torch backend not installed")
needs_tf = pytest.mark.skipif("tensorflow" not in available_backends(), reason="tensorflow backend not installed")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


# -- processes, bounded and killed by PID ------------------------------------------------------
def descendants(pid: int) -> list:
    """PIDs of every process below ``pid`` (from /proc)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(proc):
    for pid in [proc.pid] + descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start(args, env=None, cwd=None):
    # PYTHONFAULTHANDLER: a worker that aborts (SIGABRT from C++) prints every thread's stack
    full = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE), PYTHONFAULTHANDLER="1", **(env or {}))
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full, cwd=cwd, start_new_session=True)


def finish(proc, timeout=LAUNCH_TIMEOUT):
    """``(returncode, stdout, stderr)``; a launch that outlives ``timeout`` fails the test."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_all(proc)
        out, err = proc.communicate()
        pytest.fail(f"the launch did not end within {timeout} s:\n{excerpt(err)}")
    finally:
        kill_all(proc)  # whatever a launcher left behind
    return proc.returncode, out, err


def excerpt(err: str, head: int = 2000, tail: int = 6000) -> str:
    """A failed launch's stderr: its beginning (the workers' first messages) and its end (a
    fault handler's stacks, then the launcher's report)."""
    return err if len(err) <= head + tail else f"{err[:head]}\n[...]\n{err[-tail:]}"


def worker_results(out: Path, processes: int) -> list:
    return [json.loads(Path(f"{out}.{i}.json").read_text()) for i in range(processes)]


def check_equal(results: list, replicas: int):
    """Every process of the job matched its one-process session, and without synchronised
    batch norm the generator's statistics (per replica) really do differ."""
    for result in results:
        for label, r in result.items():
            assert r["replicas"] == replicas, label
            type_config = label.split("/")[1]
            if "local batch norm" in label:
                assert r["scalars"] > 1e-3, (label, r)  # what --no-sync-batch-norm changes
                continue
            bound = BOUND[type_config]
            assert r["scalars"] <= bound and r["gradient"] <= bound and r["state"] <= bound, (label, r)


# -- the core's part, in this process ----------------------------------------------------------
def test_global_batch_slices_and_divides():
    inputs = {"z": np.arange(8).reshape(8, 1), "real": np.arange(16).reshape(8, 2)}
    parts = [replica_slice(inputs, i, 4) for i in range(4)]
    assert np.array_equal(np.concatenate([p["z"] for p in parts]), inputs["z"])
    assert np.array_equal(parts[1]["real"], inputs["real"][2:4])
    assert local_batch(64, Replicas(size=8, engine="torchrun")) == 8
    with pytest.raises(WganxError, match=r"--batch-size 30 is the global batch and must divide by the 4 replicas.*try 32"):
        local_batch(30, Replicas(size=4, engine="torchrun"))


LAUNCHER_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "OMPI_COMM_WORLD_SIZE",
                      "OMPI_COMM_WORLD_RANK", "PMI_SIZE", "PMI_RANK", "PMIX_SIZE", "PMIX_RANK", "TF_CONFIG")


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@needs_torch
def test_launchers_are_recognised_through_the_engines_backends_declare(no_launcher):
    assert launched_by() is None
    no_launcher.setenv("WORLD_SIZE", "2")
    no_launcher.setenv("LOCAL_RANK", "1")
    no_launcher.setenv("RANK", "1")
    assert launched_by() == ("torchrun", 2, 1)
    # two processes of torchrun must not each train alone on a backend that cannot join them;
    # the message says how each installed backend is launched, from their records
    with pytest.raises(WganxError, match="one of 2 that torchrun started, but backend 'nnabla' runs them as 1 job.*"
                                         "torch under torchrun, e.g. torchrun --standalone"):
        check_launch("nnabla", Replicas())
    no_launcher.setenv("WORLD_SIZE", "two")
    with pytest.raises(WganxError, match="torchrun set a world size 'two' and rank '1' that are not numbers"):
        launched_by()
    no_launcher.setenv("WORLD_SIZE", "1")  # one process: not a job
    assert launched_by() is None


def test_the_core_offers_the_engines_the_installed_backends_declare():
    """``--distribute`` takes auto, none and each installed standard backend's engines; the core
    itself names none of them."""
    names = engine_names()
    assert names[:2] == ("auto", "none") and len(set(names)) == len(names)
    standard = {"torch": {"torchrun"}, "tensorflow": {"mirrored", "multi-worker"}, "nnabla": {"mpi"}}
    for backend in available_backends():
        assert standard.get(backend, set()) <= set(names), backend
    import inspect

    import wganx.distributed

    core = inspect.getsource(wganx.distributed)
    assert not any(f'"{engine}"' in core for engines in standard.values() for engine in engines)
    with pytest.raises(WganxError, match="--distribute must be one of auto, none"):
        TrainConfig(distribute="horovod").validate()


def test_a_record_may_name_its_engines_bare():
    spec = BackendSpec("third", factory="x:Y", engines=("pmix-engine", EngineSpec("other", launcher="l")))
    assert spec.engine_names == ("pmix-engine", "other")
    assert spec.engines[0] == EngineSpec("pmix-engine")  # no launcher to recognise


def test_engines_are_checked():
    check_engine("torch", ("torchrun",), "auto")
    with pytest.raises(WganxError, match=r"backend 'torch' cannot run data-parallel with --distribute mirrored; "
                                         r"its engines: torchrun"):
        check_engine("torch", ("torchrun",), "mirrored")
    with pytest.raises(WganxError, match="--distribute must be one of auto, none"):
        check_engine("torch", ("torchrun",), "horovod")


@needs_torch
def test_cli_names_the_engines_in_one_line(tmp_path, capsys):
    code = cli_main(["train", *TOY, "-i", "1", "--distribute", "mirrored", "--monitor-path", tmp_path / "a"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "its engines: torchrun" in err
    code = cli_main(["train", *TOY, "-i", "1", "--distribute", "torchrun", "--monitor-path", tmp_path / "b"])
    err = capsys.readouterr().err
    assert code == 2 and "start wganx with torchrun" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # a failed start leaves nothing


# -- torchrun, 2 processes with gloo -----------------------------------------------------------
@needs_torch
def test_torchrun_replicas_equal_one_process(tmp_path):
    code, _, err = finish(start([*TORCHRUN, WORKER, "torch", "auto", tmp_path / "r"]))
    assert code == 0, excerpt(err)
    check_equal(worker_results(tmp_path / "r", 2), replicas=2)


def losses(folder: Path) -> np.ndarray:
    rows = (folder / "losses.csv").read_text().splitlines()[1:]
    return np.array([[float(v) for v in row.split(",")[1:-1]] for row in rows])  # without elapsed_s


def assert_same_state(a_path: Path, b_path: Path, bound: float):
    a, b = checkpoint.load(a_path)[0], checkpoint.load(b_path)[0]
    assert sorted(a) == sorted(b)
    for k in b:
        scale = max(float(np.max(np.abs(b[k]))), 1e-6)
        assert float(np.max(np.abs(a[k] - b[k]))) <= bound * scale, k


@needs_torch
def test_torchrun_training_resumes_one_process_run_exactly(tmp_path, capsys):
    """``torchrun -m wganx train`` continues a one-process checkpoint on 2 ranks: its losses and
    weights equal an uninterrupted one-process run's, and only rank 0 wrote."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    toy = [*TOY, "--lr-decay-iters", "4"]  # the mlp's learning-rate decay, over the whole run in both
    assert cli_main(["train", *toy, "-i", "4", "--monitor-path", straight]) == 0
    assert cli_main(["train", *toy, "-i", "2", "--monitor-path", split]) == 0
    capsys.readouterr()
    code, out, err = finish(start([*TORCHRUN, "-m", "wganx", "train", *toy, "-i", "4", "--resume",
                                   "--monitor-path", split]))
    assert code == 0, excerpt(err)
    assert out.count("finished at iteration 4") == 1, out  # one summary: rank 0's
    assert "Traceback" not in err
    assert sorted(os.listdir(split)) == sorted(os.listdir(straight))  # no second writer's files
    info = json.loads((split / "config.json").read_text())
    assert info["replicas"] == {"engine": "torchrun", "replicas": 2, "processes": 2}
    assert info["history"][0]["replicas"]["processes"] == 1
    a, b = losses(split), losses(straight)
    assert a.shape == b.shape == (4, 5)
    assert np.max(np.abs(a - b) / (np.abs(b) + 1e-6)) <= BOUND["float"]
    assert_same_state(split / "params_000004.safetensors", straight / "params_000004.safetensors", BOUND["float"])


@needs_torch
def test_torchrun_on_a_prepared_dataset_equals_one_process(tmp_path, capsys):
    """Two ranks each read only their rows of every global batch from the memory map
    (``Dataset.share``); losses and weights equal one process's, which reads whole batches."""
    args = [*TOY, *prepared_vectors(tmp_path), "-i", "4"]
    alone, ranks = tmp_path / "alone", tmp_path / "ranks"
    assert cli_main(["train", *map(str, args), "--monitor-path", str(alone)]) == 0
    capsys.readouterr()
    code, out, err = finish(start([*TORCHRUN, "-m", "wganx", "train", *args, "--monitor-path", ranks]))
    assert code == 0 and "Traceback" not in err, excerpt(err)
    assert json.loads((ranks / "config.json").read_text())["replicas"]["processes"] == 2
    a, b = losses(ranks), losses(alone)
    assert a.shape == b.shape == (4, 5)
    assert np.max(np.abs(a - b) / (np.abs(b) + 1e-6)) <= BOUND["float"]
    assert_same_state(ranks / "params_000004.safetensors", alone / "params_000004.safetensors", BOUND["float"])


def wait_for(path: Path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_all(proc)
            pytest.fail(f"{path} did not appear: {proc.communicate()[1][-3000:]}")
        time.sleep(0.2)


def rank_pid(proc, rank: int) -> int:
    for pid in descendants(proc.pid):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"TORCHELASTIC_RUN_ID" in b"".join(env):
            return pid
    pytest.fail(f"no process of rank {rank} under {proc.pid}")


@needs_torch
@pytest.mark.parametrize("fault", ["rank 1 killed", "Ctrl-C"])
def test_torchrun_faults_end_every_rank_and_keep_the_checkpoint(tmp_path, fault):
    """A rank killed with SIGKILL, or Ctrl-C (SIGINT to every process, as a terminal sends
    it): the job ends within a bounded time, and every checkpoint on disk loads."""
    run = tmp_path / "run"
    proc = start([*TORCHRUN, "-m", "wganx", "train", *TOY, "-i", "100000", "--monitor-path", run])
    wait_for(run / "params_000002.safetensors", proc)
    began = time.monotonic()
    if fault == "Ctrl-C":
        for pid in [proc.pid] + descendants(proc.pid):
            os.kill(pid, signal.SIGINT)
    else:
        os.kill(rank_pid(proc, 1), signal.SIGKILL)
    code, _, err = finish(proc, timeout=90)
    assert code != 0
    assert time.monotonic() - began < 90
    if fault == "rank 1 killed":
        lines = [ln for ln in err.splitlines() if ln.startswith("wganx train:")]
        assert lines and ("failed" in lines[0] or "stopped by SIGTERM" in lines[0]), excerpt(err)
    saved = checkpoint.checkpoints(run)
    assert saved
    for path in saved:
        arrays, meta = checkpoint.load(path)
        assert meta["iteration"] >= 2


# -- tf.distribute: MirroredStrategy over 2 logical CPUs, MultiWorkerMirroredStrategy on localhost
def free_ports(n: int) -> list:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_workers(n: int) -> list:
    """The environment of each of ``n`` TensorFlow workers on this machine (``TF_CONFIG``)."""
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(n)]}
    return [{"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
            for i in range(n)]


@needs_tf
def test_tf_mirrored_replicas_equal_one_process(tmp_path):
    proc = start([sys.executable, WORKER, "tensorflow", "mirrored", tmp_path / "r"],
                 env={"WGANX_TF_CPU_DEVICES": "2"})
    code, _, err = finish(proc)
    assert code == 0, excerpt(err)
    check_equal(worker_results(tmp_path / "r", 1), replicas=2)


@needs_tf
def test_tf_multi_worker_replicas_equal_one_process(tmp_path):
    procs = [start([sys.executable, WORKER, "tensorflow", "auto", tmp_path / "r", "synced"], env=env)
             for env in tf_workers(2)]
    for proc in procs:
        code, _, err = finish(proc)
        assert code == 0, excerpt(err)
    check_equal(worker_results(tmp_path / "r", 2), replicas=2)


def prepared_vectors(tmp_path: Path) -> list:
    """``--dataset prepared`` flags for 96 prepared 3-D vectors (after TOY, the last flags count)."""
    np.save(tmp_path / "v.npy", np.random.default_rng(0).standard_normal((96, 3)))
    assert cli_main(["data", "prepare", str(tmp_path / "v.npy"), "-o", str(tmp_path / "v"), "--no-progress"]) == 0
    return ["--dataset", "prepared", "--data-dir", str(tmp_path / "v")]


@needs_tf
@pytest.mark.parametrize("data", ["toy", "prepared"])
def test_tf_multi_worker_training_equals_one_process(tmp_path, capsys, data):
    """Two ``wganx train`` workers with TF_CONFIG into one run folder: the chief alone writes,
    and the losses and weights equal one process's. From a prepared dataset, each worker reads
    only its rows of every global batch."""
    args = [*TOY, "--backend", "tensorflow", "-i", "4", *(prepared_vectors(tmp_path) if data == "prepared" else [])]
    alone, workers = tmp_path / "alone", tmp_path / "workers"
    assert cli_main(["train", *args, "--monitor-path", alone]) == 0
    capsys.readouterr()
    procs = [start([sys.executable, "-m", "wganx", "train", *args, "--monitor-path", workers], env=env)
             for env in tf_workers(2)]
    outs = []
    for proc in procs:
        code, out, err = finish(proc)
        assert code == 0 and "Traceback" not in err, excerpt(err)
        outs.append(out)
    assert "finished at iteration 4" in outs[0] and outs[1] == ""  # only the chief reports
    assert sorted(os.listdir(workers)) == sorted(os.listdir(alone))
    assert json.loads((workers / "config.json").read_text())["replicas"] == {
        "engine": "multi-worker", "replicas": 2, "processes": 2}
    a, b = losses(workers), losses(alone)
    assert np.max(np.abs(a - b) / (np.abs(b) + 1e-6)) <= BOUND["float"]
    assert_same_state(workers / "params_000004.safetensors", alone / "params_000004.safetensors", BOUND["float"])
