"""Batch prompt files: many dreams from one file, resumable, each done exactly once.

A prompt file has one prompt a line, in the dream's own syntax (``a|b``,
``text:weight``); blank lines and lines starting with ``#`` are skipped, and
dream options for one line follow `` -- `` (``a lighthouse -- --seed 3``).
``--seeds 1,2,3`` or ``--repeat K`` (on a line, or for every line) dream a
prompt several times.  Paths in a line (``--image``, ``--init``, …) are looked
up beside the prompt file first.

A batch folder holds::

    batch.json          the prompt file and default options it belongs to, and the current job list
    manifest.jsonl      one JSON record per job: status, run folder, seed, settings, timings, score, error
    index.html          the gallery (see :mod:`textsleep.gallery`)
    runs/SLUG-ID/       each job's run folder (image.png, run.json, checkpoint.pt, …)
    claims/ID.lock      locked by the worker running that job

**Job identity.**  A job's id hashes the line as written (not its number, so
lines can be added or moved), which occurrence of that line it is (duplicate
lines are distinct jobs), the job's seed and the default options that shape the
picture.  Rerunning with the same file finds the same jobs; editing the file
adds only what is new.  A job's run folder is named from its prompt and id, so
a job always finds its own folder, even after a crash at any moment.

**Why JSON lines, rewritten whole.**  One small line per job is readable with
any text tool (``grep``, ``jq``) and by a person; every change rewrites the
whole file to a temporary file and renames it over the old one, so a reader or
a ``kill -9`` at any moment sees either the old or the new complete manifest.
Writers take a lock file first, so several workers can share one folder.
SQLite would give transactions too, but its locking is unreliable on the
network file systems that cluster array jobs share, and its file is opaque to
a person checking a run in the morning.  Rewriting costs O(jobs) per change,
which is nothing beside minutes of dreaming per job.

**Claims.**  A worker runs a job only while it holds an exclusive lock
(``flock``) on ``claims/ID.lock``; the operating system drops the lock when the
process ends, however it ends, so a killed worker never leaves a stale claim
and a second worker never runs the same job.  After claiming, the worker reads
the job's record again, so a job another worker just finished is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import outputs
from .runs import RUN_FILES
from .errors import UserError

__all__ = [
    "Job",
    "Plan",
    "Progress",
    "Event",
    "BatchFolder",
    "read_prompt_file",
    "plan_batch",
    "parse_seeds",
    "parse_repeat",
    "Status",
    "batch_status",
    "parse_shard",
    "select_shard",
    "parse_devices",
    "progress",
    "run_jobs",
    "RUN_ONLY",
]

MANIFEST = "manifest.jsonl"
META = "batch.json"
GALLERY = "index.html"
RUNS = "runs"
CLAIMS = "claims"
# settings that change where or how a job runs, not its picture: not part of a job's identity
from .settings import RUN_ONLY  # noqa: E402  (settings that change where or how a job runs)
# options a line may not set: the batch decides them
_BATCH_DECIDES = {
    "--out": "the batch folder is --out of textsleep batch",
    "-o": "the batch folder is --out of textsleep batch",
    "--resume": "rerun the batch command to resume its jobs",
    "--quiet": "give --quiet to textsleep batch",
    "-q": "give --quiet to textsleep batch",
    "--device": "give --device or --devices to textsleep batch",
}
_PATH_FIELDS = ("images", "init", "biggan", "clip_model", "clip_pretrained")
_SEPARATOR = re.compile(r"(?:^|\s)--(?:\s+|$)")
_DONE = "finished"


# ---------------------------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One dream of a batch: a prompt-file line with one seed (or a bad line, with ``error``)."""

    id: str
    line: int  # 1-based line number in the prompt file
    source: str  # the line as written
    prompt: str = ""
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # DreamSettings fields, seed included
    error: str | None = None  # why the line cannot run

    @property
    def valid(self) -> bool:
        return self.error is None

    @property
    def folder(self) -> str:
        """The run folder's name inside ``runs/``: the prompt's slug and the job id."""
        images = self.settings.get("images") or ()
        name = self.prompt or (Path(images[0]).stem if images else "")
        return f"{outputs.slugify(name, fallback='dream')}-{self.id[:10]}"


@dataclass
class Plan:
    """Every job of a prompt file, valid or not, in file order."""

    prompt_file: Path
    defaults: dict[str, Any]
    jobs: list[Job]

    @property
    def invalid(self) -> list[Job]:
        return [job for job in self.jobs if not job.valid]

    def identity(self) -> dict[str, Any]:
        return identity_defaults(self.defaults)


def identity_defaults(defaults: dict[str, Any]) -> dict[str, Any]:
    """The default options that shape the pictures (JSON-normal: lists, not tuples)."""
    return json.loads(json.dumps({k: v for k, v in sorted(defaults.items()) if k not in RUN_ONLY}, default=list))


def read_prompt_file(path: str | os.PathLike) -> list[tuple[int, str]]:
    """The prompt lines of a file as (line number, text); blank lines and ``#`` comments left out."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{str(path)!r}: no such prompt file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{str(path)!r}: not UTF-8 text; a prompt file has one prompt a line") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise UserError(f"{str(path)!r}: no prompts in it (one a line; '#' starts a comment)")
    return lines


def parse_seeds(text: str, name: str = "--seeds") -> list[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"{name} {text!r}: give whole numbers separated by commas, e.g. 1,2,3") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"{name} {text!r}: give one or more whole numbers >= 0, e.g. 1,2,3")
    return seeds


def parse_repeat(value: Any, name: str = "--repeat") -> int:
    """``"3"`` → 3 (a whole number >= 1)."""
    try:
        k = int(value)
    except (TypeError, ValueError):
        k = 0
    if k < 1 or str(value).strip() != str(k):
        raise UserError(f"{name} {value!r}: must be a whole number >= 1")
    return k


def plan_batch(
    prompt_file: str | os.PathLike,
    defaults: dict[str, Any] | None = None,
    *,
    repeat: int | None = None,
    seeds: list[int] | None = None,
) -> Plan:
    """Parse and validate every line of a prompt file (no model is loaded).

    ``defaults`` are DreamSettings fields for every line; a line's own options
    replace them.  Bad lines become jobs with an ``error`` naming file:line.
    """
    defaults = dict(defaults or {})
    defaults.pop("out", None)
    _validate(defaults, "x", 0)  # the defaults alone must be valid (one line, not one error per line)
    if repeat is not None:
        parse_repeat(repeat)
    if repeat is not None and seeds:
        raise UserError("--repeat and --seeds: give one of them (--seeds 1,2,3 already says how many)")
    file = Path(prompt_file)
    lines = read_prompt_file(file)
    base = file.resolve().parent
    identity = identity_defaults(defaults)
    seen: dict[str, int] = {}
    jobs: list[Job] = []
    for number, source in lines:
        occurrence = seen.get(source, 0)
        seen[source] = occurrence + 1
        jobs += _line_jobs(file, number, source, occurrence, base, defaults, identity, repeat, seeds)
    return Plan(file, defaults, jobs)


def _line_jobs(file, number, source, occurrence, base, defaults, identity, repeat, seeds) -> list[Job]:
    """The jobs of one line (one per seed), or one job carrying the line's error."""
    try:
        prompt, options, line_batch = _parse_line(source, base)
        job_seeds = _line_seeds(source, occurrence, {**defaults, **options}, options, line_batch, repeat, seeds)
        settings = _validate({**defaults, **options}, prompt, job_seeds[0])
    except UserError as err:
        key = _hash({"line": source, "n": occurrence, "invalid": True})
        return [Job(key, number, source, error=f"{file.name}:{number}: {err}")]
    jobs = []
    for k, seed in enumerate(job_seeds):
        key = _hash({"line": source, "n": occurrence, "k": k, "seed": seed, "defaults": identity})
        jobs.append(Job(key, number, source, prompt, seed, {**settings, "seed": seed}))
    return jobs


def _parse_line(source: str, base: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A line → (prompt text, dream options, batch options ``seeds``/``repeat``)."""
    from .options import parse_options as parse_dream_args

    match = _SEPARATOR.search(source)
    prompt, rest = (source[: match.start()].strip(), source[match.end():]) if match else (source, "")
    try:
        tokens = shlex.split(rest)
    except ValueError as err:
        raise UserError(f"options {rest.strip()!r}: {err} (quote values with spaces, e.g. --negative \"blurry photo\")") from None
    tokens, line_batch = _take_batch_options(tokens)
    for token in tokens:
        name = token.split("=", 1)[0]
        if name in _BATCH_DECIDES:
            raise UserError(f"{name} cannot be given on a line: {_BATCH_DECIDES[name]}")
    options = parse_dream_args(tokens)
    for key in _PATH_FIELDS:
        if key in options:
            value = options[key]
            options[key] = tuple(_near_file(v, base) for v in value) if isinstance(value, tuple) else _near_file(value, base)
    return prompt, options, line_batch


def _take_batch_options(tokens: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Remove ``--seeds X`` and ``--repeat K`` (a batch's own options) from a line's tokens."""
    rest, found = [], {}
    i = 0
    while i < len(tokens):
        name, eq, value = tokens[i].partition("=")
        if name in ("--seeds", "--repeat"):
            if not eq:
                if i + 1 >= len(tokens):
                    raise UserError(f"{name} needs a value, e.g. {name} {'1,2,3' if name == '--seeds' else '3'}")
                value, i = tokens[i + 1], i + 1
            found[name[2:]] = parse_seeds(value) if name == "--seeds" else parse_repeat(value)
        else:
            rest.append(tokens[i])
        i += 1
    if "seeds" in found and "repeat" in found:
        raise UserError("--repeat and --seeds: give one of them (--seeds 1,2,3 already says how many)")
    return rest, found


def _near_file(value: str, base: Path) -> str:
    """A relative path in a prompt file means beside that file when something is there (``PATH:weight`` too)."""
    if not isinstance(value, str) or Path(value).expanduser().is_absolute():
        return value
    head, sep, tail = value.rpartition(":")
    for body, rest in ((value, ""), (head, sep + tail)):
        if body and (base / body).exists():
            return str(base / body) + rest
    return value


def _line_seeds(source, occurrence, settings, options, line_batch, repeat, seeds) -> list[int]:
    """The seeds a line is dreamt with: its own --seeds/--repeat/--seed, else the batch's."""
    if "seeds" in line_batch:
        return line_batch["seeds"]
    if seeds and "repeat" not in line_batch and "seed" not in options:
        return list(seeds)
    k = line_batch.get("repeat") or repeat or 1
    start = settings.get("seed")
    if start is not None:
        return [start + i for i in range(k)]
    # no seed given: one derived from the line, so a rerun finds the same job
    return [int(_hash({"line": source, "n": occurrence, "k": i}), 16) % 2**31 for i in range(k)]


def _validate(settings: dict[str, Any], prompt: str, seed: int) -> dict[str, Any]:
    """Check a line's settings and prompts as a dream would (image files included)."""
    from .prompts import parse_prompts
    from .settings import DreamSettings

    checked = DreamSettings(**{**settings, "text": prompt, "seed": seed})
    parse_prompts(checked.text, checked.images, checked.negatives)
    data = checked.to_dict()
    data.pop("out", None)
    return data


def _hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=list).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- scale-out
def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → (I, N) with 0 <= I < N: this worker runs jobs I, I+N, I+2N, …"""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UserError(f"--shard {text}: write I/N, e.g. 0/4 (Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
    i, n = int(match[1]), int(match[2])
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text}: I must be in 0 … N-1 for N shards (e.g. 0/{max(n, 2)} … {max(n, 2) - 1}/{max(n, 2)}; Slurm: --array=0-{max(n, 2) - 1})")
    return i, n


def select_shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Every ``count``-th job starting at ``index`` (positions in file order)."""
    return [job for position, job in enumerate(jobs) if position % count == index]


def parse_devices(text: str) -> list[str]:
    """``"cuda:0,cuda:1"`` → one worker device each (a device may be listed twice for two workers)."""
    from .models import resolve_device

    devices = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not devices:
        raise UserError(f"--devices {text!r}: list devices separated by commas, e.g. cuda:0,cuda:1")
    for device in devices:
        if device == "auto":
            raise UserError("--devices: name each device (cuda:0, cuda:1, mps, cpu), not auto")
        resolved = resolve_device(device)
        if resolved.type == "cuda" and resolved.index is not None:
            import torch

            if resolved.index >= torch.cuda.device_count():
                raise UserError(f"--devices: {device} is not here; this machine has cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return devices


# ---------------------------------------------------------------------------------------------- the folder
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_atomic(path: Path, text: str) -> None:
    """Write text through a synced temporary file renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class BatchFolder:
    """A batch's folder: its manifest, claims, run folders and gallery."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = self.path / MANIFEST
        self.meta_file = self.path / META
        self.runs = self.path / RUNS
        self.claims = self.path / CLAIMS

    # ---- opening
    @classmethod
    def existing(cls, path: str | os.PathLike) -> "BatchFolder":
        """A folder a batch already made (for ``--status``)."""
        folder = cls(path)
        if not folder.meta_file.is_file():
            raise UserError(f"{str(path)!r}: not a batch folder (no {META}); give the --out folder of a textsleep batch run")
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
        elif self.path.exists() and (not self.path.is_dir() or any(not p.name.startswith(".") for p in self.path.iterdir())):
            # (hidden entries are the lock and temporary files of a worker starting this batch right now)
            raise UserError(f"--out {str(self.path)!r}: exists and is not a batch folder; choose a new folder, or add --force")

    def meta(self) -> dict[str, Any]:
        return outputs.read_json(self.meta_file)

    # ---- the manifest
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the manifest lock (for a read-change-write)."""
        from filelock import FileLock, Timeout

        try:
            with FileLock(self.path / ".manifest.lock", timeout=300):
                yield
        except Timeout:
            raise UserError(f"{self.path / '.manifest.lock'}: held by another process for 5 minutes; is a worker stuck?") from None

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
                    raise UserError(f"{self.manifest}:{number}: not a JSON record; was the file edited by hand?") from None
                records[record["id"]] = record
        return records

    def _write(self, records: dict[str, dict[str, Any]]) -> None:
        lines = [json.dumps(r, ensure_ascii=False, sort_keys=True, default=str) for r in records.values()]
        _write_atomic(self.manifest, "".join(line + "\n" for line in lines))

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Change one job's record (under the lock) and rewrite the gallery; returns the new record."""
        with self.locked():
            records = self.records()
            record = {**records.get(job_id, {"id": job_id}), **fields, "updated": _now()}
            records[job_id] = record
            self._write(records)
            self._write_gallery(records)
        return record

    def register(self, plan: Plan) -> None:
        """Add the plan's new jobs as pending (bad lines as failed) and record the current job list."""
        from . import __version__

        with self.locked():
            records = self.records()
            previous = self.meta() if self.meta_file.is_file() else {}
            meta = {
                "textsleep": __version__,
                "prompt_file": str(plan.prompt_file.resolve()),
                "defaults": plan.identity(),
                "jobs": [job.id for job in plan.jobs],
                "created": previous.get("created", _now()),
                "updated": _now(),
            }
            outputs.write_json(self.meta_file, meta)
            for job in plan.jobs:
                old = records.get(job.id)
                if old is None:
                    records[job.id] = _new_record(job)
                elif not job.valid and old.get("status") != _DONE:
                    records[job.id] = {**old, "status": "failed", "error": job.error, "line": job.line}
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
        from .gallery import write_gallery

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
        from filelock import FileLock, Timeout

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
        "status": "pending" if job.valid else "failed",
        "error": job.error,
        "steps_done": 0,
        "iterations": job.settings.get("iterations"),
        "seconds": 0.0,
        "final_score": None,
        "best_score": None,
        "attempts": [],
        "created": _now(),
    }


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new), key=str)
    parts = [f"--{k.replace('_', '-')} {_show(old.get(k))} then, {_show(new.get(k))} now" for k in keys if old.get(k) != new.get(k)]
    return "; ".join(parts)


def _show(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


# ---------------------------------------------------------------------------------------------- progress
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

    @property
    def done(self) -> int:
        return self.finished + self.failed


def progress(records: list[dict[str, Any]], mine: list[dict[str, Any]] | None = None, workers: int = 1) -> Progress:
    """Counts over ``records`` and an ETA for ``mine`` from seconds per step measured so far."""
    count = {s: sum(r.get("status") == s for r in records) for s in ("finished", "failed", "running")}
    seconds = sum(float(r.get("seconds") or 0) for r in records)
    steps = sum(int(r.get("steps_run") or 0) for r in records)
    per_step = seconds / steps if steps and seconds else None
    left = [r for r in (records if mine is None else mine) if r.get("status") not in ("finished", "failed")]
    remaining = sum(max(0, int(r.get("iterations") or 0) - int(r.get("steps_done") or 0)) for r in left)
    eta = per_step * remaining / max(1, workers) if per_step is not None else None
    waiting = len(records) - count["finished"] - count["failed"] - count["running"]
    return Progress(len(records), count["finished"], count["failed"], count["running"], waiting, per_step, remaining, eta)


# ---------------------------------------------------------------------------------------------- running
@dataclass
class Event:
    """What happened to a job: ``start``, ``finished``, ``failed`` or ``skipped`` (with why)."""

    kind: str
    job: Job
    record: dict[str, Any]
    progress: Progress
    why: str = ""  # for skipped: finished | failed | taken
    resumed_from: int = 0  # the step a resumed job continued from (0: a fresh start)


def _wanted(record: dict[str, Any], retry_failed: bool) -> str:
    """Why a job is not to be run now ('' when it is)."""
    status = record.get("status")
    if status == _DONE:
        return "finished"
    if status == "failed" and not retry_failed:
        return "failed"
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
) -> Iterator[Event]:
    """Run the valid jobs not yet done, one at a time, yielding an :class:`Event` before and after each.

    Finished jobs are skipped, failed ones too unless ``retry_failed``; a job
    with a checkpoint continues from it.  A failing job is recorded and the
    next one starts.  On Ctrl-C the running job is saved (by the dream), its
    record says ``interrupted``, and ``KeyboardInterrupt`` goes on up.
    """
    from .models import ModelCache

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
            yield from _run_one(folder, job, mine, device=device, quiet=quiet, models=models, workers=workers)


def _event(folder: BatchFolder, kind: str, job: Job, mine: list[Job], workers: int, **extra: Any) -> Event:
    records = folder.records()
    current = folder.ordered(records)
    ids = {j.id for j in mine}
    return Event(kind, job, records.get(job.id, {}), progress(current, [r for r in current if r["id"] in ids], workers), **extra)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_one(folder: BatchFolder, job: Job, mine: list[Job], *, device, quiet, models, workers) -> Iterator[Event]:
    """Start or resume one job in its run folder and record how it ended."""
    record = folder.records()[job.id]
    run_dir = folder.path / (record.get("folder") or f"{RUNS}/{job.folder}")
    resumable = (run_dir / RUN_FILES["record"]).is_file() and (run_dir / RUN_FILES["checkpoint"]).is_file()
    saved_steps = _steps_saved(run_dir) if resumable else 0
    # an attempt still marked running was stopped without a word (killed, power cut): it got as far as the checkpoint
    record["attempts"] = [
        {**a, "status": "stopped", "to_step": saved_steps} if a.get("status") == "running" else a for a in record.get("attempts", [])
    ]
    if _already_finished(run_dir, job):
        folder.update(job.id, **_outcome(run_dir, record, status=_DONE, seconds=0.0, steps_run=0), attempts=record["attempts"])
        yield _event(folder, "finished", job, mine, workers)
        return
    yield _event(folder, "start", job, mine, workers, resumed_from=saved_steps)
    attempt = {"worker": _worker_name(), "device": device or job.settings.get("device"), "started": _now(), "from_step": saved_steps}
    folder.update(job.id, status="running", worker=attempt["worker"], attempts=[*record["attempts"], {**attempt, "status": "running"}])
    imagine, t0, error = None, None, None
    try:
        imagine = _imagine(folder, job, run_dir, resumable, device=device, quiet=quiet, models=models)
        imagine.prepare()  # loads the models (once per worker) and the checkpoint, if there is one
        attempt["from_step"] = imagine.dream.step_count
        t0 = time.perf_counter()
        imagine()
    except KeyboardInterrupt:
        _record_attempt(folder, record, attempt, imagine, "interrupted", t0)
        raise
    except Exception as err:  # noqa: BLE001 - any failure of one job is recorded and the batch goes on
        error = _one_line(err)
    _record_attempt(folder, record, attempt, imagine, "failed" if error else _DONE, t0, error=error)
    if error:
        del imagine
        _free_memory()  # e.g. after running out of GPU memory, before the next job
    yield _event(folder, "failed" if error else "finished", job, mine, workers, resumed_from=attempt["from_step"])


def _imagine(folder: BatchFolder, job: Job, run_dir: Path, resumable: bool, *, device, quiet, models):
    """The dream of a job: continued from its checkpoint, or new in its own run folder."""
    from .imagine import Imagine

    run_only = {"device": device} if device else {}
    if resumable:
        keep = {k: job.settings[k] for k in ("iterations", "save_every", "save_progress", "video")}
        return Imagine(resume=run_dir, quiet=quiet, models=models, **keep, **run_only)
    return Imagine(quiet=quiet, models=models, run_dir=run_dir, **{**job.settings, "out": str(folder.runs), **run_only})  # the job's own folder, so a rerun finds it


def _record_attempt(folder: BatchFolder, record: dict, attempt: dict, imagine, status: str, t0: float | None, error: str | None = None) -> None:
    """Write how an attempt ended into the job's record (timings add up over attempts)."""
    seconds = time.perf_counter() - t0 if t0 is not None else 0.0
    dream = getattr(imagine, "dream", None)
    steps = dream.step_count if dream is not None else int(record.get("steps_done") or 0)
    attempt = {**attempt, "status": status, "to_step": steps, "seconds": round(seconds, 3), "ended": _now()}
    run_dir = folder.path / record["folder"]
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
    if status == _DONE:
        fields["finished"] = _now()
        fields["error"] = None
    run_file = run_dir / RUN_FILES["record"]
    if run_file.is_file():
        run = outputs.read_json(run_file)
        fields.update(steps_done=run.get("steps_done", 0), final_score=run.get("final_score"), best_score=run.get("best_score"))
    return fields


def _steps_saved(run_dir: Path) -> int:
    """Steps done as the run folder's record says (0 when there is none yet)."""
    run_file = run_dir / RUN_FILES["record"]
    try:
        return int(outputs.read_json(run_file).get("steps_done") or 0)
    except (OSError, ValueError):
        return 0


def _already_finished(run_dir: Path, job: Job) -> bool:
    """A run that ended but whose record was not updated (killed between the two)."""
    run_file = run_dir / RUN_FILES["record"]
    if not run_file.is_file():
        return False
    run = outputs.read_json(run_file)
    return run.get("status") == _DONE and run.get("steps_done", 0) >= job.settings.get("iterations", 0)


def _one_line(err: BaseException, limit: int = 400) -> str:
    text = " ".join(str(err).split()) or err.__class__.__name__
    if not isinstance(err, UserError):
        text = f"{err.__class__.__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- status
@dataclass
class Status:
    """What a batch folder says: its jobs in file order, their progress, and records of earlier lines."""

    folder: Path
    prompt_file: str
    records: list[dict[str, Any]]
    progress: Progress
    earlier: int  # records of jobs no longer in the prompt file


def batch_status(path: str | os.PathLike) -> Status:
    """Read a batch folder; a job marked running whose worker has gone is shown as ``stopped``."""
    folder = BatchFolder.existing(path)
    records = folder.records()
    current = [dict(r) for r in folder.ordered(records)]
    for record in current:
        if record.get("status") == "running" and worker_alive(record.get("worker")) is False:
            record["status"] = "stopped"
        if record.get("status") not in (_DONE, "failed") and record.get("folder"):
            record["steps_done"] = _steps_saved(folder.path / record["folder"])  # as far as the last save
    running = sum(r.get("status") == "running" for r in current)
    return Status(folder.path, folder.meta().get("prompt_file", ""), current, progress(current, workers=max(1, running)), len(records) - len(current))


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
