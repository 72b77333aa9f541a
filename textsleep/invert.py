"""Where a picture starts from a photo: find BigGAN latents and class vectors whose render matches it.

:func:`invert` builds a :class:`textsleep.dream.Dream` whose loss pulls the
render towards a target picture; :func:`invert_photo` does the whole job for a
photo file and leaves a run folder written as a dream's is (:mod:`textsleep.runs`),
which ``--init`` and ``interpolate`` take.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .devices import device_info, resolve_device, resolve_dtype
from .dream import Dream, Judge
from .errors import SettingError, UserError
from .hooks import Hook, Status, as_hooks
from .imagenet import class_names
from .imagine import DreamFailed
from .media import centre_square, to_pil
from .models import ModelCache
from .runs import RunFolder, RunRecord
from .settings import DreamSettings
from .starts import best_starts, rank_classes

__all__ = ["load_photo", "pixel_loss", "invert", "invert_photo"]

_DEFAULTS = {"iterations": 300, "cutouts": 32, "seed": 0}  # where an inversion differs from a dream's settings
# dream settings an inversion has no use for: the photo is its only prompt, and it saves once, at the end
_NOT_USED = ("text", "images", "negatives", "change_every", "patience", "init_candidates", "init_class", "init")
_NOT_USED += ("num_images", "keep", "save_every", "save_progress", "video", "upscale")


def load_photo(path: str | Path, size: int) -> torch.Tensor:
    """A photo's centre square at ``size``×``size``: (1, 3, size, size) in [0, 1]."""
    try:
        with Image.open(path) as im:
            return centre_square(im, size)
    except FileNotFoundError:
        raise UserError(f"photo {str(path)!r}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(
            f"photo {str(path)!r}: not an image PIL can read ({err.__class__.__name__}); give a PNG, JPEG or WebP"
        ) from None


def pixel_loss(images: torch.Tensor, target: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Mean squared difference of the pictures and the target, both shrunk to ``size`` px (area average): (B,)."""
    small = F.adaptive_avg_pool2d(images.float(), size)
    goal = F.adaptive_avg_pool2d(target.float().to(images.device), size)
    return (small - goal).pow(2).mean(dim=(1, 2, 3))


def _check(pixel_weight: float, pixel_size: int, candidates: int) -> None:
    for name, value in (("pixel_size", pixel_size), ("candidates", candidates)):
        if value < 1:
            raise SettingError(name, value, "must be a whole number >= 1")
    if pixel_weight < 0:
        raise SettingError("pixel_weight", pixel_weight, "must be >= 0")


def invert(
    biggan,
    clip,
    target: torch.Tensor,
    settings: DreamSettings | None = None,
    *,
    pixel_weight: float = 500.0,
    pixel_size: int = 32,
    candidates: int = 1,
    **options,
) -> tuple[Dream, dict]:
    """A :class:`textsleep.dream.Dream` whose steps pull BigGAN's render towards ``target`` (1, 3, H, W).

    Its knobs are ``settings`` (a :class:`DreamSettings`) with ``options`` on
    top, or ``options`` alone (``cutouts`` 32 and ``seed`` 0 unless given).
    The loss is the dream's own (CLIP similarity of random cutouts, here to the
    target's CLIP embedding, plus its latent and class regularisers) plus
    ``pixel_weight`` × :func:`pixel_loss` at ``pixel_size`` px.  With
    ``candidates`` K > 1 it starts from the best (lowest pixel loss) of K random
    starts, each with one of the K classes whose names CLIP finds closest to the
    target.  Returns the dream and a record of its start; drive it with
    ``dream.step()``; ``dream.render()`` and ``dream.ema`` give the result.
    """
    s = (settings or DreamSettings(**_DEFAULTS)).replace(**options)
    _check(pixel_weight, pixel_size, candidates)
    if target.dim() != 4 or target.shape[:2] != (1, 3):
        raise ValueError(f"target must be (1, 3, H, W), got {tuple(target.shape)}")
    goal = _resized(target, biggan.config.output_dim).to(next(biggan.parameters()).device)
    with torch.inference_mode():
        embed = clip.encode_image(_resized(target, clip.image_size).to(clip.device)).float()
    judge = Judge(clip, embed.clone(), torch.ones(1, device=clip.device))

    def loss(images: torch.Tensor) -> torch.Tensor:  # (B,), lower is nearer the target
        return pixel_weight * pixel_loss(images, goal, pixel_size)

    dream = Dream.from_settings(biggan, [judge], s, extra_loss=loss)
    if candidates == 1:
        return dream, {"seed": s.seed}
    classes = rank_classes(judge, class_names(), top=candidates)
    return dream, best_starts(
        dream, classes, candidates, s.truncation, score=lambda images: -pixel_loss(images, goal, pixel_size).cpu()
    )[0]


def _resized(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)


def invert_photo(
    photo: str | Path,
    *,
    pixel_weight: float = 500.0,
    pixel_size: int = 32,
    candidates: int = 8,
    on_step: Hook | list | None = None,
    **options,
) -> Path:
    """Invert a photo's centre square and save a run folder as a dream leaves one; returns the folder.

    ``options`` are :class:`textsleep.settings.DreamSettings` fields (``iterations``
    300, ``cutouts`` 32 and ``seed`` 0 unless given; one CLIP model; an option an
    inversion has no use for, such as ``text`` or ``video``, is an error).  The
    folder holds ``image.png``, ``latents.pt`` and ``run.json`` as a dream's, with
    the inversion's recipe under ``invert``, and ``target.png`` (the photo as
    compared).  ``on_step`` hooks are called ``hook(run, step)`` after every step
    — ``run`` is the :class:`textsleep.runs.RunRecord` (``run.settings.iterations``
    steps in all; the pixel loss is ``step.losses["extra"]``) — and closed once.
    """
    # 1. check the inputs: an unreadable photo or a bad option fails before any model loads
    _check(pixel_weight, pixel_size, candidates)
    unused = [f"{k}={options[k]!r}" for k in _NOT_USED if k in options and options[k] != getattr(DreamSettings, k)]
    if unused:
        raise UserError(
            f"{', '.join(unused)}: an inversion has no use for {'them' if unused[1:] else 'it'}; leave it out"
        )
    s = DreamSettings(**{**_DEFAULTS, **options, "images": (str(photo),)})
    if len(s.clips()) != 1:
        raise SettingError("clip_model", s.clip_model, "an inversion uses one CLIP model")
    goal, hooks = load_photo(photo, s.size), as_hooks(on_step)
    run, status = RunRecord(s, kind="invert", status=Status.RUNNING), Status.FAILED
    try:
        # 2. models
        device = resolve_device(s.device)
        dtype, models, spec = resolve_dtype(s.precision, device), ModelCache(), s.clips()[0]
        biggan = models.biggan(s.biggan_name, device, dtype)
        clip = models.clip(spec.name, spec.pretrained, device, dtype)
        run.device, run.dtype = str(device), str(dtype).removeprefix("torch.")
        run.device_name = device_info(device)["name"]
        if goal.shape[-1] != biggan.config.output_dim:  # --biggan named a model of another size
            goal = load_photo(photo, biggan.config.output_dim)
        # 3-4. the target and the start
        dream, start = invert(
            biggan, clip, goal, s, pixel_weight=pixel_weight, pixel_size=pixel_size, candidates=candidates
        )
        run.starts, first = [start], float(pixel_loss(dream.render(), goal, pixel_size)[0])
        # 5. the loop
        while dream.step_count < s.iterations:
            started = time.perf_counter()
            try:
                step = dream.step()
            except FloatingPointError as err:
                raise DreamFailed(
                    f"{err}: the inversion became unstable; try --precision fp32 or a lower --lr"
                ) from None
            run.seconds += time.perf_counter() - started
            for hook in hooks:
                hook(run, step)
        # 6. finish: the run folder
        recipe = {"command": "invert", "photo": str(photo), "pixel_weight": pixel_weight, "pixel_size": pixel_size}
        recipe.update(candidates=candidates, start=start, first_pixel_loss=round(first, 6))
        folder = _save(run, dream, goal, recipe)
        status = Status.FINISHED
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
        raise
    finally:
        run.status = status
        for hook in hooks:
            hook.close(run, status)
    return folder


def _save(run: RunRecord, dream: Dream, goal: torch.Tensor, recipe: dict) -> Path:
    """The run folder: image.png, latents.pt and run.json as a dream leaves them, plus target.png."""
    images = dream.render(ema=True)
    scores = dream.score(images)
    final = float(pixel_loss(images, goal, recipe["pixel_size"])[0])
    recipe.update(final_pixel_loss=round(final, 6), clip_score=round(scores[0], 5))
    run.extra, run.status = {"invert": recipe}, Status.FINISHED
    folder = RunFolder.create(run.settings.out, f"invert-{Path(recipe['photo']).stem}")
    folder.save_picture(to_pil(goal[0]), {"photo": recipe["photo"]}, kind="target")
    averaged = dream.ema.averaged(dream.latents)
    folder.save(run, images, scores, averaged, step=dream.step_count, best=False)
    return folder.path
