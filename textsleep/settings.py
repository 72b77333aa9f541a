"""Every knob of a dream, with its default, in one place.

:class:`DreamSettings` is the single source of defaults: the Python API, the
command line and prompt-file lines all build one of these, and a run record
stores it whole so the picture can be made again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import UserError

__all__ = ["DreamSettings", "ClipSpec", "SIZES", "DEVICES", "AUGMENTS", "PRECISIONS", "KEEP"]

SIZES = (128, 256, 512)
DEVICES = ("auto", "cpu", "cuda", "mps")
AUGMENTS = ("none", "light", "strong")
KEEP = ("all", "best")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class DreamSettings:
    # --- what to dream -------------------------------------------------------------------------
    text: str = ""  # prompt(s): "a|b" for several, "text:weight" to weight one (negative pushes away)
    images: tuple[str, ...] = ()  # image prompts (paths), same ":weight" syntax as text
    negatives: tuple[str, ...] = ()  # texts to move away from (weight -1 unless given)
    # --- how long and how hard -----------------------------------------------------------------
    iterations: int = 1000  # optimisation steps
    lr: float = 0.07  # Adam learning rate on latents and class logits
    cutouts: int = 128  # random crops seen by CLIP per step
    augment: str = "light"  # cutout augmentations: none | light | strong (see cutouts.py)
    seed: int | None = None  # random when omitted; always recorded
    # --- the generator -------------------------------------------------------------------------
    size: int = 512  # BigGAN-deep model: 128 | 256 | 512 (ignored when `biggan` is a folder or URL)
    biggan: str | None = None  # shortcut name, local folder (pytorch_model.bin + config.json) or URL
    truncation: float = 1.0  # 0 < t <= 1; latents are kept within +-2t
    max_classes: int | None = None  # keep only the top-k classes per layer (differentiable top-k)
    class_temperature: float = 2.0  # softmax temperature of that top-k
    ema_decay: float = 0.99  # exponential moving average of the parameters; saved images use it
    # --- where the picture starts --------------------------------------------------------------
    init_candidates: int = 1  # render K random starts and begin from the one CLIP likes best
    init_class: str | None = None  # pin the starting class (index, name or "971) bubble")
    init: str | None = None  # start from a finished run folder's averaged latents
    num_images: int = 1  # pictures optimised at once (seeds seed, seed+1, …), each in its own sub-folder
    keep: str = "all"  # with several pictures: keep all, or only the best by CLIP score
    # --- the judges ----------------------------------------------------------------------------
    clip_model: tuple[str, ...] = ("ViT-B-32",)  # open_clip model name(s) or JSON config path(s); "NAME:weight" in an ensemble
    clip_pretrained: tuple[str, ...] = ("openai",)  # pretrained tag or checkpoint file, one for all models or one per model
    # --- where and how it runs -----------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda | mps (auto picks cuda > mps > cpu)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: fastest safe choice for the device)
    cutout_batch: int = 32  # cutouts CLIP encodes at once: caps memory whatever --cutouts is; the picture is the same
    # --- what is written -----------------------------------------------------------------------
    out: str = "outputs"  # parent folder; each run gets its own sub-folder named from the prompt
    save_every: int = 100  # write image + checkpoint every N steps (and at the end)
    save_progress: bool = False  # also keep every saved image as progress/NNNNNN.png
    video: bool = False  # write the progress frames as progress.mp4 at the end (implies save_progress)

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
                f"--clip-pretrained given {len(pretrained)} times for {len(self.clip_model)} --clip-model; give it once (for all) or once per model"
            )
        specs = []
        for i, item in enumerate(self.clip_model):
            name, weight = _split_weight(item)
            if any(spec.name == name for spec in specs):
                raise UserError(f"--clip-model {name!r} is given twice; each model may appear once")
            specs.append(ClipSpec(name, pretrained[i if len(pretrained) > 1 else 0], weight))
        return specs

    # convenient helpers -----------------------------------------------------------------------
    @property
    def biggan_name(self) -> str:
        """The BigGAN to load: an explicit `biggan`, else the shortcut for `size`."""
        return self.biggan or f"biggan-deep-{self.size}"

    def replace(self, **changes: Any) -> "DreamSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}

    @property
    def seeds(self) -> list[int]:
        """One seed per picture: seed, seed + 1, …"""
        if self.seed is None:
            raise ValueError("no seed chosen yet")
        return [self.seed + i for i in range(self.num_images)]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DreamSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**data)


@dataclass(frozen=True)
class ClipSpec:
    name: str
    pretrained: str
    weight: float = 1.0


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

    need(isinstance(s.iterations, int) and s.iterations >= 1, f"--iterations {s.iterations!r}: must be a whole number >= 1")
    need(isinstance(s.cutouts, int) and s.cutouts >= 1, f"--cutouts {s.cutouts!r}: must be a whole number >= 1")
    need(isinstance(s.cutout_batch, int) and s.cutout_batch >= 1, f"--cutout-batch {s.cutout_batch!r}: must be a whole number >= 1")
    need(s.lr > 0, f"--lr {s.lr!r}: must be > 0")
    need(s.size in SIZES, f"--size {s.size!r}: allowed sizes are {', '.join(map(str, SIZES))}")
    need(0 < s.truncation <= 1, f"--truncation {s.truncation!r}: must be in (0, 1]")
    need(s.max_classes is None or 1 <= s.max_classes <= 1000, f"--max-classes {s.max_classes!r}: must be between 1 and 1000")
    need(s.class_temperature > 0, f"--class-temperature {s.class_temperature!r}: must be > 0")
    need(0 <= s.ema_decay < 1, f"--ema-decay {s.ema_decay!r}: must be in [0, 1)")
    need(s.save_every >= 1, f"--save-every {s.save_every!r}: must be a whole number >= 1")
    need(s.device.split(":")[0] in DEVICES, f"--device {s.device!r}: allowed are {', '.join(DEVICES)} (cuda:N also works)")
    need(s.precision in PRECISIONS, f"--precision {s.precision!r}: allowed are {', '.join(PRECISIONS)}")
    need(s.augment in AUGMENTS, f"--augment {s.augment!r}: allowed are {', '.join(AUGMENTS)}")
    need(s.seed is None or (isinstance(s.seed, int) and 0 <= s.seed < 2**63), f"--seed {s.seed!r}: must be a whole number >= 0")
    need(bool(s.clip_model) and all(m.strip() for m in s.clip_model), "--clip-model: must not be empty")
    need(bool(s.clip_pretrained), "--clip-pretrained: must not be empty")
    need(isinstance(s.init_candidates, int) and s.init_candidates >= 1, f"--init-candidates {s.init_candidates!r}: must be a whole number >= 1")
    need(isinstance(s.num_images, int) and s.num_images >= 1, f"--num-images {s.num_images!r}: must be a whole number >= 1")
    need(s.keep in KEEP, f"--keep {s.keep!r}: allowed are {', '.join(KEEP)}")
