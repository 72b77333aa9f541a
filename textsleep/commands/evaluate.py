"""``textsleep eval``: compare settings by the scores of judges that did not guide the dreams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

import torch
import typer

from .. import evaluate as ev
from .. import hps
from ..batch import parse_seeds
from ..devices import resolve_device, resolve_dtype
from ..errors import UserError
from ..judges import JUDGES
from ..models import ModelCache
from ..options import parse_options, with_settings
from ..settings import DreamSettings, knob
from .common import ProgressBar, cli_errors

__all__ = ["register"]


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """The options of ``textsleep eval`` itself; the dream options that follow them apply to every dream."""

    judge_model: str = knob("ViT-L-14", "CLIP model that scores the finals (not one optimised against).")
    judge_pretrained: str = knob("openai", "Its pretrained tag or checkpoint file.")
    seeds: str = knob("0", "Comma-separated seeds; every prompt is dreamt once per seed.")
    out: Path | None = knob(
        None, "Folder for the runs and the report.", show="outputs/eval-DATE-TIME, or outputs/benchmark-hps"
    )
    compare: tuple[Path, ...] = knob((), "Compare two results.json files (give --compare twice).", show=False)
    # --- judges trained on human preference, and the HPS v2 benchmark -----------------------------------------------
    judges: tuple[str, ...] = knob(
        (),
        f"Judge the finals with: {', '.join(JUDGES)} (repeatable; NAME=PATH for a local file or folder).",
        flag="--judge",
        metavar="NAME[=PATH]",
        show="clip; hps-v2.1 for --benchmark",
    )
    benchmark: str | None = knob(
        None,
        "Dream the HPS v2 benchmark's prompts (DIR: a folder of its four STYLE.json files) and print its table.",
        metavar="hps[=DIR]",
    )
    limit: int = knob(hps.DEFAULT_LIMIT, "With --benchmark: the first N prompts per style.")
    shard: str | None = knob(
        None, "With --benchmark: run jobs I, I+N, … (a Slurm array's task by default).", metavar="I/N"
    )
    allow_self_judging: bool = knob(False, "Let a judge that also guides the dreams score them (marked in reports).")


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
    """Dream each prompt for a fixed number of steps and score the finals with judges that did not guide them
    (any dream option applies).
    """

    o = options
    if o.compare:
        if len(o.compare) != 2 or prompt_file is not None or o.benchmark:
            raise UserError(
                "--compare takes exactly two results files: textsleep eval --compare a.json --compare b.json"
            )
        _print_comparison(*o.compare)
        return
    judging = {"model": o.judge_model, "pretrained": o.judge_pretrained, "allow": o.allow_self_judging}
    if o.benchmark is not None:
        if prompt_file is not None:  # the value of the first dream option, taken for the prompt file argument
            ctx.args[:] = _reclaim(list(ctx.args), str(prompt_file), o.benchmark)
        _benchmark(ctx, o.benchmark, list(o.judges) or ["hps-v2.1"], o.limit, o.seeds, o.out, o.shard, judging)
        return
    if prompt_file is None:
        raise UserError("give a prompt file (e.g. prompts/eval.txt), --benchmark hps, or --compare A B")
    if o.shard is not None:
        raise UserError("--shard is for --benchmark (a prompt file's dreams are shared out by textsleep batch)")
    _run(ctx, prompt_file, list(o.judges) or ["clip"], o.seeds, o.out, judging)


def _reclaim(args: list[str], value: str, benchmark: str) -> list[str]:
    """The dream options with ``value`` back after the option it belongs to (the first place it parses)."""
    for k in range(len(args) + 1):
        candidate = [*args[:k], value, *args[k:]]
        try:
            parse_options(candidate)
        except UserError:
            continue
        return candidate
    parse_options([value, *args])  # says what is wrong with them
    raise UserError(f"--benchmark {benchmark} dreams the benchmark's prompts: give no prompt file ({value!r}) too")


def _dream_options(ctx) -> dict:
    options = parse_options(list(ctx.args))
    options.pop("out", None)
    return options


def _load(specs, settings: dict, judging: dict, models: ModelCache) -> list:
    base = DreamSettings(**{**settings, "text": ""})
    device = resolve_device(base.device)
    dtype = resolve_dtype(base.precision, device)
    clip = {"clip_model": judging["model"], "clip_pretrained": judging["pretrained"]}
    return ev.load_judges(specs, device, dtype=dtype, models=models, **clip)


def _run(ctx, prompt_file: Path, specs: list[str], seeds_text: str, out: Path | None, judging: dict) -> None:

    seeds = parse_seeds(seeds_text)
    options = _dream_options(ctx)
    jobs = ev.plan_eval(prompt_file, options, seeds)
    base = DreamSettings(**{**jobs[0].settings, "text": ""})
    clip = {"clip_model": judging["model"], "clip_pretrained": judging["pretrained"]}
    marked = ev.check_self_judging(specs, [j.settings for j in jobs], allow=judging["allow"], **clip)
    folder = out or Path(base.out) / f"eval-{datetime.now():%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    models = ModelCache()
    judges = _load(specs, jobs[0].settings, judging, models)
    rows = []
    total = len(jobs)
    for row in ev.run_eval(jobs, judges, out=folder / "runs", models=models):
        rows.append(row)
        scores = "  ".join(f"{ev.column(n, marked)} {v:.4f}" for n, v in row.scores.items())
        typer.echo(f"[{len(rows)}/{total}] {scores}  {row.seconds:.1f} s  seed {row.seed}  {row.prompt}")
    meta = {
        "prompt_file": str(prompt_file),
        "seeds": seeds,
        "judge": {"model": judging["model"], "pretrained": judging["pretrained"]},
        "judges": [j.describe() for j in judges],
        "self_judged": marked,
        "options": options,
        "settings": base.to_dict(),
        "torch": torch.__version__,
    }
    results = ev.write_results(rows, meta, folder)
    s = ev.summary(rows)
    means = ", ".join(f"{ev.column(n, marked)} {v:.4f}" for n, v in s["means"].items())
    seconds = s["mean_seconds_per_image"]
    typer.echo(f"mean judge score: {means} over {s['images']} pictures, {seconds:.1f} s per picture")
    typer.echo(f"report: {results} (+ results.csv, sheet.png)")


def _benchmark(ctx, spec: str, specs, limit, seeds_text, out, shard, judging) -> None:
    """``--benchmark hps``: dream the benchmark as a batch (resumable, shardable), then print its table."""
    source = hps.parse_benchmark(spec)
    hps.check_judges(specs)
    options = _dream_options(ctx)
    clip = {"clip_model": judging["model"], "clip_pretrained": judging["pretrained"]}
    marked = ev.check_self_judging(specs, [options], allow=judging["allow"], **clip)
    out = out or Path(DreamSettings(**options).out) / "benchmark-hps"
    bench = hps.Benchmark.prepare(
        out=out, limit=limit, options=options, seeds=parse_seeds(seeds_text), source=source, shard=shard,
        self_judged=marked,
    )  # fmt: skip
    models = ModelCache()
    judges = _load(specs, options, judging, models)
    i, n = bench.shard
    part = f" (shard {i}/{n}: {len(bench.mine)} of them here)" if n > 1 else ""
    typer.echo(f"benchmark {bench.out}: {len(bench.jobs)} pictures{part}; gallery {bench.batch.path / 'index.html'}")
    try:
        for event in bench.dream(models=models, on_step=ProgressBar(leave=False)):
            if event.kind in ("start", "failed"):
                what = "failed: " + str(event.record.get("error")) if event.kind == "failed" else event.job.prompt
                typer.echo(f"[{event.progress.done + (event.kind == 'start')}/{len(bench.mine)}] {what}")
    except KeyboardInterrupt:
        typer.echo(f"stopped; rerun the same command to continue ({bench.out})", err=True)
        raise
    report = bench.finish(judges)
    if report is None:
        done, total = bench.progress()
        typer.echo(f"{done} of {total} pictures done; the table comes when all are (rerun, or let the shards finish)")
        return
    typer.echo(report["text"])
    typer.echo(report["note"])
    typer.echo(f"report: {report['results']} (+ results.csv, table.md)")


def _print_comparison(a: Path, b: Path) -> None:

    c = ev.compare(a, b)
    width = max(len(r["prompt"]) for r in c["rows"])
    for name in c["judges"]:
        mark = " *" if name in c["marked"] else ""
        typer.echo(f"{'prompt':<{width}}  {name + mark + ' A':>12}  {'B':>9}  {'B-A':>9}")
        for r in c["rows"]:
            a_, b_, d_ = r["a"][name], r["b"][name], r["diff"][name]
            typer.echo(f"{r['prompt']:<{width}}  {a_:12.4f}  {b_:9.4f}  {d_:+9.4f}")
        m = (c["mean_a"][name], c["mean_b"][name], c["mean_diff"][name])
        typer.echo(f"{'mean':<{width}}  {m[0]:12.4f}  {m[1]:9.4f}  {m[2]:+9.4f}")
        typer.echo(f"B better on {c['b_better'][name]} of {c['prompts']} prompts under {name}\n")
    if c["marked"]:
        typer.echo(f"* {', '.join(c['marked'])} {ev.SELF_JUDGED} in A or B: not independent evidence")
    typer.echo(f"seconds per picture A {c['seconds_a']:.1f}, B {c['seconds_b']:.1f}")


def register(app: typer.Typer) -> None:
    app.command("eval", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        cli_errors(evaluate)
    )
