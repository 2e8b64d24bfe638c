"""Reading a prepared dataset against N: start-up, resident anonymous memory, images/s.

For each N, synthetic 64x64 RGB uint8 images are prepared (``wganx data prepare`` of a
``.npy``) under ``--work`` and deleted after; every measurement runs in a fresh subprocess
(so resident memory is that run's alone), on one thread (``OMP_NUM_THREADS=1``), from the page
cache (the file is read through once before timing). Compared:

* ``prepared``: ``--dataset prepared`` as a run opens it (registry loader, memory map) and its
  stream, batch 64, converted to float32 in [-1, 1]; also through the training loop's
  ``Prefetcher`` (a background thread);
* ``in-memory``: the same array loaded into memory (what every loader did before), as
  ``ArrayDataset`` (only for N small enough to hold);
* ``numpy``: a plain loop, a permutation and ``x[idx].astype(float32) / 127.5 - 1`` on the map;
* with ``--formats-max``: the same images in the field's formats, ``hdf5`` (StudioGAN's
  uint8 NCHW in h5py, gathered by sorted index) and ``zip-png`` (StyleGAN's stored zip of
  PNGs, decoded per batch).

Resident anonymous memory is ``RssAnon`` of ``/proc/self/status``; page-cache pages of the map
are the OS's and show in ``RssFile``. ``--zeros N`` prepares that N from a sparse all-zero
source (same bytes to read, half the disk while preparing) where disk is short.

    python benchmarks/data_reading.py --sizes 10000,100000,300000 --seconds 3
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SHAPE = (3, 64, 64)
BATCH = 64


def status(field: str) -> int:
    """A ``/proc/self/status`` entry in bytes (``RssAnon``, ``RssFile``, ``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def make_source(path: Path, n: int, zeros: bool) -> None:
    """A ``.npy`` of n random images (written in chunks), or a sparse all-zero one."""
    header = np.lib.format
    with open(path, "wb") as f:
        header.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (n,) + SHAPE})
        if zeros:
            f.truncate(f.tell() + n * int(np.prod(SHAPE)))
            return
        rng = np.random.default_rng(0)
        for start in range(0, n, 10_000):
            f.write(rng.integers(0, 256, (min(10_000, n - start),) + SHAPE, dtype=np.uint8).tobytes())


def warm(path: Path) -> float:
    """Read the file through once (into the page cache); returns GB/s."""
    start, size = time.perf_counter(), 0
    with open(path, "rb", buffering=0) as f:
        while True:
            block = f.read(1 << 24)
            if not block:
                break
            size += len(block)
    return size / 1e9 / (time.perf_counter() - start)


def rate(batches, seconds: float) -> tuple:
    """Images/s of an iterator of ``(x, y)`` over about ``seconds`` (after one batch)."""
    next(batches)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x, _ = next(batches)
        assert x.dtype == np.float32 and x.shape == (BATCH,) + SHAPE
        count += len(x)
    return count / (time.perf_counter() - start)


def measure(variant: str, folder: str, seconds: float) -> dict:
    """One variant in this (fresh) process; imports (about 0.15 s) come before the clock."""
    import wganx_plugins.datasets as ds
    from wganx.data import ArrayDataset, Prefetcher

    anon0 = status("RssAnon")
    start = time.perf_counter()
    if variant in ("prepared", "prefetched"):
        data = ds.load_split("prepared", folder, image_size=64)
        batches = data.stream(BATCH, 0)
        opened = time.perf_counter() - start
        next(batches)
        first = time.perf_counter() - start
        if variant == "prefetched":
            batches = Prefetcher(batches)
    elif variant == "in-memory":
        data = ArrayDataset(np.load(Path(folder) / "data.npy"))
        batches = data.stream(BATCH, 0)
        opened = time.perf_counter() - start
        next(batches)
        first = time.perf_counter() - start
    elif variant in ("hdf5", "zip-png"):  # the field's formats, read the way their loaders do
        batches = _other_format(variant, Path(folder))
        opened = time.perf_counter() - start
        next(batches)
        first = time.perf_counter() - start
    else:  # a plain numpy loop on the map
        x = np.load(Path(folder) / "data.npy", mmap_mode="r")

        def loop():
            for epoch in range(10 ** 9):
                order = np.random.default_rng([0, epoch]).permutation(len(x))
                for j in range(len(x) // BATCH):
                    yield x[order[j * BATCH:(j + 1) * BATCH]].astype(np.float32) / np.float32(127.5) - 1, None
        batches = loop()
        opened = time.perf_counter() - start
        next(batches)
        first = time.perf_counter() - start
    after_open = status("RssAnon")
    images_s = rate(batches, seconds)
    return {"variant": variant, "open_s": opened, "first_batch_s": first, "images_per_s": images_s,
            "rss_anon_start_mb": anon0 / 1e6, "rss_anon_open_mb": after_open / 1e6,
            "rss_anon_end_mb": status("RssAnon") / 1e6, "rss_file_end_mb": status("RssFile") / 1e6}


def write_other_formats(folder: Path) -> None:
    """The prepared images again as StudioGAN keeps them (HDF5, uint8 NCHW) and as StyleGAN
    does (a stored zip of PNGs), to compare reading them."""
    import io
    import zipfile

    import h5py
    from PIL import Image

    x = np.load(folder / "data.npy", mmap_mode="r")
    with h5py.File(folder / "data.h5", "w") as f:
        f.create_dataset("imgs", data=np.asarray(x))
    with zipfile.ZipFile(folder / "images.zip", "w", zipfile.ZIP_STORED) as z:
        for i in range(len(x)):
            buffer = io.BytesIO()
            Image.fromarray(np.asarray(x[i]).transpose(1, 2, 0)).save(buffer, "PNG")
            z.writestr(f"{i // 1000:05d}/img{i:08d}.png", buffer.getvalue())


def _other_format(variant: str, folder: Path):
    """Endless shuffled batches of 64 from ``data.h5`` (h5py wants increasing indices: read
    sorted, then put back in order) or from ``images.zip`` (decode each PNG)."""
    import zipfile

    import h5py
    from PIL import Image

    if variant == "hdf5":
        data = h5py.File(folder / "data.h5", "r")["imgs"]
        n = len(data)
    else:
        archive = zipfile.ZipFile(folder / "images.zip")
        names = sorted(archive.namelist())
        n = len(names)
    for epoch in range(10 ** 9):
        order = np.random.default_rng([0, epoch]).permutation(n)
        for j in range(n // BATCH):
            idx = order[j * BATCH:(j + 1) * BATCH]
            if variant == "hdf5":
                ranks = np.argsort(idx)
                rows = np.empty((BATCH,) + SHAPE, np.uint8)
                rows[ranks] = data[np.sort(idx)]
            else:
                rows = np.stack([np.asarray(Image.open(archive.open(names[i])).convert("RGB")).transpose(2, 0, 1)
                                 for i in idx])
            yield rows.astype(np.float32) / np.float32(127.5) - 1, None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,300000", help="comma-separated N")
    parser.add_argument("--zeros", default="", help="comma-separated N prepared from a sparse all-zero source")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per variant")
    parser.add_argument("--in-memory-max", type=int, default=100_000, help="largest N also loaded into memory")
    parser.add_argument("--formats-max", type=int, default=0, help="largest N also read as HDF5 (h5py) and as "
                        "a zip of PNGs (StyleGAN's layout); 0: neither")
    parser.add_argument("--work", default="/tmp/wganx-data-bench", help="scratch folder (deleted after)")
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)  # VARIANT FOLDER SECONDS (subprocess)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], float(args.measure[2]))))
        return 0
    from wganx_plugins.datasets.prepared import prepare

    zeros = {int(n) for n in args.zeros.split(",") if n}
    sizes = sorted({int(n) for n in args.sizes.split(",") if n} | zeros)
    work = Path(args.work)
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    print("| N | variant | open (s) | first batch (s) | images/s | RssAnon open / end (MB) | RssFile end (MB) |")
    print("|---|---|---|---|---|---|---|")
    try:
        for n in sizes:
            work.mkdir(parents=True, exist_ok=True)
            source, folder = work / f"source-{n}.npy", work / f"prepared-{n}"
            make_source(source, n, n in zeros)
            start = time.perf_counter()
            prepare(source, folder, progress=False)
            prepare_s = time.perf_counter() - start
            source.unlink()
            cache_gb_s = warm(folder / "data.npy")
            variants = ["prepared", "prefetched", "numpy"] + (["in-memory"] if n <= args.in_memory_max else [])
            if n <= args.formats_max:
                write_other_formats(folder)
                variants += ["hdf5", "zip-png"]
            for variant in variants:
                out = subprocess.run([sys.executable, __file__, "--measure", variant, str(folder), str(args.seconds)],
                                     capture_output=True, text=True, env=env, timeout=600)
                if out.returncode:
                    raise SystemExit(out.stderr[-2000:])
                row = dict(json.loads(out.stdout), n=n, prepare_s=prepare_s, warm_read_gb_s=cache_gb_s,
                           source="zeros" if n in zeros else "random")
                rows.append(row)
                print(f"| {n:,} | {variant} | {row['open_s']:.3f} | {row['first_batch_s']:.3f} | "
                      f"{row['images_per_s']:,.0f} | {row['rss_anon_open_mb']:.0f} / {row['rss_anon_end_mb']:.0f} | "
                      f"{row['rss_file_end_mb']:.0f} |", flush=True)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "cpus": os.cpu_count(),
                                               "loadavg": os.getloadavg()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
