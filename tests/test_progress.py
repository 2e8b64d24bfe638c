"""wganx.progress: what a run shows while it runs, in the style of where it runs. Driven
directly with a stream; the command's own log-file output is in test_cli.py."""
import io
from pathlib import Path

import pytest

from wganx import progress

LOSSES = {"critic_loss": -1.23456, "generator_loss": 0.5}


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_style_follows_where_it_runs_unless_chosen():
    assert progress.choose_style("auto", io.StringIO()) == "lines"  # a log file
    assert progress.choose_style("auto", Terminal()) == "bar"
    assert progress.choose_style("lines", Terminal()) == "lines"
    assert progress.in_notebook() is False


def test_lines_come_at_checkpoints_at_the_end_and_at_most_every_few_seconds():
    stream = io.StringIO()
    shown = progress.TrainingProgress(10, 0, stream=stream, every_s=3600, style="lines")
    shown.update(1, LOSSES)
    shown.update(2)
    shown.update(4, checkpoint=Path("run/params_000004.safetensors"))  # as the trainer passes it
    shown.update(10)
    shown.close()
    lines = stream.getvalue().splitlines()
    assert [ln.split()[2] for ln in lines] == ["4/10", "10/10"]
    assert lines[0].startswith("wganx: iteration 4/10  D -1.235  G 0.5  ") and "it/s" in lines[0]
    assert lines[0].endswith("wrote params_000004.safetensors") and "ETA" in lines[0] and "ETA" not in lines[1]


def test_a_resumed_run_counts_its_rate_from_where_it_resumed():
    shown = progress.TrainingProgress(1000, 900, stream=io.StringIO(), style="lines")
    shown._start -= 10.0  # ten seconds ago
    shown.update(950)
    assert shown.rate() == pytest.approx(5.0, rel=0.05)


def test_a_terminal_gets_a_bar_and_nothing_shows_when_disabled():
    terminal = Terminal()
    bar = progress.TrainingProgress(4, 0, stream=terminal, style="bar", description="train")
    bar.update(2, LOSSES, checkpoint="params_000002.safetensors")
    bar.close()
    assert "train" in terminal.getvalue() and "saved params_000002.safetensors" in terminal.getvalue()
    quiet = io.StringIO()
    off = progress.TrainingProgress(4, 0, stream=quiet, enabled=False)
    off.update(4, LOSSES, checkpoint="params_000004.safetensors")
    off.close()
    assert off.style == "off" and quiet.getvalue() == "" and off.checkpoint == "params_000004.safetensors"


def test_eta_reads_as_hours_minutes_seconds():
    assert [progress._eta(s) for s in (0, 59.9, 61, 3600 * 27 + 62, -5)] == [
        "0:00:00", "0:00:59", "0:01:01", "27:01:02", "0:00:00"]
