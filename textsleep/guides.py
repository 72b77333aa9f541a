"""The guiding ensemble: the models a dream is optimised against, each with its prompts, its view and its share.

A CLIP (``--clip-model ViT-B-32``) scores a cutout by its weighted cosine to the prompts.  A model trained on
people's choices joins the ensemble the same way (``--clip-model hps-v2.1:0.5``), loaded by
:mod:`textsleep.judges` (the same files, the same cache, the same preprocessing as when it judges):

- ``hps-v2.1``, ``hps-v2``, ``pickscore`` are CLIPs fine-tuned on people's choices: a cutout's weighted cosine to
  the prompts under their own towers (their published scores are a constant times that cosine; the ensemble weight
  sets their share);
- ``aesthetic`` rates the picture alone, whatever the prompts: its MLP's rating (1–10) of each cutout's ViT-L/14
  embedding, over 10 (:func:`textsleep.losses.rating`).

Each model sees the cutouts through its own preprocessing, written in torch so gradients pass (the judge's
``preprocess``): a cutout is a square at the model's input size, where HPS's resize-and-pad and the others'
resize-and-crop keep the pixels as they are, and the model normalises the colours with its own mean and std.
The whole picture (to rank start candidates, to score saves) goes through the same view.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from . import losses
from .errors import UserError
from .judges import load_aesthetic, load_hps, load_pickscore
from .media import centre_square
from .models import Clip, ModelCache
from .prompts import Prompt
from .scorers import AestheticJudge, ClipJudge, PickScoreJudge, crop_preprocess
from .settings import PREFERENCE_MODELS, ClipSpec

__all__ = ["Judge", "encode_prompts", "prompt_scale", "score_images", "load_guide", "load_scorer"]


@dataclass
class Judge:
    """A model of the guiding ensemble with the prompts encoded for it, and its share of the loss.

    ``view`` is its own preprocessing of a picture (N, 3, H, W) in [0, 1] to its input size, before its
    normalisation (None: a plain resize, as for an open_clip CLIP); ``head``, a rating of the image embedding that
    reads no prompts (the aesthetic predictor).
    """

    clip: Clip
    prompt_embeds: torch.Tensor  # (P, D) unit vectors
    prompt_weights: torch.Tensor  # (P,)
    weight: float = 1.0
    view: Callable[[torch.Tensor], torch.Tensor] | None = None
    head: nn.Module | None = None
    name: str = ""

    @property
    def reads_prompts(self) -> bool:
        return self.head is None

    def encode(self, prompts: list[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
        """Its targets for ``prompts``: unit embeddings (P, D) and weights (P,); none for a rating head."""
        if not self.reads_prompts:
            return torch.zeros(0, 1, device=self.clip.device), torch.zeros(0, device=self.clip.device)
        return encode_prompts(self.clip, prompts)

    def similarity(self, embeds: torch.Tensor) -> torch.Tensor:
        """Its score of each picture from the embeddings of its cutouts: (B, C, D) → (B,), higher is better."""
        if self.head is not None:
            return losses.rating(self.head, embeds)
        return losses.clip_similarity(embeds, self.prompt_embeds, self.prompt_weights)

    def look(self, images: torch.Tensor) -> torch.Tensor:
        """Its view of whole pictures (B, 3, H, W) → (B, 3, S, S)."""
        if self.view is not None:
            return self.view(images.float())
        size = self.clip.image_size
        return torch.nn.functional.interpolate(
            images.float(), size=size, mode="bilinear", antialias=True, align_corners=False
        )


def encode_prompts(clip: Clip, prompts: list[Prompt]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings (P, D) of text and image prompts, and their weights (P,); warns of a text CLIP cuts off."""
    embeds = []
    with torch.inference_mode():
        for p in prompts:
            if p.kind == "text":
                if clip.too_long(p.value):
                    message = f"prompt {p.value[:40]!r}… is longer than CLIP's {clip.context_length} tokens; cut off"
                    warnings.warn(message, stacklevel=2)
                embeds.append(clip.encode_text([p.value])[0])
            else:
                with Image.open(p.value) as im:
                    image = centre_square(im, clip.image_size).to(clip.device)
                embeds.append(clip.encode_image(image)[0])
    weights = torch.tensor([p.weight for p in prompts], dtype=torch.float32, device=clip.device)
    return torch.stack(embeds).float(), weights


def prompt_scale(judge: Judge) -> torch.Tensor:
    """The sum of a judge's prompt weights' sizes: a score divided by it is the weighted mean over prompts, so that
    ``"a|a|a"`` scores as ``"a"`` does (the loss keeps the plain weighted sum: its gradient is unchanged); 1 for a
    rating head, which reads no prompts."""
    if not judge.reads_prompts:
        return torch.ones((), device=judge.prompt_weights.device)
    return judge.prompt_weights.abs().sum().clamp_min(1e-12)


@torch.inference_mode()
def score_images(judges: list[Judge], images: torch.Tensor) -> torch.Tensor:
    """The ensemble's weighted mean score of whole pictures (one view each), each judge's the weighted mean over
    its prompts: (B,)."""
    judges = [j for j in judges if j.weight > 0]
    total = sum(j.weight for j in judges)
    score = torch.zeros(images.shape[0])
    for j in judges:
        embeds = j.clip.encode_image(j.look(images).to(j.clip.device))[:, None]
        score += j.weight / total * j.similarity(embeds).float().cpu() / prompt_scale(j).float().cpu()
    return score


# ---------------------------------------------------------------------------------------------- loading
def load_scorer(name: str, path: str, device: torch.device, dtype: torch.dtype, models: ModelCache):
    """A preference model (:class:`textsleep.scorers.Judge`) on ``device`` in ``dtype``, loaded once per cache.

    ``path`` is its local copy (a file, or a folder as ``--judge NAME=PATH`` takes), or ``""`` for the published
    weights through the Hugging Face cache.
    """
    if name not in PREFERENCE_MODELS:
        raise UserError(f"{name!r}: not a preference model; known are {', '.join(PREFERENCE_MODELS)}")
    local = Path(path).expanduser() if path else None
    if local is not None and not local.exists():
        raise UserError(f"{name}={path}: no such file or folder (a local copy of {name}'s weights)")

    def load():
        if name.startswith("hps"):
            judge = load_hps(name, local)
            judge.clip.to(device, dtype)
            return judge
        if name == "aesthetic":
            return load_aesthetic(local, device, models=models, dtype=dtype)
        judge = load_pickscore(local)
        judge.model.to(device, dtype)
        return judge

    return models.keep(("preference", name, path, str(device), dtype), load)


def load_guide(spec: ClipSpec, device: torch.device, dtype: torch.dtype, models: ModelCache) -> Judge:
    """A model of the guiding ensemble on ``device`` in ``dtype``, with no prompts yet (see :meth:`Judge.encode`)."""
    none = torch.zeros(0, 1, device=device), torch.zeros(0, device=device)
    if spec.name not in PREFERENCE_MODELS:
        return Judge(models.clip(spec.name, spec.pretrained, device, dtype), *none, spec.weight, name=spec.name)
    scorer = load_scorer(spec.name, spec.pretrained, device, dtype, models)
    if isinstance(scorer, AestheticJudge):
        return Judge(scorer.clip, *none, spec.weight, view=scorer.preprocess, head=scorer.head, name=spec.name)
    if isinstance(scorer, PickScoreJudge):

        def view(images: torch.Tensor) -> torch.Tensor:
            return crop_preprocess(images, scorer.size, scorer.image_size)

        return Judge(scorer.as_clip(), *none, spec.weight, view=view, name=spec.name)
    assert isinstance(scorer, ClipJudge)
    return Judge(scorer.clip, *none, spec.weight, view=scorer.preprocess, name=spec.name)
