"""Downloads that survive a bad network: resumed, retried, locked, hashed as they arrive, stamped when whole.

:func:`download` streams a URL into ``<file>.part`` and publishes it as ``<file>`` only once it is whole, with its
stamp beside it (``<file>.stamp``: the SHA-256 found while it arrived, its size and its modification time).  The
stamp lets a later load see, without reading the file, that it is still the one downloaded (:mod:`textsleep.weights`
decides what to fetch and checks stamps).  Every request goes through :func:`_open`, every body through
:func:`_transfer`.

Nothing happens at import: no folders are created and nothing is printed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from filelock import FileLock, Timeout
from huggingface_hub import constants
from tqdm import tqdm

from .errors import UserError

__all__ = ["download", "SourceError", "publish", "sha256_of", "read_stamp", "write_stamp", "hub_problem"]

_CHUNK = 1 << 20
_BACKOFF_S = 0.5
_LOCK_WAIT_S = 3600.0
_BAR = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "dynamic_ncols": True}  # tqdm: bytes, as KiB/MiB


class SourceError(UserError):
    """A source could not deliver a file (network, HTTP status, wrong file); another source may be tried."""


class _Transient(Exception):
    """A failure worth retrying: no connection, a timeout, a body cut short."""


class _WrongFile(Exception):
    """The whole file arrived but its SHA-256 is not the expected one (it was discarded)."""


def download(
    url: str,
    dest: Path,
    *,
    progress: bool = True,
    timeout: float = 10.0,
    retries: int = 2,
    sha256: str | None = None,
    how: str = "",
) -> Path:
    """Fetch ``url`` to ``dest``, hashing it as it arrives, and stamp it; return ``dest``.

    With ``sha256`` a file whose hash differs is discarded and is an error (not retried).  ``how`` tells the user
    how else to supply the file (errors end with it).  The body streams to ``dest.part``, published only once its
    size matches the server's; an interrupted transfer resumes from the ``.part`` with a Range request.
    ``timeout`` bounds connecting and each read; failures other than HTTP 4xx are retried ``retries`` times with a
    short backoff.  A file lock makes a second process wait for the first and then find the file done.
    """
    dest = Path(dest)
    then = f"; {how}" if how else ""
    check_writable(dest.parent)
    try:
        lock = FileLock(f"{dest}.lock").acquire(timeout=_LOCK_WAIT_S)
    except Timeout:
        raise UserError(
            f"{dest} has been locked by another download for {_LOCK_WAIT_S:.0f} s; if none is running, delete "
            f"{dest}.lock"
        ) from None
    with lock:
        if dest.is_file():  # another process finished it while we waited
            return dest
        for attempt in range(retries + 1):
            time.sleep(_BACKOFF_S * attempt)
            try:
                return _transfer(url, dest, progress=progress, timeout=timeout, sha256=sha256)
            except _WrongFile as err:
                raise SourceError(f"download of {url} gave the wrong file ({err}); it was discarded{then}") from None
            except urllib.error.HTTPError as err:
                failure = f"HTTP {err.code} {err.reason}"
                if err.code < 500:  # a 4xx answer will not change on retry
                    raise SourceError(f"download of {url} failed: {failure}{then}") from None
            except _Transient as err:
                failure = str(err)
        part = _part(dest)
        kept = f"; the partial file {part} is kept and the next run resumes it" if _size(part) else ""
        raise SourceError(
            f"cannot download {url} ({failure}; {retries + 1} tries); {dest} is not in the cache{kept}{then}"
        )


def _open(url: str, have: int, timeout: float) -> http.client.HTTPResponse:
    """Ask for ``url`` from byte ``have`` on; network failures become :class:`_Transient`, HTTP errors stay."""
    headers = {"User-Agent": "textsleep", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(str(getattr(err, "reason", err))) from None


def _transfer(url: str, dest: Path, *, progress: bool, timeout: float, sha256: str | None) -> Path:
    """One attempt: stream (or resume) into ``dest.part``, check its size and hash, then publish it as ``dest``."""
    part = _part(dest)
    have = _size(part)
    try:
        response = _open(url, have, timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:
            raise
        part.unlink()  # the .part cannot be resumed (stale, or already whole): start again
        return _transfer(url, dest, progress=progress, timeout=timeout, sha256=sha256)
    with response:
        start, total = _resume_point(response, have)
        if start not in (0, have):
            part.unlink()
            raise _Transient(f"the server answered the resume request with bytes from {start}, not {have}")
        hasher = _hash_into(hashlib.sha256(), part) if start else hashlib.sha256()
        bar = tqdm(total=total, initial=start, desc=dest.name, file=sys.stderr, disable=not progress, **_BAR)
        try:
            with bar, open(part, "ab" if start else "wb") as out:
                for chunk in _chunks(response):
                    out.write(chunk)
                    hasher.update(chunk)
                    bar.update(len(chunk))
        except OSError as err:
            raise UserError(
                f"writing {part} failed ({err.strerror or err}); free some space or set TEXTSLEEP_CACHE to another "
                "folder; the partial file is kept and the next run resumes it"
            ) from None
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()  # it cannot be the right file: never resume from it
        raise _Transient(f"the transfer stopped after {size} of {total} bytes")
    got = hasher.hexdigest()
    if sha256 is not None and got != sha256:
        part.unlink()
        raise _WrongFile(f"{size} bytes with SHA-256 {got}, not the published {sha256}")
    return publish(part, dest, got)


def _resume_point(response: http.client.HTTPResponse, have: int) -> tuple[int, int | None]:
    """Where the body starts in the file, and the whole file's size if the server said."""
    length = response.headers.get("Content-Length")
    if response.status != 206:  # 200: the server ignored Range
        return 0, int(length) if length is not None else None
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
    start = int(match.group(1)) if match else have
    if match and match.group(2) != "*":
        return start, int(match.group(2))
    return start, start + int(length) if length is not None else None


def _chunks(response: http.client.HTTPResponse):
    """The body in chunks; network failures become :class:`_Transient` (so they are not taken for write errors)."""
    while True:
        try:
            chunk = response.read(_CHUNK)
        except (OSError, http.client.HTTPException) as err:
            raise _Transient(f"the connection broke: {err.__class__.__name__}: {err}") from None
        if not chunk:
            return
        yield chunk


def publish(part: Path, dest: Path, sha256: str) -> Path:
    """Stamp, then rename (which keeps the modification time): a complete file always has its stamp."""
    write_stamp(dest, sha256, part.stat())
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------- files and stamps
def read_stamp(path: Path) -> dict | None:
    """The stamp beside ``path``: None if there is none, ``{}`` if it cannot be read (so nothing matches it)."""
    try:
        stamp = json.loads(_beside(path, ".stamp").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def write_stamp(path: Path, sha256: str, st: os.stat_result) -> None:
    """Record ``{"sha256", "size", "mtime_ns"}`` beside ``path`` (``st``: the file's stat), replacing an earlier
    version's ``<file>.sha256``."""
    stamp = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if read_stamp(path) != stamp:
        tmp = _beside(path, ".stamp.part")
        tmp.write_text(json.dumps(stamp) + "\n")
        os.replace(tmp, _beside(path, ".stamp"))
    _beside(path, ".sha256").unlink(missing_ok=True)


def sha256_of(path: Path) -> str:
    return _hash_into(hashlib.sha256(), path).hexdigest()


def _hash_into(hasher, path: Path):
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return hasher


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _part(dest: Path) -> Path:
    return _beside(dest, ".part")


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise UserError(
            f"cache folder {str(folder)!r} is not writable ({err.strerror or err}); set TEXTSLEEP_CACHE to a "
            "writable folder"
        ) from None


def hub_problem(timeout: float = 4.0) -> str | None:
    """Why the Hugging Face Hub cannot be used right now (offline mode, no connection), or None.

    huggingface_hub retries for about a minute when there is no network; this answers in seconds.
    """
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    url = urllib.parse.urlsplit(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError as err:
        return f"{endpoint}: {err.__class__.__name__}: {err}"
    return None
