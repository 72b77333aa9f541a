"""The run folder: the one place that knows what a dream leaves on disk.

A run folder holds:

- ``image.png``          the latest picture (the final one once the run ends)
- ``best.png``           the saved picture with the highest CLIP score
- ``progress/``          every saved picture, when progress is kept; ``progress.mp4`` made from them
- ``latents.pt``         the averaged latents, to start another dream from (``--init``) or explore
- ``checkpoint.pt``      everything needed to resume exactly
- ``run.json``           the record: settings, seed, models, versions, scores, timings, status
- ``contact_sheet.png``  with several pictures, all of them side by side (each in its own sub-folder)

Every file is written whole or not at all (:mod:`textsleep.outputs`).  While a
process dreams into a folder it holds the folder's lock (:meth:`RunFolder.lock`),
so a second process cannot write into it; the operating system drops the lock
when the process ends, however it ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from PIL import Image

from . import outputs
from .errors import UserError
from .media import VideoWriter, contact_sheet

__all__ = ["RunFolder", "RUN_FILES", "read_record"]

RUN_FILES = {
    "image": "image.png",
    "best": "best.png",
    "record": "run.json",
    "checkpoint": "checkpoint.pt",
    "latents": "latents.pt",
    "progress": "progress",
    "video": "progress.mp4",
    "sheet": "contact_sheet.png",
}
_LOCK = ".textsleep.lock"


def read_record(folder: str | os.PathLike) -> dict:
    """A run folder's ``run.json``; one line naming the folder when it is not a run folder."""
    file = Path(folder) / RUN_FILES["record"]
    if not file.is_file():
        raise UserError(f"{str(folder)!r}: not a run folder (no {file.name})")
    return outputs.read_json(file)


class RunFolder:
    """A dream's folder on disk (see the module docstring for what is in it)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ---------------------------------------------------------------------------------------------- opening
    @classmethod
    def create(cls, parent: str | os.PathLike, name: str) -> "RunFolder":
        """A new folder ``parent/<slug of name>``, adding ``-2``, ``-3`` … rather than reusing one."""
        parent = Path(parent).expanduser()
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"--out {str(parent)!r}: cannot create the folder ({err.strerror or err})") from None
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"--out {str(parent)!r}: the folder is not writable; choose another with --out DIR")
        slug = outputs.slugify(name)
        for n in range(1, 100_000):
            candidate = parent / (slug if n == 1 else f"{slug}-{n}")
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                continue
            except OSError as err:
                raise UserError(
                    f"--out {str(parent)!r}: cannot create a run folder there ({err.strerror or err})"
                ) from None
        raise UserError(f"--out {str(parent)!r}: too many runs named {slug!r} already")

    @classmethod
    def at(cls, path: str | os.PathLike) -> "RunFolder":
        """This exact folder, made if missing (a batch job's own folder)."""
        folder = cls(Path(path).expanduser())
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{str(folder.path)!r}: cannot create the run folder ({err.strerror or err})") from None
        return folder

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        """An existing run folder (one with a ``run.json``); a picture's sub-folder opens its whole run."""
        folder = cls(Path(path).expanduser())
        if "batch" in folder.read_record():  # an image sub-folder of a several-picture run
            return cls(folder.path.parent)
        return folder

    # ---------------------------------------------------------------------------------------------- one writer
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this process while it dreams; refuse (one line) if another process holds it."""

        lock = FileLock(self.path / _LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise UserError(
                f"{self.path}: another textsleep process is dreaming into this run folder; wait until it ends, or "
                "stop it first"
            ) from None
        try:
            yield
        finally:
            lock.release()
            (self.path / _LOCK).unlink(missing_ok=True)

    # ---------------------------------------------------------------------------------------------- the files
    def picture_dirs(self, seeds: list[int]) -> list[Path]:
        """Where each picture's files go: the folder itself, or one sub-folder per seed."""
        if len(seeds) == 1:
            return [self.path]
        return [self.path / f"{i + 1}-seed{seed}" for i, seed in enumerate(seeds)]

    def file(self, kind: str, sub: Path | None = None) -> Path:
        """The path of one of the files in RUN_FILES (in a picture's sub-folder when ``sub`` is given)."""
        return (sub or self.path) / RUN_FILES[kind]

    def save_picture(
        self,
        image,
        meta: dict[str, Any],
        *,
        sub: Path | None = None,
        kind: str = "image",
        progress_step: int | None = None,
    ) -> Path:
        """Save a PIL picture as ``image.png`` (or ``best.png``) with its metadata; also in progress/ when asked."""
        path = outputs.save_png(image, self.file(kind, sub), meta)
        if progress_step is not None:
            progress = self.file("progress", sub)
            progress.mkdir(exist_ok=True)
            outputs.save_png(image, progress / f"{progress_step:06d}.png", meta)
        return path

    def save_latents(self, latents: dict[str, Any], sub: Path | None = None) -> Path:
        return outputs.save_checkpoint(self.file("latents", sub), latents)

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        return outputs.save_checkpoint(self.file("checkpoint"), state)

    def load_checkpoint(self) -> dict:
        return outputs.load_checkpoint(self.file("checkpoint"))

    def has_checkpoint(self) -> bool:
        return self.file("checkpoint").is_file() and self.file("record").is_file()

    def write_record(self, record: dict[str, Any], sub: Path | None = None) -> Path:
        return outputs.write_json(self.file("record", sub), record)

    def read_record(self, sub: Path | None = None) -> dict:
        return read_record(sub or self.path)

    # ---------------------------------------------------------------------------------------------- at the end
    def write_contact_sheet(self, dirs: list[Path], captions: list[str], meta: dict[str, Any]) -> Path:
        """All pictures' ``image.png`` side by side, captioned."""

        pictures = []
        for folder in dirs:
            with Image.open(self.file("image", folder)) as im:
                pictures.append(im.convert("RGB"))
        return outputs.save_png(contact_sheet(pictures, captions), self.file("sheet"), meta)

    def keep_only(self, dirs: list[Path], best: int) -> None:
        """``--keep best``: remove every picture's sub-folder but the best one's."""
        for b, folder in enumerate(dirs):
            if b != best:
                shutil.rmtree(folder, ignore_errors=True)

    def write_video(self, sub: Path | None = None, fps: float = 8) -> Path:
        """``progress.mp4`` from the pictures kept in ``progress/``."""

        frames = sorted(self.file("progress", sub).glob("*.png"))
        path = self.file("video", sub)
        with VideoWriter(path, fps=fps) as writer:
            for frame in frames:
                with Image.open(frame) as im:
                    writer.add(torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1))
        return path
