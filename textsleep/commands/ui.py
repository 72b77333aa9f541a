"""``textsleep ui``: dream from a local web page (needs ``pip install "textsleep[ui]"``)."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from ..options import parse_options, with_settings
from ..settings import knob
from ..ui import serve
from .common import cli_errors

__all__ = ["register", "ui"]


@dataclass(frozen=True, kw_only=True)
class UiOptions:
    """Where the page is served; the dream options that follow them are the page's defaults."""

    host: str = knob("127.0.0.1", "Address to serve on (0.0.0.0 lets other machines in).")
    port: int | None = knob(None, "Port to serve on.", show="the first free one from 7860")


@with_settings
def ui(ctx: typer.Context, *, options: UiOptions) -> None:
    """Open a web page to dream from: type a prompt, watch the picture, stop, look back at runs and continue them.

    Any option of textsleep dream (textsleep dream --help) is a default on the page, e.g. textsleep ui --size 256.
    """

    page = serve(parse_options(list(ctx.args)), host=options.host, port=options.port)
    typer.echo(f"dreaming at {page.url} (runs in {page.studio.out}; Ctrl-C stops)")
    page.wait()


def register(app: typer.Typer) -> None:
    app.command("ui", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cli_errors(ui))
