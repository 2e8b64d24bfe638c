"""A trained GAN from a checkpoint, on any backend: :func:`load` gives a :class:`GAN` whose
:meth:`~GAN.sample` and :meth:`~GAN.critic` take and return numpy arrays in wganx's layout.
``wganx generate`` and ``wganx evaluate`` sample through it, so the command and Python draw
the same samples for the same seed."""
from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from . import checkpoint as checkpoints
from .algorithm import state_shapes
from .build import load_backend, program_from_config
from .config import CONTEXTS, SEED, TrainConfig
from .data import images_to_float
from .errors import WganxError, check_choice
from .plugins import registry as default_registry

PathLike = Union[str, "os.PathLike[str]"]


def load_session(path, backend: Optional[str] = None, context: str = "cpu", device_id: int = 0,
                 batch_size: Optional[int] = None, reg=None, threads: Optional[int] = None, loaded=None):
    """``(session, program, meta)`` for a checkpoint, compiled on ``backend``
    (default: the backend that wrote it); ``threads`` as :func:`wganx.build.load_backend`.
    ``loaded``: its ``(arrays, meta)`` when the caller has read them already."""
    reg = reg or default_registry()
    arrays, meta = loaded or checkpoints.load(path)
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in meta["config"].items() if k in known})
    config = replace(config, backend=backend or meta.get("backend", config.backend), context=context,
                     device_id=device_id, type_config="float", batch_size=batch_size or config.batch_size,
                     allow_critic_batch_norm=True)
    program = program_from_config(config, tuple(meta["sample_shape"]), meta["data_kind"], meta["num_classes"], reg)
    checkpoints.check_compatible(arrays, state_shapes(program), path)
    session = load_backend(config.backend, context, device_id, "float", reg, threads).compile(program)
    session.set_state(arrays)
    return session, program, meta


class GAN:
    """A generator and its critic loaded from a checkpoint (:func:`load`), on any backend.

    Arrays in and out follow wganx's layout: images NCHW float32 in [-1, 1], points ``(N, D)``.
    ``checkpoint`` is the file it came from, ``config`` the settings it was trained with and
    ``batch_size`` the batch its networks run at (larger requests are split).
    """

    def __init__(self, session, program, meta: dict, path: Path, batch_size: int):
        self._session, self._program, self._meta = session, program, meta
        self.checkpoint = Path(path)
        self.batch_size = batch_size
        self.config: Dict[str, Any] = dict(meta.get("config", {}))  # the settings it was trained with

    # what it is
    @property
    def backend(self) -> str:
        """The backend computing now (not necessarily the one that trained it: ``trained_with``)."""
        return self._session.backend.name

    @property
    def trained_with(self) -> str:
        """The backend that wrote the checkpoint."""
        return self._meta.get("backend", "")

    @property
    def iteration(self) -> int:
        """The generator iteration the checkpoint was saved at."""
        return int(self._meta["iteration"])

    @property
    def data_kind(self) -> str:
        """``"image"`` or ``"points"``."""
        return "points" if self._meta["data_kind"] == "points" else "image"

    @property
    def sample_shape(self) -> tuple:
        """One sample's shape: ``(C, H, W)`` or ``(D,)``."""
        return tuple(self._meta["sample_shape"])

    @property
    def latent(self) -> int:
        """The size of the latent vector z."""
        return self._program.latent

    @property
    def num_classes(self) -> int:
        """Classes of a class-conditional model; 0 for an unconditional one."""
        return int(self._program.num_classes or 0)

    @property
    def dataset(self) -> Optional[str]:
        """The dataset it was trained on (the default reference of :func:`wganx.evaluate <wganx.api.evaluate>`)."""
        return self.config.get("dataset")

    def __repr__(self) -> str:
        return (f"GAN({self.checkpoint}, iteration {self.iteration}, {self.data_kind} "
                f"{'x'.join(map(str, self.sample_shape))}, latent {self.latent}, on {self.backend})")

    # what it does
    @property
    def moving_average(self) -> bool:
        """Whether the checkpoint keeps a moving average of the generator (sampled unless ``raw_weights``)."""
        return bool(self._program.ema_decay)

    def sample(self, n: int = 64, seed: int = 0, labels=None, *, raw_weights: bool = False,
               return_labels: bool = False):
        """``n`` samples: images ``(n, C, H, W)`` float32 in [-1, 1], or points ``(n, D)``.

        ``seed`` fixes the latent codes (the same seed gives the same samples on every
        backend, and as ``wganx generate --seed``). ``labels`` (class-conditional models): one
        class for all, or ``n`` of them; default uniformly drawn, returned beside the samples
        with ``return_labels`` (None for an unconditional model). The moving average of the
        generator is used when the checkpoint has one, unless ``raw_weights``.
        """
        n = _count(n, "n")
        SEED.check("seed", seed)
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.latent)).astype(np.float32)
        labels = self._labels(labels, n, rng)
        chunks = [self._session.generate(z[i:i + self.batch_size], None if labels is None else
                                         labels[i:i + self.batch_size], raw=raw_weights)
                  for i in range(0, n, self.batch_size)]
        samples = np.concatenate([np.asarray(c, np.float32) for c in chunks])
        return (samples, labels) if return_labels else samples

    def critic(self, x, labels=None) -> np.ndarray:
        """The critic's value ``D(x)`` of each sample of ``x``, shape ``(N,)``. Images may be
        NCHW or NHWC, float in [-1, 1] or uint8."""
        x = images_to_float(x) if self.data_kind == "image" else np.asarray(x, np.float32)
        if tuple(x.shape[1:]) != self.sample_shape:
            raise WganxError(f"the critic takes samples of shape {self.sample_shape}, got {tuple(x.shape[1:])}")
        if self.num_classes and labels is None:
            raise WganxError(f"this critic is class-conditional: pass labels (0 to {self.num_classes - 1})")
        labels = self._labels(labels, len(x), None)
        values = [self._session.critic_values(x[i:i + self.batch_size], None if labels is None else
                                              labels[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return np.concatenate([np.asarray(v, np.float32).reshape(-1) for v in values])

    def show(self, n: Optional[int] = None, seed: int = 0, labels=None, *, raw_weights: bool = False):
        """Samples as a notebook shows them inline: images as a tile (a PIL image, scaled up
        when small), points over real ones with the critic's value as a contour (a matplotlib
        figure, as the run's ``samples/`` holds them)."""
        from PIL import Image

        from . import monitor

        if self.data_kind == "points":
            n = n or 512
            fake = self.sample(n, seed, labels, raw_weights=raw_weights)
            real = self._real_points(n, seed)
            return monitor.points_figure(fake, real, self.critic, title=f"{self.dataset}, iteration {self.iteration}")
        grid = monitor.tile(self.sample(n or 64, seed, labels, raw_weights=raw_weights))
        image = Image.fromarray(grid)
        scale = -(-256 // max(image.size))  # at least 256 pixels wide: small images stay visible
        return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image

    def _real_points(self, n: int, seed: int) -> np.ndarray:
        from .plugins import registry

        data = registry().get("dataset", self.dataset).load(self.config.get("data_dir"), None, False)
        return np.asarray(next(data.stream(n, seed + 10 ** 6))[0], np.float32)

    def _labels(self, labels, n: int, rng) -> Optional[np.ndarray]:
        if not self.num_classes:
            if labels is not None:
                raise WganxError("this model is not class-conditional: leave labels out")
            return None
        if labels is None:  # the critic asks for them first
            return rng.integers(0, self.num_classes, n).astype(np.int64)
        out = np.broadcast_to(np.asarray(labels, np.int64), (n,)).copy() if np.ndim(labels) == 0 \
            else np.asarray(labels, np.int64)
        if out.shape != (n,) or out.min() < 0 or out.max() >= self.num_classes:
            raise WganxError(f"labels must be one class or {n} classes, each from 0 to {self.num_classes - 1}")
        return out


def _count(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise WganxError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def load(checkpoint: PathLike, backend: Optional[str] = None, *, context: str = "cpu", device_id: int = 0,
         threads: int = 0, batch_size: Optional[int] = None) -> GAN:
    """A trained :class:`GAN` from a checkpoint, on any backend (checkpoints are backend-neutral).

    Args:
        checkpoint: a ``params_*.safetensors`` file, or a run folder (its newest checkpoint
            that loads).
        backend: the backend to compute on; default: the one that trained it.
        context, device_id, threads: as ``wganx generate``'s ``-c``, ``-d`` and ``--threads``.
        batch_size: the batch the networks run at (default: the training batch size).
    """
    check_choice("context", context, CONTEXTS)
    path = Path(checkpoint)
    loaded = None
    if path.is_dir():
        if not checkpoints.checkpoints(path):
            raise WganxError(f"{path} holds no checkpoint (params_*.safetensors)")
        path, *loaded = checkpoints.latest_loadable(path)
    session, program, meta = load_session(path, backend, context, device_id, batch_size, threads=threads,
                                          loaded=loaded)
    return GAN(session, program, meta, path, program.batch_size)
