"""The HPS v2 benchmark (tgxs002/HPSv2): its prompts dreamt as a batch, judged by HPS, beside the published table.

The benchmark's prompts are four JSON lists of 800 (``benchmark/anime.json``,
``concept-art.json``, ``paintings.json``, ``photo.json`` in the Hub dataset
``zhwang/HPDv2``).  :class:`Benchmark` dreams the first N of each with the
given settings as a :mod:`textsleep.batch` (so a rerun continues where it
stopped, and a Slurm array shares the work), then scores every picture
with each judge and sets the HPS scores per style beside the published rows.

>>> bench = Benchmark.prepare(limit=2, options={"iterations": 300}, out="outputs/benchmark-hps")  # doctest: +SKIP
>>> for event in bench.dream():                                                                  # doctest: +SKIP
...     print(event.kind, event.job.prompt)
>>> report = bench.finish(judges)                                                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import outputs
from .batch import BatchFolder, Event, Job, parse_shard, plan_batch, run_jobs, select_shard, shard_from_env
from .errors import UserError
from .evaluate import SELF_JUDGED, EvalRow, judge_picture, load_picture, write_results
from .judges import JUDGES, hub_file, parse_judge
from .models import ModelCache
from .scorers import Judge
from .settings import RUN_ONLY, DreamSettings

__all__ = [
    "STYLES",
    "PUBLISHED",
    "DATASET",
    "Benchmark",
    "parse_benchmark",
    "check_judges",
    "benchmark_prompts",
    "dream_text",
    "format_table",
]

STYLES = ("anime", "concept-art", "paintings", "photo")
TITLES = ("Animation", "Concept-art", "Painting", "Photo", "Averaged")  # the published table's columns
DATASET = "zhwang/HPDv2"
DEFAULT_LIMIT = 25
_MAX_FILE_BYTES = 16 << 20  # a style's file is ~100 kB

# The published benchmark: tgxs002/HPSv2, README.md, "The HPS benchmark" (the "v2 benchmark" and
# "v2.1 benchmark" tables, commit 866735e): 800 prompts of each style, one picture each.
# Per style (Animation, Concept-art, Painting, Photo) and averaged.
PUBLISHED: dict[str, dict[str, tuple[float, ...]]] = {
    "hps-v2": {
        "Stable Diffusion v1.4": (27.26, 26.61, 26.66, 27.27, 26.95),
        "VQGAN + CLIP": (26.44, 26.53, 26.47, 26.12, 26.39),
        "FuseDream": (25.26, 25.15, 25.13, 25.57, 25.28),
        "LAFITE": (24.63, 24.38, 24.43, 25.81, 24.81),
    },
    "hps-v2.1": {
        "Stable Diffusion v1.4": (26.03, 24.87, 24.80, 25.70, 25.35),
        "VQGAN + CLIP": (22.55, 23.76, 23.41, 21.51, 22.81),
        "FuseDream": (19.16, 19.37, 19.07, 20.07, 19.42),
        "LAFITE": (17.79, 17.55, 17.61, 20.88, 18.46),
    },
}


def parse_benchmark(spec: str) -> Path | None:
    """``--benchmark hps`` → None (the Hub dataset); ``hps=DIR`` → a local folder of the four prompt files."""
    name, sep, raw = spec.partition("=")
    if name.strip().lower() != "hps":
        raise UserError(f"--benchmark {spec!r}: the benchmark here is hps (or hps=DIR, a folder of its prompt files)")
    source = Path(raw.strip()).expanduser() if sep else None
    if source is not None and not source.is_dir():
        raise UserError(f"--benchmark {spec!r}: no such folder {raw.strip()!r} (it holds {_files()})")
    return source


def check_judges(specs: Sequence[str]) -> None:
    """The benchmark's table needs an HPS judge among ``specs`` (``--judge`` values)."""
    if not any(parse_judge(s)[0] in PUBLISHED for s in specs):
        raise UserError(f"--benchmark hps needs an HPS judge: add --judge {' or --judge '.join(PUBLISHED)}")


def benchmark_prompts(source: Path | None = None) -> dict[str, list[str]]:
    """The four styles' prompt lists: from the Hub dataset (cached), or a local folder of the same files."""
    prompts = {}
    for style in STYLES:
        if source is not None:
            file = source / f"{style}.json"
            if not file.is_file():
                raise UserError(f"--benchmark hps={source}: the folder has no {style}.json (it needs {_files()})")
        else:
            how = f"or pass --benchmark hps=DIR, a folder holding {_files()} from the dataset {DATASET}"
            file = hub_file(DATASET, f"benchmark/{style}.json", repo_type="dataset", how=how)
        prompts[style] = _read_prompts(file)
    return prompts


def _files() -> str:
    return ", ".join(f"{s}.json" for s in STYLES)


def _read_prompts(file: Path) -> list[str]:
    if file.stat().st_size > _MAX_FILE_BYTES:
        raise UserError(f"{file}: {file.stat().st_size} bytes; a benchmark prompt file is a JSON list of ~100 kB")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{file}: not JSON ({err}); a benchmark prompt file is a JSON list of prompts") from None
    if not isinstance(data, list) or not data or not all(isinstance(p, str) and p.strip() for p in data):
        raise UserError(f"{file}: not a JSON list of prompts (non-empty strings), as {DATASET} holds them")
    return data


def dream_text(prompt: str) -> str:
    """A benchmark prompt as one line of a prompt file that dreams exactly its words.

    The dream's prompt syntax would read ``|`` as several prompts, ``text:2`` as
    a weight and ``a ^ b`` as a story, and a prompt file ``#`` as a comment and
    `` -- `` as options; those characters become plain punctuation.  The judges
    see the prompt as published.
    """
    text = " ".join(prompt.split()).replace("|", "/").replace("^", " ").replace(":", ",")
    text = re.sub(r"(?:^|\s)--(?=\s|$)", " -", text).lstrip("# ").strip()
    return " ".join(text.split()) or "a picture"


@dataclass
class Entry:
    style: str
    index: int  # in the style's published list
    prompt: str


@dataclass
class Benchmark:
    """One run of the benchmark: its prompts, its batch (dreams) and what goes into its table."""

    out: Path
    entries: list[Entry]
    seeds: list[int]
    limit: int
    source: str
    batch: BatchFolder
    jobs: list[Job]  # every job of the benchmark, in the prompt file's order
    mine: list[Job]  # those this process runs (its shard)
    shard: tuple[int, int]
    self_judged: list[str] = field(default_factory=list)

    @classmethod
    def prepare(
        cls,
        *,
        out: str | Path,
        limit: int = DEFAULT_LIMIT,
        options: dict | None = None,
        seeds: Sequence[int] = (0,),
        source: Path | None = None,
        shard: str | None = None,
        self_judged: Sequence[str] = (),
    ) -> Benchmark:
        """Check the inputs, read the prompts, write the prompt file and open the batch folder (no model loads)."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise UserError(f"--limit {limit!r}: must be a whole number >= 1 (prompts of each style)")
        index, count = parse_shard(shard) if shard is not None else shard_from_env() or (0, 1)
        prompts = benchmark_prompts(source)
        entries = [Entry(s, i, p) for s in STYLES for i, p in enumerate(prompts[s][:limit])]
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        prompt_file = out / "prompts.txt"
        text = "".join(dream_text(e.prompt) + "\n" for e in entries)
        if not prompt_file.is_file() or prompt_file.read_text(encoding="utf-8") != text:
            outputs.write_text(prompt_file, text)
        plan = plan_batch(prompt_file, dict(options or {}), seeds=list(seeds))
        if plan.invalid:
            raise UserError(plan.invalid[0].error)
        batch = BatchFolder(out / "batch")
        if batch.meta_file.is_file() and batch.meta().get("defaults") != plan.identity():
            then, now = batch.meta().get("defaults", {}), plan.identity()
            changed = ", ".join(sorted(k for k in {*then, *now} if then.get(k) != now.get(k)))
            raise UserError(
                f"--out {str(out)!r} holds a benchmark dreamt with other settings ({changed}); rerun with the same "
                "options to continue it, or give another --out"
            )
        batch = BatchFolder.prepare(out / "batch", plan)
        mine = select_shard(plan.jobs, index, count)
        where = str(source) if source else DATASET
        return cls(out, entries, list(seeds), limit, where, batch, plan.jobs, mine, (index, count), list(self_judged))

    def dream(self, *, models: ModelCache | None = None, on_step=None, device: str | None = None) -> Iterator[Event]:
        """Dream this process's jobs not yet done (a failed one is tried again), yielding the batch's events."""
        yield from run_jobs(self.batch, self.mine, retry_failed=True, models=models, on_step=on_step, device=device)

    def progress(self) -> tuple[int, int]:
        """(pictures finished, pictures in the benchmark)."""
        records = self.batch.records()
        return sum(records.get(j.id, {}).get("status") == "finished" for j in self.jobs), len(self.jobs)

    def rows(self) -> list[EvalRow]:
        """The finished pictures as rows (not yet scored), in the benchmark's order."""
        records = self.batch.records()
        rows = []
        for job in self.jobs:
            record = records.get(job.id, {})
            if record.get("status") == "finished":
                entry = self.entries[job.line - 1]
                run_dir = str(self.batch.path / record["folder"])
                seconds = round(float(record.get("seconds") or 0), 3)
                objective = record.get("final_score")
                rows.append(EvalRow(entry.prompt, job.seed, {}, objective, seconds, run_dir, entry.style))
        return rows

    def finish(self, judges: Sequence[Judge]) -> dict | None:
        """Score every picture and write the report, once all are finished (else None).

        Writes ``results.json`` (rows, summary, the tables), ``results.csv`` and ``table.md`` in ``out``.
        """
        done, total = self.progress()
        if done < total:
            return None
        rows = self.rows()
        for row in rows:
            row.scores = judge_picture(judges, load_picture(row.run_dir), row.prompt)
        tables = {j.name: style_means(rows, j.name) for j in judges}
        meta = {
            "benchmark": "hps",
            "source": self.source,
            "limit": self.limit,
            "seeds": self.seeds,
            "judges": [j.describe() for j in judges],
            "self_judged": self.self_judged,
            "settings": self.settings(),
            "published": {n: PUBLISHED[n] for n in tables if n in PUBLISHED},
        }
        write_results(rows, {**meta, "tables": tables}, self.out, sheet=False)
        text = "\n\n".join(format_table(n, tables[n], self.label(), self.self_judged) for n in tables)
        outputs.write_text(self.out / "table.md", text + "\n\n" + self.describe() + "\n")
        return {"tables": tables, "text": text, "note": self.describe(), "results": self.out / "results.json"}

    def settings(self) -> dict:
        """The dream settings that differ from the defaults (the same for every job; seeds aside)."""
        defaults = DreamSettings().to_dict()
        given = self.jobs[0].settings
        skip = {"text", "seed", *RUN_ONLY}
        return {k: v for k, v in given.items() if k not in skip and v != defaults.get(k)}

    @property
    def per_style(self) -> str:
        """Prompts of each style dreamt: the limit, or fewer where a style's list is shorter."""
        counts = sorted({sum(e.style == s for e in self.entries) for s in STYLES})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"

    def label(self) -> str:
        return f"textsleep ({self.per_style}/style × {len(self.seeds)} seed{'s' * (len(self.seeds) > 1)})"

    def describe(self) -> str:
        """What our row is: which prompts, seeds and settings."""
        changed = ", ".join(f"{k} {_short(v)}" for k, v in self.settings().items()) or "the defaults"
        seeds = ",".join(map(str, self.seeds))
        return (
            f"textsleep: the first {self.per_style} prompts of each style of {self.source}, seeds {seeds}: "
            f"{len(self.jobs)} pictures; settings: {changed}. Published rows: all 800 prompts of each style."
        )


def _short(value) -> str:
    text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return text if len(text) <= 48 else "…" + text[-47:]


def style_means(rows: Sequence[EvalRow], judge: str) -> dict[str, float]:
    """Mean score per style and over all pictures ("averaged", as HPS averages), for one judge."""
    means = {s: statistics.fmean(r.scores[judge] for r in rows if r.style == s) for s in STYLES}
    return {**means, "averaged": statistics.fmean(r.scores[judge] for r in rows)}


def format_table(judge: str, ours: dict[str, float], label: str, self_judged: Sequence[str] = ()) -> str:
    """The benchmark's table for one judge: our row, then the published rows for that HPS version."""
    mark = " *" if judge in self_judged else ""
    rows = [(label + mark, [ours[s] for s in (*STYLES, "averaged")])]
    rows += [(f"{name} (published)", list(values)) for name, values in PUBLISHED.get(judge, {}).items()]
    width = max(len(name) for name, _ in rows)
    title = f"{JUDGES[judge].title} ({JUDGES[judge].scale})"
    lines = [f"{title:<{width}}  " + "  ".join(f"{t:>11}" for t in TITLES)]
    lines += [f"{name:<{width}}  " + "  ".join(f"{v:>11.2f}" for v in values) for name, values in rows]
    if mark:
        lines.append(f"* {judge} {SELF_JUDGED} (--allow-self-judging): not independent evidence")
    return "\n".join(lines)
