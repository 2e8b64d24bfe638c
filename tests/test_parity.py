"""Cross-backend parity: same weights and inputs give the same numbers on every backend.

The matrix and its tolerances live in :mod:`wganx.parity` (they are also the ``wganx parity``
command); here each case is one test. Plus checks against mathematics: the exact penalty of a
linear critic and finite differences of input gradients in float64.
"""
import itertools
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import wganx
from wganx import parity
from wganx.build import initial_arrays, load_backend, make_program, step_inputs
from wganx.records import ArchConfig

from conftest import available_backends, run_cli

BACKENDS = available_backends()
CASES = parity.default_cases(wganx.registry())


@pytest.fixture(scope="module")
def loaded():
    return {name: load_backend(name) for name in BACKENDS}


@pytest.mark.skipif(len(BACKENDS) < 2, reason="parity needs two backends")
@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_backends_agree(case, loaded):
    reg = wganx.registry()
    program = parity.program_for(case, reg)
    sessions = {name: backend.compile(program) for name, backend in loaded.items()}
    checks = parity.run_case(case, sessions, program)
    assert len(checks) == (len(sessions) - 1) * (len(checks) // max(len(sessions) - 1, 1))
    failed = [c.as_dict() for c in checks if not c.passed]
    assert not failed, json.dumps(failed, indent=1)


def test_matrix_covers_every_plugin():
    reg = wganx.registry()
    covered = {(kind, getattr(c, attr)) for c in CASES
               for kind, attr in (("architecture", "arch"), ("upsampler", "up"),
                                  ("regularizer", "regularizer"), ("loss", "loss"))}
    for kind in ("architecture", "upsampler", "regularizer", "loss"):
        for name in reg.names(kind):
            assert (kind, name) in covered, f"{kind} {name} is not in the parity matrix"


@pytest.mark.parametrize("name", BACKENDS)
def test_linear_critic_penalty_is_exact(name, loaded):
    checks = parity.linear_penalty_checks(name, loaded[name].compile, wganx.registry())
    assert checks and all(c.passed for c in checks), [c.as_dict() for c in checks]


def test_a_mismatch_is_detected(loaded):
    """The comparison can fail: perturb one weight on one side and the check must say so."""
    if not BACKENDS:
        pytest.skip("no backend")
    name = BACKENDS[0]
    case = parity.Case("mlp", data_kind="points")
    program = make_program(arch="mlp", arch_config=case.arch_config(wganx.registry()), batch_size=parity.BATCH)
    good, bad = loaded[name].compile(program), loaded[name].compile(program)
    original = bad.set_state

    def tampered(arrays):
        arrays = dict(arrays)
        arrays["critic/fc-1/W"] = arrays["critic/fc-1/W"] * np.float32(1.001)
        original(arrays)

    bad.set_state = tampered
    checks = parity.run_case(case, {"a": good, "b": bad}, program)
    assert any(not c.passed for c in checks)


DOUBLE_BACKENDS = [b for b in BACKENDS if "double" in wganx.registry().get("backend", b).capabilities]


@pytest.mark.parametrize("name", DOUBLE_BACKENDS)
@pytest.mark.parametrize("arch", ["nnabla-cifar", "resnet", "dcgan"])
def test_input_gradient_matches_finite_differences_in_float64(name, arch):
    reg = wganx.registry()
    config = ArchConfig(image_size=32 if arch != "dcgan" else 16, channels=1, latent=4, maps=2,
                        up=reg.get("upsampler", "linear"), critic_norm="layer")
    program = make_program(arch=arch, arch_config=config, batch_size=2)
    session = load_backend(name, type_config="double").compile(program)
    rng = np.random.default_rng(3)
    session.set_state(initial_arrays(program, rng))
    x = rng.uniform(-1, 1, (2,) + program.arch.sample_shape)
    grad = session.input_gradient(x.astype(np.float64))
    h = 1e-6
    for idx in [(0, 0, 5, 7), (1, 0, 10, 3), (0, 0, 15, 15)]:
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        numeric = (session.critic_values(up).sum() - session.critic_values(down).sum()) / (2 * h)
        assert grad[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends")
def test_parity_command_json(tmp_path):
    """``wganx parity`` as users run it, restricted to one cheap case for time."""
    out = run_cli("parity", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["passed"] is True and sorted(report["backends"]) == sorted(BACKENDS)
    assert {c["case"].split("/")[0].split("[")[0] for c in report["cases"]} >= {"nnabla-cifar", "dcgan", "mlp",
                                                                                 "resnet"}


@pytest.mark.parametrize("order", list(itertools.permutations(["torch", "tensorflow", "nnabla"])),
                         ids="-".join)
def test_all_backends_in_one_process_in_any_import_order(order):
    missing = [b for b in order if b not in BACKENDS]
    if missing:
        pytest.skip(f"not installed: {missing}")
    code = textwrap.dedent(f"""
        import numpy as np, wganx
        from wganx.build import load_backend, make_program, initial_arrays, step_inputs
        from wganx.records import ArchConfig
        program = make_program(arch="mlp", arch_config=ArchConfig(data_kind="points", latent=2, maps=8), batch_size=4)
        losses = []
        for name in {list(order)!r}:
            __import__({{"torch": "torch", "tensorflow": "tensorflow", "nnabla": "nnabla"}}[name])
        for name in {list(order)!r}:
            s = load_backend(name).compile(program)
            rng = np.random.default_rng(0)
            s.set_state(initial_arrays(program, rng))
            losses.append(s.fetch(s.critic_step(step_inputs(program, "critic", rng, np.ones((4, 2), "f"))))["loss"])
        assert np.allclose(losses, losses[0], rtol=1e-4), losses
        print("ok", losses)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_gradients_update_nothing(backend_name):
    """``Session.gradients`` leaves every parameter and running statistic as it was."""
    reg = wganx.registry()
    case = parity.Case("nnabla-cifar", up="nearest")
    program = parity.program_for(case, reg)
    session = load_backend(backend_name).compile(program)
    rng = np.random.default_rng(0)
    session.set_state(initial_arrays(program, rng))
    before = session.get_state()
    real = rng.uniform(-1, 1, (parity.BATCH,) + program.arch.sample_shape).astype(np.float32)
    session.gradients("critic", step_inputs(program, "critic", rng, real))
    session.gradients("generator", step_inputs(program, "generator", rng))
    after = session.get_state()
    assert sorted(after) == sorted(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


@pytest.mark.skipif("tensorflow" not in BACKENDS, reason="tensorflow backend not installed")
def test_tensorflow_nearest_upsampling_has_derivatives_of_every_order():
    """The backend's resize-based nearest upsampling against tile-and-reshape, up to the third
    derivative in float64 (TensorFlow has no gradient for the resize's own gradient op)."""
    import tensorflow as tf
    from wganx_tensorflow.backend import TensorFlowOps

    x = tf.constant(np.random.default_rng(0).standard_normal((2, 3, 3, 2)))
    weights = tf.reshape(tf.range(72, dtype=tf.float64) / 72.0, (1, 6, 6, 2))

    def tiled(v, k):
        return tf.reshape(tf.tile(tf.reshape(v, (-1, 3, 1, 3, 1, 2)), (1, 1, k, 1, k, 1)), (-1, 6, 6, 2))

    def derivatives(upsample):
        with tf.GradientTape() as t3:
            t3.watch(x)
            with tf.GradientTape() as t2:
                t2.watch(x)
                with tf.GradientTape() as t1:
                    t1.watch(x)
                    y = upsample(x, 2)
                    out = tf.reduce_sum(tf.sin(y) * weights)
                g1 = t1.gradient(out, x)
                s2 = tf.reduce_sum(g1 ** 3)
            g2 = t2.gradient(s2, x)
            s3 = tf.reduce_sum(tf.sin(g2))
        g3 = t3.gradient(s3, x)
        return [t.numpy() for t in (y, g1, g2, g3)]

    for got, want in zip(derivatives(TensorFlowOps._repeat), derivatives(tiled)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
