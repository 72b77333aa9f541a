"""Prompt syntax: ``a|b`` for several prompts, ``text:weight`` to weight one, ``a ^ b`` for a story.

A negative weight (or ``--negative TEXT``) pushes the picture away from that
prompt.  Image prompts take the same ``path:weight`` syntax.  A story's parts,
between ``^``, are the targets in turn (``--change-every`` steps each); image
prompts and negatives hold for every part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import UserError

__all__ = ["Prompt", "parse_prompts", "parse_story", "story_parts", "parse_weighted"]

# "text:weight": whatever follows the last colon is the weight and must be a number.
_WEIGHT = re.compile(r"^(?P<body>.*?):(?P<weight>[^:/\\]*)$", re.S)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Prompt:
    """One weighted prompt: a text or an image path."""

    value: str
    weight: float = 1.0
    kind: str = "text"  # "text" | "image"


def parse_weighted(item: str, *, kind: str = "text") -> Prompt:
    """Parse one ``value[:weight]`` item (no ``|``)."""
    item = item.strip()
    weight = 1.0
    match = _WEIGHT.match(item)
    # a Windows drive ("C:\\x.png") or URL-ish colon is not a weight; an empty weight ("a:") is an error
    if match and not (kind == "image" and len(match["body"]) == 1):
        raw = match["weight"].strip()
        if not _NUMBER.match(raw):
            raise UserError(f"prompt {item!r}: weight {raw!r} is not a number (write 'text:2' or 'text:-1')")
        item, weight = match["body"].strip(), float(raw)
    if not item:
        raise UserError(f'empty {kind} prompt; give some words, e.g. "upside down tree"')
    if weight == 0:
        raise UserError(f"prompt {item!r}: weight 0 would ignore it; use a positive or negative number")
    return Prompt(item, weight, kind)


def parse_prompts(
    text: str = "", images: tuple[str, ...] | list[str] = (), negatives: tuple[str, ...] | list[str] = ()
) -> list[Prompt]:
    """All prompts of a dream, validated.  At least one must pull towards something."""
    prompts: list[Prompt] = []
    if text.strip():
        prompts += [parse_weighted(part) for part in text.split("|")]
    elif text or not images:
        raise UserError('empty prompt; give some words, e.g. textsleep "upside down tree"')
    for neg in negatives:
        p = parse_weighted(neg)
        prompts.append(Prompt(p.value, -abs(p.weight), "text"))
    for img in images:
        p = parse_weighted(img, kind="image")
        _check_image(p.value)
        prompts.append(p)
    if not any(p.weight > 0 for p in prompts):
        raise UserError("every prompt has a negative weight; at least one must have a positive weight")
    return prompts


def story_parts(text: str) -> list[str]:
    """The parts of a story ``"a ^ b ^ c"`` (one part when there is no ``^``); an empty part is an error."""
    if "^" not in text:
        return [text]
    parts = [part.strip() for part in text.split("^")]
    for i, part in enumerate(parts, start=1):
        if not part:
            raise UserError(
                f"story {text!r}: part {i} is empty; write the parts between '^', e.g. \"a quiet forest ^ a burning "
                'forest"'
            )
    return parts


def parse_story(
    text: str = "", images: tuple[str, ...] | list[str] = (), negatives: tuple[str, ...] | list[str] = ()
) -> list[list[Prompt]]:
    """The prompts of each part of a story (one part for a plain prompt), validated."""
    return [parse_prompts(part, images, negatives) for part in story_parts(text)]


def _check_image(path: str) -> None:

    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"--image {path!r}: no such file")
    try:
        with Image.open(file) as im:
            im.verify()
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"--image {path!r}: not an image file PIL can read ({err.__class__.__name__})") from None
