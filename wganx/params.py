"""Parameter creation from the core's seeded RNG: every backend starts from the same numbers."""
from __future__ import annotations

from typing import Dict, Mapping

import numpy as np

from .records import ParamSpec


def glorot_limit(spec: ParamSpec) -> float:
    """NNabla's ``calc_uniform_lim_glorot``: ``sqrt(6 / (fan_in + fan_out))``."""
    return float(np.sqrt(6.0 / (spec.fan_in + spec.fan_out)))


def init_params(specs: Mapping[str, ParamSpec], rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Draw every parameter in sorted name order, so the result depends only on the seed."""
    out = {}
    for name in sorted(specs):
        spec = specs[name]
        if spec.init == "glorot_uniform":
            limit = glorot_limit(spec)
            value = rng.uniform(-limit, limit, spec.shape)
        elif spec.init == "zeros":
            value = np.zeros(spec.shape)
        elif spec.init == "ones":
            value = np.ones(spec.shape)
        elif spec.init == "normal":
            value = rng.normal(0.0, spec.std, spec.shape)
        else:
            raise ValueError(f"parameter {name!r}: unknown init {spec.init!r}")
        out[name] = value.astype(np.float32)
    return out


def conv(name: str, in_maps: int, out_maps: int, kernel: int, bias: bool = True) -> Dict[str, ParamSpec]:
    """Specs of a conv layer: ``name/W`` OIHW and ``name/b``."""
    area = kernel * kernel
    specs = {f"{name}/W": ParamSpec((out_maps, in_maps, kernel, kernel), "glorot_uniform",
                                    in_maps * area, out_maps * area)}
    if bias:
        specs[f"{name}/b"] = ParamSpec((out_maps,), "zeros")
    return specs


def deconv(name: str, in_maps: int, out_maps: int, kernel: int, bias: bool = True) -> Dict[str, ParamSpec]:
    """Specs of a transposed conv: ``name/W`` IOHW and ``name/b``."""
    area = kernel * kernel
    specs = {f"{name}/W": ParamSpec((in_maps, out_maps, kernel, kernel), "glorot_uniform",
                                    in_maps * area, out_maps * area)}
    if bias:
        specs[f"{name}/b"] = ParamSpec((out_maps,), "zeros")
    return specs


def affine(name: str, in_features: int, out_features: int, bias: bool = True) -> Dict[str, ParamSpec]:
    """Specs of an affine layer: ``name/W`` (in, out) and ``name/b``."""
    specs = {f"{name}/W": ParamSpec((in_features, out_features), "glorot_uniform",
                                    in_features, out_features)}
    if bias:
        specs[f"{name}/b"] = ParamSpec((out_features,), "zeros")
    return specs


def norm(name: str, maps: int, running_stats: bool = False) -> Dict[str, ParamSpec]:
    """Specs of a normalisation layer: ``gamma``, ``beta`` and, for batch norm, running stats."""
    specs = {f"{name}/gamma": ParamSpec((maps,), "ones"), f"{name}/beta": ParamSpec((maps,), "zeros")}
    if running_stats:
        specs[f"{name}/mean"] = ParamSpec((maps,), "zeros", trainable=False)
        specs[f"{name}/var"] = ParamSpec((maps,), "ones", trainable=False)
    return specs


def embedding(name: str, num_classes: int, dim: int) -> Dict[str, ParamSpec]:
    """Spec of a label embedding table ``(num_classes, dim)``."""
    return {f"{name}/W": ParamSpec((num_classes, dim), "normal", std=1.0 / np.sqrt(dim))}


def spectral(name: str, rows: int) -> Dict[str, ParamSpec]:
    """Spec of the power-iteration vector ``name/u`` of a spectrally normalised weight
    ``name/W`` (:meth:`wganx.ops.Ops.spectral_norm`); ``rows`` is the weight's canonical first
    axis (a conv's output maps, an affine layer's inputs)."""
    return {f"{name}/u": ParamSpec((rows,), "normal", std=1.0, trainable=False)}
