"""``Imagine``: the front end that runs a dream, saves it, tracks the best picture and resumes.

>>> from textsleep import Imagine
>>> Imagine(text="upside down tree", iterations=1000)()          # doctest: +SKIP
>>> for step in Imagine(text="a red cube").steps(): ...           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import platform
import secrets
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import outputs
from .dream import Dream, Step, encode_prompts
from .errors import UserError
from .models import ModelCache, resolve_device, resolve_dtype
from .prompts import parse_prompts
from .settings import DreamSettings

__all__ = ["Imagine"]

# big-sleep's keyword names, where they mean the same thing as ours
_ALIASES = {"image_size": "size", "num_cutouts": "cutouts", "img": "images", "text_min": "negatives"}
# what may differ when a run is resumed (everything else must stay as it was for the picture to continue)
_RESUMABLE = {"iterations", "save_every", "save_progress", "video", "device", "out"}


def _version() -> str:
    from . import __version__

    return __version__


class Imagine:
    """Dream up a picture for a prompt.

    Keyword options are the fields of :class:`DreamSettings` (big-sleep's
    ``image_size``, ``num_cutouts``, ``img`` and ``text_min`` work too).
    ``resume`` continues a run folder exactly where its checkpoint left off;
    ``models`` shares loaded models between several dreams.
    """

    def __init__(
        self,
        text: str = "",
        *,
        settings: DreamSettings | None = None,
        resume: str | Path | None = None,
        quiet: bool = False,
        models: ModelCache | None = None,
        **options: Any,
    ) -> None:
        options = {_ALIASES.get(k, k): v for k, v in options.items()}
        for key in ("images", "negatives"):
            if isinstance(options.get(key), str):
                options[key] = (options[key],)
        if text:
            options["text"] = text
        self.run_dir: Path | None = None
        self._checkpoint: dict | None = None
        if resume is not None:
            settings = self._load_resume(Path(resume), settings, options)
        else:
            base = settings.to_dict() if settings else {}
            base.update(options)
            settings = DreamSettings.from_dict(base)
        if settings.seed is None:
            settings = settings.replace(seed=secrets.randbelow(2**31))
        self.settings = settings
        self.prompts = parse_prompts(settings.text, settings.images, settings.negatives)
        self.quiet = quiet
        self.models = models or ModelCache()
        self.dream: Dream | None = None
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.final_score: float | None = None
        self._seconds = 0.0

    # ---------------------------------------------------------------------------- phases
    def _load_resume(self, folder: Path, settings: DreamSettings | None, options: dict) -> DreamSettings:
        record_file = folder / outputs.RUN_FILES["record"]
        if not record_file.is_file():
            raise UserError(f"--resume {str(folder)!r}: not a run folder (no {record_file.name})")
        record = outputs.read_json(record_file)
        saved = dict(record["settings"])
        changes = dict(settings.to_dict()) if settings else {}
        changes.update(options)
        bad = sorted(k for k, v in changes.items() if k not in _RESUMABLE and k in saved and saved[k] != (list(v) if isinstance(v, tuple) else v))
        if bad:
            raise UserError(f"--resume: {', '.join(bad)} cannot change when resuming (only {', '.join(sorted(_RESUMABLE))} can)")
        saved.update({k: v for k, v in changes.items() if k in _RESUMABLE})
        self.run_dir = folder
        self._checkpoint = outputs.load_checkpoint(folder / outputs.RUN_FILES["checkpoint"])
        self._record = record
        return DreamSettings.from_dict(saved)

    def prepare(self) -> Dream:
        """Load the models, encode the prompts and set up the latents (done once, on first use)."""
        if self.dream is not None:
            return self.dream
        s = self.settings
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.precision, device)
        clip = self.models.clip(s.clip_model, s.clip_pretrained, device, dtype)
        for p in self.prompts:
            if p.kind == "text" and clip.too_long(p.value):
                warnings.warn(f"prompt {p.value[:40]!r}… is longer than CLIP's {clip.context_length} tokens and was cut off", stacklevel=2)
        biggan = self.models.biggan(s.biggan_name, device, dtype, progress=not self.quiet)
        embeds, weights = encode_prompts(clip, self.prompts)
        self.dream = Dream(
            biggan,
            clip,
            embeds,
            weights,
            seed=s.seed,
            lr=s.lr,
            cutouts=s.cutouts,
            augment=s.augment,
            truncation=s.truncation,
            max_classes=s.max_classes,
            class_temperature=s.class_temperature,
            ema_decay=s.ema_decay,
        )
        if self._checkpoint is not None:
            self.dream.load_state_dict(self._checkpoint["dream"])
            self.best_score = self._record.get("best_score")
            self.best_step = self._record.get("best_step")
            self._seconds = float(self._record.get("seconds", 0.0))
        self.device, self.dtype = device, dtype
        return self.dream

    def steps(self) -> Iterator[Step]:
        """The optimisation loop as a generator: one :class:`Step` per iteration; no printing, no files."""
        dream = self.prepare()
        yield from dream.steps(self.settings.iterations)

    def image(self, ema: bool = True):
        """The current picture as a PIL image."""
        from .media import to_pil

        return to_pil(self.prepare().render(ema)[0])

    # ---------------------------------------------------------------------------- the whole run
    def __call__(self) -> Path:
        """Run the dream to the end, saving as it goes; returns the run folder.

        On Ctrl-C the checkpoint and the current picture are saved before the
        ``KeyboardInterrupt`` goes on up.
        """
        s = self.settings
        dream = self.prepare()
        if self.run_dir is None:
            self.run_dir = outputs.new_run_dir(s.out, s.text or Path(s.images[0]).stem)
        self._started = time.time()
        bar = self._bar(dream.step_count)
        status = "finished"
        last_saved = dream.step_count
        try:
            t0 = time.perf_counter()
            for step in self.steps():
                self._seconds += time.perf_counter() - t0
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{step.loss:.3f}", score=f"{step.score:.3f}", refresh=False)
                if step.index % s.save_every == 0:
                    self.save()
                    last_saved = step.index
                t0 = time.perf_counter()
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            if bar is not None:
                bar.close()
            if status != "failed" and (dream.step_count != last_saved or not (self.run_dir / outputs.RUN_FILES["image"]).exists()):
                self.save(status=status)
            else:
                self._write_record(status)
        if s.video:
            self._write_video()
        return self.run_dir

    def _bar(self, start: int):
        if self.quiet:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.settings.iterations, initial=start, desc="dreaming", unit="step", dynamic_ncols=True, leave=True)

    def save(self, status: str = "running") -> Path:
        """Write the current picture, the best one so far, the checkpoint and the record."""
        from .media import to_pil

        s, dream = self.settings, self.prepare()
        images = dream.render(ema=True)
        score = dream.score(images)[0]
        image = to_pil(images[0])
        meta = self._png_text(dream.step_count, score)
        folder = self.run_dir
        outputs.save_png(image, folder / outputs.RUN_FILES["image"], meta)
        if s.save_progress or s.video:
            (folder / outputs.RUN_FILES["progress"]).mkdir(exist_ok=True)
            outputs.save_png(image, folder / outputs.RUN_FILES["progress"] / f"{dream.step_count:06d}.png", meta)
        if self.best_score is None or score > self.best_score:
            self.best_score, self.best_step = score, dream.step_count
            outputs.save_png(image, folder / outputs.RUN_FILES["best"], meta)
        self.final_score = score
        outputs.save_checkpoint(folder / outputs.RUN_FILES["checkpoint"], {"dream": dream.state_dict(), "settings": s.to_dict()})
        self._write_record(status)
        return folder / outputs.RUN_FILES["image"]

    def _png_text(self, step: int, score: float) -> dict[str, Any]:
        s = self.settings
        return {"prompt": s.text, "seed": str(s.seed), "step": str(step), "clip_score": f"{score:.5f}", "settings": s.to_dict(), "software": f"textsleep {_version()}"}

    def _write_record(self, status: str) -> None:
        s, dream = self.settings, self.dream
        steps = dream.step_count if dream else 0
        record = {
            "textsleep": _version(),
            "status": status,
            "prompt": s.text,
            "prompts": [dataclasses.asdict(p) for p in self.prompts],
            "seed": s.seed,
            "settings": s.to_dict(),
            "models": {"biggan": s.biggan_name, "clip": s.clip_model, "clip_pretrained": s.clip_pretrained},
            "device": str(getattr(self, "device", "")),
            "dtype": str(getattr(self, "dtype", "")).replace("torch.", ""),
            "versions": _versions(),
            "steps_done": steps,
            "final_score": self.final_score,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "seconds": round(self._seconds, 3),
            "seconds_per_step": round(self._seconds / steps, 4) if steps else None,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": dict(outputs.RUN_FILES),
        }
        outputs.write_json(self.run_dir / outputs.RUN_FILES["record"], record)

    def _write_video(self) -> Path:
        import numpy as np
        from PIL import Image

        from .media import VideoWriter

        frames = sorted((self.run_dir / outputs.RUN_FILES["progress"]).glob("*.png"))
        path = self.run_dir / outputs.RUN_FILES["video"]
        with VideoWriter(path, fps=8) as writer:
            for frame in frames:
                with Image.open(frame) as im:
                    writer.add(torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1))
        return path


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("torch", "open-clip-torch", "pytorch-pretrained-biggan", "kornia"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
