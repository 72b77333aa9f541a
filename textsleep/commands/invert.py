"""``textsleep invert PHOTO``: find BigGAN latents whose picture matches a photo; saves a run folder."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import typer

from ..invert import invert_photo
from ..options import with_settings
from ..runs import read_record
from ..settings import InvertSettings
from .common import Display, ProgressBar, cli_errors

__all__ = ["register"]


@with_settings
def invert(
    photo: str = typer.Argument(
        metavar="PHOTO",
        help="The picture to find in BigGAN's latent space (PNG, JPEG, …; its centre square is used).",
    ),
    *,
    settings: InvertSettings,
    display: Display,
) -> None:
    """Find latents and class vectors whose picture matches a photo; saves a run folder (--init / interpolate
    endpoint).
    """

    bar = None if display.quiet else ProgressBar("inverting")
    try:
        run_dir = invert_photo(photo, on_step=_per_step(bar, settings), **dataclasses.asdict(settings))
    finally:
        if bar is not None:
            bar.close()
    losses = read_record(run_dir)["invert"]
    typer.echo(
        f"saved {run_dir} (pixel loss {losses['first_pixel_loss']:.4f} → {losses['final_pixel_loss']:.4f}); "
        f"use it with --init {run_dir} or as an interpolate endpoint"
    )


def _per_step(bar: ProgressBar | None, settings: InvertSettings):
    """The bar as the per-step callback ``invert_photo`` takes, ``on_step(step)``, showing the pixel loss itself."""

    if bar is None:
        return None
    run = SimpleNamespace(settings=settings)  # (what the bar reads of a run: its settings' iterations)

    def on_step(step) -> None:
        pixel = step.losses["extra"] / max(settings.pixel_weight, 1e-12)  # (the step's term is weighted)
        bar(run, dataclasses.replace(step, losses={**step.losses, "extra": pixel}))

    return on_step


def register(app: typer.Typer) -> None:
    app.command("invert")(cli_errors(invert))
