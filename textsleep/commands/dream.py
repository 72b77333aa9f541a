"""``textsleep dream`` (also plain ``textsleep "…"``): one picture from words."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import cli_errors, echo_err, settings_default as d

__all__ = ["register", "dream", "parse_dream_args", "to_settings"]

# CLI parameter name -> DreamSettings field, where they differ
_FIELD = {"image": "images", "negative": "negatives"}
_NOT_SETTINGS = {"text", "resume", "quiet"}


def to_settings(params: dict) -> dict:
    """The options a user actually gave (not None), as DreamSettings fields."""
    out = {}
    for key, value in params.items():
        if key in _NOT_SETTINGS or value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        out[_FIELD.get(key, key)] = tuple(value) if isinstance(value, list) else value
    return out


def dream(
    text: Optional[str] = typer.Argument(None, help="What to dream: 'a|b' for several prompts, 'text:2' to weight one, 'text:-1' to push away."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-i", help="Optimisation steps.", show_default=d("iterations")),
    size: Optional[int] = typer.Option(None, "--size", help="BigGAN-deep model: 128, 256 or 512.", show_default=d("size")),
    cutouts: Optional[int] = typer.Option(None, "--cutouts", help="Random crops CLIP sees per step.", show_default=d("cutouts")),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate.", show_default=d("lr")),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (random when omitted; always recorded).", show_default=d("seed")),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="BigGAN truncation, 0 < t <= 1; latents stay within ±2t.", show_default=d("truncation")),
    max_classes: Optional[int] = typer.Option(None, "--max-classes", help="Keep only the top-k ImageNet classes (differentiable top-k).", show_default=d("max_classes")),
    class_temperature: Optional[float] = typer.Option(None, "--class-temperature", help="Temperature of that top-k.", show_default=d("class_temperature")),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", help="Moving-average decay of the parameters (saved images use the average).", show_default=d("ema_decay")),
    clip_model: Optional[list[str]] = typer.Option(None, "--clip-model", help="open_clip model name or JSON config path; repeat for an ensemble, NAME:weight to weight one.", show_default="ViT-B-32"),
    clip_pretrained: Optional[list[str]] = typer.Option(None, "--clip-pretrained", help="open_clip pretrained tag or checkpoint file (once for all models, or once per model).", show_default="openai"),
    biggan: Optional[str] = typer.Option(None, "--biggan", help="BigGAN shortcut name, folder (pytorch_model.bin + config.json) or URL of one.", show_default="biggan-deep-SIZE"),
    image: Optional[list[str]] = typer.Option(None, "--image", help="Image prompt PATH[:weight] (repeatable)."),
    negative: Optional[list[str]] = typer.Option(None, "--negative", help="Text to move away from (repeatable)."),
    augment: Optional[str] = typer.Option(None, "--augment", help="Cutout augmentations: none, light or strong.", show_default=d("augment")),
    init_candidates: Optional[int] = typer.Option(None, "--init-candidates", help="Render K random starts and begin from the one CLIP likes best.", show_default=d("init_candidates")),
    init_class: Optional[str] = typer.Option(None, "--init-class", help="Start from this ImageNet class (index, name or '971) bubble')."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from a finished run folder's latents."),
    num_images: Optional[int] = typer.Option(None, "--num-images", help="Pictures dreamt at once (seeds seed, seed+1, …), each in its own sub-folder.", show_default=d("num_images")),
    keep: Optional[str] = typer.Option(None, "--keep", help="With several pictures: keep all, or only the best.", show_default=d("keep")),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Save picture and checkpoint every N steps.", show_default=d("save_every")),
    save_progress: Optional[bool] = typer.Option(None, "--save-progress/--no-save-progress", help="Keep every saved picture in progress/.", show_default=d("save_progress")),
    video: Optional[bool] = typer.Option(None, "--video/--no-video", help="Write progress.mp4 of the saved pictures at the end.", show_default=d("video")),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Folder for run folders.", show_default=d("out")),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps.", show_default=d("device")),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16.", show_default=d("precision")),
    cutout_batch: Optional[int] = typer.Option(None, "--cutout-batch", help="Cutouts CLIP encodes at once (caps memory; same picture).", show_default=d("cutout_batch")),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a run folder from its checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Dream up a picture from words (the default command)."""
    options = to_settings(locals())
    from ..imagine import Imagine

    if resume is None and not (text or "").strip() and not options.get("images"):
        echo_err('error: empty prompt; give some words, e.g. textsleep "upside down tree"')
        raise typer.Exit(2)
    imagine = Imagine(text or "", resume=resume, quiet=quiet, **options)
    try:
        run_dir = imagine()
    except KeyboardInterrupt:
        where = imagine.run_dir
        done = imagine.dream.step_count if imagine.dream else 0
        echo_err(f"\nstopped at step {done}; saved to {where}")
        if where is not None:
            echo_err(f"resume with: textsleep --resume {where}")
        raise typer.Exit(130) from None
    if not quiet:
        score = f" (CLIP score {imagine.final_score:.3f})" if imagine.final_score is not None else ""
        typer.echo(f"saved {run_dir / 'image.png'}{score}")
    else:
        typer.echo(str(run_dir / "image.png"))


def parse_dream_args(args: list[str]) -> dict:
    """Parse dream options (e.g. a prompt-file line's ``--seed 3 --size 256``) into DreamSettings fields."""
    from typer.main import get_command

    from ..errors import UserError

    command = get_command(_single_app())
    try:
        ctx = command.make_context("dream", ["_", *args], resilient_parsing=False)
    except Exception as err:  # the parser's own usage errors
        message = getattr(err, "format_message", lambda: str(err))()
        raise UserError(message) from None
    return to_settings(ctx.params)


def _single_app() -> typer.Typer:
    single = typer.Typer(add_completion=False)
    single.command()(dream)
    return single


def register(app: typer.Typer) -> None:
    app.command("dream")(cli_errors(dream))
