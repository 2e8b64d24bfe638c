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
A translation is a sum of shifted copies, each a pad and a slice, weighted per sample by a
one-hot row drawn on the host; a flip is the ops' ``flip``; a rotation by 90 degrees is a
transpose and a flip; cutout is a product with a mask drawn on the host.
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


def _one_hot(shifts, radius):
    """``(N, 2 * radius + 1, 1, 1)`` rows selecting shift ``t`` at index ``t + radius``."""
    out = np.zeros((len(shifts), 2 * radius + 1, 1, 1), F32)
    out[np.arange(len(shifts)), np.asarray(shifts) + radius, 0, 0] = 1.0
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
def translate(ops, x, one_hot, axis, mode="constant"):
    """``x`` shifted along ``axis`` (2: H, 3: W) by a per-sample integer ``t`` in
    ``[-r, r]``: ``y[i] = x[i + t]``, out-of-range pixels zero (``"constant"``, DiffAugment)
    or mirrored (``"reflect"``, ADA). ``one_hot`` ``(N, 2r + 1, 1, 1)`` selects ``t``; the
    result is the sum of the ``2r + 1`` shifted copies, each weighted by its column."""
    count = ops.shape(one_hot)[1]
    radius = count // 2
    size = ops.shape(x)[axis]
    widths = ((radius, radius), (0, 0)) if axis == 2 else ((radius, radius),)
    padded = ops.pad(x, widths, mode)
    out = None
    for k in range(count):
        term = ops.slice(padded, axis, k, k + size) * ops.slice(one_hot, 1, k, k + 1)
        out = term if out is None else out + term
    return out


def rotate90(ops, x):
    """``x`` rotated by 90 degrees in the H-W plane (``numpy.rot90(x, axes=(2, 3))``)."""
    return ops.flip(ops.transpose(x, (0, 1, 3, 2)), 2)


def select(ops, choices, weights):
    """``sum_k choices[k] * weights[:, k]``: per sample, the choice its one-hot row names."""
    out = None
    for k, choice in enumerate(choices):
        term = choice * ops.slice(weights, 1, k, k + 1)
        out = term if out is None else out + term
    return out


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
        elif policy == "translation":
            rh, rw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
            out["aug_shift_h"] = _one_hot(rng.integers(-rh, rh + 1, n), rh)
            out["aug_shift_w"] = _one_hot(rng.integers(-rw, rw + 1, n), rw)
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
            x = translate(ops, translate(ops, x, params["aug_shift_h"], 2), params["aug_shift_w"], 3)
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

    if "xflip" in options:
        flip = np.floor(rng.uniform(0.0, 1.0, n) * 2)
        out["aug_xflip"] = _per_sample(np.where(gate(), flip, 0.0))
    if "rotate90" in options:
        if h != w:
            raise WganxError(f"--augment ada: rotate90 needs square images, not {h}x{w}")
        k = np.floor(rng.uniform(0.0, 1.0, n) * 4).astype(int)
        out["aug_rotate"] = np.eye(4, dtype=F32)[np.where(gate(), k, 0)].reshape(n, 4, 1, 1)
    if "xint" in options:
        t = rng.uniform(-1.0, 1.0, (n, 2)) * TRANSLATION_RATIO  # ADA: (x, y) shares of the size, rounded
        on = gate()
        rh, rw = int(round(h * TRANSLATION_RATIO)), int(round(w * TRANSLATION_RATIO))
        out["aug_shift_h"] = _one_hot(np.where(on, np.rint(t[:, 1] * h), 0).astype(int), rh)
        out["aug_shift_w"] = _one_hot(np.where(on, np.rint(t[:, 0] * w), 0).astype(int), rw)
    if any(name in options for name in ADA_COLOR):
        out["aug_colour"], out["aug_colour_bias"] = _ada_colour(rng, n, c, options, p)
    if "cutout" in options:
        out["aug_cutout"] = _cutout_mask(rng, n, h, w, gate())
    return out


def ada_apply(ops, x, params, options):
    if "xflip" in options:
        x = x + (ops.flip(x, 3) - x) * params["aug_xflip"]
    if "rotate90" in options:
        turned = [x]
        for _ in range(3):
            turned.append(rotate90(ops, turned[-1]))
        x = select(ops, turned, params["aug_rotate"])
    if "xint" in options:
        x = translate(ops, translate(ops, x, params["aug_shift_h"], 2, "reflect"), params["aug_shift_w"], 3, "reflect")
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
