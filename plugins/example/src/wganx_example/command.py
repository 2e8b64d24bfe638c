"""``wganx conv-small-shapes``: a subcommand contributed by this plugin (``wganx_commands``).

It prints the parameter shapes ``conv-small`` builds for an image size and width, which is
what a user wants to know before training it. Its options come from the function's
parameters, annotated for typer; a WganxError becomes wganx's one-line error (exit 2).
"""
import typer
from typing_extensions import Annotated

import wganx
from wganx.errors import WganxError
from wganx.records import CommandSpec


def conv_small_shapes(image_size: Annotated[int, typer.Option("--image-size", help="height and width")] = 32,
                      maps: Annotated[int, typer.Option("--maps", help="feature maps of the widest layer")] = 64,
                      channels: Annotated[int, typer.Option("--channels", help="image channels")] = 3) -> int:
    """Print the parameter shapes of the conv-small generator and critic."""
    if maps < 1 or channels < 1:
        raise WganxError("--maps and --channels must be at least 1")
    arch = wganx.registry().get("architecture", "conv-small").build(
        wganx.ArchConfig(image_size=image_size, channels=channels, maps=maps, latent=128))
    for net, network in (("generator", arch.generator), ("critic", arch.critic)):
        total = 0
        for name, spec in network.params.items():
            count = 1
            for n in spec.shape:
                count *= n
            total += count
            print(f"{net}/{name}  {tuple(spec.shape)}")
        print(f"{net}: {total} parameters")
    return 0


SPEC = CommandSpec("conv-small-shapes", conv_small_shapes, help="Print the parameter shapes of conv-small.")
