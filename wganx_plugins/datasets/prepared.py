"""Prepared datasets: decoded once by ``wganx data prepare``, then memory-mapped by every run.

A prepared dataset is a folder::

    data.npy        the samples: uint8 NCHW images, or float32 (N, D) vectors
    labels.npy      int64 class labels (only for labelled data)
    manifest.json   format version, kind, count, shape, class names, file sizes and sha256s,
                    and the source's path and signature; written last

Why a raw ``.npy``: read through ``np.load(mmap_mode="r")`` it opens in constant time
whatever its size, a batch is one fancy-index gather straight from the page cache, and its
rows are exactly the uint8 NCHW array the in-memory loaders hold, so :class:`ArrayDataset`
reads it unchanged and every batch is bit-identical to the in-memory one of the same seed
(measured in ``benchmarks/data_reading.py``, 64x64, batch 64, one core, warm cache: 119,000
images/s, as fast as a plain numpy loop; the same images in h5py 36,000, as PNGs in a zip 3,900).
What the field's formats taught: StyleGAN's ``dataset_tool.py`` (one uncompressed zip of
PNGs, an optional ``dataset.json`` of labels) prepares once and keeps the labels beside the
pixels; StudioGAN's HDF5 stores decoded uint8 NCHW (no decoding per step), as here; LMDB
(rosinality) gives random access to encoded images, which still costs a decode per sample
per step. Unlike those, the manifest lets a run refuse a copy that is truncated, from a newer
wganx, or older than its source.

The whole folder is built beside its destination under a hidden name and renamed into place
at once, with the manifest written last inside it: an interrupted or failed prepare (a full
disk included) leaves nothing that looks complete.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from wganx.data import ArrayDataset
from wganx.errors import WganxError

FORMAT, VERSION = "wganx-prepared", 1
MANIFEST, DATA, LABELS = "manifest.json", "data.npy", "labels.npy"
HEADER_BYTES = 128  # every data.npy header has this length, so the row count can be rewritten
CHUNK = 256  # images a worker decodes per task


def is_prepared(path) -> bool:
    """Whether ``path`` is a folder that ``wganx data prepare`` finished writing."""
    return (Path(path).expanduser() / MANIFEST).is_file()


def prepared_kind(path) -> str:
    """``points`` or ``image``: what a prepared folder holds (``image`` for anything else,
    which the image loaders then read or refuse)."""
    try:
        return read_manifest(Path(path).expanduser())["kind"] if is_prepared(path) else "image"
    except WganxError:
        return "image"  # a damaged manifest is reported when the data is read


# -- reading ----------------------------------------------------------------------------------
def read_manifest(folder: Path) -> dict:
    """The manifest of ``folder``, checked for format and version (a one-line error otherwise)."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WganxError(f"{path} is damaged ({exc}); prepare the dataset again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WganxError(f"{path} is not a wganx prepared-dataset manifest")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise WganxError(f"{folder} was prepared by a newer wganx (format version {version}; this wganx reads "
                         f"up to {VERSION}): upgrade wganx, or prepare the source again with this one")
    return manifest


def _open_array(folder: Path, name: str, manifest: dict, shape: tuple, dtype: str) -> np.ndarray:
    """``folder/name`` memory-mapped, after checking its size and header against the manifest."""
    path, again = folder / name, f"prepare it again: {prepare_command(manifest, folder)}"
    expected = manifest["files"][name]["bytes"]
    try:
        size = path.stat().st_size
    except OSError:
        raise WganxError(f"{path} is missing; {again}") from None
    if size != expected:
        state = "truncated" if size < expected else "longer than its manifest says"
        raise WganxError(f"{path} is {state} ({size} bytes, expected {expected}); {again}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise WganxError(f"{path} is damaged ({exc}); {again}") from None
    if array.shape != shape or array.dtype != np.dtype(dtype):
        raise WganxError(f"{path} holds {array.dtype} {array.shape}, but its manifest says {dtype} {shape}; {again}")
    return array


def source_stamp(path: Path) -> Optional[str]:
    """A cheap fingerprint of a source that a run compares, in bounded time, to notice a source
    changed since it was prepared: a file's size and time of change; for a folder, the times of
    change of it and of its subfolders (of ``train/`` and ``test/``'s too), which change when
    images are added, removed or renamed in them. An image rewritten in place, or one deeper
    down, is caught by ``prepare``'s full signature only. None when the source is gone (the
    prepared copy then stands alone)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    parts = [f"{stat.st_size}:{stat.st_mtime_ns}"]
    if path.is_dir():
        folders = _subfolders(path)
        if {"train", "test"} <= {d.name for d in folders}:
            folders += [d for split in ("train", "test") for d in _subfolders(path / split)]
        parts += [f"{d.relative_to(path)}:{d.stat().st_mtime_ns}" for d in folders]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def _subfolders(folder: Path, most: int = 10_000) -> list:
    """The visible subfolders among the first ``most`` entries of ``folder`` (a folder of a
    million loose images is not listed to the end at every start)."""
    with os.scandir(folder) as entries:
        found = [Path(e.path) for _, e in zip(range(most), entries) if e.is_dir() and not e.name.startswith(".")]
    return sorted(found)


def open_prepared(data_dir, image_size: Optional[int] = None) -> ArrayDataset:
    """The prepared dataset in ``data_dir``, memory-mapped: constant time, no sample read.

    Its batches are :class:`ArrayDataset`'s, so equal to the in-memory loader's of the same
    source and seed. A run refuses a copy whose files do not match the manifest, or whose
    source changed since it was prepared (compared by :func:`source_stamp`).
    """
    folder = Path(data_dir).expanduser()
    manifest = read_manifest(folder)
    shape = (manifest["count"],) + tuple(manifest["shape"])
    kind = manifest["kind"]
    if kind == "image" and image_size is not None and tuple(shape[2:]) != (image_size, image_size):
        raise WganxError(f"{folder} was prepared at {shape[3]}x{shape[2]}; train with --image-size {shape[2]}, "
                         f"or prepare it again with --image-size {image_size}")
    source = manifest["source"]
    stamp = source_stamp(Path(source["path"]))
    if stamp is not None and stamp != source["stamp"]:
        raise WganxError(f"{source['path']} changed since {folder} was prepared; prepare it again: "
                         f"{prepare_command(manifest, folder)}")
    x = _open_array(folder, DATA, manifest, shape, manifest["dtype"])
    classes = manifest["class_names"]
    labels = _open_array(folder, LABELS, manifest, shape[:1], "int64") if manifest["labelled"] else None
    data = ArrayDataset(x, labels, name=str(folder), kind=kind, num_classes=len(classes))
    data.class_names = list(classes)
    return data


def prepare_command(manifest: dict, folder: Path) -> str:
    """The ``wganx data prepare`` command line that makes ``folder`` again from its source."""
    source, options = manifest["source"], []
    for flag, key in (("--image-size", "image_size"), ("--split", "split"), ("--key", "key"),
                      ("--labels-key", "labels_key")):
        if source.get(key) not in (None, "train"):
            options += [flag, str(source[key])]
    return " ".join(["wganx data prepare", source["path"], "-o", str(folder), *options, "--overwrite"])


# -- the sources ------------------------------------------------------------------------------
@dataclass
class Source:
    """What ``prepare`` reads: ``items`` named images to decode (folder, zip), or ``array``
    (HDF5, npy, npz) read in row ranges; ``labels`` and ``class_names`` when labelled."""

    format: str
    items: List[tuple] = field(default_factory=list)  # (path or member name, label)
    array: object = None
    layout: str = ""  # of ``array``: "NCHW", "NHWC", "NHW" (greyscale) or "ND" (vectors)
    labels: Optional[np.ndarray] = None
    class_names: List[str] = field(default_factory=list)
    closer: object = None


ARRAY_KEYS = ("images", "imgs", "data", "x", "X", "arr_0")
LABEL_KEYS = ("labels", "label", "y")


def source_format(path: Path) -> str:
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    formats = {".zip": "zip", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5", ".npy": "npy", ".npz": "npz"}
    if suffix not in formats or not path.is_file():
        raise WganxError(f"{path} is not a folder of images, a .zip, an HDF5 (.h5, .hdf5) or a .npy/.npz file")
    return formats[suffix]


def open_source(path: Path, fmt: str, split: str, key: Optional[str], labels_key: Optional[str]) -> Source:
    """The samples and labels of ``path``; a one-line error when expected entries are missing."""
    from . import folder_files

    if fmt == "folder":
        files, class_names = folder_files(path, split)
        return Source(fmt, [(str(p), label) for p, label in files], class_names=class_names,
                      labels=np.array([label for _, label in files], np.int64) if class_names else None)
    if fmt == "zip":
        return _zip_source(path)
    if fmt == "hdf5":
        try:
            import h5py
        except ImportError:
            raise WganxError("reading HDF5 needs h5py: pip install 'wganx[hdf5]'") from None
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise WganxError(f"{path} is not a readable HDF5 file ({exc})") from None
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        return _array_source(fmt, path, {n: f[n] for n in names}, key, labels_key, closer=f)
    if fmt == "npz":
        try:
            f = np.load(path, allow_pickle=False)
            arrays = {n: f[n] for n in f.files}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise WganxError(f"{path} is not a readable .npz file ({exc})") from None
        return _array_source(fmt, path, arrays, key, labels_key)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise WganxError(f"{path} is not a readable .npy file ({exc})") from None
    return _array_source(fmt, path, {"": array}, "", None)


def _zip_source(path: Path) -> Source:
    """StyleGAN's dataset zip: images anywhere inside, in name order; ``dataset.json`` with
    ``{"labels": [[name, label], ...]}`` (or ``null``) gives labels."""
    from . import IMAGE_EXTENSIONS

    suffixes = tuple(sorted(IMAGE_EXTENSIONS))
    try:
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if n.lower().endswith(suffixes)
                           and not os.path.basename(n).startswith("."))
            meta = json.loads(z.read("dataset.json")) if "dataset.json" in z.namelist() else {}
    except (OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise WganxError(f"{path} is not a readable zip of images ({exc})") from None
    if not names:
        raise WganxError(f"{path} holds no images ({', '.join(suffixes)})")
    pairs = (meta or {}).get("labels") if isinstance(meta, dict) else None
    if pairs is None:
        return Source("zip", [(n, 0) for n in names])
    try:
        by_name = {str(n): int(y) for n, y in pairs}
    except (TypeError, ValueError):
        raise WganxError(f"{path}: dataset.json's labels must be [[name, integer], ...]") from None
    missing = [n for n in names if n not in by_name]
    if missing:
        raise WganxError(f"{path}: dataset.json has no label for {missing[0]} ({len(missing)} images lack one)")
    labels = np.array([by_name[n] for n in names], np.int64)
    if labels.min() < 0:
        raise WganxError(f"{path}: dataset.json's labels must be 0 or more")
    return Source("zip", [(n, int(y)) for n, y in zip(names, labels)], labels=labels,
                  class_names=[str(c) for c in range(int(labels.max()) + 1)])


def _array_source(fmt: str, path: Path, arrays: dict, key, labels_key, closer=None) -> Source:
    """An array container (HDF5, npz, npy): the samples under ``key`` (or the one obvious
    entry), labels under ``labels_key`` (or ``labels``/``y`` when present)."""
    listed = ", ".join(sorted(arrays)) or "none"
    if key is None:
        candidates = [k for k in arrays if k.split("/")[-1] in ARRAY_KEYS] or \
            [k for k in arrays if k.split("/")[-1] not in LABEL_KEYS and len(arrays[k].shape) >= 2]
        if len(candidates) != 1:
            raise WganxError(f"{path}: which entry holds the samples? pass --key (its entries: {listed})")
        key = candidates[0]
    if key not in arrays:
        raise WganxError(f"{path} has no entry {key!r} (its entries: {listed})")
    array = arrays[key]
    shape, dtype = tuple(array.shape), np.dtype(array.dtype)
    where = f"{path}{f' [{key}]' if key else ''}"
    if len(shape) not in (2, 3, 4) or shape[0] == 0:
        raise WganxError(f"{where} has shape {shape}: expected (N, D) vectors, or uint8 images (N, C, H, W), "
                         "(N, H, W, C) or (N, H, W)")
    if len(shape) > 2 and dtype != np.uint8:
        raise WganxError(f"{where} holds {dtype} images; prepare reads images as uint8 (0 to 255)")
    if len(shape) == 2 and dtype.kind not in "fiu":
        raise WganxError(f"{where} holds {dtype}; vectors must be numbers")
    layout = {2: "ND", 3: "NHW"}.get(len(shape)) or ("NCHW" if shape[1] in (1, 3) else
                                                       "NHWC" if shape[3] in (1, 3) else "")
    if not layout:
        raise WganxError(f"{where} has shape {shape}: images must have 1 or 3 channels, first (N, C, H, W) "
                         "or last (N, H, W, C)")
    if labels_key is None:
        labels_key = next((k for k in arrays if k.split("/")[-1] in LABEL_KEYS and k != key), None)
    labels = class_names = None
    if labels_key is not None:
        if labels_key not in arrays:
            raise WganxError(f"{path} has no entry {labels_key!r} (its entries: {listed})")
        labels = np.asarray(arrays[labels_key][()])
        if labels.shape != (shape[0],) or labels.dtype.kind not in "iu" or (len(labels) and labels.min() < 0):
            raise WganxError(f"{path} [{labels_key}] holds {labels.dtype} {labels.shape}; labels must be "
                             f"{shape[0]} integers of 0 or more")
        labels = labels.astype(np.int64)
        class_names = [str(c) for c in range(int(labels.max()) + 1)]
    return Source(fmt, array=array, layout=layout, labels=labels, class_names=class_names or [], closer=closer)


def source_signature(path: Path, fmt: str) -> str:
    """What identifies a source's content: every image's name, size and time of change for a
    folder (:func:`folder_signature`), the file's size and time of change otherwise."""
    from . import folder_signature

    if fmt == "folder":
        return folder_signature(path)
    stat = path.stat()
    return hashlib.sha1(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


# -- decoding, in worker processes ------------------------------------------------------------
_ZIPS: dict = {}  # each worker's open zip files


def _reader(container: Optional[str], name: str):
    if container is None:
        return name
    z = _ZIPS.get(container)
    if z is None:
        z = _ZIPS[container] = zipfile.ZipFile(container)
    return io.BytesIO(z.read(name))


def _scan(task) -> list:
    """``(mode is RGB, (w, h))`` of each image from its header only, or the error's text."""
    from PIL import Image

    from . import _GRAY_MODES

    container, names = task
    out = []
    for name in names:
        try:
            with Image.open(_reader(container, name)) as im:
                out.append((im.mode not in _GRAY_MODES, im.size))
        except Exception as exc:  # noqa: BLE001  (reported by name in the parent)
            out.append(f"cannot read image {name} ({exc})")
    return out


def _decode(task) -> tuple:
    """A chunk of images as uint8 NCHW (as :func:`load_folder` decodes them), with the
    positions in the chunk that failed and why."""
    from . import image_array, open_image
    from ._formats import fit_image

    container, names, image_size, size, rgb, channels = task
    rows, bad = [], []
    for i, name in enumerate(names):
        try:
            im = fit_image(open_image(_reader(container, name), name), image_size)
            if im.size != size:
                raise WganxError(f"image {name} is {im.size[0]}x{im.size[1]}, unlike the others")
            rows.append(image_array(im, rgb))
        except (WganxError, OSError, zipfile.BadZipFile, KeyError) as exc:
            bad.append((i, str(exc)))
    x = np.stack(rows) if rows else np.empty((0, channels) + size[::-1], np.uint8)
    return x, bad


# -- writing ----------------------------------------------------------------------------------
def npy_header(shape: tuple, dtype) -> bytes:
    """A version-1.0 ``.npy`` header for C-ordered ``shape``, padded to :data:`HEADER_BYTES`
    so that rewriting it with a smaller count (images skipped) moves no data."""
    text = repr({"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(int(n) for n in shape)})
    body = text.encode("latin1")
    pad = HEADER_BYTES - 10 - len(body) - 1
    return b"\x93NUMPY\x01\x00" + (HEADER_BYTES - 10).to_bytes(2, "little") + body + b" " * pad + b"\n"


class _Writer:
    """Rows appended to a ``.npy`` file, the sha256 of its data taken on the way (one pass)."""

    def __init__(self, path: Path, row_shape: tuple, dtype, count: int):
        self.path, self.row_shape, self.dtype, self.count = path, row_shape, np.dtype(dtype), 0
        self.digest = hashlib.sha256()
        self.file = open(path, "wb")
        self.file.write(npy_header((count,) + row_shape, dtype))

    def write(self, rows: np.ndarray) -> None:
        data = memoryview(np.ascontiguousarray(rows, self.dtype)).cast("B")
        self.file.write(data)
        self.digest.update(data)
        self.count += len(rows)

    def finish(self) -> dict:
        """Rewrite the header with the rows written, fsync, close; ``{"bytes", "sha256"}``."""
        self.file.seek(0)
        self.file.write(npy_header((self.count,) + self.row_shape, self.dtype))
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return {"bytes": self.path.stat().st_size, "sha256": self.digest.hexdigest()}


def data_digest(path: Path) -> str:
    """sha256 of a ``.npy`` file's data, after its header (what the manifest records)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        fmt = np.lib.format
        read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
        read(f)  # moves f past the header
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_small(path: Path, array: np.ndarray) -> dict:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": path.stat().st_size, "sha256": data_digest(path)}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _progress(total: int, description: str, enabled: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


@dataclass
class Settings:
    """What a prepared copy was made from and how; the same settings and an unchanged
    source make a second ``prepare`` do nothing."""

    path: str
    format: str
    image_size: Optional[int] = None
    split: str = "train"
    key: Optional[str] = None
    labels_key: Optional[str] = None
    skip_bad: bool = False


def prepare(source, output, *, image_size: Optional[int] = None, split: str = "train", key: Optional[str] = None,
            labels_key: Optional[str] = None, workers: Optional[int] = None, skip_bad: bool = False,
            overwrite: bool = False, progress: bool = True) -> tuple:
    """Prepare ``source`` into the folder ``output``; returns ``(output, wrote)``, ``wrote``
    False when ``output`` already held this source prepared with these settings."""
    src = Path(source).expanduser().resolve()
    out = Path(output).expanduser().resolve()
    if not src.exists():
        raise WganxError(f"{src} does not exist")
    fmt = source_format(src)
    settings = Settings(str(src), fmt, image_size, split, key, labels_key, skip_bad)
    if image_size is not None and image_size < 1:
        raise WganxError(f"--image-size must be positive, got {image_size}")
    if out == src or src in out.parents:
        raise WganxError(f"-o {out} lies inside the source {src}; write the prepared copy elsewhere")
    signature, stamp = source_signature(src, fmt), source_stamp(src)  # before reading: a change while
    if out.exists():                                                    # preparing shows next time
        if _up_to_date(out, settings, signature, overwrite):
            return out, False
    data = open_source(src, fmt, split, key, labels_key)
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.mkdir()
        manifest = _write(data, src, partial, settings, workers, progress)
        manifest["source"].update(signature=signature, stamp=stamp)
        _save_manifest(partial, manifest)
        _fsync_dir(partial)
        _swap_in(partial, out)
    except OSError as exc:
        kept = "; the earlier copy is as it was" if is_prepared(out) else ""
        raise WganxError(f"writing {out} failed ({exc.strerror or exc}); nothing was kept{kept}") from None
    finally:
        if data.closer is not None:
            data.closer.close()
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return out, True


def _up_to_date(out: Path, settings: Settings, signature: str, overwrite: bool) -> bool:
    """True when ``out`` holds this source prepared alike; an error when it holds something
    else and ``overwrite`` is not set."""
    if not out.is_dir():
        raise WganxError(f"-o {out} exists and is not a folder; choose another -o")
    if not is_prepared(out):
        if any(out.iterdir()):
            raise WganxError(f"-o {out} is a folder that is not a prepared dataset; choose another -o")
        return False
    manifest = read_manifest(out)
    same = {k: v for k, v in manifest["source"].items() if k in settings.__dataclass_fields__} == vars(settings)
    if same and manifest["source"]["signature"] == signature and manifest["version"] == VERSION:
        try:
            open_prepared(out)  # sizes and headers: a damaged copy is not up to date
            return True
        except WganxError:
            if overwrite:
                return False
            raise
    if overwrite:
        return False
    why = f"{settings.path} changed since it was prepared" if same else \
        f"it holds {manifest['source']['path']} prepared with other settings"
    raise WganxError(f"{out} is a prepared dataset, but {why}; pass --overwrite to prepare it again")


def _swap_in(partial: Path, out: Path) -> None:
    """Rename the finished ``partial`` onto ``out``; an old copy is moved aside first and
    deleted after, so ``out`` is at every moment absent, the old copy or the new one."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(partial, out)
    _fsync_dir(out.parent)


def _save_manifest(folder: Path, manifest: dict) -> None:
    path = folder / MANIFEST
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise WganxError(f"the prepared copy needs {needed / 1e9:.2f} GB but {folder} has {free / 1e9:.2f} GB free")


def _write(data: Source, src: Path, folder: Path, settings: Settings, workers, progress: bool) -> dict:
    """Write ``data.npy`` (and ``labels.npy``) into ``folder``; returns the manifest."""
    if data.array is not None:
        x_info, kind, shape, dtype, bad = _write_array(data, folder, settings.image_size, progress)
    else:
        x_info, kind, shape, dtype, bad = _write_images(data, src, folder, settings, workers, progress)
    files = {DATA: x_info}
    skipped = []
    labels = data.labels
    if bad:  # [(index, why)] of images left out (--skip-bad): their names, and the labels of the rest
        keep = np.ones(len(data.items), bool)
        keep[[i for i, _ in bad]] = False
        skipped = [f"{data.items[i][0]}: {why}" for i, why in bad]
        labels = labels[keep] if labels is not None else None
    if labels is not None:
        files[LABELS] = _save_small(folder / LABELS, labels)
    from wganx import __version__

    return {"format": FORMAT, "version": VERSION, "kind": kind, "count": int(x_info["count"]),
            "shape": [int(n) for n in shape], "dtype": dtype, "labelled": labels is not None,
            "class_names": data.class_names if labels is not None else [],
            "files": {k: {"bytes": v["bytes"], "sha256": v["sha256"]} for k, v in files.items()},
            "source": vars(settings), "skipped": skipped, "wganx": __version__,
            "prepared": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _write_array(data: Source, folder: Path, image_size: Optional[int], progress: bool) -> tuple:
    """Copy an array source in row ranges (it may be larger than memory) as NCHW, resizing images."""
    from ._formats import resize

    array = data.array
    n, layout = array.shape[0], data.layout
    if layout == "ND":
        kind, dtype, shape = "points", "float32", tuple(array.shape[1:])
    else:
        kind, dtype = "image", "uint8"
        channels = {"NCHW": array.shape[1], "NHWC": array.shape[-1], "NHW": 1}[layout]
        hw = array.shape[2:] if layout == "NCHW" else array.shape[1:3]
        shape = (channels,) + ((image_size, image_size) if image_size else tuple(hw))
    _check_space(folder, n * int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer = _Writer(folder / DATA, shape, dtype, n)
    step = max(1, (64 << 20) // max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize))
    with writer.file, _progress(n, "preparing", progress) as bar:
        task = bar.add_task("rows", total=n)
        for start in range(0, n, step):
            rows = np.asarray(array[start:start + step])
            if kind == "points":
                rows = rows.astype(np.float32)
                if not np.isfinite(rows).all():
                    raise WganxError(f"row {start + int(np.flatnonzero(~np.isfinite(rows).all(1))[0])} of the "
                                     "source is not finite (NaN or inf); clean the data first")
            else:
                rows = rows[:, None] if layout == "NHW" else rows.transpose(0, 3, 1, 2) if layout == "NHWC" else rows
                rows = resize(rows, image_size)
            writer.write(rows)
            bar.update(task, advance=len(rows))
        info = writer.finish()
    return dict(info, count=writer.count), kind, shape, dtype, None


def _write_images(data: Source, src: Path, folder: Path, settings: Settings, workers, progress: bool) -> tuple:
    """Decode, centre-crop and resize every image in worker processes, in order."""
    container = str(src) if data.format == "zip" else None
    names = [name for name, _ in data.items]
    chunks = [names[i:i + CHUNK] for i in range(0, len(names), CHUNK)]
    with _workers(workers, len(chunks)) as pool:
        with _progress(len(names), "reading headers", progress) as bar:
            task = bar.add_task("headers", total=len(names))
            heads = []
            for result in _in_order(pool, _scan, [(container, c) for c in chunks]):
                heads += result
                bar.update(task, advance=len(result))
        bad = [(i, h) for i, h in enumerate(heads) if isinstance(h, str)]
        _refuse_bad(bad, settings.skip_bad)
        good = [h for h in heads if not isinstance(h, str)]
        if not good:
            raise WganxError(f"{src}: no image could be read")
        rgb = any(is_rgb for is_rgb, _ in good)
        size = (settings.image_size,) * 2 if settings.image_size else tuple(good[0][1])
        if settings.image_size is None:
            odd = next(((i, h[1]) for i, h in enumerate(heads) if not isinstance(h, str) and h[1] != size), None)
            if odd is not None:
                raise WganxError(f"image {names[odd[0]]} is {odd[1][0]}x{odd[1][1]} but the first is "
                                 f"{size[0]}x{size[1]}; pass --image-size to resize them all")
        channels = 3 if rgb else 1
        shape = (channels, size[1], size[0])
        _check_space(folder, len(good) * int(np.prod(shape)))
        skip = {i for i, _ in bad}
        writer = _Writer(folder / DATA, shape, np.uint8, len(good))
        with writer.file, _progress(len(names), "decoding", progress) as bar:
            task = bar.add_task("images", total=len(names))
            tasks = [(container, [n for j, n in enumerate(c, k * CHUNK) if j not in skip], settings.image_size, size,
                      rgb, channels)
                     for k, c in enumerate(chunks)]
            offsets = [[j for j in range(k * CHUNK, k * CHUNK + len(c)) if j not in skip] for k, c in enumerate(chunks)]
            for (x, failed), where in zip(_in_order(pool, _decode, tasks), offsets):
                if failed:
                    found = [(where[i], why) for i, why in failed]
                    _refuse_bad(found, settings.skip_bad)
                    bad += found
                writer.write(x)
                bar.update(task, advance=len(where))
            info = writer.finish()
    return dict(info, count=writer.count), "image", shape, "uint8", sorted(bad) if bad else None


def _workers(workers: Optional[int], tasks: int):
    """Worker processes, started fresh ("spawn": a fork of a process holding threads may
    deadlock); a worker that dies ends ``prepare`` with an error instead of a hang."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    count = max(1, min(workers or os.cpu_count() or 1, tasks))
    return ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))


def _in_order(pool, fn, tasks: list):
    """``fn`` of each task, in order, with a bounded number of tasks in flight (results wait
    for the writer in memory, so they must not pile up)."""
    from collections import deque
    from concurrent.futures.process import BrokenProcessPool

    pending, tasks = deque(), iter(tasks)
    window = 4 * pool._max_workers
    try:
        for task in tasks:
            pending.append(pool.submit(fn, task))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise WganxError("a decoding worker process died (out of memory?); nothing was kept") from None
    finally:
        for future in pending:
            future.cancel()


def _refuse_bad(bad: list, skip_bad: bool) -> None:
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise WganxError(f"{bad[0][1]}{more}; fix or remove it, or pass --skip-bad to leave such images out")


def verify(data_dir) -> dict:
    """Read every file of a prepared dataset and compare its sha256 with the manifest (what
    ``wganx data check`` runs; a run checks only sizes and headers, in constant time)."""
    folder = Path(data_dir).expanduser()
    manifest = read_manifest(folder)
    open_prepared(folder)  # sizes and headers first
    for name, info in manifest["files"].items():
        try:
            digest = data_digest(folder / name)
        except OSError as exc:
            raise WganxError(f"{folder / name} cannot be read ({exc.strerror}); prepare the dataset again") from None
        if digest != info["sha256"]:
            raise WganxError(f"{folder / name} is damaged (its sha256 differs from the manifest's); "
                             f"prepare the dataset again: {prepare_command(manifest, folder)}")
    return manifest


def describe(manifest: dict) -> str:
    shape = "x".join(map(str, manifest["shape"]))
    classes = f", {len(manifest['class_names'])} classes" if manifest["labelled"] else ""
    return f"{manifest['count']:,} {manifest['kind']} samples of {shape} {manifest['dtype']}{classes}"
