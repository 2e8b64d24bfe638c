"""The generator's exponential moving average (``--ema-decay``): the update rule against
numpy on every backend, where it is used (tiles, generate, evaluate) and how checkpoints
without it load. Cross-backend agreement is the parity matrix's ``ema`` case; exact resume
is ``test_training.py::test_resume_equals_an_uninterrupted_run[ema]``."""
import dataclasses
import json

import numpy as np
import pytest

import wganx
from wganx import checkpoint, parity
from wganx.algorithm import step_inputs
from wganx.build import initial_arrays, load_backend
from wganx.algorithm import ema_decay_at, ema_name
from wganx.training import train

from conftest import available_backends, run_cli
from test_training import tiny_config

BACKENDS = available_backends()


@pytest.fixture(scope="module")
def program():
    base = parity.program_for(parity.Case("nnabla-cifar", up="nearest"), wganx.registry())
    return dataclasses.replace(base, ema_decay=0.9, ema_start=2)


def test_the_decay_copies_until_the_start():
    program = dataclasses.replace(parity.program_for(parity.Case("mlp", data_kind="points"), wganx.registry()),
                                  ema_decay=0.99, ema_start=3)
    assert [ema_decay_at(program, t) for t in (1, 2, 3, 4, 100)] == [0.0, 0.0, 0.0, 0.99, 0.99]


@pytest.mark.parametrize("name", BACKENDS)
def test_the_moving_average_follows_the_rule_on_every_backend(name, program):
    """Four generator steps (two copies, then two averages) against numpy; batch norm's
    running statistics are copied, not averaged."""
    session = load_backend(name).compile(program)
    state = initial_arrays(program, np.random.default_rng(0))
    assert all(np.array_equal(state[ema_name(k)], state[k]) for k in state if k.startswith("generator/"))
    session.set_state(state)
    expected = {k: state[k].astype(np.float64) for k in state if k.startswith("generator/")}
    statistics = {k for k in expected if not program.arch.generator.params[k.split("/", 1)[1]].trainable}
    assert statistics  # the case really has batch norm
    rng = np.random.default_rng(1)
    for t in range(1, 5):
        session.generator_step(step_inputs(program, "generator", rng))
        now = session.get_state()
        d = ema_decay_at(program, t)
        for k in expected:
            expected[k] = now[k].astype(np.float64) if k in statistics else d * expected[k] + (1 - d) * now[k]
    for k, value in expected.items():
        np.testing.assert_allclose(now[ema_name(k)], value, rtol=1e-6, atol=1e-7, err_msg=k)
    assert max(np.abs(now[ema_name(k)] - now[k]).max() for k in expected if k not in statistics) > 1e-4


@pytest.mark.parametrize("name", BACKENDS)
def test_generate_uses_the_average_unless_raw(name, program):
    session = load_backend(name).compile(program)
    state = initial_arrays(program, np.random.default_rng(0))
    shifted = {ema_name(k): v + np.float32(0.05) for k, v in state.items()
               if k.startswith("generator/") and k.endswith("/W")}
    session.set_state({**state, **shifted})
    z = np.random.default_rng(2).standard_normal((3, program.latent)).astype(np.float32)
    raw, average = session.generate(z, raw=True), session.generate(z)
    plain = load_backend(name).compile(dataclasses.replace(program, ema_decay=0.0))
    plain.set_state({**state, **{k[len("ema/"):]: v for k, v in shifted.items()}})
    np.testing.assert_allclose(average, plain.generate(z), rtol=1e-5, atol=1e-6)
    assert np.abs(raw - average).max() > 1e-3


def test_cli_generate_and_evaluate_sample_the_average(tmp_path):
    run = tmp_path / "run"
    out = run_cli("train", "--dataset", "8gaussians", "--arch", "mlp", "--maps", "16", "--latent", "2", "-b", "32",
                  "-i", "4", "--save-interval", "4", "--no-progress", "--ema-decay", "0.5", "--monitor-path", run)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = run / "params_000004.safetensors"
    arrays, meta = checkpoint.load(ckpt)
    assert meta["config"]["ema_decay"] == 0.5 and ema_name("generator/out/W") in arrays
    samples = {}
    for flag in ((), ("--raw-weights",)):
        dest = tmp_path / f"gen{len(flag)}"
        out = run_cli("generate", "--model-load-path", ckpt, "--num-images", "5", "--format", "npz",
                      "--monitor-path", dest, *flag)
        assert out.returncode == 0, out.stderr[-3000:]
        samples[flag] = np.load(dest / "samples.npz")["points"]
    assert np.abs(samples[()] - samples[("--raw-weights",)]).max() > 1e-6
    out = run_cli("evaluate", "--model-load-path", ckpt, "--num-samples", "64", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["source"]["weights"] == "moving average"


def test_resuming_a_run_without_an_average_starts_it_from_the_checkpoint(tmp_path, capsys):
    first = tiny_config(tmp_path, max_iter=2, save_interval=2)
    train(first)
    result = train(dataclasses.replace(first, max_iter=3, save_interval=3, resume="latest", ema_decay=0.9,
                                       ema_start=5))
    assert result["status"] == "finished"
    assert "has no moving average of the generator" in capsys.readouterr().err
    arrays, _ = checkpoint.load(tmp_path / "run" / "params_000003.safetensors")
    for key in [k for k in arrays if k.startswith("generator/")]:  # still copying (start 5)
        np.testing.assert_array_equal(arrays[ema_name(key)], arrays[key], err_msg=key)


@pytest.mark.parametrize("flag, value, message", [
    ("--ema-decay", "1.0", "--ema-decay must be in [0, 1), got 1.0"),
    ("--ema-start", "-1", "--ema-start must not be negative, got -1"),
])
def test_bad_moving_average_settings_are_one_line_errors(tmp_path, flag, value, message):
    out = run_cli("train", "--dataset", "8gaussians", "--arch", "mlp", "-i", "1", flag, value,
                  "--monitor-path", tmp_path / "run")
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
