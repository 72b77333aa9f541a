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

A ``recipe`` (:mod:`textsleep.recipes`) fills in a published method's
choices for every field not given, whichever way the settings are made.

:data:`RESUMABLE` and :data:`RUN_ONLY` are derived from it.  The other commands'
options are settings dataclasses of the same kind (:class:`~textsleep.command_settings.InvertSettings`,
:class:`~textsleep.command_settings.BenchSettings`, the explorer's in :mod:`textsleep.explore`),
whose shared fields are :func:`like` the dream's; :mod:`textsleep.options`
makes command-line options of any of them.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import MISSING, dataclass, field
from typing import Any

from .errors import SettingError, UserError
from .imagenet import NUM_CLASSES
from .limits import LIMITS, check_limit, check_types, prompt_counts
from .prompts import story_parts
from .recipes import RECIPES, describe, recipe_settings

__all__ = [
    "DreamSettings",
    "ClipSpec",
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
    "PREFERENCE_MODELS",
]

SIZES = (128, 256, 512)
DEVICES = ("auto", "cpu", "cuda", "mps")
AUGMENTS = ("none", "light", "strong", "fusedream")
KEEP = ("all", "best")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
UPSCALES = (2, 4)
# the judges trained on people's choices (textsleep.judges.JUDGES, but for clip): they may guide a dream too
PREFERENCE_MODELS = ("hps-v2.1", "hps-v2", "aesthetic", "pickscore")
BENCH_GUIDES = ("hps-v2.1", "hps-v2", "aesthetic")  # the preference models bench builds at full size (no extra)
MAX_BASES = 32
MAX_LATENT_NOISE = 1.0


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


def _recipe_fills_in(cls):
    """Give a settings dataclass's constructor recipes: ``recipe=NAME`` fills in every field the caller did not give.

    (So an option given beside a recipe wins, however the settings are made; a copy with every field given, as
    ``replace`` and ``from_dict`` of a saved record make, takes nothing from the recipe.)
    """
    init, names = cls.__init__, [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(init)
    def __init__(self, *args, **given):
        given = {**dict(zip(names, args)), **given}
        if given.get("recipe") is not None:
            given = {**recipe_settings(given["recipe"]), **given}
        init(self, **given)

    cls.__init__ = __init__
    return cls


@_recipe_fills_in
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
    # --- a published method's choices --------------------------------------------------------------------------------
    recipe: str | None = knob(
        None,
        "A published method's settings; every option given beside it wins. "
        + "; ".join(f"{name}: {describe(name)}" for name in RECIPES)
        + ".",
        metavar="NAME",
    )
    # --- how long and how hard ----------------------------------------------------------------------------------------
    iterations: int = knob(1000, "Optimisation steps.", short="-i", resume=True)
    patience: int | None = knob(None, "Stop when the best CLIP score has not improved for N steps.", resume=True)
    lr: float = knob(0.07, "Learning rate.")
    cutouts: int = knob(128, "Random crops CLIP sees per step.")
    augment: str = knob(
        "light",
        "Cutout augmentations: none, light, strong, or fusedream (FuseDream's, on copies of the whole picture).",
    )
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
    bases: int = knob(
        1, "FuseDream's latents: each a learnt per-coordinate softmax mix of K bases (the best K start candidates)."
    )
    latent_noise: float = knob(0.0, "Gaussian noise (sigma) added to the latents each step (FuseDream: 0.01).")
    # --- where the picture starts -------------------------------------------------------------------------------------
    init_candidates: int = knob(1, "Render K random starts and begin from the one CLIP likes best.")
    init_judge: str | None = knob(
        None,
        f"Rank those K starts with a preference judge instead ({', '.join(PREFERENCE_MODELS)}; NAME=PATH for a local "
        "copy).",
        metavar="NAME[=PATH]",
    )
    init_class: str | None = knob(None, "Start from this ImageNet class (index, name or '971) bubble').")
    init: str | None = knob(None, "Start from a finished run folder's latents.")
    num_images: int = knob(1, "Pictures dreamt at once (seeds seed, seed+1, …), each in its own sub-folder.")
    keep: str = knob("all", "With several pictures: keep all, or only the best.", resume=True)
    # --- the judges ---------------------------------------------------------------------------------------------------
    clip_model: tuple[str, ...] = knob(
        ("ViT-B-32",),
        "open_clip model name or JSON config path, or a preference model (hps-v2.1, hps-v2, aesthetic, pickscore; "
        "NAME=PATH for a local copy); repeat for an ensemble, NAME:weight to weight one (0: left out).",
    )
    clip_pretrained: tuple[str, ...] = knob(
        ("openai",),
        "open_clip pretrained tag or checkpoint file (once for all open_clip models, or once per open_clip model).",
    )
    # --- where and how it runs ----------------------------------------------------------------------------------------
    device: str = knob("auto", "auto, cpu, cuda, cuda:N or mps.", resume=True, identity=False)
    precision: str = knob("auto", "auto, fp32, bf16 or fp16.")
    compile: bool = knob(
        False,
        "Run the dream step through torch.compile (with CUDA graphs on a GPU): the first step compiles; same picture.",
        resume=True,
        identity=False,
    )
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
    upscaler: str | None = knob(
        None,
        "RealESRGAN_x4plus, RealESRGAN_x2plus or a local .pth for --upscale (default: the one for its scale).",
        resume=True,
        identity=False,
        show=False,
        metavar="NAME|PATH",
    )

    def __post_init__(self) -> None:
        check_types(self)  # (before anything uses the values: a record read from a file may hold anything)
        self.images = _tuple(self.images)
        self.negatives = _tuple(self.negatives)
        self.clip_model = _tuple(self.clip_model)
        self.clip_pretrained = _tuple(self.clip_pretrained)
        _check(self)
        self.clips()  # validates the ensemble syntax

    def clips(self) -> list["ClipSpec"]:
        """The models to optimise against, with their weights and loss weights.

        An open_clip model's ``pretrained`` is its tag or file; a preference model's (``hps-v2.1``) is the local copy
        given as ``NAME=PATH``, or ``""`` for its published weights.
        """
        pretrained, parsed = self.clip_pretrained, [_split_weight(self, item) for item in self.clip_model]
        own = sum(_preference(name) is None for name, _ in parsed)  # the models --clip-pretrained is for
        if len(pretrained) not in (1, own):
            raise _bad(
                self,
                "clip_pretrained",
                f"given {len(pretrained)} times for {own} open_clip models; give it once (for all) or once per "
                "open_clip model",
            )
        specs, i = [], 0
        for name, weight in parsed:
            preference = _preference(name)
            if preference is not None:
                spec = ClipSpec(*preference, weight)
            else:
                spec, i = ClipSpec(name, pretrained[i if len(pretrained) > 1 else 0], weight), i + 1
            if any(other.name == spec.name for other in specs):
                raise _bad(self, "clip_model", "given twice; each model may appear once", spec.name)
            specs.append(spec)
        if not any(spec.weight > 0 for spec in specs):
            raise _bad(self, "clip_model", "every weight is 0; give at least one model a weight > 0")
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
        if not isinstance(data, dict):
            raise UserError(f"settings must be a mapping of names to values, not a {type(data).__name__}")
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


def _split_weight(s: Any, item: str, field: str = "clip_model") -> tuple[str, float]:
    name, sep, raw = item.rpartition(":")
    if not sep or len(name) == 1:  # no weight (or a Windows drive letter)
        return item.strip(), 1.0
    try:
        weight = float(raw)
    except ValueError:
        if _preference(name) is not None and "=" in name:  # a local copy's path with a drive letter, no weight
            return item.strip(), 1.0
        raise _bad(s, field, f"weight {raw!r} is not a number (write NAME:0.5)", item) from None
    if not weight >= 0:
        raise _bad(s, field, "weight must be >= 0 (0 leaves the model out)", item)
    return name.strip(), weight


def _preference(text: str) -> tuple[str, str] | None:
    """``"hps-v2.1"`` → ``("hps-v2.1", "")``, ``"HPS-v2.1=PATH"`` → ``("hps-v2.1", PATH)``; None for other names."""
    name, sep, path = text.partition("=")
    name = name.strip().lower()
    if name not in PREFERENCE_MODELS:
        return None
    if sep and not path.strip():
        raise UserError(f"{text!r}: give the local copy's path after '=' (or no '=' for the published weights)")
    return name, path.strip()


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _flag(name: str) -> str:
    f = DreamSettings.__dataclass_fields__[name]
    return f.metadata.get("flag") or "--" + name.replace("_", "-")


def _check_sizes(s: DreamSettings) -> None:
    """The upper bounds of LIMITS (checked before anything is allocated)."""
    for name in ("iterations", "patience", "change_every", "save_every"):
        check_limit(getattr(s, name), "iterations", _flag(name))
    for name in ("cutouts", "cutout_batch"):
        check_limit(getattr(s, name), "cutouts", _flag(name))
    check_limit(s.num_images, "num_images", _flag("num_images"))
    check_limit(s.init_candidates, "init_candidates", _flag("init_candidates"))
    most = LIMITS["prompt_chars"]
    for flag, texts in (("text", [s.text]), ("--negative", s.negatives), ("--image", s.images)):
        for text in texts:
            if len(text) > most:
                raise UserError(f"{flag} {text[:40]!r}… is {len(text)} characters long: at most {most} allowed")
    counts = prompt_counts(s.text, s.negatives, s.images)
    most = LIMITS["prompts"]
    if len(counts) > most:
        raise UserError(f"story {s.text[:40]!r}…: {len(counts)} parts, at most {most} allowed")
    if max(counts) > most:
        raise UserError(f"prompt {s.text[:40]!r}…: {max(counts)} prompts in one part, at most {most} allowed")


def _check(s: DreamSettings) -> None:
    def need(ok: bool, name: str, reason: str) -> None:
        if not ok:
            raise _bad(s, name, reason)

    _check_sizes(s)
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
    need(_whole(s.bases, 1) and s.bases <= MAX_BASES, "bases", f"must be a whole number from 1 to {MAX_BASES}")
    need(
        isinstance(s.latent_noise, (int, float)) and 0 <= s.latent_noise <= MAX_LATENT_NOISE,
        "latent_noise",
        f"must be from 0 to {MAX_LATENT_NOISE}",
    )
    need(
        s.bases == 1 or not s.max_classes,
        "bases",
        "mixes class vectors, which --max-classes' top-k cannot hold; use one or the other",
    )
    need(
        s.bases == 1 or s.init_candidates == 1 or s.init_candidates >= s.bases,
        "bases",
        f"takes the best {s.bases} start candidates: give --init-candidates >= {s.bases} (or 1 for random bases)",
    )
    need(
        s.init_judge is None or (_preference(s.init_judge) is not None and bool(s.init_judge.strip())),
        "init_judge",
        f"not a preference judge; known are {', '.join(PREFERENCE_MODELS)} (NAME=PATH for a local copy)",
    )
    need(
        s.init_judge is None or s.init_candidates > 1,
        "init_judge",
        "ranks start candidates: give --init-candidates K > 1",
    )
    need(s.recipe is None or s.recipe in RECIPES, "recipe", f"not a recipe; known are {', '.join(RECIPES)}")
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
    need(s.upscaler is None or s.upscale, "upscaler", "an upscaler without upscaling: ask for 2x or 4x upscaling too")


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
