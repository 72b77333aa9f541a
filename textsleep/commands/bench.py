"""``textsleep bench``: seconds per dream step and peak memory, on random full-size models."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import typer

from ..bench import run_bench
from ..command_settings import BenchSettings
from ..options import with_settings
from ..settings import knob
from .common import cli_errors

__all__ = ["register"]


@dataclass(frozen=True)
class Report:
    """How ``textsleep bench`` prints its figures."""

    as_json: bool = knob(False, "Print one JSON object instead of a table.", flag="--json")


@with_settings
def bench(*, settings: BenchSettings, report: Report) -> None:
    """Time the real dream step on randomly initialised full-size models (no download needed)."""

    result = run_bench(**dataclasses.asdict(settings))
    size, cutouts, steps, batch = settings.size, settings.cutouts, settings.steps, settings.batch
    if report.as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    mode = " compiled" if settings.compile else ""
    typer.echo(f"textsleep step: {result.median_s:.3f} s/step{mode} (median of {steps}), {result.it_per_s:.2f} it/s")
    if settings.compile:
        typer.echo(
            f"  eager: {result.eager_median_s:.3f} s/step in the same run (compiled/eager "
            f"{result.median_s / result.eager_median_s:.2f}); compile: {result.compile_s:.1f} s (the first step)"
        )
    typer.echo(f"  size {size}, cutouts {cutouts}, batch {batch}, device {result.device}, precision {result.precision}")
    if settings.guide:
        each = f"cutout batch {settings.cutout_batch}" if settings.cutout_batch else "all cutouts at once"
        typer.echo(f"  guided by {settings.clip_model} and {settings.guide} ({each})")
    typer.echo(
        f"  {result.memory_kind}: {result.peak_memory_gb:.2f} GB; torch {result.torch}; min {result.min_s:.3f} s, "
        f"max {result.max_s:.3f} s"
    )
    if result.phases:
        typer.echo(
            f"  one step: {result.gflop_per_step:.0f} GFLOP, {result.gflop_per_step / result.median_s:.0f} GFLOP/s "
            f"(a large {result.precision} matmul here: {result.matmul_gflops:.0f} GFLOP/s)"
        )
        for name, part in result.phases.items():
            rate = f", {part['gflop'] / part['median_s']:.0f} GFLOP/s" if part["gflop"] else ""
            typer.echo(f"  {name:>9}: {part['median_s']:.3f} s forward + backward, {part['gflop']:.0f} GFLOP{rate}")


def register(app: typer.Typer) -> None:
    app.command("bench")(cli_errors(bench))
