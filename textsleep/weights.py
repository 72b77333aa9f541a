"""BigGAN weight folders on disk: download, cache, resume, verify, lock.

Shortcut names (``biggan-deep-128/256/512``) are fetched once into
``$TEXTSLEEP_CACHE/biggan/<name>/`` (default: the platform's user cache folder)
and verified against the SHA-256 recorded at download on every later load.
``TEXTSLEEP_BIGGAN_URL`` points the shortcuts at a mirror (a folder URL holding
``<name>-pytorch_model.bin`` and ``<name>-config.json``).  The 128 model falls
back to its Hugging Face Hub copy.  CLIP weights are not handled here: they go
through huggingface_hub's own cache (``HF_HOME``, ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import UserError

__all__ = ["BIGGAN_SHORTCUTS", "cache_root", "biggan_dir", "download", "verify", "is_cached", "cached_models", "hub_problem", "HUB_FALLBACK"]

BIGGAN_SHORTCUTS = ("biggan-deep-128", "biggan-deep-256", "biggan-deep-512")
HUB_FALLBACK = {"biggan-deep-128": "osanseviero/BigGAN-deep-128"}
FILES = ("config.json", "pytorch_model.bin")
_CHUNK = 1 << 20


def cache_root() -> Path:
    """``$TEXTSLEEP_CACHE``, else the platform's user cache folder for textsleep."""
    env = os.environ.get("TEXTSLEEP_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("textsleep"))


def _shortcut_urls(name: str) -> dict[str, str]:
    mirror = os.environ.get("TEXTSLEEP_BIGGAN_URL")
    if mirror:
        base = mirror.rstrip("/")
        return {"pytorch_model.bin": f"{base}/{name}-pytorch_model.bin", "config.json": f"{base}/{name}-config.json"}
    from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP

    return {"pytorch_model.bin": PRETRAINED_MODEL_ARCHIVE_MAP[name], "config.json": PRETRAINED_CONFIG_ARCHIVE_MAP[name]}


def _how_to_supply(name: str) -> str:
    return (
        f"download it where there is network (`textsleep download --size {name.rsplit('-', 1)[-1]}`) and copy {cache_root()} here, "
        "pass --biggan DIR (a folder with pytorch_model.bin + config.json), or set TEXTSLEEP_BIGGAN_URL to a mirror"
        if name in BIGGAN_SHORTCUTS
        else "pass --biggan DIR (a folder with pytorch_model.bin + config.json)"
    )


def biggan_dir(name_or_path: str, *, progress: bool = True, force: bool = False) -> Path:
    """A local folder holding ``pytorch_model.bin`` and ``config.json`` for a name, folder or URL."""
    spec = str(name_or_path).strip()
    if spec in BIGGAN_SHORTCUTS:
        return _fetch_folder(spec, _shortcut_urls(spec), cache_root() / "biggan" / spec, progress=progress, force=force)
    if re.match(r"^https?://", spec):
        base = spec.rstrip("/")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", urllib.parse.urlsplit(base).netloc + urllib.parse.urlsplit(base).path).strip("_")
        urls = {f: f"{base}/{f}" for f in FILES}
        return _fetch_folder(spec, urls, cache_root() / "biggan" / "url" / safe[:120], progress=progress, force=force)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        for f in FILES:
            if not (folder / f).is_file():
                raise UserError(f"--biggan {spec!r}: the folder has no {f} (it needs pytorch_model.bin and config.json)")
        return folder
    if folder.exists():
        raise UserError(f"--biggan {spec!r}: is a file; give the folder holding pytorch_model.bin and config.json")
    raise UserError(f"--biggan {spec!r}: not a shortcut name ({', '.join(BIGGAN_SHORTCUTS)}), an existing folder or an http(s) URL")


def _fetch_folder(name: str, urls: dict[str, str], folder: Path, *, progress: bool, force: bool) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise UserError(f"cache folder {str(folder)!r} is not writable ({err.strerror or err}); set TEXTSLEEP_CACHE to another folder") from None
    if force:
        for f in FILES:
            for extra in ("", ".sha256"):
                (folder / (f + extra)).unlink(missing_ok=True)
    try:
        for f in FILES:
            target = folder / f
            if target.is_file():
                verify(target, refetch=f"textsleep download --size {name.rsplit('-', 1)[-1]} --force" if name in BIGGAN_SHORTCUTS else None)
                continue
            download(urls[f], target, progress=progress and f.endswith(".bin"))
    except UserError as err:
        fallback = HUB_FALLBACK.get(name)
        if fallback is None or "corrupted" in str(err):
            raise
        return _from_hub(fallback, folder, first_error=err, progress=progress)
    return folder


def _from_hub(repo: str, folder: Path, *, first_error: UserError, progress: bool) -> Path:
    """The Hugging Face Hub copy of a model, linked into our cache folder."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = all(isinstance(try_to_load_from_cache(repo, f), str) for f in FILES)
    problem = None if cached else hub_problem()
    if problem:
        raise UserError(f"{first_error}; its Hub copy {repo} cannot be reached either ({problem})")
    try:
        for f in FILES:
            path = Path(hf_hub_download(repo, f))
            target = folder / f
            if not target.is_file():
                os.replace(_copy_beside(path, target), target)
                _record_sha(target)
    except Exception as err:  # network, offline mode, missing repo: report both sources
        raise UserError(f"{first_error}; the Hub copy {repo} failed too ({err.__class__.__name__})") from None
    return folder


def _copy_beside(source: Path, target: Path) -> Path:
    tmp = target.with_name(target.name + ".part")
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
    return tmp


def hub_problem(timeout: float = 4.0) -> str | None:
    """Why the Hugging Face Hub cannot be used right now (offline mode, no connection), or None.

    huggingface_hub retries for about a minute when there is no network; this
    answers in seconds so users get a clear error instead of a hang.
    """
    from huggingface_hub import constants

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
def download(url: str, dest: Path, *, progress: bool = True, timeout: float = 10.0, retries: int = 2) -> Path:
    """Fetch ``url`` to ``dest``: streamed to ``dest.part``, resumed with Range, size-checked, renamed when complete.

    A SHA-256 of the complete file is recorded as ``dest.sha256``.  A file lock
    keeps two processes from writing the same file at once.
    """
    from filelock import FileLock

    dest = Path(dest)
    try:
        lock = FileLock(str(dest) + ".lock")
        lock.acquire(timeout=3600)
    except OSError as err:
        raise UserError(f"cannot write to {str(dest.parent)!r} ({err.strerror or err}); set TEXTSLEEP_CACHE to a writable folder") from None
    try:
        if dest.is_file():  # another process finished it while we waited
            return dest
        attempt = 0
        while True:
            try:
                _transfer(url, dest, progress=progress, timeout=timeout)
                break
            except urllib.error.HTTPError as err:
                if err.code < 500 or attempt >= retries:
                    raise UserError(f"download of {url} failed: HTTP {err.code} {err.reason}; {_how_to_supply(dest.parent.name)}") from None
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, _ShortRead) as err:
                if attempt >= retries:
                    reason = getattr(err, "reason", err)
                    raise UserError(
                        f"cannot download {url} ({reason}); nothing usable in {dest.parent}; {_how_to_supply(dest.parent.name)}"
                    ) from None
            attempt += 1
            time.sleep(0.5 * attempt)
        _record_sha(dest)
        return dest
    finally:
        lock.release()


class _ShortRead(Exception):
    pass


def _transfer(url: str, dest: Path, *, progress: bool, timeout: float) -> None:
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "textsleep", **({"Range": f"bytes={have}-"} if have else {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # the server ignored Range: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = _bar(total, have, dest.name) if progress else None
        try:
            with open(part, "ab" if have else "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except OSError as err:
            if isinstance(err, (socket.timeout, TimeoutError, ConnectionError)):
                raise
            raise UserError(f"writing {part} failed ({err.strerror or err}); the partial file is kept and the download resumes next time") from None
        finally:
            if bar is not None:
                bar.close()
    size = part.stat().st_size
    if total is not None and size != total:
        raise _ShortRead(f"got {size} of {total} bytes")
    os.replace(part, dest)


def _bar(total: int | None, initial: int, name: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------- verification
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _record_sha(path: Path) -> None:
    Path(str(path) + ".sha256").write_text(_sha256(path) + "\n")


def verify(path: Path, refetch: str | None = None) -> None:
    """Compare a file with the SHA-256 recorded when it was downloaded (files without a record pass)."""
    record = Path(str(path) + ".sha256")
    if not record.is_file():
        return
    if _sha256(path) != record.read_text().strip():
        how = f"fetch it again with `{refetch}`" if refetch else f"delete {path} to fetch it again"
        raise UserError(f"{path} is corrupted (its SHA-256 differs from the one recorded at download); {how}")


def is_cached(name: str) -> bool:
    folder = cache_root() / "biggan" / name
    return all((folder / f).is_file() for f in FILES)


def cached_models() -> list[dict]:
    found = []
    for name in BIGGAN_SHORTCUTS:
        folder = cache_root() / "biggan" / name
        if is_cached(name):
            found.append({"name": name, "path": str(folder), "size": sum((folder / f).stat().st_size for f in FILES)})
    return found
