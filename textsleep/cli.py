"""The ``textsleep`` command: thin wrappers that parse, call the library and print.

``textsleep "upside down tree"`` is short for ``textsleep dream "upside down tree"``.
Each group of commands lives in its own module under :mod:`textsleep.commands`.
"""

from __future__ import annotations

import functools
import re
import shlex

import typer
from typer.core import TyperCommand, TyperGroup

from .commands import batch, bench, dream, evaluate, explore, invert, ui, upscale, weights
from .lazy import open_clip
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


class _Mistyped(_ClickUsageError):
    """A command name mistyped: said in one line, with the way to dream that word anyway."""

    def show(self, file=None) -> None:
        typer.echo(f"error: {self.format_message()}", err=True)


class _DreamByDefault(TyperGroup):
    """Treat anything that is not a command name as the arguments of ``dream``; usage errors in one line.

    A first word that is close to a command name and is not a word CLIP knows
    (``doctr``, ``upscal``) is taken for a mistyped command, not a prompt.
    ``textsleep`` alone prints the usage.
    """

    _top_level = {"--help", "-h", "--version", "--install-completion", "--show-completion"}

    def parse_args(self, ctx, args):
        if not args:
            typer.echo(ctx.get_help())
            ctx.exit(0)
        if args[0] not in self.commands and args[0] not in self._top_level:
            meant = _mistyped(args[0], self.commands)
            if meant:
                raise _Mistyped(
                    f"{args[0]!r} is not a command; did you mean textsleep {meant}? "
                    f"To dream the word, write: textsleep dream {shlex.quote(args[0])}",
                    ctx,
                )
            args = ["dream", *args]
        try:
            return super().parse_args(ctx, args)
        except _ClickUsageError as err:
            raise _UsageError(err.format_message(), err.ctx) from None

    def format_commands(self, ctx, formatter) -> None:
        """Each command with its help's first sentence, whole (wrapped, never cut off)."""
        rows = [(name, cmd.get_short_help_str(limit=10_000)) for name, cmd in self.commands.items() if not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _ClickUsageError as err:
            if isinstance(err, _UsageError):
                raise
            raise _UsageError(err.format_message(), err.ctx) from None


class _Command(TyperCommand):
    """A command whose help names each argument by its metavar alone (``IMAGE...``, not ``IMAGE <list[Path]>``), in
    the usage line as ``IMAGE...`` (required) or ``[TEXT]`` (optional).
    """

    def _arguments(self, ctx) -> list:
        return [p for p in self.get_params(ctx) if p.param_type_name == "argument"]

    @staticmethod
    def _name(p) -> str:
        name = (p.metavar or p.name.upper()).strip("[]").removesuffix("...")
        return name + ("..." if p.nargs != 1 else "")

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [self.options_metavar] + [
            self._name(p) if p.required else f"[{self._name(p)}]" for p in self._arguments(ctx)
        ]

    def format_options(self, ctx, formatter) -> None:
        arguments = [(self._name(p), p.help or "") for p in self._arguments(ctx)]
        options = [r for p in self.get_params(ctx) if p.param_type_name == "option" and (r := p.get_help_record(ctx))]
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


def _mistyped(word: str, commands) -> str | None:
    """The command ``word`` is a typo of: a single word near a command's name (by edit distance: 1 for short names,
    2 from 5 letters) that is not a word CLIP's vocabulary knows (``beach`` is a prompt, ``bench`` a command).
    """
    word = word.lower()
    if not re.fullmatch(r"[a-z][a-z-]*", word):
        return None
    near = sorted((d, name) for name in commands if (d := _distance(word, name)) <= (1 if len(name) < 5 else 2))
    if not near or _known_word(word):
        return None
    return near[0][1]


def _distance(a: str, b: str) -> int:
    """Edits (insert, delete, replace, swap two neighbours) that turn ``a`` into ``b``."""
    rows = [list(range(len(b) + 1))]
    for i, x in enumerate(a, start=1):
        row = [i]
        for j, y in enumerate(b, start=1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        rows.append(row)
    return rows[-1][-1]


@functools.cache
def _vocabulary() -> frozenset[str]:
    return frozenset(
        token[: -len("</w>")] for token in open_clip.tokenizer.SimpleTokenizer().encoder if token.endswith("</w>")
    )


def _known_word(word: str) -> bool:
    """Whether CLIP's tokenizer has ``word`` as one whole word (a real word, not a typo)."""
    return word in _vocabulary()


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
for _info in app.registered_commands:
    if _info.cls in (None, TyperCommand):
        _info.cls = _Command


def main() -> None:
    app(prog_name="textsleep")
