"""Where a dream starts: random, best of K random starts, a pinned class, or another run's latents.

The best of K is the guiding ensemble's choice, or a preference judge's (``--init-judge``,
:func:`judge_ranking`); with ``--bases K`` the best K starts become the bases of the mixed latents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import UserError
from .guides import load_scorer, score_images
from .imagenet import NUM_CLASSES, class_names, resolve_class
from .latents import truncated_normal
from .render import num_latents, render
from .runs import read_latents

__all__ = ["choose_start", "best_starts", "best_of_k", "ranked_starts", "rank_classes", "judge_ranking", "load_latents"]

_ON, _OFF = 3.0, -8.0  # logits of a one-class start: sigmoid 0.95 for the class, 3e-4 for the rest
_LISTED = 1000  # up to this many candidates run.json lists every score and class; beyond, the best _TOP
_TOP = 100


@dataclass
class Start:
    """A chosen starting point for one picture, with how it was chosen."""

    z: torch.Tensor  # (L, 128)
    logits: torch.Tensor  # (L, NUM_CLASSES)
    record: dict = field(default_factory=dict)


def class_logits(index: int, num_latents: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Logits whose class vectors (by sigmoid, or top-k softmax) pick out one class."""
    logits = torch.full((num_latents, num_classes), _OFF)
    logits[:, index] = _ON
    return logits


def judge_ranking(judge, prompts) -> Callable[[torch.Tensor], torch.Tensor]:
    """``score(images)`` by a preference judge (:class:`textsleep.scorers.Judge`): its score against each text
    prompt, weighted as the prompt is (a negative one counts against), or, for a judge that reads no words
    (``aesthetic``), its rating of the picture.
    """
    texts = [(p.value, p.weight) for p in prompts if p.kind == "text"]
    reads = getattr(judge, "name", "") != "aesthetic"
    if reads and not texts:
        raise UserError(f"--init-judge {judge.name} scores pictures against words, and this dream has no text prompt")

    @torch.inference_mode()
    def score(images: torch.Tensor) -> torch.Tensor:
        if not reads:
            return judge.score(images).float().cpu()
        return sum(weight * judge.score(images, text).float().cpu() for text, weight in texts)

    return score


def init_ranking(spec: str | None, prompts, device: torch.device, models) -> Callable | None:
    """``--init-judge NAME[=PATH]``: how that preference judge ranks start candidates (None: the guiding models
    rank them), loaded through ``models`` (a :class:`textsleep.ModelCache`)."""
    if spec is None:
        return None
    name, _, path = spec.partition("=")
    return judge_ranking(load_scorer(name.strip().lower(), path.strip(), device, torch.float32, models), prompts)


def rank_classes(judge, class_names: tuple[str, ...], top: int, batch: int = 250) -> list[int]:
    """The ImageNet classes whose names CLIP finds closest to the prompts (weighted), best first."""
    texts = [f"a photo of a {name}." for name in class_names]
    with torch.inference_mode():
        embeds = torch.cat([judge.clip.encode_text(texts[i : i + batch]) for i in range(0, len(texts), batch)])
        sims = (embeds @ judge.prompt_embeds.T.to(embeds)) @ judge.prompt_weights.to(embeds)
    return sims.topk(min(top, len(texts))).indices.tolist()


@torch.inference_mode()
def ranked_starts(
    render_fn,
    score_fn,
    *,
    k: int,
    num_latents: int,
    seed: int,
    truncation: float,
    classes: list[int],
    keep: int = 1,
    micro_batch: int = 8,
) -> list[Start]:
    """Render ``k`` random starts and return the ``keep`` with the highest scores, best first.

    Candidate ``i`` has one truncated-normal ``z`` (scaled by the truncation) for
    every layer and the class ``classes[i % len(classes)]``.  ``render_fn(z, logits)``
    renders a batch, ``score_fn(images)`` scores it (higher is better).  Candidates
    are made and rendered ``micro_batch`` at a time so memory stays bounded.  Each
    start's record lists every candidate's score and class (up to 1000 candidates;
    beyond, the best 100 as ``[index, class, score]``).
    """
    g = torch.Generator().manual_seed(seed)
    zs = truncated_normal((k, 1, 128), g) * truncation
    picked = [classes[i % len(classes)] for i in range(k)]
    scores: list[float] = []
    for i in range(0, k, micro_batch):
        z = zs[i : i + micro_batch].expand(-1, num_latents, 128)
        logits = torch.stack([class_logits(c, num_latents) for c in picked[i : i + micro_batch]])
        scores += [float(s) for s in score_fn(render_fn(z, logits))]
    order = sorted(range(k), key=lambda i: -scores[i])
    record = {"candidates": k}
    if k <= _LISTED:
        record.update(scores=[round(s, 5) for s in scores], classes=picked)
    else:
        record["top"] = [[i, picked[i], round(scores[i], 5)] for i in order[:_TOP]]
    best = order[0]
    record.update(chosen=best, chosen_class=picked[best])
    if keep > 1:
        record["bases"] = order[:keep]
    return [
        Start(zs[i].expand(num_latents, 128).clone(), class_logits(picked[i], num_latents), record)
        for i in order[:keep]
    ]


def best_of_k(render_fn, score_fn, **options) -> Start:
    """The best of ``k`` random starts (:func:`ranked_starts` with ``keep`` 1)."""
    return ranked_starts(render_fn, score_fn, **options, keep=1)[0]


def load_latents(folder: str | Path) -> dict:
    """The averaged latents a run (a dream or an inversion) saved: ``z`` (L, 128), ``logits`` (L, 1000) and how to
    render them (``truncation``, ``max_classes``, ``class_temperature``, ``biggan``: :meth:`RunRecord.latents`),
    checked as :func:`textsleep.runs.read_latents` reads them.
    """
    return read_latents(folder)


def choose_start(dream, settings, score=None) -> list[dict]:
    """Set a new dream's starting point as the settings ask (another run, a class, the best of K); returns how it was
    chosen.  ``score(images)`` ranks the K candidates instead of the guiding ensemble (``--init-judge``).
    """

    s = settings
    n_lat = num_latents(dream.biggan)
    if s.init:
        saved = load_latents(s.init)
        if saved["z"].shape[-2] != n_lat:
            raise UserError(
                f"--init {s.init!r}: made with a BigGAN of {saved['z'].shape[-2] - 1} blocks ({saved.get('biggan')}), "
                f"this one has {n_lat - 1}; use the same --size"
            )
        dream.start_from(saved["z"], saved["logits"])
        return [{"init": str(s.init)}]
    if s.init_candidates == 1 and s.init_class is None:
        return []

    if s.init_class is not None:
        classes = [resolve_class(s.init_class)]
    else:
        classes = _ranked_classes(dream, s.init_candidates, s.seeds[0])
    if s.init_candidates == 1:
        dream.start_from(None, class_logits(classes[0], n_lat)[None])
        return [{"init_class": classes[0]}]
    records = best_starts(dream, classes, s.init_candidates, s.truncation, score=score)
    judge = s.init_judge.partition("=")[0].strip().lower() if s.init_judge else None
    return [{**r, "judge": judge} for r in records] if judge else records


def _ranked_classes(dream, top: int, seed: int) -> list[int]:
    """The classes the first guiding model that reads the prompts finds closest to them; with none (``aesthetic``
    alone), every class in a random order.
    """
    reader = next((j for j in dream.judges if j.weight > 0 and j.reads_prompts), None)
    if reader is None:
        return torch.randperm(len(class_names()), generator=torch.Generator().manual_seed(seed)).tolist()
    return rank_classes(reader, class_names(), top=top)


def best_starts(dream, classes: list[int], k: int, truncation: float, score=None) -> list[dict]:
    """Start every picture of ``dream`` from the best of ``k`` one-class starts (with K bases, the best K each);
    returns how each was chosen.

    ``score(images)`` ranks a batch of candidates (higher is better); by default
    the dream's own guiding models score them against its prompts.
    """

    score = score or (lambda images: score_images(dream.judges, images))
    keep = dream.latents.bases
    starts, record = [], []
    for seed in dream.seeds:
        ranked = ranked_starts(
            lambda z, logits: render(
                dream.biggan, z.to(dream.device), dream.latents.classes_from(logits.to(dream.device)), truncation
            ),
            score,
            k=k,
            num_latents=num_latents(dream.biggan),
            seed=seed,
            truncation=truncation,
            classes=classes,
            keep=keep,
        )
        starts.append(ranked)
        record.append({"seed": seed, **ranked[0].record})
    z = torch.stack([torch.stack([st.z for st in ranked]) for ranked in starts])  # (B, keep, L, 128)
    logits = torch.stack([torch.stack([st.logits for st in ranked]) for ranked in starts])
    if keep == 1:
        dream.start_from(z[:, 0], logits[:, 0])
    else:
        dream.start_from(z, logits, bases=True)
    return record
