"""Differentiable augmentation in the core: which augmentation a run uses, with its options
(:class:`Augment`, made from ``--augment NAME[:OPTIONS]`` by :func:`parse`), and ADA's
adaptive probability for a Wasserstein critic (:class:`AdaptiveP`).

The augmentation itself is a plugin (:class:`wganx.records.AugmentSpec`). The core draws its
random parameters with every other random number of a step (:func:`wganx.algorithm.step_inputs`)
and the objectives apply it, written once against the neutral ops, to every image the critic
sees (:func:`wganx.algorithm.critic_objective`). ``docs/numerics.rst`` ("Augmentation") says
where and why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional

import numpy as np

from .errors import Range, WganxError
from .records import AugmentSpec

NONE = "none"
PROBABILITY = Range(0, 1, high_closed=True)  # --augment-p: each transform's probability
ADA_TARGET = Range(0, 1, low_open=True)  # --ada-target: the overfitting signal r_t that p steers to
ADA_KEYS = ("p", "signal_sum", "signal_count", "images")


@dataclass(frozen=True)
class Augment:
    """An augmentation with its options, as a :class:`wganx.algorithm.Program` holds it.

    Attributes:
        spec: the plugin's record.
        options: the options in use, aliases expanded (e.g. ``("color", "translation")``).
        p: the probability the steps are drawn with when the caller names none: ADA's start
            (``--augment-p``); the training loop passes the adapted one (:class:`AdaptiveP`).
    """

    spec: AugmentSpec
    options: tuple
    p: float = 0.0

    @property
    def label(self) -> str:
        """``NAME:OPT,OPT`` as ``--augment`` takes it."""
        return self.spec.name + (":" + ",".join(self.options) if self.options else "")

    def sample(self, rng: np.random.Generator, batch_size: int, sample_shape: tuple,
               p: Optional[float] = None) -> Dict[str, np.ndarray]:
        """One step's random parameters, drawn from the core's ``rng``."""
        params = self.spec.sample(rng, batch_size, tuple(sample_shape), self.options, self.p if p is None else p)
        for key, value in params.items():
            if not key.startswith("aug_") or np.shape(value)[:1] != (batch_size,):
                raise WganxError(f"augmentation {self.spec.name!r} drew {key!r} of shape {np.shape(value)}; "
                                 f"each parameter needs an aug_ name and the batch ({batch_size}) first")
        return {k: np.asarray(v, np.float32) for k, v in params.items()}

    def apply(self, ops, x, inputs: Mapping):
        """``x`` augmented with the parameters in ``inputs`` (backend tensors)."""
        return self.spec.apply(ops, x, inputs, self.options)


def split(value: str) -> tuple:
    """``NAME[:OPTIONS]`` -> ``(name, options text)``; ``DIST:NAME:OPTIONS`` keeps the
    distribution with the name (:meth:`wganx.plugins.Registry.entry`), and ``DIST:NAME:``
    takes the defaults of the name a distribution registered."""
    parts = value.split(":")
    if len(parts) > 2:
        return ":".join(parts[:2]), ":".join(parts[2:])
    return parts[0], parts[1] if len(parts) == 2 else None


def check_options(spec: AugmentSpec, text: Optional[str]) -> tuple:
    """The options ``text`` names (comma-separated, aliases expanded, in the order given,
    each once), or the spec's defaults when it is empty or None; a word it does not know is an error listing
    the choices."""
    if not text:  # "NAME", or "DIST:NAME:" (a qualified name with the default options)
        return tuple(spec.default_options)
    words = [w.strip() for w in text.split(",")]
    choices = tuple(spec.options) + tuple(spec.aliases)
    if not spec.options and not spec.aliases:
        raise WganxError(f"--augment {spec.name} takes no options, got {text!r}")
    out = []
    for word in words:
        if word not in choices:
            raise WganxError(f"--augment {spec.name}: unknown option {word!r}; choose from: {', '.join(choices)}")
        for option in spec.aliases.get(word, (word,)):
            if option not in out:
                out.append(option)
    return tuple(out)


def parse(value: Optional[str], reg, p: float = 0.0) -> Optional[Augment]:
    """``--augment``'s value -> an :class:`Augment`, or None for ``none``; unknown names and
    options are one-line errors listing the choices."""
    if not value or value == NONE:
        return None
    name, text = split(value)
    spec = reg.get("augmentation", name)
    return Augment(spec, check_options(spec, text), float(p))


def check_p(p: float, flag: str = "--augment-p") -> float:
    PROBABILITY.check(flag, p)
    return p


class AdaptiveP:
    """ADA's probability ``p``, adjusted from how much the critic overfits.

    ADA (Karras et al. 2020) measures ``r_t = E[sign(D(real))]`` for a critic whose outputs are
    logits, where 0 is the decision boundary: near 0 the critic cannot tell the training images
    from generated ones, near 1 it has memorised them. A Wasserstein critic has no boundary:
    adding a constant to ``D`` changes neither its loss nor its gradients, so the sign of
    ``D(real)`` means nothing. wganx takes the boundary the critic draws in the same batch,
    the mean of its outputs on the generated images:

        ``r_t = E_i[sign(D(T(x_i)) - mean_j D(T(G(z_j))))]``

    (the critic objective's ``augment_signal``, computed on augmented images as ADA does). It is
    invariant to the shift, lies in [-1, 1], is 0 when real outputs sit on both sides of the
    generated images' mean equally and 1 when every real image scores above it; for a
    non-saturating critic whose generated images score near 0 it is ADA's own. After each
    generator iteration the loop records the last critic step's ``r_t``; every ``interval``
    iterations ``p`` moves by ``sign(mean r_t - target) * images / (kimg * 1000)``, where
    ``images`` are the real images the critic saw in the interval (batch times critic steps,
    the ``wgan`` schedule's 100 included), and is clipped to [0, 1]: ADA's rule, so that ``p``
    can go from 0 to 1 in ``kimg`` thousand images.

    The state (:meth:`state`) is kept in every checkpoint, so a resumed run continues exactly.
    """

    def __init__(self, p: float, target: float, kimg: float, interval: int,
                 read: Callable[[list], list] = lambda values: [float(v) for v in values]):
        self.p, self.target, self.kimg, self.interval = float(p), float(target), float(kimg), int(interval)
        self.signal_sum, self.signal_count, self.images = 0.0, 0, 0
        #: ``read(values) -> floats``: the signals as numbers (the training loop fetches them
        #: from the device, all of an interval at once, so a step waits on no device sync)
        self.read = read
        self._pending: list = []  # (signal, images) of iterations not yet read

    def observe(self, signal, images: int) -> None:
        """One generator iteration's ``r_t`` (a number, or a value :attr:`read` turns into
        one), after its critic saw ``images`` real images. Signals are read when they can
        change ``p``, at the end of an interval, so ``p`` moves at the same iterations as if
        each were read at once."""
        self._pending.append((signal, int(images)))
        if self.signal_count + len(self._pending) >= self.interval:
            self._settle()

    def _settle(self) -> None:
        pending, self._pending = self._pending, []
        for signal, images in zip(self.read([s for s, _ in pending]), (i for _, i in pending)):
            if not math.isfinite(signal):
                continue
            self.signal_sum += float(signal)
            self.signal_count += 1
            self.images += images
            if self.signal_count >= self.interval:
                mean = self.signal_sum / self.signal_count
                if self.kimg > 0 and mean != self.target:
                    step = self.images / (self.kimg * 1000.0)
                    self.p = min(max(self.p + math.copysign(step, mean - self.target), 0.0), 1.0)
                self.signal_sum, self.signal_count, self.images = 0.0, 0, 0

    def state(self) -> Dict[str, float]:
        """What a checkpoint keeps (the signals not yet read are read first)."""
        self._settle()
        return {"p": self.p, "signal_sum": self.signal_sum, "signal_count": self.signal_count, "images": self.images}

    def load(self, state: Mapping) -> None:
        missing = [k for k in ADA_KEYS if k not in state]
        if missing:
            raise WganxError(f"the checkpoint's ADA state lacks {', '.join(missing)}")
        self.p, self.signal_sum = float(state["p"]), float(state["signal_sum"])
        self.signal_count, self.images = int(state["signal_count"]), int(state["images"])
