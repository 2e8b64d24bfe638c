"""``wganx import`` and ``wganx export``: the NNabla WGAN-GP example's checkpoints in and out,
contributed through the command hook (``wganx_commands``) like any plugin's command, so the
core names neither the example nor its file format (:mod:`wganx_plugins.nnabla_example`)."""
from __future__ import annotations

from pathlib import Path

import typer
from typing_extensions import Annotated

from wganx import hookimpl
from wganx.errors import check_choice
from wganx.records import CommandSpec

FORMATS = ("nnabla-h5",)


def import_checkpoint(source: Annotated[Path, typer.Argument(metavar="FILE.h5")],
                      output: Annotated[Path, typer.Option("-o", "--output", metavar="CKPT.safetensors")],
                      format: Annotated[str, typer.Option("--format", help="nnabla-h5")] = "nnabla-h5",
                      maps: Annotated[int, typer.Option("--maps", help="the example's --maps")] = 128,
                      up: Annotated[str, typer.Option("--up", help="nearest, linear, unpooling or deconv")] = "nearest",
                      latent: Annotated[int, typer.Option("--latent", help="the example's --latent")] = 128,
                      overwrite: Annotated[bool, typer.Option("--overwrite", help="replace --output")] = False) -> int:
    """Import the NNabla WGAN-GP example's params_N.h5 as a wganx nnabla-cifar checkpoint."""
    from .nnabla_example import import_command

    check_choice("--format", format, FORMATS)
    print(f"wrote {import_command(source, output, maps=maps, up=up, latent=latent, overwrite=overwrite)}")
    return 0


def export_checkpoint(source: Annotated[Path, typer.Argument(metavar="CKPT.safetensors")],
                      output: Annotated[Path, typer.Option("-o", "--output", metavar="FILE.h5")],
                      format: Annotated[str, typer.Option("--format", help="nnabla-h5")] = "nnabla-h5",
                      overwrite: Annotated[bool, typer.Option("--overwrite", help="replace --output")] = False) -> int:
    """Write an nnabla-cifar checkpoint as the NNabla example's params_N.h5 (its generate.py reads it)."""
    from .nnabla_example import export_command

    check_choice("--format", format, FORMATS)
    print(f"wrote {export_command(source, output, overwrite=overwrite)}")
    return 0


@hookimpl
def wganx_commands():
    return [CommandSpec("import", import_checkpoint, help=import_checkpoint.__doc__),
            CommandSpec("export", export_checkpoint, help=export_checkpoint.__doc__)]
