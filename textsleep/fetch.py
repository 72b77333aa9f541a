"""Downloads that survive a bad network: resumed, retried, locked, hashed as they arrive, stamped when whole.

:func:`download` streams a URL (or copies a file of a local mirror folder) into ``<file>.part`` and publishes it as
``<file>`` only once it is whole — its length known and matched, or else the file loading as what it should be —
with its stamp beside it (``<file>.stamp``: the SHA-256 found while it arrived, its size and its modification
time).  The stamp lets a later load see, without reading the file, that it is still the one downloaded
(:mod:`textsleep.weights` decides what to fetch and checks stamps).  Every request goes through :func:`_open`,
every body through :func:`_transfer`.

Only ``https://`` is fetched unless the caller says the source is one the user configured (``plain_http``, a mirror
on a LAN); other schemes (``file://``, ``ftp://``) are refused, redirects included, and every file has a size cap.

Nothing happens at import: no folders are created and nothing is printed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
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

__all__ = [
    "download",
    "SourceError",
    "publish",
    "sha256_of",
    "read_stamp",
    "write_stamp",
    "hub_problem",
    "is_local",
    "check_scheme",
]

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


def is_local(source: str) -> bool:
    """A folder or file path rather than a URL (``C:\\mirror`` is a path too)."""
    return len(urllib.parse.urlsplit(source).scheme) <= 1


def check_scheme(url: str, *, plain_http: bool, then: str = "") -> None:
    """Only https (and http where the user configured the source) is fetched; anything else is one line."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and plain_http):
        return
    if scheme == "http":
        raise SourceError(f"{url}: plain http is fetched only from a mirror you configured; use https{then}")
    local = " (for a local mirror give the folder's path itself, not a file:// URL)" if scheme == "file" else ""
    raise SourceError(f"{url}: {scheme}:// is not fetched, only https://{local}{then}")


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to https (or to http when plain http is allowed): never file://, ftp:// or a
    downgrade from https."""

    def __init__(self, plain_http: bool) -> None:
        self.plain_http = plain_http

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme != "https" and not (scheme == "http" and self.plain_http):
            raise SourceError(f"{req.full_url} redirects to {newurl}, which is not fetched (only https://)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download(
    url: str,
    dest: Path,
    *,
    progress: bool = True,
    timeout: float = 10.0,
    retries: int = 2,
    sha256: str | None = None,
    how: str = "",
    max_bytes: int = 4 << 30,
    plain_http: bool = False,
    loads=None,
) -> Path:
    """Fetch ``url`` (or copy a file of a local mirror, a path) to ``dest``, hashing it as it arrives, and stamp it;
    return ``dest``.

    With ``sha256`` a file whose hash differs is discarded and is an error (not retried).  ``how`` tells the user
    how else to supply the file (errors end with it).  The body streams to ``dest.part``, published only once its
    size matches the server's; an interrupted transfer resumes from the ``.part`` with a Range request.  A server
    that sends no length: the file is kept only when ``loads(path)`` (raising on a bad file) accepts it or its
    ``sha256`` matches.  A file over ``max_bytes`` is refused.  Only https is fetched unless ``plain_http`` (a
    source the user configured).  ``timeout`` bounds connecting and each read; failures other than HTTP 4xx are
    retried ``retries`` times with a short backoff.  A file lock makes a second process wait for the first and then
    find the file done.
    """
    dest = Path(dest)
    then = f"; {how}" if how else ""
    if not is_local(url):
        check_scheme(url, plain_http=plain_http, then=then)
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
        if is_local(url):
            return _copy(Path(url).expanduser(), dest, sha256=sha256, max_bytes=max_bytes, loads=loads, then=then)
        for attempt in range(retries + 1):
            time.sleep(_BACKOFF_S * attempt)
            try:
                return _transfer(
                    url,
                    dest,
                    progress=progress,
                    timeout=timeout,
                    sha256=sha256,
                    max_bytes=max_bytes,
                    plain_http=plain_http,
                    loads=loads,
                )
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


def _open(url: str, have: int, timeout: float, plain_http: bool) -> http.client.HTTPResponse:
    """Ask for ``url`` from byte ``have`` on; network failures become :class:`_Transient`, HTTP errors stay."""
    headers = {"User-Agent": "textsleep", **({"Range": f"bytes={have}-"} if have else {})}
    opener = urllib.request.build_opener(_Redirects(plain_http))
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except (urllib.error.HTTPError, SourceError):
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(str(getattr(err, "reason", err))) from None


def _transfer(url: str, dest: Path, **how) -> Path:
    """One attempt: stream (or resume) into ``dest.part``, check its size and hash, then publish it as ``dest``."""
    progress, timeout, sha256, max_bytes = how["progress"], how["timeout"], how["sha256"], how["max_bytes"]
    part = _part(dest)
    have = _size(part)
    try:
        response = _open(url, have, timeout, how["plain_http"])
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:
            raise
        part.unlink()  # the .part cannot be resumed (stale, or already whole): start again
        return _transfer(url, dest, **how)
    with response:
        start, total = _resume_point(response, have)
        if start not in (0, have):
            part.unlink()
            raise _Transient(f"the server answered the resume request with bytes from {start}, not {have}")
        if total is not None and total > max_bytes:
            part.unlink(missing_ok=True)
            raise SourceError(f"{url} is {total} bytes, more than the {max_bytes} a {dest.name} may have")
        hasher = _hash_into(hashlib.sha256(), part) if start else hashlib.sha256()
        bar = tqdm(total=total, initial=start, desc=dest.name, file=sys.stderr, disable=not progress, **_BAR)
        try:
            with bar, open(part, "ab" if start else "wb") as out:
                for chunk in _chunks(response):
                    out.write(chunk)
                    hasher.update(chunk)
                    bar.update(len(chunk))
                    if out.tell() > max_bytes:
                        out.close()
                        part.unlink()
                        raise SourceError(f"{url} sent more than the {max_bytes} bytes a {dest.name} may have")
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
    return _finish(part, dest, hasher.hexdigest(), sha256=sha256, whole=total is not None, loads=how["loads"])


def _finish(part: Path, dest: Path, got: str, *, sha256: str | None, whole: bool, loads) -> Path:
    """Publish ``part`` as ``dest`` once it is the file: its published SHA-256, and a length that was known and
    matched or else the file loading as what it should be."""
    size = part.stat().st_size
    if sha256 is not None and got != sha256:
        part.unlink()
        raise _WrongFile(f"{size} bytes with SHA-256 {got}, not the published {sha256}")
    if not whole and sha256 is None:
        try:
            if loads is None:
                raise ValueError("nothing can tell whether it is whole")
            loads(part)
        except Exception as err:  # noqa: BLE001 - whatever is wrong, it is not the whole file
            part.unlink()
            raise _Transient(f"no length was sent and the {size} bytes received are not a whole file ({err})") from None
    return publish(part, dest, got)


def _copy(source: Path, dest: Path, *, sha256: str | None, max_bytes: int, loads, then: str) -> Path:
    """A file of a local mirror folder, copied into the cache as a download is (size cap, hash, stamp)."""
    if not source.is_file():
        raise SourceError(f"{source}: no such file in the mirror folder{then}")
    size = source.stat().st_size
    if size > max_bytes:
        raise SourceError(f"{source} is {size} bytes, more than the {max_bytes} a {dest.name} may have{then}")
    part = _part(dest)
    with open(source, "rb") as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
    try:
        # (a copy has no length to trust: a file cut short in the mirror is as long as itself)
        return _finish(part, dest, sha256_of(part), sha256=sha256, whole=False, loads=loads)
    except _WrongFile as err:
        raise SourceError(f"{source} is not the published file ({err}); it was not copied{then}") from None


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
