"""The optimizers, defined once so that every backend updates identically.

Adam is the "epsilon-hat" form of Kingma & Ba (section 2), which NNabla's ``S.Adam`` and
Keras' ``Adam`` implement::

    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

RMSProp is the form of TensorFlow 1's ``RMSPropOptimizer`` used by the original WGAN recipe
(the TF1 WGAN example), with epsilon inside the root (NNabla's ``S.RMSprop`` adds it outside, so the
NNabla backend writes this update itself)::

    v = rho v + (1 - rho) g^2;   p -= lr * g / sqrt(v + eps)

Optimizer state crosses the backend seam as numpy: ``optimizer/<net>/<param>/m`` and
``/v`` per parameter and ``optimizer/<net>/t`` (steps taken), so a checkpoint of one
backend resumes on another.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

import numpy as np


OPTIMIZERS = ("adam", "rmsprop")  # the kinds every backend implements


@dataclass(frozen=True)
class OptimizerConfig:
    """One network's optimizer."""

    kind: str = "adam"  # "adam" or "rmsprop"
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    eps: float = 1e-8  # adam: added to sqrt(v); rmsprop: added to v inside the root
    rho: float = 0.9  # rmsprop decay

    def slots(self) -> tuple:
        return ("m", "v") if self.kind == "adam" else ("v",)


STATE_PREFIX = "optimizer/"


def state_name(net: str, param: Optional[str] = None, slot: Optional[str] = None) -> str:
    """``optimizer/<net>/t`` (no ``param``) or ``optimizer/<net>/<param>/<slot>``."""
    return f"{STATE_PREFIX}{net}/t" if param is None else f"{STATE_PREFIX}{net}/{param}/{slot}"


def parse_state_name(name: str) -> Optional[Tuple[str, Optional[str], Optional[str]]]:
    """The inverse of :func:`state_name`: ``(net, param, slot)``, ``(net, None, None)`` for
    the step count, None for a name that is not optimizer state."""
    if not name.startswith(STATE_PREFIX):
        return None
    net, rest = name[len(STATE_PREFIX):].split("/", 1)
    if rest == "t":
        return net, None, None
    param, slot = rest.rsplit("/", 1)
    return net, param, slot


def initial_state(net: str, params: Mapping[str, np.ndarray], config: OptimizerConfig) -> Dict[str, np.ndarray]:
    """Zeroed optimizer state for the trainable ``params`` of network ``net``."""
    state = {state_name(net): np.zeros((), np.float32)}
    for name, value in params.items():
        for slot in config.slots():
            state[state_name(net, name, slot)] = np.zeros_like(value, dtype=np.float32)
    return state


def step_size(config: OptimizerConfig, lr: float, t: int) -> float:
    """What multiplies the update direction in update ``t`` (1-based) at learning rate ``lr``:
    Adam's bias-corrected ``lr * sqrt(1 - b2^t) / (1 - b1^t)``, RMSProp's ``lr``."""
    if config.kind == "adam":
        return lr * math.sqrt(1 - config.beta2 ** t) / (1 - config.beta1 ** t)
    return lr


def reference_update(p: np.ndarray, g: np.ndarray, slots: dict, t: int, config: OptimizerConfig) -> np.ndarray:
    """One update in float64 numpy: the definition the backends are tested against.

    ``slots`` is updated in place; ``t`` is the step number after this update (1-based).
    """
    g = g.astype(np.float64)
    if config.kind == "adam":
        slots["m"] = config.beta1 * slots["m"] + (1 - config.beta1) * g
        slots["v"] = config.beta2 * slots["v"] + (1 - config.beta2) * g * g
        return p - step_size(config, config.lr, t) * slots["m"] / (np.sqrt(slots["v"]) + config.eps)
    if config.kind == "rmsprop":
        slots["v"] = config.rho * slots["v"] + (1 - config.rho) * g * g
        return p - step_size(config, config.lr, t) * g / np.sqrt(slots["v"] + config.eps)
    raise ValueError(f"unknown optimizer {config.kind!r}; choose one of: adam, rmsprop")
