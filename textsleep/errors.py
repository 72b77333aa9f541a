"""The exception types a user meets, and the one way an error becomes one line of text.

Anything raised as :class:`UserError` is shown by the CLI as a single line
(``error: …``) with a non-zero exit code and no traceback.  Its message names
the bad value and what is allowed instead.  A :class:`SettingError` names the
setting as its caller wrote it: ``size=100`` to Python, ``--size 100`` on the
command line (:func:`for_command_line`).

:class:`Interrupted` is a stop asked for by a signal (``SIGTERM`` from a
cluster's time limit or ``scancel``, ``SIGHUP`` from a closed terminal).  It is
a ``KeyboardInterrupt``, so everything that saves its work on Ctrl-C saves it
on these too; the command line exits with its ``exit_code`` (128 + signal).
"""

from __future__ import annotations

import signal

__all__ = ["UserError", "SettingError", "Interrupted", "one_line", "for_command_line"]


class UserError(ValueError):
    """Bad input or a missing resource that the user can put right."""


class SettingError(UserError):
    """A setting's value is not allowed: ``size=100: allowed sizes are 128, 256, 512``.

    ``name`` is the keyword (the settings field), ``flag`` its command-line
    option, ``value`` the value given and ``reason`` what is wrong with it and
    what is allowed; :attr:`command_line` words it with the flag.  A setting
    that is ``missing`` has ``{option}`` in its reason where the words say how
    to give it (``change_every=N``, ``--change-every N``).
    """

    def __init__(
        self, name: str, value: object, reason: str, *, flag: str | None = None, missing: bool = False
    ) -> None:
        self.name, self.value, self.reason, self.missing = name, value, reason, missing
        self.flag = flag or "--" + name.replace("_", "-")
        super().__init__(self._worded(f"{name}=N" if missing else f"{name}={value!r}"))

    def _worded(self, option: str) -> str:
        return self.reason.replace("{option}", option) if self.missing else f"{option}: {self.reason}"

    @property
    def command_line(self) -> str:
        """The message as the command line words it: ``--size 100: allowed sizes are 128, 256, 512``."""
        return self._worded(f"{self.flag} N" if self.missing else f"{self.flag} {self.value!r}")


def for_command_line(err: BaseException) -> str:
    """An error's message for someone who typed options: a :class:`SettingError` names the flag, not the keyword."""
    return err.command_line if isinstance(err, SettingError) else str(err)


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
