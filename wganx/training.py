"""The training job: WGAN-GP's alternation of critic and generator steps, with the monitors,
checkpoints and resume around it. Backend-neutral: the backend only compiles the steps.

Randomness: one seeded ``numpy.random.Generator`` draws every latent code and every
regularizer noise; the data stream is a pure function of the seed and the batch number;
parameters come from their own seeded generator. A resumed run restores all three, so its
losses equal those of the run that was never interrupted.
"""
from __future__ import annotations

import json
import math
import platform
import signal
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from . import __version__, checkpoint, monitor
from .algorithm import EMA_PREFIX, critic_steps, generator_iteration, state_shapes
from .augment import AdaptiveP
from .build import initial_arrays, load_backend, load_dataset, parse_augment, program_from_config, with_ema
from .config import TrainConfig, flag_name
from .data import Prefetcher
from .distributed import ReplicaLost, check_launch, local_batch, process_index
from .errors import BackendUnavailableError, Interrupted, WganxError
from .notices import notice, silence_notices
from .progress import TrainingProgress
from .plugins import registry as default_registry
from .runfolder import RunFolder, describe_os_error

FIXED_Z_STREAM = 1  # seeds of the independent generators derived from --seed
PARAM_STREAM = 2
SAMPLE_STREAM = 3
EVAL_STREAM = 4
AUGMENT_COLUMNS = ("augment_p", "augment_signal")  # losses.csv columns of an augmented run


# Settings a resumed run must keep (else it continues another model), and those it may change
# without a word (extending max_iter is what resuming is for).
RESUME_MUST_KEEP = ("arch", "up", "maps", "latent", "image_size", "critic_norm", "conditional", "dataset", "augment")
RESUME_MAY_CHANGE = ("resume", "overwrite", "max_iter", "progress", "progress_style", "monitor_path", "raw_weights", "threads",
                     "distribute")


class TrainingDiverged(WganxError):
    """A loss became NaN or infinite."""


class Trainer:
    """Runs one training job; construct, then :meth:`run` (which releases the run folder).

    Everything that can be refused is checked before the heavy work (loading data,
    compiling): the settings, the plugin names, the run folder, the checkpoint to resume.
    In a data-parallel job only the writer (process 0, :mod:`wganx.distributed`) checks,
    locks and writes the run folder; the other processes read the checkpoint they resume.
    """

    def __init__(self, config: TrainConfig, reg=None, recommended: Optional[dict] = None):
        self.config = config.validate()
        self.reg = reg or default_registry()
        self.recommended = dict(recommended or {})  # the plugins' defaults in config (for config.json)
        self.folder = Path(config.monitor_path)
        self._check_names()
        self.writer = process_index() == 0
        if not self.writer:
            silence_notices()
        self.run_folder = RunFolder(self.folder, resume=self._resumes_in_place(), overwrite=config.overwrite) \
            if self.writer else None
        try:
            self._setup()
        except BaseException:
            self._release(failed=True)
            raise

    def _release(self, failed: bool = False):
        if self.run_folder is not None:
            self.run_folder.close(failed=failed)

    def _setup(self):
        config = self.config
        resumed = self._read_resume_checkpoint()
        self.evaluator = self._evaluator(resumed[2]["iteration"] if resumed is not None else None) \
            if self.writer else None
        self.backend = load_backend(config.backend, config.context, config.device_id, config.type_config, self.reg,
                                    config.threads)
        try:
            self.replicas = self.backend.replicate(config.distribute, sync_batch_norm=config.sync_batch_norm)
            check_launch(config.backend, self.replicas)
            local_batch(config.batch_size, self.replicas)
            self.dataset = load_dataset(config, self.reg)
            self.program = program_from_config(config, tuple(self.dataset.sample_shape), self.dataset.kind,
                                         self.dataset.num_classes, self.reg)
            self.session = self.backend.compile(self.program)
        except BaseException:
            self.backend.shutdown(finished=False)
            raise
        self.rng = np.random.default_rng(config.seed)
        self.iteration, self.batches_read = 0, 0
        self.ada = self._adaptive_p()
        if resumed is not None:
            self._restore(*resumed)
        else:
            self.session.set_state(initial_arrays(self.program, np.random.default_rng([config.seed, PARAM_STREAM])))
        fixed = np.random.default_rng([config.seed, FIXED_Z_STREAM])
        n = config.num_samples
        self.fixed_z = fixed.standard_normal((n, self.program.latent)).astype(np.float32)
        self.fixed_labels = (np.arange(n) % self.program.num_classes).astype(np.int64) \
            if self.program.num_classes else None
        self.sample_rng = np.random.default_rng([config.seed, SAMPLE_STREAM, self.iteration])
        self.last_checkpoint: Optional[Path] = resumed[0] if resumed is not None else None
        self.saved_iteration = self.iteration if resumed is not None else -1

    def _adaptive_p(self) -> Optional[AdaptiveP]:
        """ADA's adaptive ``p`` where the augmentation is adaptive, else None (a fixed ``p``)."""
        augment, cfg = self.program.augment, self.config
        if augment is None or not augment.spec.adaptive:
            return None
        return AdaptiveP(cfg.augment_p, cfg.ada_target, cfg.ada_kimg, cfg.ada_interval, read=self._read_signals)

    def _read_signals(self, values: list) -> list:
        """Device scalars as floats, in one fetch."""
        read = self.session.fetch({str(i): v for i, v in enumerate(values)})
        return [read[str(i)] for i in range(len(values))]

    def _evaluator(self, resume_from: Optional[int]):
        """The ``--eval-interval`` evaluator, its metrics and dependencies checked before any data loads."""
        if not self.config.eval_interval:
            return None
        from .evaluate import Evaluator

        evaluator = Evaluator(self.config, metrics=self.config.eval_metrics, num_samples=self.config.eval_samples,
                              download=self.config.download, resume_from=resume_from, reg=self.reg,
                              metric_options={"kid": {"num_subsets": 20}})
        evaluator.check_ready()
        return evaluator

    def _check_names(self):
        """Unknown plugin names and missing frameworks, before anything touches the disk."""
        cfg, reg = self.config, self.reg
        arch = reg.get("architecture", cfg.arch)
        arch.check_critic_norm(cfg.critic_norm)
        if arch.uses_upsampler:
            reg.get("upsampler", cfg.up)
        for kind, name in (("regularizer", cfg.regularizer), ("loss", cfg.loss), ("dataset", cfg.dataset)):
            reg.get(kind, name)
        data = reg.get("dataset", cfg.dataset)
        parse_augment(cfg.augment, data.kind_for(cfg.data_dir) if data.kind_for and cfg.data_dir else data.kind, reg)
        ok, why = reg.entry("backend", cfg.backend).availability()
        if not ok:
            raise BackendUnavailableError(f"backend {cfg.backend!r} is unavailable: {why}")

    def close(self):
        """Release the run folder's lock and leave the data-parallel job (:meth:`run` does
        both on its way out)."""
        self._release()
        self.backend.shutdown(finished=False)

    # -- resume ------------------------------------------------------------------------------
    def _resumes_in_place(self) -> bool:
        """True when the run continues in its own folder (``--resume`` of one of its checkpoints);
        a checkpoint from elsewhere starts a new run folder from it."""
        resume = self.config.resume
        return bool(resume) and (resume == "latest" or Path(resume).parent.resolve() == self.folder.resolve())

    def _read_resume_checkpoint(self):
        """``(path, arrays, meta)`` of the checkpoint to resume, checked against this run's settings."""
        resume = self.config.resume
        if not resume:
            return None
        if resume == "latest":
            path, arrays, meta = checkpoint.latest_loadable(self.folder)
        else:
            path = Path(resume)
            arrays, meta = checkpoint.load(path)
            newer = [p.name for p in checkpoint.checkpoints(self.folder)
                     if int(checkpoint.PATTERN.match(p.name).group(1)) > int(meta["iteration"])]
            if newer:
                raise WganxError(f"--resume {path}: {self.folder} holds newer checkpoints ({', '.join(newer[:3])}), "
                                 "which this run would overwrite; resume the newest (--resume), or continue "
                                 "from this one in another --monitor-path")
        self._check_resumed_settings(meta["config"], path)
        return path, arrays, meta

    def _check_resumed_settings(self, before: dict, path: Path):
        """Refuse a change that makes the resumed run another model; tell every other change."""
        now = self.config.as_dict()
        uses_up = self.reg.get("architecture", self.config.arch).uses_upsampler
        changed = [k for k in now if k in before and before[k] != now[k] and k not in RESUME_MAY_CHANGE]
        fixed = [k for k in changed if k in RESUME_MUST_KEEP and (k != "up" or uses_up)]
        if fixed:
            shown = "; ".join(f"--{flag_name(k)} was {before[k]!r}, now {now[k]!r}" for k in fixed)
            raise WganxError(f"--resume {path}: {shown}. A resumed run keeps the model and the data; "
                             "start a new run in another --monitor-path for these settings")
        told = [k for k in changed if k not in fixed]
        if told:
            notice("resuming with changed settings: " + ", ".join(f"{flag_name(k)} {before[k]!r} -> {now[k]!r}"
                                                                 for k in told))

    def _restore(self, path: Path, arrays, meta):
        if self.program.ema_decay and not any(k.startswith(EMA_PREFIX) for k in arrays):
            notice(f"{path} has no moving average of the generator; it starts from the checkpoint's weights")
            arrays = with_ema(self.program, arrays)
        checkpoint.check_compatible(arrays, state_shapes(self.program), path)
        self.session.set_state(arrays)
        self.iteration = int(meta["iteration"])
        self.batches_read = int(meta["batches_read"])
        self.rng.bit_generator.state = meta["rng_state"]
        if self.ada is not None and "ada" in meta:
            self.ada.load(meta["ada"])

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> Dict:
        """Train to ``max_iter``; returns the final status, iteration, checkpoint and losses.

        Ctrl-C or SIGTERM ends the current iteration, saves it and returns ``status``
        "interrupted" with the ``signal``; a second signal stops at once, leaving the
        checkpoints as they were. A write that fails (a full disk) is a WganxError naming
        the last good checkpoint.
        """
        finished = False
        try:
            result = self._run()
            finished = True
            return result
        except OSError as exc:
            raise WganxError(f"training stopped at iteration {self.iteration}: could not write "
                             f"{exc.filename or self.folder}: {describe_os_error(exc)}{self._last_good()}") from None
        except ReplicaLost as exc:
            raise ReplicaLost(f"training stopped at iteration {self.iteration}: {exc}{self._last_good()}") from None
        finally:
            self._release()
            self.backend.shutdown(finished=finished)

    def _last_good(self) -> str:
        return f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else ""

    def _run(self) -> Dict:
        cfg = self.config
        if self.recommended:
            notice(f"{cfg.dataset} / {cfg.arch} recommend: " + ", ".join(
                f"{flag_name(k)} {v}" for k, v in self.recommended.items()) + " (a flag overrides each)")
        log = board = None
        if self.writer:
            (self.folder / "samples").mkdir(exist_ok=True)
            self._write_config()
            log = monitor.LossLog(self.folder, resume_from=self.iteration if self.last_checkpoint else None,
                                  extra=AUGMENT_COLUMNS if self.program.augment is not None else ())
            board = monitor.TensorBoard(self.folder) if cfg.tensorboard else None
        data = Prefetcher(self._real_batches())
        progress = TrainingProgress(cfg.max_iter, self.iteration, enabled=cfg.progress and self.writer,
                                    description=f"wganx {cfg.backend}", style=cfg.progress_style)
        start, elapsed0 = time.perf_counter(), self._elapsed_before(log)
        status, last = "finished", {}
        interrupted = _InterruptFlag()
        try:
            try:
                for i in range(self.iteration, cfg.max_iter):
                    last = self._iteration(i, data, log, board, progress, interrupted, elapsed0 - start) or last
                    if self.replicas.processes > 1 and self.session.any_replica(bool(interrupted.signal)):
                        interrupted.signal = interrupted.signal or signal.SIGTERM  # another replica was stopped
                    if interrupted.signal:
                        raise Interrupted(interrupted.signal)
            except Interrupted as stop:
                status = "interrupted"
                if not stop.at_once and self.saved_iteration != self.iteration and self.writer:
                    self.save(log)
            finally:
                data.close()
                progress.close()
                if board is not None:
                    board.close()
            if log is not None:
                log.plot()
        except Interrupted:  # a second signal while saving or plotting: what is on disk stays
            status = "interrupted"
        finally:
            interrupted.restore()
        return {"status": status, "iteration": self.iteration, "checkpoint": str(self.last_checkpoint),
                "losses": last, "signal": interrupted.signal, "writer": self.writer}

    def _real_batches(self):
        """This process's rows of each global batch from batch ``batches_read`` on (all of
        them when it runs alone; under data parallelism the others are not read)."""
        cfg = self.config
        return self.dataset.share(cfg.batch_size, cfg.seed, self.batches_read, *self.replicas.process_share)

    def _iteration(self, i, data, log, board, progress, interrupted, clock_offset) -> Optional[Dict[str, float]]:
        """Generator iteration ``i``: its critic steps, its generator step, and what is due
        after it (a loss row, a checkpoint, an evaluation). Returns the row if one was logged."""
        cfg, row = self.config, None

        def next_batch():
            self.batches_read += 1
            return next(data)

        p, steps = self.augment_p, critic_steps(cfg.critic_schedule, cfg.n_critic, i)
        critic, gen = generator_iteration(self.session, self.program, self.rng, next_batch, steps, p)
        if self.ada is not None:  # read from the device when it can move p, once an interval
            self.ada.observe(critic["augment_signal"], cfg.batch_size * steps)
        self.iteration = done = i + 1
        if done % cfg.log_interval == 0 or done == cfg.max_iter or interrupted.signal:
            row = self._log(log, board, done, critic, gen, clock_offset + time.perf_counter(), p)
        due = done % cfg.save_interval == 0 or done == cfg.max_iter
        saved = self.save(log) if due and self.writer else None
        progress.update(done, row, saved)
        if self.evaluator is not None and (done % cfg.eval_interval == 0 or done == cfg.max_iter):
            from .generate import session_generator

            self.evaluator(session_generator(self.session, self.program, seed=[cfg.seed, EVAL_STREAM],
                                             raw=cfg.raw_weights), done)
        return row

    @staticmethod
    def _elapsed_before(log) -> float:
        return log.rows[-1]["elapsed_s"] if log is not None and log.rows else 0.0

    @property
    def augment_p(self) -> Optional[float]:
        """The probability this iteration's augmentation is drawn with: ADA's current ``p``, or
        ``--augment-p`` (None without an augmentation)."""
        if self.program.augment is None:
            return None
        return self.ada.p if self.ada is not None else self.program.augment.p

    def _log(self, log, board, iteration, critic, gen, elapsed, p=None) -> Dict[str, float]:
        c, g = self.session.fetch(critic), self.session.fetch(gen)
        row = {"iteration": iteration, "critic_loss": c["loss"], "generator_loss": g["loss"],
               "penalty": c.get("penalty", 0.0), "negative_critic_loss": -c["loss"],
               "wasserstein_estimate": c["wasserstein"], "elapsed_s": round(elapsed, 3)}
        if p is not None:  # the p this iteration drew with, and ADA's r_t (0 without ADA)
            row.update(augment_p=p, augment_signal=c.get("augment_signal", 0.0))
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(f"training diverged at iteration {iteration}: {', '.join(bad)} "
                                   f"is {row[bad[0]]}{self._last_good()}. Try a lower learning rate or another "
                                   "regularizer.")
        if log is None:  # a replica that does not write
            return row
        log.add(row)
        if board is not None:
            board.add(iteration, {k: v for k, v in row.items() if k not in ("iteration", "elapsed_s")})
        return row

    # -- outputs -----------------------------------------------------------------------------
    def _write_config(self):
        """``config.json``: this run's settings and environment, and in ``history`` those of
        every earlier part of a resumed run with the iteration each started at."""
        info = {"config": self.config.as_dict(), "wganx": __version__, "python": platform.python_version(),
                "backend": self.backend.name, "device": self.backend.device_name(),
                "frameworks": self.backend.versions(), "dataset": {
                    "name": self.config.dataset, "samples": len(self.dataset),
                    "sample_shape": list(self.dataset.sample_shape), "classes": self.dataset.num_classes},
                "penalty_weight": self.program.penalty_weight, "seed": self.config.seed,
                "replicas": {"engine": self.replicas.engine, "replicas": self.replicas.size,
                             "processes": self.replicas.processes},
                "recommended_by_plugins": self.recommended,
                "started_at_iteration": self.iteration,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        path = self.folder / "config.json"
        history = []
        if self.last_checkpoint is not None and path.exists():
            try:
                before = json.loads(path.read_text())
                history = before.pop("history", []) + [before]
            except (ValueError, AttributeError):
                notice(f"{path} was not valid JSON; its history starts again here")
        info["history"] = history
        checkpoint.atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2, sort_keys=True)
                                                                       + "\n"))

    def meta(self) -> dict:
        meta = {"iteration": self.iteration, "batches_read": self.batches_read,
                "rng_state": self.rng.bit_generator.state, "config": self.config.as_dict(),
                "sample_shape": list(self.dataset.sample_shape), "data_kind": self.dataset.kind,
                "num_classes": self.dataset.num_classes, "backend": self.backend.name, "wganx": __version__}
        if self.ada is not None:
            meta["ada"] = self.ada.state()
        return meta

    def save(self, log=None) -> Path:
        """Checkpoint, sample tiles and plots for the current iteration; parameters that are
        not all finite are never written (the run has diverged: TrainingDiverged)."""
        try:
            path = checkpoint.save(self.folder / checkpoint.name_for(self.iteration), self.session.get_state(),
                                   self.meta())
        except checkpoint.NonFiniteError as exc:
            where = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint \
                else "no checkpoint was written before"
            raise TrainingDiverged(f"training diverged by iteration {self.iteration}: {exc}; {where}. "
                                   "Try a lower learning rate or another regularizer.") from None
        self.last_checkpoint, self.saved_iteration = path, self.iteration
        self._prune()
        self._samples()
        if log is not None:
            log.plot()
        return path

    def _prune(self):
        keep = self.config.keep_checkpoints
        if keep > 0:  # oldest iteration first: by the number, not the name (1000000 sorts before 999999)
            for old in checkpoint.checkpoints(self.folder)[:-keep]:
                if old != self.last_checkpoint:
                    old.unlink()

    def _samples(self):
        it, n = self.iteration, self.config.num_samples
        z = self.sample_rng.standard_normal((n, self.program.latent)).astype(np.float32)
        labels = self.sample_rng.integers(0, self.program.num_classes, n) if self.program.num_classes else None
        samples = self.folder / "samples"
        if self.dataset.kind == "points":
            shown = min(max(n, 512), len(self.dataset) or max(n, 512))  # a finite set may hold fewer
            real, _ = next(self.dataset.stream(shown, self.config.seed + 10 ** 6))
            fake = self._generate_many(shown)
            plane = self.dataset.sample_shape == (2,)  # the critic's contour needs the plane
            monitor.plot_points(fake, real, self.session.critic_values if plane else None,
                                samples / monitor.sample_name("fixed", it),
                                title=f"{self.config.dataset}, iteration {it}")
            return
        monitor.save_png(monitor.tile(self._generate(z, labels)), samples / monitor.sample_name("train", it))
        monitor.save_png(monitor.tile(self._generate(self.fixed_z, self.fixed_labels)),
                         samples / monitor.sample_name("fixed", it))
        monitor.save_gif(monitor.sample_tiles(samples), self.folder / "progress.gif")

    def _generate_many(self, n):
        z = self.sample_rng.standard_normal((n, self.program.latent)).astype(np.float32)
        return self._generate(z)

    def _generate(self, z, labels=None):
        """Samples for tiles: from the moving average when the run keeps one (unless --raw-weights)."""
        return self.session.generate(z, labels, raw=self.config.raw_weights)


class _InterruptFlag:
    """Turns Ctrl-C (SIGINT) and SIGTERM into a flag checked between iterations, so a step is
    never cut in half and the checkpoint written on the way out is consistent. A second
    signal stops at once, without writing: the checkpoints on disk stay as they were."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal = 0
        self._previous = {}
        try:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = {}

    def _handle(self, signum, frame):
        if self.signal:
            raise Interrupted(signum, at_once=True)
        self.signal = signum

    def restore(self):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def train(config: TrainConfig, reg=None, recommended: Optional[dict] = None) -> Dict:
    """Train with ``config``; returns the final status, iteration and losses.
    ``recommended``: which of its settings came from the plugins' defaults (config.json)."""
    return Trainer(config, reg, recommended).run()
