"""``Imagine``: the front end that runs a dream, saves it, tracks the best picture and resumes.

>>> from textsleep import Imagine
>>> Imagine(text="upside down tree", iterations=1000)()          # doctest: +SKIP
>>> for step in Imagine(text="a red cube").steps(): ...           # doctest: +SKIP

A whole run reads as numbered phases: 1. check the inputs (when made),
2. load the models, 3. encode the prompts, 4. choose the start, 5. the loop,
6. finish.  Whatever watches a run — the command line's progress bar, a
notebook's live picture, the web page — is a per-step hook (``on_step``).
"""

from __future__ import annotations

import dataclasses
import platform
import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .display import notebook_hook
from .dream import Dream, Judge, Step, encode_prompts
from .errors import UserError
from .media import to_pil
from .models import ModelCache, resolve_device, resolve_dtype
from .prompts import parse_story, story_parts
from .runs import RUN_FILES, RunFolder
from .settings import DreamSettings
from .starts import choose_start
from .upscale import check_upscale, upscale_run
from .version import __version__

__all__ = ["Imagine", "DreamFailed"]

# big-sleep's keyword names, where they mean the same thing as ours
_ALIASES = {"image_size": "size", "num_cutouts": "cutouts", "img": "images", "text_min": "negatives"}
PATIENCE_MARGIN = 1e-3  # a step's CLIP score counts as better than the best so far only by more than this


class DreamFailed(UserError):
    """The dream could not go on (its numbers became NaN or infinite); the last saved picture and
    checkpoint are kept.
    """


Hook = Callable[["Imagine", Step], Any]


class Imagine:
    """Dream up a picture for a prompt.

    Keyword options are the fields of :class:`DreamSettings` (big-sleep's
    ``image_size``, ``num_cutouts``, ``img`` and ``text_min`` work too).
    ``resume`` continues a run folder exactly where its checkpoint left off;
    ``run_dir`` dreams into that folder instead of a new one under ``out``;
    ``models`` shares loaded models between several dreams; ``on_step`` is a
    hook ``f(imagine, step)`` (or a list of them) called after every step — a
    hook's ``close(imagine, status)``, if it has one, is called when the run ends;
    ``display_every`` shows the picture in a Jupyter/Colab notebook every N steps
    (default 50 there, never elsewhere; 0 turns it off).
    """

    def __init__(
        self,
        text: str = "",
        *,
        settings: DreamSettings | None = None,
        resume: str | Path | None = None,
        run_dir: str | Path | None = None,
        models: ModelCache | None = None,
        on_step: Hook | list[Hook] | None = None,
        display_every: int | None = None,
        quiet: bool = False,
        **options: Any,
    ) -> None:
        # 1. check the inputs: everything a user can get wrong fails here, before any model loads
        options = {_ALIASES.get(k, k): v for k, v in options.items()}
        if text:
            options["text"] = text
        self.folder: RunFolder | None = None
        self._checkpoint: dict | None = None
        record: dict = {}
        if resume is not None:
            self.folder = RunFolder.open(resume)
            record = self.folder.read_record()
            changes = {**(settings.to_dict() if settings else {}), **options}
            settings = DreamSettings.from_dict(record["settings"]).resumed_with(changes)
            self._checkpoint = self.folder.load_checkpoint()
        else:
            settings = DreamSettings.from_dict({**(settings.to_dict() if settings else {}), **options})
            if run_dir is not None:
                self.folder = RunFolder.at(run_dir)
        if settings.seed is None:
            settings = settings.replace(seed=secrets.randbelow(2**31))
        self.settings = settings
        if settings.upscale:  # (fails now, not after a long dream, when the upscaler cannot be had)
            check_upscale(settings.upscale)
        self.story = parse_story(settings.text, settings.images, settings.negatives)
        self.story_texts = story_parts(settings.text)
        self.prompts = self.story[0]
        self.quiet = quiet
        self.models = models or ModelCache()
        self.hooks: list[Hook] = [on_step] if callable(on_step) else list(on_step or [])
        display = None if quiet else _notebook_hook(display_every)
        if display is not None:
            self.hooks.append(display)
        self.dream: Dream | None = None
        self._targets: list[list[tuple]] = []  # per story part, per judge: (embeddings, weights)
        self._aimed_at: int | None = None
        self._stop_requested = False
        n = settings.num_images
        self.best_scores: list[float | None] = record.get("best_scores") or [None] * n
        self.best_steps: list[int | None] = record.get("best_steps") or [None] * n
        self.final_scores: list[float | None] = record.get("final_scores") or [None] * n
        self.start_record: list[dict] = record.get("starts") or []
        self.stopped_early: int | None = None
        self.error: str | None = None
        self._patience = dict((self._checkpoint or {}).get("patience") or {"best": None, "since": 0})
        self._seconds = float(record.get("seconds", 0.0))
        self._saved_step = int((self._checkpoint or {}).get("dream", {}).get("step", 0))

    @property
    def run_dir(self) -> Path | None:
        """The run folder (None until the run has one)."""
        return self.folder.path if self.folder else None

    # ---------------------------------------------------------------------------------------------- phases 2-4
    def prepare(self) -> Dream:
        """Load the models, encode the prompts and choose the start (once, on first use)."""
        if self.dream is not None:
            return self.dream
        s = self.settings
        # 2. models
        device = resolve_device(s.device)
        dtype = resolve_dtype(s.precision, device)
        clips = [(spec, self.models.clip(spec.name, spec.pretrained, device, dtype)) for spec in s.clips()]
        biggan = self.models.biggan(s.biggan_name, device, dtype, progress=not self.quiet)
        # 3. prompts: every part of a story, for every CLIP model
        for _, clip in clips:
            for p in (p for part in self.story for p in part):
                if p.kind == "text" and clip.too_long(p.value):
                    warnings.warn(
                        f"prompt {p.value[:40]!r}… is longer than CLIP's {clip.context_length} tokens and was cut off",
                        stacklevel=2,
                    )
        self._targets = [[encode_prompts(clip, part) for _, clip in clips] for part in self.story]
        judges = [Judge(clip, *self._targets[0][i], spec.weight) for i, (spec, clip) in enumerate(clips)]
        dream = Dream.from_settings(biggan, judges, s)
        self.device, self.dtype = device, dtype
        # 4. the start: where the checkpoint left off, or as the settings ask
        if self._checkpoint is not None:
            dream.load_state_dict(self._checkpoint["dream"])
        else:
            self.start_record = choose_start(dream, s)
        self.dream = dream
        return dream

    # ---------------------------------------------------------------------------------------------- phase 5
    def part(self, step: int | None = None) -> int:
        """The story part (0-based) that is the target for the step after ``step`` steps (now, by default)."""
        done = self.dream.step_count if step is None and self.dream else (step or 0)
        every = self.settings.change_every
        return min(done // every, len(self.story) - 1) if every else 0

    def steps(self) -> Iterator[Step]:
        """The optimisation loop as a generator: one :class:`Step` per iteration; no printing, no files.

        It ends after ``iterations`` steps, or earlier when ``patience`` steps
        brought no better score (``stopped_early`` then says at which step).
        """
        dream = self.prepare()
        s = self.settings
        while dream.step_count < s.iterations:
            part = self.part()
            if part != self._aimed_at:
                if self._aimed_at is not None:
                    self._patience = {"best": None, "since": dream.step_count}  # patience restarts with each part
                dream.aim(self._targets[part])
                self._aimed_at = part
            try:
                step = dream.step()
            except FloatingPointError as err:
                raise DreamFailed(self._why_not_finite(str(err), dream.step_count + 1)) from None
            yield step
            if s.patience and self._impatient(step):
                self.stopped_early = step.index
                return

    def _impatient(self, step: Step) -> bool:
        """Note this step's score; True when ``patience`` steps have gone by without a better one."""
        p = self._patience
        if p["best"] is None or step.score > p["best"] + PATIENCE_MARGIN:
            p["best"], p["since"] = step.score, step.index
        return step.index - p["since"] >= self.settings.patience

    def _why_not_finite(self, what: str, step: int) -> str:
        s = self.settings
        if step == 1 and self._checkpoint is None:
            return (
                f"{what}: the generator {s.biggan_name!r} makes non-finite pictures from the start; its file may be "
                "broken "
                "or not a trained BigGAN (try --precision fp32, or another --biggan)"
            )
        kept = f"; the last saved picture and checkpoint are kept in {self.run_dir}" if self.run_dir else ""
        return f"{what}: the dream became unstable; try --precision fp32 or a lower --lr (now {s.lr}){kept}"

    def stop(self) -> None:
        """Ask a running ``imagine()`` to stop after the current step; it saves (status ``interrupted``) and returns."""
        self._stop_requested = True

    def images(self, ema: bool = True) -> list:
        """The current pictures as PIL images (one per seed)."""

        return [to_pil(im) for im in self.prepare().render(ema)]

    def image(self, ema: bool = True):
        """The current (first) picture as a PIL image."""
        return self.images(ema)[0]

    @property
    def final_score(self) -> float | None:
        return self.final_scores[0]

    def image_dirs(self) -> list[Path]:
        """Where each picture's files go: the run folder itself, or one sub-folder per seed."""
        return self.folder.picture_dirs(self.settings.seeds)

    # ---------------------------------------------------------------------------------------------- the whole run
    def __call__(self) -> Path:
        """Run the dream to the end, saving as it goes; returns the run folder.

        On Ctrl-C the checkpoint and the current picture are saved before the
        ``KeyboardInterrupt`` goes on up; after :meth:`stop` they are saved and
        the run folder is returned.  A dream whose numbers stop being finite
        raises :class:`DreamFailed`, keeping what was saved before.
        """
        s = self.settings
        with ExitStack() as held:
            held.callback(
                setattr, self, "_stop_requested", False
            )  # (a stop asked for before the loop begins still counts)
            if self.folder is not None:
                held.enter_context(self.folder.lock())  # before loading models: a second writer is refused at once
            dream = self.prepare()
            if self.folder is None:
                self.folder = RunFolder.create(s.out, self.story_texts[0] or Path(s.images[0]).stem)
                held.enter_context(self.folder.lock())
            for folder in self.image_dirs():
                folder.mkdir(exist_ok=True)
            status, last_saved = "failed", None
            try:
                t0 = time.perf_counter()
                for step in self.steps():
                    self._seconds += time.perf_counter() - t0
                    if step.index % s.save_every == 0:
                        self.save()
                        last_saved = step.index
                    for hook in self.hooks:
                        hook(self, step)
                    if self._stop_requested:
                        break
                    t0 = time.perf_counter()
                status = "interrupted" if self._stop_requested and dream.step_count < s.iterations else "finished"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            except BaseException as err:
                self.error = " ".join(str(err).split()) or err.__class__.__name__
                raise
            finally:
                self._end(status, saved=dream.step_count == last_saved)
            # 6. finish
            if status == "finished":
                self._finish()
        return self.run_dir

    def _end(self, status: str, *, saved: bool) -> None:
        """Save how the loop ended (a failed run keeps its last good save) and tell the hooks."""
        try:
            if status == "failed":
                self._write_records(status)
            elif not saved:
                self.save(status=status)
            else:
                self._write_records(status)
        except UserError:
            if status != "failed":
                raise  # (a failed run is already on its way up with its own error)
        finally:
            for hook in self.hooks:
                close = getattr(hook, "close", None)
                if close is not None:
                    close(self, status)

    def _finish(self) -> None:
        """Video, contact sheet, --keep best and upscaling, once the loop is done."""
        s = self.settings
        if s.video:
            for folder in self.image_dirs():
                self.folder.write_video(folder)
        if s.num_images > 1:
            dirs = self.image_dirs()
            captions = [f"seed {seed}  score {score:.3f}" for seed, score in zip(s.seeds, self.final_scores)]
            self.folder.write_contact_sheet(dirs, captions, {"prompt": s.text, "seeds": s.seeds})
            if s.keep == "best":
                self.folder.keep_only(dirs, max(range(len(dirs)), key=lambda b: self.final_scores[b]))
        if s.upscale:
            upscale_run(self.run_dir, s.upscale, device=str(self.device))

    def save(self, status: str = "running") -> Path:
        """Write the current pictures, the best ones so far, the latents, the checkpoint and the records."""

        s, dream = self.settings, self.prepare()
        images = dream.render(ema=True)
        scores = dream.score(images)
        averaged = dream.ema.averaged(dream.latents)
        keep_progress = s.save_progress or s.video
        for b, folder in enumerate(self.image_dirs()):
            image, score = to_pil(images[b]), scores[b]
            meta = self._png_text(b, dream.step_count, score)
            self.folder.save_picture(image, meta, sub=folder, progress_step=dream.step_count if keep_progress else None)
            if self.best_scores[b] is None or score > self.best_scores[b]:
                self.best_scores[b], self.best_steps[b] = score, dream.step_count
                self.folder.save_picture(image, meta, sub=folder, kind="best")
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
            self.folder.save_latents(latents, folder)
        self.folder.save_checkpoint({"dream": dream.state_dict(), "settings": s.to_dict(), "patience": self._patience})
        self._saved_step = dream.step_count
        self._write_records(status)
        return self.folder.file("image")

    def _story_at(self, step: int) -> dict[str, Any] | None:
        """Which part of a story was the target for the step that made a picture saved after ``step`` steps."""
        if len(self.story) == 1:
            return None
        part = self.part(max(step - 1, 0))
        return {
            "part": part + 1,
            "of": len(self.story_texts),
            "target": self.story_texts[part],
            "change_every": self.settings.change_every,
        }

    def _png_text(self, b: int, step: int, score: float) -> dict[str, Any]:
        s = self.settings
        settings = s.replace(seed=s.seeds[b], num_images=1).to_dict() if s.num_images > 1 else s.to_dict()
        meta = {
            "prompt": s.text,
            "seed": str(s.seeds[b]),
            "step": str(step),
            "clip_score": f"{score:.5f}",
            "settings": settings,
            "software": f"textsleep {__version__}",
        }
        story = self._story_at(step)
        if story:
            meta["story"] = story
        return meta

    def _write_records(self, status: str) -> None:
        s, dream = self.settings, self.dream
        steps = (dream.step_count if dream else 0) if status != "failed" else self._saved_step
        several = s.num_images > 1

        def best_of(values: list[float | None]) -> float | None:
            return values[0] if not several else max((x for x in values if x is not None), default=None)

        record = {
            "textsleep": __version__,
            "status": status,
            "error": self.error if status == "failed" else None,
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
            "stopped_early": {"step": self.stopped_early, "patience": s.patience, "margin": PATIENCE_MARGIN}
            if self.stopped_early
            else None,
            "story": self._story_record(steps),
            "final_score": best_of(self.final_scores),
            "best_score": best_of(self.best_scores),
            "best_step": self.best_steps[0] if not several else None,
            "final_scores": self.final_scores,
            "best_scores": self.best_scores,
            "best_steps": self.best_steps,
            "starts": self.start_record,
            "seconds": round(self._seconds, 3),
            "seconds_per_step": round(self._seconds / steps, 4) if steps else None,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": dict(RUN_FILES),
        }
        if several:
            record["images"] = [
                {
                    "seed": seed,
                    "folder": folder.name,
                    "final_score": self.final_scores[b],
                    "best_score": self.best_scores[b],
                }
                for b, (seed, folder) in enumerate(zip(s.seeds, self.image_dirs()))
            ]
            for b, folder in enumerate(self.image_dirs()):
                if folder.exists():
                    one = {
                        **record,
                        "seed": s.seeds[b],
                        "seeds": [s.seeds[b]],
                        "final_score": self.final_scores[b],
                        "best_score": self.best_scores[b],
                        "best_step": self.best_steps[b],
                    }
                    one["batch"] = {"folder": "..", "index": b}
                    one.pop("images", None)
                    self.folder.write_record(one, folder)
        self.folder.write_record(record)

    def _story_record(self, steps: int) -> dict[str, Any] | None:
        if len(self.story) == 1:
            return None
        every = self.settings.change_every
        schedule = [
            {"part": i + 1, "target": part, "from_step": i * every + 1} for i, part in enumerate(self.story_texts)
        ]
        return {"parts": schedule, "change_every": every, "at_saved_step": self._story_at(steps)}


def _notebook_hook(every: int | None):
    """The live picture in a Jupyter/Colab notebook (None elsewhere, or when turned off)."""
    if every == 0:
        return None

    return notebook_hook(every)


def _versions() -> dict[str, str]:

    found = {"python": platform.python_version()}
    for name in ("torch", "open-clip-torch", "pytorch-pretrained-biggan", "kornia"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
