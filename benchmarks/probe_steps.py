"""Time wganx's critic step, generator step and whole iteration against the plain loop's, in
one process, interleaved: finer than ``wganx bench`` (which times whole iterations in
separate processes), and what located the TensorFlow gaps noted in docs/results/speed.md.

    python benchmarks/probe_steps.py --backend tensorflow --config toy-mlp --rounds 6
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STEPS = (("critic_step", 5), ("generator_step", 5), ("iteration", 2))  # (step, calls per round)


def _timings(runner, step, calls):
    fn, out = getattr(runner, step), []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        runner.sync()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    from wganx_bench import harness as bench

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", required=True)
    p.add_argument("--config", default="cifar-m16", choices=sorted(bench.CONFIGS))
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    p.add_argument("-c", "--context", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    args = p.parse_args(argv)

    spec = dict(bench.CONFIGS[args.config], context=args.context, device_id=0, type_config="float")
    if args.quick:
        spec.update(bench.QUICK[args.config])
    wganx = bench.WganxRunner(spec, args.backend, "gp")
    plain = bench.reference_module(args.backend).make_step(dict(spec, regularizer="gp"))
    runners = {"wganx": wganx, "plain": plain}
    for runner in runners.values():  # compile / trace / first allocations
        for _ in range(2):
            runner.iteration()
        runner.sync()
    times = {(name, step): [] for name in runners for step, _ in STEPS}
    for k in range(args.rounds):
        for name in (("wganx", "plain") if k % 2 == 0 else ("plain", "wganx")):
            for step, calls in STEPS:
                times[name, step] += _timings(runners[name], step, calls)
    for step, _ in STEPS:
        a, b = (statistics.median(times[name, step]) * 1e3 for name in ("wganx", "plain"))
        print(f"{args.backend} {args.config} {step:15s} wganx {a:8.1f} ms  plain {b:8.1f} ms  "
              f"wganx/plain speed {b / a:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
