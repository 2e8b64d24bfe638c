"""wganx from Python: :func:`train`, :func:`load` and :func:`evaluate`, what the commands do,
for scripts and notebooks.

The commands are a thin layer over these functions, so the two cannot drift apart: the
settings of :func:`train` are the options of ``wganx train`` (one per field of
:class:`wganx.config.TrainConfig`, same names, same defaults, the plugins' recommendations
filling what is not given); :func:`evaluate` takes the options of ``wganx evaluate``. What
protects a run from the command line protects it here: the run folder is locked, a folder
holding a run is not reused without ``resume=True`` or ``overwrite=True``, and every setting
and plugin name is checked before data loads or a framework starts. A bad input is a
:class:`wganx.WganxError` whose message says what to do; in IPython and Jupyter it shows as
that one line, without a traceback.
"""
from __future__ import annotations

import inspect
import os
import re
import signal
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from .config import (SECTIONS, TrainConfig, base_type, checked_setting, default_of, flag_name, from_user, load_toml,
                     setting_name)
from .errors import WganxError
from .gan import GAN, PathLike, load

__all__ = ["train", "load", "evaluate", "TrainResult", "TrainingInterrupted", "GAN"]


# -- train ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` leaves: where the run is and how it went.

    ``losses`` holds the columns of ``losses.csv`` (``iteration``, ``critic_loss``,
    ``generator_loss``, ``penalty``, ``negative_critic_loss``, ``wasserstein_estimate``,
    ``elapsed_s``, and with ``augment`` ``augment_p`` and ``augment_signal``), one entry per
    logged iteration, the parts before a resume included.
    ``writer`` is False in the processes of a data-parallel job that write nothing (all but
    the first); their ``losses`` are empty.
    """

    status: str  # "finished" or "interrupted"
    iteration: int
    run_folder: Path
    checkpoint: Optional[Path]
    losses: Dict[str, np.ndarray] = field(repr=False)
    config: TrainConfig = field(repr=False)
    writer: bool = True

    @property
    def last_losses(self) -> Dict[str, float]:
        """The last logged row of ``losses``."""
        return {k: float(v[-1]) for k, v in self.losses.items() if len(v)}

    def plot_losses(self):
        """The loss plot (``losses.png``) as a matplotlib figure; a notebook shows it inline."""
        from .monitor import loss_figure

        if not self.losses:
            raise WganxError(f"no losses were logged in {self.run_folder}")
        names = list(self.losses)
        return loss_figure([dict(zip(names, values)) for values in zip(*self.losses.values())])

    def load(self, backend: Optional[str] = None, **options) -> "GAN":
        """The last checkpoint as a :class:`GAN` (``options`` as :func:`load`)."""
        if self.checkpoint is None:
            raise WganxError(f"{self.run_folder} holds no checkpoint yet")
        return load(self.checkpoint, backend, **options)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C, a Jupyter kernel's interrupt or SIGTERM stopped :func:`train` between two
    iterations; the iteration was saved first. ``result`` is the :class:`TrainResult` so far
    and ``signum`` the signal. A KeyboardInterrupt, so a script stops as on any Ctrl-C."""

    def __init__(self, result: TrainResult, signum: int):
        self.result, self.signum = result, signum
        where = f"; the last checkpoint is {result.checkpoint}" if result.checkpoint else ""
        super().__init__(f"training stopped by {signal.Signals(signum).name} at iteration {result.iteration}{where} "
                         "(continue with resume=True)")

    def _render_traceback_(self):  # IPython's hook: this line instead of a traceback
        return [f"{type(self).__name__}: {self}"]


def _given(settings: Dict[str, Any], where: str) -> Dict[str, Any]:
    """``settings`` as TrainConfig values, checked one by one; None means "not given", as an
    option left out of the command line (the plugins' recommendations then fill it)."""
    values = {}
    for key, value in settings.items():
        name = setting_name(key, where)
        if value is None or (name == "resume" and value is False):
            continue
        if name == "resume" and value is True:
            value = "latest"
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        values[name] = checked_setting(where, key, value)
    return values


def train(config_file: Optional[PathLike] = None, **settings) -> TrainResult:
    """Train a GAN; the keyword arguments are the options of ``wganx train``.

    Args:
        config_file: a TOML file of the same names (``--config``); the keyword arguments
            override it.
        **settings: any field of :class:`wganx.config.TrainConfig` (``dataset``, ``backend``,
            ``max_iter``, ``batch_size``, ``lambda_`` for ``--lambda`` ...), listed with their
            defaults in the signature. ``resume=True`` continues from the newest checkpoint
            in ``monitor_path``, ``resume=PATH`` from that one.

    Returns:
        a :class:`TrainResult`.

    Raises:
        WganxError: a setting, a plugin name or the run folder is not usable (before
            anything heavy starts), or training diverged; the message names the keywords
            (``overwrite=True``), where the command's names its flags (``--overwrite``).
        TrainingInterrupted: Ctrl-C or the kernel's interrupt; the interrupted iteration is
            saved first.

    Example (a few seconds on a CPU)::

        result = wganx.train(dataset="8gaussians", arch="mlp", maps=32, latent=2, max_iter=200,
                             monitor_path="runs/toy")
        gan = wganx.load(result.checkpoint)
    """
    try:
        return train_with(config_file, settings)
    except WganxError as exc:  # told as a Python caller writes the settings, not as flags
        exc.args = (in_python_terms(str(exc)),) + exc.args[1:]
        raise


_FLAG = re.compile(r"--([a-z][a-z0-9-]*)(?: (?=\S*[/.])(\S+?)(?=[:;,]? |[:;,]?$))?")


def in_python_terms(message: str) -> str:
    """A message about ``wganx train``'s flags, about :func:`train`'s keywords: ``--batch-size``
    is ``batch_size``, ``--overwrite`` is ``overwrite=True``, ``--monitor-path runs/a`` is
    ``monitor_path=runs/a``. A flag that is no setting (``--help``) stays as it is."""
    names = {flag_name(f.name): f.name for f in fields(TrainConfig)}

    def keyword(match) -> str:
        name, value = names.get(match.group(1)), match.group(2)
        if name is None:
            return match.group(0)
        if value is not None:
            return f"{name}={value}"
        return f"{name}=True" if name == "resume" or base_type(name) == "bool" else name

    return _FLAG.sub(keyword, message)


def train_with(config_file: Optional[PathLike], settings: Dict[str, Any]) -> TrainResult:
    """:func:`train`, its errors told in the CLI's terms (``wganx train`` calls this)."""
    from .training import Trainer

    values = load_toml(os.fspath(config_file)) if config_file is not None else {}
    values.update(_given(settings, "wganx.train"))
    config, recommended = from_user(values)
    outcome = Trainer(config, recommended=recommended).run()
    result = _result(config, outcome)
    if outcome["status"] == "interrupted":
        raise TrainingInterrupted(result, outcome["signal"] or signal.SIGINT)
    return result


def _result(config: TrainConfig, outcome: dict) -> TrainResult:
    from .monitor import LOSS_COLUMNS, read_loss_rows
    from .training import AUGMENT_COLUMNS

    folder = Path(config.monitor_path)
    rows = read_loss_rows(folder / "losses.csv")[0] if outcome["writer"] and (folder / "losses.csv").is_file() else []
    columns = [k for k in rows[0] if k in LOSS_COLUMNS or k in AUGMENT_COLUMNS] if rows else []
    losses = {k: np.array([r[k] for r in rows], np.int64 if k == "iteration" else np.float64) for k in columns}
    checkpoint = None if outcome["checkpoint"] in (None, "None") else Path(outcome["checkpoint"])
    return TrainResult(outcome["status"], outcome["iteration"], folder, checkpoint, losses, config,
                       outcome["writer"])


class _Default:
    """A default as ``help(wganx.train)`` shows it (the CLI's ``[default: ...]``)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"<{self.text}>"


def _train_signature() -> inspect.Signature:
    """``config_file``, then one keyword per TrainConfig field with its default."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("config_file", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                annotation=Optional[PathLike])]
    for f in fields(TrainConfig):
        shown = f.metadata.get("shown_default")
        resolved_later = f.default_factory is not MISSING or f.default is None  # $WGANX_BACKEND, the regularizer's
        default = _Default(shown) if shown and resolved_later else default_of(f.name)
        params.append(inspect.Parameter(f.name, keyword, default=default, annotation=f.type))
    return inspect.Signature(params, return_annotation=TrainResult)


def _settings_doc() -> str:
    """The settings by help panel (appended to :func:`train`'s docstring; the CLI reference explains each)."""
    lines = ["", "    Settings (the options of ``wganx train``; ``help(wganx.train)`` shows the defaults):", ""]
    for section, names in SECTIONS.items():
        lines.append(f"    *{section}*: " + ", ".join(f"``{n}``" for n in names) + ".")
        lines.append("")
    return "\n".join(lines)


train.__signature__ = _train_signature()
train.__doc__ += _settings_doc()


# -- evaluate -------------------------------------------------------------------------------

def evaluate(source, **options) -> Dict[str, float]:
    """The metrics ``wganx evaluate`` reports, as ``{name: value}``.

    Args:
        source: a :class:`~wganx.gan.GAN`, a checkpoint path, a run folder (its newest checkpoint), a
            ``samples.npz``, a folder of images, or an array of samples in wganx's layout
            (then name the real dataset with ``reference=``).
        **options: the options of ``wganx evaluate`` by name: ``metrics``, ``num_samples``,
            ``reference``, ``reference_split``, ``data_dir``, ``download``, ``features``,
            ``seed``, ``backend``, ``batch_size``, ``raw_weights``, ``kid_subsets`` ...
    """
    from .evaluate import evaluate as measure

    return measure(source, **options)
