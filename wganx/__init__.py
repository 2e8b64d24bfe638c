"""wganx: backend-neutral training of Wasserstein GANs with gradient penalty and relatives.

``import wganx`` imports no deep-learning framework; a backend's framework is imported
only when that backend is asked for.
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
    "ArchConfig", "Architecture", "ArchitectureSpec", "BackendSpec", "BackendUnavailableError", "CommandSpec",
    "DatasetSpec", "EngineSpec", "FeatureSpec", "LossSpec", "MetricSpec", "Network", "ParamSpec", "PluginConflictError",
    "RegularizerSpec", "UnknownNameError", "UpsamplerSpec", "WganxError", "hookimpl",
    "plugins", "registry", "__version__",
]
