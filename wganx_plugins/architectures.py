"""Generators and critics, written once against the neutral ops.

* ``nnabla-cifar``: the NNabla example's models exactly (NNabla's ``GANs/wgan-gp/models.py``),
  including what its comments get wrong: the critic's 3x3 convolutions have no padding, so
  a 32x32 input shrinks 32 -> 30 -> 15 -> 13 -> 6 -> 4 -> 2, and its leaky ReLU slope is 0.01.
* ``dcgan``: giakou4/gans' layer tables (critic with instance norm, generator with transposed
  convolutions and batch norm) at 64x64, and the same pattern at 32x32 (one block fewer).
* ``mlp``: the TF1 WGAN example's MLP for images, and the 3x512 ReLU MLP of the WGAN-GP paper's toy
  experiments for 2-D points (``--maps`` is the width).
* ``resnet``: the WGAN-GP paper's CIFAR-10 ResNet (``gan_cifar_resnet.py``): residual
  up-blocks in the generator, mean-pool down-blocks in the critic, no normalisation in the
  critic unless ``critic_norm="layer"`` (layer norm) or ``"spectral"`` (every critic weight
  spectrally normalised, Miyato et al. 2018, one power iteration per step). Its
  up-convolution is the chosen ``--up`` block (the NNabla example's order: convolve, then upsample).

Every parameter is created by the core with NNabla's default Glorot-uniform initialiser.
With ``num_classes > 0`` the generator concatenates a label embedding to ``z`` and the critic
adds a projection term (Miyato & Koyama 2018): class-conditional training, giakou4/gans' WCGAN.
"""
import math

from wganx import hookimpl
from wganx.errors import WganxError
from wganx.params import affine, conv, deconv, embedding, norm, spectral
from wganx.records import Architecture, ArchitectureSpec, Network

LABEL_DIM = 32  # size of the label embedding concatenated to z
RESNET_CRITIC_NORMS = ("none", "layer", "spectral")


# -- shared pieces ------------------------------------------------------------------------
def _doublings(arch, image_size, start=4, least=1):
    """How many 2x steps lead from ``start`` to ``image_size``; refuse other sizes."""
    steps = math.log2(image_size / start) if image_size > 0 else -1
    if steps < least or steps != int(steps):
        sizes = ", ".join(str(start * 2 ** k) for k in range(least, least + 4))
        raise WganxError(f"architecture {arch!r} cannot make {image_size}x{image_size} images; "
                         f"choose an --image-size of {sizes}, ...")
    return int(steps)


def _generator_input_params(config):
    if not config.num_classes:
        return {}, config.latent
    return embedding("label", config.num_classes, LABEL_DIM), config.latent + LABEL_DIM


def _generator_input(ops, p, z, labels):
    if labels is None or "label/W" not in p:
        return z
    return ops.concat([z, ops.embedding(labels, p["label/W"])], axis=1)


def _projection_params(config, features):
    return embedding("projection", config.num_classes, features) if config.num_classes else {}


def _critic_output(ops, p, h, labels, name="out"):
    """Final affine, plus the projection ``<embed(y), h>`` for conditional critics."""
    h = ops.flatten(h)
    out = ops.affine(h, p[f"{name}/W"], p[f"{name}/b"])
    if labels is not None and "projection/W" in p:
        out = out + ops.sum(ops.embedding(labels, p["projection/W"]) * h, axes=(1,), keepdims=True)
    return out


def _bn(ops, p, name, x, training):
    return ops.batch_norm(x, p[f"{name}/gamma"], p[f"{name}/beta"], p[f"{name}/mean"],
                          p[f"{name}/var"], training=training)


def _conv(ops, p, name, x, **kw):
    return ops.conv2d(x, p[f"{name}/W"], p.get(f"{name}/b"), **kw)


def _spectral_params(specs):
    """A power-iteration vector for every conv and affine weight among ``specs``."""
    return {k: v for name, spec in specs.items() if name.endswith("/W")
            for k, v in spectral(name[:-2], spec.shape[0]).items()}


def _spectrally_normalized(ops, p, training):
    """``p`` with each weight that has a ``u`` divided by its largest singular value."""
    if not any(name.endswith("/u") for name in p):
        return p
    q = dict(p)
    for name in p:
        if name.endswith("/u"):
            layer = name[:-2]
            q[f"{layer}/W"] = ops.spectral_norm(p[f"{layer}/W"], p[name], training=training)
    return q


def _require_upsampler(config, arch):
    if config.up is None:
        raise WganxError(f"architecture {arch!r} needs an upsampler (--up)")
    return config.up


# -- nnabla-cifar (the NNabla example) -----------------------------------------------------------------
def _nnabla_cifar(config):
    up = _require_upsampler(config, "nnabla-cifar")
    n_up = _doublings("nnabla-cifar", config.image_size)
    maps, s = config.maps, 4
    first = maps * 2 ** (n_up - 1)  # the NNabla example at 32x32: maps * 4, then maps * 4, 2, 1
    g = {}
    in_params, in_dim = _generator_input_params(config)
    g.update(in_params)
    g.update(affine("project", in_dim, first * s * s))
    g.update(norm("project/bn", first, running_stats=True))
    blocks, in_maps = [], first
    for i in range(n_up):
        name = f"convblock-{i + 1}"
        specs, out_maps = up.params(name, in_maps, maps * 2 ** (n_up - 1 - i))
        g.update(specs)
        g.update(norm(f"{name}/bn", out_maps, running_stats=True))
        blocks.append(name)
        in_maps = out_maps
    g.update(conv("to-RGB", in_maps, config.channels, 3))

    def generator(ops, p, z, *, training, labels=None):
        h = ops.affine(_generator_input(ops, p, z, labels), p["project/W"], p["project/b"])
        h = ops.reshape(h, (ops.shape(z)[0], first, s, s))
        h = ops.relu(_bn(ops, p, "project/bn", h, training))
        for name in blocks:
            h = ops.relu(_bn(ops, p, f"{name}/bn", up.apply(ops, p, name, h), training))
        return ops.tanh(_conv(ops, p, "to-RGB", h, pad=1))

    size, d, in_maps = config.image_size, {}, config.channels
    for i, mult in enumerate((1, 2, 4)):
        d.update(conv(f"conv-{i + 1}", in_maps, maps * mult, 3))
        in_maps, size = maps * mult, (size - 2) // 2
    if size < 1:
        raise WganxError(f"architecture 'nnabla-cifar' needs --image-size of at least 22 for its "
                         f"critic (three unpadded 3x3 convs with 2x2 pooling); got {config.image_size}")
    features = in_maps * size * size
    d.update(affine("out", features, 1))
    d.update(_projection_params(config, features))

    def critic(ops, p, x, *, training, labels=None):
        h = x
        for i in range(3):
            h = ops.leaky_relu(ops.avg_pool(_conv(ops, p, f"conv-{i + 1}", h), 2), 0.01)
        return _critic_output(ops, p, h, labels)

    return Architecture(Network(g, generator, has_batch_norm=True), Network(d, critic),
                        (config.channels, config.image_size, config.image_size))


# -- dcgan (giakou4/gans) --------------------------------------------------------------------
def _dcgan(config):
    n = _doublings("dcgan", config.image_size, least=2)  # 64x64: 4 blocks each way
    maps = config.maps
    g = {}
    in_params, in_dim = _generator_input_params(config)
    g.update(in_params)
    g_maps = [maps * 2 ** (n - i) for i in range(n)]  # 64x64, maps 64: 1024, 512, 256, 128
    g.update(deconv("deconv-1", in_dim, g_maps[0], 4, bias=False))
    g.update(norm("deconv-1/bn", g_maps[0], running_stats=True))
    for i in range(1, n):
        g.update(deconv(f"deconv-{i + 1}", g_maps[i - 1], g_maps[i], 4, bias=False))
        g.update(norm(f"deconv-{i + 1}/bn", g_maps[i], running_stats=True))
    g.update(deconv("to-image", g_maps[-1], config.channels, 4))

    def generator(ops, p, z, *, training, labels=None):
        h = _generator_input(ops, p, z, labels)
        h = ops.reshape(h, (ops.shape(z)[0], ops.shape(h)[1], 1, 1))
        h = ops.deconv2d(h, p["deconv-1/W"])  # 1x1 -> 4x4
        h = ops.relu(_bn(ops, p, "deconv-1/bn", h, training))
        for i in range(1, n):
            h = ops.deconv2d(h, p[f"deconv-{i + 1}/W"], stride=2, pad=1)
            h = ops.relu(_bn(ops, p, f"deconv-{i + 1}/bn", h, training))
        return ops.tanh(ops.deconv2d(h, p["to-image/W"], p["to-image/b"], stride=2, pad=1))

    d_maps = [maps * 2 ** i for i in range(n)]  # maps 64: 64, 128, 256, 512
    d, in_maps = {}, config.channels
    for i, out_maps in enumerate(d_maps):
        d.update(conv(f"conv-{i + 1}", in_maps, out_maps, 4, bias=(i == 0)))
        if i > 0:
            d.update(norm(f"conv-{i + 1}/in", out_maps))
        in_maps = out_maps
    d.update(conv("out", in_maps, 1, 4))  # 4x4 -> 1x1
    d.update(_projection_params(config, in_maps * 16))

    def critic(ops, p, x, *, training, labels=None):
        h = x
        for i in range(n):
            h = _conv(ops, p, f"conv-{i + 1}", h, stride=2, pad=1)
            if i > 0:
                h = ops.instance_norm(h, p[f"conv-{i + 1}/in/gamma"], p[f"conv-{i + 1}/in/beta"])
            h = ops.leaky_relu(h, 0.2)
        out = ops.flatten(_conv(ops, p, "out", h))
        if labels is not None and "projection/W" in p:
            flat = ops.flatten(h)
            out = out + ops.sum(ops.embedding(labels, p["projection/W"]) * flat, axes=(1,), keepdims=True)
        return out

    return Architecture(Network(g, generator, has_batch_norm=True), Network(d, critic),
                        (config.channels, config.image_size, config.image_size))


# -- mlp (the TF1 WGAN example; the WGAN-GP paper's toy experiments) ------------------------
# What the MLPs train best with in a short budget, measured on the toys and on MNIST on all
# three backends (docs/results/quality.md, quality-paper.md): Adam lr 1e-3 decaying linearly
# to 0, and samples from a moving average of the generator (decay 0.99). Against the paper's
# constant 1e-4: 8gaussians' high-quality share 0.78-0.79 -> 0.95-0.96 in 5,000 iterations;
# MNIST's domain FID 22.9-23.8 -> 6.9-7.4 in 1,500; the average holds 25gaussians' target
# (25/25, share 0.8) from iteration 4,000 instead of 11,000-18,000.
MLP_DEFAULTS = {"lrg": 1e-3, "lrd": 1e-3, "lr_decay": "linear", "ema_decay": 0.99}
MLP_DEPTH = 3


def _mlp(config):
    points = config.data_kind == "points"
    shape = (config.data_dim,) if points else (config.channels, config.image_size, config.image_size)
    out_dim = int(math.prod(shape))
    width = config.maps
    g = {}
    in_params, in_dim = _generator_input_params(config)
    g.update(in_params)
    dims = [in_dim] + [width] * MLP_DEPTH
    for i in range(MLP_DEPTH):
        g.update(affine(f"fc-{i + 1}", dims[i], dims[i + 1]))
    g.update(affine("out", width, out_dim))

    def generator(ops, p, z, *, training, labels=None):
        h = _generator_input(ops, p, z, labels)
        for i in range(MLP_DEPTH):
            h = ops.relu(ops.affine(h, p[f"fc-{i + 1}/W"], p[f"fc-{i + 1}/b"]))
        h = ops.affine(h, p["out/W"], p["out/b"])
        if points:
            return h  # the toy generator's output is linear
        return ops.tanh(ops.reshape(h, (ops.shape(z)[0],) + shape))

    d = {}
    dims = [out_dim] + [width] * MLP_DEPTH
    for i in range(MLP_DEPTH):
        d.update(affine(f"fc-{i + 1}", dims[i], dims[i + 1]))
    d.update(affine("out", width, 1))
    d.update(_projection_params(config, width))

    def critic(ops, p, x, *, training, labels=None):
        h = x
        for i in range(MLP_DEPTH):
            h = ops.relu(ops.affine(h, p[f"fc-{i + 1}/W"], p[f"fc-{i + 1}/b"]))
        return _critic_output(ops, p, h, labels)

    return Architecture(Network(g, generator), Network(d, critic), shape)


# -- resnet (WGAN-GP paper, CIFAR-10) ----------------------------------------------------------
def _resnet(config):
    up = _require_upsampler(config, "resnet")
    n_up = _doublings("resnet", config.image_size)
    maps, layer_norm = config.maps, config.critic_norm == "layer"
    g = {}
    in_params, in_dim = _generator_input_params(config)
    g.update(in_params)
    g.update(affine("project", in_dim, maps * 16))
    for i in range(n_up):
        b = f"up-{i + 1}"
        g.update(conv(f"{b}/shortcut", maps, maps, 1))
        g.update(norm(f"{b}/bn-1", maps, running_stats=True))
        specs, up_maps = up.params(f"{b}/upconv", maps, maps)
        g.update(specs)
        g.update(norm(f"{b}/bn-2", up_maps, running_stats=True))
        g.update(conv(f"{b}/conv", up_maps, maps, 3))
    g.update(norm("out/bn", maps, running_stats=True))
    g.update(conv("to-RGB", maps, config.channels, 3))

    def generator(ops, p, z, *, training, labels=None):
        h = ops.affine(_generator_input(ops, p, z, labels), p["project/W"], p["project/b"])
        h = ops.reshape(h, (ops.shape(z)[0], maps, 4, 4))
        for i in range(n_up):
            b = f"up-{i + 1}"
            shortcut = _conv(ops, p, f"{b}/shortcut", ops.interpolate(h, 2, "nearest"))
            r = ops.relu(_bn(ops, p, f"{b}/bn-1", h, training))
            r = ops.relu(_bn(ops, p, f"{b}/bn-2", up.apply(ops, p, f"{b}/upconv", r), training))
            h = shortcut + _conv(ops, p, f"{b}/conv", r, pad=1)
        h = ops.relu(_bn(ops, p, "out/bn", h, training))
        return ops.tanh(_conv(ops, p, "to-RGB", h, pad=1))

    d = {}
    # Optimised first block, one down block, two plain blocks (gan_cifar_resnet.py).
    d.update(conv("block-1/conv-1", config.channels, maps, 3))
    d.update(conv("block-1/conv-2", maps, maps, 3))
    d.update(conv("block-1/shortcut", config.channels, maps, 1))
    for i, down in ((2, True), (3, False), (4, False)):
        b = f"block-{i}"
        if layer_norm:
            d.update(norm(f"{b}/ln-1", maps))
            d.update(norm(f"{b}/ln-2", maps))
        d.update(conv(f"{b}/conv-1", maps, maps, 3))
        d.update(conv(f"{b}/conv-2", maps, maps, 3))
        if down:
            d.update(conv(f"{b}/shortcut", maps, maps, 1))
    d.update(affine("out", maps, 1))
    if config.critic_norm == "spectral":
        d.update(_spectral_params(d))
    d.update(_projection_params(config, maps))

    def critic(ops, p, x, *, training, labels=None):
        p = _spectrally_normalized(ops, p, training)
        shortcut = _conv(ops, p, "block-1/shortcut", ops.avg_pool(x, 2))
        r = ops.relu(_conv(ops, p, "block-1/conv-1", x, pad=1))
        h = shortcut + ops.avg_pool(_conv(ops, p, "block-1/conv-2", r, pad=1), 2)
        for i, down in ((2, True), (3, False), (4, False)):
            b = f"block-{i}"
            r = h
            for j in (1, 2):
                if layer_norm:
                    r = ops.layer_norm(r, p[f"{b}/ln-{j}/gamma"], p[f"{b}/ln-{j}/beta"])
                r = _conv(ops, p, f"{b}/conv-{j}", ops.relu(r), pad=1)
            if down:
                h = ops.avg_pool(_conv(ops, p, f"{b}/shortcut", h), 2) + ops.avg_pool(r, 2)
            else:
                h = h + r
        h = ops.mean(ops.relu(h), axes=(2, 3))  # global mean pooling
        return _critic_output(ops, p, h, labels)

    return Architecture(Network(g, generator, has_batch_norm=True), Network(d, critic),
                        (config.channels, config.image_size, config.image_size))


ARCHITECTURES = [
    ArchitectureSpec("nnabla-cifar", _nnabla_cifar, ("image",), True,
                     "the NNabla example's generator (affine, 3 upsampling blocks, BN) and critic (3 conv+pool)"),
    ArchitectureSpec("dcgan", _dcgan, ("image",), False,
                     "giakou4/gans' DCGAN tables: instance-norm critic, transposed-conv BN generator"),
    ArchitectureSpec("mlp", _mlp, ("image", "points"), False,
                     "ReLU MLPs: the TF1 WGAN example's MLP for images, the WGAN-GP toy 3x512 for 2-D data",
                     defaults=MLP_DEFAULTS),
    ArchitectureSpec("resnet", _resnet, ("image",), True,
                     "the WGAN-GP paper's CIFAR-10 ResNet (optional layer or spectral norm in the critic)",
                     critic_norms=RESNET_CRITIC_NORMS),
]


@hookimpl
def wganx_architectures():
    return list(ARCHITECTURES)
