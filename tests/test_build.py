"""wganx.build: names and settings resolved into a backend, a dataset, a program and its
first state, each with its one-line refusals."""
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import wganx
from wganx.algorithm import ema_name
from wganx.build import initial_arrays, load_backend, load_dataset, make_program, program_from_config, with_ema
from wganx.config import TrainConfig
from wganx.errors import BackendUnavailableError, UnknownNameError, WganxError
from wganx.optim import state_name
from wganx.plugins import Registry
from wganx.records import ArchConfig, BackendSpec

POINTS = ArchConfig(latent=2, maps=8, data_kind="points", data_dim=2)


class BareBackends:
    """The base class's least backend (test_backend.py) as a plugin, declaring only the CPU."""

    @wganx.hookimpl
    def wganx_backends(self):
        return [BackendSpec("bare", "test_backend:Bare")]


def test_a_backend_is_constructed_with_the_users_flags_and_its_engines():
    reg = Registry.from_plugins([BareBackends()], entry_points=False)
    backend = load_backend("bare", context="cuda", device_id=1, reg=reg)
    assert (backend.name, backend.context, backend.device_id, backend.engines) == ("bare", "cuda", 1, ())
    with pytest.raises(BackendUnavailableError, match="backend 'bare' does not support -t double"):
        load_backend("bare", type_config="double", reg=reg)
    with pytest.raises(UnknownNameError, match="unknown backend 'nosuch'; choose one of: bare"):
        load_backend("nosuch", reg=reg)


def test_threads_reach_the_environment_before_the_framework_loads(tmp_path):
    """OpenMP's variables and the record's ``thread_env`` are set before the backend's module
    is imported (a framework reads them once, when its runtime starts): a module that records
    the environment as it is imported stands in for the framework."""
    (tmp_path / "probe_backend.py").write_text(
        "import os\nSEEN = os.environ.get('OMP_NUM_THREADS'), os.environ.get('PROBE_THREADS')\n"
        "from test_backend import Bare\n")
    code = textwrap.dedent("""
        import wganx
        from wganx.build import load_backend
        from wganx.plugins import Registry
        from wganx.records import BackendSpec

        class Probe:
            @wganx.hookimpl
            def wganx_backends(self):
                return [BackendSpec("probe", "probe_backend:Bare", thread_env=lambda n: {"PROBE_THREADS": str(n)})]
        load_backend("probe", reg=Registry.from_plugins([Probe()], entry_points=False), threads=3)
        import probe_backend
        print(*probe_backend.SEEN)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(__file__).parent)]))
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split() == ["3", "3"], out.stderr


def test_make_program_takes_the_records_defaults_and_refuses_other_data():
    program = make_program(arch="mlp", arch_config=POINTS, batch_size=8, regularizer="lp")
    assert program.regularizer.name == "lp" and program.penalty_weight == program.regularizer.weight
    assert make_program(arch="mlp", arch_config=POINTS, penalty_weight=0.5).penalty_weight == 0.5
    assert program.arch.sample_shape == (2,) and program.latent == 2 and program.batch_size == 8
    with pytest.raises(WganxError, match="architecture 'dcgan' models image data, not points"):
        make_program(arch="dcgan", arch_config=POINTS)


def test_the_first_state_is_the_seeds_with_zeroed_optimizer_slots_and_an_average_copy():
    program = make_program(arch="mlp", arch_config=POINTS, ema_decay=0.999)
    first, again = (initial_arrays(program, np.random.default_rng(7)) for _ in range(2))
    assert sorted(first) == sorted(again) and all(np.array_equal(first[k], again[k]) for k in first)
    weight = next(k for k in first if k.startswith("generator/") and k.endswith("/W"))
    assert np.array_equal(first[ema_name(weight)], first[weight])
    assert first[state_name("critic")] == 0 and first[state_name("generator")] == 0
    slot = state_name("critic", next(k for k in first if k.startswith("critic/"))[len("critic/"):], "m")
    assert slot in first and not first[slot].any()
    without = {k: v for k, v in first.items() if not k.startswith("ema/")}
    assert sorted(with_ema(program, without)) == sorted(first)  # a run without an average gains one
    kept = dict(first, **{ema_name(weight): first[weight] + 1})
    assert np.array_equal(with_ema(program, kept)[ema_name(weight)], first[weight] + 1)
    assert with_ema(replace(program, ema_decay=0.0), without) is without


def toy_config(**settings):
    return TrainConfig(**{**dict(dataset="8gaussians", arch="mlp", latent=2, maps=8, batch_size=16), **settings})


def test_program_from_config_makes_the_optimizers_and_checks_the_image_size():
    program = program_from_config(toy_config(optimizer="rmsprop", lrd=3e-4, lrg=1e-4), (2,), "points", 0)
    assert (program.critic_optimizer.kind, program.critic_optimizer.lr, program.critic_optimizer.eps) == (
        "rmsprop", 3e-4, 1e-10)
    assert program.generator_optimizer.lr == 1e-4
    adam = program_from_config(toy_config(beta1=0.5, beta2=0.9), (2,), "points", 0).critic_optimizer
    assert (adam.kind, adam.beta1, adam.beta2) == ("adam", 0.5, 0.9)
    with pytest.raises(WganxError, match="the data is 28x28, but --image-size is 32"):
        program_from_config(toy_config(arch="dcgan", image_size=32), (1, 28, 28), "image", 0)


def test_load_dataset_refuses_a_batch_larger_than_the_data_and_labels_it_lacks():
    digits = load_dataset(toy_config(dataset="digits", image_size=8, conditional=True))
    assert digits.num_classes == 10 and len(digits) == 1797
    with pytest.raises(WganxError, match="--batch-size 2000 exceeds the 1797 samples of 'digits'"):
        load_dataset(toy_config(dataset="digits", image_size=8, batch_size=2000))
    with pytest.raises(WganxError, match="--conditional needs labels, and dataset '8gaussians' has none"):
        load_dataset(toy_config(conditional=True))


def test_batch_norm_critic_with_penalty_is_refused():
    from wganx.build import make_program
    from wganx.records import ArchConfig, ArchitectureSpec

    reg = wganx.registry()
    gen_arch = reg.get("architecture", "nnabla-cifar").build(
        ArchConfig(maps=2, latent=4, up=reg.get("upsampler", "nearest")))

    class BNCritic:
        @wganx.hookimpl
        def wganx_architectures(self):
            return [ArchitectureSpec("bn-critic", lambda c: replace(gen_arch, critic=replace(
                gen_arch.critic, has_batch_norm=True)))]

    custom = Registry.from_plugins([BNCritic()])
    with pytest.raises(WganxError, match="batch norm"):
        make_program(arch="bn-critic", arch_config=ArchConfig(), reg=custom)
    make_program(arch="bn-critic", arch_config=ArchConfig(), regularizer="clip", reg=custom)
    make_program(arch="bn-critic", arch_config=ArchConfig(), allow_critic_batch_norm=True, reg=custom)
