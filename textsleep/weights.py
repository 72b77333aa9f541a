"""Weight files on disk: BigGAN folders and upscaler networks, downloaded once into a cache and stamped.

Shortcut names (``biggan-deep-128/256/512``) are fetched into ``cache_root()/biggan/<name>/`` (``$TEXTSLEEP_CACHE``,
else the platform's user cache folder); ``TEXTSLEEP_BIGGAN_URL`` points them at a mirror (a folder URL, or a local
folder's path, holding ``<name>-pytorch_model.bin`` and ``<name>-config.json``, the original bucket's layout), and
the 128 model falls back to its Hugging Face Hub copy when the primary source fails.  Upscalers
(``RealESRGAN_x4plus``, ``RealESRGAN_x2plus``) come from their release assets into
``cache_root()/upscale/<name>.pth``; ``TEXTSLEEP_UPSCALER_URL`` points them at a mirror (a folder URL or path)
holding ``<name>.pth``.  Files of known releases are checked against their published SHA-256 (:data:`PINNED`),
the first download included.  Plain ``http://`` is fetched only from a mirror or URL the user gave; every file kind
has a size cap (:data:`MAX_BYTES`).  CLIP weights go through
huggingface_hub's own cache (``HF_HOME``, ``HF_HUB_OFFLINE``).

A file is hashed once, as it arrives (:mod:`textsleep.fetch`).  Its stamp (``<file>.stamp``: that SHA-256, the
size and the modification time) is all a later load compares (:func:`check`), so a load reads nothing but the stamp;
:func:`verify` (``textsleep doctor --verify``) hashes on request.  Where a file comes from is decided in
:func:`_biggan_sources` and :func:`upscaler_file`, the SHA-256 it must have in :func:`_published`.

Nothing happens at import: no folders are created and nothing is printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import urllib.parse
import zipfile
from pathlib import Path

import torch
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from platformdirs import user_cache_dir

from .errors import UserError
from .fetch import (
    SourceError,
    check_scheme,
    check_writable,
    download,
    hub_problem,
    is_local,
    publish,
    read_stamp,
    sha256_of,
    write_stamp,
)
from .lazy import biggan_package

__all__ = [
    "BIGGAN_SHORTCUTS",
    "HUB_FALLBACK",
    "UPSCALERS",
    "cache_root",
    "biggan_dir",
    "upscaler_file",
    "download",
    "check",
    "verify",
    "verify_cache",
    "cached_files",
    "is_cached",
    "cached_models",
    "cached_upscalers",
    "hub_problem",
    "set_aside",
    "PINNED",
    "MAX_BYTES",
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
# shortcut -> file -> (SHA-256, bytes) of the released files; a mirror must serve these same files.  The 256 model's
# come from a public installer's model catalog that downloads them from the original bucket (catalog
# "bundle-b-2026-08-07" of the Uncanny Lab model installer).  No public listing of the 128 and 512 files' hashes was
# found: those are checked by length (and, with no length, by loading) and stamped at first download.
PINNED: dict[str, dict[str, tuple[str, int]]] = {
    "biggan-deep-256": {
        "pytorch_model.bin": ("5900ef4065047e3aa0d1b66197b7f2664dceb59b27080e414ad57e203c485bc5", 234_411_737),
        "config.json": ("edd106f65ff28ee1638491a978cfa6bc50dfa0344aab70749a7b8eb08bbec677", 715),
    },
}
# the most a file of each kind may have: a config is a few hundred bytes, weights a few hundred megabytes
MAX_BYTES: dict[str, int] = {"config.json": 64 << 10, "pytorch_model.bin": 4 << 30, ".pth": 4 << 30}
_SIDECARS = (".stamp", ".sha256", ".part")  # beside a file: its stamp, an earlier version's record, a partial download


# --------------------------------------------------------------------------------------------- what comes from where
def cache_root() -> Path:
    """``$TEXTSLEEP_CACHE``, else the platform's user cache folder for textsleep."""
    env = os.environ.get("TEXTSLEEP_CACHE")
    return Path(env).expanduser() if env else Path(user_cache_dir("textsleep"))


def biggan_dir(name_or_path: str, *, progress: bool = True, force: bool = False) -> Path:
    """A local folder holding ``pytorch_model.bin`` and ``config.json`` for a shortcut name, folder or URL.

    Shortcuts and URLs are downloaded once into the cache and their stamps checked on every later call; ``force``
    throws the cached copy away and fetches it again.
    """
    spec = str(name_or_path).strip()
    if spec not in BIGGAN_SHORTCUTS and is_local(spec):
        return _local_folder(spec)
    if spec not in BIGGAN_SHORTCUTS:
        check_scheme(spec, plain_http=True, then="; give a folder's path, or the http(s) URL of one")  # (the user's)
    folder, urls = _biggan_sources(spec)
    how = _how_to_supply(spec)
    mine = spec not in BIGGAN_SHORTCUTS or bool(os.environ.get("TEXTSLEEP_BIGGAN_URL", "").strip())
    try:
        for f in FILES:
            _cached(urls[f], folder / f, how=how, progress=progress and f.endswith(".bin"), force=force, mine=mine)
    except SourceError as err:
        if spec not in HUB_FALLBACK:
            raise
        _from_hub(HUB_FALLBACK[spec], folder, first_error=err)
    return folder


def upscaler_file(name_or_path: str, *, progress: bool = True, force: bool = False) -> Path:
    """A local ``.pth`` for a known upscaler name (downloaded once, its stamp checked on every call) or a path."""
    spec = str(name_or_path).strip()
    if spec in UPSCALERS:
        mirror = os.environ.get("TEXTSLEEP_UPSCALER_URL", "").strip().rstrip("/")
        dest = cache_root() / "upscale" / f"{spec}.pth"
        how = (
            f"pass --upscaler PATH (a copy of {UPSCALERS[spec][0]}), set TEXTSLEEP_UPSCALER_URL to a folder URL "
            f"or path holding {spec}.pth, or copy {dest} here from a machine with network"
        )
        url = _join(mirror, f"{spec}.pth") if mirror else UPSCALERS[spec][0]
        return _cached(url, dest, how=how, progress=progress, force=force, mine=bool(mirror))
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise UserError(f"--upscaler {spec!r} is a folder; give the network's .pth file")
    raise UserError(f"--upscaler {spec!r} is neither a known upscaler ({', '.join(UPSCALERS)}) nor a file")


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


def _biggan_sources(spec: str) -> tuple[Path, dict[str, str]]:
    """The cache folder of a shortcut or folder URL, and the URL of each of its files (a shortcut's come from
    ``TEXTSLEEP_BIGGAN_URL``, else from pytorch-pretrained-biggan's own table)."""
    if spec not in BIGGAN_SHORTCUTS:
        base = spec.rstrip("/")
        parts = urllib.parse.urlsplit(base)
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", parts.netloc + parts.path).strip("_")[:80]
        slug = f"{readable}-{hashlib.sha256(base.encode()).hexdigest()[:10]}"  # readable, and unique
        return cache_root() / "biggan" / slug, {f: f"{base}/{f}" for f in FILES}
    mirror = os.environ.get("TEXTSLEEP_BIGGAN_URL", "").strip().rstrip("/")
    if mirror:
        return cache_root() / "biggan" / spec, {f: _join(mirror, f"{spec}-{f}") for f in FILES}
    archive = biggan_package.model  # (the package's own download addresses)
    urls = {
        "pytorch_model.bin": archive.PRETRAINED_MODEL_ARCHIVE_MAP[spec],
        "config.json": archive.PRETRAINED_CONFIG_ARCHIVE_MAP[spec],
    }
    return cache_root() / "biggan" / spec, urls


def _join(mirror: str, name: str) -> str:
    """A file of a mirror: a folder URL's, or a local folder's path's."""
    if is_local(mirror):
        return str(Path(mirror).expanduser() / name)
    check_scheme(mirror, plain_http=True, then="; give the mirror folder's path itself, or its http(s) URL")
    return f"{mirror}/{name}"


def _published(path: Path) -> str | None:
    """The SHA-256 a cached file must have, where one is published (the upscalers' release assets, :data:`PINNED`)."""
    if path.parent.name == "upscale" and path.stem in UPSCALERS:
        return UPSCALERS[path.stem][1]
    if path.parent.parent.name == "biggan" and path.name in PINNED.get(path.parent.name, {}):
        return PINNED[path.parent.name][path.name][0]
    return None


def _loads(path: Path) -> None:
    """Raise unless ``path`` is whole as its kind must be: a JSON config, or a PyTorch checkpoint (a zip whose
    members all check, or an older pickled file that loads)."""
    if path.name.startswith("config.json"):
        if not isinstance(json.loads(path.read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"its part {bad} is damaged")
        return
    torch.load(path, map_location="cpu", weights_only=True)


def _max_bytes(dest: Path) -> int:
    return MAX_BYTES.get(dest.name, MAX_BYTES[".pth"])


def _how_to_supply(name: str) -> str:
    """What to do when ``name`` cannot be fetched, in words that suit ``textsleep download`` and a dream alike."""
    folder = "a folder with pytorch_model.bin + config.json"
    if name in BIGGAN_SHORTCUTS:
        size = name.rsplit("-", 1)[-1]
        return (
            f"set TEXTSLEEP_BIGGAN_URL to a mirror (a folder or URL holding {name}-config.json and "
            f"{name}-pytorch_model.bin), or run `textsleep download --size {size}` where there is network and copy "
            f"{cache_root()} here; a dream also takes --biggan DIR ({folder})"
        )
    return f"pass --biggan DIR ({folder}) or set TEXTSLEEP_BIGGAN_URL to a mirror"


def set_aside(path: Path) -> str:
    """Move a cached weight file that does not load out of the way (``<file>.damaged``, its stamp removed), so that
    the next run fetches it again; what to tell the user, or '' for a file that is not in the cache."""
    path = Path(path)
    try:
        path.resolve().relative_to(cache_root().resolve())
    except ValueError:
        return ""
    aside = path.with_name(path.name + ".damaged")
    try:
        os.replace(path, aside)
        Path(f"{path}.stamp").unlink(missing_ok=True)
    except OSError:
        return f"; {_refetch(path)}"
    if path.parent.name in BIGGAN_SHORTCUTS:
        again = f"run `textsleep download --size {path.parent.name.rsplit('-', 1)[-1]}` to fetch it again"
    elif _published(path):
        again = f"run `textsleep download --no-biggan --no-clip --upscaler {path.stem}` to fetch it again"
    else:
        again = "the next run fetches it again"
    return f"; it was cut short or damaged and is moved aside to {aside.name}: {again}"


def _refetch(path: Path) -> str:
    """How to replace a cached file that is not what was downloaded."""
    if path.parent.name in BIGGAN_SHORTCUTS:
        return f"fetch it again with `textsleep download --size {path.parent.name.rsplit('-', 1)[-1]} --force`"
    if _published(path):
        return f"fetch it again with `textsleep download --no-biggan --no-clip --upscaler {path.stem} --force`"
    return f"delete {path} to fetch it again"


# --------------------------------------------------------------------------------------------- the cache
def _cached(url: str, dest: Path, *, how: str, progress: bool, force: bool, mine: bool) -> Path:
    """``dest`` from the cache with its stamp checked (nothing written: a read-only copy works), else downloaded
    (over plain http only from a source the user gave, ``mine``)."""
    if force:
        check_writable(dest.parent)
        for suffix in ("", *_SIDECARS):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
    if dest.is_file():
        check(dest)
        return dest
    return download(
        url,
        dest,
        progress=progress,
        sha256=_published(dest),
        how=how,
        max_bytes=_max_bytes(dest),
        plain_http=mine,
        loads=_loads,
    )


def check(path: Path) -> None:
    """Compare a cached file with its stamp, without reading it: the same size and modification time as at download
    (and the published SHA-256, where there is one).

    A file without a stamp (from an earlier version, or put there by hand) is hashed once against the SHA-256 it
    must have or the one an earlier version recorded, if any, and stamped.
    """
    path = Path(path)
    stamp, published = read_stamp(path), _published(path)
    if stamp is None:
        if published or Path(f"{path}.sha256").is_file():
            verify(path)
        return
    st = path.stat()
    if not stamp:
        why = f"its stamp {path}.stamp cannot be read"
    elif st.st_size != stamp.get("size"):
        why = f"{st.st_size} bytes, not the {stamp.get('size')} downloaded"
    elif st.st_mtime_ns != stamp.get("mtime_ns"):
        why = "modified since it was downloaded"
    elif published and stamp.get("sha256") != published:
        why = "downloaded with another SHA-256 than the published one"
    else:
        return
    raise UserError(
        f"{path} is not the file that was downloaded ({why}): cut short, replaced or corrupted; {_refetch(path)} "
        "(a cache copied here without its files' times is checked and stamped again by `textsleep doctor --verify`)"
    )


def verify(path: Path) -> str | None:
    """Hash a cached file and compare it with the SHA-256 it must have (published, else found at download); return
    that SHA-256 and renew the stamp where it can (a copy made without the files' times then loads again).

    None when there is nothing to compare with (a file not downloaded by textsleep); a mismatch is a UserError.
    """
    path = Path(path)
    stamp, published, legacy = read_stamp(path) or {}, _published(path), Path(f"{path}.sha256")
    expected = published or stamp.get("sha256") or (legacy.read_text().strip() if legacy.is_file() else None)
    if not expected:
        return None
    if sha256_of(path) != expected:
        which = "the published one" if published else "the one found at download"
        raise UserError(f"{path} is corrupted (its SHA-256 differs from {which}); {_refetch(path)}")
    with contextlib.suppress(OSError):  # a read-only cache keeps the stamp it has
        write_stamp(path, expected, path.stat())
    return expected


def verify_cache() -> list[dict]:
    """:func:`verify` every cached weight file: ``{"path", "sha256", "error"}`` each (``sha256`` None where nothing
    was recorded to compare with, ``error`` the one-line message for a file that is not what was downloaded)."""
    report = []
    for path in cached_files():
        try:
            report.append({"path": path, "sha256": verify(path), "error": None})
        except UserError as err:
            report.append({"path": path, "sha256": None, "error": str(err)})
    return report


def cached_files() -> list[Path]:
    """Every weight file in the cache: the BigGAN folders' files, then the known upscalers'."""
    root = cache_root()
    found = sorted(p for p in (root / "biggan").glob("*/*") if p.name in FILES and p.is_file())
    return found + [p for name in UPSCALERS if (p := root / "upscale" / f"{name}.pth").is_file()]


def is_cached(name: str) -> bool:
    """Whether a shortcut's folder in the cache holds both files (its stamps are not checked)."""
    return all((cache_root() / "biggan" / name / f).is_file() for f in FILES)


def cached_models() -> list[dict]:
    """``{"name", "path", "size"}`` (size in bytes) for every complete BigGAN folder in the cache."""
    root = cache_root() / "biggan"
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    complete = [d for d in folders if all((d / f).is_file() for f in FILES)]
    return [{"name": d.name, "path": str(d), "size": sum((d / f).stat().st_size for f in FILES)} for d in complete]


def cached_upscalers() -> list[dict]:
    """``{"name", "path", "size"}`` for every known upscaler whose file is in the cache."""
    paths = {name: cache_root() / "upscale" / f"{name}.pth" for name in UPSCALERS}
    return [{"name": n, "path": str(p), "size": p.stat().st_size} for n, p in paths.items() if p.is_file()]


# --------------------------------------------------------------------------------------------- Hugging Face Hub
def _from_hub(repo: str, folder: Path, *, first_error: UserError) -> Path:
    """Copy the missing files of ``folder`` from the model's Hugging Face Hub copy."""
    missing = [f for f in FILES if not (folder / f).is_file()]
    cached = all(isinstance(try_to_load_from_cache(repo, f), str) for f in missing)
    problem = None if cached else hub_problem()
    if problem:
        raise SourceError(f"{first_error}; its Hub copy {repo} cannot be reached either ({problem})")
    try:
        for f in missing:
            part = Path(f"{folder / f}.part")
            shutil.copyfile(hf_hub_download(repo, f), part)
            publish(part, folder / f, sha256_of(part))
    except Exception as err:  # network, offline mode, missing repo: report both sources
        raise SourceError(f"{first_error}; the Hub copy {repo} failed too ({err.__class__.__name__}: {err})") from None
    return folder
