"""The run folder (``--monitor-path``): one run at a time, never silently reused.

A run's folder holds work that may have cost days of GPU time, so wganx treats it as the
user's data. Opening it for a run:

- makes it (and says clearly when it cannot: a file in the way, a read-only disk);
- takes an exclusive lock, held for the life of the process and released by the kernel on
  any exit, ``kill -9`` included, so a stale lock never blocks anyone; a second run into
  the folder stops at once, naming the first one's PID;
- refuses a folder that already holds a run unless the user resumes it (``--resume``) or
  replaces it (``--overwrite``);
- removes the temporary files that a killed process left mid-write.

The lock is ``flock`` on ``.wganx.lock`` (``msvcrt.locking`` on Windows). The file is left
in place: unlinking a lock file while another process opens it would let two runs in.
"""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import List, Optional

from . import checkpoint
from .errors import WganxError
from .notices import notice

LOCK_NAME = ".wganx.lock"
RUN_MARKERS = ("config.json", "losses.csv")  # with params_*.safetensors: a folder holding a run
RUN_OUTPUTS = ("config.json", "losses.csv", "losses.png", "progress.gif", "metrics.csv", "metrics.png")
RUN_FOLDERS = ("samples", "tensorboard")


class RunFolderError(WganxError):
    """The run folder cannot be used as asked."""


def describe_os_error(exc: OSError) -> str:
    """``'No space left on device'`` and the like: what a user needs from an OSError."""
    return exc.strerror or str(exc)


class RunFolder:
    """``--monitor-path`` opened for one run; :meth:`close` releases it."""

    def __init__(self, path, *, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self._lock_fd: Optional[int] = None
        self._created = False
        try:
            self._make()
            self._lock()
            if not resume:
                self._refuse_or_clear(overwrite)
            self._remove_temporary_files()
        except OSError as exc:
            self.close(failed=True)
            raise RunFolderError(f"cannot use --monitor-path {self.path}: {describe_os_error(exc)}") from None
        except BaseException:
            self.close(failed=True)
            raise

    # -- opening -----------------------------------------------------------------------------
    def _make(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunFolderError(f"--monitor-path {self.path} is a file, not a folder; choose another path")
        for parent in reversed(self.path.parents):
            if parent.exists() and not parent.is_dir():
                raise RunFolderError(f"--monitor-path {self.path} lies under {parent}, which is a file")
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown PID"
            os.close(fd)
            raise RunFolderError(f"--monitor-path {self.path} is in use by another wganx run ({holder}); "
                                 "wait for it to end, or choose another --monitor-path")
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode())
        self._lock_fd = fd

    def run_files(self) -> List[str]:
        """What marks the folder as holding a run (empty for a fresh folder)."""
        names = [n for n in RUN_MARKERS if (self.path / n).exists()]
        names += [p.name for p in checkpoint.checkpoints(self.path)]
        return names

    def _refuse_or_clear(self, overwrite: bool) -> None:
        found = self.run_files()
        if not found:
            return
        if not overwrite:
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            raise RunFolderError(f"--monitor-path {self.path} already holds a run ({shown}); continue it with "
                                 "--resume, replace it with --overwrite, or choose another --monitor-path")
        removed = self._clear()
        notice(f"--overwrite: removed the earlier run's {removed} files from {self.path}")

    def _clear(self) -> int:
        """Remove what a run writes (and only that); returns how many files went."""
        doomed = [self.path / n for n in RUN_OUTPUTS if (self.path / n).exists()]
        doomed += checkpoint.checkpoints(self.path)
        count = len(doomed)
        for path in doomed:
            path.unlink()
        for name in RUN_FOLDERS:
            if (self.path / name).is_dir():
                count += sum(1 for p in (self.path / name).rglob("*") if p.is_file())
                shutil.rmtree(self.path / name)
        return count

    def _remove_temporary_files(self) -> None:
        leftovers = [p for folder in (self.path, self.path / "samples") if folder.is_dir()
                     for p in folder.iterdir() if checkpoint.TEMPORARY.match(p.name) and p.is_file()]
        for path in leftovers:
            path.unlink()
        if leftovers:
            notice(f"removed {len(leftovers)} unfinished temporary files that an interrupted run left in {self.path}")

    # -- closing -----------------------------------------------------------------------------
    def close(self, failed: bool = False) -> None:
        """Release the lock; a folder this run made and left empty goes too when it failed."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None
        if failed and self._created and self.path.is_dir():
            if [p.name for p in self.path.iterdir()] in ([], [LOCK_NAME]):
                (self.path / LOCK_NAME).unlink(missing_ok=True)
                self.path.rmdir()


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
