"""The judges' models and their views of a picture: pure torch, differentiable end to end.

Each judge takes pictures as tensors ``(N, 3, H, W)`` in [0, 1] and gives one
score each on its published scale: ``judge.score(images, prompts)`` → ``(N,)``.
Its ``preprocess`` is its own view of a picture (resizing, padding, cropping),
written in torch so gradients pass through it: judge under
``torch.inference_mode()``, or leave gradients on to guide a dream with it.
:mod:`textsleep.judges` loads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .models import Clip

__all__ = [
    "Judge",
    "ClipJudge",
    "AestheticJudge",
    "PickScoreJudge",
    "TransformersClip",
    "hps_preprocess",
    "crop_preprocess",
    "resize_preprocess",
    "aesthetic_head",
]


def hps_preprocess(images: torch.Tensor, size: int = 224) -> torch.Tensor:
    """HPS's own view of a picture: (N, 3, H, W) in [0, 1] → (N, 3, size, size), longest side to ``size``.

    The picture is resized (bicubic, antialiased) so its longest side is ``size``
    and centred on black, as HPS's evaluation transform does (``ResizeMaxSize``
    on the tensor, before normalisation).  A square picture is simply resized.
    """
    h, w = images.shape[-2:]
    scale = size / max(h, w)
    nh, nw = round(h * scale), round(w * scale)
    x = images if (nh, nw) == (h, w) else _resize(images, (nh, nw), "bicubic")
    ph, pw = size - nh, size - nw
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)


def crop_preprocess(images: torch.Tensor, size: int = 224, crop: int | None = None) -> torch.Tensor:
    """CLIP's view: (N, 3, H, W) → (N, 3, crop, crop): shortest side to ``size`` (bicubic), centre crop.

    ``crop`` defaults to ``size`` (openai/CLIP's transform and transformers' CLIPImageProcessor).
    """
    crop = crop or size
    h, w = images.shape[-2:]
    nh, nw = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    x = images if (nh, nw) == (h, w) else _resize(images, (nh, nw), "bicubic")
    top, left = int(round((nh - crop) / 2)), int(round((nw - crop) / 2))
    return x[..., top : top + crop, left : left + crop]


def resize_preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """The ``clip`` judge's view: (N, 3, H, W) → (N, 3, size, size), resized (bilinear, antialiased)."""
    return images if images.shape[-2:] == (size, size) else _resize(images, (size, size), "bilinear")


def _resize(images: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    return F.interpolate(images.float(), size=size, mode=mode, align_corners=False, antialias=True)


# ---------------------------------------------------------------------------------------------- judges
class Judge:
    """A judge: ``score(images, prompts)`` → (N,) on its published ``scale`` (words, e.g. "100 × cosine").

    ``images`` is (N, 3, H, W) in [0, 1]; ``prompts`` one text, or one per picture.
    ``preprocess`` is the judge's own view of a picture (pure torch, differentiable).
    """

    name: str
    source: str  # the file, folder or model it was loaded from
    scale: str
    image_size: int

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score(self, images: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device) -> Judge:
        raise NotImplementedError

    def describe(self) -> dict:
        """What a report records about this judge."""
        return {"name": self.name, "source": self.source, "scale": self.scale}


def _texts(prompts: str | Sequence[str], n: int) -> list[str]:
    texts = [prompts] * n if isinstance(prompts, str) else list(prompts)
    if len(texts) not in (1, n):
        raise ValueError(f"{len(texts)} prompts for {n} pictures: give one, or one per picture")
    return texts


class ClipJudge(Judge):
    """``factor`` × the cosine of picture and prompt under a CLIP: the ``clip`` judge (1), HPS (100).

    ``view`` is its geometry (e.g. :func:`hps_preprocess`); the CLIP normalises the colours itself.
    """

    def __init__(self, name: str, source: str, clip: Clip, view, factor: float = 1.0, scale: str = "cosine") -> None:
        self.name, self.source, self.clip, self.view, self.factor, self.scale = name, source, clip, view, factor, scale
        self.image_size = clip.image_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self.view(images, self.image_size)

    def to(self, device) -> ClipJudge:
        self.clip.to(device)
        return self

    def score(self, images: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        view = self.preprocess(images.to(self.clip.device))
        text = self.clip.encode_text(_texts(prompts, len(images)))
        return self.factor * (self.clip.encode_image(view) * text).sum(-1)


class AestheticJudge(Judge):
    """LAION's aesthetic predictor: its MLP on the L2-normalised CLIP image embedding (the prompt is not read)."""

    scale = "1–10"

    def __init__(self, source: str, clip: Clip, head: nn.Module) -> None:
        self.name, self.source, self.clip, self.head = "aesthetic", source, clip, head
        self.image_size = clip.image_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return crop_preprocess(images, self.image_size)

    def to(self, device) -> AestheticJudge:
        self.clip.to(device)
        self.head.to(device)
        return self

    def score(self, images: torch.Tensor, prompts: str | Sequence[str] = "") -> torch.Tensor:
        embedding = self.clip.encode_image(self.preprocess(images.to(self.clip.device)))  # (N, D), unit length
        return self.head(embedding).squeeze(-1)


class _AestheticHead(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """(N, dim) unit-length embeddings → (N, 1) ratings."""
        return self.layers(embedding)


def aesthetic_head(dim: int = 768) -> nn.Module:
    """The predictor's MLP as published (no activations between its layers): keys ``layers.{0,2,4,6,7}``."""
    return _AestheticHead(dim).eval().requires_grad_(False)


class PickScoreJudge(Judge):
    """PickScore: ``logit_scale.exp()`` × cosine under its transformers CLIP, with the processor's view."""

    scale = "logit scale × cosine"

    def __init__(self, source: str, model, tokenizer, size: int, crop: int, mean, std) -> None:
        self.name, self.source, self.model, self.tokenizer = "pickscore", source, model, tokenizer
        self.size, self.image_size = size, crop
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Shortest side to ``size``, centre crop to ``image_size``, normalised (CLIPImageProcessor's steps)."""
        x = crop_preprocess(images.float(), self.size, self.image_size)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def to(self, device) -> PickScoreJudge:
        self.model.to(device)
        return self

    def as_clip(self) -> TransformersClip:
        """Its model with a :class:`Clip`'s face (input size, normalisation, tokenizer), to guide a dream."""
        mean, std = (tuple(t.flatten().tolist()) for t in (self.mean, self.std))
        return TransformersClip("pickscore", self.source, self.model, self.tokenizer, self.image_size, mean, std)

    def score(self, images: torch.Tensor, prompts: str | Sequence[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        pixels = self.preprocess(images.to(device))
        tokens = self.tokenizer(
            _texts(prompts, len(images)), padding=True, truncation=True, max_length=77, return_tensors="pt"
        ).to(device)
        image = F.normalize(_features(self.model.get_image_features(pixel_values=pixels)), dim=-1)
        text = F.normalize(_features(self.model.get_text_features(**tokens)), dim=-1)
        return self.model.logit_scale.exp() * (image * text).sum(-1)


@dataclass
class TransformersClip(Clip):
    """A transformers ``CLIPModel`` as a :class:`Clip`: unit embeddings of pictures at ``image_size`` and of texts."""

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        pixels = ((images - mean) / std).to(self.dtype)
        return F.normalize(_features(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        return F.normalize(_features(self.model.get_text_features(**tokens.to(self.device))).float(), dim=-1)

    def too_long(self, text: str) -> bool:
        return len(self.tokenizer(text)["input_ids"]) > self.context_length


def _features(output) -> torch.Tensor:
    """transformers 4 returns the projected embedding; 5 returns it as ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output
