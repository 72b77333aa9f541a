"""How much a setting may ask for, and what type a value read from outside must have.

:data:`LIMITS` holds the most any size-like setting may ask for (pictures, cutouts, steps, prompts…), checked when
settings are made, before anything is allocated; :data:`PAGE_LIMITS` the web page's stricter ones for its
visitors.  :func:`check_types` refuses a value of the wrong type (read from ``run.json`` or a manifest) in one line.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from .errors import SettingError

__all__ = ["LIMITS", "PAGE_LIMITS", "check_limit", "check_types", "prompt_counts"]

# The most any size-like setting may ask for, checked when the settings are made (before anything is allocated):
# far above what a picture needs, far below what would take a machine's memory or a week of its time.
LIMITS: dict[str, int] = {
    "iterations": 1_000_000,  # steps (also --patience, --change-every, --save-every)
    "cutouts": 4096,  # crops CLIP sees per step (and --cutout-batch)
    "num_images": 64,  # pictures dreamt at once
    "init_candidates": 10_000,  # random starts rendered to choose from (FuseDream screens 10,000)
    "prompts": 64,  # prompts of one part (texts, negatives and image prompts together), and parts of a story
    "prompt_chars": 10_000,  # characters of the text, and of each negative prompt or image prompt path
    "pixel_size": 512,  # an inversion's comparison side
    "candidates": 1000,  # an inversion's one-class starts (one per ImageNet class at most)
    "steps": 100_000,  # timed benchmark steps
    "frames": 1_000_000,  # the explorer's frames (streamed, never held at once) and pictures per row
    "batch": 1024,  # pictures the explorer renders at once
}
# The web page's own, stricter limits on what a visitor asks for (a shared page must not let one visitor take the
# machine for a week); the defaults given to ``textsleep ui`` raise them where they are larger.
PAGE_LIMITS: dict[str, int] = {
    "iterations": 5000,
    "cutouts": 256,
    "num_images": 4,
    "init_candidates": 64,
    "save_every": 5000,
    "prompts": 16,
    "prompt_chars": 1000,
}


def check_limit(value: int, limit: str, flag: str, *, limits: dict[str, int] = LIMITS, where: str = "") -> None:
    """A size-like value at most ``limits[limit]``: a one-line UserError naming the limit otherwise."""
    most = limits[limit]
    if isinstance(value, int) and value > most:
        raise SettingError(flag.lstrip("-").replace("-", "_"), value, f"at most {most} allowed{where}", flag=flag)


def prompt_counts(text: str, negatives: tuple[str, ...] = (), images: tuple[str, ...] = ()) -> list[int]:
    """How many prompts each part of a story has (texts between ``|``, negatives and image prompts)."""
    return [len(part.split("|")) + len(negatives) + len(images) for part in text.split("^")]


def _kind_ok(value: Any, hint: Any) -> str:
    """'' when ``value`` has the type ``hint`` allows (a settings field's annotation), else what it must be."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return ""
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is tuple:
        items = [value] if isinstance(value, str) else value
        ok = value is None or (isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items))
        return "" if ok else "must be text (or a list of texts)"
    if hint is bool:
        return "" if isinstance(value, bool) else "must be true or false"
    if hint is int:
        return "" if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return "" if ok else "must be a number"
    if hint is str:
        return "" if isinstance(value, str) else "must be text"
    return ""


def check_types(settings: Any) -> None:
    """Every field of a settings dataclass holds a value of its annotated type (numbers, text, true/false, lists of
    texts), so that a value read from a file (``run.json``, a manifest) is refused with one line, not a traceback.
    """
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        why = _kind_ok(value, hints[f.name])
        if why:
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            raise SettingError(f.name, value, why, flag="text" if f.name == "text" else flag)
