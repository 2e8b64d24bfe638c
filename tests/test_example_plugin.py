"""The plugin-author path, end to end: the third-party distribution in ``plugins/example``
(``wganx-example-plugin``) is found through its entry point, trains through ``wganx train``,
joins the parity matrix, and is tested with the fixtures of ``wganx.testing``.

CI installs it with ``pip install -e plugins/example``; without it these tests fail and say so.
"""
from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import wganx
from wganx import parity
from wganx.algorithm import step_inputs
from wganx.build import initial_arrays, load_backend, make_program
from wganx.records import ArchConfig
from wganx.testing import assert_parity, cases_for

DIST = "wganx-example-plugin"
ROOT = Path(__file__).resolve().parents[1]
ARCH, REG = "conv-small", "gp-onesided"


def _installed() -> bool:
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module", autouse=True)
def _require_example_plugin():
    if not _installed():
        pytest.fail(f"{DIST} is not installed; run: {sys.executable} -m pip install -e "
                    f"{ROOT / 'plugins' / 'example'}  (the Makefile's install step does this)",
                    pytrace=False)


def _wganx(*args, cwd, timeout=300):
    """Run the installed ``wganx`` command the way a user would (``python -m wganx``)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", WGANX_STRICT_PLUGINS="1")
    return subprocess.run([sys.executable, "-m", "wganx", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


# -- discovery -------------------------------------------------------------------------------
def test_listed_by_wganx_plugins_with_its_distribution(tmp_path):
    run = _wganx("plugins", "--json", cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(run.stdout)}
    for key in (("architecture", ARCH), ("regularizer", REG)):
        assert key in rows, f"{key} missing from wganx plugins --json"
        row = rows[key]
        assert row["package"] == DIST and row["version"] == "0.1.0" and row["available"]
        assert DIST in row["description"]


def test_registry_entries(wganx_registry):
    assert wganx_registry.entry("architecture", ARCH).package == DIST
    assert wganx_registry.entry("regularizer", REG).package == DIST
    spec = wganx_registry.get("regularizer", REG)
    assert spec.needs_input_grad and spec.weight == 10.0


def test_joins_the_parity_matrix_automatically(wganx_registry):
    cases = parity.default_cases(wganx_registry)
    assert any(c.arch == ARCH for c in cases)
    assert any(c.regularizer == REG for c in cases)
    mine = cases_for(DIST, wganx_registry)
    assert {c.arch for c in mine} >= {ARCH} and {c.regularizer for c in mine} >= {REG}
    assert all(ARCH == c.arch or REG == c.regularizer for c in mine)
    with pytest.raises(LookupError, match="is installed; pip install it"):
        cases_for("no-such-distribution", wganx_registry)


# -- the architecture ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_conv_small_sizes(wganx_registry, size):
    arch = wganx_registry.get("architecture", ARCH).build(
        ArchConfig(image_size=size, channels=1, latent=8, maps=4))
    assert arch.sample_shape == (1, size, size)
    assert not arch.critic.has_batch_norm and not arch.generator.has_batch_norm


@pytest.mark.parametrize("size", [4, 12, 0])
def test_conv_small_refuses_other_sizes(wganx_registry, size):
    with pytest.raises(wganx.WganxError, match="8, 16, 32"):
        wganx_registry.get("architecture", ARCH).build(ArchConfig(image_size=size))


@pytest.mark.slow
def test_conv_small_on_every_backend(wganx_registry, wganx_backend):
    """Forward shapes and an input gradient on each backend, conditional model included."""
    program = make_program(arch=ARCH, regularizer=REG, batch_size=2, reg=wganx_registry,
                           arch_config=ArchConfig(image_size=8, channels=1, latent=4, maps=4,
                                                  num_classes=3))
    session = load_backend(wganx_backend, reg=wganx_registry).compile(program)
    session.set_state(initial_arrays(program, np.random.default_rng(0)))
    labels = np.array([0, 2])
    x = session.generate(np.zeros((2, 4), np.float32), labels)
    assert x.shape == (2, 1, 8, 8) and np.all(np.abs(x) <= 1)
    assert session.critic_values(x, labels).shape == (2, 1)
    assert session.input_gradient(x, labels).shape == x.shape


# -- the regularizer, against mathematics ------------------------------------------------------
def test_gp_onesided_is_exact_on_a_linear_critic(wganx_registry, wganx_backend):
    """For ``D(x) = w.x + b`` the gradient is ``w`` everywhere: penalty ``max(0, |w| - 1)^2``."""
    program = make_program(arch="mlp", regularizer=REG, batch_size=parity.BATCH, reg=wganx_registry,
                           arch_config=ArchConfig(data_kind="points", latent=6))
    program = replace(program, arch=parity.linear_architecture(6), latent=6)
    session = load_backend(wganx_backend, reg=wganx_registry).compile(program)
    for seed, scale in ((0, 0.2), (1, 3.0), (2, 7.0)):
        rng = np.random.default_rng(seed)
        arrays = initial_arrays(program, rng)
        arrays["critic/W"] = arrays["critic/W"] * np.float32(scale)
        session.set_state(arrays)
        real = rng.standard_normal((parity.BATCH, 6)).astype(np.float32)
        inputs = step_inputs(program, "critic", rng, real)
        scalars, grads = session.gradients("critic", inputs)
        w = arrays["critic/W"].astype(np.float64)
        norm = np.linalg.norm(w)
        assert scalars["penalty"] == pytest.approx(max(0.0, norm - 1.0) ** 2, rel=1e-4, abs=1e-6)
        # d/dw: the Wasserstein part mean(fake) - mean(real), plus lambda * 2 max(0, |w| - 1) w / |w|
        fake = session.generate(inputs["z"]).astype(np.float64)
        expected = (fake.mean(0) - real.mean(0))[:, None] + 10.0 * 2 * max(0.0, norm - 1.0) * w / norm
        np.testing.assert_allclose(grads["critic/W"], expected, rtol=1e-4,
                                   atol=1e-5 * np.abs(expected).max())


# -- training through the CLI -----------------------------------------------------------------
@pytest.mark.slow
def test_trains_through_wganx_train(tmp_path):
    out = tmp_path / "run"
    run = _wganx("train", "--backend", "torch", "--dataset", "digits", "--image-size", "8",
                 "-i", "3", "-b", "8", "--maps", "4", "--arch", ARCH, "--regularizer", REG,
                 "--monitor-path", str(out), "--no-progress", "--save-interval", "3",
                 "--log-interval", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "finished at iteration 3" in run.stdout
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["arch"], config["regularizer"]) == (ARCH, REG)
    assert list(out.glob("params_*.safetensors"))


# -- the pytest plugin's parity helper --------------------------------------------------------
@pytest.mark.slow
def test_parity_of_conv_small_across_backends(wganx_registry, wganx_backends):
    case = next(c for c in cases_for(DIST, wganx_registry) if c.arch == ARCH)
    checks = assert_parity(case, backends=wganx_backends, registry=wganx_registry)
    assert bool(checks) == (len(wganx_backends) > 1)


def test_wganx_testing_imports_no_framework():
    code = ("import sys, wganx.testing; "
            "bad = [m for m in ('torch', 'tensorflow', 'nnabla', 'numpy') if m in sys.modules]; "
            "print(','.join(bad))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ""
