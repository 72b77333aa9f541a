"""Command-line options made from settings dataclasses: one generator for every command and for prompt-file lines.

Each field of a settings dataclass (:class:`textsleep.settings.DreamSettings`,
:class:`~textsleep.command_settings.InvertSettings`, the explorer's, …) declares its
option once, with :func:`textsleep.settings.knob`: flag, help, and the default,
which is the field's own.  :func:`parameters` makes Typer parameters of them;
:func:`with_settings` gives a command the options of the dataclasses its
signature names and calls it with the dataclass built from them (building it
checks the values); :func:`parse_options` reads a prompt-file line's options
with those same parameters, so a line takes exactly what the command takes.

>>> parse_options(["--seed", "3", "--image", "a.png", "--video"])
{'images': ('a.png',), 'seed': 3, 'video': True}
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Optional

import typer

from .errors import UserError
from .settings import DreamSettings, flag_of

__all__ = ["Option", "options", "parameters", "Given", "with_settings", "settings_of", "parse_options"]

_ClickError = typer.BadParameter.__bases__[0]  # (the parser's UsageError, whose subclass BadParameter is public)


@dataclass(frozen=True)
class Option:
    """One field of a settings dataclass as a command-line option."""

    name: str  # the field
    flags: tuple[str, ...]  # e.g. ("--iterations", "-i")
    kind: type  # int, float, str, bool or Path (the value type; several values when `multiple`)
    multiple: bool  # repeatable, collecting a tuple
    default: Any  # MISSING: a required option
    help: str
    show: str | bool | None = None  # the default as help shows it, where the field says (False: not shown)
    metavar: str | None = None
    hidden: bool = False

    @property
    def flag(self) -> str:
        return self.flags[0]

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def default_text(self) -> str:
        """The default in words, as help shows it: what the field says, else the value itself ('' for none, for an
        empty list, for an option off by default, or where the field says not to show it).
        """
        if isinstance(self.show, str):
            return self.show
        if self.show is False or self.default is None or self.default is False or self.default in ((), MISSING):
            return ""
        if self.default is True:
            return self.flag
        return ", ".join(map(str, self.default)) if isinstance(self.default, tuple) else str(self.default)

    @property
    def value_name(self) -> str | None:
        """What help shows after the flag: the field's metavar, else the type (``<int>``, one value of a repeatable
        option); none for a flag.
        """
        if self.kind is bool:
            return None
        return self.metavar or f"<{self.kind.__name__.lower()}>"


def options(cls: type = DreamSettings) -> list[Option]:
    """Every field of a settings dataclass that has a command-line option, in the dataclass's order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        multiple = typing.get_origin(hint) is tuple
        kind = typing.get_args(hint)[0] if multiple else hint
        flags = (flag_of(cls, f.name),) + ((meta["short"],) if meta.get("short") else ())
        show, metavar, hidden = meta.get("show"), meta.get("metavar"), bool(meta.get("hidden"))
        found.append(Option(f.name, flags, kind, multiple, f.default, meta["help"], show, metavar, hidden))
    return found


def parameters(cls: type, *, given_only: bool = False) -> list[inspect.Parameter]:
    """Typer parameters for the options of a settings dataclass: keyword-only, named as its fields.

    Each option's default is its field's.  With ``given_only`` every default is
    None instead, so that what was not given can be told apart (a resumed
    dream changes only what is given, a prompt-file line adds only its own);
    help shows the field's default all the same, and a flag gets its
    ``--no-`` form (to turn off a default set for a whole batch).
    """
    params = []
    for opt in options(cls):
        flags = opt.flags
        if opt.kind is bool and given_only:
            flags = (f"{opt.flag}/--no-{opt.flag[2:]}", *opt.flags[1:])
        kind = list[opt.kind] if opt.multiple else opt.kind
        if given_only:
            default = None
        else:
            default = ... if opt.required else list(opt.default) if opt.multiple else opt.default
        # the default as the field words it (Click would put a string in parentheses; textsleep's help is plain text)
        shown = f"  [default: {opt.default_text}]" if opt.default_text else ""
        info = typer.Option(
            default, *flags, help=opt.help + shown, show_default=False, metavar=opt.value_name, hidden=opt.hidden
        )
        annotation = Optional[kind] if default is None else kind
        params.append(inspect.Parameter(opt.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation))
    return params


class Given:
    """``Given[DreamSettings]``: a command parameter that gets only the options given, as a dict of fields.

    (A command that takes the whole dataclass, ``settings: InvertSettings``,
    gets it built, defaults and all.)
    """

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __class_getitem__(cls, settings: type) -> "Given":
        return cls(settings)


def _values(params: dict[str, Any]) -> dict[str, Any]:
    """Parsed values as settings fields take them: tuples for repeated options."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def _given(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in _values(params).items() if v is not None and v != ()}


def with_settings(command):
    """Give a command the options of the settings dataclasses its signature names.

    Each keyword-only parameter annotated with a settings dataclass
    (``render: RenderOptions``) becomes that dataclass's options, and the
    command is called with the dataclass built from them; one annotated
    ``Given[DreamSettings]`` gets the options given, as a dict.  The other
    parameters (arguments, ``ctx``) stay as they are.
    """
    groups, made, signature = {}, {}, []
    for p in inspect.signature(command, eval_str=True).parameters.values():
        target = p.annotation
        if p.kind is inspect.Parameter.KEYWORD_ONLY and (isinstance(target, Given) or dataclasses.is_dataclass(target)):
            groups[p.name] = target
            made[p.name] = parameters(target.cls, given_only=True) if isinstance(target, Given) else parameters(target)
            signature += made[p.name]
        else:
            signature.append(p)
    names = [p.name for p in signature]
    if len(names) != len(set(names)):
        raise TypeError(f"{command.__name__}: two options named alike in {names}")

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        for name, target in groups.items():
            values = {p.name: kwargs.pop(p.name) for p in made[name]}
            kwargs[name] = _given(values) if isinstance(target, Given) else target(**_values(values))
        return command(*args, **kwargs)

    wrapper.__signature__ = inspect.Signature(signature)
    wrapper.__annotations__ = {p.name: p.annotation for p in wrapper.__signature__.parameters.values()}
    wrapper.__settings__ = {name: getattr(g, "cls", g) for name, g in groups.items()}
    return wrapper


def settings_of(command) -> dict[str, type]:
    """The settings dataclasses whose options a command (or a wrapper of it) has, by parameter name."""
    while command is not None:
        if hasattr(command, "__settings__"):
            return command.__settings__
        command = getattr(command, "__wrapped__", None)
    return {}


@functools.cache
def _line_parser(cls: type):
    """A parser-only command with the options of ``cls`` as the command line has them (given ones only)."""

    def line(**given):
        return given

    line.__signature__ = inspect.Signature(parameters(cls, given_only=True))
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"help_option_names": [], "allow_extra_args": True})(line)
    return typer.main.get_command(app)


def parse_options(tokens: list[str], cls: type = DreamSettings, *, command: str = "textsleep dream") -> dict:
    """The fields that ``tokens`` give, and only those, e.g. ``{"seed": 3}``; UserError on a bad one.

    ``tokens`` are parsed by the options ``command`` itself has (made from the
    fields of ``cls``): a prompt-file line's ``--seed 3 --size=256``, or the dream
    options ``textsleep batch`` and ``textsleep ui`` take as defaults.
    """
    try:
        ctx = _line_parser(cls).make_context(command, list(tokens))
    except _ClickError as err:
        raise UserError(f"{_message(err, tokens)}; see {command} --help") from None
    if ctx.args:
        raise UserError(f"{ctx.args[0]!r}: unexpected word (quote a value with spaces); see {command} --help")
    fields = [opt.name for opt in options(cls)]
    given = _given(ctx.params)
    return {name: given[name] for name in fields if name in given}


def _message(err, tokens: list[str]) -> str:
    """The parser's message, with the bad value where one was given (a line's error is far from the line)."""
    opts = getattr(getattr(err, "param", None), "opts", ())
    if isinstance(err, typer.BadParameter):
        for i, token in enumerate(tokens):
            name, eq, value = token.partition("=")
            if name in opts:
                return f"{name} {value if eq else (tokens[i + 1 :] or [''])[0]!r}: {err.message}"
    return err.format_message().rstrip(".")
