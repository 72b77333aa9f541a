"""What every command shares: one-line errors and warnings, quiet library logging, signals, the progress bar."""

from __future__ import annotations

import functools
import logging
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer
from tqdm.auto import tqdm

from ..errors import Interrupted, UserError, for_command_line
from ..hooks import Hook, Status
from ..settings import knob

__all__ = ["cli_errors", "echo_err", "stop_signals", "Display", "ProgressBar"]

_STOP_SIGNALS = ("SIGTERM", "SIGHUP")  # a time limit or scancel; a closed terminal


def echo_err(message: str) -> None:
    typer.echo(message, err=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    echo_err(f"warning: {message}")


@contextmanager
def stop_signals() -> Iterator[None]:
    """While inside: SIGTERM and SIGHUP raise :class:`Interrupted`, as Ctrl-C raises KeyboardInterrupt.

    So whatever saves its work on Ctrl-C saves it when a cluster's time limit,
    ``scancel`` or a closed terminal stops the command.  Only the first such
    signal interrupts; later ones (a scheduler may send TERM more than once)
    are ignored while that one unwinds.  The previous handlers come back on
    the way out.  (Handlers can only be set from the main thread; elsewhere
    this does nothing.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def interrupt(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise Interrupted(signum)

    previous = {}
    for name in _STOP_SIGNALS:
        signum = getattr(signal, name, None)  # (Windows has no SIGHUP)
        if signum is not None:
            previous[signum] = signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def cli_errors(func: Callable) -> Callable:
    """Run a command so that user mistakes are one line on stderr and exit code 2, never a traceback.

    Ctrl-C exits with 130; SIGTERM and SIGHUP are handled as Ctrl-C is (see
    :func:`stop_signals`) and exit with 143 and 129.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        logging.getLogger().setLevel(logging.ERROR)  # libraries' chatter (e.g. open_clip's notes) stays out
        with warnings.catch_warnings(), stop_signals():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("default", module=r"textsleep(\.|$)")
            warnings.showwarning = _show_warning
            try:
                return func(*args, **kwargs)
            except UserError as err:
                echo_err(f"error: {for_command_line(err)}")
                raise typer.Exit(2) from None
            except FileNotFoundError as err:
                echo_err(f"error: {err.filename or err}: no such file or folder")
                raise typer.Exit(2) from None
            except KeyboardInterrupt as err:
                echo_err(f"\n{err}" if isinstance(err, Interrupted) else "\ninterrupted")
                raise typer.Exit(getattr(err, "exit_code", 130)) from None

    return wrapper


@dataclass(frozen=True)
class Display:
    """How a command that runs a dream or an inversion shows its progress."""

    quiet: bool = knob(False, "No progress bar.", short="-q")


class ProgressBar(Hook):
    """A tqdm bar of a run's steps on stderr with its loss and CLIP score, or its pixel loss (a photo's inversion).

    It is drawn from the first step on, not while the models load.  One bar
    serves several runs one after another (a batch's jobs): each run's
    ``close`` ends its bar and the next run's first step starts a new one.
    """

    def __init__(self, desc: str = "dreaming", leave: bool = True) -> None:
        self.desc, self.leave, self.bar = desc, leave, None

    def __call__(self, run, step) -> None:
        if self.bar is None:
            total = run.settings.iterations
            self.bar = tqdm(
                total=total, initial=step.index - 1, desc=self.desc, unit="step", dynamic_ncols=True, leave=self.leave
            )
        self.bar.update(1)
        if "extra" in step.losses:
            self.bar.set_postfix(pixel=f"{step.losses['extra']:.4f}", clip=f"{step.score:.3f}", refresh=False)
        else:
            self.bar.set_postfix(loss=f"{step.loss:.3f}", score=f"{step.score:.3f}", refresh=False)

    def close(self, run=None, status: Status | None = None) -> None:
        if self.bar is not None:
            self.bar.refresh()  # (the last steps may have come faster than the bar redraws)
            self.bar.close()
            self.bar = None
