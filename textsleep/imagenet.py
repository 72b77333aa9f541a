"""The 1000 ImageNet classes BigGAN knows, by index or name, offline.

The names are the ones open_clip ships (``open_clip.IMAGENET_CLASSNAMES``,
short readable names in index order); nothing is downloaded.  Two of them
occur twice (``missile`` at 657 and 744, ``sunglasses`` at 836 and 837), so
those classes can only be picked by index.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from .errors import UserError
from .lazy import open_clip

__all__ = ["NUM_CLASSES", "class_names", "resolve_class", "search_classes", "class_label"]

NUM_CLASSES = 1000

_LABEL = re.compile(r"^(?P<index>[+-]?\d+)\s*\)\s*(?P<name>.*)$")  # "971) bubble"
_NUMBER = re.compile(r"^[+-]?\d+$")


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1000 class names in index order."""

    names = tuple(open_clip.IMAGENET_CLASSNAMES)
    if len(names) != NUM_CLASSES:
        raise RuntimeError(f"open_clip.IMAGENET_CLASSNAMES has {len(names)} names, expected {NUM_CLASSES}")
    return names


@lru_cache(maxsize=1)
def _lowered() -> tuple[str, ...]:
    return tuple(_normal(n) for n in class_names())


def class_label(index: int) -> str:
    """``class_label(971) == "971) bubble"``; the label is accepted back by :func:`resolve_class`."""
    return f"{index}) {class_names()[index]}"


def resolve_class(spec: str | int) -> int:
    """A class index from ``971``, ``"971"``, ``"bubble"`` or ``"971) bubble"``.

    Names are case-insensitive; surrounding spaces and quotes are ignored.  A
    name may be part of a class name if only one class contains it; an exact
    name wins over partial matches.  Anything else raises :class:`UserError`
    with the candidates or the closest names.
    """
    if isinstance(spec, bool):
        raise UserError(f"class {spec!r}: give an index 0..{NUM_CLASSES - 1} or a class name")
    if isinstance(spec, int):
        return _check_index(spec, spec)
    text = _normal(str(spec).strip().strip("'\""))
    if not text:
        raise UserError(f"class {spec!r} is empty; give an index 0..{NUM_CLASSES - 1} or a class name")
    label = _LABEL.match(text)
    if label:
        index = _check_index(int(label["index"]), spec)
        name = label["name"]
        if name and name != _lowered()[index]:
            raise UserError(
                f"class {spec!r}: {index} is {class_names()[index]!r}, not {name!r}; give the index or the name alone"
            )
        return index
    if _NUMBER.match(text):
        return _check_index(int(text), spec)
    return _by_name(text, spec)


def search_classes(query: str | None = None) -> list[tuple[int, str]]:
    """All ``(index, name)`` pairs, or those whose name contains ``query`` or whose index it is.

    When no name contains the query, the closest names (difflib) are returned instead.
    """
    names = class_names()
    q = _normal(query or "")
    if not q:
        return list(enumerate(names))
    label = _LABEL.match(q)
    if label:
        q = label["index"]
    hits = [(i, n) for i, n in enumerate(names) if q in _lowered()[i] or q == str(i)]
    return hits or [(i, names[i]) for i in _closest(q, 8)]


def _normal(text: str) -> str:
    """Lower case with single spaces."""
    return " ".join(text.lower().split())


def _check_index(index: int, spec: object) -> int:
    if not 0 <= index < NUM_CLASSES:
        raise UserError(f"class {spec!r}: index {index} is out of range; allowed: 0..{NUM_CLASSES - 1}")
    return index


def _closest(query: str, n: int) -> list[int]:
    """Indices of the ``n`` names most like ``query`` (both copies of a repeated name)."""
    lowered = _lowered()
    close = difflib.get_close_matches(query, sorted(set(lowered)), n=n, cutoff=0.5)
    return [i for name in close for i, other in enumerate(lowered) if other == name][:n]


def _by_name(text: str, spec: object) -> int:
    lowered = _lowered()
    exact = [i for i, n in enumerate(lowered) if n == text]
    partial = exact or [i for i, n in enumerate(lowered) if text in n]
    if len(partial) == 1:
        return partial[0]
    if partial:
        shown = ", ".join(class_label(i) for i in partial[:6])
        more = f" and {len(partial) - 6} more" if len(partial) > 6 else ""
        fix = "give the index" if exact else "give the index or the full name"
        raise UserError(f"class {spec!r} matches several: {shown}{more}; {fix}")
    close = _closest(text, 5)
    hint = (
        f"closest: {', '.join(class_label(i) for i in close)}"
        if close
        else f"allowed: an index 0..{NUM_CLASSES - 1} or an ImageNet class name"
    )
    raise UserError(f"unknown class {spec!r}; {hint}")
