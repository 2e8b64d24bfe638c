"""Training settings: one dataclass, one short comment per field (the CLI is generated from it).

Flag names and meanings follow the NNabla example's ``args.py`` (``-c/--context``, ``-d/--device-id``,
``-t/--type-config``, ``-b``, ``-i``, ``--n-critic``, ``--lambda`` ...); the defaults are the
WGAN-GP paper's: Adam with lr 1e-4 and betas (0.5, 0.9) as in the NNabla example, lambda 10, five
critic steps per generator step. ``--config FILE.toml`` takes the same names (dashes or
underscores); flags given on the command line override the file.
"""
from __future__ import annotations

import numbers
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Optional

import numpy as np

from .algorithm import BATCH_SIZE, EMA_DECAY, EMA_START, LEARNING_RATE, LR_DECAYS
from .augment import ADA_TARGET, PROBABILITY
from .distributed import engine_names
from .errors import Range, WganxError, check_choice
from .optim import OPTIMIZERS
from .threads import THREADS

CONTEXTS = ("cpu", "cuda", "cudnn")  # NNabla's extension contexts, on every backend
PROGRESS_STYLES = ("auto", "bar", "lines", "notebook")  # wganx.progress.TrainingProgress
# a numeric field's "range": what the flag takes; the program's settings use its own ranges
AT_LEAST_1, NOT_NEGATIVE, UNIT_INTERVAL = Range(1), Range(0), Range(0, 1)
SEED = NOT_NEGATIVE  # numpy's generators take no negative seed (generate and evaluate check theirs too)


@dataclass
class TrainConfig:
    # -- where and how to compute (the NNabla example's flags) --
    backend: str = field(default_factory=lambda: os.environ.get("WGANX_BACKEND", "torch"),
                         metadata={"help": "the framework that computes", "shown_default": "$WGANX_BACKEND, else torch"})
    context: str = field(default="cpu", metadata={"help": "device: NNabla's extension contexts, on every backend",
                                                   "flags": ("-c",), "choices": CONTEXTS})
    device_id: int = field(default=0, metadata={"range": NOT_NEGATIVE, "help": "GPU index", "flags": ("-d",)})
    type_config: str = field(default="float", metadata={"help": "precision: half is mixed precision (GPU)",
                                                         "flags": ("-t",), "choices": ("float", "half")})
    threads: int = field(default=0, metadata={"range": THREADS,
        "help": "CPU threads of the backend's kernels (a backend with single-threaded CPU kernels "
                "uses one); 0: the CPUs no other process keeps busy when the run starts", "shown_default": "0"})
    distribute: str = field(default="auto", metadata={
        "help": "data-parallel engine: auto joins the job a launcher started, none stays alone, the others "
                "are the installed backends' (docs: Scaling out)", "choices": engine_names})
    sync_batch_norm: bool = field(default=True, metadata={
        "help": "data-parallel batch norm uses the global batch's statistics (as one process does)"})
    # -- the model --
    arch: str = field(default="nnabla-cifar", metadata={"help": "architecture plugin"})
    up: str = field(default="nearest", metadata={"help": "upsampler of generators built from upsampling blocks"})
    maps: int = field(default=128, metadata={"range": AT_LEAST_1, "help": "width: feature maps (conv) or units (mlp)"})
    latent: int = field(default=128, metadata={"range": AT_LEAST_1, "help": "size of the latent vector z"})
    image_size: int = field(default=32, metadata={"range": AT_LEAST_1, "help": "height and width of generated images"})
    critic_norm: str = field(default="none", metadata={
        "help": "normalisation of the critic, for architectures that offer one (wganx plugins says which)"})
    conditional: bool = field(default=False, metadata={"help": "class-conditional G and D (WCGAN, giakou4/gans)"})
    # -- the objective --
    loss: str = field(default="wasserstein", metadata={"help": "loss plugin (nonsaturating: the standard GAN's)"})
    regularizer: str = field(default="gp", metadata={"help": "regularizer plugin: gradient penalty and its relatives"})
    lambda_: Optional[float] = field(default=None, metadata={"range": NOT_NEGATIVE,
        "help": "penalty weight", "shown_default": "the regularizer's, 10 for gp", "flags": ("--lambda",)})
    allow_critic_batch_norm: bool = field(default=False, metadata={
        "help": "permit a batch-norm critic with an input-gradient penalty (not recommended)"})
    # -- differentiable augmentation (docs: Numerics, Augmentation) --
    augment: str = field(default="none", metadata={
        "help": "augment every image the critic sees: diffaug[:color,translation,cutout] (DiffAugment) or "
                "ada[:TRANSFORMS] (ADA; a wrong option lists the choices); none: off"})
    augment_p: float = field(default=0.0, metadata={"range": PROBABILITY,
        "help": "probability of each transform: ADA's at the start (fixed with --ada-kimg 0), a plugin's that "
                "does not adapt it throughout"})
    ada_target: float = field(default=0.6, metadata={"range": ADA_TARGET,
        "help": "ADA: the target p is steered to of r_t, the mean sign of D(real) minus the generated images' "
                "mean D (docs: Numerics, Augmentation)"})
    ada_kimg: float = field(default=100.0, metadata={"range": NOT_NEGATIVE,
        "help": "ADA: thousands of real images over which p can go from 0 to 1 (0: p stays at --augment-p)"})
    ada_interval: int = field(default=4, metadata={"range": AT_LEAST_1,
                                                   "help": "ADA: generator iterations between adjustments of p"})
    # -- optimisation --
    batch_size: int = field(default=64, metadata={"range": BATCH_SIZE,
                                                  "help": "batch size (data-parallel: the global batch, "
                                                          "split over the replicas)", "flags": ("-b",)})
    max_iter: int = field(default=100000, metadata={"range": AT_LEAST_1,
                                                    "help": "generator iterations", "flags": ("-i",)})
    n_critic: int = field(default=5, metadata={"range": AT_LEAST_1, "help": "critic steps per generator step"})
    critic_schedule: str = field(default="constant", metadata={
        "help": "wgan: 100 critic steps for the first 25 and every 500th iteration",
        "choices": ("constant", "wgan")})
    optimizer: str = field(default="adam", metadata={"help": "rmsprop: the original WGAN's",
                                                      "choices": OPTIMIZERS})
    lrg: float = field(default=1e-4, metadata={"range": LEARNING_RATE, "help": "generator learning rate"})
    lrd: float = field(default=1e-4, metadata={"range": LEARNING_RATE, "help": "critic learning rate"})
    lr_decay: str = field(default="constant", metadata={
        "help": "learning rates over the run: constant, or linear decay to 0 at --lr-decay-iters (the WGAN-GP "
                "paper's CIFAR-10 ResNet)", "choices": LR_DECAYS})
    lr_decay_iters: int = field(default=0, metadata={"range": NOT_NEGATIVE,
        "help": "generator iterations over which the learning rates decay (0: --max-iter); give it when a run "
                "will be resumed with a larger --max-iter, so its schedule does not change", "shown_default": "0"})
    beta1: float = field(default=0.5, metadata={"range": UNIT_INTERVAL,
        "help": "Adam beta1 (the NNabla example's 0.5; the paper's CIFAR runs 0.0)"})
    beta2: float = field(default=0.9, metadata={"range": UNIT_INTERVAL, "help": "Adam beta2"})
    ema_decay: float = field(default=0.0, metadata={"range": EMA_DECAY,
        "help": "keep an exponential moving average of the generator's weights with this decay, e.g. 0.999 "
                "(0: off); samples, --eval-interval, generate and evaluate then use it"})
    ema_start: int = field(default=0, metadata={"range": EMA_START,
                                                "help": "generator iterations before the average starts "
                                                        "(until then it copies the generator)"})
    recipe: str = field(default="wgan-gp", metadata={
        "help": "wgan: the original WGAN, as the TF1 example trains it (clip 0.01, RMSProp lr 5e-5, wgan schedule)",
        "choices": ("wgan-gp", "wgan")})
    # -- data and randomness --
    dataset: str = field(default="cifar10", metadata={"help": "dataset plugin"})
    data_dir: Optional[str] = field(default=None, metadata={"help": "folder holding the dataset's files"})
    download: bool = field(default=True, metadata={"help": "download a missing dataset"})
    seed: int = field(default=0, metadata={"range": SEED, "help": "seed of every random number the core draws"})
    # -- output --
    monitor_path: str = field(default="./result/example_0", metadata={"help": "folder for everything written"})
    save_interval: int = field(default=1000, metadata={"range": AT_LEAST_1,
                                                       "help": "iterations between checkpoints and samples"})
    log_interval: int = field(default=10, metadata={"range": AT_LEAST_1,
                                                    "help": "iterations between loss rows (and device syncs)"})
    num_samples: int = field(default=64, metadata={"range": AT_LEAST_1, "help": "images per sample tile"})
    keep_checkpoints: int = field(default=0, metadata={"range": NOT_NEGATIVE,
                                                       "help": "keep only the newest N checkpoints (0: all)"})
    eval_interval: int = field(default=0, metadata={"range": NOT_NEGATIVE,
                                                    "help": "iterations between quality metrics (0: off)"})
    eval_metrics: Optional[str] = field(default=None, metadata={
        "help": "comma-separated metrics for --eval-interval", "shown_default": "the dataset's usual ones"})
    eval_samples: int = field(default=2000, metadata={"range": AT_LEAST_1, "help": "generated samples per evaluation"})
    raw_weights: bool = field(default=False, metadata={
        "help": "sample tiles and --eval-interval use the generator's own weights, not their moving average"})
    tensorboard: bool = field(default=False, metadata={"help": "also write TensorBoard event files"})
    progress: bool = field(default=True, metadata={"help": "show progress (--progress-style says how)"})
    progress_style: str = field(default="auto", metadata={
        "help": "auto: a live line in a Jupyter notebook, a bar on a terminal, periodic lines otherwise",
        "choices": PROGRESS_STYLES})
    resume: Optional[str] = field(default=None, metadata={
        "help": "continue from a checkpoint: a path, or (no value) the newest one in --monitor-path"})
    overwrite: bool = field(default=False, metadata={
        "help": "replace the run already in --monitor-path (its checkpoints, losses and samples are deleted)"})

    def apply_recipe(self, explicit: set) -> "TrainConfig":
        """The TF1 WGAN example's original WGAN, for every setting the user did not give explicitly."""
        if self.recipe == "wgan":
            for name, value in (("regularizer", "clip"), ("optimizer", "rmsprop"), ("lrg", 5e-5),
                                ("lrd", 5e-5), ("critic_schedule", "wgan")):
                if name not in explicit:
                    setattr(self, name, value)
        return self

    def validate(self) -> "TrainConfig":
        for f in fields(self):
            if field_choices(f):
                check_choice(f"--{flag_name(f.name)}", getattr(self, f.name), field_choices(f))
            if "range" in f.metadata and getattr(self, f.name) is not None:  # --lambda: None is the default
                f.metadata["range"].check(f"--{flag_name(f.name)}", getattr(self, f.name))
        if self.resume and self.overwrite:
            raise WganxError("--resume continues the run in --monitor-path and --overwrite replaces it: "
                             "give one of them")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


def load_toml(path: str) -> dict:
    """Keys of a TOML file as TrainConfig field names; unknown keys are an error."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise WganxError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise WganxError(f"config file {path} is not valid TOML: {exc}") from None
    where = f"config file {path}"
    return {setting_name(key, where): checked_setting(where, key, value) for key, value in raw.items()}


def setting_name(key: str, where: str) -> str:
    """The :class:`TrainConfig` field a user means by ``key`` (``batch-size``, ``batch_size``;
    ``lambda`` is ``lambda_``); an unknown key is a one-line error that suggests the nearest."""
    import difflib

    name = key.replace("-", "_")
    name = "lambda_" if name == "lambda" else name
    known = [f.name for f in fields(TrainConfig)]
    if name not in known:
        near = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""  # the field's own name: valid in TOML and Python
        raise WganxError(f"{where}: unknown setting {key!r}; {hint}choose from: " + ", ".join(sorted(known)))
    return name


_TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def base_type(name: str) -> str:
    """``"int"``, ``"float"``, ``"str"`` or ``"bool"``: field ``name``'s type without ``Optional``."""
    annotation = next(f.type for f in fields(TrainConfig) if f.name == name)
    annotation = annotation if isinstance(annotation, str) else annotation.__name__
    return annotation[len("Optional["):-1] if annotation.startswith("Optional[") else annotation


def checked_setting(where: str, key: str, value):
    """``value`` as setting ``key`` takes it, if it fits the field's type (an integer is a valid
    float; numpy numbers count), else a one-line error naming ``where`` it came from."""
    base = base_type(setting_name(key, where))
    ok = {"int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)),
          "float": lambda v: isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)),
          "str": lambda v: isinstance(v, str),
          "bool": lambda v: isinstance(v, (bool, np.bool_))}[base]
    if ok(value):
        return {"int": int, "float": float, "bool": bool, "str": str}[base](value)
    given = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a table"}.get(type(value), type(value).__name__)
    raise WganxError(f"{where}: {key} must be {_TYPE_NAMES[base]}, got {given} ({value!r})")


# The panels of ``wganx train --help``, in the order of the fields above; every field is in one.
SECTIONS = {
    "Device": ("backend", "context", "device_id", "type_config", "threads", "distribute", "sync_batch_norm"),
    "Model": ("arch", "up", "maps", "latent", "image_size", "critic_norm", "conditional"),
    "Objective": ("loss", "regularizer", "lambda_", "allow_critic_batch_norm"),
    "Augmentation": ("augment", "augment_p", "ada_target", "ada_kimg", "ada_interval"),
    "Optimisation": ("batch_size", "max_iter", "n_critic", "critic_schedule", "optimizer", "lrg", "lrd", "lr_decay",
                     "lr_decay_iters", "beta1", "beta2", "ema_decay", "ema_start", "recipe"),
    "Data": ("dataset", "data_dir", "download", "seed"),
    "Output": ("monitor_path", "save_interval", "log_interval", "num_samples", "keep_checkpoints", "eval_interval",
               "eval_metrics", "eval_samples", "raw_weights", "tensorboard", "progress", "progress_style", "resume",
               "overwrite"),
}
# Fields that name a plugin, and the plugin kind (their choices come from the registry).
PLUGIN_FIELDS = {"backend": "backend", "arch": "architecture", "up": "upsampler", "loss": "loss",
                 "regularizer": "regularizer", "dataset": "dataset"}


def field_choices(f) -> tuple:
    """A field's fixed choices; a callable gives those of the installed plugins (engines)."""
    choices = f.metadata.get("choices", ())
    return tuple(choices() if callable(choices) else choices)


def flag_name(name: str) -> str:
    """``lambda_`` -> ``lambda``, ``batch_size`` -> ``batch-size``: a field as users write it."""
    return name.rstrip("_").replace("_", "-")


def default_of(name: str):
    f = next(f for f in fields(TrainConfig) if f.name == name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


def from_user(values: dict, reg=None):
    """``(config, recommended)``: the configuration a user means by ``values`` (the settings
    they gave, flags over file). Every setting they did not give takes the dataset's
    recommended default, then the architecture's (``defaults`` of their records), then
    :class:`TrainConfig`'s; ``--recipe`` overrides recommendations, not what was given.
    ``recommended`` is what the records supplied."""
    from .plugins import registry

    reg = reg or registry()
    known = {f.name for f in fields(TrainConfig)}
    recommended = {}
    for kind, field_name in (("dataset", "dataset"), ("architecture", "arch")):
        name = values.get(field_name, recommended.get(field_name, default_of(field_name)))
        for key, value in reg.get(kind, name).defaults.items():
            if key not in known:
                raise WganxError(f"the {kind} plugin {name!r} recommends an unknown setting {key!r}")
            if key not in values and key not in recommended:
                recommended[key] = value
    config = TrainConfig(**{**recommended, **values}).apply_recipe(set(values))
    if "up" in values and not reg.get("architecture", config.arch).uses_upsampler:
        raise WganxError(f"--up {values['up']}: architecture {config.arch!r} has no upsampling blocks; "
                         "leave --up out, or choose an --arch that uses one")
    return config, {k: v for k, v in recommended.items() if getattr(config, k) == v}
