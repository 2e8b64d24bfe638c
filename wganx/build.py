"""From names and settings to the pieces a run is made of: the backend, the dataset, the
:class:`wganx.algorithm.Program` and its initial state. The one place where plugin names are
resolved into records and wired together; it compiles nothing (:meth:`wganx.backend.Backend.compile`
does)."""
from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from .algorithm import Program, ema_name
from .config import TrainConfig
from .deprecation import moved
from .errors import BackendUnavailableError, WganxError
from .optim import OptimizerConfig, initial_state
from .params import init_params
from .plugins import Registry, registry as default_registry
from .records import ArchConfig
from .threads import resolve_threads, set_thread_env

# step_inputs moved to wganx.algorithm (Algorithm 1's inputs belong with it); build_program was
# renamed: make_program and it differed in ways their names did not tell
__getattr__ = moved(__name__, {"step_inputs": "wganx.algorithm.step_inputs",
                               "build_program": "wganx.build.program_from_config"})


def load_backend(name: str, context: str = "cpu", device_id: int = 0, type_config: str = "float",
                 reg: Optional[Registry] = None, threads: Optional[int] = None):
    """Construct backend ``name``; a missing framework says what to install. ``threads``:
    None leaves the framework's CPU threads as they are, 0 picks the idle CPUs, N sets N
    (:mod:`wganx.threads`)."""
    reg = reg or default_registry()
    entry = reg.entry("backend", name)
    ok, why = entry.availability()
    if not ok:
        raise BackendUnavailableError(f"backend {name!r} is unavailable: {why}")
    spec = entry.record
    if type_config != "float" and type_config not in spec.capabilities:
        raise BackendUnavailableError(f"backend {name!r} does not support -t {type_config}")
    threads = resolve_threads(threads)
    if threads is not None:  # before the framework loads: OpenMP, TensorFlow, XLA read them once
        set_thread_env(threads)
        if spec.thread_env is not None:
            os.environ.update(spec.thread_env(threads))
    backend = spec.load()(context=context, device_id=device_id, type_config=type_config)
    backend.engines = spec.engine_names
    if threads is not None:
        backend.set_threads(threads)
    return backend


def make_program(*, arch: str, regularizer: str = "gp", loss: str = "wasserstein",
                 arch_config: ArchConfig, penalty_weight: Optional[float] = None,
                 critic_optimizer: OptimizerConfig = OptimizerConfig(),
                 generator_optimizer: OptimizerConfig = OptimizerConfig(),
                 batch_size: int = 64, allow_critic_batch_norm: bool = False,
                 ema_decay: float = 0.0, ema_start: int = 0, lr_decay: str = "constant", decay_iters: int = 0,
                 augment: str = "none", augment_p: float = 0.0, reg: Optional[Registry] = None) -> Program:
    """Resolve plugin names and build the :class:`Program` a backend compiles, from the
    program's own settings (:func:`program_from_config` makes them from a run's)."""
    reg = reg or default_registry()
    arch_spec = reg.get("architecture", arch)
    if arch_config.data_kind not in arch_spec.data_kinds:
        raise WganxError(f"architecture {arch!r} models {'/'.join(arch_spec.data_kinds)} data, "
                         f"not {arch_config.data_kind}")
    arch_spec.check_critic_norm(arch_config.critic_norm)
    reg_spec = reg.get("regularizer", regularizer)
    augmentation = parse_augment(augment, arch_config.data_kind, reg, augment_p)
    architecture = arch_spec.build(arch_config)
    if reg_spec.needs_input_grad and architecture.critic.has_batch_norm and not allow_critic_batch_norm:
        raise WganxError(
            f"the {arch!r} critic uses batch norm, which couples the samples of a batch, while the "
            f"{regularizer!r} penalty is per sample; use another critic (or allow it explicitly)")
    return Program(
        arch=architecture, loss=reg.get("loss", loss), regularizer=reg_spec,
        penalty_weight=reg_spec.weight if penalty_weight is None else float(penalty_weight),
        critic_optimizer=critic_optimizer, generator_optimizer=generator_optimizer,
        batch_size=batch_size, latent=arch_config.latent, num_classes=arch_config.num_classes,
        ema_decay=float(ema_decay), ema_start=int(ema_start), lr_decay=lr_decay, decay_iters=int(decay_iters),
        augment=augmentation)


def parse_augment(augment: str, data_kind: str, reg: Registry, augment_p: float = 0.0):
    """``--augment``'s value as a :class:`wganx.augment.Augment` (None for ``none``), checked
    against the data's kind: unknown names, options and non-image data are one-line errors."""
    from .augment import check_p, parse

    augmentation = parse(augment, reg, check_p(float(augment_p)))
    if augmentation is not None and data_kind != "image":
        raise WganxError(f"--augment {augment}: augmentations transform images, and this data is {data_kind}; "
                         "use --augment none")
    return augmentation


def initial_arrays(program: Program, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Parameters (generator first, then critic), zeroed optimizer state and, with a moving
    average, its start (a copy of the generator), from ``rng``."""
    arrays = {}
    for net, network, opt in (("generator", program.arch.generator, program.generator_optimizer),
                              ("critic", program.arch.critic, program.critic_optimizer)):
        values = init_params(network.params, rng)
        arrays.update({f"{net}/{k}": v for k, v in values.items()})
        trainable = {k: v for k, v in values.items() if network.params[k].trainable}
        arrays.update(initial_state(net, trainable, opt))
    return with_ema(program, arrays)


def with_ema(program: Program, arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """``arrays`` plus a moving average that starts as the generator, where ``program`` keeps
    one and ``arrays`` (a checkpoint of a run without it) lacks it."""
    if not program.ema_decay:
        return arrays
    out = dict(arrays)
    for name in program.arch.generator.params:
        key = f"generator/{name}"
        if key in out:
            out.setdefault(ema_name(key), np.array(out[key], copy=True))
    return out


def load_dataset(config: TrainConfig, reg=None):
    """The dataset ``config`` names, checked against the batch and ``--conditional``."""
    reg = reg or default_registry()
    spec = reg.get("dataset", config.dataset)
    size = config.image_size if spec.kind == "image" else None
    dataset = spec.load(config.data_dir, size, config.download)
    if config.conditional and not dataset.num_classes:
        raise WganxError(f"--conditional needs labels, and dataset {config.dataset!r} has none")
    if len(dataset) and config.batch_size > len(dataset):
        raise WganxError(f"--batch-size {config.batch_size} exceeds the {len(dataset)} samples of {config.dataset!r}")
    return dataset


def program_from_config(config: TrainConfig, sample_shape: tuple, data_kind: str, num_classes: int, reg=None):
    """The :class:`wganx.algorithm.Program` that a run's settings (``config``, as ``wganx
    train`` takes them) make for data of ``sample_shape``: the architecture's settings from
    the data, the optimizers from ``--optimizer``/``--lrg``/``--lrd``, then
    :func:`make_program`, which takes the program's own settings directly (tests, the parity
    matrix and the benchmarks call it)."""
    reg = reg or default_registry()
    arch_spec = reg.get("architecture", config.arch)
    image = data_kind == "image"
    if image and tuple(sample_shape[1:]) != (config.image_size, config.image_size):
        raise WganxError(f"the data is {sample_shape[1]}x{sample_shape[2]}, but --image-size is {config.image_size}")
    arch_config = ArchConfig(
        image_size=config.image_size, channels=sample_shape[0] if image else 0, latent=config.latent,
        maps=config.maps, up=reg.get("upsampler", config.up) if arch_spec.uses_upsampler else None,
        num_classes=num_classes if config.conditional else 0, critic_norm=config.critic_norm,
        data_kind=data_kind, data_dim=sample_shape[0] if not image else 2)

    def optimizer(lr):
        if config.optimizer == "rmsprop":
            return OptimizerConfig("rmsprop", lr=lr, eps=1e-10, rho=0.9)  # TF1's RMSProp (the TF1 WGAN example)
        return OptimizerConfig("adam", lr=lr, beta1=config.beta1, beta2=config.beta2)

    return make_program(arch=config.arch, regularizer=config.regularizer, loss=config.loss,
                        arch_config=arch_config, penalty_weight=config.lambda_,
                        critic_optimizer=optimizer(config.lrd), generator_optimizer=optimizer(config.lrg),
                        batch_size=config.batch_size, allow_critic_batch_norm=config.allow_critic_batch_norm,
                        ema_decay=config.ema_decay, ema_start=config.ema_start, lr_decay=config.lr_decay,
                        decay_iters=config.lr_decay_iters or config.max_iter, augment=config.augment,
                        augment_p=config.augment_p, reg=reg)
