"""Where a dream starts: random, best of K random starts, a pinned class, or another run's latents."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .dream import score_images
from .errors import UserError
from .imagenet import NUM_CLASSES, class_names, resolve_class
from .latents import truncated_normal
from .render import num_latents, render
from .runs import read_latents

__all__ = ["choose_start", "best_starts", "best_of_k", "rank_classes", "load_latents"]

_ON, _OFF = 3.0, -8.0  # logits of a one-class start: sigmoid 0.95 for the class, 3e-4 for the rest


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


def rank_classes(judge, class_names: tuple[str, ...], top: int, batch: int = 250) -> list[int]:
    """The ImageNet classes whose names CLIP finds closest to the prompts (weighted), best first."""
    texts = [f"a photo of a {name}." for name in class_names]
    with torch.inference_mode():
        embeds = torch.cat([judge.clip.encode_text(texts[i : i + batch]) for i in range(0, len(texts), batch)])
        sims = (embeds @ judge.prompt_embeds.T.to(embeds)) @ judge.prompt_weights.to(embeds)
    return sims.topk(min(top, len(texts))).indices.tolist()


@torch.inference_mode()
def best_of_k(
    render_fn,
    score_fn,
    *,
    k: int,
    num_latents: int,
    seed: int,
    truncation: float,
    classes: list[int],
    micro_batch: int = 8,
) -> Start:
    """Render ``k`` random starts and return the one with the highest score.

    Candidate ``i`` has one truncated-normal ``z`` (scaled by the truncation) for
    every layer and the class ``classes[i % len(classes)]``.  ``render_fn(z, logits)``
    renders a batch, ``score_fn(images)`` scores it (higher is better).  Candidates
    are rendered ``micro_batch`` at a time so memory stays bounded.
    """
    g = torch.Generator().manual_seed(seed)
    zs = truncated_normal((k, 1, 128), g).expand(k, num_latents, 128) * truncation
    picked = [classes[i % len(classes)] for i in range(k)]
    logits = torch.stack([class_logits(c, num_latents) for c in picked])
    scores: list[float] = []
    for i in range(0, k, micro_batch):
        images = render_fn(zs[i : i + micro_batch], logits[i : i + micro_batch])
        scores += [float(s) for s in score_fn(images)]
    best = max(range(k), key=scores.__getitem__)
    record = {
        "candidates": k,
        "scores": [round(s, 5) for s in scores],
        "classes": picked,
        "chosen": best,
        "chosen_class": picked[best],
    }
    return Start(zs[best].clone(), logits[best].clone(), record)


def load_latents(folder: str | Path) -> dict:
    """The averaged latents a run (a dream or an inversion) saved: ``z`` (L, 128), ``logits`` (L, 1000) and how to
    render them (``truncation``, ``max_classes``, ``class_temperature``, ``biggan``: :meth:`RunRecord.latents`),
    checked as :func:`textsleep.runs.read_latents` reads them.
    """
    return read_latents(folder)


def choose_start(dream, settings) -> list[dict]:
    """Set a new dream's starting point as the settings ask (another run, a class, the best of K); returns how it was
    chosen.
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
        classes = rank_classes(dream.judges[0], class_names(), top=s.init_candidates)
    if s.init_candidates == 1:
        dream.start_from(dream.latents.z.detach().clone(), class_logits(classes[0], n_lat)[None])
        return [{"init_class": classes[0]}]
    return best_starts(dream, classes, s.init_candidates, s.truncation)


def best_starts(dream, classes: list[int], k: int, truncation: float, score=None) -> list[dict]:
    """Start every picture of ``dream`` from the best of ``k`` one-class starts; returns how each was chosen.

    ``score(images)`` ranks a batch of candidates (higher is better); by default
    the dream's own CLIP judges score them against its prompts.
    """

    score = score or (lambda images: score_images(dream.judges, images))
    starts, record = [], []
    for seed in dream.seeds:
        start = best_of_k(
            lambda z, logits: render(
                dream.biggan, z.to(dream.device), dream.latents.classes_from(logits.to(dream.device)), truncation
            ),
            score,
            k=k,
            num_latents=num_latents(dream.biggan),
            seed=seed,
            truncation=truncation,
            classes=classes,
        )
        starts.append(start)
        record.append({"seed": seed, **start.record})
    dream.start_from(torch.stack([st.z for st in starts]), torch.stack([st.logits for st in starts]))
    return record
