"""``textsleep dream`` (also plain ``textsleep "…"``): one picture from words.

Its options are made from :func:`textsleep.settings.options`: each setting's
flag, help and default are written once, on the DreamSettings field.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from ..imagine import Imagine
from ..settings import DreamSettings, options
from .common import cli_errors, echo_err, progress_hook

__all__ = ["register", "dream"]


def _parameters() -> list[inspect.Parameter]:
    text_help = DreamSettings.__dataclass_fields__["text"].metadata["help"]
    params = [
        inspect.Parameter(
            "text",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=typer.Argument(None, help=text_help),
            annotation=Optional[str],
        )
    ]
    for opt in options():
        flags = (f"{opt.flag}/--no-{opt.flag[2:]}", *opt.flags[1:]) if opt.kind is bool else opt.flags
        annotation = Optional[list[opt.kind]] if opt.multiple else Optional[opt.kind]
        default = typer.Option(None, *flags, help=opt.help, show_default=opt.show)
        params.append(
            inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    params.append(
        inspect.Parameter(
            "resume",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(None, "--resume", help="Continue a run folder from its checkpoint."),
            annotation=Optional[Path],
        )
    )
    params.append(
        inspect.Parameter(
            "quiet",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(False, "--quiet", "-q", help="No progress bar."),
            annotation=bool,
        )
    )
    return params


def _given(params: dict) -> dict:
    """The settings a user actually gave (not None), as DreamSettings fields."""
    fields = {opt.name for opt in options()}
    return {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in params.items()
        if k in fields and v is not None and v != []
    }


def dream(text: Optional[str] = None, *, resume: Optional[Path] = None, quiet: bool = False, **params) -> None:
    """Dream up a picture from words (the default command)."""

    given = _given(params)
    hooks = [] if quiet else [progress_hook()]
    imagine = Imagine(text or "", resume=resume, quiet=quiet, on_step=hooks, **given)
    try:
        run_dir = imagine()
    except KeyboardInterrupt as err:
        where = imagine.run_dir
        done = imagine.dream.step_count if imagine.dream else 0
        echo_err(f"\nstopped at step {done}; saved to {where}")
        if where is not None:
            echo_err(f"resume with: textsleep --resume {where}")
        raise typer.Exit(getattr(err, "exit_code", 130)) from None
    image = run_dir / "image.png"
    if quiet:
        typer.echo(str(image))
        return
    if imagine.stopped_early is not None:
        typer.echo(f"stopped at step {imagine.stopped_early}: no better score for {imagine.settings.patience} steps")
    score = f" (CLIP score {imagine.final_score:.3f})" if imagine.final_score is not None else ""
    typer.echo(f"saved {image}{score}")


dream.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
dream.__annotations__ = {p.name: p.annotation for p in dream.__signature__.parameters.values()}  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    app.command("dream")(cli_errors(dream))
