"""Algorithm 1's program (:mod:`wganx.algorithm`): its settings are checked once, where they are
defined, however a program is made. (Its objectives are held to every backend by the parity
matrix, its schedules in test_optim.py, test_config.py and test_ema.py.)"""
import dataclasses

import numpy as np
import pytest

import wganx
from wganx import parity
from wganx.algorithm import step_inputs
from wganx.build import make_program
from wganx.errors import WganxError
from wganx.optim import OptimizerConfig
from wganx.records import ArchConfig


@pytest.fixture(scope="module")
def program():
    return parity.program_for(parity.Case("mlp", data_kind="points"), wganx.registry())


@pytest.mark.parametrize("change, message", [
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"lr_decay": "cosine"}, "lr_decay must be one of constant, linear, got 'cosine'"),
    ({"lr_decay": "linear", "decay_iters": 0}, "a linear learning-rate decay needs its length in iterations"),
    ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\), got 1.0"),
    ({"ema_start": -1}, r"ema_start must not be negative, got -1"),
    ({"critic_optimizer": OptimizerConfig(lr=-1e-4)}, "the critic learning rate must not be negative"),
])
def test_a_program_checks_its_settings_however_it_is_made(program, change, message):
    with pytest.raises(WganxError, match=message):
        dataclasses.replace(program, **change)
    arch_config = ArchConfig(data_kind="points", latent=2, maps=4)
    with pytest.raises(WganxError, match=message):
        make_program(arch="mlp", arch_config=arch_config, **change)


def test_the_critic_norms_an_architecture_offers_are_its_records():
    """One check, on the record: the training loop asks it before anything heavy and
    make_program before building; the ResNet builder itself trusts it."""
    spec = wganx.registry().get("architecture", "resnet")
    assert spec.critic_norms == ("none", "layer", "spectral")
    with pytest.raises(WganxError, match="--critic-norm batch: architecture 'resnet' offers none, layer, spectral"):
        make_program(arch="resnet", arch_config=ArchConfig(critic_norm="batch"))


def test_the_programs_inputs_are_what_step_inputs_draws(program):
    """One definition of a step's inputs: the shapes a traced backend compiles for are those
    of the arrays the training loop feeds, noise and labels included."""
    conditional = dataclasses.replace(program, num_classes=3)
    for prog in (program, conditional):
        for step in ("critic", "generator"):
            real = np.ones((prog.batch_size,) + tuple(prog.arch.sample_shape), np.float32)
            labels = np.ones(prog.batch_size, np.int64)
            fed = step_inputs(prog, step, np.random.default_rng(5), real, labels)
            assert prog.input_shapes(step) == {k: v.shape for k, v in fed.items()}
            assert {k: v.dtype for k, v in prog.example_inputs(step).items()} == {k: v.dtype for k, v in fed.items()}
    assert "eps" in program.input_shapes("critic") and "labels" in conditional.input_shapes("generator")
