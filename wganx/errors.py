"""Errors that the CLI turns into one clean line instead of a stack trace."""
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


# notice and silence_notices moved to wganx.notices (they are not errors)
__getattr__ = moved(__name__, {"notice": "wganx.notices.notice", "silence_notices": "wganx.notices.silence_notices"})
