"""Finding and loading plugins: the ``wganx`` entry-point group, hardened.

Built-in plugins are registered through the very same entry points as third-party ones.
A plugin that fails to import is skipped with a warning naming its distribution
(``WGANX_STRICT_PLUGINS=1`` re-raises); two plugins that claim one name of one kind are an
error naming both distributions; an unknown name is an error listing the choices.
"""
from __future__ import annotations

import importlib.metadata as metadata
import os
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

import pluggy

from . import hookspecs
from .errors import PluginConflictError, UnknownNameError, WganxError

GROUP = "wganx"

# kind -> the hook that returns records of that kind
KINDS = {
    "backend": "wganx_backends",
    "architecture": "wganx_architectures",
    "upsampler": "wganx_upsamplers",
    "regularizer": "wganx_regularizers",
    "loss": "wganx_losses",
    "dataset": "wganx_datasets",
    "metric": "wganx_metrics",
    "command": "wganx_commands",
}


# The backends this project ships as separate distributions: named even when not installed,
# so that ``wganx plugins`` and ``--backend`` say what to install instead of "unknown".
STANDARD_BACKENDS = {
    "torch": "wganx-torch is not installed: pip install wganx-torch (or wganx[torch])",
    "tensorflow": "wganx-tensorflow is not installed: pip install wganx-tensorflow (or wganx[tensorflow])",
    "nnabla": "wganx-nnabla is not installed: pip install wganx-nnabla (or wganx[nnabla]); "
              "nnabla needs Python 3.8 to 3.10",
}


class PluginLoadWarning(UserWarning):
    """A plugin distribution failed to load and was skipped."""


@dataclass(frozen=True)
class Entry:
    """One record with where it came from."""

    kind: str
    name: str
    record: Any
    package: str
    version: str

    def availability(self) -> tuple:
        """``(available, reason)``; only backends can be unavailable (missing framework)."""
        if self.kind != "backend":
            return True, ""
        missing = self.record.missing()
        if missing:
            hint = f"; {self.record.install_hint}" if self.record.install_hint else ""
            return False, f"{', '.join(missing)} is not installed{hint}"
        return True, ""


def _strict() -> bool:
    return os.environ.get("WGANX_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


class Registry:
    """Every record of every kind, looked up by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, origins: Dict[int, tuple]):
        self.manager = manager
        self._entries: Dict[str, Dict[str, Entry]] = {kind: {} for kind in KINDS}
        for kind, hook_name in KINDS.items():
            hook = getattr(manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                package, version = origins.get(id(impl.plugin), ("<unknown>", ""))
                try:
                    records = _call(impl)
                except Exception as exc:
                    if _strict():
                        raise
                    warnings.warn(f"wganx plugin from {package!r} failed in {hook_name}: "
                                  f"{exc!r}; skipped", PluginLoadWarning, stacklevel=2)
                    continue
                for record in records or ():
                    self._add(Entry(kind, record.name, record, package, version))

    def _add(self, entry: Entry):
        known = self._entries[entry.kind].get(entry.name)
        if known is not None:
            raise PluginConflictError(
                f"{entry.kind} {entry.name!r} is registered by both {known.package!r} "
                f"and {entry.package!r}; uninstall one of them")
        self._entries[entry.kind][entry.name] = entry

    @classmethod
    def from_plugins(cls, plugins: Iterable[Any] = (), *, entry_points: bool = True,
                     packages: Optional[Dict[int, tuple]] = None) -> "Registry":
        """Build a registry from the installed entry points plus ``plugins``.

        Args:
            plugins: extra plugin objects (modules or instances), registered in-process.
            entry_points: also load the ``wganx`` entry-point group.
            packages: ``id(plugin) -> (distribution, version)`` for the extra plugins.
        """
        manager = pluggy.PluginManager(hookspecs.PROJECT)
        manager.add_hookspecs(hookspecs)
        origins: Dict[int, tuple] = dict(packages or {})
        if entry_points:
            for ep in _entry_points():
                dist = getattr(ep, "dist", None)
                package = dist.name if dist is not None else ep.value
                version = dist.version if dist is not None else ""
                try:
                    plugin = ep.load()
                except Exception as exc:
                    if _strict():
                        raise
                    warnings.warn(f"wganx plugin {ep.name!r} from {package!r} failed to load: "
                                  f"{exc!r}; skipped (set WGANX_STRICT_PLUGINS=1 to raise)",
                                  PluginLoadWarning, stacklevel=2)
                    continue
                if manager.is_registered(plugin):
                    continue
                manager.register(plugin, name=f"{package}:{ep.name}")
                origins[id(plugin)] = (package, version)
        for plugin in plugins:
            manager.register(plugin)
            origins.setdefault(id(plugin), ("<in-process>", ""))
        return cls(manager, origins)

    def entries(self, kind: Optional[str] = None) -> List[Entry]:
        kinds = [kind] if kind else list(KINDS)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]

    def names(self, kind: str) -> List[str]:
        return sorted(self._entries[self._kind(kind)])

    def entry(self, kind: str, name: str) -> Entry:
        table = self._entries[self._kind(kind)]
        if name not in table:
            if kind == "backend" and name in STANDARD_BACKENDS:
                from .errors import BackendUnavailableError

                raise BackendUnavailableError(f"backend {name!r} is unavailable: {STANDARD_BACKENDS[name]}")
            raise UnknownNameError(kind, name, table)
        return table[name]

    def missing_standard_backends(self) -> Dict[str, str]:
        """Standard backends whose distribution is not installed, with what to install."""
        return {n: why for n, why in STANDARD_BACKENDS.items() if n not in self._entries["backend"]}

    def get(self, kind: str, name: str):
        """The record of ``kind`` called ``name``; unknown names list the choices."""
        return self.entry(kind, name).record

    @staticmethod
    def _kind(kind: str) -> str:
        if kind not in KINDS:
            raise UnknownNameError("plugin kind", kind, KINDS)
        return kind


def _call(impl):
    return impl.function(**{name: None for name in impl.argnames})


def _entry_points():
    eps = metadata.entry_points()
    selected = eps.select(group=GROUP) if hasattr(eps, "select") else eps.get(GROUP, [])
    # Deduplicate: an editable install can expose one distribution twice on sys.path.
    seen, unique = set(), []
    for ep in selected:
        key = (ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            unique.append(ep)
    return unique


_REGISTRY: Optional[Registry] = None


def registry(refresh: bool = False) -> Registry:
    """The process-wide registry of installed plugins (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = Registry.from_plugins()
        if not _REGISTRY.names("backend") and not _REGISTRY.names("architecture"):
            raise WganxError("no wganx plugins found: is wganx installed (pip install -e .)?")
    return _REGISTRY
