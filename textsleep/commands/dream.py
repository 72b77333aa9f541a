"""``textsleep dream`` (also plain ``textsleep "…"``): one picture from words.

Its options are the fields of :class:`textsleep.settings.DreamSettings`
(:mod:`textsleep.options`): each setting's flag, help and default are written
once, on its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from ..imagine import Imagine
from ..options import Given, with_settings
from ..runs import RUN_FILES
from ..settings import DreamSettings, knob
from .common import Display, ProgressBar, cli_errors, echo_err

__all__ = ["register", "dream"]


@dataclass(frozen=True)
class Resume:
    """Which run folder a dream continues, if any."""

    resume: Path | None = knob(None, "Continue a run folder from its checkpoint.")


@with_settings
def dream(
    text: Optional[str] = typer.Argument(None, help=DreamSettings.__dataclass_fields__["text"].metadata["help"]),
    *,
    given: Given[DreamSettings],
    start: Resume,
    display: Display,
) -> None:
    """Dream up a picture from words (the default command)."""

    hooks = [] if display.quiet else [ProgressBar()]
    imagine = Imagine(text or "", resume=start.resume, quiet=display.quiet, on_step=hooks, **given)
    try:
        run_dir = imagine()
    except KeyboardInterrupt as err:
        where = imagine.run_dir
        done = imagine.dream.step_count if imagine.dream else 0
        echo_err(f"\nstopped at step {done}; saved to {where}")
        if where is not None:
            echo_err(f"resume with: textsleep --resume {where}")
        raise typer.Exit(getattr(err, "exit_code", 130)) from None
    pictures = imagine.pictures or [(run_dir / RUN_FILES["image"], None)]
    if display.quiet:  # one path a line, each a file that exists: what a script reads
        for image, _ in pictures:
            typer.echo(str(image))
        return
    if imagine.stopped_early is not None:
        typer.echo(f"stopped at step {imagine.stopped_early}: no better score for {imagine.settings.patience} steps")
    for image, score in pictures:
        typer.echo(f"saved {image}" + (f" (CLIP score {score:.3f})" if score is not None else ""))


def register(app: typer.Typer) -> None:
    app.command("dream")(cli_errors(dream))
