"""Running a batch's jobs: claim one, start or resume its dream in its own run folder, record each attempt."""

from __future__ import annotations

import gc
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import Interrupted, one_line
from ..hooks import Status
from ..imagine import Imagine
from ..models import ModelCache
from ..outputs import read_json
from ..runs import RUN_FILES, RunFolder, RunRecord
from ..settings import DreamSettings
from .plan import Job
from .status import Progress, progress
from .store import RUNS, STOPPED, BatchFolder, steps_saved, utc_now

__all__ = ["Event", "run_jobs"]

_RECORD, _CHECKPOINT = RUN_FILES["record"], RUN_FILES["checkpoint"]


@dataclass
class Event:
    """What happened to a job: ``start``, ``finished``, ``failed`` or ``skipped`` (with why)."""

    kind: str
    job: Job
    record: dict[str, Any]
    progress: Progress
    why: str = ""  # for skipped: finished | failed | taken
    resumed_from: int = 0  # the step a resumed job continued from (0: a fresh start)
    restarted: str = ""  # why a job with saved steps started again from step 0 (its files could not be read)


def _wanted(record: dict[str, Any], retry_failed: bool) -> str:
    """Why a job is not to be run now ('' when it is)."""
    status = record.get("status")
    if status == Status.FINISHED:
        return Status.FINISHED
    if status == Status.FAILED and not retry_failed:
        return Status.FAILED
    return ""


def run_jobs(
    folder: BatchFolder,
    jobs: list[Job],
    *,
    retry_failed: bool = False,
    device: str | None = None,
    quiet: bool = True,
    models=None,
    workers: int = 1,
    on_step=None,
) -> Iterator[Event]:
    """Run the valid jobs not yet done, one at a time, yielding an :class:`Event` before and after each.

    Finished jobs are skipped, failed ones too unless ``retry_failed``; a job
    with a checkpoint continues from it, and one whose checkpoint or
    ``run.json`` cannot be read starts again from step 0 (the attempt says
    why).  A failing job (a NaN, missing weights, out of memory) is recorded
    with a one-line reason and the next one starts.  On Ctrl-C, or any
    ``KeyboardInterrupt`` such as :class:`textsleep.errors.Interrupted`, the
    running job is saved (by the dream), its record says ``interrupted``, and
    the interrupt goes on up; the next run of the batch resumes that job.
    ``on_step`` is given to each dream (``Imagine(on_step=...)``), e.g. a
    progress bar.
    """

    models = models or ModelCache()
    mine = [job for job in jobs if job.valid]
    for job in mine:
        why = _wanted(folder.records().get(job.id, {}), retry_failed)
        if why:
            yield _event(folder, "skipped", job, mine, workers, why=why)
            continue
        with folder.claim(job.id) as held:
            if not held:
                yield _event(folder, "skipped", job, mine, workers, why="taken")
                continue
            why = _wanted(folder.records().get(job.id, {}), retry_failed)  # another worker may have just finished it
            if why:
                yield _event(folder, "skipped", job, mine, workers, why=why)
                continue
            yield from _run_one(
                folder, job, mine, device=device, quiet=quiet, models=models, workers=workers, on_step=on_step
            )


def _event(folder: BatchFolder, kind: str, job: Job, mine: list[Job], workers: int, **extra: Any) -> Event:
    records = folder.records()
    current = folder.ordered(records)
    ids = {j.id for j in mine}
    return Event(
        kind, job, records.get(job.id, {}), progress(current, [r for r in current if r["id"] in ids], workers), **extra
    )


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_one(
    folder: BatchFolder, job: Job, mine: list[Job], *, device, quiet, models, workers, on_step
) -> Iterator[Event]:
    """Start or resume one job in its run folder and record how it ended."""
    record = folder.records()[job.id]
    run_dir = folder.run_dir(record) if record.get("folder") else folder.path / RUNS / job.folder
    saved_steps = steps_saved(run_dir)
    # an attempt still marked running was stopped without a word (killed, power cut): it got as far as the checkpoint
    record["attempts"] = [
        {**a, "status": STOPPED, "to_step": saved_steps} if a.get("status") == Status.RUNNING else a
        for a in record.get("attempts", [])
    ]
    if _already_finished(run_dir, job):
        folder.update(
            job.id,
            **_outcome(run_dir, record, status=Status.FINISHED, seconds=0.0, steps_run=0),
            attempts=record["attempts"],
        )
        yield _event(folder, "finished", job, mine, workers)
        return
    restarted = _set_aside_unreadable(run_dir, job)
    resumable = not restarted and RunFolder(run_dir).has_checkpoint()
    from_step = saved_steps if resumable else 0
    yield _event(folder, "start", job, mine, workers, resumed_from=from_step, restarted=restarted)
    attempt = {
        "worker": _worker_name(),
        "device": device or job.settings.get("device"),
        "started": utc_now(),
        "from_step": from_step,
    }
    if restarted:
        attempt["restarted"] = restarted
    folder.update(
        job.id,
        status=Status.RUNNING,
        worker=attempt["worker"],
        attempts=[*record["attempts"], {**attempt, "status": Status.RUNNING}],
    )
    imagine, t0, error = None, None, None
    try:
        imagine = _imagine(job, run_dir, resumable, device=device, quiet=quiet, models=models, on_step=on_step)
        imagine.prepare()  # loads the models (once per worker) and the checkpoint, if there is one
        attempt["from_step"] = imagine.dream.step_count
        t0 = time.perf_counter()
        imagine()
    except KeyboardInterrupt as err:  # Ctrl-C, or a signal (Interrupted): the dream has saved itself
        if isinstance(err, Interrupted):
            attempt["signal"] = err.signal_name
        _record_attempt(folder, record, attempt, imagine, Status.INTERRUPTED, t0)
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one job is recorded and the batch goes on
        error = one_line(err)
    _record_attempt(folder, record, attempt, imagine, Status.FAILED if error else Status.FINISHED, t0, error=error)
    if error:
        del imagine
        _free_memory()  # e.g. after running out of GPU memory, before the next job
    yield _event(folder, "failed" if error else "finished", job, mine, workers, resumed_from=attempt["from_step"])


def _imagine(job: Job, run_dir: Path, resumable: bool, *, device, quiet, models, on_step):
    """The dream of a job: continued from its checkpoint, or new in its own run folder."""

    run_only = {"device": device} if device else {}
    if resumable:
        keep = {k: job.settings[k] for k in ("iterations", "save_every", "save_progress", "video")}
        if job.settings.get("biggan"):
            keep["biggan"] = job.settings["biggan"]  # (the prompt file's, so a URL there is the user's own)
        return Imagine(resume=run_dir, quiet=quiet, models=models, on_step=on_step, **keep, **run_only)
    # the job's own folder, so a rerun finds it
    return Imagine(run_dir=run_dir, quiet=quiet, models=models, on_step=on_step, **{**job.settings, **run_only})


def _set_aside_unreadable(run_dir: Path, job: Job) -> str:
    """Move a damaged checkpoint or run record out of the way ('NAME.damaged'); why, or '' when both read.

    A file cut short (a full disk, a copy that stopped), overwritten or not
    this job's (checked as a resumed run checks it) cannot be resumed from; the
    job starts over in its own folder, nothing else lost.
    """

    reasons, settings = [], DreamSettings.from_dict(job.settings)
    reads = (
        (_CHECKPOINT, lambda: RunFolder(run_dir).load_checkpoint(settings)),
        (_RECORD, lambda: RunRecord.read(run_dir, job.settings)),  # (a URL the prompt file gives is the user's)
    )
    for name, read in reads:
        file = run_dir / name
        if not file.is_file():
            continue
        try:
            read()
        except Exception as err:  # noqa: BLE001 - whatever is wrong with it, it cannot be resumed from
            why = one_line(err, 200).replace(f"{file}: ", "").replace(f"{str(file)!r}: ", "")
            try:
                file.replace(file.with_name(f"{name}.damaged"))
            except OSError:
                pass  # (the new dream writes over it at its first save)
            reasons.append(f"{name} could not be read ({why})")
    return "; ".join(reasons) + "; started again from step 0" if reasons else ""


def _record_attempt(
    folder: BatchFolder, record: dict, attempt: dict, imagine, status: str, t0: float | None, error: str | None = None
) -> None:
    """Write how an attempt ended into the job's record (timings add up over attempts)."""
    seconds = time.perf_counter() - t0 if t0 is not None else 0.0
    dream = getattr(imagine, "dream", None)
    steps = dream.step_count if dream is not None else int(record.get("steps_done") or 0)
    attempt = {**attempt, "status": status, "to_step": steps, "seconds": round(seconds, 3), "ended": utc_now()}
    run_dir = folder.run_dir(record)
    fields = _outcome(run_dir, record, status=status, seconds=seconds, steps_run=max(0, steps - attempt["from_step"]))
    fields.update(steps_done=steps, error=error, attempts=[*record["attempts"], attempt])
    folder.update(record["id"], **fields)


def _outcome(run_dir: Path, record: dict, *, status: str, seconds: float, steps_run: int) -> dict[str, Any]:
    """Record fields from the run folder's run.json and this attempt's measured time."""
    fields: dict[str, Any] = {
        "status": status,
        "seconds": round(float(record.get("seconds") or 0) + seconds, 3),
        "steps_run": int(record.get("steps_run") or 0) + steps_run,
        "worker": None,
    }
    if status == Status.FINISHED:
        fields["finished"] = utc_now()
        fields["error"] = None
    run = _read_run(run_dir)
    if run:
        fields.update(
            steps_done=run.get("steps_done", 0), final_score=run.get("final_score"), best_score=run.get("best_score")
        )
    return fields


def _read_run(run_dir: Path) -> dict[str, Any]:
    """The run folder's run.json ({} when there is none, or it cannot be read)."""

    try:
        run = read_json(run_dir / _RECORD)
    except (OSError, ValueError):  # (UserError is a ValueError)
        return {}
    return run if isinstance(run, dict) else {}


def _already_finished(run_dir: Path, job: Job) -> bool:
    """A run that ended but whose record was not updated (killed between the two)."""
    run = _read_run(run_dir)
    return run.get("status") == Status.FINISHED and run.get("steps_done", 0) >= job.settings.get("iterations", 0)


def _free_memory() -> None:

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
