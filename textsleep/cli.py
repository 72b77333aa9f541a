"""The ``textsleep`` command: thin wrappers that parse, call the library and print.

``textsleep "upside down tree"`` is short for ``textsleep dream "upside down tree"``.
Each group of commands lives in its own module under :mod:`textsleep.commands`.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from .commands import batch, bench, dream, evaluate, explore, invert, ui, upscale, weights
from .version import __version__

__all__ = ["app", "main"]


_ClickUsageError = typer.BadParameter.__bases__[
    0
]  # (the command-line parser's own UsageError, whose subclass BadParameter is public)


class _UsageError(_ClickUsageError):
    """A command-line mistake shown as one line, like every other error."""

    def show(self, file=None) -> None:
        where = self.ctx.command_path if self.ctx is not None else "textsleep"
        typer.echo(f"error: {self.format_message()}; see {where} --help", err=True)


class _DreamByDefault(TyperGroup):
    """Treat anything that is not a command name as the arguments of ``dream``; usage errors in one line."""

    _top_level = {"--help", "-h", "--version", "--install-completion", "--show-completion"}

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in self._top_level:
            args = ["dream", *args]
        try:
            return super().parse_args(ctx, args)
        except _ClickUsageError as err:
            raise _UsageError(err.format_message(), err.ctx) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _ClickUsageError as err:
            if isinstance(err, _UsageError):
                raise
            raise _UsageError(err.format_message(), err.ctx) from None


app = typer.Typer(
    cls=_DreamByDefault,
    name="textsleep",
    help='Text to image with BigGAN guided by CLIP.  textsleep "upside down tree" is short for textsleep dream "…".',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"textsleep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Text to image with BigGAN guided by CLIP.  textsleep "upside down tree" is short for textsleep dream "…"."""


for _commands in (dream, weights, explore, invert, batch, bench, evaluate, upscale, ui):
    _commands.register(app)


def main() -> None:
    app(prog_name="textsleep")
