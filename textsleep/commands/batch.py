"""``textsleep batch``: a prompt file of dreams, resumable, with a gallery; ``--status`` shows how far it is."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from .. import batch as lib
from ..errors import Interrupted, UserError
from ..options import parse_options
from ..outputs import slugify
from .common import cli_errors, echo_err, progress_hook

__all__ = ["register", "batch"]

_RUNS_HERE = ("--resume",)  # dream options that make no sense for a batch


def batch(
    ctx: typer.Context,
    prompt_file: Optional[Path] = typer.Argument(
        None, metavar="FILE", help="Prompt file: one prompt a line; options for one line after ' -- '; '#' comments."
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        metavar="DIR",
        help="Batch folder (rerun with the same one to resume).",
        show_default="outputs/batch-FILE",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop before starting when a line is bad (default: skip it and record it failed)."
    ),
    repeat: Optional[str] = typer.Option(
        None,
        "--repeat",
        metavar="K",
        help="Dream every line K times (seeds seed, seed+1, …, or derived from the line).",
    ),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", metavar="1,2,3", help="Dream every line once per seed, e.g. 1,2,3."
    ),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Run failed jobs again."),
    shard: Optional[str] = typer.Option(
        None,
        "--shard",
        metavar="I/N",
        help=(
            "I/N: run only jobs I, I+N, I+2N, … (0 <= I < N); "
            "in a Slurm array job it is the task's place in the array unless given."
        ),
    ),
    devices: Optional[str] = typer.Option(
        None, "--devices", metavar="DEVICES", help="One worker per device on this machine, e.g. cuda:0,cuda:1."
    ),
    force: bool = typer.Option(
        False, "--force", help="Use an --out folder made for another prompt file or other options."
    ),
    status: Optional[Path] = typer.Option(
        None, "--status", metavar="DIR", help="Show what is done in a batch folder, and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-job progress bar."),
    worker: Optional[str] = typer.Option(
        None, "--worker", hidden=True, help="(internal) a worker started by --devices."
    ),
) -> None:
    """Dream every prompt of a file; rerun the same command to resume.

    Any option of textsleep dream (textsleep dream --help) is a default for every line.
    """

    if status is not None:
        if prompt_file is not None or out is not None or ctx.args:
            raise UserError("--status DIR takes nothing else, e.g. textsleep batch --status outputs/batch-overnight")
        _print_status(lib.batch_status(status))
        return
    if prompt_file is None:
        raise UserError("give a prompt file, e.g. textsleep batch prompts/overnight.txt (or --status DIR)")
    if shard is None and worker is None:
        shard, where = _slurm_shard()
    else:
        where = ""
    folder, mine, device_list = _prepare(
        ctx, prompt_file, out, strict, repeat, seeds, shard, devices, force, worker, where
    )
    again = _resume_command(ctx, prompt_file, folder.path, repeat, seeds, shard, devices, retry_failed, quiet)
    if device_list and len(device_list) > 1:
        code = _run_workers(ctx, prompt_file, folder.path, device_list, repeat, seeds, shard, retry_failed, again)
    else:
        device = device_list[0] if device_list else None
        code = _run_here(
            folder,
            mine,
            retry_failed=retry_failed,
            device=device,
            quiet=quiet or worker is not None,
            tag=worker,
            again=again,
        )
    if worker is None:
        _print_summary(folder, mine)
    raise typer.Exit(code)


def _prepare(ctx, prompt_file, out, strict, repeat, seeds, shard, devices, force, worker, where=""):
    """Parse everything, report bad lines, open the batch folder; nothing loads a model."""

    for arg in ctx.args:
        if arg.split("=", 1)[0] in _RUNS_HERE:
            raise UserError(f"{arg}: a batch resumes its own jobs; rerun the same textsleep batch command instead")
    defaults = parse_options(list(ctx.args))
    k = lib.parse_repeat(repeat) if repeat is not None else None
    seed_list = lib.parse_seeds(seeds) if seeds is not None else None
    index, count = lib.parse_shard(shard) if shard is not None else (0, 1)
    device_list = lib.parse_devices(devices) if devices is not None else None
    if device_list and "device" in defaults:
        raise UserError("--devices and --device: give one (--devices runs one worker per device)")
    plan = lib.plan_batch(prompt_file, defaults, repeat=k, seeds=seed_list)
    if worker is None:
        for job in plan.invalid:
            echo_err(f"{job.error}" if strict else f"warning: {job.error} (skipped; recorded as failed)")
        if strict and plan.invalid:
            raise UserError(
                f"{len(plan.invalid)} bad line(s) in {prompt_file}; fix them, or leave out --strict to skip them"
            )
    folder = lib.BatchFolder.prepare(
        out or Path("outputs") / f"batch-{slugify(prompt_file.stem, fallback='prompts')}", plan, force=force
    )
    mine = lib.select_shard(plan.jobs, index, count)
    if worker is None:
        part = f" (shard {index}/{count}{where})" if count > 1 or where else ""
        bad = f" ({sum(not j.valid for j in mine)} bad line(s) skipped)" if any(not j.valid for j in mine) else ""
        typer.echo(
            f"batch {folder.path}: {sum(j.valid for j in mine)} jobs{part}{bad}; gallery {folder.path / 'index.html'}"
        )
    return folder, mine, device_list


def _run_here(folder, mine, *, retry_failed: bool, device: str | None, quiet: bool, tag: str | None, again: str) -> int:
    """Run this process's jobs, printing a line per job; 130 on Ctrl-C (143 on SIGTERM, 129 on SIGHUP), 1 if a job
    failed, else 0.
    """

    prefix = f"[{tag}] " if tag else ""
    hook = None if quiet else progress_hook(leave=False)
    events = lib.run_jobs(folder, mine, retry_failed=retry_failed, device=device, quiet=quiet, on_step=hook)
    skipped = {"finished": 0, "failed": 0}
    try:
        for event in events:
            if event.kind == "skipped" and event.why in skipped:
                skipped[event.why] += 1
                continue
            typer.echo(prefix + _event_line(event, folder.path))
    except KeyboardInterrupt as err:
        events.close()
        by = f" by {err.signal_name}" if isinstance(err, Interrupted) else ""
        echo_err(f"\n{prefix}stopped{by}; the running job's checkpoint is saved and the manifest says interrupted")
        if tag is None:
            echo_err(f"resume with: {again}")
        return getattr(err, "exit_code", 130)
    finally:
        events.close()
    if skipped["finished"] or skipped["failed"]:
        retry = " (--retry-failed runs them again)" if skipped["failed"] else ""
        typer.echo(f"{prefix}skipped {skipped['finished']} finished and {skipped['failed']} failed job(s){retry}")
    records = folder.records()
    return 1 if any(records.get(job.id, {}).get("status") == "failed" for job in mine) else 0


def _event_line(event, batch_dir: Path) -> str:
    p = event.progress
    count = f"[{p.done}/{p.total}]"
    job = event.job
    if event.kind == "start":
        resumed = f" · resuming from step {event.resumed_from}" if event.resumed_from else ""
        resumed += f" · starting over: {event.restarted}" if event.restarted else ""
        eta = f" · ETA {_duration(p.eta_seconds)}" if p.eta_seconds is not None else ""
        return f"{count} {_short(job.prompt)} · seed {job.seed} · line {job.line}{resumed}{eta}"
    if event.kind == "finished":
        score = event.record.get("final_score")
        shown = f"score {score:.3f} · " if isinstance(score, (int, float)) else ""
        return f"{count} done: {shown}{batch_dir / event.record.get('folder', '')}"
    if event.kind == "failed":
        return f"{count} failed (line {job.line}): {event.record.get('error')}"
    return f"{count} skipped {_short(job.prompt)}: another worker is running it"


def _run_workers(ctx, prompt_file, batch_dir, device_list, repeat, seeds, shard, retry_failed, again) -> int:
    """One worker process per device; Ctrl-C (or SIGTERM, SIGHUP) stops them all (each saves its job)."""

    common = [str(prompt_file), "--out", str(batch_dir), *ctx.args]
    for name, value in (("--repeat", repeat), ("--seeds", seeds), ("--shard", shard)):
        if value is not None:
            common += [name, value]
    if retry_failed:
        common.append("--retry-failed")
    procs = []
    for device in device_list:
        args = [sys.executable, "-m", "textsleep", "batch", *common, "--device", device, "--worker", device]
        procs.append(subprocess.Popen(args, start_new_session=True))  # Ctrl-C reaches them once, through us
    typer.echo(f"{len(procs)} workers: {', '.join(device_list)}")
    try:
        codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)  # the same stop, passed on
        for proc in procs:
            proc.wait()
        echo_err(f"\nstopped; each worker saved its running job\nresume with: {again}")
        return getattr(err, "exit_code", 130)
    stopped = [code for code in codes if code in (130, 143, 129)]
    return stopped[0] if stopped else max(codes)


def _slurm_shard() -> tuple[str | None, str]:
    """In a Slurm array task: its shard as I/N and a note saying where it came from; else (None, "")."""

    found = lib.shard_from_env()
    if found is None:
        return None, ""
    return f"{found[0]}/{found[1]}", f" from Slurm array task {os.environ['SLURM_ARRAY_TASK_ID']}"


def _resume_command(ctx, prompt_file, batch_dir, repeat, seeds, shard, devices, retry_failed, quiet) -> str:
    args = ["textsleep", "batch", str(prompt_file), "--out", str(batch_dir), *ctx.args]
    for name, value in (("--repeat", repeat), ("--seeds", seeds), ("--shard", shard), ("--devices", devices)):
        if value is not None:
            args += [name, value]
    args += ["--retry-failed"] * retry_failed + ["--quiet"] * quiet
    return shlex.join(args)


def _print_summary(folder, mine) -> None:

    records = folder.ordered()
    p = lib.progress(records)
    typer.echo(
        f"{p.total} jobs: {p.finished} finished, {p.failed} failed, {p.running} running, {p.waiting} waiting · "
        f"gallery {folder.path / 'index.html'}"
    )
    if p.failed:
        typer.echo(f"see the errors: textsleep batch --status {shlex.quote(str(folder.path))}")


def _print_status(status) -> None:
    p = status.progress
    typer.echo(f"{status.folder}: {status.prompt_file}, {p.total} jobs")
    typer.echo(f"  {p.finished} finished · {p.failed} failed · {p.running} running · {p.waiting} waiting")
    if p.eta_seconds is not None and p.remaining_steps:
        typer.echo(f"  ETA {_duration(p.eta_seconds)} ({p.remaining_steps} steps at {p.seconds_per_step:.2f} s a step)")
    typer.echo("")
    for r in status.records:
        score = f"{r['final_score']:.3f}" if isinstance(r.get("final_score"), (int, float)) else "-"
        steps = f"{r.get('steps_done') or 0}/{r.get('iterations')}" if r.get("iterations") else "-"
        seed = "-" if r.get("seed") is None else str(r["seed"])
        typer.echo(
            f"  {r.get('status', '?'):<11} {score:>6} {steps:>11}  seed {seed:<10} line {r.get('line', '?'):<4} "
            f"{_short(r.get('prompt') or r.get('source', ''))}"
        )
        if r.get("error"):
            typer.echo(f"{'':14}{r['error']}")
    if status.earlier:
        typer.echo(f"  ({status.earlier} earlier job(s) no longer in the prompt file are in manifest.jsonl)")
    typer.echo(f"gallery: {status.folder / 'index.html'}")


def _short(text: str, width: int = 50) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def register(app: typer.Typer) -> None:
    app.command("batch", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cli_errors(batch))
