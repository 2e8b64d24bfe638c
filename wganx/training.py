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
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from . import __version__, checkpoint, monitor
from .build import initial_arrays, load_backend, make_program, step_inputs
from .config import TrainConfig
from .data import Prefetcher
from .errors import WganxError
from .optim import OptimizerConfig
from .plugins import registry as default_registry
from .records import ArchConfig

FIXED_Z_STREAM = 1  # seeds of the independent generators derived from --seed
PARAM_STREAM = 2
SAMPLE_STREAM = 3
EVAL_STREAM = 4


class TrainingDiverged(WganxError):
    """A loss became NaN or infinite."""


def critic_steps(config: TrainConfig, iteration: int) -> int:
    """Critic steps before generator step ``iteration`` (0-based)."""
    if config.critic_schedule == "wgan" and (iteration < 25 or iteration % 500 == 0):
        return 100  # Arjovsky et al.'s schedule, seed 004
    return config.n_critic


def load_dataset(config: TrainConfig, reg=None):
    reg = reg or default_registry()
    spec = reg.get("dataset", config.dataset)
    size = config.image_size if spec.kind == "image" else None
    dataset = spec.load(config.data_dir, size, config.download)
    if config.conditional and not dataset.num_classes:
        raise WganxError(f"--conditional needs labels, and dataset {config.dataset!r} has none")
    if len(dataset) and config.batch_size > len(dataset):
        raise WganxError(f"--batch-size {config.batch_size} exceeds the {len(dataset)} samples of {config.dataset!r}")
    return dataset


def build_program(config: TrainConfig, sample_shape: tuple, data_kind: str, num_classes: int, reg=None):
    """The :class:`wganx.program.Program` for ``config`` and data of ``sample_shape``."""
    reg = reg or default_registry()
    arch_spec = reg.get("architecture", config.arch)
    image = data_kind == "image"
    if image and tuple(sample_shape[1:]) != (config.image_size, config.image_size):
        raise WganxError(f"the data is {sample_shape[1]}x{sample_shape[2]}, but --image-size is {config.image_size}")
    arch_config = ArchConfig(
        image_size=config.image_size, channels=sample_shape[0] if image else 0, latent=config.latent,
        maps=config.maps, up=reg.get("upsampler", config.up) if arch_spec.uses_upsampler else None,
        num_classes=num_classes if config.conditional else 0, critic_norm=config.critic_norm,
        data_kind=data_kind, data_dim=sample_shape[0] if not image else 2)

    def optimizer(lr):
        if config.optimizer == "rmsprop":
            return OptimizerConfig("rmsprop", lr=lr, eps=1e-10, rho=0.9)  # TF1's RMSProp (seed 004)
        return OptimizerConfig("adam", lr=lr, beta1=config.beta1, beta2=config.beta2)

    return make_program(arch=config.arch, regularizer=config.regularizer, loss=config.loss,
                        arch_config=arch_config, penalty_weight=config.lambda_,
                        critic_optimizer=optimizer(config.lrd), generator_optimizer=optimizer(config.lrg),
                        batch_size=config.batch_size, allow_critic_batch_norm=config.allow_critic_batch_norm,
                        reg=reg)


def expected_shapes(program) -> Dict[str, tuple]:
    return {f"{net}/{k}": spec.shape for net, network in
            (("generator", program.arch.generator), ("critic", program.arch.critic))
            for k, spec in network.params.items()}


class Trainer:
    """Runs one training job; construct, then :meth:`run`."""

    def __init__(self, config: TrainConfig, reg=None):
        self.config = config.validate()
        self.reg = reg or default_registry()
        self.folder = Path(config.monitor_path)
        resume_path = self._resume_path()
        self.dataset = load_dataset(config, self.reg)
        self.program = build_program(config, tuple(self.dataset.sample_shape), self.dataset.kind,
                                     self.dataset.num_classes, self.reg)
        self.backend = load_backend(config.backend, config.context, config.device_id, config.type_config, self.reg)
        self.session = self.backend.compile(self.program, seed=config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.iteration, self.batches_read = 0, 0
        if resume_path is not None:
            self._restore(resume_path)
        else:
            self.session.set_state(initial_arrays(self.program, np.random.default_rng([config.seed, PARAM_STREAM])))
        fixed = np.random.default_rng([config.seed, FIXED_Z_STREAM])
        n = config.num_samples
        self.fixed_z = fixed.standard_normal((n, self.program.latent)).astype(np.float32)
        self.fixed_labels = (np.arange(n) % self.program.num_classes).astype(np.int64) \
            if self.program.num_classes else None
        self.sample_rng = np.random.default_rng([config.seed, SAMPLE_STREAM, self.iteration])
        self.last_checkpoint: Optional[Path] = resume_path
        self.saved_iteration = self.iteration if resume_path is not None else -1
        self.evaluator = None
        if config.eval_interval:
            from .evaluate import Evaluator

            self.evaluator = Evaluator(config, metrics=config.eval_metrics, num_samples=config.eval_samples,
                                       download=config.download,
                                       resume_from=self.iteration if resume_path else None,
                                       metric_options={"kid": {"num_subsets": 20}})

    # -- resume ------------------------------------------------------------------------------
    def _resume_path(self) -> Optional[Path]:
        if not self.config.resume:
            return None
        if self.config.resume == "latest":
            path = checkpoint.latest(self.folder)
            if path is None:
                raise WganxError(f"--resume: no checkpoint params_*.safetensors in {self.folder}")
            return path
        return Path(self.config.resume)

    def _restore(self, path: Path):
        arrays, meta = checkpoint.load(path)
        checkpoint.check_compatible(arrays, expected_shapes(self.program), path)
        self.session.set_state(arrays)
        self.iteration = int(meta["iteration"])
        self.batches_read = int(meta["batches_read"])
        self.rng.bit_generator.state = meta["rng_state"]

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> Dict:
        cfg = self.config
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "samples").mkdir(exist_ok=True)
        self._write_config()
        log = monitor.LossLog(self.folder, resume_from=self.iteration if cfg.resume else None)
        board = monitor.TensorBoard(self.folder) if cfg.tensorboard else None
        data = Prefetcher(self.dataset.stream(cfg.batch_size, cfg.seed, self.batches_read))
        bar = self._progress_bar()
        start, elapsed0 = time.perf_counter(), self._elapsed_before(log)
        status, last = "finished", {}
        interrupted = _InterruptFlag()
        try:
            for i in range(self.iteration, cfg.max_iter):
                for _ in range(critic_steps(cfg, i)):
                    real, labels = next(data)
                    self.batches_read += 1
                    critic = self.session.critic_step(step_inputs(self.program, "critic", self.rng, real, labels))
                gen = self.session.generator_step(step_inputs(self.program, "generator", self.rng))
                self.iteration = done = i + 1
                if done % cfg.log_interval == 0 or done == cfg.max_iter or interrupted.set:
                    last = self._log(log, board, done, critic, gen, elapsed0 + time.perf_counter() - start)
                    if bar is not None:
                        bar.set_postfix({"D": f"{last['critic_loss']:.3f}", "G": f"{last['generator_loss']:.3f}"},
                                        refresh=False)
                if bar is not None:
                    bar.update(1)
                if done % cfg.save_interval == 0 or done == cfg.max_iter:
                    self.save(log)
                if self.evaluator is not None and (done % cfg.eval_interval == 0 or done == cfg.max_iter):
                    from .evaluate import session_generator

                    self.evaluator(session_generator(self.session, self.program, seed=[cfg.seed, EVAL_STREAM]),
                                   done)
                if interrupted.set:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            status = "interrupted"
            if self.saved_iteration != self.iteration:
                self.save(log)
        finally:
            interrupted.restore()
            data.close()
            if bar is not None:
                bar.close()
            if board is not None:
                board.close()
        log.plot()
        return {"status": status, "iteration": self.iteration, "checkpoint": str(self.last_checkpoint),
                "losses": last}

    def _progress_bar(self):
        if not self.config.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.config.max_iter, initial=self.iteration, unit="it", dynamic_ncols=True,
                    desc=f"wganx {self.config.backend}", file=sys.stderr)

    @staticmethod
    def _elapsed_before(log) -> float:
        return log.rows[-1]["elapsed_s"] if log.rows else 0.0

    def _log(self, log, board, iteration, critic, gen, elapsed) -> Dict[str, float]:
        c, g = self.session.fetch(critic), self.session.fetch(gen)
        row = {"iteration": iteration, "critic_loss": c["loss"], "generator_loss": g["loss"],
               "penalty": c.get("penalty", 0.0), "negative_critic_loss": -c["loss"],
               "wasserstein_estimate": c["wasserstein"], "elapsed_s": round(elapsed, 3)}
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            where = f"; the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else ""
            raise TrainingDiverged(f"training diverged at iteration {iteration}: {', '.join(bad)} "
                                   f"is {row[bad[0]]}{where}. Try a lower learning rate or another regularizer.")
        log.add(row)
        if board is not None:
            board.add(iteration, {k: v for k, v in row.items() if k not in ("iteration", "elapsed_s")})
        return row

    # -- outputs -----------------------------------------------------------------------------
    def _write_config(self):
        info = {"config": self.config.as_dict(), "wganx": __version__, "python": platform.python_version(),
                "backend": self.backend.name, "device": self.backend.device_name(),
                "frameworks": self.backend.versions(), "dataset": {
                    "name": self.config.dataset, "samples": len(self.dataset),
                    "sample_shape": list(self.dataset.sample_shape), "classes": self.dataset.num_classes},
                "penalty_weight": self.program.penalty_weight, "seed": self.config.seed}
        checkpoint.atomic_write(self.folder / "config.json",
                                lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n"))

    def meta(self) -> dict:
        return {"iteration": self.iteration, "batches_read": self.batches_read,
                "rng_state": self.rng.bit_generator.state, "config": self.config.as_dict(),
                "sample_shape": list(self.dataset.sample_shape), "data_kind": self.dataset.kind,
                "num_classes": self.dataset.num_classes, "backend": self.backend.name, "wganx": __version__}

    def save(self, log=None) -> Path:
        """Checkpoint, sample tiles and plots for the current iteration."""
        path = checkpoint.save(self.folder / checkpoint.name_for(self.iteration), self.session.get_state(),
                               self.meta())
        self.last_checkpoint, self.saved_iteration = path, self.iteration
        self._prune()
        self._samples()
        if log is not None:
            log.plot()
        return path

    def _prune(self):
        keep = self.config.keep_checkpoints
        if keep > 0:
            found = sorted(p for p in self.folder.glob("params_*.safetensors") if checkpoint.PATTERN.match(p.name))
            for old in found[:-keep]:
                old.unlink()

    def _samples(self):
        it, n = self.iteration, self.config.num_samples
        z = self.sample_rng.standard_normal((n, self.program.latent)).astype(np.float32)
        labels = self.sample_rng.integers(0, self.program.num_classes, n) if self.program.num_classes else None
        samples = self.folder / "samples"
        if self.dataset.kind == "points":
            real, _ = next(self.dataset.stream(max(n, 512), self.config.seed + 10 ** 6))
            fake = self._generate_many(max(n, 512))
            monitor.plot_points(fake, real, self.session.critic_values, samples / f"fixed_{it:06d}.png",
                                title=f"{self.config.dataset}, iteration {it}")
            return
        monitor.save_png(monitor.tile(self.session.generate(z, labels)), samples / f"train_{it:06d}.png")
        monitor.save_png(monitor.tile(self.session.generate(self.fixed_z, self.fixed_labels)),
                         samples / f"fixed_{it:06d}.png")
        monitor.save_gif(sorted(samples.glob("fixed_*.png")), self.folder / "progress.gif")

    def _generate_many(self, n):
        z = self.sample_rng.standard_normal((n, self.program.latent)).astype(np.float32)
        return self.session.generate(z)


class _InterruptFlag:
    """Turns Ctrl-C into a flag checked between iterations, so a step is never cut in half
    and the checkpoint written on the way out is consistent."""

    def __init__(self):
        self.set = False
        self._previous = None
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None

    def _handle(self, signum, frame):
        if self.set:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.set = True

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def train(config: TrainConfig, reg=None) -> Dict:
    """Train with ``config``; returns the final status, iteration and losses."""
    return Trainer(config, reg).run()
