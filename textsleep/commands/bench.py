"""``textsleep bench``: seconds per dream step and peak memory, on random full-size models."""

from __future__ import annotations

import json

import typer

from ..bench import run_bench
from ..errors import UserError
from ..settings import AUGMENTS, PRECISIONS, SIZES
from .common import cli_errors
from .common import settings_default as d

__all__ = ["register"]


def bench(
    size: int = typer.Option(512, "--size", help="BigGAN-deep size: 128, 256 or 512."),
    cutouts: int = typer.Option(32, "--cutouts", help="Cutouts per step."),
    steps: int = typer.Option(10, "--steps", help="Timed steps (after one warm-up step)."),
    batch: int = typer.Option(1, "--batch", help="Pictures optimised at once."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16.", show_default=d("precision")),
    clip_model: str = typer.Option(
        "ViT-B-32-quickgelu", "--clip-model", help="open_clip model to build with random weights."
    ),
    augment: str = typer.Option("light", "--augment", help="Cutout augmentations: none, light or strong."),
    cutout_batch: int = typer.Option(
        32, "--cutout-batch", help="Cutouts CLIP encodes at once.", show_default=d("cutout_batch")
    ),
    breakdown: bool = typer.Option(
        False, "--breakdown", help="Also time BigGAN, cutouts and CLIP on their own and count their GFLOP."
    ),
    compile: bool = typer.Option(
        False, "--compile", help="Also time the step through torch.compile: compile time, steady step beside eager."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Time the real dream step on randomly initialised full-size models (no download needed)."""

    if size not in SIZES:
        raise UserError(f"--size {size}: allowed sizes are {', '.join(map(str, SIZES))}")
    for name, value, low in (
        ("--cutouts", cutouts, 1),
        ("--steps", steps, 1),
        ("--batch", batch, 1),
        ("--cutout-batch", cutout_batch, 1),
    ):
        if value < low:
            raise UserError(f"{name} {value}: must be a whole number >= {low}")
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: allowed are {', '.join(PRECISIONS)}")
    if augment not in AUGMENTS:
        raise UserError(f"--augment {augment!r}: allowed are {', '.join(AUGMENTS)}")
    result = run_bench(
        size=size,
        cutouts=cutouts,
        steps=steps,
        batch=batch,
        device=device,
        precision=precision,
        clip_model=clip_model,
        augment=augment,
        cutout_batch=cutout_batch,
        breakdown=breakdown,
        compile=compile,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    mode = " compiled" if compile else ""
    typer.echo(f"textsleep step: {result.median_s:.3f} s/step{mode} (median of {steps}), {result.it_per_s:.2f} it/s")
    if compile:
        typer.echo(
            f"  eager: {result.eager_median_s:.3f} s/step in the same run (compiled/eager "
            f"{result.median_s / result.eager_median_s:.2f}); compile: {result.compile_s:.1f} s (the first step)"
        )
    typer.echo(f"  size {size}, cutouts {cutouts}, batch {batch}, device {result.device}, precision {result.precision}")
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
