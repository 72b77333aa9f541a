"""The exception types a user meets, and the one way an error becomes one line of text.

Anything raised as :class:`UserError` is shown by the CLI as a single line
(``error: …``) with a non-zero exit code and no traceback.  Its message names
the bad value and what is allowed instead.

:class:`Interrupted` is a stop asked for by a signal (``SIGTERM`` from a
cluster's time limit or ``scancel``, ``SIGHUP`` from a closed terminal).  It is
a ``KeyboardInterrupt``, so everything that saves its work on Ctrl-C saves it
on these too; the command line exits with its ``exit_code`` (128 + signal).
"""

from __future__ import annotations

import signal

__all__ = ["UserError", "Interrupted", "one_line"]


class UserError(ValueError):
    """Bad input or a missing resource that the user can put right."""


class Interrupted(KeyboardInterrupt):
    """Stopped by a signal; handled as Ctrl-C is.  ``exit_code`` is 143 for SIGTERM, 129 for SIGHUP."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        super().__init__(f"stopped by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


def one_line(err: BaseException, limit: int = 400, *, named: bool | None = None) -> str:
    """An error's message on one line, at most ``limit`` characters.

    The exception's class is named in front (``RuntimeError: …``) unless it is a
    :class:`UserError`, whose message is already written for a person, or
    ``named`` says otherwise.
    """
    text = " ".join(str(err).split())
    if named is None:
        named = not isinstance(err, UserError)
    if named or not text:
        text = f"{err.__class__.__name__}: {text}" if text else err.__class__.__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
