"""A batch's folder on disk: its job list, its manifest, the claims on its jobs and its gallery.

A batch folder holds::

    batch.json          the prompt file and default options it belongs to, and the current job list
    manifest.jsonl      one JSON record per job: status, run folder, seed, settings, timings, score, error
    index.html          the gallery (see :mod:`textsleep.gallery`)
    runs/SLUG-ID/       each job's run folder (image.png, run.json, checkpoint.pt, …)
    claims/ID.lock      locked by the worker running that job

**Why JSON lines, rewritten whole.**  One small line per job is readable with
any text tool (``grep``, ``jq``) and by a person; every change rewrites the
whole file to a temporary file and renames it over the old one, so a reader or
a ``kill -9`` at any moment sees either the old or the new complete manifest.
Writers take a lock file first, so several workers can share one folder.
SQLite would give transactions too, but its locking is unreliable on the
network file systems that cluster array jobs share, and its file is opaque to
a person checking a run in the morning.  Rewriting costs O(jobs) per change,
which is nothing beside minutes of dreaming per job.

**Records are input.**  A batch folder may have been copied, edited or
tampered with: every record read back is checked (types, and a job's run
folder inside ``runs/``, no symlink leading out), and anything else is one line
naming ``manifest.jsonl:LINE`` or ``batch.json``.

**Claims.**  A worker runs a job only while it holds an exclusive lock
(``flock``) on ``claims/ID.lock``; the operating system drops the lock when the
process ends, however it ends, so a killed worker never leaves a stale claim
and a second worker never runs the same job.  After claiming, the worker reads
the job's record again, so a job another worker just finished is skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .. import __version__, outputs
from ..errors import UserError
from ..gallery import GALLERY_FILE, write_gallery
from ..hooks import Status
from ..runs import RUN_FILES
from .plan import Job, Plan

__all__ = ["BatchFolder", "MANIFEST", "META", "RUNS", "CLAIMS", "STOPPED", "steps_saved", "utc_now"]

MANIFEST = "manifest.jsonl"
META = "batch.json"
RUNS = "runs"
CLAIMS = "claims"
STOPPED = "stopped"  # a job (or attempt) marked running whose worker ended without a word: killed, a power cut


def utc_now() -> str:
    """Now, in UTC, as the manifest writes times (ISO 8601, to the second)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_synced(path: Path, text: str) -> None:
    """Write ``path`` whole (the project's atomic write), synced to disk before it replaces the old file."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    outputs.atomic_write(path, write)


class BatchFolder:
    """A batch's folder: its manifest, claims, run folders and gallery."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = self.path / MANIFEST
        self.meta_file = self.path / META
        self.runs = self.path / RUNS
        self.claims = self.path / CLAIMS
        self.gallery = self.path / GALLERY_FILE

    # ---- opening
    @classmethod
    def existing(cls, path: str | os.PathLike) -> "BatchFolder":
        """A folder a batch already made (for ``--status``)."""
        folder = cls(path)
        if not folder.meta_file.is_file():
            raise UserError(
                f"{str(path)!r}: not a batch folder (no {META}); give the --out folder of a textsleep batch run"
            )
        return folder

    @classmethod
    def prepare(cls, path: str | os.PathLike, plan: Plan, *, force: bool = False) -> "BatchFolder":
        """Make or reopen the folder for a plan: refuse one made for another file or options unless ``force``."""
        folder = cls(path)
        folder._check_owner(plan, force)
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.register(plan)  # batch.json first: from then on the folder is known as this batch's
            folder.runs.mkdir(exist_ok=True)
            folder.claims.mkdir(exist_ok=True)
        except OSError as err:
            raise UserError(f"--out {str(folder.path)!r}: cannot create the folder ({err.strerror or err})") from None
        return folder

    def _check_owner(self, plan: Plan, force: bool) -> None:
        if force:
            return
        mine = str(plan.prompt_file.resolve())
        if self.meta_file.is_file():
            meta = self.meta()
            if meta.get("prompt_file") != mine:
                raise UserError(
                    f"--out {str(self.path)!r} is the batch folder of {meta.get('prompt_file')}, not {mine}; "
                    "choose another --out, or add --force to use it anyway"
                )
            changed = _changed(meta.get("defaults", {}), plan.identity())
            if changed:
                raise UserError(
                    f"--out {str(self.path)!r} was made with other options ({changed}); rerun with the same options "
                    "to resume, or add --force to add jobs with the new ones"
                )
        elif self.path.exists() and (
            not self.path.is_dir() or any(not p.name.startswith(".") for p in self.path.iterdir())
        ):
            # (hidden entries are the lock and temporary files of a worker starting this batch right now)
            raise UserError(
                f"--out {str(self.path)!r}: exists and is not a batch folder; choose a new folder, or add --force"
            )

    def meta(self) -> dict[str, Any]:
        """``batch.json``, checked: the prompt file, the defaults and the job list."""
        meta = outputs.read_json(self.meta_file)
        ok = (
            isinstance(meta, dict)
            and isinstance(meta.get("prompt_file", ""), str)
            and isinstance(meta.get("defaults", {}), dict)
            and isinstance(meta.get("jobs", []), list)
            and all(isinstance(j, str) for j in meta.get("jobs", []))
        )
        if not ok:
            raise UserError(f"{self.meta_file}: not a batch record (prompt_file, defaults, jobs); was it edited?")
        return meta

    def run_dir(self, record: dict[str, Any]) -> Path:
        """A job's run folder: its record's ``folder``, which :meth:`records` checked lies inside ``runs/``."""
        return self.path / record["folder"]

    def _inside_runs(self, folder: str) -> bool:
        """``folder`` (relative, as a record holds it) names a folder inside ``runs/`` and resolves there."""
        rel = Path(folder)
        if rel.is_absolute() or ".." in rel.parts or rel.parts[:1] != (RUNS,) or len(rel.parts) != 2:
            return False
        runs = self.runs.resolve()
        return runs.parent == self.path.resolve() and (self.path / rel).resolve().parent == runs

    # ---- the manifest
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the manifest lock (for a read-change-write)."""

        try:
            with FileLock(self.path / ".manifest.lock", timeout=300):
                yield
        except Timeout:
            raise UserError(
                f"{self.path / '.manifest.lock'}: held by another process for 5 minutes; is a worker stuck?"
            ) from None

    def records(self) -> dict[str, dict[str, Any]]:
        """Every job record by id (a consistent snapshot: the file is only ever replaced whole)."""
        if not self.manifest.is_file():
            return {}
        records = {}
        with open(self.manifest, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise UserError(
                        f"{self.manifest}:{number}: not a JSON record; was the file edited by hand?"
                    ) from None
                why = self._wrong(record)
                if why:
                    raise UserError(f"{self.manifest}:{number}: {why}; was the file edited by hand?")
                records[record["id"]] = record
        return records

    def _wrong(self, record: Any) -> str:
        """What is wrong with a manifest record ('' when nothing)."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            return "not a job record (no id)"
        folder = record.get("folder")
        if folder is not None and not (isinstance(folder, str) and self._inside_runs(folder)):
            return f"folder {folder!r} is not a folder inside {RUNS}/ of this batch"
        for key in ("seconds", "steps_done", "steps_run", "iterations", "final_score", "best_score"):
            value = record.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                return f"{key} {value!r} is not a number"
        for key in ("status", "prompt", "source", "error", "worker"):
            if record.get(key) is not None and not isinstance(record[key], str):
                return f"{key} {record[key]!r} is not text"
        attempts = record.get("attempts", [])
        if not isinstance(attempts, list) or not all(isinstance(a, dict) for a in attempts):
            return "its attempts are not a list of records"
        if not isinstance(record.get("settings", {}), dict):
            return "its settings are not a mapping"
        return ""

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        lines = [json.dumps(r, ensure_ascii=False, sort_keys=True, default=str) for r in records.values()]
        _write_synced(self.manifest, "".join(line + "\n" for line in lines))

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Change one job's record (under the lock) and rewrite the gallery; returns the new record."""
        with self.locked():
            records = self.records()
            record = {**records.get(job_id, {"id": job_id}), **fields, "updated": utc_now()}
            records[job_id] = record
            self._write(records)
            self._write_gallery(records)
        return record

    def register(self, plan: Plan) -> None:
        """Add the plan's new jobs as pending (bad lines as failed) and record the current job list."""

        with self.locked():
            records = self.records()
            previous = self.meta() if self.meta_file.is_file() else {}
            meta = {
                "textsleep": __version__,
                "prompt_file": str(plan.prompt_file.resolve()),
                "defaults": plan.identity(),
                "jobs": [job.id for job in plan.jobs],
                "created": previous.get("created", utc_now()),
                "updated": utc_now(),
            }
            outputs.write_json(self.meta_file, meta)
            for job in plan.jobs:
                old = records.get(job.id)
                if old is None:
                    records[job.id] = _new_record(job)
                elif not job.valid and old.get("status") != Status.FINISHED:
                    records[job.id] = {**old, "status": Status.FAILED, "error": job.error, "line": job.line}
                else:
                    records[job.id] = {**old, "line": job.line}
            self._write(records)
            self._write_gallery(records)

    def job_ids(self) -> list[str]:
        """The current job list (from the latest run of the batch), in file order."""
        return list(self.meta().get("jobs", []))

    def ordered(self, records: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The current jobs' records in file order."""
        records = self.records() if records is None else records
        return [records[i] for i in self.job_ids() if i in records]

    def _write_gallery(self, records: dict[str, dict[str, Any]]) -> None:

        meta = self.meta() if self.meta_file.is_file() else {}
        current = self.ordered(records) if meta else list(records.values())
        title = Path(meta.get("prompt_file", "batch")).name
        earlier = len(records) - len(current)
        note = f"{earlier} earlier job(s) no longer in the prompt file are in {MANIFEST}" if earlier else ""
        write_gallery(self.path, current, title=title, note=note)

    # ---- claims
    @contextmanager
    def claim(self, job_id: str) -> Iterator[bool]:
        """Try to take a job for this process: yields True while held, False if another worker has it."""

        self.claims.mkdir(exist_ok=True)
        lock = FileLock(self.claims / f"{job_id}.lock", timeout=0)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()


def _new_record(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "line": job.line,
        "source": job.source,
        "prompt": job.prompt,
        "seed": job.seed,
        "settings": job.settings,
        "folder": f"{RUNS}/{job.folder}" if job.valid else None,
        "status": Status.PENDING if job.valid else Status.FAILED,
        "error": job.error,
        "steps_done": 0,
        "iterations": job.settings.get("iterations"),
        "seconds": 0.0,
        "final_score": None,
        "best_score": None,
        "attempts": [],
        "created": utc_now(),
    }


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new), key=str)
    parts = [
        f"--{k.replace('_', '-')} {_show(old.get(k))} then, {_show(new.get(k))} now"
        for k in keys
        if old.get(k) != new.get(k)
    ]
    return "; ".join(parts)


def _show(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def steps_saved(run_dir: Path) -> int:
    """Steps done as a run folder's record says (0 when there is none yet, or it cannot be read)."""
    try:
        return int(outputs.read_json(run_dir / RUN_FILES["record"]).get("steps_done") or 0)
    except (OSError, ValueError, AttributeError):
        return 0
