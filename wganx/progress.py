"""What a training run shows while it runs.

On a terminal: a rich progress bar with iterations per second, the time left, the latest
losses and the last checkpoint. In a Jupyter notebook: one line with a bar that updates in
place (an IPython display updated by its id, so the saved notebook keeps only its last
state; no widget library needed). Elsewhere (a CI log, ``nohup``, ``tee``) a bar's
carriage-return frames would fill the file, so the run prints a plain line instead at every
checkpoint and at most every ``every_s`` seconds in between. ``--progress-style`` chooses
one of these instead of guessing; ``--no-progress`` shows nothing.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, Optional


def _eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def in_notebook() -> bool:
    """True in a Jupyter kernel (IPython's ZMQ shell; Colab's is one too). IPython is only
    asked when something already imported it: a plain script does not pay for the import."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def choose_style(style: str, stream) -> str:
    """``bar``, ``lines`` or ``notebook`` for ``style`` (``auto`` guesses from where it runs)."""
    if style != "auto":
        return style
    if in_notebook():
        return "notebook"
    return "bar" if getattr(stream, "isatty", lambda: False)() else "lines"


class TrainingProgress:
    """Progress of one run from ``initial`` to ``total`` generator iterations, shown in
    ``style`` (``auto``, ``bar``, ``lines`` or ``notebook``)."""

    def __init__(self, total: int, initial: int, *, enabled: bool = True, stream=None, every_s: float = 10.0,
                 description: str = "wganx", style: str = "auto"):
        self.total, self.done, self.enabled = total, initial, enabled
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._start, self._start_iteration = time.perf_counter(), initial
        self._last_line = self._start
        self.losses: Dict[str, float] = {}
        self.checkpoint = ""
        self._bar = self._task = self._display = None
        self.style = choose_style(style, self.stream) if enabled else "off"
        if self.style == "bar":
            self._bar, self._task = self._rich_bar(description, initial)
        elif self.style == "notebook":
            self._display = NotebookLine(description)
            self.every_s = min(every_s, 0.5)

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

    def _text(self, saved: bool) -> str:
        rate = self.rate()
        eta = f"  ETA {_eta((self.total - self.done) / rate)}" if rate > 0 and self.done < self.total else ""
        parts = [f"iteration {self.done}/{self.total}", self._loss_text(), f"{rate:.2f} it/s{eta}"]
        if saved or self._display is not None and self.checkpoint:
            parts.append(f"wrote {self.checkpoint}")
        return "  ".join(p for p in parts if p)

    def _line(self, saved: bool) -> None:
        if self._display is not None:
            self._display.show(self.done / max(self.total, 1), self._text(saved))
            return
        print(f"wganx: {self._text(saved)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if self._display is not None:  # the last state, also when stopped between updates
            self._display.show(self.done / max(self.total, 1), self._text(False))
            self._display = None


class NotebookLine:
    """One output line of a notebook cell, replaced in place: an HTML bar and the text of a
    ``lines`` progress line (plain text where HTML is not shown)."""

    def __init__(self, description: str):
        try:
            from IPython.display import display
        except ImportError:
            from .errors import WganxError

            raise WganxError("--progress-style notebook needs IPython (a Jupyter kernel has it); "
                             "choose auto, bar or lines") from None
        self.description = description
        self._handle = display(_Html("", ""), display_id=True)

    def show(self, fraction: float, text: str) -> None:
        import html

        bar = f'<progress value="{fraction:.4f}" max="1" style="width: 12em; vertical-align: middle"></progress> '
        self._handle.update(_Html(f"<code>{html.escape(self.description)}</code> {bar}<code>{html.escape(text)}</code>",
                                  f"{self.description}: {text}"))


class _Html:
    def __init__(self, markup: str, text: str):
        self.markup, self.text = markup, text

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return self.text
