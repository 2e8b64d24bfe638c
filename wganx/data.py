"""The dataset interface the training loop reads, and a background prefetcher.

Images cross into the core as NCHW float32 in [-1, 1]; 2-D toy data as (N, D) float32.
Shuffling uses the core's seeded ``numpy.random.Generator`` so that runs are repeatable
and two backends see the same batches.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple

import numpy as np

Batch = Tuple[np.ndarray, Optional[np.ndarray]]


class Dataset:
    """Something that yields an endless stream of ``(x, labels or None)`` batches."""

    kind: str = "image"
    sample_shape: tuple = ()
    num_classes: int = 0  # 0: unlabelled
    name: str = ""

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[Batch]:
        """An endless stream of batches seeded from ``rng`` (see :meth:`stream`)."""
        return self.stream(batch_size, int(rng.integers(2 ** 63)))

    def stream(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of a stream that depends only on ``seed``.

        Batch ``k`` can be found without replaying the ones before it, so a resumed run reads
        exactly the batches the uninterrupted run would have read.
        """
        raise NotImplementedError

    def share(self, batch_size: int, seed: int, start: int, index: int, count: int) -> Iterator[Batch]:
        """Share ``index`` of ``count`` (contiguous, as :func:`wganx.distributed.replica_slice`
        cuts it) of each batch of :meth:`stream`: what one of ``count`` data-parallel
        processes trains on. This default reads whole batches and slices them; a dataset that
        can read only its rows overrides it."""
        for x, y in self.stream(batch_size, seed, start):
            cut = slice(index * len(x) // count, (index + 1) * len(x) // count)
            yield x[cut], (None if y is None else y[cut])

    def __len__(self) -> int:
        raise NotImplementedError


class ArrayDataset(Dataset):
    """A finite dataset held in memory, reshuffled every epoch, last partial batch dropped.

    Images may be stored as uint8 NCHW (``scale="uint8"``) and converted batch by batch,
    which keeps CIFAR-10 at 150 MB instead of 600 MB.
    """

    def __init__(self, x: np.ndarray, labels: Optional[np.ndarray] = None, *, name: str = "",
                 num_classes: int = 0, kind: str = "image"):
        if len(x) == 0:
            raise ValueError(f"dataset {name!r} is empty")
        if labels is not None and len(labels) != len(x):
            raise ValueError(f"dataset {name!r}: {len(x)} samples but {len(labels)} labels")
        self.x, self.labels, self.name, self.kind = x, labels, name, kind
        self.num_classes = int(num_classes or (0 if labels is None else int(labels.max()) + 1))
        self.sample_shape = tuple(x.shape[1:])

    def __len__(self) -> int:
        return len(self.x)

    def convert(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.uint8:
            return x.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
        return x.astype(np.float32, copy=False)

    def _take(self, idx) -> Batch:
        y = None if self.labels is None else self.labels[idx].astype(np.int64)
        return self.convert(self.x[idx]), y

    def stream(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        return self.share(batch_size, seed, start, 0, 1)

    def share(self, batch_size: int, seed: int, start: int, index: int, count: int) -> Iterator[Batch]:
        """Reads only this share's rows: from a memory-mapped (prepared) dataset, each of
        ``count`` processes touches ``1 / count`` of every batch."""
        n = len(self.x)
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} exceeds the {n} samples of {self.name!r}")
        per_epoch = n // batch_size
        lo, hi = index * batch_size // count, (index + 1) * batch_size // count
        k = start
        while True:
            epoch, offset = divmod(k, per_epoch)
            order = np.random.default_rng([seed, epoch]).permutation(n)
            for j in range(offset, per_epoch):
                yield self._take(order[j * batch_size + lo:j * batch_size + hi])
            k = (epoch + 1) * per_epoch


@dataclass
class SamplerDataset(Dataset):
    """An endless distribution (the toy 2-D sets) drawn from the core's generator."""

    sample: Callable[[np.random.Generator, int], np.ndarray]
    name: str = ""
    dim: int = 2
    kind: str = "points"
    num_classes: int = 0

    @property
    def sample_shape(self) -> tuple:  # type: ignore[override]
        return (self.dim,)

    def __len__(self) -> int:
        return 0  # endless

    def stream(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        k = start
        while True:
            yield self.sample(np.random.default_rng([seed, k]), batch_size).astype(np.float32), None
            k += 1


class Prefetcher:
    """Runs an iterator on a daemon thread so the training step never waits on data.

    The order of batches is exactly the iterator's, so prefetching changes no number.
    """

    _DONE = object()

    def __init__(self, iterator: Iterator, depth: int = 4):
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterator,), daemon=True)
        self._thread.start()

    def _run(self, iterator):
        try:
            for item in iterator:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as exc:  # re-raised in the consumer
            self._error = exc
        self._queue.put(self._DONE)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._DONE:
            if self._error is not None:
                raise self._error
            raise StopIteration
        return item

    def close(self):
        self._stop.set()


def images_to_float(x) -> np.ndarray:
    """uint8 or float images, NCHW or NHWC -> NCHW float32 in [-1, 1]."""
    a = np.asarray(x)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim == 4 and a.shape[1] not in (1, 3) and a.shape[-1] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(a, np.float32)
