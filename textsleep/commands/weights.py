"""``textsleep download`` and ``textsleep doctor``: weights ahead of time, and what this machine has."""

from __future__ import annotations

import os
import platform
from typing import Optional

import torch
import typer
from huggingface_hub import constants

from .. import judges, weights
from ..errors import UserError
from ..models import clip_cached, load_clip, resolve_device, resolve_dtype
from ..version import __version__
from .common import cli_errors

__all__ = ["register"]


def download(
    size: str = typer.Option("512", "--size", help="BigGAN-deep size to fetch: 128, 256, 512 or all."),
    clip_model: str = typer.Option("ViT-B-32", "--clip-model", help="open_clip model whose weights to fetch."),
    clip_pretrained: str = typer.Option("openai", "--clip-pretrained", help="Its pretrained tag."),
    no_clip: bool = typer.Option(False, "--no-clip", help="Do not fetch CLIP."),
    no_biggan: bool = typer.Option(False, "--no-biggan", help="Do not fetch BigGAN."),
    upscaler: Optional[list[str]] = typer.Option(
        None, "--upscaler", help="Also fetch this upscaler (RealESRGAN_x4plus, RealESRGAN_x2plus); repeatable."
    ),
    force: bool = typer.Option(False, "--force", help="Fetch again even when cached (replaces a corrupted file)."),
    judge: Optional[list[str]] = typer.Option(
        None, "--judge", help=f"Also fetch this judge of textsleep eval ({', '.join(judges.JUDGES)}); repeatable."
    ),
) -> None:
    """Fetch weights now (for an offline machine: download, copy the caches, run)."""

    sizes = () if no_biggan else ("128", "256", "512") if size == "all" else (size,)
    for s in sizes:
        if s not in ("128", "256", "512"):
            raise UserError(f"--size {size!r}: allowed are 128, 256, 512 or all")
    for name in upscaler or ():
        if name not in weights.UPSCALERS:
            raise UserError(f"--upscaler {name!r}: not a known upscaler; known are {', '.join(weights.UPSCALERS)}")
    for name in judge or ():
        if name not in judges.JUDGES or name == "clip":
            known = ", ".join(n for n in judges.JUDGES if n != "clip")
            raise UserError(f"--judge {name!r}: not a judge to fetch; known are {known} (CLIP: --clip-model)")
    for s in sizes:
        name = f"biggan-deep-{s}"
        folder = weights.biggan_dir(name, progress=True, force=force)
        typer.echo(f"{name}: {folder}")
    for name in upscaler or ():
        typer.echo(f"{name}: {weights.upscaler_file(name, progress=True, force=force)}")
    for name in judge or ():
        typer.echo(f"judge {name}: {judges.fetch(name)}")
    if not no_clip:
        load_clip(clip_model, clip_pretrained, "cpu")

        typer.echo(f"CLIP {clip_model} ({clip_pretrained}): in {constants.HF_HUB_CACHE}")


def doctor() -> None:
    """Devices, precision support, versions, caches and which models are present."""

    def line(key: str, value: object) -> None:
        typer.echo(f"{key:<22} {value}")

    line("textsleep", __version__)
    line("python", platform.python_version())
    line("torch", torch.__version__)
    cuda = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    line("cuda", ", ".join(cuda) if cuda else "not available")
    line("mps", "available" if torch.backends.mps.is_available() else "not available")
    device = resolve_device("auto")
    line("auto device", device)
    line("auto precision", str(resolve_dtype("auto", device)).replace("torch.", ""))
    line("cache (BigGAN)", f"{weights.cache_root()}  (TEXTSLEEP_CACHE)")
    line(
        "cache (CLIP)",
        f"{constants.HF_HUB_CACHE}  (HF_HOME; offline: HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')})",
    )
    mirror = os.environ.get("TEXTSLEEP_BIGGAN_URL")
    line("BigGAN mirror", mirror or "not set (TEXTSLEEP_BIGGAN_URL)")
    cached = {m["name"]: m for m in weights.cached_models()}
    for name in weights.BIGGAN_SHORTCUTS:
        found = cached.get(name)
        line(name, f"cached, {found['size'] / 2**20:.0f} MB, {found['path']}" if found else "not cached")
    upscalers = {m["name"]: m for m in weights.cached_upscalers()}
    for name in weights.UPSCALERS:
        found = upscalers.get(name)
        line(
            name,
            f"cached, {found['size'] / 2**20:.0f} MB, {found['path']}"
            if found
            else "not cached (textsleep download --upscaler NAME)",
        )
    line("upscaler mirror", os.environ.get("TEXTSLEEP_UPSCALER_URL") or "not set (TEXTSLEEP_UPSCALER_URL)")

    for name, info in judges.JUDGES.items():
        if info.repo is not None:
            where = "cached" if judges.cached(name) else f"not cached (textsleep download --judge {name})"
            line(f"judge {name}", f"{where}; {info.repo} ({info.licence})")
    clip_ok = clip_cached("ViT-B-32", "openai")
    line("ViT-B-32 (openai)", "cached" if clip_ok else "not cached")
    need = not (clip_ok and weights.is_cached("biggan-deep-512"))
    line(
        "network needed",
        "yes, for the default settings (textsleep download fetches ahead)" if need else "no, the defaults run offline",
    )


def register(app: typer.Typer) -> None:
    app.command("download")(cli_errors(download))
    app.command("doctor")(cli_errors(doctor))
