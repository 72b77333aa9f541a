"""Files written whole or not at all: PNGs with metadata, JSON, checkpoints.

Every write goes to a temporary file beside the target and is renamed over it,
so a reader, a crash or a full disk at any moment leaves either the old file or
the new one, never half of one; a failed write raises one line naming the file
and the cause.  What a run folder holds is :mod:`textsleep.runs`' business.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .errors import UserError

__all__ = [
    "atomic_write",
    "slugify",
    "save_png",
    "read_png_text",
    "write_text",
    "write_json",
    "read_json",
    "save_checkpoint",
    "load_checkpoint",
    "temp_beside",
    "WriteError",
]

_MAX_SLUG = 60


def slugify(text: str, fallback: str = "dream") -> str:
    """A safe folder name from a prompt: ASCII letters, digits and ``_``, at most 60 characters."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:_MAX_SLUG].rstrip("_")
    return slug or fallback


def temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> str:
    """A new, empty temporary file in ``path``'s folder (readable like any file), to rename over ``path`` later."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
    return tmp


class WriteError(UserError):
    """A file could not be written (full disk, file-size limit, no permission); what was there before is unchanged."""


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over the target."""
    path = Path(path)
    tmp = None
    try:
        tmp = temp_beside(path)
        write(tmp)
        os.replace(tmp, path)
    except Exception as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise WriteError(
            f"{path}: cannot be written ({_cause(err)}); what was saved there before is unchanged"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _cause(err: BaseException) -> str:
    """Why a write failed, in a few words: the operating system's reason where there is one."""
    seen = err
    while seen is not None:  # (torch's writer reports a failed write as a RuntimeError with the OSError behind it)
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    if isinstance(err, RuntimeError):
        return "write failed: the disk may be full or a file-size limit reached"
    return " ".join(str(err).split())[:200] or err.__class__.__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(image, path: str | os.PathLike, text: dict[str, Any] | None = None) -> Path:
    """Save a PIL image as PNG with text metadata (values that are not strings are stored as JSON)."""

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value if isinstance(value, str) else json.dumps(value))
    atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
    return Path(path)


def read_png_text(path: str | os.PathLike) -> dict[str, str]:

    with Image.open(path) as im:
        return dict(im.text)


def write_text(path: str | os.PathLike, text: str) -> Path:
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, default=str)
            f.write("\n")

    atomic_write(Path(path), write)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's data; one line naming the file when it is not JSON (e.g. cut short)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(
            f"{path}: not readable JSON ({err.__class__.__name__} at {getattr(err, 'pos', '?')}); the file is "
            "damaged or cut short"
        ) from None


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # (a Python file, so a failed write keeps the operating system's reason)
            torch.save(state, f)

    atomic_write(Path(path), write)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no checkpoint there (it is written at every save)") from None
    except Exception as err:
        raise UserError(
            f"{path}: the checkpoint cannot be read ({err.__class__.__name__}); the file is damaged or cut short"
        ) from None
