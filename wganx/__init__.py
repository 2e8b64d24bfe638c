"""wganx: backend-neutral training of Wasserstein GANs with gradient penalty and relatives.

``wganx.train``, ``wganx.load`` and ``wganx.evaluate`` do from Python what the commands do
(:mod:`wganx.api`). ``import wganx`` imports no deep-learning framework; a backend's
framework is imported only when that backend is asked for.
"""
from .errors import WganxError, UnknownNameError, PluginConflictError, BackendUnavailableError
from .hookspecs import hookimpl
from .records import (
    ArchConfig, Architecture, ArchitectureSpec, BackendSpec, CommandSpec, DatasetSpec, EngineSpec, FeatureSpec,
    LossSpec, MetricSpec, Network, ParamSpec, RegularizerSpec, UpsamplerSpec,
)
from . import plugins
from .plugins import registry

__version__ = "0.1.0"

__all__ = [
    "GAN", "TrainResult", "TrainingInterrupted", "evaluate", "load", "train",
    "ArchConfig", "Architecture", "ArchitectureSpec", "BackendSpec", "BackendUnavailableError", "CommandSpec",
    "DatasetSpec", "EngineSpec", "FeatureSpec", "LossSpec", "MetricSpec", "Network", "ParamSpec", "PluginConflictError",
    "RegularizerSpec", "UnknownNameError", "UpsamplerSpec", "WganxError", "hookimpl",
    "plugins", "registry", "__version__",
]


_API = ("GAN", "TrainResult", "TrainingInterrupted", "load", "train")


def __getattr__(name: str):
    """The Python API (:mod:`wganx.api`), imported on first use: ``import wganx`` stays light
    (no numpy), because pytest imports ``wganx.testing``, and so this package, in every
    session. ``wganx.evaluate`` is the module :mod:`wganx.evaluate`, which calls as
    :func:`wganx.api.evaluate` (it brings in the CLI's typer)."""
    import importlib

    if name in _API:
        return getattr(importlib.import_module(".api", __name__), name)
    if name == "evaluate":
        return importlib.import_module(".evaluate", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
