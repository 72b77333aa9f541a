"""Where a picture starts from a photo: find BigGAN latents and class vectors whose render matches it.

:func:`invert` builds a :class:`textsleep.dream.Dream` whose loss pulls the
render towards a target picture; :func:`invert_photo` does the whole job for
a photo file and leaves a run folder that ``--init`` and ``interpolate`` take.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .dream import Dream, Judge
from .errors import UserError
from .explore import check_truncation, load_generator
from .imagenet import class_names
from .media import centre_square, to_pil
from .models import load_clip, resolve_device, resolve_dtype
from .outputs import save_png
from .runs import RUN_FILES, RunFolder
from .settings import DreamSettings
from .starts import best_starts, rank_classes
from .version import __version__

__all__ = ["load_photo", "pixel_loss", "invert", "invert_photo"]

_DEFAULTS = {"iterations": 300, "cutouts": 32, "seed": 0}  # where an inversion differs from a dream's settings
_TARGET = "target.png"  # the photo as the inversion compared it, beside the run folder's own files


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
    for option, value in (("--pixel-size", pixel_size), ("--candidates", candidates)):
        if value < 1:
            raise UserError(f"{option} {value}: must be a whole number >= 1")
    if pixel_weight < 0:
        raise UserError(f"--pixel-weight {pixel_weight!r}: must be >= 0")


def invert(
    biggan,
    clip,
    target: torch.Tensor,
    *,
    seed: int = 0,
    truncation: float = 1.0,
    lr: float = 0.07,
    cutouts: int = 32,
    augment: str = "light",
    pixel_weight: float = 500.0,
    pixel_size: int = 32,
    candidates: int = 1,
    ema_decay: float = 0.99,
) -> tuple:
    """A :class:`textsleep.dream.Dream` whose steps pull BigGAN's render towards ``target`` (1, 3, H, W).

    The loss is the dream's own (CLIP similarity of random cutouts, here to the
    target's CLIP embedding, plus its latent and class regularisers) plus
    ``pixel_weight`` × :func:`pixel_loss` at ``pixel_size`` px.  With
    ``candidates`` K > 1 it starts from the best (lowest pixel loss) of K random
    starts, each with one of the K classes whose names CLIP finds closest to the
    target.  Returns the dream and a record of its start; drive it with
    ``dream.steps(n)``; ``dream.render()`` and ``dream.ema`` give the result.
    """

    check_truncation(truncation)
    _check(pixel_weight, pixel_size, candidates)
    if target.dim() != 4 or target.shape[:2] != (1, 3):
        raise ValueError(f"target must be (1, 3, H, W), got {tuple(target.shape)}")
    size = biggan.config.output_dim
    goal = F.interpolate(target.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    with torch.inference_mode():
        view = F.interpolate(target.float(), size=clip.image_size, mode="bilinear", antialias=True, align_corners=False)
        embed = clip.encode_image(view.to(clip.device)).float()
    judge = Judge(clip, embed.clone(), torch.ones(1, device=clip.device))
    goal = goal.to(next(biggan.parameters()).device)
    dream = Dream(
        biggan,
        [judge],
        seeds=[seed],
        lr=lr,
        cutouts=cutouts,
        augment=augment,
        truncation=truncation,
        ema_decay=ema_decay,
        extra_loss=lambda images: pixel_weight * pixel_loss(images, goal, pixel_size),
    )
    start = _best_start(dream, goal, candidates, truncation, pixel_size) if candidates > 1 else {"seed": seed}
    return dream, start


def _best_start(dream, goal: torch.Tensor, k: int, truncation: float, pixel_size: int) -> dict:
    """Start ``dream`` from the best of ``k`` one-class starts, by pixel loss; returns how it chose."""

    classes = rank_classes(dream.judges[0], class_names(), top=k)
    return best_starts(dream, classes, k, truncation, score=lambda images: -pixel_loss(images, goal, pixel_size).cpu())[
        0
    ]


def invert_photo(
    photo: str | Path,
    *,
    pixel_weight: float = 500.0,
    pixel_size: int = 32,
    candidates: int = 8,
    on_step: Callable | None = None,
    **options,
) -> Path:
    """Invert a photo's centre square and save a run folder as a dream leaves one; returns the folder.

    ``options`` are :class:`textsleep.settings.DreamSettings` fields (``iterations``
    300, ``cutouts`` 32 and ``seed`` 0 unless given; one CLIP model).  The folder
    holds ``image.png``, ``latents.pt``, ``run.json`` and ``target.png`` (the photo
    as compared).  ``on_step(step)`` is called after every step.
    """

    s = DreamSettings(images=(str(photo),), ema_decay=0.99, **{**_DEFAULTS, **options})
    clips = s.clips()
    if len(clips) != 1:
        raise UserError(f"--clip-model given {len(clips)} times: an inversion uses one CLIP model")
    clip_spec = clips[0]
    _check(pixel_weight, pixel_size, candidates)
    goal = load_photo(photo, s.size)  # an unreadable photo fails before any model loads
    model, name = load_generator(s.size, s.biggan, s.device, s.precision)
    if goal.shape[-1] != model.config.output_dim:  # --biggan named a model of another size
        goal = load_photo(photo, model.config.output_dim)
    device = resolve_device(s.device)
    clip = load_clip(clip_spec.name, clip_spec.pretrained, device).to(device, resolve_dtype(s.precision, device))
    started = time.perf_counter()
    dream, start = invert(
        model,
        clip,
        goal,
        seed=s.seed,
        truncation=s.truncation,
        lr=s.lr,
        cutouts=s.cutouts,
        pixel_weight=pixel_weight,
        pixel_size=pixel_size,
        candidates=candidates,
    )
    first = float(pixel_loss(dream.render(), goal, pixel_size)[0])
    for step in dream.steps(s.iterations):
        if on_step is not None:
            on_step(step)
    recipe = dict(command="invert", biggan=name, photo=str(photo), iterations=s.iterations, lr=s.lr, cutouts=s.cutouts)
    recipe.update(
        pixel_weight=pixel_weight, pixel_size=pixel_size, candidates=candidates, seed=s.seed, truncation=s.truncation
    )
    recipe.update(
        clip_model=clip_spec.name,
        clip_pretrained=clip_spec.pretrained,
        start=start,
        software=f"textsleep {__version__}",
    )
    return _save_run(dream, goal, s, recipe, first, time.perf_counter() - started, Path(photo).stem)


def _save_run(dream, goal: torch.Tensor, settings, recipe: dict, first: float, seconds: float, stem: str) -> Path:
    """The run folder: image.png, latents.pt and run.json as a dream leaves them, plus target.png."""

    images = dream.render(ema=True)
    final = float(pixel_loss(images, goal, recipe["pixel_size"])[0])
    score = dream.score(images)[0]
    recipe.update(first_pixel_loss=round(first, 6), final_pixel_loss=round(final, 6), clip_score=round(score, 5))
    seed, biggan = recipe["seed"], recipe["biggan"]
    folder = RunFolder.create(settings.out, f"invert-{stem}")
    averaged = dream.ema.averaged(dream.latents)
    latents = {
        "z": averaged["z"][0].detach().cpu(),
        "logits": averaged["logits"][0].detach().cpu(),
        "truncation": recipe["truncation"],
        "max_classes": None,
        "class_temperature": settings.class_temperature,
        "biggan": biggan,
        "seed": seed,
        "step": dream.step_count,
    }
    folder.save_latents(latents)
    meta = {
        "prompt": "",
        "photo": recipe["photo"],
        "seed": str(seed),
        "step": str(dream.step_count),
        "clip_score": f"{score:.5f}",
        "recipe": recipe,
    }
    folder.save_picture(to_pil(images[0]), meta)
    save_png(to_pil(goal[0]), folder.path / _TARGET, {"photo": recipe["photo"]})
    record = {
        "textsleep": __version__,
        "kind": "invert",
        "status": "finished",
        "prompt": "",
        "seed": seed,
        "seeds": [seed],
        "settings": settings.to_dict(),
        "invert": recipe,
        "models": {
            "biggan": biggan,
            "clip": [{"name": recipe["clip_model"], "pretrained": recipe["clip_pretrained"], "weight": 1.0}],
        },
        "steps_done": dream.step_count,
        "final_score": score,
        "seconds": round(seconds, 3),
        "files": {
            "image": RUN_FILES["image"],
            "target": _TARGET,
            "record": RUN_FILES["record"],
            "latents": RUN_FILES["latents"],
        },
    }
    folder.write_record(record)
    return folder.path
