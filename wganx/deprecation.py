"""Names that moved keep working for one minor release, with a warning that names the new place.

A module whose names moved ends with ``__getattr__ = moved(__name__, {...})`` (PEP 562): the
old import still returns the very same object, and a ``DeprecationWarning`` says where to
import it from now, so a third party's code keeps running while its tests point at the fix.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Callable, Mapping

#: the release in which the names kept here for the last one are removed
REMOVED_IN = "0.3"


def moved(module: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that serves ``names`` (old name -> ``"new.module.name"``)."""
    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, attr = names[name].rpartition(".")
        warnings.warn(f"{module}.{name} moved to {names[name]}; the old name goes in wganx {REMOVED_IN}",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new_module), attr)
    return __getattr__
