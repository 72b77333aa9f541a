"""``textsleep ui``: dream from a local web page (needs ``pip install "textsleep[ui]"``)."""

from __future__ import annotations

from dataclasses import dataclass

import typer

from ..options import parse_options, with_settings
from ..page_guard import is_loopback, read_auth
from ..settings import knob
from ..ui import serve
from .common import cli_errors, echo_err

__all__ = ["register", "ui"]


@dataclass(frozen=True, kw_only=True)
class UiOptions:
    """Where the page is served and who may use it; the dream options that follow them are the page's defaults."""

    host: str = knob("127.0.0.1", "Address to serve on (0.0.0.0 lets other machines in: see --auth).")
    port: int | None = knob(None, "Port to serve on.", show="the first free one from 7860")
    auth: str | None = knob(None, "Ask for this login first: USER:PASS (visible to others on this machine).")
    auth_file: str | None = knob(None, "Ask for a login first: a file of USER:PASS lines.", metavar="FILE")


@with_settings
def ui(ctx: typer.Context, *, options: UiOptions) -> None:
    """Open a web page to dream from: type a prompt, watch the picture, stop, look back at runs and continue them.

    Any option of textsleep dream (textsleep dream --help) is a default on the page, e.g. textsleep ui --size 256.
    """

    logins = read_auth(options.auth, options.auth_file)
    page = serve(parse_options(list(ctx.args)), host=options.host, port=options.port, auth=logins)
    if not is_loopback(options.host):
        who = "anyone who logs in" if logins else "anyone who can reach this port"
        echo_err(
            f"warning: serving on {options.host}, not this machine only: {who} can dream, read the gallery of "
            f"{page.studio.out} (pictures, prompts, settings) and stop dreams"
            + ("" if logins else "; give --auth USER:PASS or --auth-file FILE to ask for a login")
        )
    also = f" (also {', '.join(page.urls[1:])})" if page.urls[1:] else ""
    typer.echo(f"dreaming at {page.url}{also} (runs in {page.studio.out}; Ctrl-C stops)")
    page.wait()


def register(app: typer.Typer) -> None:
    app.command("ui", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cli_errors(ui))
