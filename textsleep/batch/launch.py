"""Starting a batch as ``textsleep batch`` asks: its options, its jobs, its folder, and one worker per device.

:class:`BatchOptions` are the command's own options; the dream options that
follow them (``--iterations 200``) are every line's defaults.  :func:`plan_lines`
reads the prompt file with them, :func:`launch` opens the batch folder and
picks this process's shard, and :func:`run_workers` runs one worker process per
device.  The command that resumes a batch is the one that started it
(:attr:`Launch.again`).  Nothing here loads a model.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import Interrupted, UserError
from ..options import options, parse_options
from ..outputs import slugify
from ..settings import DreamSettings, knob
from .plan import (
    Job,
    Plan,
    parse_devices,
    parse_repeat,
    parse_seeds,
    parse_shard,
    plan_batch,
    select_shard,
    shard_from_env,
)
from .store import BatchFolder

__all__ = ["BatchOptions", "Launch", "plan_lines", "launch", "run_workers", "STOPPED_CODES"]

STOPPED_CODES = (130, 143, 129)  # how a worker ends when Ctrl-C, TERM or HUP stopped it
_RUNS_HERE = ("--resume",)  # dream options that make no sense for a batch


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """The options of ``textsleep batch`` itself (each checked when built)."""

    out: Path | None = knob(
        None, "Batch folder (rerun with the same one to resume).", short="-o", metavar="DIR", show="outputs/batch-FILE"
    )
    strict: bool = knob(False, "Stop before starting when a line is bad (default: skip it and record it failed).")
    repeat: str | None = knob(
        None, "Dream every line K times (seeds seed, seed+1, …, or derived from the line).", metavar="K"
    )
    seeds: str | None = knob(None, "Dream every line once per seed, e.g. 1,2,3.", metavar="1,2,3")
    retry_failed: bool = knob(False, "Run failed jobs again.")
    shard: str | None = knob(
        None,
        "I/N: run only jobs I, I+N, I+2N, … (0 <= I < N); in a Slurm array job it is the task's place in the array "
        "unless given.",
        metavar="I/N",
    )
    devices: str | None = knob(None, "One worker per device on this machine, e.g. cuda:0,cuda:1.", metavar="DEVICES")
    force: bool = knob(False, "Use an --out folder made for another prompt file or other options.")
    status: Path | None = knob(None, "Show what is done in a batch folder, and exit.", metavar="DIR")
    quiet: bool = knob(False, "No line or progress bar per job: bad lines, errors and the tally only.", short="-q")
    worker: str | None = knob(None, "(internal) a worker started by --devices.", hidden=True)

    def __post_init__(self) -> None:
        if self.repeat is not None:
            parse_repeat(self.repeat)
        if self.seeds is not None:
            parse_seeds(self.seeds)
        if self.shard is not None:
            parse_shard(self.shard)
        if self.devices is not None:
            parse_devices(self.devices)

    def words(self, *names: str) -> list[str]:
        """The named options as they were given on a command line (those left at their default: nothing)."""
        flags = {opt.name: opt.flag for opt in options(BatchOptions)}
        words = []
        for name in names:
            value = getattr(self, name)
            if value not in (None, False):
                words += [flags[name]] if value is True else [flags[name], str(value)]
        return words


@dataclass
class Launch:
    """A batch opened for this process: its folder, its jobs, its share of them, and how to resume it."""

    prompt_file: Path
    folder: BatchFolder
    plan: Plan
    mine: list[Job]  # this process's shard of the jobs
    shard: tuple[int, int]  # (I, N)
    shard_from: str  # where the shard came from, when not from --shard: " from Slurm array task 3"
    devices: list[str] | None  # --devices
    dream_args: list[str]  # the dream options given, as given
    options: BatchOptions

    @property
    def again(self) -> str:
        """The command that resumes this batch where it stops."""
        words = self.options.words("repeat", "seeds", "shard", "devices", "retry_failed", "quiet")
        return shlex.join(
            ["textsleep", "batch", str(self.prompt_file), "--out", str(self.folder.path), *self.dream_args, *words]
        )


def plan_lines(prompt_file: str | os.PathLike, options: BatchOptions, dream_args: list[str]) -> Plan:
    """Every line of the prompt file as jobs, with ``dream_args`` (dream options, as typed) as every line's defaults."""

    for arg in dream_args:
        if arg.split("=", 1)[0] in _RUNS_HERE:
            raise UserError(f"{arg}: a batch resumes its own jobs; rerun the same textsleep batch command instead")
    defaults = parse_options(dream_args)
    if options.devices is not None and "device" in defaults:
        raise UserError("--devices and --device: give one (--devices runs one worker per device)")
    repeat = parse_repeat(options.repeat) if options.repeat is not None else None
    seeds = parse_seeds(options.seeds) if options.seeds is not None else None
    return plan_batch(prompt_file, defaults, repeat=repeat, seeds=seeds)


def launch(plan: Plan, options: BatchOptions, dream_args: list[str]) -> Launch:
    """Open (or make) the batch folder for ``plan`` and pick this process's jobs: its ``--shard``, else its place in
    a Slurm array, else all of them.
    """

    shard, where = options.shard, ""
    if shard is None and options.worker is None:
        found = shard_from_env()
        if found is not None:
            shard, where = f"{found[0]}/{found[1]}", f" from Slurm array task {os.environ['SLURM_ARRAY_TASK_ID']}"
    index, count = parse_shard(shard) if shard is not None else (0, 1)
    out = options.out or Path(DreamSettings.out) / f"batch-{slugify(plan.prompt_file.stem, fallback='prompts')}"
    folder = BatchFolder.prepare(out, plan, force=options.force)
    devices = parse_devices(options.devices) if options.devices is not None else None
    mine = select_shard(plan.jobs, index, count)
    chosen = replace(options, shard=shard)
    return Launch(plan.prompt_file, folder, plan, mine, (index, count), where, devices, list(dream_args), chosen)


def run_workers(run: Launch) -> int:
    """One worker process per device, each running its share of this process's jobs; their worst exit code.

    Ctrl-C (or TERM, HUP) is passed on to every worker, which saves its running
    job; once all have stopped the interrupt goes on up.
    """

    common = [str(run.prompt_file), "--out", str(run.folder.path), *run.dream_args]
    common += run.options.words("repeat", "seeds", "shard", "retry_failed", "quiet")
    procs = []
    for device in run.devices or ():
        args = [sys.executable, "-m", "textsleep", "batch", *common, "--device", device, "--worker", device]
        procs.append(subprocess.Popen(args, start_new_session=True))  # Ctrl-C reaches them once, through us
    try:
        codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)  # the same stop, passed on
        for proc in procs:
            proc.wait()
        raise
    stopped = [code for code in codes if code in STOPPED_CODES]
    return stopped[0] if stopped else max(codes)
