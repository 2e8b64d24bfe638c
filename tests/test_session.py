"""The backend-free half of a session (:mod:`wganx.session`): the step's scalars computed once
in the base class, the step counts it keeps, and every backend's update held to
:func:`wganx.optim.reference_update` with those scalars.

Bounds: float64 backends 1e-10 relative, read through ``_read_param`` in float64 (one update,
the same formula with sums in another order). NNabla, float32 only, 2e-6 relative and 2e-8
absolute: a few float32 ulps of the weights' magnitude (about 0.05 here, ulp 3.7e-9), all a
weight keeps that an update brings near zero (1e-9 absolute failed there: 1.5e-9 off at
-1.9e-5).
"""
import dataclasses

import numpy as np
import pytest

import wganx
from wganx import parity
from wganx.algorithm import ema_decay_at, learning_rate, step_inputs
from wganx.build import initial_arrays, load_backend
from wganx.optim import OptimizerConfig, reference_update, state_name, step_size
from wganx.session import StepScalars

from conftest import available_backends

BACKENDS = available_backends()
BOUNDS = {"double": (1e-10, 1e-14), "float": (2e-6, 2e-8)}


def program_of(optimizer: str, **changes):
    """The toy MLP with a linear learning-rate decay over 6 iterations and a moving average
    from iteration 2; RMSProp with clipping is the original WGAN's critic."""
    regularizer = "clip" if optimizer == "rmsprop" else "gp"
    base = parity.program_for(parity.Case("mlp", regularizer=regularizer, data_kind="points"), wganx.registry())
    if optimizer == "rmsprop":
        opt = OptimizerConfig("rmsprop", lr=5e-3, eps=1e-10, rho=0.9)
    else:
        opt = OptimizerConfig("adam", lr=1e-2, beta1=0.5, beta2=0.9)
    return dataclasses.replace(base, critic_optimizer=opt, generator_optimizer=dataclasses.replace(opt, lr=opt.lr / 2),
                               lr_decay="linear", decay_iters=6, ema_decay=0.9, ema_start=2, **changes)


def test_the_scalars_of_each_step_follow_the_definitions():
    """On the first installed backend's session (the scalars are the base class's): t per
    network, the critic on the generator's schedule, Adam's step size, clipping for the critic
    only, the average's decay of the generator's own count."""
    from wganx.session import Session

    program = program_of("adam")
    session = load_backend(BACKENDS[0]).compile(program)
    assert isinstance(session, Session) and session.steps == {"generator": 0, "critic": 0}
    session.steps.update(generator=3, critic=16)
    critic, generator = session.step_scalars("critic"), session.step_scalars("generator")
    lr = learning_rate(program, "critic", 3)
    assert critic == StepScalars(t=17, lr=lr, step_size=step_size(program.critic_optimizer, lr, 17))
    assert critic.step_size == pytest.approx(lr * np.sqrt(1 - 0.9 ** 17) / (1 - 0.5 ** 17), rel=1e-15)
    assert generator.t == 4 and generator.lr == learning_rate(program, "generator", 3)
    assert generator.ema_decay == ema_decay_at(program, 4) == 0.9 and generator.clip is None
    clipped = load_backend(BACKENDS[0]).compile(program_of("rmsprop")).step_scalars("critic")
    assert clipped.clip == wganx.registry().get("regularizer", "clip").clip
    assert clipped.step_size == clipped.lr and clipped.ema_decay is None


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_updates_by_the_reference_with_the_base_scalars(name, optimizer):
    """Five critic and two generator steps: each update equals ``reference_update`` of the
    gradients the session reports (``gradients()`` changes nothing) at the learning rate of
    the schedule, clipped where the critic clips; the counts and ``optimizer/<net>/t`` follow."""
    type_config = "double" if "double" in wganx.registry().get("backend", name).capabilities else "float"
    rtol, atol = BOUNDS[type_config]
    program = program_of(optimizer)
    session = load_backend(name, type_config=type_config).compile(program)
    session.set_state(initial_arrays(program, np.random.default_rng(0)))
    rng, data = np.random.default_rng(1), np.random.default_rng(2)
    for net in ["critic", "critic", "generator", "critic", "critic", "critic", "generator"]:
        real = data.standard_normal((program.batch_size, 2)) if net == "critic" else None
        inputs = step_inputs(program, net, rng, real)
        before = session.get_state()
        session.set_state(before)  # a float64 session then holds exactly the float32 state read
        _, grads = session.gradients(net, inputs)
        unchanged = session.get_state()
        assert all(np.array_equal(unchanged[k], before[k]) for k in before)  # gradients() updates nothing
        cfg, t = program.optimizer(net), session.steps[net] + 1
        cfg = dataclasses.replace(cfg, lr=learning_rate(program, net, session.steps["generator"]))
        session.fetch(session.critic_step(inputs) if net == "critic" else session.generator_step(inputs))
        after = session.get_state()
        assert session.steps[net] == t and after[state_name(net)] == t
        for param, g in grads.items():
            slots = {s: before[state_name(net, param.split("/", 1)[1], s)].astype(np.float64) for s in cfg.slots()}
            want = reference_update(before[param].astype(np.float64), g, slots, t, cfg)
            if net == "critic" and program.regularizer.clip is not None:
                want = np.clip(want, -program.regularizer.clip, program.regularizer.clip)
            got = session._read_param(param)  # in the session's precision (float64 under -t double)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"{net} {t} {param}")
    assert session.steps == {"generator": 2, "critic": 5}


@pytest.mark.parametrize("name", BACKENDS)
def test_a_state_sets_the_counts_and_the_next_scalars(name):
    """Resuming sets the base class's counts from ``optimizer/<net>/t``: the next update is
    number t + 1 (Adam's bias correction, the schedule), also where the framework keeps its own
    count (NNabla's ``S.Adam``)."""
    program = program_of("adam")
    fresh, resumed = (load_backend(name).compile(program) for _ in range(2))
    state = initial_arrays(program, np.random.default_rng(0))
    fresh.set_state(state)
    rng = np.random.default_rng(1)
    for _ in range(3):
        fresh.generator_step(step_inputs(program, "generator", rng))
    resumed.set_state(fresh.get_state())
    assert resumed.steps == fresh.steps == {"generator": 3, "critic": 0}
    assert resumed.step_scalars("generator") == fresh.step_scalars("generator")
    inputs = step_inputs(program, "generator", rng)
    for s in (fresh, resumed):
        s.fetch(s.generator_step(inputs))
    a, b = fresh.get_state(), resumed.get_state()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
