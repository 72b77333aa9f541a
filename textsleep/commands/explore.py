"""The latent-space explorer: ``classes``, ``sample``, ``interpolate``, ``breed``, ``hallucinate``, ``zoom``,
``truncation-sweep`` and ``loop``.

Each command parses, calls :mod:`textsleep.explore` to save its grid (a PNG,
the recipe in its text metadata) or animation (a GIF or MP4 by the ``--out``
extension, the recipe in a ``.json`` beside it), and says what it wrote.
"""

from __future__ import annotations

import re
from typing import Annotated, Optional

import typer

from .. import explore
from ..errors import UserError
from ..imagenet import class_label, search_classes
from ..options import with_settings
from .common import cli_errors, echo_err

__all__ = ["register"]

Render, Grid, Video = explore.RenderOptions, explore.GridOptions, explore.AnimationOptions  # (the shared groups)
ClassArg = Annotated[str, typer.Argument(metavar="CLASS", help="The class (index, name or '971) bubble').")]
EndA = Annotated[
    str,
    typer.Argument(
        metavar="A",
        help="Start: a class (index, name, '971) bubble'), optionally CLASS@SEED, or a finished run folder.",
    ),
]
EndB = Annotated[str, typer.Argument(metavar="B", help="End: the same kinds as A.")]
ClassA = Annotated[str, typer.Argument(metavar="A", help="Class A (index, name or '971) bubble').")]
ClassB = Annotated[str, typer.Argument(metavar="B", help="Class B.")]
Classes = Annotated[list[str], typer.Argument(metavar="CLASS...", help="Classes (one or more rows each).")]


def _grid_saved(saved: explore.Saved) -> None:
    singles = f" and {saved.rows * saved.cols} pictures in {saved.singles}" if saved.singles else ""
    typer.echo(f"saved {saved.path} ({saved.rows}x{saved.cols}){singles}")


def _animation_saved(saved: explore.Saved) -> None:
    typer.echo(f"saved {saved.path} ({saved.frames} frames)")


def classes(
    query: Optional[str] = typer.Argument(
        None, metavar="[QUERY]", help="Part of a name, or an index; all 1000 classes when omitted."
    ),
) -> None:
    """List or search the 1000 ImageNet classes BigGAN knows (as "971) bubble")."""

    hits = search_classes(query)
    if not hits:
        raise UserError(f"no ImageNet class is like {query!r}; run textsleep classes to list all 1000")
    q = " ".join((query or "").lower().split())
    q = re.sub(r"^([+-]?\d+)\s*\).*$", r"\1", q)  # "971) bubble" is looked up by its index
    if q and not any(q in name.lower() or q == str(i) for i, name in hits):
        echo_err(f"no class name contains {query!r}; the closest:")
    for index, _ in hits:
        typer.echo(class_label(index))


@with_settings
def sample(*, options: explore.SampleOptions, render: Render, grid: Grid) -> None:
    """Class-conditional samples with the truncation trick: a grid PNG and the single pictures beside it."""

    _grid_saved(explore.save_sample(options, render, grid))


@with_settings
def interpolate(a: EndA, b: EndB, *, options: explore.InterpolateOptions, render: Render, video: Video) -> None:
    """Morph A into B in class space, latent space or both, as a GIF or MP4 (frames stream to the file)."""

    _animation_saved(explore.save_interpolation(a, b, options, render, video))


@with_settings
def breed(a: ClassA, b: ClassB, *, options: explore.BreedOptions, render: Render, grid: Grid) -> None:
    """Breed two classes: mix their class vectors with the same latent."""

    _grid_saved(explore.save_breed(a, b, options, render, grid))


@with_settings
def hallucinate(class_: ClassArg, *, options: explore.HallucinateOptions, render: Render, grid: Grid) -> None:
    """Background hallucination: keep the latent's values near zero, vary the rest with sin(); original first."""

    _grid_saved(explore.save_hallucination(class_, options, render, grid))


@with_settings
def zoom(class_: ClassArg, *, options: explore.ZoomOptions, render: Render, grid: Grid) -> None:
    """Natural zoom: z → −a·z/|z| for growing a; one picture per level, in a row."""

    _grid_saved(explore.save_zoom(class_, options, render, grid))


@with_settings
def truncation_sweep(class_: Classes, *, options: explore.TruncationSweepOptions, render: Render, grid: Grid) -> None:
    """One grid: rows are classes (× --n latents), columns truncation values."""

    _grid_saved(explore.save_truncation_sweep(class_, options, render, grid))


@with_settings
def loop(class_: ClassArg, *, options: explore.LoopOptions, render: Render, video: Video) -> None:
    """A seamless latent loop, z(t) = z0·cos t + z1·sin t, as a GIF or MP4."""

    _animation_saved(explore.save_loop(class_, options, render, video))


def register(app: typer.Typer) -> None:
    for name, func in (
        ("classes", classes),
        ("sample", sample),
        ("interpolate", interpolate),
        ("breed", breed),
        ("hallucinate", hallucinate),
        ("zoom", zoom),
        ("truncation-sweep", truncation_sweep),
        ("loop", loop),
    ):
        app.command(name)(cli_errors(func))
