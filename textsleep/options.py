"""Dream options written as on a command line, parsed into DreamSettings fields.

The one parser of dream options outside the ``textsleep`` command itself: a
prompt-file line's ``-- --seed 3 --size=256``, and the extra options that
``textsleep batch`` and ``textsleep ui`` take as defaults.  Its options are
those of :func:`textsleep.settings.options`, so it always agrees with the
command line.

>>> parse_options(["--seed", "3", "--image", "a.png", "--video"])
{'images': ('a.png',), 'seed': 3, 'video': True}
"""

from __future__ import annotations

import argparse

from .errors import UserError
from .settings import options

__all__ = ["parse_options"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit
        raise UserError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="textsleep dream", add_help=False, allow_abbrev=False, exit_on_error=False)
    for opt in options():
        if opt.kind is bool:
            parser.add_argument(*opt.flags, dest=opt.name, action=argparse.BooleanOptionalAction, default=None)
        elif opt.multiple:
            parser.add_argument(
                *opt.flags, dest=opt.name, type=opt.kind, action="append", default=None, metavar="VALUE"
            )
        else:
            parser.add_argument(*opt.flags, dest=opt.name, type=opt.kind, default=None, metavar="VALUE")
    return parser


def parse_options(tokens: list[str]) -> dict:
    """The DreamSettings fields that ``tokens`` give (only those), e.g. ``{"seed": 3}``; UserError on a bad one."""
    try:
        given, extra = _parser().parse_known_args(list(tokens))
    except argparse.ArgumentError as err:
        raise UserError(str(err)) from None
    if extra:
        word = extra[0]
        what = "no such option" if word.startswith("-") else "unexpected word (quote a value with spaces)"
        raise UserError(f"{word!r}: {what}; see textsleep dream --help")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in vars(given).items() if v is not None}
