"""textsleep: text to image with BigGAN, guided by CLIP.

>>> from textsleep import Imagine
>>> Imagine(text="upside down tree", iterations=1000)()  # doctest: +SKIP
"""

from .dream import Dream, Step
from .errors import UserError
from .imagine import Imagine
from .models import load_biggan, load_clip
from .settings import DreamSettings
from .version import __version__

__all__ = ["Imagine", "DreamSettings", "Dream", "Step", "UserError", "load_biggan", "load_clip", "__version__"]
