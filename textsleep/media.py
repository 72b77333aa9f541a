"""Pictures and animations: tensors to images, padded grids, streamed GIF/MP4, contact sheets.

Tensors are float in [0, 1], shaped (B, 3, H, W) or (3, H, W); values outside
are clamped and rounded to the nearest of 256 levels.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import IO

import imageio.v2 as imageio
import numpy as np
import torch
from einops import rearrange
from PIL import GifImagePlugin, Image, ImageDraw, ImageFont
from torch.nn.functional import pad as pad_

from .errors import UserError
from .outputs import temp_beside

__all__ = [
    "VIDEO_SUFFIXES",
    "to_uint8",
    "to_pil",
    "to_tensor",
    "centre_square",
    "make_grid",
    "VideoWriter",
    "read_video",
    "contact_sheet",
]

VIDEO_SUFFIXES = (".gif", ".mp4")
_GIF_MAX_FPS = 50.0  # GIF delays are whole hundredths of a second; browsers slow anything under 2 down
_CAPTION = 16  # pixels of caption band under each contact-sheet thumbnail


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(3, H, W) → (H, W, 3) or (B, 3, H, W) → (B, H, W, 3), uint8, clamped and rounded."""
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"expected (3, H, W) or (B, 3, H, W) pictures, got shape {tuple(images.shape)}")
    x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return x.permute(1, 2, 0).numpy() if x.dim() == 3 else x.permute(0, 2, 3, 1).numpy()


def to_pil(image: torch.Tensor) -> Image.Image:
    """One picture, (3, H, W) or (1, 3, H, W), as an RGB PIL image."""

    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_pil takes one picture, got a batch of {image.shape[0]}")
        image = image[0]
    return Image.fromarray(to_uint8(image))


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as (3, H, W) float in [0, 1] (RGB whatever its mode): :func:`to_pil` the other way."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)


def centre_square(image: Image.Image, size: int) -> torch.Tensor:
    """A PIL image's centre square, resized (bicubic) to (1, 3, size, size) in [0, 1] (RGB whatever the mode)."""
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return to_tensor(image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC))[None]


def make_grid(images: torch.Tensor, *, cols: int | None = None, pad: int = 4, pad_value: float = 1.0) -> torch.Tensor:
    """Pictures in rows and columns with ``pad`` pixels between and around them (like the BigGAN notebook's imgrid).

    ``cols`` defaults to ceil(sqrt(B)) and, as in imgrid, is capped at B.  The
    result is on the CPU, shaped (3, rows·H + (rows+1)·pad, cols·W + (cols+1)·pad);
    empty cells in the last row are ``pad_value``.
    """

    if images.dim() == 3:
        images = images[None]
    b, c, h, w = images.shape
    if b == 0:
        raise ValueError("make_grid needs at least one picture")
    if cols is not None and cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}")
    if pad < 0:
        raise ValueError(f"pad must be 0 or more, got {pad}")
    cols = min(cols or math.ceil(math.sqrt(b)), b)
    rows = math.ceil(b / cols)
    x = images.detach().cpu()
    x = torch.cat([x, x.new_full((rows * cols - b, c, h, w), pad_value)])
    x = pad_(x, (0, pad, 0, pad), value=pad_value)  # right and bottom of every cell
    grid = rearrange(x, "(r k) c h w -> c (r h) (k w)", r=rows)
    return pad_(grid, (pad, 0, pad, 0), value=pad_value)  # left and top of the whole grid


class VideoWriter:
    """Streams frames to a GIF or MP4 (chosen by suffix), so memory stays flat however many frames.

    * The file is written beside the target under a hidden temporary name and
      renamed into place when the writer closes without error; after a crash
      (or if no frame was added) there is no file at ``path``.
    * GIF: each frame gets its own 256-colour palette (Pillow's adaptive
      quantiser), is written as soon as it is added, and the animation loops
      forever.  Delays are hundredths of a second, spread so the average rate is
      ``fps``; at most 50 fps.
    * MP4: H.264 (yuv420p) through imageio-ffmpeg.  That needs even sides, so odd
      heights or widths are padded by one pixel repeating the edge (never resized);
      ``macro_block_size=1`` stops imageio from resizing further.

    All frames must have the size of the first.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float = 24.0) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in VIDEO_SUFFIXES:
            raise UserError(
                f"{str(self.path)!r}: unknown animation type {self.suffix or '(none)'!r}; allowed: "
                f"{', '.join(VIDEO_SUFFIXES)}"
            )
        if not fps > 0:
            raise UserError(f"fps {fps}: must be more than 0")
        if self.suffix == ".gif" and fps > _GIF_MAX_FPS:
            raise UserError(f"fps {fps}: a GIF plays at most {_GIF_MAX_FPS:g} fps; use a lower fps or .mp4")
        self.fps = float(fps)
        self._tmp: str | None = None
        self._mp4 = None  # imageio writer
        self._gif: IO[bytes] | None = None
        self._size: tuple[int, int] | None = None
        self._count = 0
        self._closed = False

    @property
    def frames_written(self) -> int:
        """How many frames have been added so far."""
        return self._count

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(ok=kind is None)

    def add(self, frames: torch.Tensor) -> None:
        """Append one (3, H, W) frame or a batch (B, 3, H, W)."""
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        batch = to_uint8(frames if frames.dim() == 4 else frames[None])
        size = batch.shape[1:3]
        if self._size is None:
            self._size = size
            self._open()
        elif size != self._size:
            raise ValueError(
                f"{self.path}: frame size {size[1]}x{size[0]} differs from the first frame's "
                f"{self._size[1]}x{self._size[0]}"
            )
        for frame in batch:
            if self._gif is not None:
                self._gif_frame(frame)
            else:
                self._mp4.append_data(_even(frame))
            self._count += 1
        if self._gif is not None:
            self._gif.flush()

    def close(self, ok: bool = True) -> None:
        """Finish the file and rename it into place (``ok``), or throw it away."""
        self._closed = True
        try:
            if self._gif is not None:
                try:
                    self._gif.write(b";")  # GIF trailer
                finally:
                    self._gif.close()
            if self._mp4 is not None:
                self._mp4.close()
        except BaseException:
            ok = False
            raise
        finally:
            self._gif = self._mp4 = None
            if self._tmp is not None:
                if ok and self._count:
                    os.replace(self._tmp, self.path)
                else:
                    Path(self._tmp).unlink(missing_ok=True)
                self._tmp = None

    def _open(self) -> None:

        self._tmp = temp_beside(self.path, self.suffix)
        if self.suffix == ".gif":
            self._gif = open(self._tmp, "wb")
        else:
            self._mp4 = imageio.get_writer(
                self._tmp,
                format="FFMPEG",
                fps=self.fps,
                codec="libx264",
                quality=8,
                macro_block_size=1,
                pixelformat="yuv420p",
            )

    def _gif_frame(self, frame: np.ndarray) -> None:

        image = Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
        if self._count == 0:
            header, _ = GifImagePlugin.getheader(image, info={"loop": 0})
            self._gif.writelines(header)
        # Whole centiseconds, spread so frame n ends at round(100 n / fps).
        delay = round(100 * (self._count + 1) / self.fps) - round(100 * self._count / self.fps)
        self._gif.writelines(GifImagePlugin.getdata(image, duration=10 * delay, include_color_table=True))


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad an (H, W, 3) frame by one edge pixel where a side is odd."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a GIF or MP4 as (T, H, W, 3) uint8."""

    reader = imageio.get_reader(str(path))
    try:
        frames = [_rgb(np.asarray(f)) for f in reader]
    finally:
        reader.close()
    return np.stack(frames)


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.repeat(frame[..., None], 3, axis=-1) if frame.ndim == 2 else frame[..., :3]


def contact_sheet(
    images: list[Image.Image], captions: list[str], *, cols: int | None = None, thumb: int = 256, pad: int = 8
) -> Image.Image:
    """Thumbnails (at most ``thumb`` pixels a side) in a grid on white, each with a one-line caption under it.

    ``cols`` defaults to ceil(sqrt(n)), capped at n.  The sheet is
    cols·(thumb+pad)+pad wide and rows·(thumb+16+pad)+pad high; captions too
    long for a cell end in "...".
    """

    if not images or len(images) != len(captions):
        raise ValueError(
            f"contact_sheet needs one caption per picture and at least one picture, got {len(images)} and "
            f"{len(captions)}"
        )
    if cols is not None and cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}")
    cols = min(cols or math.ceil(math.sqrt(len(images))), len(images))
    rows = math.ceil(len(images) / cols)
    font = ImageFont.load_default()
    sheet = Image.new("RGB", (cols * (thumb + pad) + pad, rows * (thumb + _CAPTION + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        r, c = divmod(i, cols)
        x, y = pad + c * (thumb + pad), pad + r * (thumb + _CAPTION + pad)
        small = image.convert("RGB")  # a copy, so thumbnail() leaves the caller's image alone
        small.thumbnail((thumb, thumb))
        sheet.paste(small, (x + (thumb - small.width) // 2, y + (thumb - small.height) // 2))
        draw.text((x, y + thumb + 2), _fit(draw, caption, font, thumb), fill="black", font=font)
    return sheet


def _fit(draw, text: str, font, width: int) -> str:
    """``text`` on one line, cut with "..." to fit ``width`` pixels."""
    text = " ".join(text.split())
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
