"""Registers ``wganx bench`` (the ``wganx_commands`` hook)."""
from wganx import hookimpl
from wganx.records import CommandSpec


@hookimpl
def wganx_commands():
    from . import harness

    return [CommandSpec("bench", harness.command, help="Measure training speed against plain hand-written loops.")]
