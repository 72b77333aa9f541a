"""Run folders and the files in them, all written atomically.

A run folder holds:

- ``image.png``      the latest picture (the final one once the run ends)
- ``best.png``       the saved picture with the highest CLIP score
- ``progress/``      every saved picture, when progress is kept
- ``run.json``       the record: settings, seed, models, versions, scores, timings
- ``checkpoint.pt``  everything needed to resume exactly
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

from .errors import UserError

__all__ = ["slugify", "new_run_dir", "save_png", "read_png_text", "write_text", "write_json", "read_json", "save_checkpoint", "load_checkpoint", "temp_beside", "RUN_FILES"]

RUN_FILES = {"image": "image.png", "best": "best.png", "record": "run.json", "checkpoint": "checkpoint.pt", "progress": "progress", "video": "progress.mp4"}
_MAX_SLUG = 60


def slugify(text: str, fallback: str = "dream") -> str:
    """A safe folder name from a prompt: ASCII letters, digits and ``_``, at most 60 characters."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:_MAX_SLUG].rstrip("_")
    return slug or fallback


def new_run_dir(parent: str | os.PathLike, text: str) -> Path:
    """Create and return ``parent/<slug>``, adding ``-2``, ``-3`` … rather than reusing a folder."""
    parent = Path(parent).expanduser()
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {str(parent)!r}: cannot create the folder ({err.strerror or err})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {str(parent)!r}: the folder is not writable; choose another with --out DIR")
    slug = slugify(text)
    for n in range(1, 100_000):
        candidate = parent / (slug if n == 1 else f"{slug}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as err:
            raise UserError(f"--out {str(parent)!r}: cannot create a run folder there ({err.strerror or err})") from None
    raise UserError(f"--out {str(parent)!r}: too many runs named {slug!r} already")


def temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> str:
    """A new, empty temporary file in ``path``'s folder (readable like any file), to rename over ``path`` later."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
    return tmp


def _atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over the target."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_png(image, path: str | os.PathLike, text: dict[str, Any] | None = None) -> Path:
    """Save a PIL image as PNG with text metadata (values that are not strings are stored as JSON)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value if isinstance(value, str) else json.dumps(value))
    _atomic(Path(path), lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
    return Path(path)


def read_png_text(path: str | os.PathLike) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as im:
        return dict(im.text)


def write_text(path: str | os.PathLike, text: str) -> Path:
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, default=str)
            f.write("\n")

    _atomic(Path(path), write)
    return Path(path)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    _atomic(Path(path), lambda tmp: torch.save(state, tmp))
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{str(path)!r}: no checkpoint there (it is written at every save)") from None
    except Exception as err:
        raise UserError(f"{str(path)!r}: the checkpoint cannot be read ({err.__class__.__name__})") from None
