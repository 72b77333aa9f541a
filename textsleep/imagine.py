"""``Imagine``: the front end that runs a dream, saves it, tracks the best picture and resumes.

>>> from textsleep import Imagine
>>> Imagine(text="upside down tree", iterations=1000)()          # doctest: +SKIP
>>> for step in Imagine(text="a red cube").steps(): ...           # doctest: +SKIP

A whole run reads as numbered phases: 1. check the inputs (when made), 2. load
the models, 3. encode the prompts, 4. choose the start, 5. the loop, 6. finish.
Whatever watches a run — the command line's progress bar, a notebook's live
picture, the web page — is a :class:`~textsleep.hooks.Hook`; what a run leaves
on disk is written by :mod:`textsleep.runs`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .devices import device_info, resolve_device, resolve_dtype
from .display import notebook_hook
from .dream import Dream, Step
from .errors import SettingError, UserError, one_line
from .guides import load_guide
from .hooks import Hook, Status, as_hooks
from .media import to_pil
from .models import ModelCache, biggan_folder_size
from .prompts import parse_story, story_parts
from .render import num_latents
from .runs import RUN_FILES, RunFolder, RunRecord
from .settings import SIZES, DreamSettings, canonical_options
from .starts import choose_start, init_ranking
from .upscale import DEFAULT_UPSCALERS, check_upscale, upscale_run
from .weights import BIGGAN_SHORTCUTS

__all__ = ["Imagine", "DreamFailed", "PATIENCE_MARGIN"]

PATIENCE_MARGIN = 1e-3  # a step's CLIP score counts as better than the best so far only by more than this


class DreamFailed(UserError):
    """The dream could not go on (its numbers became NaN or infinite); the last saved picture and checkpoint are
    kept.
    """


class Imagine:
    """Dream up a picture for a prompt.

    Keyword options are :class:`DreamSettings` fields (or big-sleep's ``image_size``, ``num_cutouts``, ``img``,
    ``text_min``); ``biggan=`` and ``clip=`` also take models you loaded (:func:`textsleep.load_biggan`,
    :func:`textsleep.load_clip`).  ``resume`` continues a run folder from its checkpoint; ``run_dir`` dreams into that
    folder, not a new one under ``out``; ``models`` shares loaded models between dreams; ``on_step``: hooks
    (:class:`Hook`, or functions ``f(imagine, step)``) called after every step and closed once at the end;
    ``display_every``: the live picture in a notebook every N steps (50 there by default, never elsewhere; 0: off).
    """

    def __init__(
        self,
        text: str = "",
        *,
        settings: DreamSettings | None = None,
        resume: str | Path | None = None,
        run_dir: str | Path | None = None,
        models: ModelCache | None = None,
        on_step: Hook | Any | None = None,
        display_every: int | None = None,
        quiet: bool = False,
        **options: Any,
    ) -> None:
        # 1. check the inputs: everything a user can get wrong fails here, before any model loads
        self.models = models or ModelCache()
        named = self.models.adopt(canonical_options({**({"text": text} if text else {}), **options}))
        given = {**(settings.to_dict() if settings else {}), **named}
        self._checkpoint: dict | None = None
        if resume is not None:
            self.folder: RunFolder | None = RunFolder.open(resume)
            self.record = RunRecord.read(self.folder.path, given)
            self.record.settings = self.record.settings.resumed_with(given)
            self._checkpoint = self.folder.load_checkpoint(self.record.settings)
        else:
            s = _sized_by_the_model(DreamSettings.from_dict(given))
            self.record = RunRecord(s if s.seed is not None else s.replace(seed=secrets.randbelow(2**31)))
            self.folder = RunFolder.at(run_dir) if run_dir is not None else None
        self.settings = s = self.record.settings
        if s.upscale:  # (fails now, not after a long dream, when the upscaler cannot be had)
            check_upscale(s.upscale, s.upscaler)
        self.story = parse_story(s.text, s.images, s.negatives)  # the prompts of each part of a story
        self.prompts = self.story[0]
        display = None if quiet else notebook_hook(display_every)
        self.hooks: list[Hook] = as_hooks(on_step) + ([display] if display else [])
        self.quiet, self.dream, self.stopped_early, self._stop, self._aimed_at = quiet, None, None, False, None
        self._patience = dict((self._checkpoint or {}).get("patience") or {"best": None, "since": 0})

    run_dir = property(lambda self: self.folder.path if self.folder else None, doc="The run folder (None until made).")
    error = property(lambda self: self.record.error, doc="Why the run failed (one line), when it did.")
    final_scores = property(lambda self: self.record.final_scores, doc="Each picture's CLIP score at the last save.")
    final_score = property(lambda self: self.record.final_scores[0], doc="The (first) picture's CLIP score.")
    best_scores = property(lambda self: self.record.best_scores, doc="Each picture's best saved CLIP score.")

    @property
    def pictures(self) -> list[tuple[Path, float | None]]:
        """Each picture's ``image.png`` that is on disk, with its CLIP score: one per seed, or only the kept one with
        ``keep="best"``.
        """
        if self.folder is None:
            return []
        scores = list(self.record.final_scores or []) + [None] * len(self.settings.seeds)
        files = [self.folder.file("image", sub) for sub in self.folder.picture_dirs(self.settings.seeds)]
        return [(file, score) for file, score in zip(files, scores) if file.is_file()]

    def prepare(self) -> Dream:
        """Load the models, encode the prompts and choose the start (once, on first use)."""
        if self.dream is not None:
            return self.dream
        s = self.settings
        # 2. models
        self.device = device = resolve_device(s.device)
        self.dtype = dtype = resolve_dtype(s.precision, device)
        # (a model of weight 0 is left out of the ensemble: not even loaded)
        judges, biggan = self._load_models(device, dtype)
        self.record.device, self.record.dtype = str(device), str(dtype).removeprefix("torch.")
        self.record.device_name = device_info(device)["name"]
        # 3. prompts: every part of a story, for every guiding model
        self._targets = [[judge.encode(part) for judge in judges] for part in self.story]
        for judge, (embeds, weights) in zip(judges, self._targets[0]):
            judge.prompt_embeds, judge.prompt_weights = embeds, weights
        dream = Dream.from_settings(biggan, judges, s)
        # 4. the start: where the checkpoint left off, or as the settings ask
        if self._checkpoint is not None:
            self.folder.check_fits(self._checkpoint, num_latents(biggan), s.biggan_name)
            try:
                dream.load_state_dict(self._checkpoint["dream"])
            except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as err:
                raise UserError(
                    f"{self.folder.file('checkpoint')}: does not fit this run ({one_line(err, 200)}); the file is "
                    "damaged or not this run's checkpoint"
                ) from None
        else:
            self.record.starts = choose_start(
                dream, s, score=init_ranking(s.init_judge, self.prompts, device, self.models)
            )
        self.dream = dream
        return dream

    def _load_models(self, device, dtype) -> tuple[list, Any]:
        """The guiding models and BigGAN; when neither can be had (a first dream offline) one error names both."""
        s, missing = self.settings, None
        try:  # (a model of weight 0 is left out of the ensemble: not even loaded)
            judges = [load_guide(spec, device, dtype, self.models) for spec in s.clips() if spec.weight > 0]
        except SettingError:
            raise
        except UserError as err:
            judges, missing = [], err
        try:
            biggan = self.models.biggan(s.biggan_name, device, dtype, progress=not self.quiet)
        except UserError as err:
            if missing is None or isinstance(err, SettingError):
                raise
            clip = s.clips()[0]
            fetch = (
                f"where there is network `textsleep download --size {s.biggan_name.rsplit('-', 1)[-1]} --clip-model "
                f"{clip.name} --clip-pretrained {clip.pretrained}` fetches both, then copy the caches here as each "
                "says; "
                if s.biggan_name in BIGGAN_SHORTCUTS
                else ""
            )
            raise UserError(
                f"both models are missing, CLIP {clip.name} {clip.pretrained!r} and BigGAN {s.biggan_name}: {fetch}"
                f"CLIP: {one_line(missing, 600)}; BigGAN: {one_line(err, 600)}"
            ) from None
        if missing is not None:
            raise missing
        return judges, biggan

    def steps(self) -> Iterator[Step]:
        """The loop (phase 5) as a generator: one :class:`Step` per iteration; no printing, no files.

        It ends after ``iterations`` steps, or earlier when ``patience`` steps
        brought no better score (``stopped_early`` then says at which step).
        """
        dream, s = self.prepare(), self.settings
        while dream.step_count < s.iterations:
            part = self.record.part(dream.step_count)
            if part != self._aimed_at:  # a story's next part (patience starts again with it)
                if self._aimed_at is not None:
                    self._patience = {"best": None, "since": dream.step_count}
                dream.aim(self._targets[part])
                self._aimed_at = part
            started = time.perf_counter()
            try:
                step = dream.step()
            except FloatingPointError as err:
                why = _unstable(str(err), s, dream.step_count + 1, self._checkpoint, self.run_dir)
                raise DreamFailed(why) from None
            self.record.seconds += time.perf_counter() - started
            yield step
            if s.patience and _no_better_for(self._patience, step, s.patience):
                self.stopped_early = step.index  # (the step patience stopped at)
                self.record.stopped_early = {"step": step.index, "patience": s.patience, "margin": PATIENCE_MARGIN}
                return

    def __call__(self) -> Path:
        """Run the dream to the end, saving as it goes; returns the run folder.

        Ctrl-C or :meth:`stop` save first (the ``KeyboardInterrupt`` then goes on up); :class:`DreamFailed` and other
        errors keep the last save.  Each hook is closed once, with the run's :class:`Status`.
        """
        s, status = self.settings, Status.FAILED
        with ExitStack() as held:
            if self.folder is not None:
                held.enter_context(self.folder.lock())  # before the models load: a second writer is refused at once
            try:
                dream = self.prepare()
                if self.folder is None:
                    self.folder = RunFolder.create(s.out, story_parts(s.text)[0] or Path(s.images[0]).stem)
                    held.enter_context(self.folder.lock())
                self.record.status = Status.RUNNING
                for step in self.steps():
                    if step.index % s.save_every == 0:
                        self.save()
                    for hook in self.hooks:
                        hook(self, step)
                    if self._stop:
                        break
                done = dream.step_count >= s.iterations or self.stopped_early
                status = Status.FINISHED if done else Status.INTERRUPTED
            except KeyboardInterrupt:
                status = Status.INTERRUPTED
                raise
            except BaseException as err:
                self.record.error = one_line(err)
                raise
            finally:
                self._stop = False  # (a stop asked for before the loop began counts, once)
                self._end(status)
            # 6. finish: video, contact sheet, --keep best, --upscale
            if status == Status.FINISHED:
                self.folder.finish(self.record)
                if s.upscale:
                    self._upscale()
        return self.run_dir

    def _upscale(self) -> None:
        """``--upscale``: write ``image_x4.png`` beside each picture; ``run.json`` says what was written, or why not
        (the dream itself stays finished)."""
        s = self.settings
        name = Path(s.upscaler).name if s.upscaler else DEFAULT_UPSCALERS[s.upscale]
        self.record.upscaled = {"scale": s.upscale, "upscaler": name, "files": [], "error": None}
        try:
            written = upscale_run(self.run_dir, s.upscale, s.upscaler, device=str(self.device))
        except Exception as err:
            self.record.upscaled["error"] = one_line(err)
            self.folder.write_records(self.record)
            if isinstance(err, UserError):
                again = f" --upscaler {s.upscaler}" if s.upscaler else ""
                raise UserError(
                    f"the dream finished ({self.run_dir}) but upscaling it {s.upscale}x failed: {one_line(err)}; the "
                    f"pictures are kept; once that is fixed: textsleep upscale "
                    f"{self.run_dir / RUN_FILES['image']} --scale {s.upscale}{again}"
                ) from None
            raise
        self.record.upscaled["files"] = [str(p.relative_to(self.run_dir)) for p in written]
        self.folder.write_records(self.record)

    def _end(self, status: Status) -> None:
        """Save how the loop ended (a failed run keeps its last good save), then close the hooks."""
        try:
            if self.folder is not None and self.dream is not None:
                saved = self.dream.step_count == self.record.steps_done and self.folder.has_checkpoint()
                if status == Status.FAILED or saved:
                    self.record.status = status
                    self.folder.write_records(self.record)
                else:
                    self.save(status)
        except UserError:
            if status != Status.FAILED:
                raise  # (a failed run is already on its way up with its own error)
        finally:
            for hook in self.hooks:
                hook.close(self, status)

    def save(self, status: Status = Status.RUNNING) -> Path:
        """Write the current pictures, the best ones so far, their latents, the checkpoint and the records."""
        dream, self.record.status = self.prepare(), status
        images, state = dream.render(ema=True), {"dream": dream.state_dict(), "patience": self._patience}
        latents = dream.ema.averaged(dream.latents)
        self.folder.save(self.record, images, dream.score(images), latents, step=dream.step_count, checkpoint=state)
        return self.folder.file("image")

    def stop(self) -> None:
        """Ask a running ``imagine()`` to stop after the current step; it saves (status ``interrupted``) and returns."""
        self._stop = True

    def images(self, ema: bool = True) -> list:
        """The current pictures as PIL images (one per seed)."""
        return [to_pil(im) for im in self.prepare().render(ema)]

    def image(self, ema: bool = True):
        """The current (first) picture as a PIL image."""
        return self.images(ema)[0]


def _sized_by_the_model(s: DreamSettings) -> DreamSettings:
    """The settings with the size of the BigGAN folder ``biggan`` names, so that the run records the size its pictures
    have; a size other than the default that disagrees with the folder is refused.
    """
    size = biggan_folder_size(s.biggan) if s.biggan else None
    if size is None or size == s.size or size not in SIZES:
        return s
    if s.size != DreamSettings.__dataclass_fields__["size"].default:
        raise SettingError(
            "size", s.size, f"the BigGAN in {s.biggan} makes {size} px pictures; give {size} or leave it out"
        )
    return s.replace(size=size)


def _no_better_for(patience: dict, step: Step, steps: int) -> bool:
    """Note ``step``'s score in ``patience`` ({"best", "since"}); True when ``steps`` steps brought no better one."""
    if patience["best"] is None or step.score > patience["best"] + PATIENCE_MARGIN:
        patience["best"], patience["since"] = step.score, step.index
    return step.index - patience["since"] >= steps


def _unstable(what: str, s: DreamSettings, step: int, checkpoint: dict | None, run_dir: Path | None) -> str:
    """Why a dream stopped being finite at ``step``, and what to try."""
    if step == 1 and checkpoint is None:
        return (
            f"{what}: the generator {s.biggan_name!r} makes non-finite pictures from the start; its file may be broken "
            "or not a trained BigGAN (try --precision fp32, or another --biggan)"
        )
    kept = f"; the last saved picture and checkpoint are kept in {run_dir}" if run_dir else ""
    return f"{what}: the dream became unstable; try --precision fp32 or a lower --lr (now {s.lr}){kept}"
