"""Every knob of a dream, with its default, its help and its rules, in one place.

:class:`DreamSettings` is the single source of truth: the Python API, the
command line, prompt-file lines and the web page all build one of these, and a
run record stores it whole so the picture can be made again.  Each field's
metadata (:func:`knob`) says, once:

- ``help``: the text the command line and the web page show;
- ``flag``: its command-line name (``--image`` for ``images``), and ``short``;
- ``resume``: whether it may change when a run is resumed (the rest must stay
  as they were for the picture to continue);
- ``identity``: whether it shapes the picture, so is part of a batch job's
  identity (``device`` or ``save_every`` do not).

:data:`RESUMABLE` and :data:`RUN_ONLY` are derived from it.  The other commands'
options are settings dataclasses of the same kind (:class:`InvertSettings`,
:class:`BenchSettings` here, the explorer's in :mod:`textsleep.explore`),
whose shared fields are :func:`like` the dream's; :mod:`textsleep.options`
makes command-line options of any of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field
from typing import Any

from .errors import SettingError, UserError
from .imagenet import NUM_CLASSES
from .prompts import story_parts

__all__ = [
    "DreamSettings",
    "ClipSpec",
    "InvertSettings",
    "BenchSettings",
    "knob",
    "like",
    "flag_of",
    "RESUMABLE",
    "RUN_ONLY",
    "SIZES",
    "DEVICES",
    "AUGMENTS",
    "PRECISIONS",
    "KEEP",
    "UPSCALES",
]

SIZES = (128, 256, 512)
DEVICES = ("auto", "cpu", "cuda", "mps")
AUGMENTS = ("none", "light", "strong")
KEEP = ("all", "best")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
UPSCALES = (2, 4)


def knob(
    default: Any = MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    short: str | None = None,
    resume: bool = False,
    identity: bool = True,
    show: str | bool | None = None,
    cli: bool = True,
    metavar: str | None = None,
    hidden: bool = False,
):
    """A settings field with its metadata (see the module docstring).

    ``show`` is the default as help shows it, when the value itself would not
    say it (``"random"``), or False to show none; ``metavar`` names the value
    in help; ``hidden`` leaves the option out of help; ``cli=False`` leaves the
    field off the command line.  A field without a default is a required option.
    """
    meta = {
        "help": help,
        "flag": flag,
        "short": short,
        "resume": resume,
        "identity": identity,
        "show": show,
        "cli": cli,
        "metavar": metavar,
        "hidden": hidden,
    }
    return field(default=default, metadata=meta)


def flag_of(cls: type, name: str) -> str:
    """The command-line option of a settings field: its ``flag``, else ``--name-with-dashes``."""
    meta = next((f.metadata for f in dataclasses.fields(cls) if f.name == name), {})
    return meta.get("flag") or "--" + name.replace("_", "-")


def _bad(settings: Any, name: str, reason: str, value: Any = MISSING) -> SettingError:
    """The error for a field of ``settings`` (a dataclass) whose value is not allowed."""
    value = getattr(settings, name) if value is MISSING else value
    return SettingError(name, value, reason, flag=flag_of(type(settings), name))


def like(name: str, default: Any = MISSING, *, of: type | None = None, **changes: Any):
    """A field for another command's settings that is the field ``name`` of ``of`` (DreamSettings by default): its
    help and flag, its default unless ``default`` is given, any metadata in ``changes`` replaced.
    """
    f = next(f for f in dataclasses.fields(of or DreamSettings) if f.name == name)
    meta = {**f.metadata, "resume": False, "identity": True, **changes}
    return knob(f.default if default is MISSING else default, **meta)


@dataclass
class DreamSettings:
    # --- what to dream ------------------------------------------------------------------------------------------------
    text: str = knob(
        "",
        "What to dream: 'a|b' for several prompts, 'text:2' to weight one, 'text:-1' to push away; 'a ^ b' for a "
        "story.",
        cli=False,
    )
    images: tuple[str, ...] = knob((), "Image prompt PATH[:weight] (repeatable).", flag="--image")
    negatives: tuple[str, ...] = knob((), "Text to move away from (repeatable).", flag="--negative")
    change_every: int | None = knob(None, "With a story ('a ^ b ^ c'): move on to the next part every N steps.")
    # --- how long and how hard ----------------------------------------------------------------------------------------
    iterations: int = knob(1000, "Optimisation steps.", short="-i", resume=True)
    patience: int | None = knob(None, "Stop when the best CLIP score has not improved for N steps.", resume=True)
    lr: float = knob(0.07, "Learning rate.")
    cutouts: int = knob(128, "Random crops CLIP sees per step.")
    augment: str = knob("light", "Cutout augmentations: none, light or strong.")
    seed: int | None = knob(None, "Random seed (random when omitted; always recorded).", show="random")
    # --- the generator ------------------------------------------------------------------------------------------------
    size: int = knob(512, "BigGAN-deep model: 128, 256 or 512.")
    biggan: str | None = knob(
        None, "BigGAN shortcut name, folder (pytorch_model.bin + config.json) or URL of one.", show="biggan-deep-SIZE"
    )
    truncation: float = knob(1.0, "BigGAN truncation, 0 < t <= 1; latents stay within ±2t.")
    max_classes: int | None = knob(None, "Keep only the top-k ImageNet classes (differentiable top-k).")
    class_temperature: float = knob(2.0, "Temperature of that top-k.")
    ema_decay: float = knob(0.99, "Moving-average decay of the parameters (saved images use the average).")
    # --- where the picture starts -------------------------------------------------------------------------------------
    init_candidates: int = knob(1, "Render K random starts and begin from the one CLIP likes best.")
    init_class: str | None = knob(None, "Start from this ImageNet class (index, name or '971) bubble').")
    init: str | None = knob(None, "Start from a finished run folder's latents.")
    num_images: int = knob(1, "Pictures dreamt at once (seeds seed, seed+1, …), each in its own sub-folder.")
    keep: str = knob("all", "With several pictures: keep all, or only the best.", resume=True)
    # --- the judges ---------------------------------------------------------------------------------------------------
    clip_model: tuple[str, ...] = knob(
        ("ViT-B-32",), "open_clip model name or JSON config path; repeat for an ensemble, NAME:weight to weight one."
    )
    clip_pretrained: tuple[str, ...] = knob(
        ("openai",), "open_clip pretrained tag or checkpoint file (once for all models, or once per model)."
    )
    # --- where and how it runs ----------------------------------------------------------------------------------------
    device: str = knob("auto", "auto, cpu, cuda, cuda:N or mps.", resume=True, identity=False)
    precision: str = knob("auto", "auto, fp32, bf16 or fp16.")
    cutout_batch: int = knob(
        32, "Cutouts CLIP encodes at once (caps memory; same picture).", resume=True, identity=False
    )
    # --- what is written ----------------------------------------------------------------------------------------------
    out: str = knob("outputs", "Folder for run folders.", short="-o", resume=True, identity=False)
    save_every: int = knob(100, "Save picture and checkpoint every N steps.", resume=True, identity=False)
    save_progress: bool = knob(False, "Keep every saved picture in progress/.", resume=True, identity=False)
    video: bool = knob(False, "Write progress.mp4 of the saved pictures at the end.", resume=True, identity=False)
    upscale: int | None = knob(
        None,
        "Also write image_x2.png or image_x4.png, upscaled, beside image.png at the end.",
        resume=True,
        identity=False,
    )

    def __post_init__(self) -> None:
        self.images = _tuple(self.images)
        self.negatives = _tuple(self.negatives)
        self.clip_model = _tuple(self.clip_model)
        self.clip_pretrained = _tuple(self.clip_pretrained)
        _check(self)
        self.clips()  # validates the ensemble syntax

    def clips(self) -> list["ClipSpec"]:
        """The CLIP models to optimise against, with their pretrained weights and loss weights."""
        pretrained = self.clip_pretrained
        if len(pretrained) not in (1, len(self.clip_model)):
            raise _bad(
                self,
                "clip_pretrained",
                f"given {len(pretrained)} times for {len(self.clip_model)} CLIP models; give it once (for all) or "
                "once per model",
            )
        specs = []
        for i, item in enumerate(self.clip_model):
            name, weight = _split_weight(self, item)
            if any(spec.name == name for spec in specs):
                raise _bad(self, "clip_model", "given twice; each model may appear once", name)
            specs.append(ClipSpec(name, pretrained[i if len(pretrained) > 1 else 0], weight))
        return specs

    @property
    def biggan_name(self) -> str:
        """The BigGAN to load: an explicit `biggan`, else the shortcut for `size`."""
        return self.biggan or f"biggan-deep-{self.size}"

    @property
    def seeds(self) -> list[int]:
        """One seed per picture: seed, seed + 1, …"""
        if self.seed is None:
            raise ValueError("no seed chosen yet")
        return [self.seed + i for i in range(self.num_images)]

    def replace(self, **changes: Any) -> "DreamSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DreamSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**data)

    def resumed_with(self, changes: dict[str, Any]) -> "DreamSettings":
        """These settings with ``changes`` applied, where a resumed run may change them; an error names the others."""
        saved = self.to_dict()
        given = DreamSettings.from_dict({**saved, **changes}).to_dict()  # (normalised: lists, checked values)
        bad = sorted(k for k in changes if k not in RESUMABLE and given[k] != saved[k])
        if bad:
            raise UserError(
                f"--resume: {', '.join(bad)} cannot change when resuming (only {', '.join(sorted(RESUMABLE))} can)"
            )
        return DreamSettings.from_dict({**saved, **{k: given[k] for k in changes}})


@dataclass(frozen=True)
class ClipSpec:
    name: str
    pretrained: str
    weight: float = 1.0


def _derived(key: str, want: bool) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(DreamSettings) if bool(f.metadata.get(key)) == want)


RESUMABLE = _derived("resume", True)  # what may change when a run is resumed
RUN_ONLY = _derived("identity", False)  # what changes where or how a run goes, not its picture


def _tuple(value) -> tuple:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _split_weight(s: DreamSettings, item: str) -> tuple[str, float]:
    name, sep, raw = item.rpartition(":")
    if not sep or len(name) == 1:  # no weight (or a Windows drive letter)
        return item.strip(), 1.0
    try:
        weight = float(raw)
    except ValueError:
        raise _bad(s, "clip_model", f"weight {raw!r} is not a number (write NAME:0.5)", item) from None
    if not weight > 0:
        raise _bad(s, "clip_model", "weight must be > 0", item)
    return name.strip(), weight


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check(s: DreamSettings) -> None:
    def need(ok: bool, name: str, reason: str) -> None:
        if not ok:
            raise _bad(s, name, reason)

    need(_whole(s.iterations, 1), "iterations", "must be a whole number >= 1")
    need(_whole(s.cutouts, 1), "cutouts", "must be a whole number >= 1")
    need(_whole(s.cutout_batch, 1), "cutout_batch", "must be a whole number >= 1")
    need(s.lr > 0, "lr", "must be > 0")
    need(s.size in SIZES, "size", f"allowed sizes are {', '.join(map(str, SIZES))}")
    need(0 < s.truncation <= 1, "truncation", "must be in (0, 1]")
    need(
        s.max_classes is None or 1 <= s.max_classes <= NUM_CLASSES,
        "max_classes",
        f"must be between 1 and {NUM_CLASSES}",
    )
    need(s.class_temperature > 0, "class_temperature", "must be > 0")
    need(0 <= s.ema_decay < 1, "ema_decay", "must be in [0, 1)")
    need(_whole(s.save_every, 1), "save_every", "must be a whole number >= 1")
    need(s.device.split(":")[0] in DEVICES, "device", f"allowed are {', '.join(DEVICES)} (cuda:N also works)")
    need(s.precision in PRECISIONS, "precision", f"allowed are {', '.join(PRECISIONS)}")
    need(s.augment in AUGMENTS, "augment", f"allowed are {', '.join(AUGMENTS)}")
    need(s.seed is None or (_whole(s.seed, 0) and s.seed < 2**63), "seed", "must be a whole number >= 0")
    need(bool(s.clip_model) and all(m.strip() for m in s.clip_model), "clip_model", "must not be empty")
    need(bool(s.clip_pretrained), "clip_pretrained", "must not be empty")
    need(_whole(s.init_candidates, 1), "init_candidates", "must be a whole number >= 1")
    need(_whole(s.num_images, 1), "num_images", "must be a whole number >= 1")
    need(s.keep in KEEP, "keep", f"allowed are {', '.join(KEEP)}")
    need(
        s.patience is None or _whole(s.patience, 1),
        "patience",
        "must be a whole number >= 1 (steps without a better score)",
    )
    need(
        s.change_every is None or _whole(s.change_every, 1),
        "change_every",
        "must be a whole number >= 1 (steps per part of a story)",
    )
    if len(story_parts(s.text)) > 1 and s.change_every is None:
        raise SettingError(
            "change_every",
            None,
            f"story {s.text!r}: give {{option}}, the steps spent on each part",
            flag=flag_of(DreamSettings, "change_every"),
            missing=True,
        )
    need(s.upscale is None or s.upscale in UPSCALES, "upscale", f"allowed are {', '.join(map(str, UPSCALES))}")


def canonical_options(options: dict[str, Any]) -> dict[str, Any]:
    """Keyword options with big-sleep's names (``image_size``, ``num_cutouts``, ``img``, ``text_min``) as ours."""
    names = {"image_size": "size", "num_cutouts": "cutouts", "img": "images", "text_min": "negatives"}
    both = sorted(k for k in options if names.get(k) in options)
    if both:
        raise UserError(f"{both[0]} is big-sleep's name for {names[both[0]]}; give only one of them")
    return {names.get(k, k): v for k, v in options.items()}


def _check_whole(settings: Any, name: str, least: int) -> None:
    if not _whole(getattr(settings, name), least):
        raise _bad(settings, name, f"must be a whole number >= {least}")


def _check_as_dream(settings: Any) -> None:
    """Check the fields another command's settings share with DreamSettings as a dream checks them."""
    shared = {f.name for f in dataclasses.fields(DreamSettings)} & {f.name for f in dataclasses.fields(settings)}
    DreamSettings(**{name: getattr(settings, name) for name in shared})


@dataclass(frozen=True, kw_only=True)
class InvertSettings:
    """``textsleep invert``: a photo's inversion (:func:`textsleep.invert.invert_photo` takes these as keywords)."""

    iterations: int = like("iterations", 300)
    lr: float = like("lr")
    cutouts: int = like("cutouts", 32, help="Random crops CLIP compares with the photo per step.")
    pixel_weight: float = knob(500.0, "Weight of the low-resolution pixel loss against CLIP's similarity.")
    pixel_size: int = knob(32, "Side in pixels at which render and photo are compared.")
    candidates: int = knob(8, "Start from the best of K one-class starts (classes CLIP finds closest to the photo).")
    seed: int = like("seed", 0, help="Random seed of the latents (recorded with the output).", show=None)
    truncation: float = like(
        "truncation",
        help="0 < t <= 1: latents from a truncated normal (±2) scaled by t; BigGAN uses the matching statistics.",
    )
    clip_model: str = like("clip_model", "ViT-B-32", help="open_clip model name or JSON config path.")
    clip_pretrained: str = like("clip_pretrained", "openai", help="open_clip pretrained tag or checkpoint file.")
    size: int = like("size")
    biggan: str | None = like("biggan")
    device: str = like("device")
    precision: str = like("precision")
    out: str = like("out")

    def __post_init__(self) -> None:
        _check_as_dream(self)
        _check_whole(self, "pixel_size", 1)
        _check_whole(self, "candidates", 1)
        if not self.pixel_weight >= 0:
            raise _bad(self, "pixel_weight", "must be >= 0")


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """``textsleep bench``: what :func:`textsleep.bench.run_bench` times."""

    size: int = like("size", help="BigGAN-deep size: 128, 256 or 512.")
    cutouts: int = like("cutouts", 32, help="Cutouts per step.")
    steps: int = knob(10, "Timed steps (after one warm-up step).")
    batch: int = knob(1, "Pictures optimised at once.")
    device: str = like("device")
    precision: str = like("precision")
    clip_model: str = like("clip_model", "ViT-B-32-quickgelu", help="open_clip model to build with random weights.")
    augment: str = like("augment")
    cutout_batch: int = like("cutout_batch", help="Cutouts CLIP encodes at once.")
    breakdown: bool = knob(False, "Also time BigGAN, cutouts and CLIP on their own and count their GFLOP.")

    def __post_init__(self) -> None:
        _check_as_dream(self)
        _check_whole(self, "steps", 1)
        _check_whole(self, "batch", 1)
