"""Points in BigGAN-deep's latent space, and rendering them ``chunk`` pictures at a time.

A *point* (:class:`Point`) is one picture's condition: a latent ``z`` and a
class vector for each of BigGAN's inputs (L of them, see
:func:`textsleep.render.num_latents`) and the truncation it is rendered at.  A
class point has one truncated-normal ``z`` (±2, scaled by the truncation)
drawn from its seed and shared by all L inputs, and a one-hot class vector;
``seed`` always seeds a fresh ``torch.Generator``, so the same arguments give
the same pictures.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..devices import resolve_device, resolve_dtype
from ..errors import UserError
from ..imagenet import NUM_CLASSES
from ..latents import Latents, truncated_normal
from ..limits import check_limit
from ..models import load_biggan
from ..render import num_latents, render
from ..settings import SIZES, DreamSettings

__all__ = [
    "Z_DIM",
    "Point",
    "check_truncation",
    "check_size",
    "unit_latents",
    "one_hot",
    "class_point",
    "run_point",
    "load_generator",
    "render_points",
]

Z_DIM = 128  # BigGAN-deep's latent size
_SIZE_OF = dict(zip((11, 13, 15), SIZES))  # BigGAN-deep's inputs (latents) per output size


@dataclass(frozen=True)
class Point:
    """One picture's condition: ``z`` (L, 128), class vectors (L, 1000), truncation, and how it was made."""

    z: torch.Tensor
    classes: torch.Tensor
    truncation: float
    recipe: dict = field(default_factory=dict)


def check_truncation(value: float, name: str = "--truncation") -> float:
    """A truncation must be in (0, 1]."""
    if not 0 < value <= 1:
        raise UserError(f"{name} {value!r}: must be in (0, 1]")
    return float(value)


def check_size(latents: int, biggan, what: str, made: str | None = None) -> None:
    """Saved latents fit this BigGAN only when it has as many inputs; a UserError names the size that made them.

    ``what`` names the latents (a run folder, ``--init DIR``), ``made`` the BigGAN recorded with them.
    """
    want = num_latents(biggan)
    if latents != want:
        size = _SIZE_OF.get(latents)
        made = made or f"biggan-deep-{size or '?'}"
        hint = f"use --size {size}" if size else "use the BigGAN it was made with"
        raise UserError(
            f"{what} was made with {made} ({latents} latents), but this BigGAN takes {want} "
            f"(biggan-deep-{_SIZE_OF.get(want, '?')}); runs of different sizes cannot be mixed: {hint}"
        )


def unit_latents(n: int, seed: int) -> torch.Tensor:
    """``n`` truncated-normal latents (n, 128) within ±2 from ``seed``.

    Rows are drawn one after another, so row i is the same whatever ``n``
    (one draw of the whole block would depend on its size).
    """
    g = torch.Generator().manual_seed(seed)
    return torch.cat([truncated_normal((1, Z_DIM), g) for _ in range(n)])


def one_hot(index: int, num_latents: int) -> torch.Tensor:
    """Class vectors (L, 1000) that pick out one class at every input."""
    vec = torch.zeros(num_latents, NUM_CLASSES)
    vec[:, index] = 1.0
    return vec


def class_point(biggan, index: int, seed: int, truncation: float) -> Point:
    """A class with the seed's latent (scaled by the truncation) at every input."""
    check_truncation(truncation)
    n = num_latents(biggan)
    z = (unit_latents(1, seed) * truncation).expand(n, Z_DIM).clone()
    return Point(z, one_hot(index, n), truncation, {"class": index, "seed": seed, "truncation": truncation})


def run_point(biggan, saved: dict, source: str) -> Point:
    """A finished dream's averaged latents (from :func:`textsleep.starts.load_latents`) as a point.

    A run made with another BigGAN size has another number of inputs: that is a
    UserError that says which size made it.
    """
    z, logits = saved.get("z"), saved.get("logits")
    if not isinstance(z, torch.Tensor) or not isinstance(logits, torch.Tensor) or z.dim() != 2 or z.shape[-1] != Z_DIM:
        raise UserError(
            f"{source!r}: its latents.pt holds no (L, 128) latents and class logits; is it a textsleep run folder?"
        )
    check_size(z.shape[0], biggan, repr(source), saved.get("biggan"))
    # the class vectors the dream fed BigGAN (its own mapping; a private generator, not the global one)
    dreamt = Latents(
        z.shape[0],
        generators=[torch.Generator()],
        max_classes=saved.get("max_classes"),
        class_temperature=saved.get("class_temperature", 2.0),
    )
    truncation = check_truncation(float(saved.get("truncation", 1.0)), f"{source!r}: truncation")
    recipe = {"run": source, "seed": saved.get("seed"), "truncation": truncation, "biggan": saved.get("biggan")}
    return Point(z.float(), dreamt.classes_from(logits.float()), truncation, recipe)


def load_generator(
    size: int = DreamSettings.size,
    biggan: str | None = None,
    device: str = DreamSettings.device,
    precision: str = DreamSettings.precision,
):
    """The BigGAN-deep of ``size`` (or the one ``biggan`` names) on ``device`` at ``precision``, and its name.

    The options are checked as a dream's are (:class:`textsleep.settings.DreamSettings`).
    """

    name = DreamSettings(size=size, biggan=biggan, device=device, precision=precision).biggan_name
    dev = resolve_device(device)
    return load_biggan(name, dev).to(resolve_dtype(precision, dev)), name


def check_chunk(chunk: int) -> None:
    """Pictures rendered at once (``--batch``): at least one."""
    if chunk < 1:
        raise UserError(f"--batch {chunk}: must be a whole number >= 1")
    check_limit(chunk, "batch", "--batch")


@torch.inference_mode()
def render_chunks(
    biggan, z: torch.Tensor, classes: torch.Tensor, truncation: float, chunk: int
) -> Iterator[torch.Tensor]:
    """Render (N, L, 128) × (N, L, 1000) at one truncation, ``chunk`` pictures at a time, onto the CPU."""
    check_chunk(chunk)
    device = next(biggan.parameters()).device
    for i in range(0, z.shape[0], chunk):
        yield render(biggan, z[i : i + chunk].to(device), classes[i : i + chunk].to(device), truncation).cpu()


def render_points(biggan, points: Sequence[Point], chunk: int = 8) -> Iterator[torch.Tensor]:
    """Render points in order, ``chunk`` at a time (points rendered together share one truncation)."""
    i = 0
    while i < len(points):
        j = i + 1
        while j < len(points) and j - i < chunk and points[j].truncation == points[i].truncation:
            j += 1
        part = points[i:j]
        z = torch.stack([p.z for p in part])
        classes = torch.stack([p.classes for p in part])
        yield from render_chunks(biggan, z, classes, part[0].truncation, chunk)
        i = j
