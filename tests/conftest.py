"""Shared fixtures. Backends are found through the plugin registry, like users find them."""
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import wganx
from wganx.backend import prefer_python_protobuf

# The suite imports TensorFlow, NNabla, torch and TensorBoard in one process, in any order.
prefer_python_protobuf()
# ... but torch after TensorFlow breaks in the newest leg (TensorFlow 2.21, torch 2.14, triton
# 3.8): triton's import (torch.utils.flop_counter's) segfaults, and torch's CUDA check warns
# "Error loading CUDA libraries". Loaded before TensorFlow, both work; so they come first here.
for _first in ("torch", "triton"):
    if importlib.util.find_spec(_first) is not None:
        importlib.import_module(_first)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def available_backends():
    return [e.name for e in wganx.registry().entries("backend") if e.availability()[0]]


def pytest_report_header(config):
    return f"wganx backends available: {', '.join(available_backends()) or 'none'}"


def pytest_sessionstart(session):
    """``WGANX_TEST_INSTALLED=wheels`` (the newest leg of ``make matrix``): the suite tests the
    installed wheels, so wganx's modules and entry points found in this source tree are an error."""
    if os.environ.get("WGANX_TEST_INSTALLED") != "wheels":
        return
    import json
    import sys
    from importlib import metadata

    def in_tree(module):
        path = Path(importlib.import_module(module).__file__).resolve()
        return REPO in path.parents and Path(sys.prefix).resolve() not in path.parents

    modules, editable = {"wganx", "wganx_plugins"}, set()
    for ep in metadata.entry_points(group="wganx"):
        modules.add(ep.value.split(":")[0].split(".")[0])
        if json.loads(ep.dist.read_text("direct_url.json") or "{}").get("dir_info", {}).get("editable"):
            editable.add(ep.dist.name)
    wrong = sorted(m for m in modules if in_tree(m)) + sorted(f"{d} (editable)" for d in editable)
    if wrong or len(modules) < 3:
        pytest.exit(f"WGANX_TEST_INSTALLED=wheels, but from the source tree: {', '.join(wrong) or 'no plugins'}",
                    returncode=3)


@pytest.fixture(scope="session")
def backends():
    return available_backends()


@pytest.fixture(params=available_backends() or [pytest.param("none", marks=pytest.mark.skip("no backend"))])
def backend_name(request):
    return request.param


CIFAR_JPEG = SHARED_DATA / "cifar10-jpg.tar.gz"


def extract_cifar_jpegs(root: Path, counts: dict, classes: int = 10) -> Path:
    """The first ``counts[split]`` real JPEGs of each of the first ``classes`` classes of the
    shared CIFAR-10 copy, in its layout ``root/<split>/<class>/NNNN.jpg``; the calling test is
    skipped where the copy is absent."""
    import tarfile

    if not CIFAR_JPEG.is_file():
        pytest.skip(f"{CIFAR_JPEG} not found")
    taken: dict = {}
    with tarfile.open(CIFAR_JPEG) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in counts:
                continue
            names = taken.setdefault((parts[0], parts[1]), [])
            if len({c for s, c in taken if s == parts[0]}) <= classes and len(names) < counts[parts[0]]:
                names.append(parts[2])
                (root / parts[0] / parts[1]).mkdir(parents=True, exist_ok=True)
                (root / parts[0] / parts[1] / parts[2]).write_bytes(tar.extractfile(member).read())
    return root


MNIST = SHARED_DATA / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason=f"real MNIST not found in {MNIST}")


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """A classifier cache for the session; evaluate (and a subprocess started while it is
    set) finds it through $WGANX_CACHE_DIR."""
    root = tmp_path_factory.mktemp("wganx-cache")
    old = os.environ.get("WGANX_CACHE_DIR")
    os.environ["WGANX_CACHE_DIR"] = str(root)
    yield root
    if old is None:
        os.environ.pop("WGANX_CACHE_DIR", None)
    else:
        os.environ["WGANX_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def mnist_classifier(cache):
    """The MNIST domain classifier, trained once per test session."""
    from wganx_plugins.metrics import classifier

    return classifier.load_classifier("mnist", MNIST)


@pytest.fixture(scope="session")
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def toy_checkpoint(tmp_path_factory):
    """A checkpoint of two iterations of the 8-Gaussians toy (on the default backend), for
    tests of what is done with a trained model; nothing may write beside it."""
    import wganx

    if not available_backends():
        pytest.skip("no backend installed")
    folder = tmp_path_factory.mktemp("toy") / "run"
    return wganx.train(dataset="8gaussians", arch="mlp", maps=8, latent=2, batch_size=16, max_iter=2,
                       save_interval=2, threads=1, progress=False, monitor_path=folder).checkpoint


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run ``python -m wganx ARGS`` in a subprocess, like a user at a shell."""
    import subprocess
    import sys

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "wganx", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=timeout)


def tiny_config(tmp_path, **overrides):
    """A :class:`wganx.config.TrainConfig` that trains in seconds (digits, a 16x16 dcgan of
    width 2). One thread: the default counts idle CPUs, so on a busy machine two runs compared
    for equality could take different counts, and sum in different orders."""
    from wganx.config import TrainConfig

    values = dict(dataset="digits", image_size=16, arch="dcgan", maps=2, latent=8, batch_size=8, max_iter=4,
                  save_interval=2, log_interval=1, num_samples=16, progress=False, threads=1,
                  monitor_path=str(tmp_path / "run"))
    values.update(overrides)
    return TrainConfig(**values)


def read_losses(folder):
    """The rows of ``folder/losses.csv`` as dictionaries of strings."""
    import csv

    with open(folder / "losses.csv", newline="") as f:
        return list(csv.DictReader(f))


def resume_against_whole(tmp_path, iterations: int, **settings):
    """Train ``iterations`` in one run and in two halves (the second resumed from the first's
    last checkpoint) with :func:`tiny_config` and ``settings``; asserts that the losses and
    the final state agree, and returns ``(rows, meta)`` of the whole run and of the resumed
    one (``losses.csv`` rows, the final checkpoint's metadata)."""
    from dataclasses import replace

    from wganx import checkpoint
    from wganx.training import train

    half = iterations // 2
    whole = train(tiny_config(tmp_path / "a", max_iter=iterations, save_interval=half, **settings))
    assert whole["status"] == "finished"
    split = tiny_config(tmp_path / "b", max_iter=half, save_interval=half, **settings)
    train(split)
    train(replace(split, max_iter=iterations, resume="latest"))
    a, b = read_losses(tmp_path / "a" / "run"), read_losses(tmp_path / "b" / "run")
    assert [r["iteration"] for r in b] == [str(i) for i in range(1, iterations + 1)]
    for ra, rb in zip(a, b):
        for key in ("critic_loss", "generator_loss", "penalty"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-5, abs=1e-6), (ra, rb)
    name = checkpoint.name_for(iterations)
    (sa, meta_a), (sb, meta_b) = (checkpoint.load(tmp_path / r / "run" / name) for r in ("a", "b"))
    for key in sa:
        np.testing.assert_allclose(sb[key], sa[key], rtol=1e-5, atol=1e-7, err_msg=key)
    return (a, meta_a), (b, meta_b)


def check_critic_gradient(session, program, state, real, points, rel=1e-6, abs=1e-9, min_penalty=0.0):
    """``session.gradients("critic")`` (a float64 session) against central differences of the
    critic's loss at ``points``, ``(parameter name, flat index)`` pairs; the noise of the step
    is the same for every evaluation. The penalty must exceed ``min_penalty`` (it is really there)."""
    from wganx.algorithm import step_inputs

    def loss_and_grads(arrays):
        session.set_state(arrays)
        scalars, grads = session.gradients("critic", step_inputs(program, "critic", np.random.default_rng(7), real))
        assert scalars.get("penalty", 0.0) >= min_penalty
        return scalars["loss"], grads

    _, grads = loss_and_grads(state)
    h = 1e-6
    for key, k in points:
        up, down = dict(state), dict(state)
        up[key] = state[key].astype(np.float64).copy()
        down[key] = up[key].copy()
        up[key].flat[k] += h
        down[key].flat[k] -= h
        numeric = (loss_and_grads(up)[0] - loss_and_grads(down)[0]) / (2 * h)
        assert np.asarray(grads[key]).flat[k] == pytest.approx(numeric, rel=rel, abs=abs), (key, k)
