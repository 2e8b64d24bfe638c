"""Seed 000's four upsampling blocks, and the half-pixel ``bilinear``: a 2x larger feature
map from a conv or deconv.

``nearest``, ``linear``, ``bilinear`` and ``unpooling`` are a 3x3 convolution followed by a
2x resize; ``deconv`` is a 2x2 transposed convolution with stride 2 and twice the maps,
exactly as the NNabla example writes them.

* ``linear`` is the NNabla example's ``F.interpolate(mode="linear")`` with NNabla's defaults:
  output pixel ``j`` samples input ``j / 2`` (also ``tf.compat.v1.image.resize_bilinear``),
  on every backend.
* ``bilinear`` uses half-pixel centres, PyTorch's and ``tf.image.resize``'s convention. It
  is what ``linear`` meant in wganx 0.1.0; checkpoints of that version load as ``bilinear``.
* ``unpooling`` is NNabla's ``F.unpooling``, which *replicates* each value into the 2x2
  block: numerically the same as ``nearest`` (measured identical), kept for fidelity.
* ``pixelshuffle`` is the sub-pixel convolution of Shi et al. 2016 (ESPCN): a 3x3 conv to
  four times the maps, rearranged into a 2x larger map by ``depth_to_space`` (PyTorch's
  ``pixel_shuffle`` order). Its weights start from the same Glorot-uniform draw as the
  other blocks', not from ICNR (Aitken et al. 2017).
"""
from wganx import hookimpl
from wganx.params import conv, deconv
from wganx.records import UpsamplerSpec


def _conv_then(resize):
    def params(prefix, in_maps, maps):
        return conv(prefix, in_maps, maps, 3), maps

    def apply(ops, p, prefix, x):
        return resize(ops, ops.conv2d(x, p[f"{prefix}/W"], p[f"{prefix}/b"], pad=1))

    return params, apply


def _pixelshuffle_params(prefix, in_maps, maps):
    return conv(prefix, in_maps, maps * 4, 3), maps


def _pixelshuffle_apply(ops, p, prefix, x):
    return ops.depth_to_space(ops.conv2d(x, p[f"{prefix}/W"], p[f"{prefix}/b"], pad=1), 2)


def _deconv_params(prefix, in_maps, maps):
    return deconv(prefix, in_maps, maps * 2, 2), maps * 2


def _deconv_apply(ops, p, prefix, x):
    return ops.deconv2d(x, p[f"{prefix}/W"], p[f"{prefix}/b"], stride=2)


UPSAMPLERS = [
    UpsamplerSpec("nearest", *_conv_then(lambda ops, x: ops.interpolate(x, 2, "nearest")),
                  description="3x3 conv, then nearest-neighbour 2x"),
    UpsamplerSpec("linear", *_conv_then(lambda ops, x: ops.interpolate(x, 2, "linear")),
                  description="3x3 conv, then the NNabla example's linear 2x (output j samples input j/2)"),
    UpsamplerSpec("bilinear", *_conv_then(lambda ops, x: ops.interpolate(x, 2, "bilinear")),
                  description="3x3 conv, then bilinear 2x with half-pixel centres (PyTorch, tf.image.resize)"),
    UpsamplerSpec("unpooling", *_conv_then(lambda ops, x: ops.unpool(x, 2)),
                  description="3x3 conv, then NNabla's unpooling (replicates: equals nearest)"),
    UpsamplerSpec("deconv", _deconv_params, _deconv_apply,
                  description="2x2 transposed conv, stride 2, twice the maps"),
    UpsamplerSpec("pixelshuffle", _pixelshuffle_params, _pixelshuffle_apply,
                  description="3x3 conv to 4x the maps, then depth-to-space 2x (sub-pixel convolution)"),
]


@hookimpl
def wganx_upsamplers():
    return list(UPSAMPLERS)
