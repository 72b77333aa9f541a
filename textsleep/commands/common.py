"""What every command shares: one-line errors, one-line warnings, quiet library logging."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable

import typer

from ..errors import UserError

__all__ = ["cli_errors", "echo_err", "settings_default"]


def echo_err(message: str) -> None:
    typer.echo(message, err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    echo_err(f"warning: {message}")


def cli_errors(func: Callable) -> Callable:
    """Run a command so that user mistakes are one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        logging.getLogger().setLevel(logging.ERROR)  # libraries' chatter (e.g. open_clip's notes) stays out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("default", module=r"textsleep(\.|$)")
            warnings.showwarning = _show_warning
            try:
                return func(*args, **kwargs)
            except UserError as err:
                echo_err(f"error: {err}")
                raise typer.Exit(2) from None
            except FileNotFoundError as err:
                echo_err(f"error: {err.filename or err}: no such file or folder")
                raise typer.Exit(2) from None
            except KeyboardInterrupt:
                echo_err("\ninterrupted")
                raise typer.Exit(130) from None

    return wrapper


def settings_default(name: str) -> str:
    """A DreamSettings default as --help shows it (the dataclass is the single source of defaults)."""
    from dataclasses import MISSING, fields

    from ..settings import DreamSettings

    for f in fields(DreamSettings):
        if f.name == name:
            value = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            return "random" if value is None and name == "seed" else str(value)
    raise KeyError(name)

