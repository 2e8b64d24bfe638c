"""Deprecated: the NNabla example's checkpoints moved to :mod:`wganx_plugins.nnabla_example`,
with the commands that use them (``wganx import``/``export``, :mod:`wganx_plugins.commands`).

Kept for one minor release (:mod:`wganx.deprecation`).
"""
from .deprecation import moved

__getattr__ = moved(__name__, {name: f"wganx_plugins.nnabla_example.{name}" for name in (
    "import_h5", "export_h5", "example_name", "import_command", "export_command", "EXAMPLE_UPSAMPLERS")})
