"""Getting published files onto disk: verified, atomic, and never hanging.

A download streams into ``<file>.part`` while hashing it and is renamed into place only
after its checksum matches, so an interrupted or corrupted transfer never looks like a
finished file. Archives are extracted into a temporary folder beside the target and
renamed into place for the same reason.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from wganx.errors import WganxError

TIMEOUT = 30.0  # seconds a socket may stay silent before a mirror counts as down
CHUNK = 1 << 20
USER_AGENT = "wganx (+https://pypi.org/project/wganx/)"  # some mirrors refuse urllib's default


def default_dir(name: str) -> Path:
    """Where a dataset lives when no directory is given: ``$WGANX_DATA_DIR/<name>``,
    else ``$XDG_CACHE_HOME/wganx/<name>`` (``~/.cache/wganx/<name>``)."""
    root = os.environ.get("WGANX_DATA_DIR")
    if root:
        return Path(root).expanduser() / name
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "wganx" / name


def md5_file(path: Union[str, Path]) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stream(url: str, part: Path) -> str:
    """Copy ``url`` into ``part``, returning the md5 of what arrived."""
    digest = hashlib.md5()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response, open(part, "wb") as out:
        for chunk in iter(lambda: response.read(CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def fetch(urls: Iterable[str], dest: Path, accept: Callable[[Path, str], bool]) -> None:
    """Download the first of ``urls`` whose content ``accept(part_path, md5)`` approves.

    Mirrors are tried in order; one that fails or serves other bytes is skipped. Raises
    WganxError naming every mirror's failure when none worked, leaving nothing behind, not
    even the folders it made for ``dest``.
    """
    made = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = []
    try:
        for url in urls:
            print(f"wganx: downloading {url}", file=sys.stderr, flush=True)
            try:
                md5 = _stream(url, part)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # URLError, timeouts and refused connections are OSErrors; a malformed URL
                # is a ValueError; a connection cut mid-body is an IncompleteRead.
                reason = getattr(exc, "reason", None) or exc
                failures.append(f"{url}: {reason}")
                continue
            if accept(part, md5):
                os.replace(part, dest)
                return
            failures.append(f"{url}: checksum mismatch (got md5 {md5})")
    finally:
        part.unlink(missing_ok=True)
    for folder in made:  # deepest first; one that holds an earlier download stays
        try:
            folder.rmdir()
        except OSError:
            break
    raise WganxError(f"could not download {dest.name}: {'; '.join(failures)}")


def check_md5(path: Path, expected: str, where: str) -> None:
    """Refuse a file whose content is not the published one."""
    actual = md5_file(path)
    if actual != expected:
        raise WganxError(f"{path} has md5 {actual}, expected {expected} (the official file); "
                         f"delete it and download it again from {where}")


def _member_ok(member: tarfile.TarInfo, prefix: str) -> bool:
    name = posixpath.normpath(member.name)
    return ((name == prefix or name.startswith(prefix + "/")) and ".." not in name.split("/")
            and not name.startswith("/") and (member.isfile() or member.isdir()))


def extract_folder(archive: Path, folder: str, directory: Path) -> Path:
    """Extract ``folder/`` of a tar archive to ``directory/folder`` all at once or not at all.

    Only regular files and folders inside ``folder/`` are written; a member that climbs
    out of it, or a link, makes the archive refused.
    """
    target = directory / folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", suffix=".tmp", dir=directory))
    try:
        try:
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if m.name.split("/")[0] == folder]
                bad = [m.name for m in members if not _member_ok(m, folder)]
                if bad:
                    raise WganxError(f"{archive} holds unsafe entries ({bad[0]!r}); refusing to extract it")
                if not members:
                    raise WganxError(f"{archive} has no {folder}/ folder; is it the right archive?")
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(tmp, members=members, **extra)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise WganxError(f"{archive} could not be extracted ({exc}); delete it and download it again")
        try:
            os.replace(tmp / folder, target)
        except OSError:
            if not target.is_dir():  # not a concurrent extraction that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def missing_error(dataset: str, directory: Path, files: list, urls: list,
                  why: Optional[str] = None, alternative: str = "") -> WganxError:
    """The one-line error for files that are not there: which, where, and from where."""
    what = ", ".join(files)
    cause = f"could not be downloaded ({why})" if why else "not found"
    return WganxError(
        f"{dataset}: {what} {cause} in {directory}; download {' and '.join(urls)} into that "
        f"directory{alternative}" + ("" if why else ", or rerun with --download"))
