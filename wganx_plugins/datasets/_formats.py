"""Readers for the published file formats, and the one resizing rule every loader shares."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from wganx.errors import WganxError

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path, md5: Optional[str] = None) -> np.ndarray:
    """Parse an IDX file (gzipped when its name ends in .gz), checking its payload's md5.

    The md5 is taken of the decompressed bytes so that a mirror that re-gzipped the file
    is accepted as long as the content is the published one.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                payload = f.read()
        else:
            payload = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise WganxError(f"{path} is damaged or truncated ({exc}); delete it and download it again")
    if len(payload) < 4 or payload[0] or payload[1] or payload[2] not in IDX_TYPES:
        raise WganxError(f"{path} is not an IDX file (magic number {payload[:4].hex() or 'missing'})")
    ndim, dtype = payload[3], np.dtype(IDX_TYPES[payload[2]])
    start = 4 + 4 * ndim
    if len(payload) < start:
        raise WganxError(f"{path} is truncated inside its header; delete it and download it again")
    dims = struct.unpack(f">{ndim}I", payload[4:start])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(payload) - start != expected:
        state = "truncated" if len(payload) - start < expected else "longer than its header says"
        raise WganxError(f"{path} is {state}: header says {'x'.join(map(str, dims))} "
                         f"({expected} bytes) but {len(payload) - start} bytes follow; "
                         "delete it and download it again")
    if md5 is not None:
        actual = hashlib.md5(payload).hexdigest()
        if actual != md5:
            raise WganxError(f"{path}: decompressed content has md5 {actual}, expected {md5} "
                             "(the official file); delete it and download it again")
    return np.frombuffer(payload, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


def gz_payload_md5(path: Path) -> Optional[str]:
    """md5 of a gzip file's decompressed bytes, or None when it is not valid gzip."""
    digest = hashlib.md5()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing that could run code.

    The CIFAR batches are pickles; they are checksummed before loading, and this is the
    second fence: a pickle naming any other callable is refused.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple:
    """One official CIFAR-10 batch (a pickled dict) -> (uint8 N x 3 x 32 x 32, int64 labels).

    Each row of ``b"data"`` is 1024 red, then 1024 green, then 1024 blue values, row-major.
    """
    try:
        with open(path, "rb") as f:
            entry = _ArrayUnpickler(f, encoding="bytes").load()
        data = np.asarray(entry[b"data"])
        labels = np.asarray(entry[b"labels"], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as exc:
        raise WganxError(f"{path} is not a CIFAR-10 batch ({exc!s})")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise WganxError(f"{path}: expected uint8 data of shape (N, 3072) and N labels, got "
                         f"{data.dtype} {data.shape} and {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def fit_image(image: Image.Image, size: Optional[int]) -> Image.Image:
    """Centre-crop to a square and resize to ``size`` x ``size`` (bilinear, antialiased when
    shrinking); returns ``image`` untouched when it already has that size or ``size`` is None."""
    if size is None or image.size == (size, size):
        return image
    w, h = image.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        image = image.crop((left, top, left + s, top + s))
    return image.resize((size, size), Image.BILINEAR)


def resize(x: np.ndarray, size: Optional[int]) -> np.ndarray:
    """NCHW uint8 or float32 images -> NCHW at ``size`` x ``size``, channel by channel."""
    if size is None or x.shape[-2:] == (size, size):
        return x
    if size < 1:
        raise WganxError(f"image size must be positive, got {size}")
    out = np.empty(x.shape[:2] + (size, size), x.dtype)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[i, c] = np.asarray(fit_image(Image.fromarray(x[i, c]), size))
    return out
