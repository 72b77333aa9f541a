"""``textsleep upscale``: enlarge finished pictures 2x or 4x with a Real-ESRGAN network."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import List

import typer

from ..options import with_settings
from ..settings import knob, like
from ..upscale import upscale_files
from .common import cli_errors

__all__ = ["register"]


@dataclass(frozen=True, kw_only=True)
class UpscaleOptions:
    """How ``textsleep upscale`` enlarges its pictures (checked by :func:`textsleep.upscale.upscale_files`)."""

    scale: int = knob(4, "Enlarge 2 or 4 times.")
    upscaler: str | None = knob(
        None, "RealESRGAN_x4plus, RealESRGAN_x2plus or a local .pth (default: the one for --scale).", show=False
    )
    out: Path | None = knob(
        None, "Output .png (one picture) or folder; default NAME_x4.png beside each picture.", show=False
    )
    device: str = like("device")
    tile: int = knob(
        256, "Piece side in input pixels (bounds memory; pieces overlap by 32 px); 0 = the whole picture at once."
    )
    force: bool = knob(False, "Replace output files that already exist.")


@with_settings
def upscale(
    images: List[Path] = typer.Argument(
        ...,
        help="Pictures to enlarge (PNG text such as the prompt is carried over).",
        metavar="IMAGE",
        show_default=False,
    ),
    *,
    options: UpscaleOptions,
) -> None:
    """Enlarge pictures with Real-ESRGAN (needs pip install "textsleep[upscale]"); prints each file written."""

    upscale_files(images, **dataclasses.asdict(options), on_done=lambda p: typer.echo(str(p)))


def register(app: typer.Typer) -> None:
    app.command("upscale")(cli_errors(upscale))
