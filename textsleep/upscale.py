"""Larger pictures: 2x / 4x upscaling of finished pictures with a Real-ESRGAN network.

The network is loaded with spandrel (``pip install "textsleep[upscale]"``) from
a known name (``RealESRGAN_x4plus`` for 4x, ``RealESRGAN_x2plus`` for 2x, fetched
through :mod:`textsleep.weights`) or a local ``.pth``.  Large pictures go through
the network in overlapping tiles whose overlaps are blended, so memory stays
bounded by the tile size rather than the picture's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import weights
from .devices import resolve_device
from .errors import UserError
from .media import to_pil
from .outputs import read_png_text, save_png
from .runs import RUN_FILES

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "SCALES",
    "DEFAULT_UPSCALERS",
    "DEFAULT_TILE",
    "DEFAULT_OVERLAP",
    "Upscaler",
    "check_upscale",
    "load_upscaler",
    "upscale_image",
    "upscale_file",
    "upscale_files",
    "upscale_run",
    "upscaled_name",
]

SCALES = (2, 4)
DEFAULT_UPSCALERS = {4: "RealESRGAN_x4plus", 2: "RealESRGAN_x2plus"}
DEFAULT_TILE = 256  # about this many input pixels per piece side, plus the overlap (0: the whole picture at once)
DEFAULT_OVERLAP = 32  # input pixels shared by neighbouring tiles (at most half a tile)


@dataclass
class Upscaler:
    """A loaded network: ``name`` (known name or file path), ``scale``, the spandrel descriptor and its device.

    ``align``: pieces of a picture must start at multiples of this (2x networks pixel-unshuffle first).
    """

    name: str
    scale: int
    descriptor: Any
    device: "torch.device"
    align: int = 1

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        """(1, 3, h, w) in [0, 1] → (1, 3, h·scale, w·scale) in [0, 1]."""
        return self.descriptor(x)


def _check_scale(scale: int) -> int:
    if scale not in SCALES:
        raise UserError(f"--scale {scale}: allowed are {', '.join(map(str, SCALES))}")
    return int(scale)


def _spandrel():
    try:
        import spandrel  # noqa: PLC0415 (an optional extra)
    except ImportError:
        raise UserError('upscaling needs the spandrel package: pip install "textsleep[upscale]"') from None
    return spandrel


def check_upscale(scale: int, upscaler: str | os.PathLike | None = None) -> None:
    """Fail now, not after a long dream: the scale is allowed, spandrel is installed, the upscaler is a known
    name or an existing file (nothing is downloaded or loaded)."""

    _check_scale(scale)
    _spandrel()
    name = str(upscaler) if upscaler is not None else DEFAULT_UPSCALERS[scale]
    if name not in weights.UPSCALERS:
        weights.upscaler_file(name)


def load_upscaler(
    upscaler: str | os.PathLike | Upscaler | None = None,
    *,
    scale: int = 4,
    device: "str | torch.device" = "cpu",
    progress: bool = True,
) -> Upscaler:
    """Load ``upscaler`` (a known name, a ``.pth`` path, or None for the default network of ``scale``)."""

    scale = _check_scale(scale)
    if isinstance(upscaler, Upscaler):
        _check_network_scale(upscaler.name, upscaler.scale, scale)
        return upscaler
    spandrel = _spandrel()

    name = str(upscaler) if upscaler is not None else DEFAULT_UPSCALERS[scale]
    device = resolve_device(device) if isinstance(device, str) else device
    path = weights.upscaler_file(name, progress=progress)
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_file(path)
    except Exception as err:  # unpickling, unknown architecture, wrong extension: all say "not an upscaler"
        reason = " ".join(str(err).split())[:200] or err.__class__.__name__
        raise UserError(f"--upscaler {str(path)!r} is not an upscaler network spandrel can load ({reason})") from None
    if (
        not isinstance(descriptor, spandrel.ImageModelDescriptor)
        or descriptor.input_channels != 3
        or descriptor.output_channels != 3
    ):
        raise UserError(f"--upscaler {str(path)!r} is a {descriptor.architecture.name} network, not an RGB upscaler")
    _check_network_scale(name, descriptor.scale, scale)
    descriptor.to(device).eval()
    align = descriptor.size_requirements.multiple_of
    return Upscaler(name=name, scale=descriptor.scale, descriptor=descriptor, device=device, align=align)


def _check_network_scale(name: str, network_scale: int, scale: int) -> None:
    if network_scale != scale:
        raise UserError(
            f"--upscaler {name!r} enlarges {network_scale}x, not the --scale {scale} asked for; "
            f"pass --scale {network_scale}, or leave --upscaler out to use {DEFAULT_UPSCALERS[scale]}"
            if network_scale in SCALES
            else f"--upscaler {name!r} enlarges {network_scale}x; textsleep upscales by {' or '.join(map(str, SCALES))}"
        )


# --------------------------------------------------------------------------------------------- tiles
def _check_tiles(tile: int, overlap: int | None) -> int:
    """The overlap to use; a UserError for a tile or overlap that cannot work."""
    if tile and tile < 16 or tile < 0:
        raise UserError(f"--tile {tile}: give at least 16 pixels, or 0 for the whole picture in one pass")
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, tile // 2)
    if tile and not 0 <= overlap <= tile:
        raise UserError(f"overlap {overlap}: it must be between 0 and the tile ({tile})")
    return overlap


def _windows(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """(start, size) of the pieces along one side: ``ceil(length / tile)`` pieces about ``length / n + overlap``
    long, spread evenly so neighbours share at least ``overlap`` pixels.

    Starts are multiples of ``align``: a network that first pixel-unshuffles the
    picture (the 2x one) then groups the same pixels as in one pass.
    """
    n = math.ceil(length / tile) if tile else 1
    size = min(length, math.ceil(length / n) + overlap)
    if n == 1 or size >= length:
        return [(0, length)]
    starts = [round(i * (length - size) / (n - 1)) // align * align for i in range(n)]
    return [(a, size if i < n - 1 else length - a) for i, a in enumerate(starts)]


def _ramp(start: int, size: int, length: int, scale: int, overlap: int) -> "torch.Tensor":
    """Blend weights of one tile along one side, in output pixels.

    Near an edge shared with another tile the outer quarter of the overlap gets
    weight 0 (those pixels saw zero padding instead of their neighbours), then the
    weight rises linearly to 1 across the middle half; edges of the picture keep 1.
    """

    pos = (torch.arange(size * scale, dtype=torch.float32) + 0.5) / scale  # input pixels from the tile's start
    margin, band = overlap / 4, max(overlap / 2, 1e-6)
    weight = torch.ones(size * scale)
    if start > 0:
        weight = torch.minimum(weight, ((pos - margin) / band).clamp(0, 1))
    if start + size < length:
        weight = torch.minimum(weight, ((size - pos - margin) / band).clamp(0, 1))
    return weight


def _run_tiled(net: Upscaler, x: "torch.Tensor", tile: int, overlap: int) -> "torch.Tensor":
    """``x`` (1, 3, H, W) on the network's device → (1, 3, sH, sW) on the CPU, tile by tile."""

    _, _, h, w = x.shape
    s = net.scale
    rows, cols = _windows(h, tile, overlap, net.align), _windows(w, tile, overlap, net.align)
    if len(rows) == len(cols) == 1:
        return net(x).float().cpu()
    out = torch.zeros(1, 3, h * s, w * s)
    total = torch.zeros(1, 1, h * s, w * s)
    for top, th in rows:
        wy = _ramp(top, th, h, s, overlap)
        for left, tw in cols:
            piece = net(x[:, :, top : top + th, left : left + tw]).float().cpu()
            weight = wy[:, None] * _ramp(left, tw, w, s, overlap)[None, :]
            out[:, :, top * s : (top + th) * s, left * s : (left + tw) * s] += piece * weight
            total[:, :, top * s : (top + th) * s, left * s : (left + tw) * s] += weight
    return out / total


def upscale_image(
    image: "Image.Image",
    *,
    scale: int = 4,
    upscaler: str | os.PathLike | Upscaler | None = None,
    device: "str | torch.device" = "cpu",
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    progress: bool = True,
) -> "Image.Image":
    """``image`` enlarged ``scale`` times (RGB; an alpha channel is resized alongside with Lanczos).

    The network sees the picture in ``ceil(side / tile)`` pieces per side (``tile``
    in input pixels; 0: the whole picture at once), each grown by ``overlap``
    pixels shared with its neighbours and blended (default ``DEFAULT_OVERLAP``, at
    most half the tile).  Memory grows with ``(tile + overlap)²``, not the picture.
    """

    overlap = _check_tiles(tile, overlap)
    net = load_upscaler(upscaler, scale=scale, device=device, progress=progress)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(net.device)
    with torch.inference_mode():
        y = _run_tiled(net, x, tile, overlap)
    result = to_pil(y)
    if "A" in image.getbands():
        alpha = image.getchannel("A").resize(result.size, Image.LANCZOS)
        result.putalpha(alpha)
    return result


# --------------------------------------------------------------------------------------------- files
def upscaled_name(path: str | os.PathLike, scale: int) -> Path:
    """``pictures/NAME.png`` → ``pictures/NAME_x4.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_x{scale}.png")


def _open(path: Path) -> "Image.Image":

    if not path.is_file():
        raise UserError(f"{str(path)!r}: no such picture" + (" (it is a folder)" if path.exists() else ""))
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"{str(path)!r} is not a picture ({err.__class__.__name__})") from None


def upscale_file(
    src: str | os.PathLike,
    dst: str | os.PathLike | None = None,
    *,
    scale: int = 4,
    upscaler: str | os.PathLike | Upscaler | None = None,
    device: "str | torch.device" = "cpu",
    tile: int = DEFAULT_TILE,
    overlap: int | None = None,
    overwrite: bool = True,
    progress: bool = True,
) -> Path:
    """Write ``src`` enlarged as a PNG (``dst``, default ``NAME_x4.png`` beside it); return its path.

    The source's PNG text (prompt, seed, settings…) is carried over and
    ``upscaler`` records ``{"name", "scale"}``.  With ``overwrite=False`` an
    existing ``dst`` is an error.
    """

    src = Path(src)
    dst = Path(dst) if dst is not None else upscaled_name(src, scale)
    if dst.suffix.lower() != ".png":
        raise UserError(f"--out {str(dst)!r}: upscaled pictures are written as .png")
    if dst.resolve() == src.resolve():
        raise UserError(f"--out {str(dst)!r} is the picture itself; give another name")
    if not overwrite and dst.exists():
        raise UserError(f"{str(dst)!r} already exists; pass --force to replace it, or --out to name another file")
    image = _open(src)
    net = load_upscaler(upscaler, scale=scale, device=device, progress=progress)
    big = upscale_image(image, scale=scale, upscaler=net, tile=tile, overlap=overlap)
    text = read_png_text(src) if image.format == "PNG" else {}
    text["upscaler"] = {"name": Path(net.name).name, "scale": scale}  # a file's name, not where it lies
    dst.parent.mkdir(parents=True, exist_ok=True)
    return save_png(big, dst, text)


def upscale_files(
    sources: list[str | os.PathLike],
    *,
    out: str | os.PathLike | None = None,
    scale: int = 4,
    upscaler: str | os.PathLike | Upscaler | None = None,
    device: "str | torch.device" = "cpu",
    tile: int = DEFAULT_TILE,
    force: bool = False,
    progress: bool = True,
    on_done=None,
) -> list[Path]:
    """Upscale several pictures with one loaded network; return the files written.

    ``out``: None writes ``NAME_x4.png`` beside each picture; a path ending in
    ``.png`` is the output file (one picture only); anything else is a folder
    (created) that receives ``NAME_x4.png``.  Every destination is checked before
    any work: an existing file is an error unless ``force``.  ``on_done(path)`` is
    called after each file.
    """
    _check_scale(scale)
    _check_tiles(tile, None)
    if not sources:
        raise UserError("give at least one picture to upscale")
    srcs = [Path(s) for s in sources]
    if out is not None and Path(out).suffix.lower() == ".png":
        if len(srcs) > 1:
            raise UserError(f"--out {str(out)!r} names one file but {len(srcs)} pictures were given; give a folder")
        dsts = [Path(out)]
    elif out is not None:
        if Path(out).suffix and not Path(out).is_dir():
            raise UserError(f"--out {str(out)!r}: upscaled pictures are written as .png; give a .png name or a folder")
        if Path(out).is_file():
            raise UserError(f"--out {str(out)!r} is a file; give a folder, or a .png name for one picture")
        dsts = [Path(out) / upscaled_name(s, scale).name for s in srcs]
    else:
        dsts = [upscaled_name(s, scale) for s in srcs]
    seen: dict[Path, Path] = {}
    for src, dst in zip(srcs, dsts):
        _open(src).close()
        key = dst.resolve()
        if key in seen:
            raise UserError(
                f"{str(seen[key])!r} and {str(src)!r} would both be written to {str(dst)!r}; upscale them into "
                "different folders"
            )
        seen[key] = src
        if dst.exists() and not force:
            raise UserError(f"{str(dst)!r} already exists; pass --force to replace it, or --out to write elsewhere")
    net = load_upscaler(upscaler, scale=scale, device=device, progress=progress)
    written = []
    for src, dst in zip(srcs, dsts):
        written.append(upscale_file(src, dst, scale=scale, upscaler=net, tile=tile))
        if on_done is not None:
            on_done(written[-1])
    return written


def upscale_run(
    run_dir: str | os.PathLike,
    scale: int,
    upscaler: str | os.PathLike | Upscaler | None = None,
    *,
    device: "str | torch.device" = "cpu",
    tile: int = DEFAULT_TILE,
    progress: bool = True,
) -> list[Path]:
    """Write ``image_x{scale}.png`` beside every ``image.png`` of a run folder (and of its picture sub-folders).

    ``image.png`` itself is never touched; an earlier ``image_x4.png`` is
    replaced (a resumed run's picture has changed).  Returns the files written.
    """

    run_dir, image = Path(run_dir), RUN_FILES["image"]
    if not run_dir.is_dir():
        raise UserError(f"{str(run_dir)!r} is not a run folder")
    sources = [p for p in [run_dir / image, *sorted(run_dir.glob(f"*/{image}"))] if p.is_file()]
    if not sources:
        raise UserError(f"{str(run_dir)!r} has no {image} to upscale")
    net = load_upscaler(upscaler, scale=scale, device=device, progress=progress)
    return [upscale_file(p, scale=scale, upscaler=net, tile=tile) for p in sources]
