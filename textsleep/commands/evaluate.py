"""``textsleep eval``: compare settings by an independent judge's score."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

import torch
import typer

from .. import evaluate as ev
from ..batch import parse_seeds
from ..errors import UserError
from ..models import ModelCache, resolve_device, resolve_dtype
from ..options import parse_options, with_settings
from ..settings import DreamSettings, knob
from .common import cli_errors

__all__ = ["register"]


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """The options of ``textsleep eval`` itself; the dream options that follow them apply to every dream."""

    judge_model: str = knob("ViT-L-14", "CLIP model that scores the finals (not one optimised against).")
    judge_pretrained: str = knob("openai", "Its pretrained tag or checkpoint file.")
    seeds: str = knob("0", "Comma-separated seeds; every prompt is dreamt once per seed.")
    out: Path | None = knob(None, "Folder for the runs and the report.", show="outputs/eval-DATE-TIME")
    compare: tuple[Path, ...] = knob((), "Compare two results.json files (give --compare twice).", show=False)


@with_settings
def evaluate(
    ctx: typer.Context,
    prompt_file: Optional[Path] = typer.Argument(
        None,
        help="Prompt file, as textsleep batch reads it: one a line, options for one line after ' -- ', '#' comments.",
    ),
    *,
    options: EvalOptions,
) -> None:
    """Dream each prompt for a fixed number of steps and score the finals with a judge CLIP (any dream
    option applies).
    """

    compare_files = options.compare
    if compare_files:
        if len(compare_files) != 2 or prompt_file is not None:
            raise UserError(
                "--compare takes exactly two results files: textsleep eval --compare a.json --compare b.json"
            )
        _print_comparison(*compare_files)
        return
    if prompt_file is None:
        raise UserError("give a prompt file (e.g. prompts/eval.txt), or --compare A B")
    _run(ctx, prompt_file, options)


def _run(ctx, prompt_file: Path, options: EvalOptions) -> None:

    judge_model, judge_pretrained, out = options.judge_model, options.judge_pretrained, options.out
    seeds = parse_seeds(options.seeds)
    given = parse_options(list(ctx.args))
    given.pop("out", None)
    jobs = ev.plan_eval(prompt_file, given, seeds)
    base = DreamSettings(**{**jobs[0].settings, "text": ""})
    ev.check_judge(judge_model, judge_pretrained, base.clips())
    folder = out or Path(base.out) / f"eval-{datetime.now():%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    models = ModelCache()
    device = resolve_device(base.device)
    judge = models.clip(judge_model, judge_pretrained, device, resolve_dtype(base.precision, device))
    rows = []
    total = len(jobs)
    for row in ev.run_eval(jobs, judge, out=folder / "runs", models=models):
        rows.append(row)
        typer.echo(
            f"[{len(rows)}/{total}] judge {row.judge_score:.4f}  {row.seconds:.1f} s  seed {row.seed}  {row.prompt}"
        )
    meta = {
        "prompt_file": str(prompt_file),
        "seeds": seeds,
        "judge": {"model": judge_model, "pretrained": judge_pretrained},
        "options": given,
        "settings": base.to_dict(),
        "torch": torch.__version__,
    }
    results = ev.write_results(rows, meta, folder)
    s = ev.summary(rows)
    typer.echo(
        f"mean judge score {s['mean_judge_score']:.4f} over {s['images']} pictures, "
        f"{s['mean_seconds_per_image']:.1f} s per picture"
    )
    typer.echo(f"report: {results} (+ results.csv, sheet.png)")


def _print_comparison(a: Path, b: Path) -> None:

    c = ev.compare(a, b)
    width = max(len(r["prompt"]) for r in c["rows"])
    typer.echo(f"{'prompt':<{width}}  {'A':>7}  {'B':>7}  {'B-A':>7}")
    for r in c["rows"]:
        typer.echo(f"{r['prompt']:<{width}}  {r['a']:7.4f}  {r['b']:7.4f}  {r['diff']:+7.4f}")
    typer.echo(f"{'mean':<{width}}  {c['mean_a']:7.4f}  {c['mean_b']:7.4f}  {c['mean_diff']:+7.4f}")
    typer.echo(
        f"B better on {c['b_better']} of {c['prompts']} prompts; seconds per picture A {c['seconds_a']:.1f}, B "
        f"{c['seconds_b']:.1f}"
    )


def register(app: typer.Typer) -> None:
    app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        cli_errors(evaluate)
    )
