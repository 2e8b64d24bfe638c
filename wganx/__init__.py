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
from .api import GAN, TrainResult, TrainingInterrupted, load, train

__version__ = "0.1.0"

__all__ = [
    "GAN", "TrainResult", "TrainingInterrupted", "evaluate", "load", "train",
    "ArchConfig", "Architecture", "ArchitectureSpec", "BackendSpec", "BackendUnavailableError", "CommandSpec",
    "DatasetSpec", "EngineSpec", "FeatureSpec", "LossSpec", "MetricSpec", "Network", "ParamSpec", "PluginConflictError",
    "RegularizerSpec", "UnknownNameError", "UpsamplerSpec", "WganxError", "hookimpl",
    "plugins", "registry", "__version__",
]


def __getattr__(name: str):
    """``wganx.evaluate``: the module :mod:`wganx.evaluate`, which calls as
    :func:`wganx.api.evaluate`; imported on first use, since it brings in the CLI's typer."""
    if name == "evaluate":
        import importlib

        return importlib.import_module(".evaluate", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
