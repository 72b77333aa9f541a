"""``textsleep download`` and ``textsleep doctor``: weights ahead of time, and what this machine has."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

import torch
import typer
from huggingface_hub import constants

from .. import judges, weights
from ..devices import auto_precision, device_info, resolve_device
from ..errors import UserError
from ..models import clip_cached, load_clip
from ..options import with_settings
from ..settings import knob
from ..version import __version__
from .common import cli_errors

__all__ = ["register"]


@dataclass(frozen=True, kw_only=True)
class DownloadOptions:
    """What ``textsleep download`` fetches ahead."""

    size: str = knob("512", "BigGAN-deep size to fetch: 128, 256, 512 or all.")
    clip_model: str = knob("ViT-B-32", "open_clip model whose weights to fetch.")
    clip_pretrained: str = knob("openai", "Its pretrained tag.")
    no_clip: bool = knob(False, "Do not fetch CLIP.")
    no_biggan: bool = knob(False, "Do not fetch BigGAN.")
    upscaler: tuple[str, ...] = knob(
        (), f"Also fetch this upscaler ({', '.join(weights.UPSCALERS)}); repeatable.", show=False
    )
    force: bool = knob(False, "Fetch again even when cached (replaces a file cut short, changed or corrupted).")
    judge: tuple[str, ...] = knob(
        (),
        f"Also fetch this judge of textsleep eval ({', '.join(n for n in judges.JUDGES if n != 'clip')};"
        " the CLIP judge with --clip-model); repeatable.",
        show=False,
    )


@dataclass(frozen=True, kw_only=True)
class DoctorOptions:
    """What ``textsleep doctor`` checks beyond what it always prints."""

    verify: bool = knob(
        False,
        "Also hash every cached weight file against the SHA-256 found at download (reads them all; a good copy "
        "whose time changed is stamped again).",
    )


@with_settings
def download(*, options: DownloadOptions) -> None:
    """Fetch weights now (for an offline machine: download, copy the caches, run)."""

    o = options
    size, upscaler, judge, force = o.size, o.upscaler, o.judge, o.force

    sizes = () if o.no_biggan else ("128", "256", "512") if size == "all" else (size,)
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
    if not o.no_clip:
        load_clip(o.clip_model, o.clip_pretrained, "cpu")
        typer.echo(f"CLIP {o.clip_model} ({o.clip_pretrained}): in {constants.HF_HUB_CACHE}")


@with_settings
def doctor(*, options: DoctorOptions) -> None:
    """Devices, precision, versions, caches and which models are present."""

    for key, value in (*_versions(), *_device(), *_caches()):
        typer.echo(f"{key:<22} {value}")
    if options.verify:
        _verify()


def _versions():
    yield "textsleep", __version__
    yield "python", platform.python_version()
    yield "torch", torch.__version__


def _device():
    """The devices here, and the one a dream with the defaults runs on: its name, capability and memory, and the
    precision ``auto`` picks there."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    yield "cuda", ", ".join(device_info(f"cuda:{i}")["name"] for i in range(count)) or "not available"
    yield "mps", "available" if torch.backends.mps.is_available() else "not available"
    device = resolve_device("auto")
    info = device_info(device)
    yield "auto device", device
    yield "device name", info["name"]
    if info["capability"]:
        yield "compute capability", info["capability"]
    yield "device memory", "unknown" if info["memory_gb"] is None else f"{info['memory_gb']} GiB"
    dtype, why = auto_precision(device)
    yield "auto precision", f"{str(dtype).removeprefix('torch.')} ({why})"


def _caches():
    def cached(found: dict | None, otherwise: str) -> str:
        return f"cached, {found['size'] / 2**20:.0f} MB, {found['path']}" if found else otherwise

    yield "cache (BigGAN)", f"{weights.cache_root()}  (TEXTSLEEP_CACHE)"
    offline = os.environ.get("HF_HUB_OFFLINE", "0")
    yield "cache (CLIP)", f"{constants.HF_HUB_CACHE}  (HF_HOME; offline: HF_HUB_OFFLINE={offline})"
    yield "BigGAN mirror", os.environ.get("TEXTSLEEP_BIGGAN_URL") or "not set (TEXTSLEEP_BIGGAN_URL)"
    models = {m["name"]: m for m in weights.cached_models()}
    for name in weights.BIGGAN_SHORTCUTS:
        yield name, cached(models.get(name), "not cached")
    upscalers = {m["name"]: m for m in weights.cached_upscalers()}
    for name in weights.UPSCALERS:
        yield name, cached(upscalers.get(name), "not cached (textsleep download --upscaler NAME)")
    yield "upscaler mirror", os.environ.get("TEXTSLEEP_UPSCALER_URL") or "not set (TEXTSLEEP_UPSCALER_URL)"
    for name, info in judges.JUDGES.items():
        if info.repo is not None:
            where = "cached" if judges.cached(name) else f"not cached (textsleep download --judge {name})"
            yield f"judge {name}", f"{where}; {info.repo} ({info.licence})"
    clip_ok = clip_cached("ViT-B-32", "openai")
    yield "ViT-B-32 (openai)", "cached" if clip_ok else "not cached"
    offline_ok = clip_ok and weights.is_cached("biggan-deep-512")
    need = (
        "no, the defaults run offline"
        if offline_ok
        else "yes, for the default settings (textsleep download fetches ahead)"
    )
    yield "network needed", need


def _verify() -> None:
    """One line per cached weight file, hashed; then an error if any is not what was downloaded."""
    report = weights.verify_cache()
    for entry in report:
        if entry["error"]:
            result = entry["error"]
        elif entry["sha256"]:
            result = f"{entry['path']}: ok, SHA-256 {entry['sha256']}"
        else:
            result = f"{entry['path']}: no SHA-256 recorded, not checked"
        typer.echo(f"{'verify':<22} {result}")
    if not report:
        typer.echo(f"{'verify':<22} no weight files in {weights.cache_root()}")
    bad = sum(bool(entry["error"]) for entry in report)
    if bad:
        raise UserError(f"{bad} of {len(report)} cached weight files are not what was downloaded (listed above)")


def register(app: typer.Typer) -> None:
    app.command("download")(cli_errors(download))
    app.command("doctor")(cli_errors(doctor))
