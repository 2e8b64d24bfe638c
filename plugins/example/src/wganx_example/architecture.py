"""``conv-small``: a small all-convolutional GAN for 8x8, 16x16, 32x32, ... images.

Generator: ``z`` (plus a label embedding when conditional) -> affine -> ``2 * maps`` x 4 x 4,
ReLU; then per doubling a nearest-neighbour 2x upsampling, a 3x3 convolution to ``maps``
and a ReLU; finally a 3x3 convolution to the image channels and ``tanh``.

Critic: a 3x3 convolution to ``maps``; then per halving a 3x3 convolution, leaky ReLU (0.2)
and 2x2 average pooling down to 4x4; finally an affine layer to one value, plus the
projection term ``<embed(y), h>`` of Miyato & Koyama (2018) when conditional.

There is no batch norm in either network, so the critic may be trained with any
gradient penalty, and the generator behaves the same in training and inference.
Everything is written against :class:`wganx.ops.Ops`, which makes it run unchanged on every
backend; its parameters are declared with :mod:`wganx.params`, so the core draws them from
its seeded generator and every backend starts from the same numbers.
"""
from __future__ import annotations

import math

from wganx.errors import WganxError
from wganx.params import affine, conv, embedding
from wganx.records import ArchConfig, Architecture, ArchitectureSpec, Network

NAME = "conv-small"
BASE = 4  # the generator starts from, and the critic ends at, 4x4
LABEL_DIM = 16
SLOPE = 0.2


def doublings(image_size: int) -> int:
    """How many 2x steps lead from 4x4 to ``image_size``; other sizes are refused.

    >>> doublings(8), doublings(16), doublings(32)
    (1, 2, 3)
    """
    steps = math.log2(image_size / BASE) if image_size > 0 else -1.0
    if steps < 1 or steps != int(steps):
        raise WganxError(f"architecture {NAME!r} cannot make {image_size}x{image_size} images; "
                         "choose an --image-size of 8, 16, 32, 64, ...")
    return int(steps)


def build(config: ArchConfig) -> Architecture:
    """The generator and critic of ``conv-small`` for ``config``."""
    if config.data_kind != "image":
        raise WganxError(f"architecture {NAME!r} models images, not {config.data_kind}")
    n = doublings(config.image_size)
    maps, channels, first = config.maps, config.channels, 2 * config.maps
    conditional = config.num_classes > 0

    # -- generator ------------------------------------------------------------------------
    g = {}
    in_dim = config.latent
    if conditional:
        g.update(embedding("label", config.num_classes, LABEL_DIM))
        in_dim += LABEL_DIM
    g.update(affine("project", in_dim, first * BASE * BASE))
    in_maps = first
    for i in range(n):
        g.update(conv(f"up-{i + 1}", in_maps, maps, 3))
        in_maps = maps
    g.update(conv("to-image", maps, channels, 3))

    def generator(ops, p, z, *, training, labels=None):
        h = z
        if labels is not None and "label/W" in p:
            h = ops.concat([h, ops.embedding(labels, p["label/W"])], axis=1)
        h = ops.affine(h, p["project/W"], p["project/b"])
        h = ops.relu(ops.reshape(h, (ops.shape(z)[0], first, BASE, BASE)))
        for i in range(n):
            h = ops.interpolate(h, 2, "nearest")
            h = ops.relu(ops.conv2d(h, p[f"up-{i + 1}/W"], p[f"up-{i + 1}/b"], pad=1))
        return ops.tanh(ops.conv2d(h, p["to-image/W"], p["to-image/b"], pad=1))

    # -- critic ---------------------------------------------------------------------------
    d = {}
    d.update(conv("from-image", channels, maps, 3))
    for i in range(n):
        d.update(conv(f"down-{i + 1}", maps, maps, 3))
    features = maps * BASE * BASE
    d.update(affine("out", features, 1))
    if conditional:
        d.update(embedding("projection", config.num_classes, features))

    def critic(ops, p, x, *, training, labels=None):
        h = ops.leaky_relu(ops.conv2d(x, p["from-image/W"], p["from-image/b"], pad=1), SLOPE)
        for i in range(n):
            h = ops.conv2d(h, p[f"down-{i + 1}/W"], p[f"down-{i + 1}/b"], pad=1)
            h = ops.avg_pool(ops.leaky_relu(h, SLOPE), 2)
        h = ops.flatten(h)
        out = ops.affine(h, p["out/W"], p["out/b"])
        if labels is not None and "projection/W" in p:
            out = out + ops.sum(ops.embedding(labels, p["projection/W"]) * h, axes=(1,), keepdims=True)
        return out

    return Architecture(generator=Network(g, generator), critic=Network(d, critic),
                        sample_shape=(channels, config.image_size, config.image_size))


SPEC = ArchitectureSpec(
    NAME, build, data_kinds=("image",), uses_upsampler=False,
    description="small all-conv GAN for 8x8/16x16/32x32 images, no batch norm (wganx-example-plugin)")
