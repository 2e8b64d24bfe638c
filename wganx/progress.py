"""What a training run shows while it runs.

On a terminal: a rich progress bar with iterations per second, the time left, the latest
losses and the last checkpoint. Elsewhere (a CI log, ``nohup``, ``tee``) a bar's
carriage-return frames would fill the file, so the run prints a plain line instead at every
checkpoint and at most every ``every_s`` seconds in between. ``--no-progress`` shows nothing.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, Optional


def _eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


class TrainingProgress:
    """Progress of one run from ``initial`` to ``total`` generator iterations."""

    def __init__(self, total: int, initial: int, *, enabled: bool = True, stream=None, every_s: float = 10.0,
                 description: str = "wganx"):
        self.total, self.done, self.enabled = total, initial, enabled
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._start, self._start_iteration = time.perf_counter(), initial
        self._last_line = self._start
        self.losses: Dict[str, float] = {}
        self.checkpoint = ""
        self._bar = self._task = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            self._bar, self._task = self._rich_bar(description, initial)

    def _rich_bar(self, description: str, initial: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                   TimeRemainingColumn)
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task):
                return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s")

        bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
                       TextColumn("{task.fields[losses]}"), TextColumn("{task.fields[checkpoint]}"),
                       console=Console(file=self.stream), transient=False)
        task = bar.add_task(description, total=self.total, completed=initial, losses="", checkpoint="")
        bar.start()
        return bar, task

    def rate(self) -> float:
        elapsed = time.perf_counter() - self._start
        return (self.done - self._start_iteration) / elapsed if elapsed > 0 else 0.0

    def _loss_text(self) -> str:
        if not self.losses:
            return ""
        return f"D {self.losses['critic_loss']:.4g}  G {self.losses['generator_loss']:.4g}"

    def update(self, iteration: int, losses: Optional[Dict[str, float]] = None, checkpoint=None) -> None:
        """Iteration ``iteration`` is done; ``losses`` when a row was logged, ``checkpoint``
        when one was written."""
        self.done = iteration
        if losses:
            self.losses = losses
        if checkpoint is not None:
            self.checkpoint = str(getattr(checkpoint, "name", checkpoint))
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=iteration, losses=self._loss_text(),
                             checkpoint=f"saved {self.checkpoint}" if self.checkpoint else "")
            return
        now = time.perf_counter()
        if checkpoint is not None or iteration == self.total or now - self._last_line >= self.every_s:
            self._line(checkpoint is not None)
            self._last_line = now

    def _line(self, saved: bool) -> None:
        rate = self.rate()
        eta = f"  ETA {_eta((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else ""
        parts = [f"wganx: iteration {self.done}/{self.total}", self._loss_text(), f"{rate:.2f} it/s{eta}"]
        if saved:
            parts.append(f"wrote {self.checkpoint}")
        print("  ".join(p for p in parts if p), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
