"""The ``textsleep`` command: thin wrappers that parse, call the library and print.

``textsleep "upside down tree"`` is short for ``textsleep dream "upside down tree"``.
Each group of commands lives in its own module under :mod:`textsleep.commands`.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

__all__ = ["app", "main"]


class _DreamByDefault(TyperGroup):
    """Treat anything that is not a command name as the arguments of ``dream``."""

    _top_level = {"--help", "-h", "--version", "--install-completion", "--show-completion"}

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in self._top_level:
            args = ["dream", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DreamByDefault,
    name="textsleep",
    help="Text to image with BigGAN guided by CLIP.  textsleep \"upside down tree\" is short for textsleep dream \"…\".",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"textsleep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Text to image with BigGAN guided by CLIP.  textsleep "upside down tree" is short for textsleep dream "…"."""


def _register() -> None:
    from importlib import import_module

    for name in ("dream", "weights", "explore", "batch", "bench", "quality", "ui"):
        try:
            module = import_module(f"textsleep.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"textsleep.commands.{name}":
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    app(prog_name="textsleep")
