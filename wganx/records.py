"""Typed records that plugins return from their hooks.

Every hook returns a list of these. They are plain frozen dataclasses so that a plugin
author can read exactly what wganx expects, and so that listing plugins never imports a
deep-learning framework (a backend names its factory as a lazy ``"module:attr"`` string).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

from .errors import WganxError


@dataclass(frozen=True)
class ParamSpec:
    """One parameter (or running statistic) that the core creates from its seeded RNG.

    Shapes are canonical: conv weights OIHW, deconv weights IOHW (as NNabla and PyTorch
    store them), affine weights (in, out), norm scales and biases (C,).

    Attributes:
        shape: the canonical shape.
        init: ``"glorot_uniform"`` (NNabla's default for conv, deconv and affine),
            ``"zeros"``, ``"ones"`` or ``"normal"`` (with ``std``).
        fan_in: inputs per output (in_maps * kernel area); used by ``glorot_uniform``.
        fan_out: outputs per input (out_maps * kernel area).
        std: standard deviation for ``"normal"``.
        trainable: False for running statistics such as batch-norm means and other state
            (spectral normalisation's ``u``).
    """

    shape: tuple
    init: str = "glorot_uniform"
    fan_in: int = 0
    fan_out: int = 0
    std: float = 0.02
    trainable: bool = True


@dataclass(frozen=True)
class Network:
    """A generator or critic written once against the neutral ``ops`` vocabulary.

    Attributes:
        params: canonical name -> :class:`ParamSpec`, running statistics included
            (``trainable=False``).
        forward: ``forward(ops, p, x, *, training, labels=None) -> y`` where ``p`` maps the
            names of ``params`` to backend tensors.
        has_batch_norm: True when ``forward`` uses ``ops.batch_norm`` (refused in a critic
            trained with an input-gradient penalty, since batch norm couples samples).
    """

    params: Mapping[str, ParamSpec]
    forward: Callable[..., Any]
    has_batch_norm: bool = False


@dataclass(frozen=True)
class ArchConfig:
    """What an architecture is built for; fields are the CLI flags of the same names."""

    image_size: int = 32
    channels: int = 3
    latent: int = 128
    maps: int = 128
    up: Optional["UpsamplerSpec"] = None
    num_classes: int = 0  # > 0: class-conditional generator and projection critic
    critic_norm: str = "none"  # resnet critic: "none", "layer" or "spectral"
    data_kind: str = "image"  # "image" (C, H, W) or "points" (D,)
    data_dim: int = 2  # for "points"


@dataclass(frozen=True)
class Architecture:
    """A generator and a critic built for one :class:`ArchConfig`."""

    generator: Network
    critic: Network
    sample_shape: tuple  # (C, H, W) or (D,)


@dataclass(frozen=True)
class ArchitectureSpec:
    """Record returned by ``wganx_architectures``.

    Attributes:
        name: what ``--arch`` takes.
        build: ``build(config: ArchConfig) -> Architecture``; raises
            :class:`wganx.errors.WganxError` for sizes it cannot make.
        data_kinds: which data it models: ``("image",)``, ``("points",)`` or both.
        uses_upsampler: True when ``--up`` changes the generator.
        description: one line for ``wganx plugins``.
        defaults: recommended training settings, as for :class:`DatasetSpec` (the
            dataset's come first, then the architecture's).
        critic_norms: the ``--critic-norm`` values it builds (``ArchConfig.critic_norm``),
            the first being its default; the parity matrix runs each.
    """

    name: str
    build: Callable[[ArchConfig], Architecture]
    data_kinds: tuple = ("image",)
    uses_upsampler: bool = False
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    critic_norms: tuple = ("none",)

    def check_critic_norm(self, critic_norm: str) -> None:
        """``--critic-norm`` is one of :attr:`critic_norms`: checked here only, before anything
        heavy (the training loop) and before :attr:`build` is called (``make_program``)."""
        if critic_norm not in self.critic_norms:
            raise WganxError(f"--critic-norm {critic_norm}: architecture {self.name!r} offers "
                             f"{', '.join(self.critic_norms)}")


@dataclass(frozen=True)
class UpsamplerSpec:
    """Record returned by ``wganx_upsamplers``: one 2x upsampling conv block of the NNabla example.

    Attributes:
        name: what ``--up`` takes.
        params: ``params(prefix, in_maps, maps) -> (dict[str, ParamSpec], out_maps)``: the
            block's parameters under ``prefix`` for an input of ``in_maps`` channels, where
            ``maps`` is the width the architecture asks for and ``out_maps`` what the block
            really gives (``deconv`` gives ``2 * maps``, as the NNabla example's does); the
            architecture sizes what follows from ``out_maps``.
        apply: ``apply(ops, p, prefix, x) -> y`` doubling H and W. It neither normalises
            nor activates: the architecture applies its batch norm and ReLU after it.
        description: one line.
    """

    name: str
    params: Callable[[str, int, int], tuple]
    apply: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class RegularizerSpec:
    """Record returned by ``wganx_regularizers``: how the critic is kept Lipschitz.

    Attributes:
        name: what ``--regularizer`` takes.
        penalty: ``penalty(ops, critic, real, fake, noise) -> scalar`` where
            ``critic(x) -> (N, 1)`` closes over the critic's parameters and ``noise`` is
            what ``sample_noise`` drew; None for a regularizer without a penalty term.
        sample_noise: ``sample_noise(rng, batch_size, sample_shape) -> dict`` of numpy
            float32 arrays; all randomness comes from the core's generator.
        clip: bound ``c`` of weight clipping: after each critic update, every trainable critic
            parameter (weights, biases and norm gains alike, as the original WGAN clips all
            of ``netD.parameters()``) is clipped to ``[-c, c]``.
        weight: default multiplier of the penalty (``--lambda``).
        needs_input_grad: True when ``penalty`` differentiates the critic by its input
            (then batch norm in the critic is refused).
        description: one line.
        linear_critic: ``linear_critic(norm) -> float``, the exact penalty of a linear critic
            ``D(x) = w . x + b`` whose input gradient is ``w`` everywhere, as a function of
            ``norm = |w|`` (gp: ``(norm - 1) ** 2``). When given, ``wganx parity`` checks the
            penalty against it on every backend alone.
    """

    name: str
    penalty: Optional[Callable[..., Any]] = None
    sample_noise: Callable[..., dict] = field(default=lambda rng, batch_size, shape: {})
    clip: Optional[float] = None
    weight: float = 10.0
    needs_input_grad: bool = False
    description: str = ""
    linear_critic: Optional[Callable[[float], float]] = None


@dataclass(frozen=True)
class LossSpec:
    """Record returned by ``wganx_losses``: the adversarial objective.

    Attributes:
        name: what ``--loss`` takes.
        critic: ``critic(ops, d_real, d_fake) -> scalar`` minimised by the critic.
        generator: ``generator(ops, d_fake) -> scalar`` minimised by the generator.
        description: one line.
    """

    name: str
    critic: Callable[..., Any]
    generator: Callable[..., Any]
    description: str = ""


@dataclass(frozen=True)
class AugmentSpec:
    """Record returned by ``wganx_augmentations``: a differentiable augmentation of the images
    the critic sees (DiffAugment, ADA).

    The same augmentation, drawn afresh for every step, is applied to every image the critic
    evaluates in that step: real, generated and the penalty's points (interpolates), sample
    ``i`` of each with the ``i``-th parameters (``docs/numerics.rst``, "Augmentation").

    Attributes:
        name: what ``--augment`` takes, before an optional ``:OPTIONS``.
        sample: ``sample(rng, batch_size, sample_shape, options, p) -> dict`` of numpy float32
            arrays, each ``(batch_size, ...)``: every random parameter of one step (offsets,
            flip bits, colour factors, cutout masks, per-transform gates), drawn from the
            core's generator ``rng``. ``p`` is the probability of each transform (ADA's; a
            spec that is not :attr:`adaptive` may ignore it). Keys start with ``aug_`` so they
            never meet the regularizer's noise. The count of draws must not depend on ``p``.
        apply: ``apply(ops, x, params, options) -> x'``: the augmentation of ``(N, C, H, W)``
            images written against the neutral ops, ``params`` the backend tensors of what
            ``sample`` drew. It must be differentiable to second order (a penalty
            differentiates through it twice) and must not draw random numbers.
        options: the option words ``--augment NAME:A,B`` may name (DiffAugment's policies);
            empty when the spec takes none.
        default_options: the options used when none are named.
        aliases: ``{word: (option, ...)}``, words that stand for several options.
        adaptive: True when ``p`` follows the critic's overfitting (ADA): the core then asks
            the critic objective for ``augment_signal`` and adjusts ``p`` towards
            ``--ada-target`` (:class:`wganx.augment.AdaptiveP`).
        description: one line.
    """

    name: str
    sample: Callable[..., dict]
    apply: Callable[..., Any]
    options: tuple = ()
    default_options: tuple = ()
    aliases: Mapping[str, tuple] = field(default_factory=dict)
    adaptive: bool = False
    description: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """Record returned by ``wganx_datasets``.

    Attributes:
        name: what ``--dataset`` takes.
        load: ``load(data_dir, image_size, download) -> wganx.data.Dataset``. ``data_dir``
            is a path or None (the default cache); raises WganxError when files are
            missing, saying which files to put where.
        kind: ``"image"`` or ``"points"``.
        description: one line.
        defaults: recommended training settings (``TrainConfig`` field names, e.g.
            ``{"arch": "mlp", "latent": 2}``), applied by ``wganx train`` to every setting
            the user did not give, and reported at the start of the run.

    What ``wganx evaluate`` and ``--eval-interval`` need (all optional):

    Attributes:
        split: ``split(data_dir, split, image_size, download) -> wganx.data.Dataset`` with
            ``split`` ``"train"`` or ``"test"``: the real data samples are compared with
            (default: ``load``'s training data for both).
        metrics: the metrics evaluated when the user names none (default: ``energy`` for
            points; FID, KID, ... for images).
        modes: ``modes() -> (centers (K, D), std)`` of a mixture, which enables the
            ``modes`` metric (modes covered and high-quality share).
        classifier: ``classifier(data_dir, download, log) -> extractor``, a domain feature
            extractor with ``features(x)``, ``predict_proba(x)``, ``feature_dim`` and
            ``test_accuracy``; images are then measured in its features by default
            (``--features domain``) instead of Inception's.
        classifier_for: ``classifier_for(data_dir) -> bool``: whether ``classifier`` serves
            the data there (a folder of images only when its subfolders are classes);
            default: always.
        kind_for: ``kind_for(data_dir) -> str``: the kind of the data there, where it
            depends on the folder (a prepared dataset holds images or vectors); default:
            ``kind``.
    """

    name: str
    load: Callable[..., Any]
    kind: str = "image"
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    split: Optional[Callable[..., Any]] = None
    metrics: Sequence[str] = ()
    modes: Optional[Callable[[], tuple]] = None
    classifier: Optional[Callable[..., Any]] = None
    classifier_for: Optional[Callable[[Any], bool]] = None
    kind_for: Optional[Callable[[Any], str]] = None


@dataclass(frozen=True)
class MetricSpec:
    """Record returned by ``wganx_metrics``.

    Attributes:
        name: what ``--metrics`` takes.
        compute: ``compute(samples, reference, **options) -> dict[str, float]``.
        kinds: what it is computed on: ``points``, or ``features`` / ``probs`` / ``labels``
            of images in a feature space.
        description: one line.
        options: its default options (``wganx evaluate`` and ``--eval-interval`` pass them;
            a caller's ``metric_options`` override them).
        default_in: where it is computed when no ``--metrics`` are given and the dataset's
            record names none: ``points``, ``domain`` (a dataset's classifier) or the name
            of a feature space (:class:`FeatureSpec`).
        uses: what it takes from the dataset's record: ``modes`` passes ``centers`` and
            ``std`` from ``DatasetSpec.modes()``.
    """

    name: str
    compute: Callable[..., Mapping[str, float]]
    kinds: tuple = ("image",)
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    default_in: tuple = ()
    uses: tuple = ()


@dataclass(frozen=True)
class FeatureSpec:
    """Record returned by ``wganx_features``: a feature space for image metrics, beside a
    dataset's own domain classifier (``DatasetSpec.classifier``).

    Attributes:
        name: what ``wganx evaluate --features`` takes; metric keys are prefixed with it.
        load: ``load(weights, device) -> extractor``, an object with ``features(images)``
            and ``predict_proba(images)`` on NCHW images in [-1, 1].
        check: ``check(weights)``: raise :class:`wganx.errors.WganxError` naming what to
            install, without loading anything heavy; called before any training.
        description: one line.
    """

    name: str
    load: Callable[..., Any]
    check: Callable[..., None] = lambda weights=None: None
    description: str = ""


@dataclass(frozen=True)
class EngineSpec:
    """A data-parallel engine a backend runs on, and the launcher that starts its processes.

    Attributes:
        name: what ``--distribute`` takes (``torchrun``, ``mirrored``, ...).
        launcher: the launcher's name in messages (``torchrun``, ``mpirun``, ``TF_CONFIG``).
        example: a command line that starts wganx under the launcher, for messages.
        detect: ``environ -> (processes, process)`` when the launcher started this process
            as one of several, else None; it reads only the environment, never imports a
            framework (the core asks before anything heavy, so that only process 0 locks the
            run folder). Raise :class:`wganx.errors.WganxError` for a malformed environment.
        command: ``(n, context) -> (argv prefix, environment)`` that starts ``python ...``
            as ``n`` replicas on this machine (``wganx bench --replicas``); None: no such
            launch.
    """

    name: str
    launcher: str = ""
    example: str = ""
    detect: Optional[Callable[[Mapping[str, str]], Optional[tuple]]] = None
    command: Optional[Callable[[int, str], tuple]] = None


@dataclass(frozen=True)
class BackendSpec:
    """Record returned by ``wganx_backends``.

    Attributes:
        name: what ``--backend`` takes.
        factory: ``"module:attr"`` of the backend class; imported only when used, so
            listing plugins never imports a framework.
        requires: importable top-level modules the backend needs (checked without
            importing them).
        install_hint: what to install when they are missing.
        capabilities: e.g. ``{"cpu", "cuda", "cudnn", "half", "double"}``: the contexts and
            ``-t`` type configs the backend serves. ``"double"`` (float64) also makes it an
            oracle of the second-order tests (finite differences, ``wganx parity``'s float64
            gradients), which are skipped for a backend without it.
        description: one line.
        engines: the data-parallel engines the backend runs on (:class:`EngineSpec`, or
            bare names), which its :meth:`wganx.backend.Backend.replicate` starts;
            ``--distribute`` offers the union of every backend's, and ``wganx bench
            --replicas`` launches the first.
        thread_env: for a framework that reads its CPU thread count from the environment once,
            when its runtime starts (XLA's ``XLA_FLAGS``, say): ``threads -> {variable:
            value}``, set by the core before it imports :attr:`factory`, beside OpenMP's, MKL's
            and OpenBLAS's variables. A framework that takes the count at run time overrides
            :meth:`wganx.backend.Backend.set_threads` instead.
    """

    name: str
    factory: str
    requires: Sequence[str] = ()
    install_hint: str = ""
    capabilities: frozenset = frozenset({"cpu"})
    description: str = ""
    engines: Sequence[str] = ()
    thread_env: Optional[Callable[[int], Mapping[str, str]]] = None

    def __post_init__(self):
        object.__setattr__(self, "engines", tuple(
            e if isinstance(e, EngineSpec) else EngineSpec(str(e)) for e in self.engines))

    @property
    def engine_names(self) -> tuple:
        return tuple(e.name for e in self.engines)

    def missing(self) -> list:
        """Required modules that cannot be found, without importing any of them."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def load(self):
        """Import and return the backend class."""
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class CommandSpec:
    """Record returned by ``wganx_commands``: a subcommand of the ``wganx`` command.

    Attributes:
        name: ``wganx NAME``; the built-in commands' names cannot be taken.
        command: a function whose parameters typer turns into arguments and options
            (annotate them with ``typer.Option`` / ``typer.Argument``); raise
            :class:`wganx.errors.WganxError` for a one-line error with exit status 2, and
            return the exit status (``None`` means 0).
        help: one line for ``wganx --help``.
    """

    name: str
    command: Callable[..., Any]
    help: str = ""

    @property
    def description(self) -> str:
        return self.help
