"""``textsleep invert PHOTO``: find BigGAN latents whose picture matches a photo; saves a run folder."""

from __future__ import annotations

import dataclasses

import typer

from ..command_settings import InvertSettings
from ..dream import Step
from ..hooks import Hook
from ..invert import invert_photo
from ..options import with_settings
from ..runs import read_record
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

    hooks = [] if display.quiet else [_PixelBar(ProgressBar("inverting"), settings.pixel_weight)]
    run_dir = invert_photo(photo, on_step=hooks, **dataclasses.asdict(settings))
    losses = read_record(run_dir)["invert"]
    typer.echo(
        f"saved {run_dir} (pixel loss {losses['first_pixel_loss']:.4f} → {losses['final_pixel_loss']:.4f}); "
        f"use it with --init {run_dir} or as an interpolate endpoint"
    )


class _PixelBar(Hook):
    """The progress bar with the step's pixel loss unweighted (the loss term is ``pixel_weight`` × it)."""

    def __init__(self, bar: ProgressBar, pixel_weight: float) -> None:
        self.bar, self.weight = bar, max(pixel_weight, 1e-12)

    def __call__(self, run, step) -> None:
        losses = {**step.losses, "extra": step.losses["extra"] / self.weight}
        self.bar(run, Step(step.index, step.loss, step.score, losses, step.scores))

    def close(self, run, status) -> None:
        self.bar.close(run, status)


def register(app: typer.Typer) -> None:
    app.command("invert")(cli_errors(invert))
