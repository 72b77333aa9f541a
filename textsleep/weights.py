"""BigGAN weight folders on disk: download, cache, resume, verify, lock.

Shortcut names (``biggan-deep-128/256/512``) are fetched once into
``cache_root()/biggan/<name>/`` (``$TEXTSLEEP_CACHE``, else the platform's user
cache folder) and checked against the SHA-256 recorded at download on every
later load.  ``TEXTSLEEP_BIGGAN_URL`` points the shortcuts at a mirror (a folder
URL holding ``<name>-pytorch_model.bin`` and ``<name>-config.json``, the layout
of the original S3 bucket).  The 128 model falls back to its Hugging Face Hub
copy when the primary source fails.  CLIP weights are not handled here: they go
through huggingface_hub's own cache (``HF_HOME``, ``HF_HUB_OFFLINE``).

Upscaler networks (``RealESRGAN_x4plus``, ``RealESRGAN_x2plus``) come the same
way from their release assets into ``cache_root()/upscale/<name>.pth``, checked
against their published SHA-256; ``TEXTSLEEP_UPSCALER_URL`` points them at a
mirror (a folder URL holding ``<name>.pth``).

Nothing happens at import: no folders are created and nothing is printed.
"""

from __future__ import annotations

import hashlib
import http.client
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
from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from platformdirs import user_cache_dir
from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP
from tqdm import tqdm

from .errors import UserError

__all__ = [
    "BIGGAN_SHORTCUTS",
    "HUB_FALLBACK",
    "cache_root",
    "biggan_dir",
    "download",
    "verify",
    "is_cached",
    "cached_models",
    "hub_problem",
    "UPSCALERS",
    "upscaler_file",
]

BIGGAN_SHORTCUTS: tuple[str, ...] = ("biggan-deep-128", "biggan-deep-256", "biggan-deep-512")
HUB_FALLBACK: dict[str, str] = {"biggan-deep-128": "osanseviero/BigGAN-deep-128"}
FILES = ("config.json", "pytorch_model.bin")
# name -> (release asset URL, its published SHA-256)
UPSCALERS: dict[str, tuple[str, str]] = {
    "RealESRGAN_x4plus": (
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
        "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
    ),
    "RealESRGAN_x2plus": (
        "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
        "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
    ),
}
_CHUNK = 1 << 20
_BACKOFF_S = 0.5
_LOCK_WAIT_S = 3600.0


class _SourceError(UserError):
    """A source could not deliver a file (network, HTTP status); another source may be tried."""


class _Transient(Exception):
    """A failure worth retrying: no connection, a timeout, a body cut short."""


class _WrongFile(Exception):
    """The whole file arrived but its SHA-256 is not the expected one (it was discarded)."""


# --------------------------------------------------------------------------------------------- folders
def cache_root() -> Path:
    """``$TEXTSLEEP_CACHE``, else the platform's user cache folder for textsleep."""
    env = os.environ.get("TEXTSLEEP_CACHE")
    if env:
        return Path(env).expanduser()

    return Path(user_cache_dir("textsleep"))


def biggan_dir(name_or_path: str, *, progress: bool = True, force: bool = False) -> Path:
    """A local folder holding ``pytorch_model.bin`` and ``config.json`` for a shortcut name, folder or URL.

    Shortcuts and URLs are downloaded once into the cache and verified on every
    later call; ``force`` throws the cached copy away and fetches it again.
    """
    spec = str(name_or_path).strip()
    if spec in BIGGAN_SHORTCUTS:
        size = spec.rsplit("-", 1)[-1]
        return _cached_folder(
            _shortcut_urls(spec),
            cache_root() / "biggan" / spec,
            refetch=f"textsleep download --size {size} --force",
            hub_repo=HUB_FALLBACK.get(spec),
            progress=progress,
            force=force,
        )
    if re.match(r"https?://", spec, re.IGNORECASE):
        base = spec.rstrip("/")
        folder = cache_root() / "biggan" / _url_slug(base)
        return _cached_folder(
            {f: f"{base}/{f}" for f in FILES}, folder, refetch=None, hub_repo=None, progress=progress, force=force
        )
    return _local_folder(spec)


def _local_folder(spec: str) -> Path:
    folder = Path(spec).expanduser()
    if folder.is_dir():
        missing = [f for f in FILES if not (folder / f).is_file()]
        if missing:
            raise UserError(
                f"--biggan {spec!r}: the folder has no {' and no '.join(missing)} (it needs pytorch_model.bin and "
                "config.json)"
            )
        return folder
    if folder.exists():
        raise UserError(f"--biggan {spec!r} is a file; give the folder holding pytorch_model.bin and config.json")
    raise UserError(
        f"--biggan {spec!r} is not a known model name ({', '.join(BIGGAN_SHORTCUTS)}); "
        "a folder holding pytorch_model.bin + config.json, or the http(s) URL of one, also works"
    )


def _shortcut_urls(name: str) -> dict[str, str]:
    """File name -> URL for a shortcut: the mirror in ``TEXTSLEEP_BIGGAN_URL``, else pytorch-pretrained-biggan's own."""
    mirror = os.environ.get("TEXTSLEEP_BIGGAN_URL", "").strip()
    if mirror:
        base = mirror.rstrip("/")
        return {f: f"{base}/{name}-{f}" for f in FILES}

    return {"pytorch_model.bin": PRETRAINED_MODEL_ARCHIVE_MAP[name], "config.json": PRETRAINED_CONFIG_ARCHIVE_MAP[name]}


def _url_slug(url: str) -> str:
    """A folder name for a URL: readable, and unique through a short hash."""
    parts = urllib.parse.urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", parts.netloc + parts.path).strip("_")[:80]
    return f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def _cached_folder(
    urls: dict[str, str], folder: Path, *, refetch: str | None, hub_repo: str | None, progress: bool, force: bool
) -> Path:
    """Serve ``folder`` from the cache (verified), downloading what is missing."""
    if force:
        _check_writable(folder)
        for f in FILES:
            for suffix in ("", ".sha256", ".part"):
                (folder / (f + suffix)).unlink(missing_ok=True)
    missing = [f for f in FILES if not (folder / f).is_file()]
    for f in FILES:
        if f not in missing:
            verify(folder / f, refetch=refetch)
    if not missing:
        return folder  # a complete cache needs no writes: a read-only copy works
    _check_writable(folder)
    try:
        for f in missing:
            download(urls[f], folder / f, progress=progress and f.endswith(".bin"))
    except _SourceError as err:
        if hub_repo is None:
            raise
        _from_hub(hub_repo, folder, first_error=err)
    return folder


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise UserError(
            f"cache folder {str(folder)!r} is not writable ({err.strerror or err}); set TEXTSLEEP_CACHE to a "
            "writable folder"
        ) from None


def _how_to_supply(dest: Path) -> str:
    name = dest.parent.name
    local = "pass --biggan DIR (a folder with pytorch_model.bin + config.json) or set TEXTSLEEP_BIGGAN_URL to a mirror"
    if name in BIGGAN_SHORTCUTS:
        size = name.rsplit("-", 1)[-1]
        return f"{local}, or run `textsleep download --size {size}` where there is network and copy {cache_root()} here"
    return local


# --------------------------------------------------------------------------------------------- upscalers
def upscaler_file(name_or_path: str, *, progress: bool = True, force: bool = False) -> Path:
    """A local ``.pth`` for a known upscaler name (downloaded once, verified on every call) or a path."""
    spec = str(name_or_path).strip()
    if spec in UPSCALERS:
        url, sha256 = UPSCALERS[spec]
        mirror = os.environ.get("TEXTSLEEP_UPSCALER_URL", "").strip()
        if mirror:
            url = f"{mirror.rstrip('/')}/{spec}.pth"
        dest = cache_root() / "upscale" / f"{spec}.pth"
        if force:
            _check_writable(dest.parent)
            for suffix in ("", ".sha256", ".part"):
                Path(str(dest) + suffix).unlink(missing_ok=True)
        if dest.is_file():
            verify(dest, sha256=sha256)
            return dest
        how = (
            f"pass --upscaler PATH (a copy of {UPSCALERS[spec][0]}), set TEXTSLEEP_UPSCALER_URL to a folder URL "
            f"holding {spec}.pth, or copy {dest} here from a machine with network"
        )
        return download(url, dest, progress=progress, sha256=sha256, how=how)
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise UserError(f"--upscaler {spec!r} is a folder; give the network's .pth file")
    raise UserError(f"--upscaler {spec!r} is neither a known upscaler ({', '.join(UPSCALERS)}) nor a file")


# --------------------------------------------------------------------------------------------- Hugging Face Hub
def _from_hub(repo: str, folder: Path, *, first_error: UserError) -> Path:
    """Copy the missing files of ``folder`` from the model's Hugging Face Hub copy."""

    missing = [f for f in FILES if not (folder / f).is_file()]
    cached = all(isinstance(try_to_load_from_cache(repo, f), str) for f in missing)
    problem = None if cached else hub_problem()
    if problem:
        raise _SourceError(f"{first_error}; its Hub copy {repo} cannot be reached either ({problem})")
    try:
        for f in missing:
            source = Path(hf_hub_download(repo, f))
            part = _part(folder / f)
            hasher = hashlib.sha256()
            with open(source, "rb") as src, open(part, "wb") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    hasher.update(chunk)
            _finish(part, folder / f, hasher.hexdigest())
    except Exception as err:  # network, offline mode, missing repo: report both sources
        raise _SourceError(f"{first_error}; the Hub copy {repo} failed too ({err.__class__.__name__}: {err})") from None
    return folder


def hub_problem(timeout: float = 4.0) -> str | None:
    """Why the Hugging Face Hub cannot be used right now (offline mode, no connection), or None.

    huggingface_hub retries for about a minute when there is no network; this
    answers in seconds so users get a clear error instead of a hang.
    """

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    url = urllib.parse.urlsplit(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        return f"{endpoint}: {err.__class__.__name__}: {err}"
    return None


# --------------------------------------------------------------------------------------------- download
def download(
    url: str,
    dest: Path,
    *,
    progress: bool = True,
    timeout: float = 10.0,
    retries: int = 2,
    sha256: str | None = None,
    how: str | None = None,
) -> Path:
    """Fetch ``url`` to ``dest`` and record its SHA-256 as ``dest.sha256``; return ``dest``.

    With ``sha256`` a file whose hash differs is discarded and is an error (not
    retried).  ``how`` tells the user how else to supply the file (errors end with it).

    The body streams to ``dest.part`` and is renamed only once its size matches
    the server's; an interrupted transfer resumes from the ``.part`` with a
    Range request.  ``timeout`` bounds connecting and each read; failures other
    than HTTP 4xx are retried ``retries`` times with a short backoff.  A file
    lock makes a second process wait for the first and then find the file done.
    """

    dest = Path(dest)
    how = how or _how_to_supply(dest)
    _check_writable(dest.parent)
    lock = FileLock(str(dest) + ".lock")
    try:
        lock.acquire(timeout=_LOCK_WAIT_S)
    except Timeout:
        raise UserError(
            f"{dest} has been locked by another download for {_LOCK_WAIT_S:.0f} s; if none is running, delete "
            f"{lock.lock_file}"
        ) from None
    try:
        if dest.is_file():  # another process finished it while we waited
            return dest
        failure = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(_BACKOFF_S * attempt)
            try:
                _transfer(url, dest, progress=progress, timeout=timeout, sha256=sha256)
                return dest
            except _WrongFile as err:
                raise _SourceError(f"download of {url} gave the wrong file ({err}); it was discarded; {how}") from None
            except urllib.error.HTTPError as err:
                failure = f"HTTP {err.code} {err.reason}"
                if err.code < 500:  # a 4xx answer will not change on retry
                    raise _SourceError(f"download of {url} failed: {failure}; {how}") from None
            except _Transient as err:
                failure = str(err)
        part = _part(dest)
        kept = (
            f"the partial file {part} is kept and the next run resumes it; "
            if part.is_file() and part.stat().st_size
            else ""
        )
        raise _SourceError(
            f"cannot download {url} ({failure}; {retries + 1} tries); {dest} is not in the cache; {kept}{how}"
        )
    finally:
        lock.release()


def _part(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _transfer(url: str, dest: Path, *, progress: bool, timeout: float, sha256: str | None = None) -> None:
    """One attempt: stream (or resume) into ``dest.part``, check the size, then publish it as ``dest``."""
    part = _part(dest)
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "textsleep", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the .part cannot be resumed (stale, or already whole): start again
            part.unlink()
            return _transfer(url, dest, progress=progress, timeout=timeout, sha256=sha256)
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise _Transient(str(getattr(err, "reason", err))) from None
    with response:
        start, total = _resume_point(response, have)
        if start != have and start != 0:
            part.unlink()
            raise _Transient(f"the server answered the resume request with bytes from {start}, not {have}")
        hasher = hashlib.sha256()
        if start:
            _hash_into(hasher, part)
        bar = _bar(total, start, dest.name) if progress else None
        try:
            with open(part, "ab" if start else "wb") as out:
                for chunk in _chunks(response):
                    out.write(chunk)
                    hasher.update(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except OSError as err:
            raise UserError(
                f"writing {part} failed ({err.strerror or err}); free some space or set TEXTSLEEP_CACHE to another "
                "folder; "
                "the partial file is kept and the next run resumes it"
            ) from None
        finally:
            if bar is not None:
                bar.close()
    size = part.stat().st_size
    if total is not None and size != total:
        if size > total:
            part.unlink()  # it cannot be the right file: never resume from it
        raise _Transient(f"the transfer stopped after {size} of {total} bytes")
    got = hasher.hexdigest()
    if sha256 is not None and got != sha256:
        part.unlink()
        raise _WrongFile(f"{size} bytes with SHA-256 {got}, not the published {sha256}")
    _finish(part, dest, got)


def _resume_point(response: http.client.HTTPResponse, have: int) -> tuple[int, int | None]:
    """Where the body starts in the file, and the whole file's size if the server said."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
        start = int(match.group(1)) if match else have
        if match and match.group(2) != "*":
            return start, int(match.group(2))
        return start, start + int(length) if length is not None else None
    return 0, int(length) if length is not None else None  # 200: the server ignored Range


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


def _finish(part: Path, dest: Path, sha256: str) -> None:
    """Record the hash, then publish the file: a complete file always has its record."""
    record = Path(str(dest) + ".sha256")
    tmp = record.with_name(record.name + ".part")
    tmp.write_text(sha256 + "\n")
    os.replace(tmp, record)
    os.replace(part, dest)


def _bar(total: int | None, initial: int, name: str):

    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name,
        file=sys.stderr,
        dynamic_ncols=True,
    )


# --------------------------------------------------------------------------------------------- verification
def _hash_into(hasher, path: Path) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)


def verify(path: Path, refetch: str | None = None, *, sha256: str | None = None) -> None:
    """Recompute a file's SHA-256 and compare it with ``sha256`` if given, else with the one recorded at download
    (files without a record pass).

    ``refetch`` is the command to put in the error message.
    """
    path = Path(path)
    record = Path(str(path) + ".sha256")
    if sha256 is None and not record.is_file():
        return
    expected = sha256 or record.read_text().strip()
    hasher = hashlib.sha256()
    _hash_into(hasher, path)
    if hasher.hexdigest() != expected:
        how = f"fetch it again with `{refetch}`" if refetch else f"delete {path} to fetch it again"
        which = "the published one" if sha256 else "the one recorded at download"
        raise UserError(f"{path} is corrupted (its SHA-256 differs from {which}); {how}")


def is_cached(name: str) -> bool:
    """Whether a shortcut's folder in the cache holds both files (not verified: that reads the whole file)."""
    folder = cache_root() / "biggan" / name
    return all((folder / f).is_file() for f in FILES)


def cached_models() -> list[dict]:
    """``{"name", "path", "size"}`` (size in bytes) for every complete BigGAN folder in the cache."""
    root = cache_root() / "biggan"
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if all((folder / f).is_file() for f in FILES):
            found.append(
                {"name": folder.name, "path": str(folder), "size": sum((folder / f).stat().st_size for f in FILES)}
            )
    return found


def cached_upscalers() -> list[dict]:
    """``{"name", "path", "size"}`` for every known upscaler whose file is complete in the cache."""
    found = []
    for name in UPSCALERS:
        path = cache_root() / "upscale" / f"{name}.pth"
        if path.is_file():
            found.append({"name": name, "path": str(path), "size": path.stat().st_size})
    return found
