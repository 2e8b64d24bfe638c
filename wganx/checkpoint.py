"""Checkpoints as safetensors: arrays only, never pickled code, written atomically.

A checkpoint holds the generator and critic weights, batch-norm running statistics, both
optimizers' state, the core's RNG state, the iteration and the resolved configuration
(JSON in the safetensors metadata). Names and layouts are canonical, so a checkpoint
written by any backend loads in any other. Writing goes to a temporary file in the same
folder, is flushed to disk, then renamed over the target: a kill at any moment leaves the
previous checkpoint intact and never a half-written one. A checkpoint whose arrays are not
all finite is never written, and one found on disk (written by something else) is refused.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .errors import WganxError
from .notices import notice

FORMAT_VERSION = 1
FORMAT = f"wganx-checkpoint-{FORMAT_VERSION}"
FORMAT_PATTERN = re.compile(r"^wganx-checkpoint-(\d+)$")
PATTERN = re.compile(r"^params_(\d+)\.safetensors$")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
TEMPORARY = re.compile(r"^\..+\.tmp$")  # what atomic_write leaves behind when killed mid-write
REQUIRED_META = ("iteration", "config", "sample_shape", "data_kind", "num_classes")
# Bumped when a setting keeps its name but changes what it computes; a checkpoint records the
# meaning it was written with, and an older one is read in today's names. 1 (wganx 0.1.0):
# ``up = "linear"`` was half-pixel, which is now ``bilinear``.
MEANING = 2


class NonFiniteError(WganxError):
    """Arrays that hold NaN or infinity, refused before they reach (or leave) a checkpoint."""


def name_for(iteration: int) -> str:
    return f"params_{iteration:06d}.safetensors"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, fsync, then rename onto ``path``.

    The file gets the mode ``open()`` would give it (0666 less the umask), not mkstemp's
    0600, so a shared results folder stays readable as its owner intends.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:  # name the file meant, not the temporary one
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def non_finite(arrays: Dict[str, np.ndarray]) -> List[str]:
    """Names of the arrays that hold a NaN or an infinity."""
    return [k for k, v in arrays.items() if not np.isfinite(v).all()]


def save(path, arrays: Dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``arrays`` and ``meta`` to ``path`` atomically; refuse non-finite arrays.

    Serialised in memory and written with Python's file calls, so a full disk or a
    read-only folder is an ``OSError`` with its errno, like every other write.
    """
    from safetensors.numpy import save as serialise

    # np.asarray keeps a 0-d counter 0-d (np.ascontiguousarray would make it shape (1,)).
    tensors = {k: np.asarray(v, dtype=np.float32, order="C") for k, v in arrays.items()}
    bad = non_finite(tensors)
    if bad:
        raise NonFiniteError(f"{len(bad)} of {len(tensors)} arrays are not finite ({', '.join(bad[:3])}"
                             f"{', ...' if len(bad) > 3 else ''}); {Path(path).name} was not written")
    meta = dict(meta, meaning=MEANING)
    blob = serialise(tensors, metadata={"format": FORMAT, "wganx": json.dumps(meta, sort_keys=True)})
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(blob))
    return Path(path)


def _version_tuple(version: str) -> tuple:
    return tuple(int(m) for m in re.findall(r"\d+", str(version).split("+")[0])[:3])


def _read_meta(path: Path, metadata: dict) -> dict:
    from . import __version__

    fmt = metadata.get("format")
    match = FORMAT_PATTERN.match(str(fmt))
    try:
        meta = json.loads(metadata.get("wganx", ""))
    except ValueError:
        meta = None
    written_by = meta.get("wganx", "?") if isinstance(meta, dict) else "?"
    if match and int(match.group(1)) > FORMAT_VERSION:
        raise WganxError(f"{path} is a wganx checkpoint of a newer format ({fmt}, written by wganx {written_by}); "
                         f"this wganx {__version__} reads {FORMAT} only: pip install --upgrade 'wganx>={written_by}'")
    if not match:
        raise WganxError(f"{path} is not a wganx checkpoint (format {fmt!r})")
    if not isinstance(meta, dict):
        raise WganxError(f"{path}: its wganx metadata is not valid JSON; the file is damaged")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise WganxError(f"{path}: its wganx metadata lacks {', '.join(missing)}; the file is damaged")
    if written_by != "?" and _version_tuple(written_by) > _version_tuple(__version__):
        notice(f"{path.name} was written by wganx {written_by}, newer than this {__version__}; "
               f"reading it as {FORMAT}")
    return _in_todays_names(meta, path)


def _in_todays_names(meta: dict, path: Path) -> dict:
    """``meta`` with its settings renamed to what they compute today (see :data:`MEANING`)."""
    if meta.get("meaning", 1) < 2 and isinstance(meta["config"], dict) and meta["config"].get("up") == "linear":
        meta = dict(meta, config=dict(meta["config"], up="bilinear"))
        notice(f"{path.name} was trained with wganx 0.1.0's half-pixel --up linear, which is now called "
               "bilinear (linear is the NNabla example's mapping): loading it as --up bilinear")
    return dict(meta, meaning=MEANING)


def load(path) -> Tuple[Dict[str, np.ndarray], dict]:
    """``(arrays, meta)``; a file that is not a readable, finite wganx checkpoint is a clear error."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise WganxError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        if f.read(8) == HDF5_SIGNATURE:
            raise WganxError(f"{path} is an HDF5 file, such as the NNabla example's params_N.h5; turn it into a "
                             "wganx checkpoint with: wganx import --format nnabla-h5 FILE.h5 --maps M --up UP "
                             "--latent L --output params_N.safetensors")
    try:
        arrays = {}
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            for key in f.keys():
                arrays[key] = f.get_tensor(key)
    except Exception as exc:
        raise WganxError(f"{path} is not a readable checkpoint ({exc})") from None
    meta = _read_meta(path, metadata)
    bad = non_finite(arrays)
    if bad:
        raise NonFiniteError(f"{path} holds non-finite values in {len(bad)} arrays ({', '.join(bad[:3])}): "
                             "it was written by a diverged run; use an earlier checkpoint")
    return arrays, meta


def by_iteration(folder, pattern: re.Pattern) -> List[Path]:
    """The files of ``folder`` whose names match ``pattern`` (its group 1 the iteration), oldest
    iteration first: by the number, since names sort ``params_1000000`` before ``params_999999``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoints(folder) -> List[Path]:
    """The ``params_*.safetensors`` files of ``folder``, oldest iteration first."""
    return by_iteration(folder, PATTERN)


def latest(folder) -> Optional[Path]:
    """The checkpoint with the highest iteration in ``folder``, or None."""
    found = checkpoints(folder)
    return found[-1] if found else None


def latest_loadable(folder) -> Tuple[Path, Dict[str, np.ndarray], dict]:
    """The newest checkpoint of ``folder`` that loads, as ``(path, arrays, meta)``.

    A newer one that does not load (truncated by a crash, damaged) is skipped with a
    notice naming it; none loadable is an error listing why each failed.
    """
    found = checkpoints(folder)
    if not found:
        raise WganxError(f"--resume: no checkpoint params_*.safetensors in {folder}")
    failures = []
    for path in reversed(found):
        try:
            arrays, meta = load(path)
        except WganxError as exc:
            failures.append(str(exc))
            notice(f"skipping {path.name}, which does not load: {exc}")
            continue
        return path, arrays, meta
    raise WganxError(f"--resume: none of the {len(found)} checkpoints in {folder} loads; the newest: {failures[0]}")


def check_compatible(arrays: Dict[str, np.ndarray], expected: Dict[str, tuple], path) -> None:
    """Refuse a checkpoint whose parameters do not fit the model, naming the first misfit."""
    for name, shape in expected.items():
        if name not in arrays:
            raise WganxError(f"checkpoint {path} has no parameter {name!r}: "
                             "it was written for another architecture or settings")
        if tuple(arrays[name].shape) != tuple(shape):
            raise WganxError(f"checkpoint {path}: parameter {name!r} has shape "
                             f"{tuple(arrays[name].shape)}, the model needs {tuple(shape)}")
