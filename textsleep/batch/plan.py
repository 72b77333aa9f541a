"""What a prompt file asks for: its lines parsed into jobs, each with a stable identity; shards and devices.

A prompt file has one prompt a line, in the dream's own syntax (``a|b``,
``text:weight``); blank lines and lines starting with ``#`` are skipped, and
dream options for one line follow `` -- `` (``a lighthouse -- --seed 3``).
``--seeds 1,2,3`` or ``--repeat K`` (on a line, or for every line) dream a
prompt several times.  Paths in a line (``--image``, ``--init``, …) are looked
up beside the prompt file first.

**Job identity.**  A job's id hashes the line as written (not its number, so
lines can be added or moved), which occurrence of that line it is (duplicate
lines are distinct jobs), the job's seed and the default options that shape the
picture (not those in :data:`textsleep.settings.RUN_ONLY`).  Rerunning with the
same file finds the same jobs; editing the file adds only what is new.  A job's
run folder is named from its prompt and id, so a job always finds its own
folder, even after a crash at any moment.

Nothing here loads a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import outputs
from ..devices import resolve_device
from ..errors import UserError, for_command_line
from ..options import parse_options
from ..prompts import parse_prompts
from ..settings import (
    RUN_ONLY,  # settings that change where or how a job runs, not its picture
    DreamSettings,
)

__all__ = [
    "Job",
    "Plan",
    "plan_batch",
    "read_prompt_file",
    "parse_seeds",
    "parse_repeat",
    "parse_shard",
    "shard_from_env",
    "select_shard",
    "parse_devices",
    "identity_defaults",
]

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
        return [Job(key, number, source, error=f"{file.name}:{number}: {for_command_line(err)}")]
    jobs = []
    for k, seed in enumerate(job_seeds):
        key = _hash({"line": source, "n": occurrence, "k": k, "seed": seed, "defaults": identity})
        jobs.append(Job(key, number, source, prompt, seed, {**settings, "seed": seed}))
    return jobs


def _parse_line(source: str, base: Path) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A line → (prompt text, dream options, batch options ``seeds``/``repeat``)."""

    match = _SEPARATOR.search(source)
    prompt, rest = (source[: match.start()].strip(), source[match.end() :]) if match else (source, "")
    try:
        tokens = shlex.split(rest)
    except ValueError as err:
        raise UserError(
            f'options {rest.strip()!r}: {err} (quote values with spaces, e.g. --negative "blurry photo")'
        ) from None
    tokens, line_batch = _take_batch_options(tokens)
    for token in tokens:
        name = token.split("=", 1)[0]
        if name in _BATCH_DECIDES:
            raise UserError(f"{name} cannot be given on a line: {_BATCH_DECIDES[name]}")
    options = parse_options(tokens)
    for key in _PATH_FIELDS:
        if key in options:
            value = options[key]
            options[key] = (
                tuple(_near_file(v, base) for v in value) if isinstance(value, tuple) else _near_file(value, base)
            )
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
        raise UserError(
            f"--shard {text}: write I/N, e.g. 0/4 (Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
        )
    i, n = int(match[1]), int(match[2])
    if n < 1 or not 0 <= i < n:
        raise UserError(
            f"--shard {text}: I must be in 0 … N-1 for N shards (e.g. 0/{max(n, 2)} … {max(n, 2) - 1}/{max(n, 2)}; "
            f"Slurm: --array=0-{max(n, 2) - 1})"
        )
    return i, n


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The shard (I, N) of a Slurm array task, from its environment; None outside an array job.

    ``SLURM_ARRAY_TASK_ID`` is the task's index in ``--array``, which need not
    start at 0 (``--array=1-4``) nor go by 1 (``--array=0-6:2``): the shard is
    its place among the array's ``SLURM_ARRAY_TASK_COUNT`` tasks.
    """
    env = os.environ if env is None else env
    task, count = env.get("SLURM_ARRAY_TASK_ID", "").strip(), env.get("SLURM_ARRAY_TASK_COUNT", "").strip()
    if not task or not count:
        return None
    try:
        task_id, n = int(task), int(count)
        first = int(env.get("SLURM_ARRAY_TASK_MIN", "").strip() or 0)
        step = int(env.get("SLURM_ARRAY_TASK_STEP", "").strip() or 1)
    except ValueError:
        raise UserError(
            f"SLURM_ARRAY_TASK_ID={task!r}, SLURM_ARRAY_TASK_COUNT={count!r}: not whole numbers; give --shard I/N"
        ) from None
    index, off_step = divmod(task_id - first, max(step, 1))
    if n < 1 or off_step or not 0 <= index < n:
        raise UserError(
            f"Slurm array task {task_id} is not one of {n} evenly spaced tasks from {first} (an --array list?); "
            f"give --shard I/N yourself, e.g. --shard 0/{max(n, 1)}"
        )
    return index, n


def select_shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Every ``count``-th job starting at ``index`` (positions in file order)."""
    return [job for position, job in enumerate(jobs) if position % count == index]


def parse_devices(text: str) -> list[str]:
    """``"cuda:0,cuda:1"`` → one worker device each (a device may be listed twice for two workers)."""

    devices = [part.strip() for part in (text or "").split(",") if part.strip()]
    if not devices:
        raise UserError(f"--devices {text!r}: list devices separated by commas, e.g. cuda:0,cuda:1")
    for device in devices:
        if device == "auto":
            raise UserError("--devices: name each device (cuda:0, cuda:1, mps, cpu), not auto")
        resolved = resolve_device(device)
        if resolved.type == "cuda" and resolved.index is not None:
            if resolved.index >= torch.cuda.device_count():
                raise UserError(
                    f"--devices: {device} is not here; this machine has cuda:0 … cuda:{torch.cuda.device_count() - 1}"
                )
    return devices
