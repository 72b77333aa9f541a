"""Libraries imported when first used rather than when textsleep is: open_clip (torchvision and torch's compiler come
with it) and pytorch_pretrained_biggan (scipy comes with it) each take longer to import than torch itself, and
``textsleep --help``, a mistyped command or ``textsleep batch --status`` need neither.

``open_clip.create_model(...)`` reads as it always does; the import happens at the first attribute looked up.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LazyModule", "open_clip", "biggan_package"]


class LazyModule:
    """A module imported on its first attribute access: ``open_clip = LazyModule("open_clip")``."""

    def __init__(self, name: str) -> None:
        self._name, self._module = name, None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:  # (once: render asks for GenBlock on every step)
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


open_clip = LazyModule("open_clip")
biggan_package = LazyModule("pytorch_pretrained_biggan")  # .BigGAN, .BigGANConfig, .model.GenBlock, …
