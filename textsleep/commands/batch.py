"""``textsleep batch``: a prompt file of dreams, resumable, with a gallery; ``--status`` shows how far it is."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer

from .. import batch as lib
from ..batch.store import MANIFEST
from ..errors import Interrupted, UserError
from ..hooks import Status
from ..options import with_settings
from .common import ProgressBar, cli_errors, echo_err

__all__ = ["register", "batch"]


@with_settings
def batch(
    ctx: typer.Context,
    prompt_file: Optional[Path] = typer.Argument(
        None, metavar="FILE", help="Prompt file: one prompt a line; options for one line after ' -- '; '#' comments."
    ),
    *,
    options: lib.BatchOptions,
) -> None:
    """Dream every prompt of a file; rerun the same command to resume.

    Any option of textsleep dream (textsleep dream --help) is a default for every line.
    """

    if options.status is not None:
        if prompt_file is not None or options.out is not None or ctx.args:
            raise UserError("--status DIR takes nothing else, e.g. textsleep batch --status outputs/batch-overnight")
        _print_status(lib.batch_status(options.status))
        return
    if prompt_file is None:
        raise UserError("give a prompt file, e.g. textsleep batch prompts/overnight.txt (or --status DIR)")
    worker = options.worker
    plan = lib.plan_lines(prompt_file, options, ctx.args)
    if worker is None:
        for job in plan.invalid:
            echo_err(f"{job.error}" if options.strict else f"warning: {job.error} (skipped; recorded as failed)")
        if options.strict and plan.invalid:
            raise UserError(
                f"{len(plan.invalid)} bad line(s) in {prompt_file}; fix them, or leave out --strict to skip them"
            )
    run = lib.launch(plan, options, ctx.args)
    if worker is None:
        (index, count), mine = run.shard, run.mine
        part = f" (shard {index}/{count}{run.shard_from})" if count > 1 or run.shard_from else ""
        bad = sum(not j.valid for j in mine)
        bad_lines = f" ({_bad_lines(bad)}: recorded as failed, not dreamt)" if bad else ""
        typer.echo(f"batch {run.folder.path}: {len(mine)} jobs{part}{bad_lines}; gallery {run.folder.gallery}")
    if run.devices and len(run.devices) > 1:
        code = _run_workers(run)
    else:
        device = run.devices[0] if run.devices else None
        code = _run_here(run, device=device, bars=not (options.quiet or worker is not None), lines=not options.quiet)
    if worker is None:
        _print_summary(run.folder)
    raise typer.Exit(code)


def _bad_lines(n: int) -> str:
    return f"{n} of them bad lines" if n > 1 else "1 of them a bad line"


def _run_here(run: lib.Launch, *, device: str | None, bars: bool, lines: bool) -> int:
    """Run this process's jobs, printing a line per job (``lines``) and a progress bar per dream (``bars``); 130 on
    Ctrl-C (143 on SIGTERM, 129 on SIGHUP), 1 if a job failed, else 0.
    """

    tag = run.options.worker
    prefix = f"[{tag}] " if tag else ""
    hook = ProgressBar(leave=False) if bars else None
    events = lib.run_jobs(
        run.folder, run.mine, retry_failed=run.options.retry_failed, device=device, quiet=not bars, on_step=hook
    )
    skipped = {Status.FINISHED: 0, Status.FAILED: 0}
    try:
        for event in events:
            if event.kind == "skipped" and event.why in skipped:
                skipped[event.why] += 1
                continue
            if lines or event.kind == "failed" or event.restarted:  # (--quiet keeps errors and lost work)
                typer.echo(prefix + _event_line(event, run.folder.path))
    except KeyboardInterrupt as err:
        events.close()
        by = f" by {err.signal_name}" if isinstance(err, Interrupted) else ""
        echo_err(f"\n{prefix}stopped{by}; the running job's checkpoint is saved and the manifest says interrupted")
        if tag is None:
            echo_err(f"resume with: {run.again}")
        return getattr(err, "exit_code", 130)
    finally:
        events.close()
    done, failed, bad = skipped[Status.FINISHED], skipped[Status.FAILED], sum(not j.valid for j in run.mine)
    if done or failed:
        why = (
            [f"{_bad_lines(bad)}: fix {'them' if bad > 1 else 'it'} to dream {'them' if bad > 1 else 'it'}"]
            if bad
            else []
        )
        why += [f"--retry-failed runs {'the others' if bad else 'them'} again"] if failed else []
        reasons = f" ({'; '.join(why)})" if why else ""
        typer.echo(f"{prefix}skipped {done} finished and {failed + bad} failed job(s){reasons}")
    records = run.folder.records()
    return 1 if any(records.get(job.id, {}).get("status") == Status.FAILED for job in run.mine) else 0


def _event_line(event, batch_dir: Path) -> str:
    p = event.progress
    count = f"[{p.done + (event.kind == 'start')}/{p.total}]"  # (a job starting counts itself)
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


def _run_workers(run: lib.Launch) -> int:
    """One worker process per device; Ctrl-C (or SIGTERM, SIGHUP) stops them all (each saves its job)."""

    typer.echo(f"{len(run.devices)} workers: {', '.join(run.devices)}")
    try:
        return lib.run_workers(run)
    except KeyboardInterrupt as err:
        echo_err(f"\nstopped; each worker saved its running job\nresume with: {run.again}")
        return getattr(err, "exit_code", 130)


def _print_summary(folder: lib.BatchFolder) -> None:

    records = folder.ordered()
    p = lib.progress(records)
    typer.echo(
        f"{p.total} jobs: {p.finished} finished, {p.failed} failed{f' ({_bad_lines(p.bad)})' if p.bad else ''}, "
        f"{p.running} running, {p.waiting} waiting · "
        f"gallery {folder.gallery}"
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
        typer.echo(f"  ({status.earlier} earlier job(s) no longer in the prompt file are in {MANIFEST})")
    typer.echo(f"gallery: {lib.BatchFolder(status.folder).gallery}")


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
