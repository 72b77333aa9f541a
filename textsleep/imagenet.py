"""The 1000 ImageNet classes BigGAN knows, by index or name, offline.

The names are the ones open_clip ships (``open_clip.IMAGENET_CLASSNAMES``);
nothing is downloaded.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from .errors import UserError

__all__ = ["class_names", "resolve_class", "search_classes", "class_label"]

_LABEL = re.compile(r"^\s*(\d+)\s*\)\s*(.*)$")


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1000 class names in index order."""
    from open_clip import IMAGENET_CLASSNAMES

    names = tuple(IMAGENET_CLASSNAMES)
    assert len(names) == 1000
    return names


def class_label(index: int) -> str:
    """``"971) bubble"``"""
    return f"{index}) {class_names()[index]}"


def _closest(query: str, n: int = 5) -> list[str]:
    names = [n.lower() for n in class_names()]
    hits = difflib.get_close_matches(query.lower(), names, n=n, cutoff=0.5)
    return [class_label(names.index(h)) for h in hits]


def resolve_class(spec: str | int) -> int:
    """A class index from ``971``, ``"971"``, ``"bubble"`` or ``"971) bubble"`` (case-insensitive)."""
    if isinstance(spec, int):
        index = spec
    else:
        text = str(spec).strip().strip("'\"").strip()
        label = _LABEL.match(text)
        if label:
            text = label.group(1)
        if text.isdigit():
            index = int(text)
        else:
            return _by_name(text)
    if not 0 <= index < 1000:
        raise UserError(f"class {spec!r}: index must be between 0 and 999")
    return index


def _by_name(text: str) -> int:
    names = [n.lower() for n in class_names()]
    query = text.lower()
    if query in names:
        return names.index(query)
    partial = [i for i, n in enumerate(names) if query in n]
    if len(partial) == 1:
        return partial[0]
    if partial:
        shown = ", ".join(class_label(i) for i in partial[:6])
        more = f" and {len(partial) - 6} more" if len(partial) > 6 else ""
        raise UserError(f"class {text!r} matches several: {shown}{more}; give the index or the full name")
    close = _closest(text)
    hint = f"closest: {', '.join(close)}" if close else "see `textsleep classes` for the list"
    raise UserError(f"unknown class {text!r}; {hint}")


def search_classes(query: str | None = None) -> list[tuple[int, str]]:
    """All classes, or those whose name contains the query or whose index it is (fuzzy when nothing matches)."""
    names = class_names()
    if not query:
        return list(enumerate(names))
    q = query.strip().lower()
    label = _LABEL.match(q)
    if label:
        q = label.group(1)
    if q.isdigit():
        i = int(q)
        return [(i, names[i])] if 0 <= i < 1000 else []
    hits = [(i, n) for i, n in enumerate(names) if q in n.lower()]
    if hits:
        return hits
    close = difflib.get_close_matches(q, [n.lower() for n in names], n=8, cutoff=0.5)
    lowered = [n.lower() for n in names]
    return [(lowered.index(c), names[lowered.index(c)]) for c in close]
