"""The training algorithm, written once against the neutral ops.

A :class:`Program` is everything a backend compiles: the two networks, the loss, the
regularizer and the optimizers. :func:`critic_objective` and :func:`generator_objective`
are the two steps of WGAN-GP (Gulrajani et al. 2017, Algorithm 1); a backend
differentiates their ``"loss"`` entry by the critic's or the generator's parameters, applies
the update of :mod:`wganx.optim`, and (for weight clipping) clips the critic afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping

from .optim import OptimizerConfig
from .records import Architecture, LossSpec, RegularizerSpec


@dataclass(frozen=True)
class Program:
    """What a backend compiles into ``critic_step`` and ``generator_step``."""

    arch: Architecture
    loss: LossSpec
    regularizer: RegularizerSpec
    penalty_weight: float = 10.0
    critic_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    generator_optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    batch_size: int = 64
    latent: int = 128
    num_classes: int = 0
    ema_decay: float = 0.0
    ema_start: int = 0

    def input_shapes(self, step: str) -> Dict[str, tuple]:
        """Shapes of the numpy inputs of ``step`` (``"critic"`` or ``"generator"``)."""
        n = self.batch_size
        shapes = {"z": (n, self.latent)}
        if step == "critic":
            shapes["real"] = (n,) + tuple(self.arch.sample_shape)
        if self.num_classes:
            shapes["labels"] = (n,)
        return shapes


def _labels(inputs):
    return inputs.get("labels")


def critic_objective(ops, program: Program, pg: Mapping, pd: Mapping, inputs: Mapping) -> Dict:
    """The critic's loss on one batch: adversarial loss plus ``lambda`` times the penalty.

    Args:
        ops: the backend's :class:`wganx.ops.Ops`.
        program: the program being compiled.
        pg, pd: generator and critic parameters as backend tensors, by canonical name.
        inputs: backend tensors ``real``, ``z``, optional ``labels`` and the
            regularizer's noise (e.g. ``eps``), all drawn by the core.

    Returns:
        ``{"loss", "penalty", "wasserstein"}``; ``wasserstein`` is
        ``mean D(real) - mean D(fake)``, the estimate seed 000 plots as the negative
        critic loss.
    """
    G, D = program.arch.generator, program.arch.critic
    labels = _labels(inputs)
    with ops.no_grad():
        fake = ops.stop_gradient(G.forward(ops, pg, inputs["z"], training=True, labels=labels))

    def critic(x):
        return D.forward(ops, pd, x, training=True, labels=labels)

    d_real, d_fake = critic(inputs["real"]), critic(fake)
    loss = program.loss.critic(ops, d_real, d_fake)
    out = {"wasserstein": ops.mean(d_real) - ops.mean(d_fake)}
    reg = program.regularizer
    if reg.penalty is not None:
        penalty = reg.penalty(ops, critic, inputs["real"], fake, inputs)
        loss = loss + program.penalty_weight * penalty
        out["penalty"] = penalty
    out["loss"] = loss
    return out


def generator_objective(ops, program: Program, pg: Mapping, pd: Mapping, inputs: Mapping) -> Dict:
    """The generator's loss on one batch of latent codes: ``{"loss"}``."""
    G, D = program.arch.generator, program.arch.critic
    labels = _labels(inputs)
    fake = G.forward(ops, pg, inputs["z"], training=True, labels=labels)
    return {"loss": program.loss.generator(ops, D.forward(ops, pd, fake, training=True, labels=labels))}


# -- the generator's moving average ----------------------------------------------------------
EMA_PREFIX = "ema/"


def ema_name(name: str) -> str:
    """``generator/x`` -> ``ema/generator/x``: the moving average of a generator parameter in
    session states and checkpoints."""
    return EMA_PREFIX + name


def ema_decay_at(program: Program, step: int) -> float:
    """The weight of the old average after generator update ``step`` (1-based).

    After every generator step a backend sets ``ema = d * ema + (1 - d) * param`` for each
    trainable generator parameter, with ``d = ema_decay`` once ``step > ema_start`` and ``d = 0``
    (the average copies the generator) before; running statistics (batch norm) are copied,
    not averaged, as StyleGAN2-ADA does: an average of statistics is not the statistics of
    the averaged network either, and the copy is the newest estimate.
    """
    return program.ema_decay if step > program.ema_start else 0.0


def split_params(params: Mapping) -> tuple:
    """``{"generator/x": ..., "critic/y": ...}`` -> ``({"x": ...}, {"y": ...})``."""
    pg = {k[len("generator/"):]: v for k, v in params.items() if k.startswith("generator/")}
    pd = {k[len("critic/"):]: v for k, v in params.items() if k.startswith("critic/")}
    return pg, pd
