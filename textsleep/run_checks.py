"""What a run folder's files must hold, checked as :mod:`textsleep.runs` reads them.

A run folder may come from anyone (a colleague's copy, a download, a folder
edited by hand), so everything read from it is input: ``run.json``,
``checkpoint.pt`` and ``latents.pt`` are checked for types, ranges and shapes
(and the BigGAN size they need) before anything uses them, and anything else is
one line naming the file and what is wrong.  A URL where a run recorded the
generator it used is fetched only when the user gives it again.

Only :mod:`textsleep.runs` calls these; it is the one reader and writer of the format.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .hooks import Status
from .imagenet import NUM_CLASSES
from .limits import LIMITS
from .models import biggan_config
from .settings import SIZES, DreamSettings

__all__ = ["check_record", "check_checkpoint", "check_latents", "check_fits", "latents_of_size", "is_url"]

Z_DIM = 128
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_KINDS = ("dream", "invert")
_MOST_LATENTS = 64  # far more inputs than any BigGAN-deep has (11, 13 or 15)


def is_url(text: Any) -> bool:
    return isinstance(text, str) and bool(_URL.match(text.strip()))


def latents_of_size(size: int) -> int:
    """How many (z, class) inputs BigGAN-deep of this output size takes: one per block and one for the first layer."""
    return len(biggan_config(size).layers) + 1


def _latents_needed(s: DreamSettings) -> int | None:
    """The inputs the run's BigGAN takes, when its settings say it (a shortcut name; not a folder or URL)."""
    name = s.biggan_name
    for size in SIZES:
        if name == f"biggan-deep-{size}":
            return latents_of_size(size)
    return None


def _whole(value: Any, least: int = 0, most: int | None = None) -> bool:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
    return ok and (most is None or value <= most)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Bad:
    """Raise one line naming ``file`` and what is wrong with it."""

    def __init__(self, file: Path, what: str) -> None:
        self.file, self.what = file, what

    def __call__(self, problem: str) -> UserError:
        return UserError(f"{self.file}: {problem}; {self.what}")


# ---------------------------------------------------------------------------------------------- run.json
def check_record(
    data: Any, file: Path, given: dict[str, Any] | None = None, *, resuming: bool = True
) -> tuple[DreamSettings, dict[str, Any]]:
    """A ``run.json``'s settings and the entries a resumed run keeps (kind, status, steps, scores, starts, seconds),
    checked.  ``resuming``: a ``biggan`` recorded as a URL is refused unless ``given`` (what the user passes now)
    names it again (only to show a run, nothing is fetched).
    """
    bad = _Bad(file, "the record is damaged or not a textsleep run's")
    if not isinstance(data, dict):
        raise bad(f"holds a {type(data).__name__}, not a run record")
    if not isinstance(data.get("settings"), dict):
        raise bad("no settings in it" if "settings" not in data else "its settings are not a mapping")
    try:
        s = DreamSettings.from_dict(data["settings"])
    except UserError as err:
        raise UserError(f"{file}: settings: {err}") from None
    if resuming and is_url(s.biggan) and "biggan" not in (given or {}):
        raise UserError(
            f"{file}: the run's generator is the URL {s.biggan!r}; a run folder may come from anyone, so that URL is "
            f"fetched only when you give it again: --biggan {s.biggan}"
        )
    n, kept = s.num_images, {}
    rules = {
        "kind": (lambda v: v in _KINDS, f"one of {', '.join(_KINDS)}"),
        "status": (lambda v: v in set(Status), f"one of {', '.join(Status)}"),
        "steps_done": (lambda v: _whole(v, 0, LIMITS["iterations"]), "a whole number of steps"),
        "final_scores": (lambda v: _scores(v, n, _number), f"a list of {n} numbers (or nulls)"),
        "best_scores": (lambda v: _scores(v, n, _number), f"a list of {n} numbers (or nulls)"),
        "best_steps": (lambda v: _scores(v, n, _whole), f"a list of {n} whole numbers (or nulls)"),
        "starts": (lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v), "a list of records"),
        "seconds": (lambda v: _number(v) and v >= 0, "a number of seconds >= 0"),
    }
    for key, (ok, must) in rules.items():
        value = data.get(key)
        if value is None:
            continue
        if not ok(value):
            raise bad(f"{key} {_short(value)} must be {must}")
        kept[key] = value
    return s, kept


def _scores(value: Any, n: int, kind) -> bool:
    return isinstance(value, list) and len(value) == n and all(v is None or kind(v) for v in value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


# ---------------------------------------------------------------------------------------------- checkpoint.pt
def check_checkpoint(state: Any, file: Path, s: DreamSettings | None) -> dict:
    """A checkpoint as :meth:`textsleep.imagine.Imagine.save` writes it, for a run with these settings: the dream's
    step, latents ``z`` (B, L, 128) and ``logits`` (B, L, 1000), their moving average, the optimiser's state and one
    random generator per picture.  Without settings only the step is checked (to look at a checkpoint, not to
    resume from it).
    """
    bad = _Bad(file, "the checkpoint is damaged or not this run's")
    if not isinstance(state, dict) or not isinstance(state.get("dream"), dict):
        raise bad(f"holds a {type(state).__name__} without a dream's state, not a checkpoint")
    dream = state["dream"]
    if not _whole(dream.get("step"), 0, LIMITS["iterations"]):
        raise bad(f"step {_short(dream.get('step'))} is not a whole number of steps")
    if s is None:
        return state
    params = _params(dream.get("latents"), bad, "latents")
    b, count = params["z"].shape[0], len(s.seeds)
    if b != count:
        raise bad(f"it holds {b} picture(s), the run {count}")
    needed = _latents_needed(s)
    if needed is not None:
        check_fits(state, needed, file, s.biggan_name)
    ema = dream.get("ema")
    if not isinstance(ema, dict) or not _number(ema.get("decay")) or not _whole(ema.get("steps")):
        raise bad("its moving average has no decay and steps")
    _same(_params(ema.get("biased"), bad, "moving average"), params, bad, "moving average")
    _check_optimizer(dream.get("optimizer"), params, bad)
    generators = dream.get("generators")
    if not isinstance(generators, list) or len(generators) != b:
        raise bad(f"it needs one random generator state per picture ({b})")
    for g in generators:
        if not isinstance(g, torch.Tensor) or g.dtype != torch.uint8 or g.dim() != 1:
            raise bad("a random generator state is not a byte tensor")
    patience = state.get("patience")
    if patience is not None and not (
        isinstance(patience, dict)
        and (patience.get("best") is None or _number(patience.get("best")))
        and _whole(patience.get("since", 0))
    ):
        raise bad("its patience is not {best, since}")
    return state


def check_fits(state: dict, latents: int, file: Path, biggan: str) -> None:
    """The checkpoint's latents fit a BigGAN that takes ``latents`` inputs (one line naming both otherwise)."""
    have = state["dream"]["latents"]["z"].shape[1]
    if have != latents:
        made = next((f"biggan-deep-{size}" for size in SIZES if latents_of_size(size) == have), "another BigGAN")
        raise UserError(
            f"{file}: made with {made} ({have} latents), but this run's {biggan} takes {latents}; the file is not "
            "this run's checkpoint"
        )


def _params(found: Any, bad: _Bad, what: str) -> dict[str, torch.Tensor]:
    """``z`` (B, L, 128) and ``logits`` (B, L, 1000), floating point, of one B and one L."""
    if not isinstance(found, dict):
        raise bad(f"its {what} are missing")
    z, logits = found.get("z"), found.get("logits")
    _check_latent_tensors(z, logits, bad, f"{what}' ", pictures=True)
    return {"z": z, "logits": logits}


def _check_latent_tensors(z: Any, logits: Any, bad: _Bad, whose: str, *, pictures: bool) -> None:
    """``z`` (…, L, 128) and ``logits`` (…, L, 1000), floating point, with (B, L, ·) when ``pictures``."""
    dims, lead = (3, "pictures, latents") if pictures else (2, "latents")
    for name, t, width in (("z", z, Z_DIM), ("logits", logits, NUM_CLASSES)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() != dims or t.shape[-1] != width:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise bad(f"its {whose}{name} is {shape}, not ({lead}, {width}) numbers")
    if z.shape[:-1] != logits.shape[:-1] or not 1 <= z.shape[-2] <= _MOST_LATENTS or z.shape[0] < 1:
        raise bad(f"its {whose}z {tuple(z.shape)} and logits {tuple(logits.shape)} do not match")


def _same(found: dict, want: dict, bad: _Bad, what: str) -> None:
    for name, t in want.items():
        if found[name].shape != t.shape:
            raise bad(f"its {what}' {name} is {tuple(found[name].shape)}, its latents' {tuple(t.shape)}")


def _check_optimizer(opt: Any, params: dict[str, torch.Tensor], bad: _Bad) -> None:
    """Adam's state for the two parameters (z, logits): each moment shaped as its parameter."""
    if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list)):
        raise bad("its optimiser state is missing")
    groups = opt["param_groups"]
    if len(groups) != 1 or not isinstance(groups[0], dict) or sorted(groups[0].get("params", [])) != [0, 1]:
        raise bad("its optimiser state is not for this dream's two parameters")
    shapes = [params["z"].shape, params["logits"].shape]
    for key, moments in opt["state"].items():
        if key not in (0, 1) or not isinstance(moments, dict):
            raise bad("its optimiser state is not for this dream's two parameters")
        for name, t in moments.items():
            if not isinstance(t, torch.Tensor) or (t.dim() and t.shape != shapes[key]):
                raise bad(f"its optimiser's {name} does not fit the latents")


# ---------------------------------------------------------------------------------------------- latents.pt
def check_latents(data: Any, file: Path) -> dict:
    """A ``latents.pt`` as :meth:`textsleep.runs.RunRecord.latents` writes it: ``z`` (L, 128), ``logits`` (L, 1000)
    and how to render them (``truncation``, ``max_classes``, ``class_temperature``, ``biggan``, ``seed``, ``step``).
    """
    bad = _Bad(file, "is it a textsleep run folder's?")
    if not isinstance(data, dict):
        raise bad(f"holds a {type(data).__name__}, not latents and class logits")
    z, logits = data.get("z"), data.get("logits")
    _check_latent_tensors(z, logits, bad, "", pictures=False)
    if not torch.isfinite(z).all() or not torch.isfinite(logits).all():
        raise bad("its latents are not all finite numbers")
    rules = {
        "truncation": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
        "max_classes": (lambda v: _whole(v, 1, NUM_CLASSES), f"a whole number from 1 to {NUM_CLASSES}"),
        "class_temperature": (lambda v: _number(v) and v > 0, "a number > 0"),
        "biggan": (lambda v: isinstance(v, str), "text"),
        "seed": (lambda v: _whole(v), "a whole number"),
        "step": (lambda v: _whole(v), "a whole number"),
    }
    for key, (ok, must) in rules.items():
        if data.get(key) is not None and not ok(data[key]):
            raise bad(f"its {key} {_short(data[key])} must be {must}")
    return data
