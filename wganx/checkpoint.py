"""Checkpoints as safetensors: arrays only, never pickled code, written atomically.

A checkpoint holds the generator and critic weights, batch-norm running statistics, both
optimizers' state, the core's RNG state, the iteration and the resolved configuration
(JSON in the safetensors metadata). Names and layouts are canonical, so a checkpoint
written by any backend loads in any other. Writing goes to a temporary file in the same
folder, is flushed to disk, then renamed over the target: a kill at any moment leaves the
previous checkpoint intact and never a half-written one.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from .errors import WganxError

FORMAT = "wganx-checkpoint-1"
PATTERN = re.compile(r"^params_(\d+)\.safetensors$")


def name_for(iteration: int) -> str:
    return f"params_{iteration:06d}.safetensors"


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(path, arrays: Dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and ``meta`` to ``path`` atomically."""
    from safetensors.numpy import save_file

    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    metadata = {"format": FORMAT, "wganx": json.dumps(meta, sort_keys=True)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=metadata))
    return Path(path)


def load(path) -> Tuple[Dict[str, np.ndarray], dict]:
    """``(arrays, meta)``; a file that is not a wganx checkpoint is a clear error."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WganxError(f"checkpoint {path} does not exist")
    try:
        arrays = {}
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                arrays[key] = f.get_tensor(key)
    except Exception as exc:
        raise WganxError(f"{path} is not a readable checkpoint ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise WganxError(f"{path} is not a wganx checkpoint (format {metadata.get('format')!r})")
    return arrays, json.loads(metadata["wganx"])


def latest(folder) -> Optional[Path]:
    """The checkpoint with the highest iteration in ``folder``, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PATTERN.match(p.name))]
    return max(found)[1] if found else None


def check_compatible(arrays: Dict[str, np.ndarray], expected: Dict[str, tuple], path) -> None:
    """Refuse a checkpoint whose parameters do not fit the model, naming the first misfit."""
    for name, shape in expected.items():
        if name not in arrays:
            raise WganxError(f"checkpoint {path} has no parameter {name!r}: "
                             "it was written for another architecture or settings")
        if tuple(arrays[name].shape) != tuple(shape):
            raise WganxError(f"checkpoint {path}: parameter {name!r} has shape "
                             f"{tuple(arrays[name].shape)}, the model needs {tuple(shape)}")
