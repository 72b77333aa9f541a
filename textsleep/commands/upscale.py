"""``textsleep upscale``: enlarge finished pictures 2x or 4x with a Real-ESRGAN network."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..upscale import upscale_files
from .common import cli_errors

__all__ = ["register"]


def upscale(
    images: List[Path] = typer.Argument(
        ...,
        help="Pictures to enlarge (PNG text such as the prompt is carried over).",
        metavar="IMAGE",
        show_default=False,
    ),
    scale: int = typer.Option(4, "--scale", help="Enlarge 2 or 4 times."),
    upscaler: Optional[str] = typer.Option(
        None,
        "--upscaler",
        help="RealESRGAN_x4plus, RealESRGAN_x2plus or a local .pth (default: the one for --scale).",
        show_default=False,
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        help="Output .png (one picture) or folder; default NAME_x4.png beside each picture.",
        show_default=False,
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    tile: int = typer.Option(
        256,
        "--tile",
        help="Piece side in input pixels (bounds memory; pieces overlap by 32 px); 0 = the whole picture at once.",
    ),
    force: bool = typer.Option(False, "--force", help="Replace output files that already exist."),
) -> None:
    """Enlarge pictures with Real-ESRGAN (needs pip install "textsleep[upscale]"); prints each file written."""

    upscale_files(
        images,
        out=out,
        scale=scale,
        upscaler=upscaler,
        device=device,
        tile=tile,
        force=force,
        on_done=lambda p: typer.echo(str(p)),
    )


def register(app: typer.Typer) -> None:
    app.command("upscale")(cli_errors(upscale))
