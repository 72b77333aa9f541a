"""``textsleep invert PHOTO``: find BigGAN latents whose picture matches a photo; saves a run folder."""

from __future__ import annotations

from typing import Annotated

import typer
from tqdm.auto import tqdm

from ..invert import invert_photo
from ..runs import read_record
from .common import cli_errors
from .common import settings_default as d
from .options import BigGAN, Device, Precision, Quiet, Seed, Size, Truncation

__all__ = ["register"]


def invert(
    photo: Annotated[
        str,
        typer.Argument(
            metavar="PHOTO",
            help="The picture to find in BigGAN's latent space (PNG, JPEG, …; its centre square is used).",
        ),
    ],
    iterations: Annotated[int, typer.Option("--iterations", "-i", help="Optimisation steps.")] = 300,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = float(d("lr")),
    cutouts: Annotated[int, typer.Option("--cutouts", help="Random crops CLIP compares with the photo per step.")] = 32,
    pixel_weight: Annotated[
        float, typer.Option("--pixel-weight", help="Weight of the low-resolution pixel loss against CLIP's similarity.")
    ] = 500.0,
    pixel_size: Annotated[
        int, typer.Option("--pixel-size", help="Side in pixels at which render and photo are compared.")
    ] = 32,
    candidates: Annotated[
        int,
        typer.Option(
            "--candidates", help="Start from the best of K one-class starts (classes CLIP finds closest to the photo)."
        ),
    ] = 8,
    seed: Seed = 0,
    truncation: Truncation = float(d("truncation")),
    clip_model: Annotated[
        str, typer.Option("--clip-model", help="open_clip model name or JSON config path.")
    ] = "ViT-B-32",
    clip_pretrained: Annotated[
        str, typer.Option("--clip-pretrained", help="open_clip pretrained tag or checkpoint file.")
    ] = "openai",
    size: Size = int(d("size")),
    biggan: BigGAN = None,
    device: Device = d("device"),
    precision: Precision = d("precision"),
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for run folders.")] = d("out"),
    quiet: Quiet = False,
) -> None:
    """Find latents and class vectors whose picture matches a photo; saves a run folder (--init / interpolate
    endpoint).
    """

    progress = None if quiet else _Progress(iterations, pixel_weight)
    try:
        run_dir = invert_photo(
            photo,
            iterations=iterations,
            lr=lr,
            cutouts=cutouts,
            pixel_weight=pixel_weight,
            pixel_size=pixel_size,
            candidates=candidates,
            seed=seed,
            truncation=truncation,
            clip_model=clip_model,
            clip_pretrained=clip_pretrained,
            size=size,
            biggan=biggan,
            device=device,
            precision=precision,
            out=out,
            on_step=progress,
        )
    finally:
        if progress is not None:
            progress.close()
    losses = read_record(run_dir)["invert"]
    typer.echo(
        f"saved {run_dir} (pixel loss {losses['first_pixel_loss']:.4f} → {losses['final_pixel_loss']:.4f}); "
        f"use it with --init {run_dir} or as an interpolate endpoint"
    )


class _Progress:
    """The progress bar, drawn from the first step on (not while the models load)."""

    def __init__(self, total: int, pixel_weight: float) -> None:
        self.total, self.pixel_weight, self.bar = total, pixel_weight, None

    def __call__(self, step) -> None:
        if self.bar is None:
            self.bar = tqdm(total=self.total, desc="inverting", unit="step", dynamic_ncols=True)
        self.bar.update(1)
        self.bar.set_postfix(
            pixel=f"{step.losses['extra'] / max(self.pixel_weight, 1e-12):.4f}", clip=f"{step.score:.3f}", refresh=False
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def register(app: typer.Typer) -> None:
    app.command("invert")(cli_errors(invert))
