"""The module named by the ``wganx`` entry point: one hook per kind of record it adds.

Importing it imports no deep-learning framework, only numpy and the wganx core, so
``wganx plugins`` stays fast.
"""
from wganx import hookimpl

from .architecture import SPEC as ARCHITECTURE
from .command import SPEC as COMMAND
from .regularizer import SPEC as REGULARIZER


@hookimpl
def wganx_architectures():
    return [ARCHITECTURE]


@hookimpl
def wganx_regularizers():
    return [REGULARIZER]


@hookimpl
def wganx_commands():
    return [COMMAND]
