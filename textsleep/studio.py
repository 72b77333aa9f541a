"""The engine of the web page: one dream at a time on shared models, its pictures passed back as they come.

:class:`Studio` knows nothing of the web: one :class:`~textsleep.models.ModelCache`
for every request, each dream an :class:`~textsleep.imagine.Imagine` run in a
worker thread whose ``on_step`` hook passes pictures back through a queue.
Saving, stopping and resuming are Imagine's; nothing here writes a run folder.
:mod:`textsleep.ui` lays the page out around it.
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

from .batch import BatchFolder, batch_status
from .errors import UserError, for_command_line
from .hooks import Hook, Status
from .imagine import Imagine
from .media import make_grid, to_pil
from .models import ModelCache
from .runs import RUN_FILES, read_record
from .settings import RUN_ONLY, DreamSettings

__all__ = ["Update", "Studio", "list_runs", "list_batches", "batch_summary", "caption", "table_cell"]

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
                imagine, inbox = self._imagine(text, options or {}, resume)
            except UserError as err:
                yield Update(f"error: {for_command_line(err)}", done=True, error=True)
                return
            yield from self._follow(session, imagine, inbox)

    def _imagine(self, text: str, options: dict[str, Any], resume):

        inbox: queue.Queue = queue.Queue()
        hook = _Relay(inbox, self.preview_seconds)
        if resume is not None:  # the command line's device, saving and such apply; the picture's own settings stay
            changes = {k: v for k, v in self.given.items() if k in RUN_ONLY and k != "out"}
            changes.update({k: v for k, v in options.items() if k == "iterations"})
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


# ---------------------------------------------------------------------------------------------- what is on disk
def _first_picture(folder: Path) -> Path | None:

    for kind in ("image", "sheet"):
        if (folder / RUN_FILES[kind]).is_file():
            return folder / RUN_FILES[kind]
    return next(iter(sorted(folder.glob(f"*/{RUN_FILES['image']}"))), None)


def list_runs(out: str | Path) -> list[dict[str, Any]]:
    """The run folders directly under ``out``, newest first, with what their run.json says."""

    found = []
    for record_file in Path(out).expanduser().glob(f"*/{RUN_FILES['record']}"):
        folder = record_file.parent
        try:
            record = read_record(folder)
            mtime = record_file.stat().st_mtime
        except (OSError, UserError):
            continue  # gone, or not ours
        if not isinstance(record, dict) or "batch" in record or not isinstance(record.get("settings"), dict):
            continue  # a picture's sub-folder of a several-picture run, or not a run
        found.append(
            dict(
                folder=folder,
                picture=_first_picture(folder),
                prompt=record.get("prompt") or "",
                seed=record.get("seed"),
                score=record.get("final_score"),
                status=record.get("status", "?"),
                steps_done=int(record.get("steps_done") or 0),
                iterations=int(record["settings"].get("iterations") or 0),
                settings=record["settings"],
                mtime=mtime,
            )
        )
    found.sort(key=lambda r: r["mtime"], reverse=True)
    return found


def caption(run: dict[str, Any]) -> str:
    score = f" · score {run['score']:.3f}" if isinstance(run["score"], (int, float)) else ""
    state = "" if run["status"] == Status.FINISHED else f" · {run['status']} at {run['steps_done']}/{run['iterations']}"
    return f"{run['prompt'] or run['folder'].name} · seed {run['seed']}{score}{state}"


def list_batches(out: str | Path) -> list[str]:
    """Batch folders under ``out`` (and ``out`` itself when it is one), newest first."""

    out = Path(out).expanduser()
    found = [p for p in [out, *out.glob("*/")] if BatchFolder(p).meta_file.is_file()]
    return [str(p) for p in sorted(found, key=lambda p: (p != out, -BatchFolder(p).meta_file.stat().st_mtime))]


def table_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def batch_summary(path: str | Path) -> str:
    """A batch folder's progress as Markdown: counts, time left, one row per job."""

    if not str(path or "").strip():
        raise UserError("give a batch folder (the --out of a textsleep batch run)")
    status = batch_status(path)
    p = status.progress
    lines = [
        f"**{table_cell(status.folder)}** ({table_cell(status.prompt_file)}): {p.total} jobs · {p.finished} finished "
        f"· {p.failed} failed · {p.running} running · {p.waiting} waiting"
    ]
    if p.eta_seconds is not None and p.remaining_steps:
        lines.append(
            f"about {p.eta_seconds / 60:.0f} min left ({p.remaining_steps} steps at {p.seconds_per_step:.2f} s a step)"
        )
    lines += ["", "| status | score | steps | seed | prompt |", "|---|---|---|---|---|"]
    for r in status.records:
        score = f"{r['final_score']:.3f}" if isinstance(r.get("final_score"), (int, float)) else "-"
        steps = f"{r.get('steps_done') or 0}/{r.get('iterations')}" if r.get("iterations") else "-"
        prompt = r.get("prompt") or r.get("source", "")
        if r.get("error"):
            prompt += f" — {r['error']}"
        lines.append(f"| {r.get('status', '?')} | {score} | {steps} | {r.get('seed', '-')} | {table_cell(prompt)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the page
