"""Where the torch backend's critic step spends its time against the plain loop.

Times, in one process and interleaved, one critic step (seed 000 arch) of:

* ``plain``: benchmarks/reference/torch_loop.py;
* ``wganx``: the torch backend as it is;
* ``wganx+nograd-G``: the same with the generator's forward pass of the critic step run
  under ``torch.no_grad()`` (the fix suggested for ``critic_objective`` /
  ``TorchSession._objective``: ``fake`` is detached anyway, so recording its graph is waste);

and prints median ms and spread. ``python benchmarks/probe_torch_critic.py [-c cudnn] [--maps 16]``.
"""
import argparse
import contextlib
import statistics
import time

import wganx  # noqa: F401
import torch
from wganx import bench, program


def nograd_critic_objective(ops, prog, pg, pd, inputs):
    G = prog.arch.generator
    original = G.forward

    class _G:  # the generator's forward without autograd recording
        forward = staticmethod(lambda *a, **k: _nograd(original, *a, **k))

    return program.critic_objective(ops, _Prog(prog, _G), pg, pd, inputs)


def _nograd(fn, *a, **k):
    with torch.no_grad():
        return fn(*a, **k)


class _Prog:
    def __init__(self, prog, g):
        self._p, self.arch = prog, _Arch(prog.arch, g)

    def __getattr__(self, name):
        return getattr(self._p, name)


class _Arch:
    def __init__(self, arch, g):
        self._a, self.generator = arch, g

    def __getattr__(self, name):
        return getattr(self._a, name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", "--context", default="cpu")
    ap.add_argument("--maps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--config", default="cifar-m16")
    args = ap.parse_args()
    spec = dict(bench.CONFIGS[args.config], maps=args.maps, context=args.context, device_id=0, type_config="float")
    ref = bench.reference_module("torch")
    import wganx_torch.backend as tb

    runners = {"plain": ref.make_step(dict(spec, regularizer="gp")), "wganx": bench.WganxRunner(spec, "torch"),
               "wganx+nograd-G": bench.WganxRunner(spec, "torch")}
    patched = runners["wganx+nograd-G"]
    original = tb.critic_objective

    @contextlib.contextmanager
    def patch(name):
        tb.critic_objective = nograd_critic_objective if name == "wganx+nograd-G" else original
        try:
            yield
        finally:
            tb.critic_objective = original

    times = {k: [] for k in runners}
    names = list(runners)
    for r in range(args.rounds + 1):
        for name in names[r % 3:] + names[:r % 3]:
            run = runners[name]
            with patch(name):
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    run.critic_step()
                run.sync()
                if r:  # round 0 is the warm-up
                    times[name].append(1000 * (time.perf_counter() - t0) / args.steps)
    del patched
    base = statistics.median(times["plain"])
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"{name:16s} critic step {m:8.2f} ms (min {min(ts):.2f}, max {max(ts):.2f}); plain/this {base / m:.3f}")


if __name__ == "__main__":
    main()
