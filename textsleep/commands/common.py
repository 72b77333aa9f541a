"""What every command shares: one-line errors, one-line warnings, quiet library logging."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable

import typer

from ..errors import UserError

__all__ = ["cli_errors", "echo_err", "settings_default", "progress_hook"]


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
    from ..settings import options

    return next(opt.show for opt in options() if opt.name == name)


class _ProgressBar:
    """A per-step hook drawing a tqdm bar of a dream's steps, with its loss and score."""

    def __init__(self, desc: str = "dreaming", leave: bool = True) -> None:
        self.desc, self.leave, self.bar = desc, leave, None

    def __call__(self, imagine, step) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            total = imagine.settings.iterations
            self.bar = tqdm(total=total, initial=step.index - 1, desc=self.desc, unit="step", dynamic_ncols=True, leave=self.leave)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{step.loss:.3f}", score=f"{step.score:.3f}", refresh=False)

    def close(self, imagine, status: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_hook(desc: str = "dreaming", leave: bool = True) -> _ProgressBar:
    """A hook for ``Imagine(on_step=...)`` that shows the dream's progress as a bar on stderr."""
    return _ProgressBar(desc, leave)
