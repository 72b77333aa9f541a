"""The latent-space explorer: walks through BigGAN-deep's latent space, as tensors or as files with their recipe.

- :mod:`.points`    points (a latent and class vectors per input) and rendering them, ``chunk`` pictures at a time
- :mod:`.walks`     the walks as pictures: samples, morphs, breeds, hallucinations, zooms, truncation sweeps, loops
- :mod:`.settings`  the explorer's options (which BigGAN, where the files go, each walk's knobs), checked when built
- :mod:`.files`     each walk saved as a grid PNG or a GIF/MP4 with its recipe (what ``textsleep sample`` … write)

A photo's inversion, which makes a run folder to walk from, is :mod:`textsleep.invert`.

>>> biggan, name = load_generator(128)                                                   # doctest: +SKIP
>>> pictures = sample_grid(biggan, [971, 207], n=4, seed=0, truncation=0.4)             # doctest: +SKIP
>>> save_zoom("bubble", ZoomOptions(levels="0.5,1,2"), RenderOptions(size=128))         # doctest: +SKIP
"""

from . import files, points, settings, walks
from .files import *  # noqa: F403  (each part names its public face in its __all__)
from .points import *  # noqa: F403
from .settings import *  # noqa: F403
from .walks import *  # noqa: F403

__all__ = [*points.__all__, *walks.__all__, *settings.__all__, *files.__all__]
