"""What lands in ``--monitor-path``: the loss table and plot, image tiles, the progress GIF,
the 2-D critic landscape, and optional TensorBoard events."""
from __future__ import annotations

import csv
import functools
import io
import math
import re
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .checkpoint import atomic_write, by_iteration
from .notices import notice

LOSS_COLUMNS = ("iteration", "critic_loss", "generator_loss", "penalty", "negative_critic_loss",
                "wasserstein_estimate", "elapsed_s")


def sample_name(kind: str, iteration: int) -> str:
    """``fixed_000100.png``: the tile of the fixed latent batch (``kind`` "fixed") or of a fresh
    one ("train") at ``iteration``, six digits or more."""
    return f"{kind}_{iteration:06d}.png"


def sample_tiles(folder, kind: str = "fixed") -> List[Path]:
    """The ``kind`` tiles in ``folder`` (a run's ``samples``), oldest iteration first."""
    return by_iteration(folder, re.compile(rf"^{kind}_(\d+)\.png$"))


def new_figure(**kwargs):
    """A matplotlib figure that needs no pyplot: files are drawn with Agg whatever backend the
    user's session chose (pyplot would pick a GUI backend, and forcing Agg would switch a
    notebook off its inline one), and a notebook shows a figure returned to it inline."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _inline_figure_class()(**kwargs)
    FigureCanvasAgg(fig)
    return fig


@functools.lru_cache(maxsize=None)
def _inline_figure_class():
    from matplotlib.figure import Figure

    class InlineFigure(Figure):
        """A Figure with IPython's PNG display hook (pyplot's inline backend is not needed)."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=80)
            return buffer.getvalue()

    return InlineFigure


def save_figure(fig, path: Path, dpi: int = 100) -> Path:
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return Path(path)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """NCHW in [-1, 1] -> NHWC uint8 (the NNabla example's ``denormalize``)."""
    x = np.clip((np.asarray(images, np.float32) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return x.transpose(0, 2, 3, 1)


def tile(images: np.ndarray, columns: Optional[int] = None) -> np.ndarray:
    """A grid of NCHW images in [-1, 1] as one HWC (or HW) uint8 array, 1-pixel gutters."""
    x = to_uint8(images)
    n, h, w, c = x.shape
    cols = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    grid = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1, c), np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = x[i]
    return grid[..., 0] if c == 1 else grid


def save_png(array: np.ndarray, path: Path, scale: int = 1) -> Path:
    from PIL import Image

    img = Image.fromarray(array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    atomic_write(Path(path), lambda tmp: img.save(tmp, format="PNG"))
    return Path(path)


def save_gif(frames: List[Path], path: Path, ms_per_frame: int = 200) -> None:
    """The fixed latent batch evolving over training (the TF2 WGAN-LP example's animation)."""
    from PIL import Image

    if not frames:
        return
    images = [Image.open(f).convert("RGB") for f in frames]
    atomic_write(Path(path), lambda tmp: images[0].save(
        tmp, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0))


class LossLog:
    """``losses.csv`` (appended row by row, survives a crash) and ``losses.png``."""

    def __init__(self, folder: Path, resume_from: Optional[int] = None, extra: tuple = ()):
        self.path = Path(folder) / "losses.csv"
        #: the columns: :data:`LOSS_COLUMNS`, then ``extra`` (an augmented run's ``augment_p``, ...)
        self.columns = tuple(LOSS_COLUMNS) + tuple(extra)
        self.rows: List[Dict[str, float]] = []
        if resume_from is not None and self.path.exists():
            self.rows, damaged = read_loss_rows(self.path)
            self.rows = [r for r in self.rows if r["iteration"] <= resume_from]
            if damaged:
                notice(f"{self.path}: dropped {len(damaged)} damaged rows (line {', '.join(map(str, damaged[:3]))}"
                       f"{', ...' if len(damaged) > 3 else ''}), as a crash in mid-write leaves them")
        self._rewrite()

    def _rewrite(self):
        def write(tmp):
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(self.rows)
        atomic_write(self.path, write)

    def add(self, row: Dict[str, float]) -> None:
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)

    def plot(self, path: Optional[Path] = None) -> Optional[Path]:
        """``losses.png`` (:func:`loss_figure`)."""
        if not self.rows:
            return None
        return save_figure(loss_figure(self.rows), path or self.path.with_suffix(".png"))


def loss_figure(rows: List[Dict[str, float]]):
    """Negative critic loss (Wasserstein estimate) and generator loss, as the NNabla example
    plots; with ``--augment``, a third panel: the augmentation's ``p`` (ADA's, as it adapts)."""
    it = [r["iteration"] for r in rows]
    augmented = any("augment_p" in r for r in rows)
    fig = new_figure(figsize=(15 if augmented else 10, 3.6))
    axes = fig.subplots(1, 3 if augmented else 2)
    axes[0].plot(it, [r["negative_critic_loss"] for r in rows], lw=1, label="negative critic loss")
    if any("wasserstein_estimate" in r for r in rows):
        axes[0].plot(it, [r.get("wasserstein_estimate", np.nan) for r in rows], lw=1, alpha=0.7,
                     label="E[D(real)] - E[D(fake)]")
    axes[0].set_title("Negative critic loss")
    axes[0].legend(fontsize=8)
    axes[1].plot(it, [r["generator_loss"] for r in rows], lw=1, color="tab:orange")
    axes[1].set_title("Generator loss")
    if augmented:
        axes[2].plot(it, [r.get("augment_p", np.nan) for r in rows], lw=1, color="tab:green")
        axes[2].set_ylim(-0.02, 1.02)
        axes[2].set_title("Augmentation probability p")
    for ax in axes:
        ax.set_xlabel("generator iteration")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def read_loss_rows(path: Path):
    """``(rows, damaged line numbers)`` of a ``losses.csv``: a row that is cut short, holds
    text where a number belongs or NUL bytes (a crash in mid-append) is damaged, not fatal."""
    text = Path(path).read_text(errors="replace")
    lines = text.splitlines()
    header = next(csv.reader(lines[:1]), [])
    rows, damaged = [], []
    for number, line in enumerate(lines[1:], start=2):
        try:
            values = next(csv.reader([line.replace("\0", "")]))
            if len(values) != len(header) or not all(values):
                raise ValueError(line)
            row = {k: int(v) if k == "iteration" else float(v) for k, v in zip(header, values)}
            if not all(k in row for k in LOSS_COLUMNS):
                raise ValueError(line)
        except (ValueError, csv.Error, StopIteration):
            damaged.append(number)
            continue
        rows.append(row)
    return rows, damaged


def plot_points(fake: np.ndarray, real: np.ndarray, critic_grid, path: Path, title: str = "") -> Path:
    """``path``: :func:`points_figure` as a PNG."""
    return save_figure(points_figure(fake, real, critic_grid, title), path, dpi=80)


def points_figure(fake: np.ndarray, real: np.ndarray, critic_grid, title: str = ""):
    """Generated over real points, the critic's value as a contour (WGAN-GP paper, figure 1).
    Vectors of more than two dimensions show their first two, without the contour
    (``critic_grid`` None)."""
    lim = float(max(np.abs(real[:, :2]).max(), 1.0) * 1.3)
    fig = new_figure(figsize=(5, 5))
    ax = fig.subplots()
    if critic_grid is not None:
        ticks = np.linspace(-lim, lim, 64)
        gx, gy = np.meshgrid(ticks, ticks)
        grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
        values = np.asarray(critic_grid(grid)).reshape(gx.shape)
        ax.contourf(gx, gy, values, levels=20, cmap="viridis", alpha=0.8)
    ax.scatter(real[:, 0], real[:, 1 % real.shape[1]], s=3, c="orange", label="real")
    ax.scatter(fake[:, 0], fake[:, 1 % fake.shape[1]], s=3, c="white" if critic_grid is not None else "purple",
               edgecolors="none", label="generated")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


class TensorBoard:
    """Scalar summaries as TensorBoard event files (``--tensorboard``)."""

    def __init__(self, folder: Path):
        from .backend import prefer_python_protobuf

        prefer_python_protobuf()  # TensorBoard imports protobuf; TensorFlow may load after it
        try:
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.compat.proto.event_pb2 import Event
        except ImportError:
            from .errors import WganxError
            raise WganxError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        self._writer = EventFileWriter(str(Path(folder) / "tensorboard"))
        self._Summary, self._Event = Summary, Event

    def add(self, iteration: int, values: Dict[str, float]) -> None:
        summary = self._Summary(value=[self._Summary.Value(tag=k, simple_value=float(v))
                                       for k, v in values.items()])
        self._writer.add_event(self._Event(step=int(iteration), summary=summary))

    def close(self) -> None:
        self._writer.close()
