"""Every knob of a dream, with its default, in one place.

:class:`DreamSettings` is the single source of defaults: the Python API, the
command line and prompt-file lines all build one of these, and a run record
stores it whole so the picture can be made again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import UserError

__all__ = ["DreamSettings", "SIZES", "DEVICES", "AUGMENTS", "PRECISIONS"]

SIZES = (128, 256, 512)
DEVICES = ("auto", "cpu", "cuda", "mps")
AUGMENTS = ("none", "light")
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
    augment: str = "light"  # cutout augmentations: none | light (flip, affine/perspective, colour noise)
    seed: int | None = None  # random when omitted; always recorded
    # --- the generator -------------------------------------------------------------------------
    size: int = 512  # BigGAN-deep model: 128 | 256 | 512 (ignored when `biggan` is a folder or URL)
    biggan: str | None = None  # shortcut name, local folder (pytorch_model.bin + config.json) or URL
    truncation: float = 1.0  # 0 < t <= 1; latents are kept within +-2t
    max_classes: int | None = None  # keep only the top-k classes per layer (differentiable top-k)
    class_temperature: float = 2.0  # softmax temperature of that top-k
    ema_decay: float = 0.99  # exponential moving average of the parameters; saved images use it
    # --- the judge -----------------------------------------------------------------------------
    clip_model: str = "ViT-B-32"  # any open_clip model name (or a path to an open_clip JSON config)
    clip_pretrained: str = "openai"  # open_clip pretrained tag or a local checkpoint file
    # --- where and how it runs -----------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda | mps (auto picks cuda > mps > cpu)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: fastest safe choice for the device)
    # --- what is written -----------------------------------------------------------------------
    out: str = "outputs"  # parent folder; each run gets its own sub-folder named from the prompt
    save_every: int = 100  # write image + checkpoint every N steps (and at the end)
    save_progress: bool = False  # also keep every saved image as progress/NNNNNN.png
    video: bool = False  # write the progress frames as progress.mp4 at the end (implies save_progress)

    def __post_init__(self) -> None:
        self.images = tuple(self.images)
        self.negatives = tuple(self.negatives)
        _check(self)

    # convenient helpers -----------------------------------------------------------------------
    @property
    def biggan_name(self) -> str:
        """The BigGAN to load: an explicit `biggan`, else the shortcut for `size`."""
        return self.biggan or f"biggan-deep-{self.size}"

    def replace(self, **changes: Any) -> "DreamSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DreamSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**data)


def _check(s: DreamSettings) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UserError(message)

    need(isinstance(s.iterations, int) and s.iterations >= 1, f"--iterations {s.iterations!r}: must be a whole number >= 1")
    need(isinstance(s.cutouts, int) and s.cutouts >= 1, f"--cutouts {s.cutouts!r}: must be a whole number >= 1")
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
    need(bool(s.clip_model.strip()), "--clip-model: must not be empty")
