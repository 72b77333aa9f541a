"""The run folder: the one place that knows what a dream (or a photo inversion) leaves on disk, and writes it.

A run folder holds:

- ``image.png``          the latest picture (the final one once the run ends), its settings in PNG text metadata
- ``best.png``           the saved picture with the highest CLIP score
- ``progress/``          every saved picture, when progress is kept; ``progress.mp4`` made from them
- ``latents.pt``         the averaged latents, to start another dream from (``--init``) or explore
- ``checkpoint.pt``      everything needed to resume exactly
- ``run.json``           the record (:class:`RunRecord`): settings, seed, models, versions, scores, timings, status
- ``contact_sheet.png``  with several pictures, all of them side by side (each in its own sub-folder)
- ``target.png``         an inversion's photo, as it was compared

:meth:`RunFolder.save` writes a save's files in one call, each whole or not at
all (:mod:`textsleep.outputs`).  A process dreaming into a folder holds its
lock (:meth:`RunFolder.lock`, on ``.textsleep.lock``, a file that is never deleted); the operating system drops
it however the process ends.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from PIL import Image

from . import outputs, recipes
from .errors import UserError
from .hooks import Status
from .media import VideoWriter, contact_sheet, to_pil, to_tensor
from .prompts import parse_story, story_parts
from .run_checks import check_checkpoint, check_fits, check_latents, check_record
from .settings import DreamSettings
from .version import __version__

__all__ = ["RunFolder", "RunRecord", "RUN_FILES", "read_record", "read_run", "read_latents"]

RUN_FILES = {
    "image": "image.png",
    "best": "best.png",
    "record": "run.json",
    "checkpoint": "checkpoint.pt",
    "latents": "latents.pt",
    "progress": "progress",
    "video": "progress.mp4",
    "sheet": "contact_sheet.png",
    "target": "target.png",
}
_LOCK = ".textsleep.lock"


def read_record(folder: str | os.PathLike) -> dict:
    """A run folder's ``run.json`` (a mapping); one line naming the folder when it is not a run folder."""
    file = Path(folder) / RUN_FILES["record"]
    if not file.is_file():
        raise UserError(f"{str(folder)!r}: not a run folder (no {file.name})")
    data = outputs.read_json(file)
    if not isinstance(data, dict):
        raise UserError(f"{file}: holds a {type(data).__name__}, not a run record; the file is damaged")
    return data


def read_run(folder: str | os.PathLike) -> dict:
    """A run folder's ``run.json``, checked as a resumed run checks it (to list and show a run; a generator recorded
    as a URL is not refused here, as nothing is fetched)."""
    data = read_record(folder)
    check_record(data, Path(folder) / RUN_FILES["record"], resuming=False)
    return data


def read_latents(folder: str | os.PathLike) -> dict:
    """The averaged latents a run (a dream or an inversion) saved in ``latents.pt`` (a run folder, or the file),
    checked: ``z`` (L, 128), ``logits`` (L, 1000) and how to render them (:meth:`RunRecord.latents`).
    """
    folder = Path(folder).expanduser()
    file = folder / RUN_FILES["latents"] if folder.is_dir() else folder
    if not file.is_file():
        raise UserError(
            f"{str(folder)!r}: not a run folder with saved latents (no {RUN_FILES['latents']}); finish or save a "
            "dream there first"
        )
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # (unpickling errors come in many types)
        raise UserError(f"{str(file)!r}: cannot be read ({err.__class__.__name__}); the file is damaged") from None
    return check_latents(data, file)


# ---------------------------------------------------------------------------------------------- the record
@dataclass
class RunRecord:
    """What a run has done so far: its settings, scores, best steps, timings and status (``run.json``'s content).

    Lists hold one entry per picture (per seed).  ``steps_done`` is the step of
    the last save: a failed run's record keeps pointing at its last good save.
    """

    settings: DreamSettings
    kind: str = "dream"  # or "invert"
    status: Status = Status.PENDING
    error: str | None = None
    steps_done: int = 0
    final_scores: list[float | None] = field(default_factory=list)
    best_scores: list[float | None] = field(default_factory=list)
    best_steps: list[int | None] = field(default_factory=list)
    starts: list[dict] = field(default_factory=list)  # how each picture's start was chosen
    seconds: float = 0.0  # time spent in steps, over every attempt
    stopped_early: dict | None = None  # {"step", "patience", "margin"} when patience ended the run
    device: str = ""
    device_name: str = ""  # the card's (or the processor's) name
    dtype: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # a kind's own entries (an inversion's "invert" recipe)
    prompts: list[dict] = field(default_factory=list)  # (the first part's, checked; from the settings when not given)
    upscaled: dict | None = None  # --upscale at the end: {"scale", "upscaler", "files", "error"}

    def __post_init__(self) -> None:
        s = self.settings
        for name in ("final_scores", "best_scores", "best_steps"):
            setattr(self, name, list(getattr(self, name)) or [None] * s.num_images)
        self.prompts = self.prompts or [dataclasses.asdict(p) for p in parse_story(s.text, s.images, s.negatives)[0]]

    @classmethod
    def read(cls, folder: str | os.PathLike, given: dict[str, Any] | None = None) -> "RunRecord":
        """An existing run's record, to go on with it (a resumed run starts a new stretch: no early stop, no error).

        Everything in it is checked (one line naming ``run.json`` otherwise); a generator recorded as a URL is
        refused unless ``given``, the options passed now, names ``biggan`` again.
        """
        file = Path(folder) / RUN_FILES["record"]
        settings, kept = check_record(read_record(folder), file, given)
        return cls(settings, **kept)

    # ------------------------------------------------------------------------------------------ the story
    def part(self, done: int) -> int:
        """The story part (0-based) that the step after ``done`` steps aims at (0 without a story)."""
        every, parts = self.settings.change_every, len(story_parts(self.settings.text))
        return min(done // every, parts - 1) if every else 0

    def _story_at(self, step: int) -> dict[str, Any] | None:
        """Which part of a story made a picture saved after ``step`` steps (None without a story)."""
        texts, every, part = story_parts(self.settings.text), self.settings.change_every, self.part(max(step - 1, 0))
        return {"part": part + 1, "of": len(texts), "target": texts[part], "change_every": every} if texts[1:] else None

    def _story(self) -> dict[str, Any] | None:
        texts, every = story_parts(self.settings.text), self.settings.change_every
        if not texts[1:]:
            return None
        parts = [{"part": i + 1, "target": text, "from_step": i * every + 1} for i, text in enumerate(texts)]
        return {"parts": parts, "change_every": every, "at_saved_step": self._story_at(self.steps_done)}

    # ------------------------------------------------------------------------------------------ what is written
    def better(self, scores: list[float]) -> list[bool]:
        """Which of these CLIP scores (one per picture) beat the best saved so far."""
        return [best is None or score > best for score, best in zip(scores, self.best_scores)]

    def note(self, step: int, scores: list[float]) -> None:
        """A save after ``step`` steps with these CLIP scores (one per picture) is on disk."""
        for b, better in enumerate(self.better(scores)):
            if better:
                self.best_scores[b], self.best_steps[b] = scores[b], step
        self.final_scores, self.steps_done = list(scores), step

    def png_text(self, b: int, step: int, score: float) -> dict[str, Any]:
        """Picture ``b``'s PNG text metadata: prompt, seed, step, CLIP score, the settings that make it again."""
        s, seed = self.settings, self.settings.seeds[b]
        meta = {
            "prompt": s.text,
            "seed": str(seed),
            "step": str(step),
            "clip_score": f"{score:.5f}",
            "settings": s.replace(seed=seed, num_images=1).to_dict() if s.num_images > 1 else s.to_dict(),
            "software": f"textsleep {__version__}",
            **self.extra,
        }
        story = self._story_at(step)
        return {**meta, "story": story} if story else meta

    def latents(self, b: int, step: int, averaged: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Picture ``b``'s ``latents.pt``: its averaged ``z`` (L, 128), ``logits`` (L, 1000) and how to render them."""
        s = self.settings
        return {
            "z": averaged["z"][b].detach().cpu(),
            "logits": averaged["logits"][b].detach().cpu(),
            "truncation": s.truncation,
            "max_classes": s.max_classes,
            "class_temperature": s.class_temperature,
            "biggan": s.biggan_name,
            "seed": s.seeds[b],
            "step": step,
        }

    def to_json(self, folders: list[Path]) -> dict[str, Any]:
        """``run.json``; with several pictures it lists them (``folders``: each one's sub-folder)."""
        s, several = self.settings, self.settings.num_images > 1
        final, best = (
            max((x for x in v if x is not None), default=None) for v in (self.final_scores, self.best_scores)
        )
        record = {
            "textsleep": __version__,
            "kind": self.kind,
            "status": str(self.status),
            "error": self.error if self.status == Status.FAILED else None,
            "prompt": s.text,
            "prompts": self.prompts,
            "seed": s.seed,
            "seeds": s.seeds,
            "settings": s.to_dict(),
            "recipe": recipes.record(s),
            "models": {"biggan": s.biggan_name, "clip": [dataclasses.asdict(c) for c in s.clips()]},
            "device": self.device,
            "device_name": self.device_name,
            "dtype": self.dtype,
            "versions": _versions(),
            "steps_done": self.steps_done,
            "stopped_early": self.stopped_early,
            "story": self._story(),
            "final_score": final,
            "best_score": best,
            "best_step": None if several else self.best_steps[0],
            "final_scores": self.final_scores,
            "best_scores": self.best_scores,
            "best_steps": self.best_steps,
            "starts": self.starts,
            "seconds": round(self.seconds, 3),
            "seconds_per_step": round(self.seconds / self.steps_done, 4) if self.steps_done else None,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": dict(RUN_FILES),
            "upscaled": self.upscaled,
            **self.extra,
        }
        if several:
            scores = zip(s.seeds, folders, self.final_scores, self.best_scores)
            record["images"] = [
                {"seed": a, "folder": f.name, "final_score": x, "best_score": y} for a, f, x, y in scores
            ]
        return record


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("torch", "open-clip-torch", "pytorch-pretrained-biggan", "kornia"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


# ---------------------------------------------------------------------------------------------- the folder
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
        if "batch" in read_record(folder.path):  # an image sub-folder of a several-picture run
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
                f"{self.path}: another textsleep process is dreaming into this run folder; wait or stop it"
            ) from None
        try:
            yield
        finally:
            # the file stays: were it deleted, a process that opened it just before would hold the lock on the
            # deleted file while a third one locks a new file of the same name
            lock.release()

    # ---------------------------------------------------------------------------------------------- the files
    def picture_dirs(self, seeds: list[int]) -> list[Path]:
        """Where each picture's files go: the folder itself, or one sub-folder per seed."""
        return [self.path] if len(seeds) == 1 else [self.path / f"{i + 1}-seed{seed}" for i, seed in enumerate(seeds)]

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

    def load_checkpoint(self, settings: DreamSettings | None = None) -> dict:
        """``checkpoint.pt``, checked against the run's settings (pictures, latents, the BigGAN size it needs) when
        they are given, as they must be to resume from it."""
        file = self.file("checkpoint")
        return check_checkpoint(outputs.load_checkpoint(file), file, settings)

    def check_fits(self, checkpoint: dict, latents: int, biggan: str) -> None:
        """The checkpoint fits the loaded BigGAN, which takes ``latents`` inputs."""
        check_fits(checkpoint, latents, self.file("checkpoint"), biggan)

    def has_checkpoint(self) -> bool:
        return self.file("checkpoint").is_file() and self.file("record").is_file()

    def write_record(self, record: dict[str, Any], sub: Path | None = None) -> Path:
        return outputs.write_json(self.file("record", sub), record)

    # ---------------------------------------------------------------------------------------------- a save
    def save(
        self,
        record: RunRecord,
        pictures: torch.Tensor,
        scores: list[float],
        latents: dict[str, torch.Tensor],
        *,
        step: int,
        checkpoint: dict[str, Any] | None = None,
        best: bool = True,
    ) -> None:
        """A save after ``step`` steps: each picture (B, 3, H, W) in [0, 1] with its metadata and CLIP score (B,)
        (``best.png`` too when ``best`` and it beats the best so far), its averaged ``latents`` (``z`` (B, L, 128),
        ``logits`` (B, L, 1000)), the ``checkpoint`` when given, and the records.
        """
        s, better = record.settings, record.better(scores)
        keep_progress = s.save_progress or s.video
        for b, folder in enumerate(self.picture_dirs(s.seeds)):
            folder.mkdir(exist_ok=True)
            image, meta = to_pil(pictures[b]), record.png_text(b, step, scores[b])
            self.save_picture(image, meta, sub=folder, progress_step=step if keep_progress else None)
            if best and better[b]:
                self.save_picture(image, meta, sub=folder, kind="best")
            outputs.save_checkpoint(self.file("latents", folder), record.latents(b, step, latents))
        if checkpoint is not None:
            outputs.save_checkpoint(self.file("checkpoint"), {**checkpoint, "settings": s.to_dict()})
        record.note(step, scores)  # (only now: a save cut short leaves the record at the last whole one)
        self.write_records(record)

    def write_records(self, record: RunRecord) -> None:
        """``run.json``; with several pictures also each picture's own in its sub-folder (the run's, for that seed)."""
        s, folders = record.settings, self.picture_dirs(record.settings.seeds)
        data = record.to_json(folders)
        for b, folder in enumerate(folders if len(folders) > 1 else []):
            if folder.exists():  # (--keep best removed the others)
                one = {k: v for k, v in data.items() if k != "images"}
                one.update(seed=s.seeds[b], seeds=[s.seeds[b]], batch={"folder": "..", "index": b})
                one.update(final_score=record.final_scores[b], best_score=record.best_scores[b])
                self.write_record({**one, "best_step": record.best_steps[b]}, folder)
        self.write_record(data)

    # ---------------------------------------------------------------------------------------------- at the end
    def finish(self, record: RunRecord) -> None:
        """Once the loop is done: ``progress.mp4`` (``video``); with several pictures the contact sheet of their
        ``image.png``, captioned, and ``--keep best`` (the other pictures' sub-folders removed).
        """
        s, folders = record.settings, self.picture_dirs(record.settings.seeds)
        if s.video:
            for folder in folders:
                self.write_video(folder)
        if len(folders) > 1:
            pictures = []
            for folder in folders:
                with Image.open(self.file("image", folder)) as im:
                    pictures.append(im.convert("RGB"))
            captions = [f"seed {seed}  score {score:.3f}" for seed, score in zip(s.seeds, record.final_scores)]
            outputs.save_png(
                contact_sheet(pictures, captions), self.file("sheet"), {"prompt": s.text, "seeds": s.seeds}
            )
            best = max(range(len(folders)), key=lambda b: record.final_scores[b])
            for b, folder in enumerate(folders):
                if s.keep == "best" and b != best:
                    shutil.rmtree(folder, ignore_errors=True)

    def write_video(self, sub: Path | None = None, fps: float = 8) -> Path:
        """``progress.mp4`` from the pictures kept in ``progress/``."""
        frames = sorted(self.file("progress", sub).glob("*.png"))
        path = self.file("video", sub)
        with VideoWriter(path, fps=fps) as writer:
            for frame in frames:
                with Image.open(frame) as im:
                    writer.add(to_tensor(im))
        return path
