"""Walks through BigGAN-deep's latent space: grids, morphs, breeds, hallucinations, zooms, sweeps, loops.

Every function takes a BigGAN (:func:`textsleep.explore.load_generator` loads
one) and returns pictures as tensors in [0, 1], (N, 3, H, W) on the CPU;
nothing here prints or writes files (:mod:`textsleep.explore.files` does).
Animations are generators of frame batches rendered ``chunk`` at a time, so
memory stays flat however many frames are asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from ..errors import UserError
from ..imagenet import NUM_CLASSES
from ..limits import check_limit
from ..render import num_latents
from .points import Z_DIM, Point, check_chunk, check_truncation, one_hot, render_chunks, render_points, unit_latents

__all__ = [
    "sample_grid",
    "interpolate",
    "breed",
    "hallucinate",
    "zoom",
    "truncation_sweep",
    "loop",
    # their latent arithmetic
    "slerp",
    "mix",
    "hallucinate_latents",
    "zoom_latents",
    "loop_latents",
    "MODES",
    "SPACES",
    # their checks (UserError naming the option), to call before a model loads
    "check_n",
    "check_frames",
    "check_mix",
    "check_keep",
    "check_ratio",
    "check_levels",
    "check_values",
]

SPACES = ("both", "class", "latent")  # what an interpolation moves
MODES = ("linear", "slerp")  # how it moves the latents


def check_n(n: int) -> None:
    """A count of samples, latents or hallucinations (``--n``): at least one."""
    if n < 1:
        raise UserError(f"--n {n}: must be a whole number >= 1")
    check_limit(n, "frames", "--n")


def _all(frames: Iterator[torch.Tensor]) -> torch.Tensor:
    return torch.cat(list(frames))


# ---------------------------------------------------------------------------------------------- sample
def sample_grid(biggan, classes: Sequence[int], n: int, seed: int, truncation: float, chunk: int = 8) -> torch.Tensor:
    """``n`` samples of each class, (len(classes)·n, 3, H, W), row by row (one row per class).

    Column j uses the seed's j-th latent for every class (as the BigGAN notebook
    does), so a column shows the same latent under different classes.
    """
    check_truncation(truncation)
    check_n(n)
    if not classes:
        raise UserError("no class given; name at least one (an index 0..999, a name, or '971) bubble')")
    L = num_latents(biggan)
    unit = unit_latents(n, seed)
    z = (unit * truncation)[:, None].expand(n, L, Z_DIM).repeat(len(classes), 1, 1)
    vecs = torch.stack([one_hot(c, L) for c in classes]).repeat_interleave(n, dim=0)
    return _all(render_chunks(biggan, z, vecs, truncation, chunk))


# ---------------------------------------------------------------------------------------------- interpolate
def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the last dimension; exact ``a`` at t=0 and ``b`` at t=1.

    ``t`` broadcasts against ``a`` and ``b`` without their last dimension;
    (nearly) parallel vectors fall back to linear interpolation.
    """
    t = t[..., None]
    cos = (torch.nn.functional.normalize(a, dim=-1) * torch.nn.functional.normalize(b, dim=-1)).sum(-1, keepdim=True)
    omega = torch.arccos(cos.clamp(-1, 1))
    so = torch.sin(omega)
    safe = so.abs() > 1e-6
    so_ = torch.where(safe, so, torch.ones_like(so))
    spherical = torch.sin((1 - t) * omega) / so_ * a + torch.sin(t * omega) / so_ * b
    return torch.where(safe, spherical, (1 - t) * a + t * b)


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(-1, *([1] * (a.dim() - 1)))
    return (1 - t) * a + t * b  # exact a at 0 and b at 1


def check_mix(mode: str, space: str) -> None:
    """How an interpolation moves (:data:`MODES`) and what it moves (:data:`SPACES`)."""
    if mode not in MODES:
        raise UserError(f"--mode {mode!r}: allowed are {', '.join(MODES)}")
    if space not in SPACES:
        raise UserError(f"--space {space!r}: allowed are {', '.join(SPACES)}")


def mix(
    a: Point, b: Point, t: torch.Tensor, mode: str = "linear", space: str = "both"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Conditions between two points at weights ``t`` (N,): z (N, L, 128), classes (N, L, 1000), truncations (N,).

    ``space`` says what moves: ``both``, only the ``class`` vectors (z stays
    A's) or only the ``latent`` (classes stay A's).  ``mode`` moves z in a
    straight line or along the sphere (slerp); class vectors always move in a
    straight line, so they stay a mixture that sums as the endpoints do.
    The truncation moves linearly when the endpoints differ.
    """
    check_mix(mode, space)
    t = t.float()
    n = t.shape[0]
    za, zb = a.z.expand(n, *a.z.shape), b.z.expand(n, *b.z.shape)
    ca, cb = a.classes.expand(n, *a.classes.shape), b.classes.expand(n, *b.classes.shape)
    if space == "class":
        z = za.clone()
    elif mode == "slerp":
        z = slerp(za, zb, t[:, None].expand(n, a.z.shape[0]))
    else:
        z = _lerp(za, zb, t)
    classes = ca.clone() if space == "latent" else _lerp(ca, cb, t)
    if a.truncation == b.truncation:  # exactly, so that frames render together under one truncation
        truncations = torch.full((n,), a.truncation, dtype=torch.float64)
    else:
        truncations = (1 - t.double()) * a.truncation + t.double() * b.truncation
    return z, classes, truncations


def check_frames(frames: int) -> None:
    """An interpolation's frames from A to B (``--frames``): at least A and B."""
    if frames < 2:
        raise UserError(f"--frames {frames}: an interpolation needs at least 2 frames (A and B)")
    check_limit(frames, "frames", "--frames")


def _interpolation_weights(frames: int, loop: bool = False) -> torch.Tensor:
    """Weights 0 … 1 over ``frames`` frames (first A, last B); ``loop`` adds the way back, without repeating A or B.

    With ``loop`` there are 2·frames − 2 frames and the animation repeats seamlessly.
    """
    check_frames(frames)
    t = torch.linspace(0, 1, frames)
    return torch.cat([t, t.flip(0)[1:-1]]) if loop else t


def interpolate(
    biggan,
    a: Point,
    b: Point,
    frames: int,
    *,
    mode: str = "linear",
    space: str = "both",
    loop: bool = False,
    chunk: int = 8,
) -> Iterator[torch.Tensor]:
    """Frames from A to B (and back with ``loop``), yielded ``chunk`` at a time.

    The options are checked at the call; only one chunk of conditions and
    pictures is in memory at once.
    """
    check_chunk(chunk)
    check_mix(mode, space)
    return _interpolated(biggan, a, b, _interpolation_weights(frames, loop), mode, space, chunk)


def _interpolated(
    biggan, a: Point, b: Point, weights: torch.Tensor, mode: str, space: str, chunk: int
) -> Iterator[torch.Tensor]:
    for i in range(0, len(weights), chunk):
        z, classes, truncs = mix(a, b, weights[i : i + chunk], mode, space)
        points = [Point(z[k], classes[k], float(truncs[k])) for k in range(z.shape[0])]
        yield from render_points(biggan, points, chunk)


# ---------------------------------------------------------------------------------------------- breed
def check_ratio(ratio: float) -> float:
    """A breeding ratio must be in [0, 1]."""
    if not 0 <= ratio <= 1:
        raise UserError(f"--ratio {ratio!r}: must be between 0 and 1 (1 is all A, 0 all B)")
    return float(ratio)


def breed(
    biggan, a: int, b: int, ratios: Sequence[float], seeds: Sequence[int], truncation: float, chunk: int = 8
) -> torch.Tensor:
    """Children of classes A and B: y = r·y_A + (1 − r)·y_B with the same z; one row per seed, one column per ratio."""
    check_truncation(truncation)
    if not ratios:
        raise UserError("no --ratio given; give one or more numbers between 0 and 1")
    for r in ratios:
        check_ratio(r)
    L = num_latents(biggan)
    ya, yb = one_hot(a, L), one_hot(b, L)
    r = torch.tensor([float(x) for x in ratios])
    children = r[:, None, None] * ya + (1 - r[:, None, None]) * yb  # (R, L, 1000)
    z = torch.cat([(unit_latents(1, s) * truncation).expand(len(ratios), L, Z_DIM) for s in seeds])
    return _all(render_chunks(biggan, z, children.repeat(len(seeds), 1, 1), truncation, chunk))


# ---------------------------------------------------------------------------------------------- hallucinate
def check_keep(keep: float) -> None:
    """How much of a latent a hallucination keeps (``--keep``): between 0 and 2."""
    if not 0 <= keep <= 2:
        raise UserError(f"--keep {keep!r}: must be between 0 and 2 (a fraction of ±2·truncation)")


def hallucinate_latents(z: torch.Tensor, n: int, truncation: float, keep: float = 0.5) -> torch.Tensor:
    """``n`` variations (n, 128) of one latent (128,) that keep its values near zero and vary the rest.

    Values with ``|z| < keep·truncation`` (the ones that settle the dominant
    object, per the BigGAN experiments) stay as they are; every other value
    becomes ``2·truncation·sin(z/truncation + φ_k)`` with phases φ_k = 2πk/n,
    k = 1…n, which stays within the truncation's ±2t range.
    """
    check_n(n)
    check_keep(keep)
    phases = 2 * math.pi * torch.arange(1, n + 1, dtype=torch.float32)[:, None] / n
    varied = 2 * truncation * torch.sin(z[None] / truncation + phases)
    return torch.where(z.abs() < keep * truncation, z[None].expand(n, -1), varied)


def hallucinate(
    biggan, index: int, seed: int, n: int, truncation: float, keep: float = 0.5, chunk: int = 8
) -> torch.Tensor:
    """The class's picture for the seed followed by ``n`` background hallucinations of it: (n + 1, 3, H, W)."""
    check_truncation(truncation)
    z0 = unit_latents(1, seed)[0] * truncation
    zs = torch.cat([z0[None], hallucinate_latents(z0, n, truncation, keep)])
    return _same_class(biggan, zs, index, truncation, chunk)


def _same_class(biggan, zs: torch.Tensor, index: int, truncation: float, chunk: int) -> torch.Tensor:
    """Render latents (N, 128) of one class, each shared by all inputs."""
    L = num_latents(biggan)
    z = zs[:, None].expand(zs.shape[0], L, Z_DIM)
    classes = one_hot(index, L).expand(zs.shape[0], L, NUM_CLASSES)
    return _all(render_chunks(biggan, z, classes, truncation, chunk))


# ---------------------------------------------------------------------------------------------- zoom
def check_levels(levels: Sequence[float]) -> None:
    """Zoom levels: at least one, each > 0."""
    if not levels:
        raise UserError("no --levels given; give positive numbers such as 0.2,0.4,0.8")
    for a in levels:
        if not a > 0:
            raise UserError(f"--levels {a!r}: every level must be > 0")


def zoom_latents(z: torch.Tensor, levels: Sequence[float]) -> torch.Tensor:
    """Natural zoom: z → −a·z/|z| (element-wise, i.e. −a·sign(z)) for each level a: (len(levels), 128).

    Every value gets magnitude ``a`` and the opposite sign of ``z``'s; growing
    ``a`` walks outwards along that diagonal, which BigGAN renders as a zoom.
    """
    check_levels(levels)
    a = torch.tensor([float(x) for x in levels])[:, None]
    sign = torch.where(z >= 0, 1.0, -1.0)  # z/|z|, with 0 counted as positive
    return -a * sign[None]


def zoom(biggan, index: int, seed: int, levels: Sequence[float], truncation: float, chunk: int = 8) -> torch.Tensor:
    """The class's picture for the seed zoomed at each level: (len(levels), 3, H, W)."""
    check_truncation(truncation)
    z0 = unit_latents(1, seed)[0] * truncation
    return _same_class(biggan, zoom_latents(z0, levels), index, truncation, chunk)


# ---------------------------------------------------------------------------------------------- truncation sweep
def check_values(values: Sequence[float]) -> None:
    """Truncation-sweep values: at least one, each in (0, 1]."""
    if not values:
        raise UserError("no --values given; give truncations in (0, 1] such as 0.1,0.4,0.7,1.0")
    for v in values:
        check_truncation(v, "--values")


def truncation_sweep(
    biggan, classes: Sequence[int], values: Sequence[float], seed: int, n: int = 1, fresh: bool = False, chunk: int = 8
) -> torch.Tensor:
    """A grid: one row per (class, sample), one column per truncation value; (rows·cols, 3, H, W) row by row.

    Row r uses latent ``seed``'s r-th sample in every column (scaled by that
    column's truncation), so a row shows one picture under more or less
    truncation; ``fresh`` draws a new latent for every cell instead.
    """
    check_values(values)
    check_n(n)
    L = num_latents(biggan)
    rows = [(c, k) for c in classes for k in range(n)]
    cols = len(values)
    units = unit_latents(len(rows) * (cols if fresh else 1), seed)
    cells = torch.empty(len(rows), cols, 3, biggan.config.output_dim, biggan.config.output_dim)
    for j, value in enumerate(values):  # one truncation per column: render a column at a time
        picks = [r * cols + j if fresh else r for r in range(len(rows))]
        z = (units[picks] * value)[:, None].expand(len(rows), L, Z_DIM)
        vecs = torch.stack([one_hot(c, L) for c, _ in rows])
        start = 0
        for images in render_chunks(biggan, z, vecs, float(value), chunk):
            cells[start : start + images.shape[0], j] = images
            start += images.shape[0]
    return cells.flatten(0, 1)


# ---------------------------------------------------------------------------------------------- loop
def loop_latents(z0: torch.Tensor, z1: torch.Tensor, frames: int, truncation: float) -> torch.Tensor:
    """A seamless loop z(t) = z0·cos t + z1·sin t for t = 2πk/frames, k = 0…frames−1, kept within ±2·truncation."""
    if frames < 2:
        raise UserError(f"frames {frames}: a loop needs at least 2 frames (use more --seconds or a higher --fps)")
    t = 2 * math.pi * torch.arange(frames, dtype=torch.float32)[:, None] / frames
    bound = 2 * truncation
    return (z0 * torch.cos(t) + z1 * torch.sin(t)).clamp(-bound, bound)


def loop(biggan, index: int, seed: int, frames: int, truncation: float, chunk: int = 8) -> Iterator[torch.Tensor]:
    """Frames of a seamless latent loop of one class (the frame after the last is the first), ``chunk`` at a time.

    The options are checked at the call; the latents (frames, 128) are small, only the pictures are streamed.
    """
    check_truncation(truncation)
    check_chunk(chunk)
    z0, z1 = unit_latents(2, seed) * truncation
    zs = loop_latents(z0, z1, frames, truncation)
    L = num_latents(biggan)
    return render_chunks(
        biggan,
        zs[:, None].expand(frames, L, Z_DIM),
        one_hot(index, L).expand(frames, L, NUM_CLASSES),
        truncation,
        chunk,
    )
