"""Sample-quality benchmark: the same WGAN-GP runs on every installed backend, measured by
``wganx.evaluate``; writes ``docs/results/quality.md`` (``--page``) and sample images beside it.

* 8gaussians and 25gaussians with the WGAN-GP paper's toy settings (``gan_toy.py``): MLP
  generator and critic of three 512-unit ReLU layers, latent 2, batch 256, Adam lr 1e-4 and
  betas (0.5, 0.9), 5 critic steps per generator step, lambda 0.1; modes covered (of 8/25)
  and the high-quality share (samples within 3 std of a mode), on 2,500 samples, at the
  end and along the run (learning curves).
* MNIST (real data): the ``mlp`` architecture at 28x28 with the WGAN-GP defaults
  (lambda 10, batch 64); domain FID/KID, class coverage, classifier IS and precision/recall
  in the numpy classifier's feature space against the test split, plus a sample grid and
  learning curves (domain FID and classes covered along the run). A "real train images" row
  gives the floor of each metric.

* Data-limited MNIST (``--limited 0.01,0.1``, its own page ``augment.md``): the ``mlp``
  trained on a share of the training set (a seeded random subset, prepared once with
  ``wganx data prepare``) without and with each augmentation (``--augments``), on every
  backend at the same budget; domain FID, precision/recall and classes covered against the
  whole test set at the end, learning curves from the run's checkpoints, ADA's ``p`` along
  the run.

Runs that finished in ``--work`` with the same settings are evaluated again, not retrained.

Run from the repository root::

    python benchmarks/quality.py                        # every available backend
    python benchmarks/quality.py --backends torch --toy-iters 1000 --mnist-iters 1000
    python benchmarks/quality.py --toy-iters 8gaussians=8000,25gaussians=20000 --jobs 2
    python benchmarks/quality.py --limited 0.01,0.1 --augments none,diffaug,ada --limited-iters 400

Budgets are generator iterations, small enough for a 2-core CPU; the paper trains the toys
for 100,000 iterations, so the numbers are a fixed-budget comparison, not converged values.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOY_SETS = ("8gaussians", "25gaussians")
HQ_TARGETS = {"8gaussians": 0.9, "25gaussians": 0.8}  # the project's aim, with every mode covered


def available_backends():
    from wganx.plugins import registry

    return [e.name for e in registry().entries("backend") if e.availability()[0]]


TOY_EVALUATIONS = 20  # points on each toy learning curve
MNIST_EVALUATIONS = 10  # and on each MNIST one
# What each dataset's learning curves show: (metrics.csv column, title) for each panel.
CURVES = {"toy": (("modes_covered", "modes covered"), ("high_quality_share", "high-quality share")),
          "mnist": (("domain_fid", "domain FID"), ("domain_classes_covered", "classes covered"))}


# The settings a row is trained with, over what ``wganx train --dataset D`` chooses (the
# dataset record's recommended defaults): ``paper`` is the WGAN-GP paper's Adam (lr 1e-4,
# betas 0.5 and 0.9, constant) without a moving average.
SETTINGS_TEXT = {
    "recommended": "what `wganx train` chooses (the dataset's and the architecture's recommended defaults)",
    "recommended-no-ema": "the same without the generator's moving average",
    "paper": "Adam lr 1e-4 for both networks, constant, no moving average (the WGAN-GP paper's toy and "
             "MNIST settings)",
    "paper-ema": "the paper's, with a moving average of decay 0.99",
}
SETTINGS = {
    "recommended": {},
    "recommended-no-ema": {"ema_decay": 0.0},
    "paper": {"lrg": 1e-4, "lrd": 1e-4, "lr_decay": "constant", "ema_decay": 0.0},
    "paper-ema": {"lrg": 1e-4, "lrd": 1e-4, "lr_decay": "constant", "ema_decay": 0.99},
}


def configure(values: dict, settings: str, ema_decay=None):
    """The TrainConfig ``wganx train`` makes of ``values`` and the named settings, and the
    settings that differ from TrainConfig's defaults (for the table)."""
    from wganx.config import default_of, from_user

    given = {**values, **SETTINGS[settings]}
    if ema_decay is not None:
        given["ema_decay"] = ema_decay
    config, _ = from_user(given)
    shown = {k: getattr(config, k) for k in ("lrg", "lrd", "lr_decay", "ema_decay", "beta1", "lambda_")
             if getattr(config, k) != default_of(k)}
    return config, shown


def toy_config(backend, dataset, iters, folder, seed, maps=512, settings="recommended", ema_decay=None):
    return configure(dict(backend=backend, dataset=dataset, maps=maps, max_iter=iters, monitor_path=str(folder),
                          save_interval=iters, log_interval=max(1, iters // 10),
                          eval_interval=max(1, iters // TOY_EVALUATIONS), eval_metrics="modes", eval_samples=2500,
                          num_samples=64, progress=False, seed=seed, threads=0, overwrite=True), settings, ema_decay)


def mnist_config(backend, data_dir, iters, folder, seed, settings="recommended", ema_decay=None, eval_samples=2000):
    return configure(dict(backend=backend, dataset="mnist", data_dir=str(data_dir), download=False, arch="mlp",
                          maps=512, latent=128, image_size=28, batch_size=64, n_critic=5, max_iter=iters,
                          monitor_path=str(folder), save_interval=iters, log_interval=max(1, iters // 10),
                          eval_interval=max(1, iters // MNIST_EVALUATIONS), eval_metrics="fid,class-coverage",
                          eval_samples=eval_samples, num_samples=100, progress=False, seed=seed, threads=0,
                          overwrite=True), settings, ema_decay)


NOT_SETTINGS = ("overwrite", "progress", "threads", "resume")  # how a run was started, not what it trained


def finished_run(config):
    """``(checkpoint, train seconds)`` of the run ``config`` already finished in its folder (a
    rerun of an interrupted benchmark keeps it), or None."""
    from wganx.checkpoint import name_for
    from wganx.monitor import read_loss_rows

    folder = Path(config.monitor_path)
    final = folder / name_for(config.max_iter)
    if not (final.is_file() and (folder / "config.json").is_file() and (folder / "losses.csv").is_file()):
        return None
    before = json.loads((folder / "config.json").read_text())["config"]
    if {k: v for k, v in before.items() if k not in NOT_SETTINGS} != \
            {k: v for k, v in config.as_dict().items() if k not in NOT_SETTINGS}:
        return None
    rows, _ = read_loss_rows(folder / "losses.csv")
    return (final, rows[-1]["elapsed_s"]) if rows and rows[-1]["iteration"] == config.max_iter else None


def run_one(config, evaluator, n, seed):
    """Train, then evaluate ``n`` samples of the final checkpoint; returns (values, train seconds
    as the trainer's ``losses.csv`` has them, generate_fn).

    A run folder that holds this very run, finished, is evaluated again without training; one
    that holds anything else is replaced: the folders are the benchmark's own, named by the job."""
    from wganx.generate import session_generator
    from wganx.generate import load_session
    from wganx.training import train

    done = finished_run(config)
    if done is None:
        result = train(config)
        if result["status"] != "finished":  # Ctrl-C / SIGTERM: the trainer saved and returned; stop here
            raise KeyboardInterrupt
        done = finished_run(config)
    else:
        print(f"  {config.monitor_path}: finished earlier, evaluated again", flush=True)
    checkpoint, seconds = done
    session, program, _ = load_session(checkpoint, config.backend)
    generate = session_generator(session, program, seed=seed + 1000)
    return evaluator.evaluate(generate(n)), seconds, generate


def run_job(job) -> dict:
    """One training run and its evaluation, in a worker process: the row for the table."""
    from wganx import monitor
    from wganx.evaluate import Evaluator

    if job["dataset"] == "limited":
        return run_limited_job(job)
    folder, out, seed, decay = Path(job["folder"]), Path(job["out"]), job["seed"], job["ema_decay"]
    label = run_label(job)
    if job["dataset"] in TOY_SETS:
        ev = Evaluator(None, job["dataset"], None, "modes,energy", 2500, seed=seed, log=None)
        config, shown = toy_config(job["backend"], job["dataset"], job["iters"], folder, seed, job["maps"],
                                   job["settings"], decay)
        values, seconds, _ = run_one(config, ev, 2500, seed)
        plots = monitor.sample_tiles(folder / "samples")
        if plots:
            shutil.copy(plots[-1], out / f"{job['dataset']}_{file_label(job)}.png")
        return {"backend": label, "file": file_label(job), "setting": job["settings"], "seconds": seconds,
                "settings": shown, **values, "curve": read_curve(folder, "toy")}
    ev = Evaluator(None, "mnist", job["data_dir"], None, job["eval_samples"], seed=seed,
                   metric_options={"kid": {"num_subsets": 20}}, log=None)
    config, shown = mnist_config(job["backend"], job["data_dir"], job["iters"], folder, seed, job["settings"], decay,
                                 job["eval_samples"])
    values, seconds, generate = run_one(config, ev, job["eval_samples"], seed)
    monitor.save_png(monitor.tile(generate(100)), out / f"mnist_{file_label(job)}.png", scale=2)
    return {"backend": label, "file": file_label(job), "setting": job["settings"], "seconds": seconds,
            "settings": shown, **values, "curve": read_curve(folder, "mnist")}


def read_curve(folder: Path, kind: str):
    """The run's ``--eval-interval`` metrics along training, as the curve plots need them."""
    from wganx.evaluate import read_metrics_csv

    keys = ("iteration",) + tuple(k for k, _ in CURVES[kind])
    return [{k: r[k] for k in keys} for r in read_metrics_csv(folder / "metrics.csv")]


def run_label(job) -> str:
    """The row's name: the backend, the settings, and the moving average's decay when given."""
    return (f"{job['backend']}, {job['settings']}"
            + (f", EMA {job['ema_decay']:g}" if job["ema_decay"] is not None else ""))


def file_label(job) -> str:
    return (f"{job['backend']}_{job['settings']}"
            + (f"_ema{job['ema_decay']:g}" if job["ema_decay"] is not None else ""))


def _start_worker(threads):
    from wganx_bench.harness import limit_threads

    limit_threads(threads)  # before any framework is imported in this process


def run_jobs(jobs, parallel):
    """Run ``jobs`` (longest first) on ``parallel`` worker processes; yields (job, row or exception)."""
    if parallel <= 1:
        for job in jobs:
            try:
                yield job, run_job(job)
            except Exception as exc:  # a backend in progress must not stop the others
                yield job, exc
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // parallel)
    pool = ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(threads,))
    try:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as exc:  # noqa: BLE001
                yield futures[future], exc
    except BaseException:  # Ctrl-C, SIGTERM: no worker is left training alone, nor takes the next run
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in multiprocessing.active_children():
            worker.kill()  # a run cut short is replaced when the benchmark runs again
        raise
    finally:
        pool.shutdown(wait=True)


# -- data-limited MNIST, with and without augmentation ------------------------------------------
LIMITED_CURVE_POINTS = 5  # checkpoints evaluated along each data-limited run
LIMITED_CURVE_SAMPLES = 1000
AUGMENT_TEXT = {
    "none": "no augmentation",
    "diffaug": "DiffAugment, color,translation,cutout (`--augment diffaug`)",
    "ada": "ADA's xflip, rotate90, xint and colour transforms, p adapted towards r_t = 0.6 (`--augment ada`)",
}


def prepare_subset(data_dir, share: float, seed: int, work: Path) -> Path:
    """A seeded random ``share`` of MNIST's training set as a prepared folder (``wganx data prepare``)."""
    from wganx_plugins.datasets import load_split
    from wganx_plugins.datasets.prepared import is_prepared, prepare

    folder = work / f"mnist-train-{share:g}"
    if is_prepared(folder):
        return folder
    train = load_split("mnist", data_dir, "train")
    idx = np.sort(np.random.default_rng([seed, 29]).choice(len(train.x), int(round(share * len(train.x))),
                                                           replace=False))
    source = work / f"mnist-train-{share:g}.npz"
    np.savez(source, x=np.asarray(train.x[idx]), labels=np.asarray(train.labels[idx]))
    prepare(source, folder)
    return folder


def limited_config(job):
    from wganx.config import from_user

    iters = job["iters"]
    config, _ = from_user(dict(
        backend=job["backend"], dataset="prepared", data_dir=job["prepared"], download=False, arch="mlp",
        maps=job["maps"], latent=64, image_size=28, batch_size=64, n_critic=5, max_iter=iters,
        monitor_path=job["folder"], save_interval=max(1, iters // LIMITED_CURVE_POINTS), log_interval=max(1, iters // 40),
        num_samples=100, progress=False, seed=job["seed"], threads=1, overwrite=True, augment=job["augment"]))
    return config


def run_limited_job(job) -> dict:
    """Train on the subset, then evaluate every checkpoint (the curve) and the last one (the row)
    with MNIST's domain classifier against the whole test set."""
    from wganx import checkpoint, monitor
    from wganx.evaluate import Evaluator
    from wganx.generate import load_session, session_generator
    from wganx.monitor import read_loss_rows

    config, seed = limited_config(job), job["seed"]
    ev = Evaluator(None, "mnist", job["data_dir"], None, job["eval_samples"], seed=seed,
                   metric_options={"kid": {"num_subsets": 20}}, log=None)
    values, seconds, generate = run_one(config, ev, job["eval_samples"], seed)
    monitor.save_png(monitor.tile(generate(100)), Path(job["out"]) / f"{job['page']}_{job['file']}.png", scale=2)
    curve = []
    for path in checkpoint.checkpoints(Path(config.monitor_path)):
        session, program, meta = load_session(path, config.backend)
        point = ev.evaluate(session_generator(session, program, seed=seed + 1000)(LIMITED_CURVE_SAMPLES))
        curve.append({"iteration": meta["iteration"], "domain_fid": point["domain_fid"],
                      "domain_precision": point["domain_precision"], "domain_recall": point["domain_recall"]})
    rows, _ = read_loss_rows(Path(config.monitor_path) / "losses.csv")
    p = [(r["iteration"], r["augment_p"]) for r in rows if "augment_p" in r]
    return {"backend": job["backend"], "share": job["share"], "augment": job["augment"], "file": job["file"],
            "seconds": seconds, "images": job["images"], **values, "curve": curve, "p": p}


def limited_jobs(args, backends, work: Path) -> list:
    shares = [float(v) for v in args.limited.split(",")]
    augments = args.augments.split(",")
    common = {"out": args.out, "page": args.page, "seed": args.seed, "data_dir": args.data_dir,
              "eval_samples": args.eval_samples,
              "iters": args.limited_iters, "maps": args.limited_maps, "dataset": "limited", "settings": "recommended",
              "ema_decay": None}
    jobs = []
    for share in shares:
        prepared = prepare_subset(args.data_dir, share, args.seed, work)
        images = int(round(share * 60000))
        for b in backends:
            for a in augments:
                file = f"mnist{share:g}_{b}_{a.replace(':', '-').replace(',', '-')}"
                # the budget in the folder's name: runs of other lengths never replace each other
                folder = work / f"{file}_{args.limited_iters}it_{args.limited_maps}maps"
                jobs.append(dict(common, share=share, images=images, backend=b, augment=a, prepared=str(prepared),
                                 file=file, folder=str(folder)))
    return jobs


def plot_limited(rows, path):
    """Domain FID along each run (a panel per share) and ADA's p along its runs."""
    from wganx.monitor import new_figure

    shares = sorted({r["share"] for r in rows})
    fig = new_figure(figsize=(4 * (len(shares) + 1), 3.2))
    axes = fig.subplots(1, len(shares) + 1)
    styles = {"none": "-", "diffaug": "--", "ada": ":"}
    colours = {}
    by_augment = len({r["backend"] for r in rows}) == 1  # one backend: a colour per augmentation
    for r in rows:
        colour = colours.setdefault(r["augment"] if by_augment else r["backend"], f"C{len(colours)}")
        ax = axes[shares.index(r["share"])]
        ax.plot([c["iteration"] for c in r["curve"]], [c["domain_fid"] for c in r["curve"]], marker="o", ms=3,
                ls=styles.get(r["augment"].split(":")[0], "-."), color=colour, label=f"{r['backend']}, {r['augment']}")
        if r["augment"].startswith("ada") and r["p"]:
            axes[-1].plot(*zip(*r["p"]), color=colour, ls=":" if r["share"] == shares[0] else "-",
                          label=f"{r['backend']}, {r['images']:,} images")
    for ax, share in zip(axes, shares):
        ax.set_title(f"MNIST, {share:g} of the training set: domain FID", fontsize=9)
        ax.set_yscale("log")
        ax.set_xlabel("generator iteration", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    axes[-1].set_title("ADA's p" if any(r["augment"].startswith("ada") for r in rows) else "(no ADA run)", fontsize=9)
    axes[-1].set_xlabel("generator iteration", fontsize=8)
    axes[-1].grid(alpha=0.3)
    if axes[-1].get_legend_handles_labels()[0]:
        axes[-1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def verdict(rows, shares, augments) -> str:
    """One sentence per share: each augmentation's mean domain FID against no augmentation's,
    and on how many backends it was lower."""
    parts = []
    for share in shares:
        base = {r["backend"]: r["domain_fid"] for r in rows if r["share"] == share and r["augment"] == "none"}
        if not base:
            continue
        said = []
        for a in (a for a in augments if a != "none"):
            mine = {r["backend"]: r["domain_fid"] for r in rows if r["share"] == share and r["augment"] == a}
            common = sorted(set(mine) & set(base))
            if not common:
                continue
            better = sum(mine[b] < base[b] for b in common)
            mean_a, mean_n = np.mean([mine[b] for b in common]), np.mean([base[b] for b in common])
            said.append(f"{a} {'helps' if better == len(common) else 'hurts' if better == 0 else 'is mixed'} "
                        f"(domain FID {fmt(float(mean_a))} against {fmt(float(mean_n))}, lower on {better} of "
                        f"{len(common)} backends)")
        if said:
            parts.append(f"With {int(round(share * 60000)):,} training images: " + "; ".join(said) + ".")
    return " ".join(parts) or "this page has no run without augmentation to compare with (`--augments none,...`)."


def limited_page(args, backends, rows, failures, minutes) -> list:
    """The lines of ``augment.md``."""
    shares = sorted({r["share"] for r in rows})
    trained = sum(r["seconds"] for r in rows)
    lines = ["# Augmentation with little data", "",
             f"Generated by `benchmarks/quality.py` on {platform.machine()} CPU (Python {platform.python_version()}); "
             f"backends: {', '.join(backends)}; {len(rows)} runs of one thread each, {args.jobs} at a time, trained for "
             f"{trained / 60:.1f} min in all; the benchmark took {minutes:.1f} min of wall time, evaluations "
             "included, on a shared machine.", "",
             "Reproduce from the repository root:", "", "```",
             f"OMP_NUM_THREADS=1 python benchmarks/quality.py --backends {','.join(backends)} --limited {args.limited} "
             f"--augments {args.augments} --limited-iters {args.limited_iters} --limited-maps {args.limited_maps} "
             f"--eval-samples {args.eval_samples} --jobs {args.jobs} --seed {args.seed}"
             + (f" --page {args.page}" if args.page != "augment" else ""),
             "```", "",
             f"The `mlp` architecture (3x{args.limited_maps} ReLU, latent 64, 28x28) with what `wganx train` "
             "recommends for it (Adam lr 1e-3 decaying linearly to 0, moving average 0.99), batch 64, n_critic 5, "
             f"lambda 10, **{args.limited_iters} generator iterations** on a seeded random share of MNIST's 60,000 "
             "training images, the same for every row. Augmentations: "
             + "; ".join(f"**{a}**: {AUGMENT_TEXT.get(a, f'`--augment {a}`')}" for a in args.augments.split(",")) + ". "
             f"Metrics on {args.eval_samples} samples against as many images of the whole test set, in the feature "
             "space of wganx's numpy MNIST classifier (domain FID is not comparable with Inception FIDs); "
             "*final p* is ADA's probability at the end.", "",
             "| training images | backend | augment | domain FID | precision | recall | classes covered | final p "
             "| train time (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for share in shares:
        for r in (r for r in rows if r["share"] == share):
            p = f"{r['p'][-1][1]:.3f}" if r["augment"].startswith("ada") and r["p"] else ""
            lines.append(f"| {r['images']:,} | {r['backend']} | {r['augment']} | {fmt(r['domain_fid'])} | "
                         f"{fmt(r['domain_precision'])} | {fmt(r['domain_recall'])} | "
                         f"{fmt(r['domain_classes_covered'], True)} / 10 | {p} | {r['seconds']:.0f} |")
    lines += ["", "Mean over backends (domain FID, lower is better):", "",
              "| training images | " + " | ".join(args.augments.split(",")) + " |",
              "| --- | " + " | ".join("---" for _ in args.augments.split(",")) + " |"]
    for share in shares:
        cells = []
        for a in args.augments.split(","):
            vals = [r["domain_fid"] for r in rows if r["share"] == share and r["augment"] == a]
            cells.append(fmt(float(np.mean(vals))) if vals else "n/a")
        lines.append(f"| {int(round(share * 60000)):,} | " + " | ".join(cells) + " |")
    lines += ["", "**Does augmentation help at this scale?** " + verdict(rows, shares, args.augments.split(","))]
    lines += ["", f"Learning curves (domain FID of {LIMITED_CURVE_SAMPLES} samples at each of "
                  f"{LIMITED_CURVE_POINTS} checkpoints; log scale) and ADA's p along its runs:", "",
              f"![learning curves and p]({args.page}_curves.png)", ""]
    lines += [f"![{r['file']}]({args.page}_{r['file']}.png)" for r in rows] + [""]
    if failures:
        lines += ["## Runs that failed", ""] + [f"- {f}" for f in failures] + [""]
    return lines


def limited_main(args, backends, out: Path, work: Path) -> int:
    from wganx.evaluate import Evaluator

    if args.rewrite_page:  # the page again from the runs' JSON: nothing trained or evaluated
        saved = json.loads((out / f"{args.page}.json").read_text())
        (out / f"{args.page}.md").write_text("\n".join(limited_page(args, backends, saved["rows"], saved["failures"],
                                                                   saved["minutes"])))
        print(f"wrote {out / (args.page + '.md')} from {args.page}.json")
        return 0
    started = time.perf_counter()
    # The classifier first, here: the workers then read its cache.
    Evaluator(None, "mnist", args.data_dir, None, args.eval_samples, seed=args.seed, log=lambda m: print("  " + m)
              ).extractor()
    jobs = limited_jobs(args, backends, work)
    jobs.sort(key=estimated_cost, reverse=True)
    rows, failures = [], []

    def name(job):
        return f"{job['images']} images / {job['backend']} / {job['augment']}"

    for job, row in finished_jobs(jobs, args.jobs, name, failures):
        rows.append(row)
        print(f"[{name(job)}] FID {row['domain_fid']:.3g} in {row['seconds']:.0f} s", flush=True)
    order = {(j["share"], j["backend"], j["augment"]): i for i, j in
             enumerate(sorted(jobs, key=lambda j: (j["share"], backends.index(j["backend"]),
                                                   args.augments.split(",").index(j["augment"]))))}
    rows.sort(key=lambda r: order[(r["share"], r["backend"], r["augment"])])
    if rows:
        plot_limited(rows, out / f"{args.page}_curves.png")
    minutes = (time.perf_counter() - started) / 60
    (out / f"{args.page}.md").write_text("\n".join(limited_page(args, backends, rows, failures, minutes)))
    (out / f"{args.page}.json").write_text(json.dumps({"rows": rows, "failures": failures, "minutes": minutes},
                                                      indent=2))
    print(f"wrote {out / (args.page + '.md')} ({minutes:.1f} min)")
    return 1 if failures else 0


def finished_jobs(jobs, parallel, name, failures):
    """:func:`run_jobs`, yielding the jobs that finished; each failure is printed and added to
    ``failures`` as ``name(job): error``."""
    for job, row in run_jobs(jobs, parallel):
        if isinstance(row, BaseException):
            failures.append(f"{name(job)}: {type(row).__name__}: {row}")
            print("  FAILED:", failures[-1], flush=True)
            continue
        yield job, row


def estimated_cost(job) -> float:
    """For ordering only: iterations, with NNabla's CPU steps about 3.5x slower (speed.md)."""
    return job["iters"] * (3.5 if job["backend"] == "nnabla" else 1.0) * (2.0 if job["dataset"] == "mnist" else 1.0)


def parse_toy_iters(value: str) -> dict:
    """``3000`` (both toys) or ``8gaussians=5000,25gaussians=20000``."""
    if "=" not in value:
        return dict.fromkeys(TOY_SETS, int(value))
    out = {}
    for part in value.split(","):
        name, _, n = part.partition("=")
        if name.strip() not in TOY_SETS:
            raise SystemExit(f"--toy-iters: unknown toy {name.strip()!r}; choose from {', '.join(TOY_SETS)}")
        out[name.strip()] = int(n)
    missing = set(TOY_SETS) - set(out)
    if missing:
        raise SystemExit(f"--toy-iters: no budget for {', '.join(sorted(missing))}")
    return out


def trained_with(rows) -> str:
    """A sentence: each setting as the flags where it differs from TrainConfig's generic defaults."""
    from wganx.config import flag_name

    flags = {r["setting"]: " ".join(f"--{flag_name(k)} {v}" for k, v in r["settings"].items()) for r in rows}
    return ("Each setting as flags, where it differs from the generic defaults (the WGAN-GP paper's: Adam lr "
            "1e-4, constant, no moving average, lambda 10): "
            + "; ".join(f"**{name}**: `{text}`" if text else f"**{name}**: none" for name, text in flags.items()) + ".")


def target_held_from(row, dataset):
    """The first evaluation from which every later one covers all modes at the target share."""
    held = None
    for point in row["curve"]:
        met = point["modes_covered"] == row["modes_total"] and point["high_quality_share"] >= HQ_TARGETS[dataset]
        held = (held or point["iteration"]) if met else None
    return held


def held_text(iteration) -> str:
    return f"{iteration:,}" if iteration is not None else "not met"


def fmt(v, whole=False):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:.0f}" if whole else f"{v:.3g}"


def spread_row(rows, keys):
    """max - min over backends of every metric."""
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), float)]
        out[k] = (max(vals) - min(vals)) if len(vals) > 1 else None
    return out


def plot_curves(dataset, rows, path):
    """The dataset's metrics (``CURVES``) against the generator iteration, a line per row."""
    from wganx.monitor import new_figure

    panels = CURVES["toy" if dataset in TOY_SETS else "mnist"]
    fig = new_figure(figsize=(8, 3))
    axes = fig.subplots(1, 2)
    for r in rows:
        its = [p["iteration"] for p in r["curve"]]
        for ax, (key, _) in zip(axes, panels):
            ax.plot(its, [p[key] for p in r["curve"]], marker="o", ms=3, label=r["backend"])
    for ax, (_, title) in zip(axes, panels):
        ax.set_title(f"{dataset}: {title}", fontsize=9)
        ax.set_xlabel("generator iteration", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", help="comma-separated (default: every available backend)")
    p.add_argument("--toy-iters", default="1000",
                   help="generator iterations per toy run: N, or 8gaussians=N,25gaussians=M, 0 skips (default 1000)")
    p.add_argument("--mnist-iters", type=int, default=1000, help="generator iterations on MNIST (default 1000; 0 skips)")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"), help="MNIST files")
    p.add_argument("--eval-samples", type=int, default=5000, help="MNIST samples evaluated (default 5000)")
    p.add_argument("--out", default=str(ROOT / "docs" / "results"), help="where the page and images go")
    p.add_argument("--page", default="quality", help="name of the page (NAME.md, NAME.json, NAME-*_curves.png)")
    p.add_argument("--work", help="folder for the training runs (default: a temporary one)")
    p.add_argument("--toy-maps", type=int, default=512, help="MLP width of the toy runs (the paper: 512)")
    p.add_argument("--jobs", type=int, default=1,
                   help="training runs at once, each in its own process with cores/jobs threads (default 1)")
    p.add_argument("--settings", default="recommended",
                   help=f"comma-separated, a run each: {', '.join(SETTINGS)} (default: recommended, what wganx "
                        "train chooses for the dataset)")
    p.add_argument("--ema-decays", default="",
                   help="comma-separated --ema-decay values over each setting's own, a run each (default: none)")
    p.add_argument("--limited", default="",
                   help="shares of MNIST's training set, e.g. 0.01,0.1: the data-limited augmentation benchmark "
                        "instead of the others (page augment.md)")
    p.add_argument("--augments", default="none,diffaug,ada", help="--augment values of the data-limited runs")
    p.add_argument("--limited-iters", type=int, default=400, help="generator iterations of each data-limited run")
    p.add_argument("--limited-maps", type=int, default=128, help="MLP width of the data-limited runs")
    p.add_argument("--rewrite-page", action="store_true",
                   help="with --limited: write the page again from its JSON, without training or evaluating")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.limited:
        backends = args.backends.split(",") if args.backends else available_backends()
        out, page = Path(args.out), args.page if args.page != "quality" else "augment"
        out.mkdir(parents=True, exist_ok=True)
        work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="wganx-augment-"))
        work.mkdir(parents=True, exist_ok=True)
        return limited_main(argparse.Namespace(**{**vars(args), "page": page}), backends, out, work)
    decays = [float(d) for d in args.ema_decays.split(",")] if args.ema_decays else [None]
    settings = args.settings.split(",")
    for name in settings:
        if name not in SETTINGS:
            raise SystemExit(f"--settings: unknown {name!r}; choose from {', '.join(SETTINGS)}")
    toy_iters = parse_toy_iters(args.toy_iters)

    from wganx.evaluate import Evaluator

    backends = args.backends.split(",") if args.backends else available_backends()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="wganx-quality-"))
    toy_rows, mnist_rows, failures = {d: [] for d in TOY_SETS}, [], []
    started = time.perf_counter()

    common = {"out": str(out), "seed": args.seed}
    variants = [(b, name, e) for b in backends for name in settings for e in decays]
    jobs = [dict(common, dataset=d, backend=b, iters=toy_iters[d], maps=args.toy_maps, settings=name, ema_decay=e,
                 folder=str(work / f"{d}-{b}-{name}-{e}"))
            for d in TOY_SETS if toy_iters[d] for b, name, e in variants]
    clf = None
    if args.mnist_iters > 0:
        # The classifier and the real-image row first, here: the workers then read the cache.
        ev = Evaluator(None, "mnist", args.data_dir, None, args.eval_samples, seed=args.seed,
                       metric_options={"kid": {"num_subsets": 20}}, log=lambda m: print("  " + m, flush=True))
        from wganx_plugins.datasets import load_split

        train_x = load_split("mnist", args.data_dir, "train").x
        idx = np.random.default_rng(args.seed).choice(len(train_x), args.eval_samples, replace=False)
        mnist_rows.append({"backend": "real train images", "seconds": None, **ev.evaluate(train_x[np.sort(idx)])})
        clf = ev.extractor()
        jobs += [dict(common, dataset="mnist", backend=b, iters=args.mnist_iters, data_dir=args.data_dir, settings=name,
                      ema_decay=e, eval_samples=args.eval_samples, folder=str(work / f"mnist-{b}-{name}-{e}"))
                 for b, name, e in variants]
    jobs.sort(key=estimated_cost, reverse=True)
    for job in jobs:
        print(f"[{job['dataset']} / {run_label(job)}] {job['iters']} iterations", flush=True)
    for job, row in finished_jobs(jobs, args.jobs, lambda job: f"{job['dataset']} / {run_label(job)}", failures):
        name = f"{job['dataset']} / {run_label(job)}"
        (toy_rows[job["dataset"]] if job["dataset"] in TOY_SETS else mnist_rows).append(row)
        shown = {k: round(v, 4) for k, v in row.items() if isinstance(v, float) and k != "seconds"}
        print(f"[{name}] {json.dumps(shown)} in {row['seconds']:.0f} s", flush=True)
    order = {run_label({"backend": b, "settings": name, "ema_decay": e}): i for i, (b, name, e) in enumerate(variants)}
    for rows in toy_rows.values():
        rows.sort(key=lambda r: order[r["backend"]])
    mnist_rows[1:] = sorted(mnist_rows[1:], key=lambda r: order[r["backend"]])
    if len(mnist_rows) > 1:
        plot_curves("mnist", mnist_rows[1:], out / f"{args.page}-mnist_curves.png")
    for dataset, rows in toy_rows.items():
        if rows:
            plot_curves(dataset, rows, out / f"{args.page}-{dataset}_curves.png")

    total = time.perf_counter() - started
    trained = sum(r["seconds"] for r in [*mnist_rows[1:], *(r for rows in toy_rows.values() for r in rows)])
    lines = ["# Sample quality across backends", "",
             f"Generated by `benchmarks/quality.py` on {platform.machine()} CPU (Python {platform.python_version()}); "
             f"backends: {', '.join(backends)}; the runs trained for {trained / 60:.1f} min in all, {args.jobs} at a "
             "time, so train times are of a shared machine.", "",
             "Reproduce from the repository root:", "", "```",
             f"python benchmarks/quality.py --backends {','.join(backends)} --toy-iters {args.toy_iters} "
             f"--toy-maps {args.toy_maps} --mnist-iters {args.mnist_iters} --eval-samples {args.eval_samples} "
             f"--settings {args.settings}" + (f" --ema-decays {args.ema_decays}" if args.ema_decays else "")
             + f" --jobs {args.jobs} --seed {args.seed}" + (f" --page {args.page}" if args.page != "quality" else ""),
             "```", "",
             "Settings: " + "; ".join(f"**{n}**: {SETTINGS_TEXT[n]}" for n in settings) + ".", ""]
    if any(toy_rows.values()):
        budgets = ", ".join(f"{toy_iters[d]:,} ({d})" for d in TOY_SETS if toy_iters[d])
        lines += ["## Toy mixtures (the WGAN-GP paper's models)", "",
                  f"MLP 3x{args.toy_maps} ReLU (G and D), latent 2, batch 256, Adam betas (0.5, 0.9), n_critic 5, "
                  f"lambda 0.1, generator iterations: **{budgets}** (the paper: 100,000), seed {args.seed}. "
                  "Metrics on 2,500 samples: a mode is covered with at least 20 high-quality samples (within 3 "
                  "std of its centre); a perfect sampler scores all modes and a high-quality share of 0.989. The "
                  "project's targets: all modes, high-quality share at least "
                  + " and ".join(f"{share} ({d})" for d, share in HQ_TARGETS.items()) + "; "
                  "*target held from* is the first evaluation from which every later one meets them. "
                  + trained_with([r for d in TOY_SETS for r in toy_rows[d]]), "",
                  "| dataset | backend | iterations | modes covered | high-quality share | energy distance "
                  "| target held from | train time (s) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for dataset in TOY_SETS:
            rows = toy_rows[dataset]
            for r in rows:
                lines.append(f"| {dataset} | {r['backend']} | {toy_iters[dataset]:,} | "
                             f"{fmt(r['modes_covered'], True)} / {fmt(r['modes_total'], True)} | "
                             f"{fmt(r['high_quality_share'])} | {fmt(r['energy_distance'])} | "
                             f"{held_text(target_held_from(r, dataset))} | {r['seconds']:.0f} |")
            if len(rows) > 1:
                s = spread_row(rows, ("modes_covered", "high_quality_share", "energy_distance"))
                lines.append(f"| {dataset} | *spread (max - min)* | | {fmt(s['modes_covered'], True)} "
                             f"| {fmt(s['high_quality_share'])} | {fmt(s['energy_distance'])} | | |")
        lines += ["", f"Learning curves ({TOY_EVALUATIONS} evaluations of 2,500 samples during each run):", ""]
        lines += [f"![{d} learning curves]({args.page}-{d}_curves.png)" for d in TOY_SETS if toy_rows[d]]
        lines += [""] + [f"![{d} {r['backend']}]({d}_{r['file']}.png)" for d in TOY_SETS for r in toy_rows[d]] + [""]
    if mnist_rows:
        keys = ("domain_fid", "domain_kid_mean", "domain_classes_covered", "domain_is_mean", "domain_precision",
                "domain_recall")
        lines += ["## MNIST (real data)", "",
                  f"`mlp` architecture (3x512 ReLU, 28x28, latent 128), batch 64, lambda 10, Adam betas (0.5, 0.9), "
                  f"n_critic 5, **{args.mnist_iters} generator iterations**, seed {args.seed}. Metrics on "
                  f"{args.eval_samples} samples against as many test images, in the feature space of wganx's numpy "
                  f"MNIST classifier (test accuracy {clf.test_accuracy:.4f}): *domain* FID/KID are not comparable "
                  "with Inception FIDs from papers. KID over 20 subsets. The first row is real training images: the "
                  "floor a perfect generator would reach. " + trained_with(mnist_rows[1:]), "",
                  "| backend | domain FID | domain KID | classes covered | classifier IS | precision | recall | train time (s) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in mnist_rows:
            secs = f"{r['seconds']:.0f}" if r["seconds"] is not None else ""
            lines.append(f"| {r['backend']} | {fmt(r['domain_fid'])} | {fmt(r['domain_kid_mean'])} | "
                         f"{fmt(r['domain_classes_covered'], True)} / 10 | {fmt(r['domain_is_mean'])} | "
                         f"{fmt(r['domain_precision'])} | {fmt(r['domain_recall'])} | {secs} |")
        gen = mnist_rows[1:]
        if len(gen) > 1:
            s = spread_row(gen, keys)
            lines.append(f"| *spread (max - min)* | {fmt(s['domain_fid'])} | {fmt(s['domain_kid_mean'])} | "
                         f"{fmt(s['domain_classes_covered'], True)} | {fmt(s['domain_is_mean'])} | "
                         f"{fmt(s['domain_precision'])} | {fmt(s['domain_recall'])} | |")
        lines += ["", f"Learning curves ({MNIST_EVALUATIONS} evaluations of {args.eval_samples} samples during each "
                      "run):", "", f"![MNIST learning curves]({args.page}-mnist_curves.png)", ""]
        lines += [f"![MNIST {r['backend']}](mnist_{r['file']}.png)" for r in gen] + [""]
    if failures:
        lines += ["## Runs that failed", ""] + [f"- {f}" for f in failures] + [""]
    (out / f"{args.page}.md").write_text("\n".join(lines))
    (out / f"{args.page}.json").write_text(json.dumps({"toy": toy_rows, "mnist": mnist_rows, "failures": failures,
                                                  "toy_iters": toy_iters, "jobs": args.jobs, "mnist_iters": args.mnist_iters,
                                                  "minutes": total / 60, "train_minutes": trained / 60}, indent=2))
    print(f"wrote {out / (args.page + '.md')} ({total / 60:.1f} min)")
    return 1 if failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops the workers too, like Ctrl-C
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("quality.py: interrupted; rerun with the same --work to keep the runs that finished", file=sys.stderr)
        sys.exit(130)
