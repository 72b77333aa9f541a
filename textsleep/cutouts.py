"""Random cutouts of the picture, at CLIP's input size, in one batched Kornia call.

Each cutout is a square whose side is drawn like big-sleep's (a normal around
0.8 of the picture's side, clipped to 0.5–0.95), at a random place.  Presets:

- ``none``: just that.
- ``light`` (default): each square is also flipped at random, turned a little
  (±8°) and given a slight perspective (by moving its corners), and the colours
  get a little noise.
- ``strong``: FuseDream-style differentiable augmentation on top of light —
  larger turns (±20°) and perspective, random brightness, contrast and
  saturation (Kornia's colour adjustments), and a random square of each cutout
  blanked out.  Steadier against adversarial textures, at the price of a
  slower start.
- ``fusedream``: FuseDream's own (its ``AugmentLoss``: DiffAugment's
  ``color,translation,resize,cutout`` on copies of the whole picture, then
  resized to CLIP's input).  Each "cutout" is the whole picture with a random
  brightness (±0.25), saturation (×0–2) and contrast (×0.5–1.5, about the
  picture's mean), moved by up to 1/8 of its side and scaled by 0.8–1.2 about
  its centre, grey where it leaves the frame, and a grey square half the side
  at a random place.  FuseDream shifts and scales by whole pixels and draws one
  scale per step for all copies; here both are continuous and drawn per copy.

Every random number comes from the ``torch.Generator`` passed in, so a dream is
reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from kornia.enhance import adjust_brightness, adjust_contrast, adjust_saturation
from kornia.geometry import create_meshgrid
from kornia.geometry.transform import get_perspective_transform

__all__ = ["Cutouts", "Draw"]


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
        if augment == "strong":
            self.max_angle, self.perspective = max(max_angle, math.radians(20)), max(perspective, 0.08)

    def boxes(self, batch: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
        """Corner points (N, 4, 2) — top-left, top-right, bottom-right, bottom-left — for N = batch·count."""
        n = batch * self.count
        if self.augment == "fusedream":  # the whole picture, scaled about its centre and moved
            ratio = torch.rand(n, generator=generator) * (_FD_SCALE[1] - _FD_SCALE[0]) + _FD_SCALE[0]
            shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * _FD_SHIFT
            unit = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
            # the output's point u shows the picture's point (u − ½) / ratio + ½ − shift (as fractions of its sides)
            frac = (unit[None] - 0.5) / ratio[:, None, None] + 0.5 - shift[:, None, :]
            return frac * torch.tensor([width - 1.0, height - 1.0])
        side = min(height, width)
        frac = (torch.randn(n, generator=generator) * 0.3 + 0.8).clamp(self.min_frac, self.max_frac)
        s = frac * side
        x0 = torch.rand(n, generator=generator) * (width - s)
        y0 = torch.rand(n, generator=generator) * (height - s)
        unit = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        if self.augment in ("light", "strong"):
            flip = torch.rand(n, generator=generator) < 0.5
            angle = (torch.rand(n, generator=generator) * 2 - 1) * self.max_angle
            jitter = torch.randn(n, 4, 2, generator=generator) * self.perspective
            corners = unit.expand(n, 4, 2).clone()
            corners[flip] = corners[flip][:, [1, 0, 3, 2]]
            centred = corners - 0.5
            cos, sin = angle.cos()[:, None], angle.sin()[:, None]
            rotated = torch.stack(
                [centred[..., 0] * cos - centred[..., 1] * sin, centred[..., 0] * sin + centred[..., 1] * cos], -1
            )
            corners = rotated + 0.5 + jitter
        else:
            corners = unit.expand(n, 4, 2)
        points = corners * (s - 1)[:, None, None] + torch.stack([x0, y0], -1)[:, None, :]
        return points

    def grid(self, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Sampling grid (N, size, size, 2) in [-1, 1] that maps each box's square onto the output square."""
        n, size = boxes.shape[0], self.size
        square = torch.tensor([[0.0, 0.0], [size - 1.0, 0.0], [size - 1.0, size - 1.0], [0.0, size - 1.0]])
        to_source = get_perspective_transform(square.expand(n, 4, 2).to(boxes), boxes)  # output pixel -> picture pixel
        out_pixels = create_meshgrid(size, size, normalized_coordinates=False, device=boxes.device, dtype=boxes.dtype)[
            0
        ]
        homogeneous = torch.cat([out_pixels, torch.ones_like(out_pixels[..., :1])], -1)
        src = torch.einsum("nij,yxj->nyxi", to_source, homogeneous)
        src = src[..., :2] / src[..., 2:]
        scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], device=boxes.device, dtype=boxes.dtype)
        return src * scale - 1

    def draw(self, height: int, width: int, generator: torch.Generator, batch: int = 1, *, noise_device=None) -> "Draw":
        """Every random choice for ``batch``·count cutouts of pictures of this size, in a fixed order.

        With ``noise_device`` the colour noise is drawn there, from a seed that
        ``generator`` draws, instead of on the CPU: the same distribution, other
        numbers, nothing to copy to the device.
        """
        n = batch * self.count
        boxes = self.boxes(batch, height, width, generator)
        colour = None
        if self.augment == "strong":

            def uniform(low: float, high: float) -> torch.Tensor:
                return torch.rand(n, generator=generator) * (high - low) + low

            brightness, contrast, saturation = uniform(-0.15, 0.15), uniform(0.7, 1.3), uniform(0.6, 1.4)
            hole = self.size // 4
            x0 = (torch.rand(n, generator=generator) * (self.size - hole)).long()
            y0 = (torch.rand(n, generator=generator) * (self.size - hole)).long()
            colour = (brightness, contrast, saturation, x0, y0)
        elif self.augment == "fusedream":

            def uniform(low: float, high: float) -> torch.Tensor:
                return torch.rand(n, generator=generator) * (high - low) + low

            brightness, saturation, contrast = uniform(-0.25, 0.25), uniform(0.0, 2.0), uniform(0.5, 1.5)
            hole = round(self.size * _FD_HOLE)
            x0 = (torch.rand(n, generator=generator) * self.size).long() - hole // 2  # (the centre anywhere)
            y0 = (torch.rand(n, generator=generator) * self.size).long() - hole // 2
            colour = (brightness, saturation, contrast, x0, y0)
        noise = None
        if self.augment in ("light", "strong") and self.noise > 0:
            shape = (n, 3, self.size, self.size)
            if noise_device is None:
                noise = torch.randn(shape, generator=generator)
            else:
                seed = int(torch.randint(2**62, (1,), generator=generator))
                on_device = torch.Generator(device=noise_device).manual_seed(seed)
                noise = torch.randn(shape, generator=on_device, device=noise_device)
        return Draw(boxes, colour, noise)

    def apply(self, images: torch.Tensor, draw: "Draw", rows: slice = slice(None)) -> torch.Tensor:
        """Cutouts ``rows`` of a draw from (B, 3, H, W) pictures: row r comes from picture r // count.

        A few rows at a time give the same cutouts as all at once, so CLIP can
        take them in small batches.
        """
        b, _, h, w = images.shape
        start, stop, _ = rows.indices(b * self.count)
        if stop <= start:
            return images.new_zeros((0, 3, self.size, self.size))
        # (copies of the draw to the device never wait for it: the draw is fresh and read by nothing else)
        boxes = draw.boxes[start:stop].to(images.device, torch.float32, non_blocking=True)
        grid = self.grid(boxes, h, w).to(images.dtype)
        fused = self.augment == "fusedream"
        source = images - 0.5 if fused else images  # (fusedream: centred, so what lies outside the frame is grey)
        parts = []
        for picture in range(start // self.count, (stop - 1) // self.count + 1):
            lo, hi = max(start, picture * self.count) - start, min(stop, (picture + 1) * self.count) - start
            # the CPU kernel works on one batch entry per thread: the picture is (viewed) once per thread
            k = _groups(hi - lo, images.device)
            g = rearrange(grid[lo:hi], "(k n) y x c -> k (n y) x c", k=k)
            one = source[picture : picture + 1].expand(k, -1, -1, -1)
            padding = "zeros" if fused else "reflection"
            sampled = F.grid_sample(one, g, mode="bilinear", padding_mode=padding, align_corners=True)
            parts.append(rearrange(sampled, "k c (n y) x -> (k n) c y x", y=self.size))
        cut = parts[0] if len(parts) == 1 else torch.cat(parts)
        if fused:
            pictures = torch.arange(start, stop, device=images.device) // self.count
            means = source.mean(dim=(1, 2, 3))[pictures]  # (each copy's whole picture: DiffAugment's contrast)
            params = [t[start:stop].to(cut.device, non_blocking=True) for t in draw.colour]
            return self._fusedream_colour(cut, (grid.abs() <= 1).all(-1), means, params) + 0.5
        if draw.colour is not None:
            cut = self._colour_and_erase(cut, [t[start:stop].to(cut.device, non_blocking=True) for t in draw.colour])
        if draw.noise is not None:
            cut = cut + draw.noise[start:stop].to(cut.device, cut.dtype, non_blocking=True) * self.noise
        return cut

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, 3, H, W) → (B·count, 3, size, size), cutouts of picture b at rows b·count … (b+1)·count − 1.

        All cutouts of a picture come from one ``grid_sample`` over the picture itself
        (their grids stacked), so the picture is never copied once per cutout.
        """
        b, _, h, w = images.shape
        return self.apply(images, self.draw(h, w, generator, b))

    def _colour_and_erase(self, cut: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:

        brightness, contrast, saturation, x0, y0 = params
        size = self.size
        cut = adjust_brightness(cut, brightness.to(cut.device, cut.dtype), clip_output=False)
        cut = adjust_contrast(cut, contrast.to(cut.device, cut.dtype), clip_output=False)
        cut = adjust_saturation(cut, saturation.to(cut.device, cut.dtype))
        # blank out one random square per cutout (a quarter of the side)
        hole = size // 4
        grid = torch.arange(size, device=x0.device)
        inside_x = (grid[None] >= x0[:, None]) & (grid[None] < (x0 + hole)[:, None])
        inside_y = (grid[None] >= y0[:, None]) & (grid[None] < (y0 + hole)[:, None])
        keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
        return cut * keep[:, None].to(cut.device, cut.dtype)

    def _fusedream_colour(
        self, cut: torch.Tensor, inside: torch.Tensor, means: torch.Tensor, params: list[torch.Tensor]
    ) -> torch.Tensor:
        """DiffAugment's colour changes on centred copies (N, 3, S, S), in its order (brightness, saturation,
        contrast about the picture's mean), then grey outside the frame (``inside`` (N, S, S)) and in the square.
        """
        brightness, saturation, contrast, x0, y0 = params
        b, s, c = (t.to(cut.dtype).view(-1, 1, 1, 1) for t in (brightness, saturation, contrast))
        x = cut + b
        grey = x.mean(dim=1, keepdim=True)
        x = (x - grey) * s + grey
        mean = means.to(cut.dtype).view(-1, 1, 1, 1) + b  # (saturation keeps each pixel's mean, so the picture's)
        x = (x - mean) * c + mean
        hole, grid = round(self.size * _FD_HOLE), torch.arange(self.size, device=cut.device)
        inside_x = (grid[None] >= x0[:, None]) & (grid[None] < (x0 + hole)[:, None])
        inside_y = (grid[None] >= y0[:, None]) & (grid[None] < (y0 + hole)[:, None])
        keep = inside & ~(inside_y[:, :, None] & inside_x[:, None, :])
        return x * keep[:, None].to(x.dtype)


_FD_SCALE, _FD_SHIFT, _FD_HOLE = (0.8, 1.2), 0.125, 0.5  # DiffAugment's rand_resize, rand_translation, rand_cutout


def _groups(rows: int, device: torch.device) -> int:
    """Into how many equal groups to split ``rows`` cutouts: the most, up to the CPU's threads, that divide them."""
    if device.type != "cpu":
        return 1
    return max(k for k in range(1, min(rows, torch.get_num_threads()) + 1) if rows % k == 0)


@dataclass(frozen=True)
class Draw:
    """The random part of a set of cutouts: where they are, and their colour changes and noise."""

    boxes: torch.Tensor  # (N, 4, 2) corner points in picture pixels
    # strong: brightness, contrast, saturation, hole x, hole y (each (N,)); fusedream: brightness, saturation,
    # contrast, hole x, hole y
    colour: tuple[torch.Tensor, ...] | None
    noise: torch.Tensor | None  # (N, 3, size, size) standard normal, scaled by the preset's noise
