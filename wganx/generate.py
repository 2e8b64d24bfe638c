"""Sampling from a checkpoint, on any backend (checkpoints are backend-neutral)."""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from . import checkpoint, monitor
from .algorithm import state_shapes
from .build import load_backend, program_from_config
from .config import TrainConfig
from .errors import WganxError
from .plugins import registry as default_registry


def load_session(path, backend: Optional[str] = None, context: str = "cpu", device_id: int = 0,
                 batch_size: Optional[int] = None, reg=None, threads: Optional[int] = None):
    """``(session, program, meta)`` for a checkpoint, compiled on ``backend``
    (default: the backend that wrote it); ``threads`` as :func:`wganx.build.load_backend`."""
    reg = reg or default_registry()
    arrays, meta = checkpoint.load(path)
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in meta["config"].items() if k in known})
    config = replace(config, backend=backend or meta.get("backend", config.backend), context=context,
                     device_id=device_id, type_config="float", batch_size=batch_size or config.batch_size,
                     allow_critic_batch_norm=True)
    program = program_from_config(config, tuple(meta["sample_shape"]), meta["data_kind"], meta["num_classes"], reg)
    checkpoint.check_compatible(arrays, state_shapes(program), path)
    session = load_backend(config.backend, context, device_id, "float", reg, threads).compile(program)
    session.set_state(arrays)
    return session, program, meta


OUTPUTS = {"npz": "samples.npz", "png": "generated.png"}  # format -> file in the output folder


def _savez(path, **arrays) -> None:
    """``np.savez`` into ``path`` as it is named (``np.savez`` appends ``.npz`` to a name), closed
    before :func:`wganx.checkpoint.atomic_write` syncs it."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def generate(model_load_path, monitor_path, *, backend=None, context="cpu", device_id=0, batch_size=64,
             num_images=64, fmt=("png", "npz"), seed=0, raw=False, reg=None, threads=None,
             overwrite=False) -> dict:
    """Write ``generated.png`` and/or ``samples.npz`` (``images`` (N, C, H, W) float32 in
    [-1, 1], or ``points`` (N, 2)) into ``monitor_path``; from the generator's moving average
    when the checkpoint has one, unless ``raw``. Files already there are kept (an error
    before any work) unless ``overwrite``."""
    if batch_size < 1 or num_images < 1:
        raise WganxError("--batch-size and --num-images must be at least 1")
    out = Path(monitor_path)
    there = [OUTPUTS[f] for f in fmt if (out / OUTPUTS[f]).exists()]
    if there and not overwrite:
        raise WganxError(f"{out} already holds {' and '.join(there)}: replace with --overwrite, "
                         "or choose another --monitor-path")
    session, program, meta = load_session(model_load_path, backend, context, device_id, batch_size, reg, threads)
    rng = np.random.default_rng(seed)
    chunks, labels_all = [], []
    for start in range(0, num_images, batch_size):
        n = min(batch_size, num_images - start)
        z = rng.standard_normal((n, program.latent)).astype(np.float32)
        labels = rng.integers(0, program.num_classes, n).astype(np.int64) if program.num_classes else None
        chunks.append(session.generate(z, labels, raw=raw))
        if labels is not None:
            labels_all.append(labels)
    samples = np.concatenate(chunks).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    key = "points" if meta["data_kind"] == "points" else "images"
    if "npz" in fmt:
        extra = {"labels": np.concatenate(labels_all)} if labels_all else {}
        path = out / OUTPUTS["npz"]
        checkpoint.atomic_write(path, lambda tmp: _savez(tmp, **{key: samples}, **extra))
        written["npz"] = str(path)
    if "png" in fmt:
        path = out / OUTPUTS["png"]
        if key == "images":
            monitor.save_png(monitor.tile(samples), path)
        else:
            monitor.plot_points(samples, samples, session.critic_values, path, title="generated")
        written["png"] = str(path)
    return {"samples": samples, "written": written, "iteration": meta["iteration"]}


def session_generator(session, program, seed: int = 0, batch_size: int = 256,
                      raw: bool = False) -> Callable[[int], np.ndarray]:
    """``generate_fn(n)`` drawing latents (and, for conditional models, uniform labels) from
    its own generator seeded with ``seed``; what :class:`Evaluator` calls. ``raw``: the
    generator's own weights rather than their moving average."""
    rng = np.random.default_rng(seed)

    def generate_fn(n: int) -> np.ndarray:
        chunks = []
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            z = rng.standard_normal((m, program.latent)).astype(np.float32)
            labels = rng.integers(0, program.num_classes, m).astype(np.int64) if program.num_classes else None
            chunks.append(np.asarray(session.generate(z, labels, raw=raw), np.float32))
        return np.concatenate(chunks)
    return generate_fn
