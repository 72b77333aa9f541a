"""Measuring settings: dream a prompt list, score each final picture with *judges* that did not guide it.

A judge (:mod:`textsleep.judges`: CLIP, HPS v2/v2.1, PickScore, LAION's
aesthetic predictor) that is also one of the models optimised against is
refused, because a picture optimised for a score is no evidence about that
score; allowed anyway, it is marked in every report.  Results are a JSON file
(and a CSV of the same rows, one column per judge) that :func:`compare` sets
side by side.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import outputs
from .batch import plan_batch
from .errors import UserError
from .imagine import Imagine
from .judges import load_judge, parse_judge, self_judging
from .media import contact_sheet
from .models import Clip, ModelCache
from .runs import RUN_FILES
from .scorers import ClipJudge, Judge, resize_preprocess
from .settings import ClipSpec, DreamSettings

__all__ = [
    "plan_eval",
    "EvalRow",
    "run_eval",
    "load_judges",
    "check_self_judging",
    "judge_picture",
    "judge_score",
    "summary",
    "write_results",
    "compare",
]

SELF_JUDGED = "guided the dream"  # how a judge that also guided the dreams is marked


def plan_eval(prompt_file: str | Path, options: dict, seeds: list[int]) -> list:
    """The dreams of an eval: every line of a prompt file once per seed, read as a batch reads it.

    A line may carry its own options after `` -- `` (and its own ``--seeds``), as
    in ``textsleep batch``; a bad line is an error naming ``file:line`` (an eval
    that skips a prompt would not compare like with like).
    """

    plan = plan_batch(prompt_file, options, seeds=seeds)
    if plan.invalid:
        raise UserError(f"{plan.invalid[0].error} (eval runs every line: fix it or comment it out with '#')")
    return plan.jobs


@dataclass
class EvalRow:
    prompt: str
    seed: int
    scores: dict[str, float]  # judge name → the final picture's score under that judge
    objective_score: float | None  # the optimised models' own final score, for reference
    seconds: float  # wall time of the dream (models already loaded)
    run_dir: str
    style: str | None = field(default=None)  # the HPS benchmark's style of the prompt


# ---------------------------------------------------------------------------------------------- judges
def load_judges(
    specs: Sequence[str], device, *, clip_model: str, clip_pretrained: str, dtype, models: ModelCache
) -> list[Judge]:
    """Each ``--judge`` (``NAME`` or ``NAME=PATH``) loaded on ``device``, in order; a name given twice is an error."""
    names = [parse_judge(spec)[0] for spec in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"--judge {twice[0]} is given twice; each judge scores once")
    return [
        load_judge(spec, device, clip_model=clip_model, clip_pretrained=clip_pretrained, dtype=dtype, models=models)
        for spec in specs
    ]


def check_self_judging(
    specs: Sequence[str], settings: Sequence[dict], *, clip_model: str, clip_pretrained: str, allow: bool
) -> list[str]:
    """The judges that also guide a dream of ``settings`` (DreamSettings fields, e.g. each job's): an error,
    or with ``allow`` the list to mark in the reports.

    A dream's guides are the models of its ensemble (a weight of 0 leaves one out) and the judge that chose its
    start (``--init-judge``: a start picked from thousands by a judge is optimised for it too).
    """
    judges = [parse_judge(spec) for spec in specs]
    guides = set()
    for given in settings:
        dream = DreamSettings(**{**given, "text": "x"})
        guides |= {spec for spec in dream.clips() if spec.weight > 0}
        if dream.init_judge:
            name, _, path = dream.init_judge.partition("=")
            guides.add(ClipSpec(name.strip().lower(), path.strip()))
    found = self_judging(judges, sorted(guides, key=str), clip_model, clip_pretrained)
    if found and not allow:
        raise UserError(
            f"--judge {found[0]} is also one of the models the dreams are optimised against, so its score would be "
            "the objective, not evidence; judge with another model (or add --allow-self-judging to mark it instead)"
        )
    return found


def _as_judges(judges) -> list[Judge]:
    """A list of judges; a bare :class:`Clip` is the ``clip`` judge (as ``run_eval`` once took it)."""
    if isinstance(judges, (Clip, Judge)):
        judges = [judges]
    return [ClipJudge("clip", f"{j.name} ({j.pretrained})", j, resize_preprocess) if isinstance(j, Clip) else j
            for j in judges]  # fmt: skip


def load_picture(run_dir: str | Path) -> torch.Tensor:
    """A run's final picture as (3, H, W) in [0, 1]."""
    with Image.open(Path(run_dir) / RUN_FILES["image"]) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


@torch.inference_mode()
def judge_picture(judges, image: torch.Tensor, prompt: str) -> dict[str, float]:
    """A picture (3, H, W in [0, 1]) and its prompt scored by each judge: ``{name: score}``."""
    return {j.name: float(j.score(image[None], prompt).item()) for j in _as_judges(judges)}


def judge_score(judge, image: torch.Tensor, prompt: str) -> float:
    """One judge's score of a picture (3, H, W in [0, 1]); a :class:`Clip` gives the cosine, as before."""
    (score,) = judge_picture([judge], image, prompt).values()
    return score


# ---------------------------------------------------------------------------------------------- running
def run_eval(jobs: list, judges, *, out: Path, models: ModelCache | None = None) -> Iterator[EvalRow]:
    """Dream every job of :func:`plan_eval` and yield a row for each picture, scored by every judge."""

    judges = _as_judges(judges)
    models = models or ModelCache()
    for job in jobs:
        imagine = Imagine(quiet=True, models=models, **{**job.settings, "out": str(out)})
        start = time.perf_counter()
        run_dir = imagine()
        seconds = time.perf_counter() - start
        scores = judge_picture(judges, load_picture(run_dir), job.prompt)
        yield EvalRow(job.prompt, job.seed, scores, imagine.final_score, round(seconds, 3), str(run_dir))


# ---------------------------------------------------------------------------------------------- reports
def summary(rows: list[EvalRow]) -> dict:
    """Mean score per judge (over all pictures and per prompt), pictures and seconds per picture."""
    names = list(rows[0].scores) if rows else []
    by_prompt: dict[str, list[EvalRow]] = {}
    for row in rows:
        by_prompt.setdefault(row.prompt, []).append(row)
    means = {n: statistics.fmean(r.scores[n] for r in rows) for n in names}
    return {
        "judges": names,
        "means": means,
        "mean_judge_score": means[names[0]] if names else None,  # the first judge's (reports before judges)
        "mean_seconds_per_image": statistics.fmean(r.seconds for r in rows),
        "images": len(rows),
        "per_prompt": {p: {n: statistics.fmean(r.scores[n] for r in rs) for n in names} for p, rs in by_prompt.items()},
    }


def column(name: str, marked: Sequence[str] = ()) -> str:
    """A judge's column name in reports: its name, marked when it also guided the dreams."""
    return f"{name} ({SELF_JUDGED})" if name in marked else name


def write_results(rows: list[EvalRow], meta: dict, folder: Path, *, sheet: bool = True) -> Path:
    """results.json (meta, rows, summary), results.csv (a column per judge) and sheet.png in ``folder``.

    ``meta["self_judged"]`` names the judges that also guided the dreams; they are marked in each file.
    """
    marked = meta.get("self_judged") or []
    data = {"meta": meta, "rows": [asdict(r) for r in rows], "summary": {**summary(rows), "self_judged": marked}}
    outputs.write_json(folder / "results.json", data)
    styled = any(r.style for r in rows)
    fields = ["prompt", "seed", *(["style"] if styled else [])]
    fields += [column(n, marked) for n in rows[0].scores] + ["objective_score", "seconds", "run_dir"]

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for r in rows:
                flat = {k: v for k, v in asdict(r).items() if k != "scores" and (k != "style" or styled)}
                writer.writerow({**flat, **{column(n, marked): v for n, v in r.scores.items()}})

    outputs.atomic_write(folder / "results.csv", write_csv)  # whole or not at all (array tasks may race to it)
    if sheet:
        images, captions = [], []
        first = next(iter(rows[0].scores))
        for r in rows:
            with Image.open(Path(r.run_dir) / RUN_FILES["image"]) as im:
                images.append(im.convert("RGB"))
            captions.append(f"{r.scores[first]:.3f}{'*' if first in marked else ''} {r.prompt[:36]}")
        cols = max(1, len(meta.get("seeds", [0])))
        outputs.save_png(contact_sheet(images, captions, cols=cols), folder / "sheet.png", {"eval": meta})
    return folder / "results.json"


def compare(a_path: str | Path, b_path: str | Path) -> dict:
    """Per-prompt scores of two result files under each judge they share, and the differences (b − a).

    ``marked`` lists the judges that guided the dreams of either file.
    """
    a, b = (outputs.read_json(_results_file(p)) for p in (a_path, b_path))
    pa, pb = _per_prompt(a), _per_prompt(b)
    shared = [p for p in pa if p in pb]
    if not shared:
        raise UserError(f"{a_path} and {b_path} share no prompts; compare results of the same prompt file")
    judges = [n for n in pa[shared[0]] if n in pb[shared[0]]]
    if not judges:
        raise UserError(f"{a_path} and {b_path} share no judge; score both with the same --judge")
    rows = [{"prompt": p, "a": {n: pa[p][n] for n in judges}, "b": {n: pb[p][n] for n in judges}} for p in shared]
    for r in rows:
        r["diff"] = {n: r["b"][n] - r["a"][n] for n in judges}
    marked = [n for n in judges if n in _marked(a) or n in _marked(b)]
    return {
        "judges": judges,
        "marked": marked,
        "rows": rows,
        "mean_a": {n: statistics.fmean(r["a"][n] for r in rows) for n in judges},
        "mean_b": {n: statistics.fmean(r["b"][n] for r in rows) for n in judges},
        "mean_diff": {n: statistics.fmean(r["diff"][n] for r in rows) for n in judges},
        "b_better": {n: sum(r["diff"][n] > 0 for r in rows) for n in judges},
        "prompts": len(rows),
        "seconds_a": a["summary"]["mean_seconds_per_image"],
        "seconds_b": b["summary"]["mean_seconds_per_image"],
    }


def _per_prompt(data: dict) -> dict[str, dict[str, float]]:
    """``{prompt: {judge: score}}``; a report from before judges had one CLIP score per prompt."""
    per = data["summary"]["per_prompt"]
    return {p: v if isinstance(v, dict) else {"clip": v} for p, v in per.items()}


def _marked(data: dict) -> list[str]:
    return list(data.get("meta", {}).get("self_judged") or [])


def _results_file(path: str | Path) -> Path:
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    if not p.is_file():
        raise UserError(f"{str(path)!r}: no eval results there (results.json)")
    return p
