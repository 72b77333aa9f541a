"""The loss terms, each a small pure function of tensors (one value per picture)."""

from __future__ import annotations

import torch

__all__ = ["clip_similarity", "rating", "latent_loss", "class_loss", "SIMILARITY_WEIGHT", "RATING_SCALE"]

SIMILARITY_WEIGHT = 100.0  # the CLIP loss is −SIMILARITY_WEIGHT × similarity, against the regularisers, as in big-sleep
RATING_SCALE = 10.0  # a rating head's 1–10 over this: about a cosine's size, so ensemble weights mean the same


def clip_similarity(image_embeds: torch.Tensor, prompt_embeds: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted cosine similarity, averaged over cutouts: (B, C, D) × (P, D) × (P,) → (B,)."""
    sims = torch.einsum("bcd,pd->bcp", image_embeds, prompt_embeds).mean(dim=1)
    return sims @ weights


def rating(head, image_embeds: torch.Tensor) -> torch.Tensor:
    """A rating head's ratings of each picture's cutouts, averaged, over RATING_SCALE: (B, C, D) → (B,)."""
    return head(image_embeds).squeeze(-1).mean(dim=1) / RATING_SCALE


def latent_loss(z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
    """Keep each latent's statistics those of a standard normal (mean 0, std 1, no skew, no excess kurtosis).

    ``z`` is (B, L, D); it is compared after dividing by the truncation, which scaled it at the start.
    """
    z = z / truncation
    mean = z.mean(dim=-1, keepdim=True)
    std = z.std(dim=-1, keepdim=True)
    scores = (z - mean) / std
    skew = scores.pow(3).mean(dim=-1)
    kurtosis = scores.pow(4).mean(dim=-1) - 3.0
    terms = (1 - std.squeeze(-1)).abs() + mean.squeeze(-1).abs() + skew.abs() + kurtosis.abs()
    return terms.mean(dim=-1)


def class_loss(classes: torch.Tensor, keep: int = 1) -> torch.Tensor:
    """Push every class but the ``keep`` strongest of each vector towards zero: (B, L, K) or (B, bases, L, K) → (B,)."""
    rest = classes.topk(classes.shape[-1] - keep, dim=-1, largest=False).values
    return (50 * rest).pow(2).mean(dim=tuple(range(1, rest.dim())))
