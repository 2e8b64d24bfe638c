"""Errors that the CLI turns into one clean line instead of a stack trace."""


class WganxError(Exception):
    """A problem with the user's input or environment, explained in its message."""


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


_NOTICES = {"on": True}


def silence_notices() -> None:
    """Keep :func:`notice` quiet in this process (a data-parallel replica that does not write)."""
    _NOTICES["on"] = False


def notice(message: str) -> None:
    """Tell the user, in one line on stderr, something wganx did for them (not an error)."""
    import sys

    if _NOTICES["on"]:
        print(f"wganx: {message}", file=sys.stderr, flush=True)
