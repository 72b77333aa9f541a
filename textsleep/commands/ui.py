"""``textsleep ui``: dream from a local web page (needs ``pip install "textsleep[ui]"``)."""

from __future__ import annotations

from typing import Optional

import typer

from ..options import parse_options
from ..ui import serve
from .common import cli_errors

__all__ = ["register", "ui"]


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on (0.0.0.0 lets other machines in)."),
    port: Optional[int] = typer.Option(
        None, "--port", help="Port to serve on.", show_default="the first free one from 7860"
    ),
) -> None:
    """Open a web page to dream from: type a prompt, watch the picture, stop, look back at runs and continue them.

    Any option of textsleep dream (textsleep dream --help) is a default on the page, e.g. textsleep ui --size 256.
    """

    page = serve(parse_options(list(ctx.args)), host=host, port=port)
    typer.echo(f"dreaming at {page.url} (runs in {page.studio.out}; Ctrl-C stops)")
    page.wait()


def register(app: typer.Typer) -> None:
    app.command("ui", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cli_errors(ui))
