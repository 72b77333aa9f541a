"""textsleep: text to image with BigGAN, guided by CLIP.

>>> from textsleep import Imagine
>>> Imagine(text="upside down tree", iterations=1000)()  # doctest: +SKIP
"""

from .dream import Step
from .errors import UserError
from .hooks import Hook, Status
from .imagine import DreamFailed, Imagine
from .models import ModelCache, load_biggan, load_clip
from .settings import DreamSettings
from .version import __version__

__all__ = [
    "Imagine",
    "DreamSettings",
    "ModelCache",
    "DreamFailed",
    "UserError",
    "Step",
    "Hook",
    "Status",
    "load_biggan",
    "load_clip",
    "__version__",
]
