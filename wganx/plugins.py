"""Finding and loading plugins: the ``wganx`` entry-point group, hardened.

Built-in plugins are registered through the very same entry points as third-party ones.
A plugin that fails to import is skipped with a warning naming its distribution
(``WGANX_STRICT_PLUGINS=1`` re-raises) and listed by ``wganx plugins`` with its error; two
plugins that claim one name of one kind make that name an error naming both distributions,
for the command that uses it only (``wganx plugins`` shows the conflict, everything else
keeps working); an unknown name is an error listing the choices.
``WGANX_DISABLE_PLUGINS=NAME,...`` (entry-point or distribution names) leaves plugins out,
as pytest's ``-p no:NAME`` does.
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
    "augmentation": "wganx_augmentations",
    "dataset": "wganx_datasets",
    "metric": "wganx_metrics",
    "feature": "wganx_features",
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


def disabled() -> set:
    """Entry-point or distribution names in ``$WGANX_DISABLE_PLUGINS`` (comma-separated)."""
    return {n.strip() for n in os.environ.get("WGANX_DISABLE_PLUGINS", "").split(",") if n.strip()}


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, as ``wganx plugins`` lists it."""

    name: str
    package: str
    version: str
    error: str


class Registry:
    """Every record of every kind, looked up by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, origins: Dict[int, tuple],
                 failures: Iterable[LoadFailure] = ()):
        self.manager = manager
        self.failures: List[LoadFailure] = list(failures)
        self._entries: Dict[str, Dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._conflicts: Dict[tuple, List[Entry]] = {}
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
                    self.failures.append(LoadFailure(hook_name, package, version, repr(exc)))
                    continue
                for record in records or ():
                    self._add(Entry(kind, record.name, record, package, version))

    def _add(self, entry: Entry):
        known = self._entries[entry.kind].get(entry.name)
        if known is not None:
            self._conflicts.setdefault((entry.kind, entry.name), [known]).append(entry)
            if _strict():
                raise self._conflict_error(entry.kind, entry.name)
            return
        self._entries[entry.kind][entry.name] = entry

    def _conflict_error(self, kind: str, name: str) -> PluginConflictError:
        packages = [e.package for e in self._conflicts[(kind, name)]]
        return PluginConflictError(
            f"{kind} {name!r} is registered by both {packages[0]!r} and {packages[1]!r}; choose one by its "
            f"distribution ({packages[0]}:{name} or {packages[1]}:{name}), uninstall one of them, "
            f"or leave one out with WGANX_DISABLE_PLUGINS=<its distribution>")

    def conflicts(self) -> Dict[tuple, List[Entry]]:
        """``(kind, name) -> the entries that claim it``, for every name claimed twice."""
        return dict(self._conflicts)

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
        failures: List[LoadFailure] = []
        if entry_points:
            off = disabled()
            for ep in _entry_points():
                dist = getattr(ep, "dist", None)
                package = dist.name if dist is not None else ep.value
                version = dist.version if dist is not None else ""
                if ep.name in off or package in off:
                    continue
                try:
                    plugin = ep.load()
                except Exception as exc:
                    if _strict():
                        raise
                    warnings.warn(f"wganx plugin {ep.name!r} from {package!r} failed to load: "
                                  f"{exc!r}; skipped (set WGANX_STRICT_PLUGINS=1 to raise)",
                                  PluginLoadWarning, stacklevel=2)
                    failures.append(LoadFailure(ep.name, package, version, repr(exc)))
                    continue
                if manager.is_registered(plugin):
                    continue
                manager.register(plugin, name=f"{package}:{ep.name}")
                origins[id(plugin)] = (package, version)
        for plugin in plugins:
            manager.register(plugin)
            origins.setdefault(id(plugin), ("<in-process>", ""))
        return cls(manager, origins, failures)

    def entries(self, kind: Optional[str] = None) -> List[Entry]:
        kinds = [kind] if kind else list(KINDS)
        return [e for k in kinds for _, e in sorted(self._entries[k].items())]

    def names(self, kind: str) -> List[str]:
        return sorted(self._entries[self._kind(kind)])

    def entry(self, kind: str, name: str) -> Entry:
        """The entry of ``kind`` called ``name``; ``DISTRIBUTION:NAME`` picks the one that
        distribution registered, which is how a name two distributions claim stays usable."""
        package, qualified, bare = name.rpartition(":")
        if qualified:
            table = self._entries[self._kind(kind)]
            claims = self._conflicts.get((kind, bare)) or ([table[bare]] if bare in table else list(table.values()))
            for entry in claims:
                if entry.package == package and entry.name == bare:
                    return entry
            raise UnknownNameError(kind, name, [f"{e.package}:{e.name}" for e in claims])
        if (kind, name) in self._conflicts:
            raise self._conflict_error(kind, name)
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
