"""The settings of ``textsleep invert`` and ``textsleep bench``: dataclasses of the same kind as
:class:`~textsleep.settings.DreamSettings`, whose shared fields are :func:`~textsleep.settings.like` the dream's."""

from __future__ import annotations

from dataclasses import dataclass

from .limits import check_limit, check_types
from .settings import BENCH_GUIDES, _bad, _check_as_dream, _check_whole, _split_weight, knob, like

__all__ = ["InvertSettings", "BenchSettings"]


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
        check_types(self)
        _check_as_dream(self)
        _check_whole(self, "pixel_size", 1)
        _check_whole(self, "candidates", 1)
        check_limit(self.pixel_size, "pixel_size", "--pixel-size")
        check_limit(self.candidates, "candidates", "--candidates")
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
    guide: str | None = knob(
        None,
        f"Also guide with a preference model built at full size with random weights: {', '.join(BENCH_GUIDES)} "
        "(NAME:weight to weight it).",
        metavar="NAME[:W]",
    )
    breakdown: bool = knob(False, "Also time BigGAN, cutouts and CLIP on their own and count their GFLOP.")
    compile: bool = like(
        "compile", help="Also time the step through torch.compile: compile time, steady step beside eager."
    )

    def __post_init__(self) -> None:
        check_types(self)
        _check_as_dream(self)
        _check_whole(self, "steps", 1)
        _check_whole(self, "batch", 1)
        check_limit(self.steps, "steps", "--steps")
        check_limit(self.batch, "num_images", "--batch")
        if self.guide is not None:
            name, weight = _split_weight(self, self.guide, "guide")
            if name not in BENCH_GUIDES or "=" in self.guide:
                raise _bad(self, "guide", f"allowed are {', '.join(BENCH_GUIDES)} (NAME:weight)")
            if not weight > 0:
                raise _bad(self, "guide", "its weight must be > 0")
