"""``wganx import`` and ``wganx export``: the NNabla WGAN-GP example's checkpoints in and out;
``wganx data``: datasets prepared once for fast training (:mod:`wganx_plugins.datasets.prepared`).
They are contributed through the command hook (``wganx_commands``) like any plugin's command, so
the core names neither the example, nor its file format, nor the prepared format."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from wganx import hookimpl
from wganx.errors import WganxError, check_choice
from wganx.records import CommandSpec

FORMATS = ("nnabla-h5",)
DATA_ACTIONS = ("prepare", "check")


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


def data(action: Annotated[str, typer.Argument(metavar="prepare|check")],
         source: Annotated[Path, typer.Argument(metavar="SOURCE",
                                                help="prepare: a folder of images, .zip, .h5, .npy or .npz; "
                                                     "check: a prepared folder")],
         output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="DIR",
                                                        help="the prepared folder to write")] = None,
         image_size: Annotated[Optional[int], typer.Option("--image-size", help="centre-crop and resize "
                                                           "images to this square size")] = None,
         split: Annotated[str, typer.Option("--split", help="a folder with train/ and test/: which")] = "train",
         key: Annotated[Optional[str], typer.Option("--key", help="HDF5/npz: the entry holding the samples")] = None,
         labels_key: Annotated[Optional[str], typer.Option("--labels-key", help="HDF5/npz: the entry "
                                                           "holding the labels")] = None,
         workers: Annotated[Optional[int], typer.Option("--workers", help="decoding processes "
                                                        "(default: one per core)")] = None,
         skip_bad: Annotated[bool, typer.Option("--skip-bad", help="leave out images that cannot be read "
                                                "(listed in the manifest) instead of stopping")] = False,
         overwrite: Annotated[bool, typer.Option("--overwrite", help="replace a prepared folder made from "
                                                 "another source or settings")] = False,
         progress: Annotated[bool, typer.Option("--progress/--no-progress", help="show a progress bar")] = True) -> int:
    """Prepare a dataset once for fast training (a folder of images, zip, HDF5, .npy/.npz), or check one."""
    from .datasets.prepared import describe, prepare, read_manifest, verify

    check_choice("ACTION", action, DATA_ACTIONS)
    if action == "check":
        print(f"{source}: intact, {describe(verify(source))}")
        return 0
    if output is None:
        raise WganxError("wganx data prepare needs -o DIR, the folder to write")
    folder, wrote = prepare(source, output, image_size=image_size, split=split, key=key, labels_key=labels_key,
                            workers=workers, skip_bad=skip_bad, overwrite=overwrite, progress=progress)
    manifest = read_manifest(folder)
    skipped = f"; {len(manifest['skipped'])} unreadable images left out (listed in its manifest)" \
        if manifest["skipped"] else ""
    fit = "--arch mlp" if manifest["kind"] == "points" else f"--image-size {manifest['shape'][-1]}"
    print(f"{'wrote' if wrote else 'up to date:'} {folder}: {describe(manifest)}{skipped}; "
          f"train with --dataset prepared --data-dir {folder} {fit}")
    return 0


@hookimpl
def wganx_commands():
    return [CommandSpec("import", import_checkpoint, help=import_checkpoint.__doc__),
            CommandSpec("export", export_checkpoint, help=export_checkpoint.__doc__),
            CommandSpec("data", data, help=data.__doc__)]
