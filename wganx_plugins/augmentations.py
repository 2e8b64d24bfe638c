"""Differentiable augmentation of what the critic sees: DiffAugment and ADA's pipeline.

* ``diffaug``: DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
  GAN Training"), its three policies exactly as the reference code
  (``mit-han-lab/data-efficient-gans``, ``DiffAugment_pytorch.py``) defines them, applied in
  the order the user names them:

  - ``color``: brightness ``x + (u - 0.5)``, saturation ``(x - mean_C x) * 2u + mean_C x``,
    contrast ``(x - mean_CHW x) * (u + 0.5) + mean_CHW x``, each ``u ~ U[0, 1)`` per sample;
  - ``translation``: an integer shift of up to ``int(size / 8 + 0.5)`` pixels along H and W,
    each uniform per sample, zeros shifted in;
  - ``cutout``: a square of ``int(size / 2 + 0.5)`` pixels, its centre uniform per sample
    (clipped at the border), set to 0.

* ``ada``: the pipeline of ADA (Karras et al. 2020, "Training Generative Adversarial Networks
  with Limited Data"; ``NVlabs/stylegan2-ada-pytorch``, ``training/augment.py``) as far as
  the neutral ops reach, each transform applied to a sample with probability ``p``:

  - ``xflip`` (a horizontal flip with probability 1/2), ``rotate90`` (0, 90, 180 or 270
    degrees) and ``xint`` (an integer translation of up to 1/8 of the size, mirrored at the
    border as ADA's reflect padding does): the "blit" group;
  - ``brightness`` (``+ N(0, 0.2)``), ``contrast`` (``* 2^N(0, 0.5)``), ``lumaflip``
    (reflection of the luma axis), ``hue`` (rotation about the luma axis by up to pi) and
    ``saturation`` (``* 2^N(0, 1)`` off the luma axis): the "color" group, composed on the
    host into one colour matrix per sample, as ADA does;
  - ``cutout``: a square of half the size, anywhere, set to 0.

  ADA's geometric transforms that resample the image (isotropic and anisotropic scaling,
  arbitrary rotation, fractional translation) need grid sampling, which the neutral ops do
  not have; they are not offered.

Every random number is drawn by the core's generator (``sample``); the transforms (``apply``)
are written once against the neutral ops and are linear (affine, for colour) in the image, so
their second derivative exists on every backend and the penalty differentiates through them.
Every geometric transform offered moves whole pixels: an image ``X`` (per channel) becomes
``A op(X) B^T``, where ``A`` and ``B`` are 0/1 selection matrices and ``op`` is the identity or
the transpose (a quarter turn of a square image swaps the axes). The host composes flips,
quarter turns and translations (zeros shifted in, or mirrored for ADA) as row maps (which
row each output row reads, in O(N size)) and builds ``A``, ``B`` and
the transpose bit of each sample; the device computes two batched matrix products, exact
since each output pixel selects one input pixel or none. Cutout is a product with a mask
drawn on the host; colour is a per-sample colour matrix and offset.
"""
from __future__ import annotations

import math

import numpy as np

from wganx import hookimpl
from wganx.errors import WganxError
from wganx.records import AugmentSpec

F32 = np.float32
DIFFAUG_POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125  # DiffAugment's and ADA's largest shift, a share of the size
CUTOUT_RATIO = 0.5


def _image(shape, name):
    if len(shape) != 3:
        raise WganxError(f"--augment {name} augments images (C, H, W); these samples have shape {tuple(shape)}")
    return shape


def _per_sample(values):
    return np.asarray(values, F32).reshape(-1, 1, 1, 1)


def _shift(size, shifts, mode="constant"):
    """``(N, size)`` row maps of the selection ``S`` with ``(S x)[i] = x[i + t]`` for each
    sample's shift ``t``: -1 (a zero row) past the border (``"constant"``, DiffAugment), or the
    mirrored pixel without repeating the border (``"reflect"``, ADA's padding)."""
    src = np.arange(size)[None, :] + np.asarray(shifts)[:, None]  # (N, size): where row i reads
    if mode == "reflect":
        period = 2 * (size - 1)
        src = np.abs((src + period) % period)
        src = np.where(src >= size, period - src, src)
    return np.where((src >= 0) & (src < size), src, -1)


def _flip(size, bits):
    """``(N, size)`` row maps: the reversal where ``bits`` is 1, the identity elsewhere."""
    i = np.arange(size)[None, :]
    return np.where(np.asarray(bits, bool)[:, None], size - 1 - i, i)


def _then(first, second):
    """The row map of ``first @ second`` (``second`` applied to the image, then ``first``):
    row ``i`` reads row ``first[i]`` of ``second``'s result; -1 stays a zero row."""
    out = np.take_along_axis(second, np.maximum(first, 0), axis=1)
    return np.where(first >= 0, out, -1)


def _transposed_matrix(rows):
    """``S^T`` ``(N, size, size)`` float32 of the selection whose row map is ``rows``."""
    n, size = rows.shape
    out = np.zeros((n, size, size), F32)
    sample, i = np.nonzero(rows >= 0)
    out[sample, rows[sample, i], i] = 1.0
    return out


def _geometry(a, b, transposed=None):
    """The step's parameters of ``y = A op(X) B^T`` (see :func:`blit`) from the row maps of
    ``A`` and ``B``: ``A^T`` and ``B^T``, each ``(N, size, size)``, and the transpose bit
    ``(N, 1, 1, 1)`` when there is one. The maps compose in O(N size) on the host; only the
    step's two matrices are ever built."""
    out = {"aug_rows": _transposed_matrix(a), "aug_cols": _transposed_matrix(b)}
    if transposed is not None:
        out["aug_transpose"] = _per_sample(transposed)
    return out


def _cutout_mask(rng, n, h, w, gate=None):
    """DiffAugment's ``rand_cutout`` mask ``(N, 1, H, W)``: 0 inside a box of half the size
    whose centre is uniform (an odd size may reach one pixel past the border), else 1."""
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    oy = rng.integers(0, h + (1 - ch % 2), n)
    ox = rng.integers(0, w + (1 - cw % 2), n)
    mask = np.ones((n, 1, h, w), F32)
    for i in range(n):
        if gate is not None and not gate[i]:
            continue
        y0, x0 = oy[i] - ch // 2, ox[i] - cw // 2
        mask[i, 0, max(y0, 0):min(y0 + ch, h), max(x0, 0):min(x0 + cw, w)] = 0.0
    return mask


# -- transforms against the neutral ops -----------------------------------------------------------
def blit(ops, x, params):
    """``y = A op(X) B^T`` for every channel ``X`` of every image: ``params["aug_rows"]`` is
    ``A^T`` ``(N, H, H)``, ``params["aug_cols"]`` is ``B^T`` ``(N, W, W)``, and
    ``params["aug_transpose"]`` (optional, ``(N, 1, 1, 1)``) swaps H and W of the samples
    where it is 1 first (square images only). Two batched matrix products: linear in ``x``."""
    if "aug_transpose" in params:
        t = params["aug_transpose"]
        x = x + (ops.transpose(x, (0, 1, 3, 2)) - x) * t
    n, c, h, w = ops.shape(x)
    x = ops.reshape(ops.matmul(ops.reshape(x, (n, c * h, w)), params["aug_cols"]), (n, c, h, w))  # X B^T
    x = ops.reshape(ops.transpose(x, (0, 1, 3, 2)), (n, c * w, h))
    x = ops.reshape(ops.matmul(x, params["aug_rows"]), (n, c, w, h))  # (A X B^T)^T
    return ops.transpose(x, (0, 1, 3, 2))


def colour_matrix(ops, x, matrix, bias):
    """``y_c = sum_k M[c, k] x_k + b_c`` per sample: ``matrix`` ``(N, C * C, 1, 1)`` holds
    column ``k`` of ``M`` at ``[k * C, (k + 1) * C)``, ``bias`` is ``(N, C, 1, 1)``."""
    c = ops.shape(x)[1]
    out = bias
    for k in range(c):
        out = out + ops.slice(x, 1, k, k + 1) * ops.slice(matrix, 1, k * c, (k + 1) * c)
    return out


# -- DiffAugment ---------------------------------------------------------------------------------
def diffaug_sample(rng, batch_size, sample_shape, options, p):
    c, h, w = _image(sample_shape, "diffaug")
    n, out = batch_size, {}
    for policy in options:
        if policy == "color":
            for key in ("aug_brightness", "aug_saturation", "aug_contrast"):
                out[key] = _per_sample(rng.uniform(0.0, 1.0, n))
        elif policy == "translation":  # y[i, j] = x[i + tx, j + ty], zeros shifted in
            rh, rw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
            tx, ty = rng.integers(-rh, rh + 1, n), rng.integers(-rw, rw + 1, n)
            out.update(_geometry(_shift(h, tx), _shift(w, ty)))
        elif policy == "cutout":
            out["aug_cutout"] = _cutout_mask(rng, n, h, w)
    return out


def diffaug_apply(ops, x, params, options):
    for policy in options:
        if policy == "color":
            x = x + (params["aug_brightness"] - 0.5)
            mean = ops.mean(x, axes=(1,), keepdims=True)
            x = (x - mean) * (params["aug_saturation"] * 2.0) + mean
            mean = ops.mean(x, axes=(1, 2, 3), keepdims=True)
            x = (x - mean) * (params["aug_contrast"] + 0.5) + mean
        elif policy == "translation":
            x = blit(ops, x, params)
        elif policy == "cutout":
            x = x * params["aug_cutout"]
    return x


# -- ADA -----------------------------------------------------------------------------------------
ADA_BLIT = ("xflip", "rotate90", "xint")
ADA_COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
ADA_TRANSFORMS = ADA_BLIT + ADA_COLOR + ("cutout",)
BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD = 0.2, 0.5, 1.0, 1.0  # ADA's defaults


def _luma_rotation(theta):
    """4x4 rotations by ``theta`` (N,) about the luma axis ``(1, 1, 1) / sqrt(3)`` (Rodrigues)."""
    v = np.ones(3) / math.sqrt(3.0)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    out = np.tile(np.eye(4), (len(theta), 1, 1))
    s, c = np.sin(theta)[:, None, None], np.cos(theta)[:, None, None]
    out[:, :3, :3] = np.eye(3) + s * k + (1 - c) * (k @ k)
    return out


def _ada_colour(rng, n, channels, options, p):
    """ADA's colour transforms composed into one ``(N, 4, 4)`` matrix per sample (homogeneous
    RGB), each drawn and gated as ``training/augment.py`` does; then reduced to
    ``(matrix (N, C * C, 1, 1), bias (N, C, 1, 1))`` for :func:`colour_matrix`."""
    m = np.tile(np.eye(4), (n, 1, 1))
    v = np.array([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3.0)
    vv = np.outer(v, v)
    eye = np.eye(4)

    def gated(value, off):
        return np.where(rng.uniform(0.0, 1.0, n) < p, value, off)  # the value first, then its gate

    for name in (o for o in ADA_COLOR if o in options):
        if name == "brightness":
            t = np.tile(eye, (n, 1, 1))
            t[:, :3, 3] = gated(rng.standard_normal(n) * BRIGHTNESS_STD, 0.0)[:, None]
        elif name == "contrast":
            c = gated(np.exp2(rng.standard_normal(n) * CONTRAST_STD), 1.0)
            t = np.diag([1.0, 1.0, 1.0, 0.0]) * c[:, None, None] + np.diag([0.0, 0.0, 0.0, 1.0])
        elif name == "lumaflip":
            t = eye - 2.0 * vv * gated(np.floor(rng.uniform(0.0, 1.0, n) * 2), 0.0)[:, None, None]
        elif name == "hue":
            t = _luma_rotation(gated((rng.uniform(0.0, 1.0, n) * 2 - 1) * math.pi * HUE_MAX, 0.0))
        else:  # saturation
            t = vv + (eye - vv) * gated(np.exp2(rng.standard_normal(n) * SATURATION_STD), 1.0)[:, None, None]
        m = t @ m
    if channels == 3:
        matrix, bias = m[:, :3, :3], m[:, :3, 3]
    elif channels == 1:  # ADA's grayscale rule: the mean of the RGB rows, summed over its columns
        row = m[:, :3, :].mean(axis=1)
        matrix, bias = row[:, :3].sum(axis=1).reshape(n, 1, 1), row[:, 3].reshape(n, 1)
    else:
        raise WganxError(f"--augment ada: colour transforms need 1 or 3 channels, not {channels}")
    columns = np.transpose(matrix, (0, 2, 1)).reshape(n, channels * channels, 1, 1)  # column k at [k*C, (k+1)*C)
    return columns.astype(F32), bias.reshape(n, channels, 1, 1).astype(F32)


def ada_sample(rng, batch_size, sample_shape, options, p):
    c, h, w = _image(sample_shape, "ada")
    n, out = batch_size, {}

    def gate():
        return rng.uniform(0.0, 1.0, n) < p

    # ADA's order: flip, then quarter turns, then translation; composed into y = A op(X) B^T
    a, b = np.tile(np.arange(h), (n, 1)), np.tile(np.arange(w), (n, 1))  # row maps of A and B
    transposed = None
    if "xflip" in options:
        bits = np.floor(rng.uniform(0.0, 1.0, n) * 2)
        bits = np.where(gate(), bits, 0.0)
        b = _then(_flip(w, bits), b)
    if "rotate90" in options:
        if h != w:
            raise WganxError(f"--augment ada: rotate90 needs square images, not {h}x{w}")
        k = np.floor(rng.uniform(0.0, 1.0, n) * 4).astype(int)
        k = np.where(gate(), k, 0)
        transposed = np.zeros(n)
        for _ in range(3):  # a quarter turn of A op(X) B^T is (F B) op'(X) A^T, op' the other op
            turn = k > 0
            a, b = np.where(turn[:, None], _then(_flip(h, np.ones(n)), b), a), np.where(turn[:, None], a, b)
            transposed = np.where(turn, 1.0 - transposed, transposed)
            k = k - turn
    if "xint" in options:
        t = rng.uniform(-1.0, 1.0, (n, 2)) * TRANSLATION_RATIO  # ADA: (x, y) shares of the size, rounded
        on = gate()
        a = _then(_shift(h, np.where(on, np.rint(t[:, 1] * h), 0).astype(int), "reflect"), a)
        b = _then(_shift(w, np.where(on, np.rint(t[:, 0] * w), 0).astype(int), "reflect"), b)
    if any(name in options for name in ADA_BLIT):
        out.update(_geometry(a, b, transposed))
    if any(name in options for name in ADA_COLOR):
        out["aug_colour"], out["aug_colour_bias"] = _ada_colour(rng, n, c, options, p)
    if "cutout" in options:
        out["aug_cutout"] = _cutout_mask(rng, n, h, w, gate())
    return out


def ada_apply(ops, x, params, options):
    if any(name in options for name in ADA_BLIT):
        x = blit(ops, x, params)
    if any(name in options for name in ADA_COLOR):
        x = colour_matrix(ops, x, params["aug_colour"], params["aug_colour_bias"])
    if "cutout" in options:
        x = x * params["aug_cutout"]
    return x


AUGMENTATIONS = [
    AugmentSpec("diffaug", diffaug_sample, diffaug_apply, options=DIFFAUG_POLICIES, default_options=DIFFAUG_POLICIES,
                description="DiffAugment (Zhao et al. 2020): color, translation, cutout, in the order named"),
    AugmentSpec("ada", ada_sample, ada_apply, options=ADA_TRANSFORMS, default_options=ADA_BLIT + ADA_COLOR,
                aliases={"blit": ADA_BLIT, "color": ADA_COLOR}, adaptive=True,
                description="ADA (Karras et al. 2020): flips, 90-degree rotations, integer translation, colour, "
                            "cutout, each with a probability p adapted to the critic's overfitting"),
]


@hookimpl
def wganx_augmentations():
    return list(AUGMENTATIONS)
