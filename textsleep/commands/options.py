"""Options that several commands share, declared once.

A command names them as types, ``seed: Seed = 0``, or takes a group of them
(the BigGAN options --size, --biggan, --device, --precision, --batch, and
where the output goes) as one dataclass argument with :func:`with_options`.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from typing import Annotated, Optional, get_type_hints

import typer

from ..explore import load_generator
from .common import settings_default as d

__all__ = [
    "EXPLORE_TRUNCATION",
    "Seed",
    "Truncation",
    "Size",
    "BigGAN",
    "Device",
    "Precision",
    "Batch",
    "Pad",
    "Fps",
    "GridOut",
    "AnimationOut",
    "ClassArg",
    "Quiet",
    "RenderOptions",
    "GridOptions",
    "AnimationOptions",
    "with_options",
]

EXPLORE_TRUNCATION = 0.4  # BigGAN's samples look their best around here; the dream's own default is 1.0

Seed = Annotated[int, typer.Option("--seed", help="Random seed of the latents (recorded with the output).")]
Truncation = Annotated[
    float,
    typer.Option(
        "--truncation",
        help="0 < t <= 1: latents from a truncated normal (±2) scaled by t; BigGAN uses the matching statistics.",
    ),
]
Size = Annotated[int, typer.Option("--size", help="BigGAN-deep model: 128, 256 or 512.")]
BigGAN = Annotated[
    Optional[str],
    typer.Option(
        "--biggan",
        help="BigGAN shortcut name, folder (pytorch_model.bin + config.json) or URL of one.",
        show_default="biggan-deep-SIZE",
    ),
]
Device = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
Precision = Annotated[str, typer.Option("--precision", help="auto, fp32, bf16 or fp16.")]
Batch = Annotated[int, typer.Option("--batch", help="Pictures rendered at once (lower it if memory runs out).")]
Pad = Annotated[int, typer.Option("--pad", help="Pixels of white between and around the grid's pictures.")]
Fps = Annotated[float, typer.Option("--fps", help="Frames per second.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ClassArg = Annotated[str, typer.Argument(metavar="CLASS", help="The class (index, name or '971) bubble').")]


def _out(kind: str):
    return typer.Option(
        "--out",
        "-o",
        help=f"Output file ({kind}; the extension picks the format) or a folder for a new name.",
        show_default="outputs/…",
    )


GridOut = Annotated[Optional[str], _out(".png")]
AnimationOut = Annotated[Optional[str], _out(".gif or .mp4")]


@dataclass(frozen=True)
class RenderOptions:
    """Which BigGAN renders, where, at what precision, and how many pictures at once."""

    size: Size = int(d("size"))
    biggan: BigGAN = None
    device: Device = d("device")
    precision: Precision = d("precision")
    batch: Batch = 8

    def load(self):
        """The BigGAN and its name (:func:`textsleep.explore.load_generator`)."""

        return load_generator(self.size, self.biggan, self.device, self.precision)


@dataclass(frozen=True)
class GridOptions(RenderOptions):
    """The BigGAN options, and where and how a grid of pictures is saved."""

    out: GridOut = None
    pad: Pad = 4


@dataclass(frozen=True)
class AnimationOptions(RenderOptions):
    """The BigGAN options, and where and how fast an animation is saved."""

    out: AnimationOut = None
    fps: Fps = 24.0


def with_options(command):
    """Give a command a group of options as one argument: its last, keyword-only parameter, e.g. ``grid: GridOptions``.

    The signature Typer reads gets that dataclass's fields (each typed with the
    option it is) in place of the parameter; the command is called with the dataclass.
    """
    *own, group = inspect.signature(command, eval_str=True).parameters.values()
    hints = get_type_hints(group.annotation, include_extras=True)
    options = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name], default=f.default)
        for f in fields(group.annotation)
    ]

    @functools.wraps(command)
    def wrapper(**kwargs):
        values = {p.name: kwargs.pop(p.name) for p in options}
        return command(**kwargs, **{group.name: group.annotation(**values)})

    wrapper.__signature__ = inspect.Signature(own + options)
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    return wrapper
