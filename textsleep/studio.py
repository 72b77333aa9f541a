"""The engine of the web page: one dream at a time on shared models, its pictures passed back as they come.

:class:`Studio` knows nothing of the web: one :class:`~textsleep.models.ModelCache`
for every request, each dream an :class:`~textsleep.imagine.Imagine` run in a
worker thread whose ``on_step`` hook passes pictures back through a queue.
Saving, stopping and resuming are Imagine's; nothing here writes a run folder.
:mod:`textsleep.ui` lays the page out around it.

Everything a request carries is input: a visitor's dream is held to the
page's own limits (:data:`~textsleep.limits.PAGE_LIMITS`), a run to continue
or a batch to show must be one the page lists, and only run folders and
pictures that lie inside ``--out`` (no symlink leading out) are listed; a
picture goes to the page as a copy made here, never as a path.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError, for_command_line
from .hooks import Hook, Status
from .imagine import Imagine
from .limits import PAGE_LIMITS, check_limit, prompt_counts
from .media import make_grid, to_pil
from .models import ModelCache
from .page_lists import list_runs
from .runs import read_run
from .settings import RUN_ONLY, DreamSettings

__all__ = ["Update", "Studio"]

_log = logging.getLogger(__name__)
_POLL = 0.25  # seconds between looks at the dream's queue (and so, at most, between page updates)


@dataclass
class Update:
    """What the page shows after a dream moved: the picture (None: unchanged) and one line of text."""

    text: str
    picture: Any = None  # PIL image: the pictures side by side
    step: int = 0
    run_dir: Path | None = None
    done: bool = False
    error: bool = False


def _strip(imagine):
    """The current picture(s) of a dream, side by side, as one PIL image."""

    images = imagine.dream.render(ema=True)
    return to_pil(images[0] if images.shape[0] == 1 else make_grid(images, cols=images.shape[0]))


class _Relay(Hook):
    """A dream's hook: every step's numbers, and a picture at most every ``seconds``, into a queue."""

    def __init__(self, inbox: queue.Queue, seconds: float) -> None:
        self.inbox, self.seconds, self._last = inbox, seconds, None

    def __call__(self, imagine, step) -> None:
        now = time.monotonic()
        picture = None
        if self._last is None or now - self._last >= self.seconds or step.index >= imagine.settings.iterations:
            picture, self._last = _strip(imagine), now
        self.inbox.put(("step", step, picture))

    def close(self, imagine, status: Status) -> None:
        shown = status != Status.FAILED and imagine.dream is not None and imagine.dream.step_count
        self.inbox.put(("closed", status, _strip(imagine) if shown else None))


class Studio:
    """Dreams for the page: shared models, one at a time, stoppable, streamed as :class:`Update` records.

    ``defaults`` are dream options (DreamSettings fields, e.g. from the command
    line); the page's values go on top of them.  ``preview_seconds``: how often
    a new picture is rendered for the page while dreaming.
    """

    def __init__(self, defaults: dict[str, Any] | None = None, *, models=None, preview_seconds: float = 1.0) -> None:

        self.given = dict(defaults or {})
        self.defaults = DreamSettings.from_dict(self.given)  # bad options fail before a page exists
        self.out = Path(self.defaults.out).expanduser()
        # a visitor's limits: the page's own, raised where the defaults given to the page are larger
        d = self.defaults
        self.limits = {k: max(v, getattr(d, k, 0) or 0) for k, v in PAGE_LIMITS.items()}
        self.limits["prompts"] = max(self.limits["prompts"], *prompt_counts(d.text, d.negatives, d.images))
        self.limits["prompt_chars"] = max(self.limits["prompt_chars"], len(d.text))
        self.models = models or ModelCache()
        self.preview_seconds = preview_seconds
        self._turn = threading.Lock()  # one dream at a time
        self._state = threading.Lock()
        self._running: tuple[str, Any, threading.Thread] | None = None  # (session, Imagine, its thread)
        self._waiting: Counter[str] = Counter()
        self._stop_asked: set[str] = set()

    # ------------------------------------------------------------------------------------------ stopping
    def expect(self, session: str) -> None:
        """A dream for ``session`` was asked for and waits its turn (so that Stop can cancel it)."""
        with self._state:
            self._waiting[session] += 1

    def stop(self, session: str = "") -> str:
        """Stop this session's dream after its current step (it saves, as Ctrl-C does), or its waiting one."""
        with self._state:
            if self._running is not None and self._running[0] == session:
                self._running[1].stop()
                return "stopping after this step…"
            if self._waiting[session] > 0:
                self._stop_asked.add(session)
                return "your waiting dream will not start"
        return "nothing to stop"

    def shutdown(self) -> None:
        """Stop whatever runs and wait until it has saved."""
        with self._state:
            running = self._running
        if running is not None:
            running[1].stop()
            running[2].join()

    # ------------------------------------------------------------------------------------------ dreaming
    def dream(
        self,
        text: str = "",
        options: dict[str, Any] | None = None,
        *,
        resume: str | Path | None = None,
        session: str = "",
    ) -> Iterator[Update]:
        """Dream ``text`` with these options (or continue the run folder ``resume``), yielding page updates.

        Mistakes come back as one final Update with ``error`` set and the same
        one-line message the command line prints.  Closing the generator early
        stops the dream (it saves).
        """
        with self._state:
            if self._waiting[session] > 0:
                self._waiting[session] -= 1
        with self._turn:
            with self._state:
                if session in self._stop_asked:
                    self._stop_asked.discard(session)
                    yield Update("stopped before it started", done=True)
                    return
            try:
                if resume is not None:
                    resume = self._listed(resume)
                self._check_limits(text, options or {}, resume)
                imagine, inbox = self._imagine(text, options or {}, resume)
            except UserError as err:
                yield Update(f"error: {for_command_line(err)}", done=True, error=True)
                return
            yield from self._follow(session, imagine, inbox)

    def _listed(self, folder: str | Path) -> Path:
        """A run folder to continue: one the page lists (directly under ``out``, not a symlink), else a UserError."""
        path = Path(folder)
        if not any(run["folder"] == path for run in list_runs(self.out)):
            raise UserError(f"{str(folder)!r}: not a run this page lists (a run folder directly under {self.out})")
        return path

    def _check_limits(self, text: str, options: dict[str, Any], resume: Path | None) -> None:
        """What a visitor asks for stays within the page's limits (one line naming the limit otherwise)."""
        where, limits = " on this page (start it with a larger default to allow more)", self.limits
        if resume is not None:
            done = int(read_run(resume).get("steps_done") or 0)
            total = options.get("iterations")
            most = limits["iterations"]
            if isinstance(total, int) and total - done > most:
                raise UserError(f"continue to step {total}: {total - done} more steps, at most {most} allowed{where}")
            return
        asked = {**self.defaults.to_dict(), **{k: v for k, v in options.items() if v is not None}}
        for name in ("iterations", "cutouts", "num_images", "init_candidates", "save_every"):
            check_limit(asked.get(name), name, "--" + name.replace("_", "-"), limits=limits, where=where)
        negatives = tuple(asked.get("negatives") or ())
        if isinstance(text, str) and all(isinstance(t, str) for t in negatives):
            longest = max([len(text), *map(len, negatives)])
            if longest > limits["prompt_chars"]:
                raise UserError(f"prompt of {longest} characters: at most {limits['prompt_chars']} allowed{where}")
            count = max(prompt_counts(text, negatives))
            if count > limits["prompts"]:
                raise UserError(f"{count} prompts: at most {limits['prompts']} allowed{where}")

    def _imagine(self, text: str, options: dict[str, Any], resume):

        inbox: queue.Queue = queue.Queue()
        hook = _Relay(inbox, self.preview_seconds)
        if resume is not None:  # the command line's device, saving and such apply; the picture's own settings stay
            changes = {k: v for k, v in self.given.items() if k in RUN_ONLY and k != "out"}
            changes.update({k: v for k, v in options.items() if k == "iterations"})
            if self.given.get("biggan"):  # (the page's own --biggan: a URL recorded in a run is fetched only then)
                changes["biggan"] = self.given["biggan"]
            imagine = Imagine(resume=resume, models=self.models, on_step=hook, display_every=0, quiet=True, **changes)
        else:
            settings = {**self.defaults.to_dict(), **{k: v for k, v in options.items() if v is not None}}
            settings.pop("text", None)
            if not text.strip() and not settings.get("images"):  # (the page's advice, not the command line's)
                raise UserError('empty prompt; type some words in the Prompt box, e.g. "upside down tree"')
            imagine = Imagine(text, models=self.models, on_step=hook, display_every=0, quiet=True, **settings)
        return imagine, inbox

    def _follow(self, session: str, imagine, inbox: queue.Queue) -> Iterator[Update]:
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                result["run_dir"] = imagine()
            except UserError as err:
                result["error"] = f"error: {for_command_line(err)}"
            except BaseException as err:  # a fault, not a mistake: one line on the page, the traceback in the log
                _log.exception("the dream failed")
                result["error"] = f"error: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(
                    ": "
                )
            finally:
                inbox.put(("ended", None, None))  # (the worker is done, however the dream ended)

        worker = threading.Thread(target=work, name="textsleep-dream", daemon=True)
        worker.start()
        with self._state:
            self._running = (session, imagine, worker)
        s, step, picture, status, ended = imagine.settings, None, None, None, False
        yield Update(self._line(imagine, None))
        try:
            while not ended:
                try:
                    items = [inbox.get(timeout=_POLL)]
                except queue.Empty:
                    continue
                while not inbox.empty():  # all that came since the last look, as one update
                    items.append(inbox.get())
                fresh = any(image is not None for _, _, image in items)
                picture = next((image for _, _, image in reversed(items) if image is not None), picture)
                step = next((value for kind, value, _ in reversed(items) if kind == "step"), step)
                status = next((value for kind, value, _ in items if kind == "closed"), status)
                ended = any(kind == "ended" for kind, _, _ in items)
                if not ended:
                    yield Update(
                        self._line(imagine, step),
                        picture if fresh else None,
                        step.index if step else 0,
                        imagine.run_dir,
                    )
        finally:
            if worker.is_alive():  # the page went away: stop (and save) before giving the models to the next dream
                imagine.stop()
                worker.join()
            with self._state:
                self._running = None
        done = imagine.dream.step_count if imagine.dream is not None else 0
        if "error" in result:
            yield Update(result["error"], picture if fresh else None, done, imagine.run_dir, done=True, error=True)
            return
        score = imagine.final_score
        facts = f"CLIP score {score:.3f} · " if score is not None else ""
        if status == Status.INTERRUPTED:
            text = (
                f"stopped at step {done}/{s.iterations} · {facts}saved to {imagine.run_dir} "
                "(open it under Runs to continue)"
            )
        else:
            text = f"finished: step {done}/{s.iterations} · {facts}saved to {imagine.run_dir}"
        yield Update(text, picture if fresh else None, done, imagine.run_dir, done=True)

    @staticmethod
    def _line(imagine, step) -> str:
        s = imagine.settings
        if step is None:
            return f"loading the models and starting · seed {s.seed}"
        where = f" · {imagine.run_dir}" if imagine.run_dir is not None else ""
        return f"step {step.index}/{s.iterations} · CLIP score {step.score:.3f} · seed {s.seed}{where}"
