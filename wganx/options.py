"""The command-line options several commands share, and completion of plugin names.

Commands defined outside :mod:`wganx.cli` (``wganx evaluate``, a plugin's ``wganx bench``)
take their ``-c``, ``-d``, ``--threads`` ... from here, so that every command spells and
explains them alike.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Callable, List, Optional

import typer
from typing_extensions import Annotated

from .config import CONTEXTS, TrainConfig
from .errors import WganxError


def plugin_registry():
    from .plugins import registry

    return registry()


def plugin_names(kind: str) -> List[str]:
    try:
        return plugin_registry().names(kind)
    except WganxError:
        return []


def complete_plugin_names(kind: str) -> Callable[[str], List[str]]:
    """Shell completion of plugin names of ``kind``, from the registry."""
    def complete(incomplete: str) -> List[str]:
        return [n for n in plugin_names(kind) if n.startswith(incomplete)]
    return complete


def complete_choices(choices) -> Callable[[str], List[str]]:
    def complete(incomplete: str) -> List[str]:
        return [c for c in choices if c.startswith(incomplete)]
    return complete


Context = Annotated[str, typer.Option("-c", "--context", help="cpu, cuda or cudnn", autocompletion=complete_choices(CONTEXTS))]
DeviceId = Annotated[int, typer.Option("-d", "--device-id", help="GPU index")]
Threads = Annotated[int, typer.Option(  # the same help as train's --threads
    "--threads", help=next(f for f in fields(TrainConfig) if f.name == "threads").metadata["help"])]
RawWeights = Annotated[bool, typer.Option(
    "--raw-weights", help="sample the generator's own weights, not their moving average (--ema-decay)")]
Backend = Annotated[Optional[str], typer.Option("--backend", help="backend (default: the one that trained it)",
                                                autocompletion=complete_plugin_names("backend"))]
