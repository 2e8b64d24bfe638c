"""Subcommands that wganx ships as plugins, registered like a third party's would be."""
from wganx import hookimpl
from wganx.records import CommandSpec


@hookimpl
def wganx_commands():
    from wganx import bench

    return [CommandSpec("bench", bench.command, help="Measure training speed against plain hand-written loops.")]
