"""How a run reports: the state it is in (:class:`Status`) and what watches it step by step (:class:`Hook`).

A dream, a photo inversion and a batch job share these.  A hook is called
after every step with the run and the :class:`textsleep.dream.Step`, and
closed once when the run ends, with its status.  A plain function
``f(run, step)`` is a hook too (:func:`as_hooks` wraps it).

>>> class Printer(Hook):
...     def __call__(self, run, step):
...         print(step.index, round(step.score, 3))
...     def close(self, run, status):
...         print("ended", status)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

__all__ = ["Status", "Hook", "as_hooks"]


class Status(StrEnum):
    """Where a run or a batch job stands (written to ``run.json`` and ``manifest.jsonl`` as its value)."""

    PENDING = "pending"  # a batch job that has not started
    RUNNING = "running"  # dreaming now (or stopped without a trace: a kill -9, a power cut)
    FINISHED = "finished"
    FAILED = "failed"  # stopped by an error; the last save is kept
    INTERRUPTED = "interrupted"  # stopped on request (Ctrl-C, TERM, stop()); resumable from its last save


class Hook:
    """Watches a run: called after every step, closed once when the run ends (both do nothing by default)."""

    def __call__(self, run: Any, step: Any) -> None:
        """After every step: ``run`` is the :class:`textsleep.Imagine` (or inversion), ``step`` what the step did."""

    def close(self, run: Any, status: Status) -> None:
        """The run ended with ``status``; also called when it ended with an error."""


class _FunctionHook(Hook):
    def __init__(self, function: Callable[[Any, Any], Any]) -> None:
        self.function = function

    def __call__(self, run: Any, step: Any) -> None:
        self.function(run, step)

    def __repr__(self) -> str:
        return f"Hook({self.function!r})"


def as_hooks(given: Hook | Callable | Iterable[Hook | Callable] | None) -> list[Hook]:
    """``None``, one hook or function, or a list of them, as a list of :class:`Hook`."""
    if given is None:
        return []
    items = [given] if callable(given) else list(given)
    for item in items:
        if not callable(item):
            raise TypeError(f"on_step: {item!r} is not a hook (a Hook, or a function f(run, step))")
    return [item if isinstance(item, Hook) else _FunctionHook(item) for item in items]
