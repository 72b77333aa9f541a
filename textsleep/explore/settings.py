"""The explorer's settings: which BigGAN renders, where pictures go, and each walk's own knobs.

They are settings dataclasses as :class:`textsleep.settings.DreamSettings` is:
each field says its default, its help and its command-line flag once, and
building one checks it, before any model loads.  The explorer's truncation is
0.4 (BigGAN's samples look their best around there; a dream's is 1.0) and its
seed 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..command_settings import InvertSettings
from ..errors import UserError
from ..settings import DreamSettings, knob, like
from .points import check_chunk, check_truncation
from .walks import check_frames, check_keep, check_levels, check_mix, check_n, check_ratio, check_values

__all__ = [
    "RenderOptions",
    "GridOptions",
    "AnimationOptions",
    "SampleOptions",
    "InterpolateOptions",
    "BreedOptions",
    "HallucinateOptions",
    "ZoomOptions",
    "TruncationSweepOptions",
    "LoopOptions",
    "numbers",
]

_TRUNCATION = 0.4  # the explorer's default (see the module docstring)


def _seed(**changes):
    return like("seed", of=InvertSettings, **changes)


def _truncation():
    return like("truncation", _TRUNCATION, of=InvertSettings)


def _out(kinds: str):
    help = f"Output file ({kinds}; the extension picks the format) or a folder for a new name."
    return knob(None, help, short="-o", show="outputs/…")


def numbers(text: str, option: str) -> list[float]:
    """``"0.1,0.5, 1"`` → [0.1, 0.5, 1.0]; a UserError names ``option`` and the word that is not a number."""

    values = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise UserError(
                f"{option} {part!r}: not a number (write numbers separated by commas, e.g. 0.2,0.5,1)"
            ) from None
    if not values:
        raise UserError(f"{option} {text!r}: give at least one number")
    return values


# ---------------------------------------------------------------------------------------------- rendering and output
@dataclass(frozen=True, kw_only=True)
class RenderOptions:
    """Which BigGAN renders, where, at what precision, and how many pictures at once."""

    size: int = like("size")
    biggan: str | None = like("biggan")
    device: str = like("device")
    precision: str = like("precision")
    chunk: int = knob(8, "Pictures rendered at once (lower it if memory runs out).", flag="--batch")

    def __post_init__(self) -> None:
        DreamSettings(size=self.size, biggan=self.biggan, device=self.device, precision=self.precision)
        check_chunk(self.chunk)


@dataclass(frozen=True, kw_only=True)
class GridOptions:
    """Where and how a grid of pictures is saved."""

    out: str | None = _out(".png")
    pad: int = knob(4, "Pixels of white between and around the grid's pictures.")

    def __post_init__(self) -> None:
        if self.pad < 0:
            raise UserError(f"--pad {self.pad}: must be 0 or more")


@dataclass(frozen=True, kw_only=True)
class AnimationOptions:
    """Where and how fast an animation is saved."""

    out: str | None = _out(".gif or .mp4")
    fps: float = knob(24.0, "Frames per second.")


# ---------------------------------------------------------------------------------------------- the walks
@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    classes: tuple[str, ...] = knob(
        help="A class: index, name or '971) bubble' (repeatable; one grid row each).", flag="--class", short="-c"
    )
    n: int = knob(4, "Samples per class (grid columns).")
    seed: int = _seed()
    truncation: float = _truncation()

    def __post_init__(self) -> None:
        check_n(self.n)
        check_truncation(self.truncation)


@dataclass(frozen=True, kw_only=True)
class InterpolateOptions:
    frames: int = knob(48, "Frames from A to B (at least 2).")
    mode: str = knob("linear", "How the latents move: linear or slerp.")
    space: str = knob("both", "What moves: both, class (z stays A's) or latent (classes stay A's).")
    loop: bool = knob(False, "Come back to A (seamless when repeated).")
    seed: int = _seed(help="Seed of class endpoints without their own @SEED.")
    truncation: float = _truncation()

    def __post_init__(self) -> None:
        check_frames(self.frames)
        check_mix(self.mode, self.space)
        check_truncation(self.truncation)


@dataclass(frozen=True, kw_only=True)
class BreedOptions:
    ratio: tuple[str, ...] = knob(("0.5",), "Share of A in [0, 1]: y = r·A + (1−r)·B (repeatable, or 1,0.5,0).")
    strip: int | None = knob(None, "A strip of N ratios from 1 (all A) to 0 (all B), instead of --ratio.")
    n: int = knob(1, "Latents (grid rows), from the seed.")
    seed: int = _seed()
    truncation: float = _truncation()

    def __post_init__(self) -> None:
        if self.strip is not None and self.strip < 2:
            raise UserError(f"--strip {self.strip}: a strip needs at least 2 ratios")
        for r in self.ratios:
            check_ratio(r)
        check_n(self.n)
        check_truncation(self.truncation)

    @property
    def ratios(self) -> list[float]:
        """The shares of A, one per grid column."""
        if self.strip is not None:
            return [1 - k / (self.strip - 1) for k in range(self.strip)]
        return [r for item in self.ratio for r in numbers(item, "--ratio")]


@dataclass(frozen=True, kw_only=True)
class HallucinateOptions:
    n: int = knob(4, "Hallucinations (after the original).")
    keep: float = knob(0.5, "Latent values within ±keep·truncation are kept; the rest vary.")
    seed: int = _seed()
    truncation: float = _truncation()

    def __post_init__(self) -> None:
        check_n(self.n)
        check_keep(self.keep)
        check_truncation(self.truncation)


@dataclass(frozen=True, kw_only=True)
class ZoomOptions:
    levels: str = knob("0.25,0.5,0.75,1,1.25,1.5,1.75,2", "Values of a in z → −a·z/|z|, comma-separated, each > 0.")
    seed: int = _seed()
    truncation: float = _truncation()

    def __post_init__(self) -> None:
        check_levels(numbers(self.levels, "--levels"))
        check_truncation(self.truncation)


@dataclass(frozen=True, kw_only=True)
class TruncationSweepOptions:
    values: str = knob(
        "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", "Truncations in (0, 1], comma-separated (grid columns)."
    )
    n: int = knob(1, "Rows (latents) per class.")
    fresh: bool = knob(False, "A new latent in every cell (default: a row keeps its latent across columns).")
    seed: int = _seed()

    def __post_init__(self) -> None:
        check_values(numbers(self.values, "--values"))
        check_n(self.n)


@dataclass(frozen=True, kw_only=True)
class LoopOptions:
    seconds: float = knob(4.0, "Length of one loop.")
    seed: int = _seed()
    truncation: float = _truncation()

    def __post_init__(self) -> None:
        check_truncation(self.truncation)
