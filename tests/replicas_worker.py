"""N replicas against one process: run by ``tests/test_distributed.py`` under a launcher.

``python replicas_worker.py BACKEND ENGINE OUT [all|synced]`` builds, in every process, a
data-parallel session (``Backend.replicate(ENGINE)``) and a one-process session of the same
program from the same initial state, feeds both the same global batches drawn by the core,
and after a few iterations (critic steps, then a generator step) writes to ``OUT.<process>.json``
the largest relative difference of the logged scalars and of every state tensor (weights,
running statistics, optimizer slots), per case, plus the data-parallel gradient against the
one-process gradient before any step.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from wganx.algorithm import step_inputs
from wganx.build import initial_arrays, load_backend, make_program
from wganx.parity import Case
from wganx.plugins import registry

CASES = {"mlp": Case("mlp", data_kind="points"), "nnabla-cifar": Case("nnabla-cifar", up="nearest")}
GLOBAL_BATCH, ITERATIONS, CRITIC_STEPS = 8, 3, 2


def relative(a, b, scale=0.0) -> float:
    """``max|a - b|`` relative to ``b``'s largest entry, or to ``scale`` when that is larger."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), scale, 1e-30))


def group(name: str) -> tuple:
    """Tensors compared at one scale: one network's parameters, or one optimizer slot of it."""
    parts = name.split("/")
    return (parts[0], parts[1], parts[-1]) if parts[0] == "optimizer" else tuple(parts[:-2] or parts[:1])


def state_error(a: dict, b: dict) -> tuple:
    """The worst tensor's error, each tensor compared at no less than 1% of the largest entry
    of its group (as the parity suite does: a conv bias followed by batch norm has a gradient
    that is zero in exact arithmetic, and what it holds is round-off without relative
    precision)."""
    scales = {}
    for k, v in b.items():
        scales[group(k)] = max(scales.get(group(k), 0.0), float(np.max(np.abs(v))) if np.size(v) else 0.0)
    errors = {k: relative(a[k], b[k], 1e-2 * scales[group(k)]) for k in b}
    worst = max(errors, key=errors.get)
    return errors[worst], worst


def compare(case: Case, parallel, alone) -> dict:
    reg = registry()
    program = make_program(arch=case.arch, arch_config=case.arch_config(reg), batch_size=GLOBAL_BATCH, reg=reg)
    replicas = parallel.replicas
    sessions = [parallel.compile(program), alone.compile(program)]
    start = initial_arrays(program, np.random.default_rng(0))
    for s in sessions:
        s.set_state(start)
    data = np.random.default_rng(1)
    out = {"replicas": replicas.size, "processes": replicas.processes, "scalars": 0.0}

    def real():
        return data.standard_normal((GLOBAL_BATCH,) + tuple(program.arch.sample_shape)).astype(np.float32)

    # the gradient of one critic step, before anything moves
    inputs = step_inputs(program, "critic", np.random.default_rng(2), real())
    (sa, ga), (sb, gb) = (s.gradients("critic", inputs) for s in sessions)
    out["gradient"] = max(relative(ga[k], gb[k]) for k in gb)
    rngs = [np.random.default_rng(3), np.random.default_rng(3)]
    for _ in range(ITERATIONS):
        batches = [real() for _ in range(CRITIC_STEPS)]
        for batch in batches:
            values = [s.fetch(s.critic_step(step_inputs(program, "critic", rng, batch)))
                      for s, rng in zip(sessions, rngs)]
            out["scalars"] = max(out["scalars"], *(relative(values[0][k], values[1][k]) for k in values[1]))
        values = [s.fetch(s.generator_step(step_inputs(program, "generator", rng))) for s, rng in zip(sessions, rngs)]
        out["scalars"] = max(out["scalars"], relative(values[0]["loss"], values[1]["loss"]))
    a, b = (s.get_state() for s in sessions)
    out["state"], out["worst"] = state_error(a, b)
    return out


# (precision, synchronised batch norm, cases): float64 shows equality to round-off; float32
# only for the model without batch norm (with it, a conv bias before batch norm has a zero
# gradient whose float32 round-off Adam turns into steps of random sign, in one process too);
# without synchronised batch norm the generator's statistics are per replica.
RUNS = (("double", True, ("mlp", "nnabla-cifar")), ("double", False, ("nnabla-cifar",)), ("float", True, ("mlp",)))


def main(backend_name, engine, out, runs="all"):
    results, process, started = {}, 0, []
    for type_config, sync, cases in RUNS if runs == "all" else [r for r in RUNS if r[1]]:
        parallel = load_backend(backend_name, type_config=type_config)
        process = parallel.replicate(engine, sync_batch_norm=sync).process
        started.append(parallel)
        alone = load_backend(backend_name, type_config=type_config)
        for name in cases:
            label = f"{name}/{type_config}/{'sync' if sync else 'local'} batch norm"
            results[label] = compare(CASES[name], parallel, alone)
    for backend in started:  # the first joined the job and leaves it
        backend.shutdown()
    with open(f"{out}.{process}.json", "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:])
