"""``Imagine``: the front end that runs a dream, saves it, tracks the best picture and resumes.

>>> from textsleep import Imagine
>>> Imagine(text="upside down tree", iterations=1000)()          # doctest: +SKIP
>>> for step in Imagine(text="a red cube").steps(): ...           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import platform
import secrets
import shutil
import time
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import outputs
from .dream import Dream, Judge, Step, encode_prompts
from .errors import UserError
from .models import ModelCache, resolve_device, resolve_dtype
from .prompts import parse_prompts
from .render import num_latents, render
from .settings import DreamSettings
from .starts import LATENTS_FILE, best_of_k, class_logits, load_latents, rank_classes

__all__ = ["Imagine"]

# big-sleep's keyword names, where they mean the same thing as ours
_ALIASES = {"image_size": "size", "num_cutouts": "cutouts", "img": "images", "text_min": "negatives"}
# what may differ when a run is resumed (everything else must stay as it was for the picture to continue)
_RESUMABLE = {"iterations", "save_every", "save_progress", "video", "device", "out", "keep", "cutout_batch"}


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
        if text:
            options["text"] = text
        self.run_dir: Path | None = None
        self._checkpoint: dict | None = None
        self._record: dict = {}
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
        n = settings.num_images
        self.best_scores: list[float | None] = self._record.get("best_scores") or [None] * n
        self.best_steps: list[int | None] = self._record.get("best_steps") or [None] * n
        self.final_scores: list[float | None] = self._record.get("final_scores") or [None] * n
        self.start_record: list[dict] = self._record.get("starts") or []
        self._seconds = float(self._record.get("seconds", 0.0))

    # ---------------------------------------------------------------------------- phases
    def _load_resume(self, folder: Path, settings: DreamSettings | None, options: dict) -> DreamSettings:
        record_file = folder / outputs.RUN_FILES["record"]
        if not record_file.is_file():
            raise UserError(f"--resume {str(folder)!r}: not a run folder (no {record_file.name})")
        record = outputs.read_json(record_file)
        if "batch" in record:  # an image sub-folder of a several-picture run: resume the whole run
            return self._load_resume(folder.parent, settings, options)
        saved = dict(record["settings"])
        changes = dict(settings.to_dict()) if settings else {}
        changes.update(options)
        normal = {k: list(v) if isinstance(v, tuple) else ([v] if k in ("clip_model", "clip_pretrained", "images", "negatives") and isinstance(v, str) else v) for k, v in changes.items()}
        bad = sorted(k for k, v in normal.items() if k not in _RESUMABLE and k in saved and saved[k] != v)
        if bad:
            raise UserError(f"--resume: {', '.join(bad)} cannot change when resuming (only {', '.join(sorted(_RESUMABLE))} can)")
        saved.update({k: v for k, v in changes.items() if k in _RESUMABLE})
        self.run_dir = folder
        self._checkpoint = outputs.load_checkpoint(folder / outputs.RUN_FILES["checkpoint"])
        self._record = record
        return DreamSettings.from_dict(saved)

    def prepare(self) -> Dream:
        """Check inputs, load the models, encode the prompts and set up the latents (once, on first use)."""
        if self.dream is not None:
            return self.dream
        s = self.settings
        # 1. models
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.precision, device)
        judges = []
        for spec in s.clips():
            clip = self.models.clip(spec.name, spec.pretrained, device, dtype)
            for p in self.prompts:
                if p.kind == "text" and clip.too_long(p.value):
                    warnings.warn(f"prompt {p.value[:40]!r}… is longer than CLIP's {clip.context_length} tokens and was cut off", stacklevel=2)
            # 2. prompts
            embeds, weights = encode_prompts(clip, self.prompts)
            judges.append(Judge(clip, embeds, weights, spec.weight))
        biggan = self.models.biggan(s.biggan_name, device, dtype, progress=not self.quiet)
        # 3. latents
        dream = Dream(
            biggan,
            judges,
            seeds=s.seeds,
            lr=s.lr,
            cutouts=s.cutouts,
            cutout_batch=s.cutout_batch,
            augment=s.augment,
            truncation=s.truncation,
            max_classes=s.max_classes,
            class_temperature=s.class_temperature,
            ema_decay=s.ema_decay,
        )
        self.device, self.dtype = device, dtype
        if self._checkpoint is not None:
            dream.load_state_dict(self._checkpoint["dream"])
        else:
            self._choose_start(dream)
        self.dream = dream
        return dream

    def _choose_start(self, dream: Dream) -> None:
        s = self.settings
        n_lat = num_latents(dream.biggan)
        if s.init:
            saved = load_latents(s.init)
            if saved["z"].shape[-2] != n_lat:
                raise UserError(
                    f"--init {s.init!r}: made with a BigGAN of {saved['z'].shape[-2] - 1} blocks ({saved.get('biggan')}), "
                    f"this one has {n_lat - 1}; use the same --size"
                )
            dream.start_from(saved["z"], saved["logits"])
            self.start_record = [{"init": str(s.init)}]
            return
        if s.init_candidates == 1 and s.init_class is None:
            return
        from .imagenet import class_names, resolve_class

        if s.init_class is not None:
            classes = [resolve_class(s.init_class)]
        elif s.init_candidates > 1:
            classes = rank_classes(dream.judges[0], class_names(), top=s.init_candidates)
        if s.init_candidates == 1:
            start_z = dream.latents.z.detach().clone()
            dream.start_from(start_z, class_logits(classes[0], n_lat)[None])
            self.start_record = [{"init_class": classes[0]}]
            return
        from .dream import score_images

        starts = []
        for seed in s.seeds:
            start = best_of_k(
                lambda z, logits: render(dream.biggan, z.to(dream.device), dream.latents.classes_from(logits.to(dream.device)), s.truncation),
                lambda images: score_images(dream.judges, images),
                k=s.init_candidates,
                num_latents=n_lat,
                seed=seed,
                truncation=s.truncation,
                classes=classes,
            )
            starts.append(start)
            self.start_record.append({"seed": seed, **start.record})
        dream.start_from(torch.stack([st.z for st in starts]), torch.stack([st.logits for st in starts]))

    def steps(self) -> Iterator[Step]:
        """The optimisation loop as a generator: one :class:`Step` per iteration; no printing, no files."""
        dream = self.prepare()
        yield from dream.steps(self.settings.iterations)

    def images(self, ema: bool = True) -> list:
        """The current pictures as PIL images (one per seed)."""
        from .media import to_pil

        return [to_pil(im) for im in self.prepare().render(ema)]

    def image(self, ema: bool = True):
        """The current (first) picture as a PIL image."""
        return self.images(ema)[0]

    # ---------------------------------------------------------------------------- the whole run
    @property
    def final_score(self) -> float | None:
        return self.final_scores[0]

    def image_dirs(self) -> list[Path]:
        """Where each picture's files go: the run folder itself, or one sub-folder per seed."""
        s = self.settings
        if s.num_images == 1:
            return [self.run_dir]
        return [self.run_dir / f"{i + 1}-seed{seed}" for i, seed in enumerate(s.seeds)]

    def __call__(self) -> Path:
        """Run the dream to the end, saving as it goes; returns the run folder.

        On Ctrl-C the checkpoint and the current picture are saved before the
        ``KeyboardInterrupt`` goes on up.
        """
        s = self.settings
        dream = self.prepare()
        if self.run_dir is None:
            self.run_dir = outputs.new_run_dir(s.out, s.text or Path(s.images[0]).stem)
        for folder in self.image_dirs():
            folder.mkdir(exist_ok=True)
        bar = self._bar(dream.step_count)
        status = "finished"
        last_saved = None
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
            if status != "failed" and dream.step_count != last_saved:
                self.save(status=status)
            else:
                self._write_records(status)
        if s.video:
            for folder in self.image_dirs():
                self._write_video(folder)
        if s.num_images > 1:
            self._finish_several()
        return self.run_dir

    def _bar(self, start: int):
        if self.quiet:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.settings.iterations, initial=start, desc="dreaming", unit="step", dynamic_ncols=True, leave=True)

    def save(self, status: str = "running") -> Path:
        """Write the current pictures, the best ones so far, the latents, the checkpoint and the records."""
        from .media import to_pil

        s, dream = self.settings, self.prepare()
        images = dream.render(ema=True)
        scores = dream.score(images)
        averaged = dream.ema.averaged(dream.latents)
        for b, folder in enumerate(self.image_dirs()):
            image, score = to_pil(images[b]), scores[b]
            meta = self._png_text(b, dream.step_count, score)
            outputs.save_png(image, folder / outputs.RUN_FILES["image"], meta)
            if s.save_progress or s.video:
                (folder / outputs.RUN_FILES["progress"]).mkdir(exist_ok=True)
                outputs.save_png(image, folder / outputs.RUN_FILES["progress"] / f"{dream.step_count:06d}.png", meta)
            if self.best_scores[b] is None or score > self.best_scores[b]:
                self.best_scores[b], self.best_steps[b] = score, dream.step_count
                outputs.save_png(image, folder / outputs.RUN_FILES["best"], meta)
            self.final_scores[b] = score
            latents = {
                "z": averaged["z"][b].detach().cpu(),
                "logits": averaged["logits"][b].detach().cpu(),
                "truncation": s.truncation,
                "max_classes": s.max_classes,
                "class_temperature": s.class_temperature,
                "biggan": s.biggan_name,
                "seed": s.seeds[b],
                "step": dream.step_count,
            }
            outputs.save_checkpoint(folder / LATENTS_FILE, latents)
        outputs.save_checkpoint(self.run_dir / outputs.RUN_FILES["checkpoint"], {"dream": dream.state_dict(), "settings": s.to_dict()})
        self._write_records(status)
        return self.run_dir / outputs.RUN_FILES["image"]

    def _png_text(self, b: int, step: int, score: float) -> dict[str, Any]:
        s = self.settings
        settings = s.replace(seed=s.seeds[b], num_images=1).to_dict() if s.num_images > 1 else s.to_dict()
        return {"prompt": s.text, "seed": str(s.seeds[b]), "step": str(step), "clip_score": f"{score:.5f}", "settings": settings, "software": f"textsleep {_version()}"}

    def _write_records(self, status: str) -> None:
        s, dream = self.settings, self.dream
        steps = dream.step_count if dream else 0
        record = {
            "textsleep": _version(),
            "status": status,
            "prompt": s.text,
            "prompts": [dataclasses.asdict(p) for p in self.prompts],
            "seed": s.seed,
            "seeds": s.seeds,
            "settings": s.to_dict(),
            "models": {"biggan": s.biggan_name, "clip": [dataclasses.asdict(c) for c in s.clips()]},
            "device": str(getattr(self, "device", "")),
            "dtype": str(getattr(self, "dtype", "")).replace("torch.", ""),
            "versions": _versions(),
            "steps_done": steps,
            "final_score": self.final_scores[0] if s.num_images == 1 else max((x for x in self.final_scores if x is not None), default=None),
            "best_score": self.best_scores[0] if s.num_images == 1 else max((x for x in self.best_scores if x is not None), default=None),
            "best_step": self.best_steps[0] if s.num_images == 1 else None,
            "final_scores": self.final_scores,
            "best_scores": self.best_scores,
            "best_steps": self.best_steps,
            "starts": self.start_record,
            "seconds": round(self._seconds, 3),
            "seconds_per_step": round(self._seconds / steps, 4) if steps else None,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": dict(outputs.RUN_FILES),
        }
        if s.num_images > 1:
            record["images"] = [
                {"seed": seed, "folder": folder.name, "final_score": self.final_scores[b], "best_score": self.best_scores[b]}
                for b, (seed, folder) in enumerate(zip(s.seeds, self.image_dirs()))
            ]
            for b, folder in enumerate(self.image_dirs()):
                if folder.exists():
                    one = {**record, "seed": s.seeds[b], "seeds": [s.seeds[b]], "final_score": self.final_scores[b], "best_score": self.best_scores[b], "best_step": self.best_steps[b]}
                    one["batch"] = {"folder": "..", "index": b}
                    one.pop("images", None)
                    outputs.write_json(folder / outputs.RUN_FILES["record"], one)
        outputs.write_json(self.run_dir / outputs.RUN_FILES["record"], record)

    def _finish_several(self) -> None:
        """Contact sheet of all pictures; with keep=best, only the best picture's folder stays."""
        from PIL import Image

        from .media import contact_sheet

        dirs = self.image_dirs()
        sheets, captions = [], []
        for b, folder in enumerate(dirs):
            with Image.open(folder / outputs.RUN_FILES["image"]) as im:
                sheets.append(im.convert("RGB"))
            captions.append(f"seed {self.settings.seeds[b]}  score {self.final_scores[b]:.3f}")
        sheet = contact_sheet(sheets, captions)
        outputs.save_png(sheet, self.run_dir / "contact_sheet.png", {"prompt": self.settings.text, "seeds": self.settings.seeds})
        if self.settings.keep == "best":
            best = max(range(len(dirs)), key=lambda b: self.final_scores[b])
            for b, folder in enumerate(dirs):
                if b != best:
                    shutil.rmtree(folder, ignore_errors=True)

    def _write_video(self, folder: Path) -> Path:
        import numpy as np
        from PIL import Image

        from .media import VideoWriter

        frames = sorted((folder / outputs.RUN_FILES["progress"]).glob("*.png"))
        path = folder / outputs.RUN_FILES["video"]
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
