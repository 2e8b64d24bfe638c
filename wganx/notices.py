"""One-line notices on stderr: what wganx did for the user that is not an error (a setting
renamed on load, a damaged row dropped, a checkpoint skipped), quiet in replicas that do not
write."""
from __future__ import annotations

import sys

_NOTICES = {"on": True}


def silence_notices() -> None:
    """Keep :func:`notice` quiet in this process (a data-parallel replica that does not write)."""
    _NOTICES["on"] = False


def notice(message: str) -> None:
    """Tell the user, in one line on stderr, something wganx did for them (not an error)."""
    if _NOTICES["on"]:
        print(f"wganx: {message}", file=sys.stderr, flush=True)
