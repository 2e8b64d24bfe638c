"""Errors that the CLI turns into one clean line instead of a stack trace, and the checks
that raise them for a value out of its choices or its range."""
from dataclasses import dataclass
from typing import Optional

from .deprecation import moved


class WganxError(Exception):
    """A problem with the user's input or environment, explained in its message."""

    def _render_traceback_(self):  # IPython and Jupyter show the message alone, as the CLI does
        return [f"{type(self).__name__}: {self}"]


class UnknownNameError(WganxError, KeyError):
    """A plugin name that nobody registered; the message lists the choices."""

    def __init__(self, kind: str, name: str, choices):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(
            f"unknown {kind} {name!r}; choose one of: {', '.join(self.choices) or '(none installed)'}"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class PluginConflictError(WganxError):
    """Two distributions registered a plugin of one kind under one name."""


class BackendUnavailableError(WganxError):
    """A backend whose framework is missing or cannot run the requested context."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived (``signum``); ``at_once`` when it was the second one.

    Not a KeyboardInterrupt, so that click passes it through to :func:`wganx.cli.main`,
    which exits with 128 + the signal."""

    def __init__(self, signum: int, at_once: bool = False):
        super().__init__(signum)
        self.signum, self.at_once = signum, at_once


def check_choice(flag: str, value, allowed) -> None:
    """A value that is not one of ``allowed`` is a one-line error naming the flag and the choices."""
    if value not in allowed:
        raise WganxError(f"{flag} must be one of {', '.join(map(str, allowed))}, got {value!r}")


@dataclass(frozen=True)
class Range:
    """The values a number may take: from ``low`` (included, unless ``low_open``) up to
    ``high`` (excluded, unless ``high_closed``; None: no upper bound). Declared once beside the
    setting it bounds and checked wherever that setting enters (a
    :class:`wganx.algorithm.Program` however made; the flags, before any data is read)."""

    low: float
    high: Optional[float] = None
    low_open: bool = False
    high_closed: bool = False

    def __contains__(self, value) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = self.high is None or (value <= self.high if self.high_closed else value < self.high)
        return above and below

    def check(self, name: str, value) -> None:
        """A value out of range is a one-line error naming ``name`` (a flag, or a keyword)."""
        if value in self:
            return
        if self.high is not None:
            interval = f"{'(' if self.low_open else '['}{self.low}, {self.high}{']' if self.high_closed else ')'}"
            raise WganxError(f"{name} must be in {interval}, got {value}")
        if self.low_open:
            raise WganxError(f"{name} must be greater than {self.low}, got {value}")
        if self.low == 0:
            raise WganxError(f"{name} must not be negative, got {value}")
        raise WganxError(f"{name} must be at least {self.low}, got {value}")


# notice and silence_notices moved to wganx.notices (they are not errors)
__getattr__ = moved(__name__, {"notice": "wganx.notices.notice", "silence_notices": "wganx.notices.silence_notices"})
