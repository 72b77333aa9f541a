"""Measuring settings: dream a prompt list, score each final picture with a separate *judge* CLIP.

The judge is never one of the models optimised against, so its score is not
simply the objective.  Results are a JSON file (and a CSV of the same rows)
that :func:`compare` sets side by side.
"""

from __future__ import annotations

import csv
import statistics
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import outputs
from .batch import plan_batch
from .errors import UserError
from .imagine import Imagine
from .media import contact_sheet
from .models import ModelCache
from .runs import RUN_FILES

__all__ = ["plan_eval", "EvalRow", "run_eval", "compare", "judge_score", "write_results"]


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
    judge_score: float  # cosine similarity of the final picture and the prompt under the judge model
    objective_score: float | None  # the optimised models' own final score, for reference
    seconds: float  # wall time of the dream (models already loaded)
    run_dir: str


@torch.inference_mode()
def judge_score(judge, image: torch.Tensor, prompt: str) -> float:
    """Cosine similarity of a picture (3, H, W in [0, 1]) and a text under a CLIP model."""
    view = torch.nn.functional.interpolate(
        image[None].float(), size=judge.image_size, mode="bilinear", antialias=True, align_corners=False
    )
    return float((judge.encode_image(view.to(judge.device)) @ judge.encode_text([prompt]).T).item())


def run_eval(jobs: list, judge, *, out: Path, models: ModelCache | None = None) -> Iterator[EvalRow]:
    """Dream every job of :func:`plan_eval` and yield a scored row for each picture."""

    models = models or ModelCache()
    for job in jobs:
        imagine = Imagine(quiet=True, models=models, **{**job.settings, "out": str(out)})
        start = time.perf_counter()
        run_dir = imagine()
        seconds = time.perf_counter() - start
        with Image.open(run_dir / RUN_FILES["image"]) as im:
            pixels = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
        yield EvalRow(
            job.prompt,
            job.seed,
            judge_score(judge, pixels, job.prompt),
            imagine.final_score,
            round(seconds, 3),
            str(run_dir),
        )


def summary(rows: list[EvalRow]) -> dict:
    by_prompt: dict[str, list[EvalRow]] = {}
    for row in rows:
        by_prompt.setdefault(row.prompt, []).append(row)
    return {
        "mean_judge_score": statistics.fmean(r.judge_score for r in rows),
        "mean_seconds_per_image": statistics.fmean(r.seconds for r in rows),
        "images": len(rows),
        "per_prompt": {p: statistics.fmean(r.judge_score for r in rs) for p, rs in by_prompt.items()},
    }


def write_results(rows: list[EvalRow], meta: dict, folder: Path) -> Path:
    """results.json (meta, rows, summary), results.csv and sheet.png (finals side by side) in ``folder``."""

    data = {"meta": meta, "rows": [asdict(r) for r in rows], "summary": summary(rows)}
    outputs.write_json(folder / "results.json", data)
    with open(folder / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    images, captions = [], []
    for r in rows:
        with Image.open(Path(r.run_dir) / RUN_FILES["image"]) as im:
            images.append(im.convert("RGB"))
        captions.append(f"{r.judge_score:.3f} {r.prompt[:36]}")
    outputs.save_png(
        contact_sheet(images, captions, cols=max(1, len(meta.get("seeds", [0])))), folder / "sheet.png", {"eval": meta}
    )
    return folder / "results.json"


def compare(a_path: str | Path, b_path: str | Path) -> dict:
    """Per-prompt judge scores of two result files and their differences (b − a)."""
    a, b = (outputs.read_json(_results_file(p)) for p in (a_path, b_path))
    pa, pb = a["summary"]["per_prompt"], b["summary"]["per_prompt"]
    shared = [p for p in pa if p in pb]
    if not shared:
        raise UserError(f"{a_path} and {b_path} share no prompts; compare results of the same prompt file")
    rows = [{"prompt": p, "a": pa[p], "b": pb[p], "diff": pb[p] - pa[p]} for p in shared]
    return {
        "rows": rows,
        "mean_a": statistics.fmean(r["a"] for r in rows),
        "mean_b": statistics.fmean(r["b"] for r in rows),
        "mean_diff": statistics.fmean(r["diff"] for r in rows),
        "b_better": sum(r["diff"] > 0 for r in rows),
        "prompts": len(rows),
        "seconds_a": a["summary"]["mean_seconds_per_image"],
        "seconds_b": b["summary"]["mean_seconds_per_image"],
    }


def _results_file(path: str | Path) -> Path:
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    if not p.is_file():
        raise UserError(f"{str(path)!r}: no eval results there (results.json)")
    return p


def check_judge(judge_model: str, judge_pretrained: str, clip_specs) -> None:
    """Warn when the judge is also optimised against: its score would be the objective."""
    for spec in clip_specs:
        if spec.name == judge_model and spec.pretrained == judge_pretrained:
            warnings.warn(
                f"the judge {judge_model} ({judge_pretrained}) is also an optimisation model: its score is the "
                "objective, not an independent measure",
                stacklevel=2,
            )
