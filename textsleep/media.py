"""Pictures and animations: tensors to images, padded grids, streamed GIF/MP4, contact sheets.

Tensors are float in [0, 1], shaped (B, 3, H, W) or (3, H, W).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

__all__ = ["to_pil", "to_uint8", "make_grid", "VideoWriter", "read_video", "contact_sheet", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".gif", ".mp4")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(3, H, W) → (H, W, 3) or (B, 3, H, W) → (B, H, W, 3), uint8, clamped and rounded."""
    x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return x.permute(1, 2, 0).numpy() if x.dim() == 3 else x.permute(0, 2, 3, 1).numpy()


def to_pil(image: torch.Tensor):
    from PIL import Image

    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_pil takes one picture, got a batch of {image.shape[0]}")
        image = image[0]
    return Image.fromarray(to_uint8(image))


def make_grid(images: torch.Tensor, *, cols: int | None = None, pad: int = 4, pad_value: float = 1.0) -> torch.Tensor:
    """Pictures in rows and columns with ``pad`` pixels between and around them (like the BigGAN notebook's imgrid).

    The result is (3, rows·H + (rows+1)·pad, cols·W + (cols+1)·pad); empty cells are ``pad_value``.
    """
    if images.dim() == 3:
        images = images[None]
    b, c, h, w = images.shape
    cols = max(1, min(cols or math.ceil(math.sqrt(b)), b))
    rows = math.ceil(b / cols)
    grid = torch.full((c, rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad), pad_value, dtype=images.dtype)
    for i in range(b):
        r, col = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i].cpu()
    return grid


class VideoWriter:
    """Streams frames to a GIF or MP4 (chosen by suffix) so memory stays flat however many frames.

    The file is written beside the target under a temporary name and renamed
    when closed without error, so a crash never leaves a complete-looking file.
    MP4 frames must have even sides for H.264: odd sizes are padded by one pixel
    (edge colour) rather than resized.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float = 24.0) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in VIDEO_SUFFIXES:
            raise UserError(f"{str(self.path)!r}: unknown animation type {self.suffix or '(none)'!r}; allowed: {', '.join(VIDEO_SUFFIXES)}")
        self.fps = fps
        self._writer = None
        self._tmp: str | None = None
        self.frames_written = 0

    def __enter__(self) -> "VideoWriter":
        return self

    def _open(self) -> None:
        import imageio.v2 as imageio

        from .outputs import temp_beside

        self._tmp = temp_beside(self.path, self.suffix)
        if self.suffix == ".gif":
            self._writer = imageio.get_writer(self._tmp, mode="I", duration=1000 / self.fps, loop=0)
        else:
            self._writer = imageio.get_writer(self._tmp, fps=self.fps, codec="libx264", quality=8, macro_block_size=1, pixelformat="yuv420p")

    def add(self, frames: torch.Tensor) -> None:
        """Append one (3, H, W) frame or a batch (B, 3, H, W)."""
        if self._writer is None:
            self._open()
        batch = to_uint8(frames if frames.dim() == 4 else frames[None])
        for frame in batch:
            if self.suffix == ".mp4" and (frame.shape[0] % 2 or frame.shape[1] % 2):
                frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
            self._writer.append_data(frame)
            self.frames_written += 1

    def close(self, ok: bool = True) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._tmp is not None:
            if ok and self.frames_written:
                os.replace(self._tmp, self.path)
            else:
                Path(self._tmp).unlink(missing_ok=True)
            self._tmp = None

    def __exit__(self, kind, value, traceback) -> None:
        self.close(ok=kind is None)


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a GIF or MP4 as (T, H, W, 3) uint8."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path))
    try:
        frames = [np.asarray(f)[..., :3] for f in reader]
    finally:
        reader.close()
    return np.stack(frames)


def contact_sheet(images: list, captions: list[str], *, cols: int | None = None, thumb: int = 256, pad: int = 8):
    """Thumbnails of PIL images in a grid, each with a caption line under it."""
    from PIL import Image, ImageDraw, ImageFont

    cols = max(1, min(cols or math.ceil(math.sqrt(len(images))), len(images)))
    rows = math.ceil(len(images) / cols)
    font = ImageFont.load_default()
    line = 16
    sheet = Image.new("RGB", (cols * (thumb + pad) + pad, rows * (thumb + line + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        r, c = divmod(i, cols)
        x, y = pad + c * (thumb + pad), pad + r * (thumb + line + pad)
        small = image.convert("RGB").copy()
        small.thumbnail((thumb, thumb))
        sheet.paste(small, (x + (thumb - small.width) // 2, y + (thumb - small.height) // 2))
        draw.text((x, y + thumb + 2), caption[:48], fill="black", font=font)
    return sheet
