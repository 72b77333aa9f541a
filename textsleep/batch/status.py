"""How far a batch is: counts, measured speed and ETA; which workers are still alive."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..hooks import Status
from .store import STOPPED, BatchFolder, steps_saved

__all__ = ["Progress", "progress", "BatchStatus", "batch_status", "worker_alive"]


@dataclass
class Progress:
    """How far a batch is, and how long the rest should take at the measured speed."""

    total: int
    finished: int
    failed: int
    running: int
    waiting: int  # pending or interrupted
    seconds_per_step: float | None  # measured over the jobs' recorded times
    remaining_steps: int
    eta_seconds: float | None  # for the jobs given as `mine` (all of them by default)
    bad: int = 0  # failed without ever starting: bad lines of the prompt file (counted in `failed` too)

    @property
    def done(self) -> int:
        return self.finished + self.failed


def progress(records: list[dict[str, Any]], mine: list[dict[str, Any]] | None = None, workers: int = 1) -> Progress:
    """Counts over ``records`` and an ETA for ``mine`` from seconds per step measured so far."""
    count = {s: sum(r.get("status") == s for r in records) for s in (Status.FINISHED, Status.FAILED, Status.RUNNING)}
    seconds = sum(float(r.get("seconds") or 0) for r in records)
    steps = sum(int(r.get("steps_run") or 0) for r in records)
    per_step = seconds / steps if steps and seconds else None
    left = [r for r in (records if mine is None else mine) if r.get("status") not in (Status.FINISHED, Status.FAILED)]
    remaining = sum(max(0, int(r.get("iterations") or 0) - int(r.get("steps_done") or 0)) for r in left)
    eta = per_step * remaining / max(1, workers) if per_step is not None else None
    finished, failed, running = count[Status.FINISHED], count[Status.FAILED], count[Status.RUNNING]
    waiting = len(records) - finished - failed - running
    bad = sum(r.get("status") == Status.FAILED and not r.get("attempts") for r in records)
    return Progress(len(records), finished, failed, running, waiting, per_step, remaining, eta, bad)


@dataclass
class BatchStatus:
    """What a batch folder says: its jobs in file order, their progress, and records of earlier lines."""

    folder: Path
    prompt_file: str
    records: list[dict[str, Any]]
    progress: Progress
    earlier: int  # records of jobs no longer in the prompt file


def batch_status(path: str | os.PathLike) -> BatchStatus:
    """Read a batch folder; a job marked running whose worker has gone is shown as ``stopped``."""
    folder = BatchFolder.existing(path)
    records = folder.records()
    current = [dict(r) for r in folder.ordered(records)]
    for record in current:
        if record.get("status") == Status.RUNNING and worker_alive(record.get("worker")) is False:
            record["status"] = STOPPED
        if record.get("status") not in (Status.FINISHED, Status.FAILED) and record.get("folder"):
            record["steps_done"] = steps_saved(folder.run_dir(record))  # as far as the last save
    running = sum(r.get("status") == Status.RUNNING for r in current)
    return BatchStatus(
        folder.path,
        folder.meta().get("prompt_file", ""),
        current,
        progress(current, workers=max(1, running)),
        len(records) - len(current),
    )


def worker_alive(worker: str | None) -> bool | None:
    """Whether a worker ``host:pid`` still runs (None: on another machine, cannot tell)."""
    host, _, pid = (worker or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or os.name != "posix":
        return None  # (on Windows, os.kill would end the process)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
