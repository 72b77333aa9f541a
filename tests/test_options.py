"""One options pathway: every command's options are settings fields, and prompt-file lines are read by the same ones."""

import dataclasses
import inspect
import re

import pytest
import typer
from typer.testing import CliRunner

from textsleep import UserError
from textsleep.cli import app
from textsleep.command_settings import InvertSettings
from textsleep.invert import invert_photo
from textsleep.options import Given, options, parse_options, settings_of, with_settings
from textsleep.settings import DreamSettings, knob

_HAND_WRITTEN: set[str] = set()


def _commands():
    group = typer.main.get_command(app)
    top = group.make_context("textsleep", ["--help"], resilient_parsing=True)
    for name, command in group.commands.items():
        yield name, command, command.make_context(name, [], resilient_parsing=True, parent=top)


def _shown_default(param, ctx) -> str | None:
    """The default as ``--help`` shows it (a description in parentheses unwrapped), or None."""
    record = param.get_help_record(ctx)  # (None for a hidden option)
    found = re.search(r"\[default: (.*)\]$", record[1]) if record else None
    return None if found is None else re.sub(r"^\((.*)\)$", r"\1", found[1])


def test_every_option_of_every_command_is_a_settings_field_showing_its_default():
    checked = 0
    for name, command, ctx in _commands():
        fields = {opt.name: opt for cls in settings_of(command.callback).values() for opt in options(cls)}
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help" or name in _HAND_WRITTEN:
                continue
            opt = fields.get(param.name)
            assert opt is not None, f"textsleep {name} {param.opts[0]}: not a settings field"
            assert set(opt.flags) <= set(param.opts), (name, param.opts, opt.flags)
            checked += 1
            if opt.required:
                assert param.required, (name, param.opts)
                continue
            shown = _shown_default(param, ctx)
            if shown is not None:
                assert shown == opt.default_text, (name, param.opts, shown, opt.default_text)
            if param.default is not None:  # the command's own default (not a dream option left unset) is the field's
                assert param.default == (list(opt.default) if opt.multiple else opt.default), (name, param.opts)
            elif opt.default not in (None, False, ()) and opt.show is not False:
                assert shown is not None, f"textsleep {name} {param.opts[0]}: its default is not shown"
    assert checked > 100  # dream's options, the explorer's, invert's, bench's, batch's, eval's, ui's, upscale's


def test_a_settings_dataclass_becomes_options_and_the_command_gets_it_built():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Knobs:
        count: int = knob(3, "How many.", short="-n")
        names: tuple[str, ...] = knob(("a",), "Names (repeatable).", flag="--name")
        loud: bool = knob(False, "Shout.")

        def __post_init__(self):
            if self.count < 1:
                raise UserError(f"--count {self.count}: must be >= 1")

    seen = []

    @with_settings
    def command(word: str = typer.Argument(...), *, knobs: Knobs, given: Given[DreamSettings]):
        seen.append((word, knobs, given))

    one = typer.Typer(rich_markup_mode=None)  # help as plain text, as textsleep's own app writes it
    one.command()(command)
    result = CliRunner().invoke(one, ["hi", "-n", "5", "--name", "x", "--name", "y", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert seen == [("hi", Knobs(count=5, names=("x", "y")), {"seed": 2})]  # of the dream's, only what was given
    assert "[default: 3]" in CliRunner().invoke(one, ["--help"]).output
    assert list(inspect.signature(command).parameters)[:4] == ["word", "count", "names", "loud"]
    with pytest.raises(UserError, match="--count 0"):
        command("hi", count=0, names=["a"], loud=False, **{o.name: None for o in options(DreamSettings)})


def test_prompt_file_lines_are_read_by_the_dream_commands_own_options():
    dream = typer.main.get_command(app).commands["dream"]
    flags = {flag for param in dream.params for flag in param.opts + param.secondary_opts}
    for opt in options(DreamSettings):
        assert set(opt.flags) <= flags, opt.flags
    assert parse_options(["-i", "5", "--no-video", "--clip-model=a", "--clip-model", "b"]) == {
        "iterations": 5,
        "clip_model": ("a", "b"),
        "video": False,
    }
    for tokens, message in [
        (["--seed", "x"], "--seed 'x'"),
        (["--bogus"], "No such option: --bogus"),
        (["--seed"], "'--seed' requires an argument"),
        (["a", "word"], "'a': unexpected word"),
        (["--help"], "No such option: --help"),
    ]:
        with pytest.raises(UserError, match=re.escape(message) + ".*see textsleep dream --help"):
            parse_options(tokens)


def test_invert_takes_only_options_it_uses():
    used = set(inspect.signature(invert_photo).parameters) | {f.name for f in dataclasses.fields(DreamSettings)}
    assert {f.name for f in dataclasses.fields(InvertSettings)} <= used
    with pytest.raises(UserError, match="pixel_weight=-1"):
        InvertSettings(pixel_weight=-1)
    with pytest.raises(UserError, match="size=300"):  # the fields it shares with a dream are checked as a dream's
        InvertSettings(size=300)
