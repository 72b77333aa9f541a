"""Published methods as settings: ``--recipe NAME`` fills in the method's choices; an option given beside it wins.

A recipe is a dict of :class:`~textsleep.settings.DreamSettings` fields.  Building
settings with ``recipe=NAME`` takes each of its values for every field not given
(:func:`textsleep.settings.DreamSettings` does it, whichever way the settings are
made: the command line, a prompt-file line, ``Imagine(recipe=...)``); ``run.json``
records the recipe, every value it chose and every one given instead
(:func:`record`).

``fusedream``: FuseDream (Liu et al. 2021, github.com/gnobitab/FuseDream, ``fusedream_generator.py`` and
``fusedream_utils.py``), translated to BigGAN-deep's per-layer latents:

- 10,000 random starts screened by CLIP (``INIT_ITERS`` 1000 batches of 10), the best 5 kept as bases
  (``num_basis=5``): ``init_candidates`` 10000, ``bases`` 5;
- the latents and classes learnt as per-coordinate softmax mixes of the bases, the bases clamped to ±2
  (``Z_THRES``; our truncation range ±2t with t = 1): ``bases``;
- N(0, 0.01²) noise on the mixed latents every step (``LATENT_NOISE``): ``latent_noise`` 0.01;
- CLIP's loss averaged over 50 augmented copies of the whole picture (``AugmentLoss``, ``replicate=50``, DiffAugment's
  colour, translation, resize and cutout): ``augment`` fusedream, ``cutouts`` 50;
- Adam at 5e-3 for 1,000 steps (``OPT_ITERS``), the last iterate kept: ``lr`` 0.005, ``iterations`` 1000,
  ``ema_decay`` 0.

FuseDream's CLIP (ViT-B/32) and size (512) are textsleep's defaults already.
"""

from __future__ import annotations

from typing import Any

from .errors import SettingError

__all__ = ["RECIPES", "recipe_settings", "describe", "record"]

RECIPES: dict[str, dict[str, Any]] = {
    "fusedream": {
        "init_candidates": 10_000,
        "bases": 5,
        "augment": "fusedream",
        "cutouts": 50,
        "latent_noise": 0.01,
        "lr": 0.005,
        "iterations": 1000,
        "ema_decay": 0.0,
    },
}


def recipe_settings(name: str) -> dict[str, Any]:
    """The settings a recipe chooses; an unknown name is a one-line error that lists the known ones."""
    if name not in RECIPES:
        raise SettingError("recipe", name, f"not a recipe; known are {', '.join(RECIPES)}")
    return dict(RECIPES[name])


def describe(name: str) -> str:
    """A recipe's choices as command-line options: ``--init-candidates 10000 --bases 5 …``."""
    return " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
                    for k, v in RECIPES[name].items())  # fmt: skip


def record(settings) -> dict[str, Any] | None:
    """What ``run.json`` says of a run's recipe: its name, the values it chose, and those given instead."""
    name = getattr(settings, "recipe", None)
    if name is None:
        return None
    values = settings.to_dict()
    chosen, given = {}, {}
    for key, value in RECIPES[name].items():
        (chosen if values[key] == value else given)[key] = values[key]
    return {"name": name, "chose": chosen, "given_instead": given}
