"""Algorithm 1 of Gulrajani et al. (2017), "Improved Training of Wasserstein GANs", written
once against the neutral ops. Read it beside the paper::

    while theta has not converged:                          generator_iteration
        for t = 1, ..., n_critic:                           critic_steps (the schedule)
            sample real x, latent z, eps ~ U[0, 1]          step_inputs(program, "critic", ...)
            x~ = G(z);  x^ = eps x + (1 - eps) x~           the regularizer's penalty
            L = D(x~) - D(x) + lambda (|grad D(x^)| - 1)^2  critic_objective
            w <- Adam(grad_w L, alpha, beta1, beta2)        the backend's compiled critic_step
        sample a batch of latent z                          step_inputs(program, "generator", ...)
        theta <- Adam(grad_theta -D(G(z)), ...)             generator_objective, generator_step

A :class:`Program` is everything a backend compiles: the two networks, the loss, the
regularizer, the optimizers, the batch and the generator's moving average. The core draws
every random number (:func:`step_inputs`), so two backends given the same seed see the same
numbers; a backend differentiates the objectives' ``"loss"`` entry by the stepped network's
parameters, applies the update of :mod:`wganx.optim` (and, for weight clipping, clips the
critic afterwards), then moves the generator's average (:func:`ema_decay_at`).

The loss (Wasserstein, non-saturating ...) and the penalty (gp, lp, r1, dragan, clipping ...)
are plugins (:class:`wganx.records.LossSpec`, :class:`wganx.records.RegularizerSpec`); the
alternation around them is here and only here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Dict, Iterator, Mapping, Optional, Tuple

import numpy as np

from .errors import Range, WganxError, check_choice
from .optim import OptimizerConfig
from .records import Architecture, LossSpec, RegularizerSpec

if TYPE_CHECKING:
    from .augment import Augment

NETWORKS = ("generator", "critic")
#: the values the program's numeric settings may take; :class:`wganx.config.TrainConfig`
#: checks the flags that set them against these same ranges
BATCH_SIZE, LEARNING_RATE, EMA_DECAY, EMA_START = Range(1), Range(0), Range(0, 1), Range(0)


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
    lr_decay: str = "constant"
    decay_iters: int = 0
    #: the differentiable augmentation of every image the critic sees (:mod:`wganx.augment`), or None
    augment: Optional["Augment"] = None

    def __post_init__(self):
        """The program's own settings are checked here, once, however it is made
        (:func:`wganx.build.make_program`, ``dataclasses.replace``)."""
        BATCH_SIZE.check("batch_size", self.batch_size)
        check_choice("lr_decay", self.lr_decay, LR_DECAYS)
        if self.lr_decay != "constant" and self.decay_iters < 1:
            raise WganxError(f"a {self.lr_decay} learning-rate decay needs its length in iterations, "
                             f"got {self.decay_iters}")
        EMA_DECAY.check("ema_decay", self.ema_decay)
        EMA_START.check("ema_start", self.ema_start)
        for net in NETWORKS:
            LEARNING_RATE.check(f"the {net} learning rate", self.optimizer(net).lr)

    def network(self, net: str):
        """``"generator"`` or ``"critic"`` -> its :class:`wganx.records.Network`."""
        return self.arch.generator if net == "generator" else self.arch.critic

    def optimizer(self, net: str) -> OptimizerConfig:
        return self.generator_optimizer if net == "generator" else self.critic_optimizer

    def example_inputs(self, step: str) -> Dict[str, np.ndarray]:
        """Every numpy input of ``step`` (``"critic"`` or ``"generator"``) as
        :func:`step_inputs` makes it, drawn from a throwaway generator around zero real data:
        what a traced backend takes its input signature (shapes and dtypes) from."""
        real = np.zeros((self.batch_size,) + tuple(self.arch.sample_shape), np.float32)
        labels = np.zeros(self.batch_size, np.int64) if self.num_classes else None
        return step_inputs(self, step, np.random.default_rng(0), real, labels)

    def input_shapes(self, step: str) -> Dict[str, tuple]:
        """Shapes of every numpy input of ``step``: ``z``, ``real``, the regularizer's noise,
        ``labels``, the augmentation's parameters (:meth:`example_inputs`)."""
        return {k: np.shape(v) for k, v in self.example_inputs(step).items()}


# -- the loop ----------------------------------------------------------------------------------
def critic_steps(schedule: str, n_critic: int, iteration: int) -> int:
    """Critic steps before generator step ``iteration`` (0-based): ``n_critic`` (the paper's
    ``constant`` schedule), or Arjovsky et al.'s ``wgan`` schedule (100 for the first 25
    iterations and every 500th, as the original WGAN and the TF1 example train)."""
    if schedule == "wgan" and (iteration < 25 or iteration % 500 == 0):
        return 100
    return n_critic


def step_inputs(program: Program, step: str, rng: np.random.Generator, real=None, labels=None,
                augment_p: Optional[float] = None) -> Dict:
    """The numpy inputs of one step, every random number drawn from the core's ``rng``.

    Order of draws: latent ``z``, then (critic) the regularizer's noise (``eps`` for the
    gradient penalty: one uniform weight per sample), then (generator, conditional) random
    labels, then the augmentation's parameters (``aug_...``), drawn with probability
    ``augment_p`` (ADA's current ``p``; default the program's).
    """
    n = program.batch_size
    inputs = {"z": rng.standard_normal((n, program.latent)).astype(np.float32)}
    if step == "critic":
        inputs["real"] = real
        inputs.update(program.regularizer.sample_noise(rng, n, tuple(program.arch.sample_shape)))
        if program.num_classes:
            inputs["labels"] = labels.astype(np.int64)
    elif program.num_classes:
        inputs["labels"] = rng.integers(0, program.num_classes, n).astype(np.int64)
    if program.augment is not None:
        inputs.update(program.augment.sample(rng, n, tuple(program.arch.sample_shape), augment_p))
    return inputs


def generator_iteration(session, program: Program, rng: np.random.Generator,
                        next_batch: Callable[[], Tuple[np.ndarray, np.ndarray]], n_critic: int,
                        augment_p: Optional[float] = None) -> tuple:
    """One pass of the outer loop: ``n_critic`` critic steps on batches from ``next_batch()``
    (``(real, labels)``), then one generator step, augmented with probability ``augment_p``
    where the program augments. Returns both steps' values, still on the device
    (:meth:`wganx.session.Session.fetch` them when logging)."""
    critic = {}
    for _ in range(n_critic):
        real, labels = next_batch()
        critic = session.critic_step(step_inputs(program, "critic", rng, real, labels, augment_p))
    return critic, session.generator_step(step_inputs(program, "generator", rng, augment_p=augment_p))


def learning_rate(program: Program, net: str, generator_steps, maximum=max):
    """``net``'s learning rate in generator iteration ``generator_steps`` (0-based: the
    generator updates done before it; the critic's steps of that iteration use the same).

    ``constant``: the optimizer's ``lr``. ``linear``: ``lr * max(0, 1 - generator_steps /
    decay_iters)``, the WGAN-GP paper's CIFAR-10 schedule, which reaches 0 at the last
    iteration. A backend computing it in its graph passes its own ``maximum`` and a tensor.
    """
    lr = program.optimizer(net).lr
    if program.lr_decay == "linear":
        return lr * maximum(1.0 - generator_steps / program.decay_iters, 0.0)
    return lr


LR_DECAYS = ("constant", "linear")


# -- the two objectives ------------------------------------------------------------------------
def _labels(inputs):
    return inputs.get("labels")


def critic_objective(ops, program: Program, pg: Mapping, pc: Mapping, inputs: Mapping) -> Dict:
    """The critic's loss on one batch: adversarial loss plus ``lambda`` times the penalty.

    Args:
        ops: the backend's :class:`wganx.ops.Ops`.
        program: the program being compiled.
        pg, pc: generator and critic parameters as backend tensors, by canonical name.
        inputs: backend tensors ``real``, ``z``, optional ``labels`` and the
            regularizer's noise (e.g. ``eps``), all drawn by the core.

    Returns:
        ``{"loss", "penalty", "wasserstein"}``; ``wasserstein`` is
        ``mean D(real) - mean D(fake)``, the estimate the NNabla example plots as the
        negative critic loss. With an adaptive augmentation (ADA) also ``augment_signal``,
        the overfitting measure :class:`wganx.augment.AdaptiveP` adjusts ``p`` from.

    With an augmentation, the critic is ``D(T(x))`` wherever it is evaluated: on real and
    generated images and on the penalty's points (interpolates), sample ``i`` of each with the
    step's ``i``-th parameters, the penalty differentiating through ``T``.
    """
    G, D = program.arch.generator, program.arch.critic
    labels = _labels(inputs)
    with ops.no_grad():
        fake = ops.stop_gradient(G.forward(ops, pg, inputs["z"], training=True, labels=labels))

    def critic(x):
        return D.forward(ops, pc, augmented(ops, program, x, inputs), training=True, labels=labels)

    d_real, d_fake = critic(inputs["real"]), critic(fake)
    loss = program.loss.critic(ops, d_real, d_fake)
    out = {"wasserstein": ops.mean(d_real) - ops.mean(d_fake)}
    if program.augment is not None and program.augment.spec.adaptive:
        out["augment_signal"] = overfitting_signal(ops, d_real, d_fake)
    regularizer = program.regularizer
    if regularizer.penalty is not None:
        penalty = regularizer.penalty(ops, critic, inputs["real"], fake, inputs)
        loss = loss + program.penalty_weight * penalty
        out["penalty"] = penalty
    out["loss"] = loss
    return out


def generator_objective(ops, program: Program, pg: Mapping, pc: Mapping, inputs: Mapping) -> Dict:
    """The generator's loss on one batch of latent codes: ``{"loss"}``."""
    G, D = program.arch.generator, program.arch.critic
    labels = _labels(inputs)
    fake = augmented(ops, program, G.forward(ops, pg, inputs["z"], training=True, labels=labels), inputs)
    return {"loss": program.loss.generator(ops, D.forward(ops, pc, fake, training=True, labels=labels))}


def augmented(ops, program: Program, x, inputs: Mapping):
    """``x`` through the program's augmentation with the step's parameters (or ``x``)."""
    return x if program.augment is None else program.augment.apply(ops, x, inputs)


SIGN_FLOOR = 1e-6  # |d| below it counts as a tie (a float16 graph holds it)


def overfitting_signal(ops, d_real, d_fake):
    """``mean_i sign(D(real_i) - mean_j D(fake_j))``, without a gradient (:class:`wganx.augment.AdaptiveP`)."""
    d = ops.stop_gradient(d_real - ops.mean(d_fake))
    return ops.mean(d / ops.maximum(ops.abs(d), SIGN_FLOOR))


OBJECTIVES = {"critic": critic_objective, "generator": generator_objective}


# -- inference: what generate, critic_values and input_gradient compute ----------------------
def generator_output(ops, program: Program, pg: Mapping, inputs: Mapping):
    """The generator (or its moving average: ``pg`` says which) on ``inputs["z"]`` and the
    labels, in inference mode: batch norm normalises with its running statistics."""
    return program.arch.generator.forward(ops, pg, inputs["z"], training=False, labels=_labels(inputs))


def critic_output(ops, program: Program, pc: Mapping, inputs: Mapping):
    """The critic on ``inputs["x"]`` and the labels, in inference mode."""
    return program.arch.critic.forward(ops, pc, inputs["x"], training=False, labels=_labels(inputs))


def critic_input_gradient(ops, program: Program, pc: Mapping, inputs: Mapping):
    """``d sum D(x) / dx`` at ``inputs["x"]`` through :meth:`wganx.ops.Ops.input_grad`, in
    inference mode (scaled and unscaled by ``ops.grad_scale`` where the session sets it)."""
    return ops.input_grad(lambda x: critic_output(ops, program, pc, dict(inputs, x=x)), inputs["x"])[1]


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


def param_specs(program: Program, net: Optional[str] = None) -> Iterator[Tuple[str, object]]:
    """``(canonical name, ParamSpec)`` of every parameter and running statistic of ``net`` (or
    both networks, the generator's first), each network's in sorted order: the names of
    session states and checkpoints."""
    for n in (net,) if net else NETWORKS:
        for name, spec in sorted(program.network(n).params.items()):
            yield f"{n}/{name}", spec


def state_shapes(program: Program) -> Dict[str, tuple]:
    """Every parameter, running statistic and moving average a session (and a checkpoint) of
    ``program`` holds, by name, with its canonical shape."""
    shapes = {name: tuple(spec.shape) for name, spec in param_specs(program)}
    if program.ema_decay:
        shapes.update({ema_name(k): v for k, v in shapes.items() if k.startswith("generator/")})
    return shapes


def split_params(params: Mapping) -> tuple:
    """``{"generator/x": ..., "critic/y": ...}`` -> ``({"x": ...}, {"y": ...})``."""
    pg = {k[len("generator/"):]: v for k, v in params.items() if k.startswith("generator/")}
    pc = {k[len("critic/"):]: v for k, v in params.items() if k.startswith("critic/")}
    return pg, pc
