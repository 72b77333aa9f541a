"""Every knob of a dream, with its default, its help and its rules, in one place.

:class:`DreamSettings` is the single source of truth: the Python API, the
command line, prompt-file lines and the web page all build one of these, and a
run record stores it whole so the picture can be made again.  Each field's
metadata says, once:

- ``help``: the text the command line and the web page show;
- ``flag``: its command-line name (``--image`` for ``images``), and ``short``;
- ``resume``: whether it may change when a run is resumed (the rest must stay
  as they were for the picture to continue);
- ``identity``: whether it shapes the picture, so is part of a batch job's
  identity (``device`` or ``save_every`` do not).

:data:`RESUMABLE`, :data:`RUN_ONLY` and :func:`options` are derived from it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError
from .prompts import story_parts

__all__ = [
    "DreamSettings",
    "ClipSpec",
    "Option",
    "options",
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


def _knob(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    short: str | None = None,
    resume: bool = False,
    identity: bool = True,
    show: str | None = None,
    cli: bool = True,
):
    """A settings field with its metadata (see the module docstring)."""
    meta = {
        "help": help,
        "flag": flag,
        "short": short,
        "resume": resume,
        "identity": identity,
        "show": show,
        "cli": cli,
    }
    return field(default=default, metadata=meta)


@dataclass
class DreamSettings:
    # --- what to dream ------------------------------------------------------------------------------------------------
    text: str = _knob(
        "",
        "What to dream: 'a|b' for several prompts, 'text:2' to weight one, 'text:-1' to push away; 'a ^ b' for a "
        "story.",
        cli=False,
    )
    images: tuple[str, ...] = _knob((), "Image prompt PATH[:weight] (repeatable).", flag="--image")
    negatives: tuple[str, ...] = _knob((), "Text to move away from (repeatable).", flag="--negative")
    change_every: int | None = _knob(None, "With a story ('a ^ b ^ c'): move on to the next part every N steps.")
    # --- how long and how hard ----------------------------------------------------------------------------------------
    iterations: int = _knob(1000, "Optimisation steps.", short="-i", resume=True)
    patience: int | None = _knob(None, "Stop when the best CLIP score has not improved for N steps.", resume=True)
    lr: float = _knob(0.07, "Learning rate.")
    cutouts: int = _knob(128, "Random crops CLIP sees per step.")
    augment: str = _knob("light", "Cutout augmentations: none, light or strong.")
    seed: int | None = _knob(None, "Random seed (random when omitted; always recorded).", show="random")
    # --- the generator ------------------------------------------------------------------------------------------------
    size: int = _knob(512, "BigGAN-deep model: 128, 256 or 512.")
    biggan: str | None = _knob(
        None, "BigGAN shortcut name, folder (pytorch_model.bin + config.json) or URL of one.", show="biggan-deep-SIZE"
    )
    truncation: float = _knob(1.0, "BigGAN truncation, 0 < t <= 1; latents stay within ±2t.")
    max_classes: int | None = _knob(None, "Keep only the top-k ImageNet classes (differentiable top-k).")
    class_temperature: float = _knob(2.0, "Temperature of that top-k.")
    ema_decay: float = _knob(0.99, "Moving-average decay of the parameters (saved images use the average).")
    # --- where the picture starts -------------------------------------------------------------------------------------
    init_candidates: int = _knob(1, "Render K random starts and begin from the one CLIP likes best.")
    init_class: str | None = _knob(None, "Start from this ImageNet class (index, name or '971) bubble').")
    init: str | None = _knob(None, "Start from a finished run folder's latents.")
    num_images: int = _knob(1, "Pictures dreamt at once (seeds seed, seed+1, …), each in its own sub-folder.")
    keep: str = _knob("all", "With several pictures: keep all, or only the best.", resume=True)
    # --- the judges ---------------------------------------------------------------------------------------------------
    clip_model: tuple[str, ...] = _knob(
        ("ViT-B-32",), "open_clip model name or JSON config path; repeat for an ensemble, NAME:weight to weight one."
    )
    clip_pretrained: tuple[str, ...] = _knob(
        ("openai",), "open_clip pretrained tag or checkpoint file (once for all models, or once per model)."
    )
    # --- where and how it runs ----------------------------------------------------------------------------------------
    device: str = _knob("auto", "auto, cpu, cuda, cuda:N or mps.", resume=True, identity=False)
    precision: str = _knob("auto", "auto, fp32, bf16 or fp16.")
    compile: bool = _knob(
        False,
        "Run the dream step through torch.compile (with CUDA graphs on a GPU): the first step compiles; same picture.",
        resume=True,
        identity=False,
    )
    cutout_batch: int = _knob(
        32, "Cutouts CLIP encodes at once (caps memory; same picture).", resume=True, identity=False
    )
    # --- what is written ----------------------------------------------------------------------------------------------
    out: str = _knob("outputs", "Folder for run folders.", short="-o", resume=True, identity=False)
    save_every: int = _knob(100, "Save picture and checkpoint every N steps.", resume=True, identity=False)
    save_progress: bool = _knob(False, "Keep every saved picture in progress/.", resume=True, identity=False)
    video: bool = _knob(False, "Write progress.mp4 of the saved pictures at the end.", resume=True, identity=False)
    upscale: int | None = _knob(
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
            raise UserError(
                f"--clip-pretrained given {len(pretrained)} times for {len(self.clip_model)} --clip-model; give it "
                "once (for all) or once per model"
            )
        specs = []
        for i, item in enumerate(self.clip_model):
            name, weight = _split_weight(item)
            if any(spec.name == name for spec in specs):
                raise UserError(f"--clip-model {name!r} is given twice; each model may appear once")
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


@dataclass(frozen=True)
class Option:
    """One DreamSettings field as a command-line option."""

    name: str  # the field
    flags: tuple[str, ...]  # e.g. ("--iterations", "-i")
    kind: type  # int, float, str or bool (the value type; several values when `multiple`)
    multiple: bool  # repeatable, collecting a tuple
    default: Any
    help: str
    show: str  # the default as help shows it

    @property
    def flag(self) -> str:
        return self.flags[0]


def options() -> list[Option]:
    """Every field that has a command-line option, in the dataclass's order."""
    hints = typing.get_type_hints(DreamSettings)
    found = []
    for f in dataclasses.fields(DreamSettings):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        multiple = typing.get_origin(hint) is tuple
        kind = args[0] if args else hint
        flags = (meta.get("flag") or "--" + f.name.replace("_", "-"),) + ((meta["short"],) if meta.get("short") else ())
        default = f.default
        show = meta.get("show") or (", ".join(default) if isinstance(default, tuple) else str(default))
        found.append(Option(f.name, flags, kind, multiple, default, meta["help"], show))
    return found


def _derived(key: str, want: bool) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(DreamSettings) if bool(f.metadata.get(key)) == want)


RESUMABLE = _derived("resume", True)  # what may change when a run is resumed
RUN_ONLY = _derived("identity", False)  # what changes where or how a run goes, not its picture


def _tuple(value) -> tuple:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _split_weight(item: str) -> tuple[str, float]:
    name, sep, raw = item.rpartition(":")
    if not sep or len(name) == 1:  # no weight (or a Windows drive letter)
        return item.strip(), 1.0
    try:
        weight = float(raw)
    except ValueError:
        raise UserError(f"--clip-model {item!r}: weight {raw!r} is not a number (write NAME:0.5)") from None
    if not weight > 0:
        raise UserError(f"--clip-model {item!r}: weight must be > 0")
    return name.strip(), weight


def _check(s: DreamSettings) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UserError(message)

    def whole(value: Any, least: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= least

    need(whole(s.iterations, 1), f"--iterations {s.iterations!r}: must be a whole number >= 1")
    need(whole(s.cutouts, 1), f"--cutouts {s.cutouts!r}: must be a whole number >= 1")
    need(whole(s.cutout_batch, 1), f"--cutout-batch {s.cutout_batch!r}: must be a whole number >= 1")
    need(s.lr > 0, f"--lr {s.lr!r}: must be > 0")
    need(s.size in SIZES, f"--size {s.size!r}: allowed sizes are {', '.join(map(str, SIZES))}")
    need(0 < s.truncation <= 1, f"--truncation {s.truncation!r}: must be in (0, 1]")
    need(
        s.max_classes is None or 1 <= s.max_classes <= 1000,
        f"--max-classes {s.max_classes!r}: must be between 1 and 1000",
    )
    need(s.class_temperature > 0, f"--class-temperature {s.class_temperature!r}: must be > 0")
    need(0 <= s.ema_decay < 1, f"--ema-decay {s.ema_decay!r}: must be in [0, 1)")
    need(whole(s.save_every, 1), f"--save-every {s.save_every!r}: must be a whole number >= 1")
    need(
        s.device.split(":")[0] in DEVICES,
        f"--device {s.device!r}: allowed are {', '.join(DEVICES)} (cuda:N also works)",
    )
    need(s.precision in PRECISIONS, f"--precision {s.precision!r}: allowed are {', '.join(PRECISIONS)}")
    need(s.augment in AUGMENTS, f"--augment {s.augment!r}: allowed are {', '.join(AUGMENTS)}")
    need(s.seed is None or (whole(s.seed, 0) and s.seed < 2**63), f"--seed {s.seed!r}: must be a whole number >= 0")
    need(bool(s.clip_model) and all(m.strip() for m in s.clip_model), "--clip-model: must not be empty")
    need(bool(s.clip_pretrained), "--clip-pretrained: must not be empty")
    need(whole(s.init_candidates, 1), f"--init-candidates {s.init_candidates!r}: must be a whole number >= 1")
    need(whole(s.num_images, 1), f"--num-images {s.num_images!r}: must be a whole number >= 1")
    need(s.keep in KEEP, f"--keep {s.keep!r}: allowed are {', '.join(KEEP)}")
    need(
        s.patience is None or whole(s.patience, 1),
        f"--patience {s.patience!r}: must be a whole number >= 1 (steps without a better score)",
    )
    need(
        s.change_every is None or whole(s.change_every, 1),
        f"--change-every {s.change_every!r}: must be a whole number >= 1 (steps per part of a story)",
    )
    story = len(story_parts(s.text)) > 1
    need(
        not story or s.change_every is not None,
        f"story {s.text!r}: give --change-every N, the steps spent on each part",
    )
    need(
        s.upscale is None or s.upscale in UPSCALES,
        f"--upscale {s.upscale!r}: allowed are {', '.join(map(str, UPSCALES))}",
    )
