"""Sampling from a checkpoint, on any backend (checkpoints are backend-neutral)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import checkpoint, monitor
from .config import SEED
from .errors import WganxError
from .gan import load, load_session  # noqa: F401 - load_session: importable from here, as before


OUTPUTS = {"npz": "samples.npz", "png": "generated.png"}  # format -> file in the output folder


def _savez(path, **arrays) -> None:
    """``np.savez`` into ``path`` as it is named (``np.savez`` appends ``.npz`` to a name), closed
    before :func:`wganx.checkpoint.atomic_write` syncs it."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def generate(model_load_path, monitor_path, *, backend=None, context="cpu", device_id=0, batch_size=64,
             num_images=64, fmt=("png", "npz"), seed=0, raw=False, threads=None, overwrite=False) -> dict:
    """``wganx generate``: write ``generated.png`` and/or ``samples.npz`` (``images`` (N, C, H,
    W) float32 in [-1, 1], or ``points`` (N, 2); ``labels`` of a class-conditional model) into
    ``monitor_path``: :meth:`wganx.GAN.sample` of the checkpoint, from the generator's moving
    average when it has one, unless ``raw``. Files already there are kept (an error before any
    work) unless ``overwrite``."""
    if batch_size < 1 or num_images < 1:
        raise WganxError("--batch-size and --num-images must be at least 1")
    SEED.check("--seed", seed)
    out = Path(monitor_path)
    there = [OUTPUTS[f] for f in fmt if (out / OUTPUTS[f]).exists()]
    if there and not overwrite:
        raise WganxError(f"{out} already holds {' and '.join(there)}: replace with --overwrite, "
                         "or choose another --monitor-path")
    gan = load(model_load_path, backend, context=context, device_id=device_id, threads=threads, batch_size=batch_size)
    samples, labels = gan.sample(num_images, seed, raw_weights=raw, return_labels=True)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    key = "points" if gan.data_kind == "points" else "images"
    if "npz" in fmt:
        extra = {"labels": labels} if labels is not None else {}
        path = out / OUTPUTS["npz"]
        checkpoint.atomic_write(path, lambda tmp: _savez(tmp, **{key: samples}, **extra))
        written["npz"] = str(path)
    if "png" in fmt:
        path = out / OUTPUTS["png"]
        if key == "images":
            monitor.save_png(monitor.tile(samples), path)
        else:
            monitor.plot_points(samples, samples, gan.critic, path, title="generated")
        written["png"] = str(path)
    return {"samples": samples, "written": written, "iteration": gan.iteration}


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
