"""wganx: backend-neutral training of Wasserstein GANs with gradient penalty and relatives.

``import wganx`` imports no deep-learning framework; a backend's framework is imported
only when that backend is asked for.
"""
import os as _os

# Must be set before protobuf is first imported: with protobuf 3.20's C++ implementation
# (pinned by NNabla) ``import tensorflow`` segfaults beside NNabla and fails after torch.
_os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

from .errors import WganxError, UnknownNameError, PluginConflictError, BackendUnavailableError  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .records import (  # noqa: E402
    ArchConfig, Architecture, ArchitectureSpec, BackendSpec, CommandSpec, DatasetSpec, FeatureSpec, LossSpec,
    MetricSpec, Network, ParamSpec, RegularizerSpec, UpsamplerSpec,
)
from . import plugins  # noqa: E402
from .plugins import registry  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "ArchConfig", "Architecture", "ArchitectureSpec", "BackendSpec", "BackendUnavailableError", "CommandSpec",
    "DatasetSpec", "FeatureSpec", "LossSpec", "MetricSpec", "Network", "ParamSpec", "PluginConflictError",
    "RegularizerSpec", "UnknownNameError", "UpsamplerSpec", "WganxError", "hookimpl",
    "plugins", "registry", "__version__",
]
