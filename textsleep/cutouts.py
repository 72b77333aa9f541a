"""Random cutouts of the picture, at CLIP's input size, in one batched Kornia call.

Each cutout is a square whose side is drawn like big-sleep's (a normal around
0.8 of the picture's side, clipped to 0.5–0.95), at a random place.  With
``augment="light"`` each square is also flipped at random, turned a little and
given a slight perspective (by moving its corners), and the colours get a
little noise.  Every random number comes from the ``torch.Generator`` passed
in, so a dream is reproducible and resumable.
"""

from __future__ import annotations

import math

import torch
from kornia.geometry.transform import crop_and_resize

__all__ = ["Cutouts"]


class Cutouts:
    def __init__(
        self,
        size: int,
        count: int,
        augment: str = "light",
        *,
        min_frac: float = 0.5,
        max_frac: float = 0.95,
        max_angle: float = math.radians(8),
        perspective: float = 0.04,
        noise: float = 0.02,
    ) -> None:
        self.size, self.count, self.augment = size, count, augment
        self.min_frac, self.max_frac = min_frac, max_frac
        self.max_angle, self.perspective, self.noise = max_angle, perspective, noise

    def boxes(self, batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """Corner points (N, 4, 2) — top-left, top-right, bottom-right, bottom-left — for N = batch·count."""
        n = batch * self.count
        side = min(height, width)
        frac = (torch.randn(n, generator=generator) * 0.3 + 0.8).clamp(self.min_frac, self.max_frac)
        s = frac * side
        x0 = torch.rand(n, generator=generator) * (width - s)
        y0 = torch.rand(n, generator=generator) * (height - s)
        unit = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        if self.augment == "light":
            flip = torch.rand(n, generator=generator) < 0.5
            angle = (torch.rand(n, generator=generator) * 2 - 1) * self.max_angle
            jitter = torch.randn(n, 4, 2, generator=generator) * self.perspective
            corners = unit.expand(n, 4, 2).clone()
            corners[flip] = corners[flip][:, [1, 0, 3, 2]]
            centred = corners - 0.5
            cos, sin = angle.cos()[:, None], angle.sin()[:, None]
            rotated = torch.stack([centred[..., 0] * cos - centred[..., 1] * sin, centred[..., 0] * sin + centred[..., 1] * cos], -1)
            corners = rotated + 0.5 + jitter
        else:
            corners = unit.expand(n, 4, 2)
        points = corners * (s - 1)[:, None, None] + torch.stack([x0, y0], -1)[:, None, :]
        return points

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, 3, H, W) → (B·count, 3, size, size), cutouts of picture b at rows b·count … (b+1)·count − 1."""
        b, _, h, w = images.shape
        boxes = self.boxes(b, h, w, generator).to(images.device, images.dtype)
        source = images.repeat_interleave(self.count, dim=0)
        cut = crop_and_resize(source, boxes, (self.size, self.size), padding_mode="reflection")
        if self.augment == "light" and self.noise > 0:
            noise = torch.randn(cut.shape, generator=generator).to(cut.device, cut.dtype)
            cut = cut + noise * self.noise
        return cut
