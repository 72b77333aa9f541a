"""The latent-space explorer: ``classes``, ``sample``, ``interpolate``, ``breed``, ``hallucinate``, ``zoom``,
``truncation-sweep``, ``loop`` and ``invert``.

Each command parses, calls :mod:`textsleep.explore` and saves: grids as PNG
(the recipe in the PNG's text metadata), animations as GIF or MP4 by the
``--out`` extension (the recipe in a ``.json`` beside it), an inversion as a
run folder.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Optional

import typer

from .common import cli_errors, echo_err, settings_default as d

__all__ = ["register"]

_PNG = (".png",)
_EXPLORE_TRUNCATION = 0.4  # BigGAN's samples look their best around here; the dream's own default is 1.0


# ---------------------------------------------------------------------------------------------- shared options
def _size_opt():
    return typer.Option(int(d("size")), "--size", help="BigGAN-deep model: 128, 256 or 512.")


def _biggan_opt():
    return typer.Option(None, "--biggan", help="BigGAN shortcut name, folder (pytorch_model.bin + config.json) or URL of one.", show_default="biggan-deep-SIZE")


def _device_opt():
    return typer.Option(d("device"), "--device", help="auto, cpu, cuda, cuda:N or mps.")


def _precision_opt():
    return typer.Option(d("precision"), "--precision", help="auto, fp32, bf16 or fp16.")


def _seed_opt():
    return typer.Option(0, "--seed", help="Random seed of the latents (recorded with the output).")


def _truncation_opt(default: float = _EXPLORE_TRUNCATION):
    return typer.Option(default, "--truncation", help="0 < t <= 1: latents from a truncated normal (±2) scaled by t; BigGAN uses the matching statistics.")


def _out_opt(kind: str):
    return typer.Option(None, "--out", "-o", help=f"Output file ({kind}; the extension picks the format) or a folder for a new name.", show_default="outputs/…")


def _batch_opt():
    return typer.Option(8, "--batch", help="Pictures rendered at once (lower it if memory runs out).")


def _pad_opt():
    return typer.Option(4, "--pad", help="Pixels of white between and around the grid's pictures.")


# ---------------------------------------------------------------------------------------------- helpers
def _version() -> str:
    from .. import __version__

    return __version__


def _generator(size: int, biggan: str | None, device: str, precision: str):
    """The BigGAN to render with, and its name."""
    from ..errors import UserError
    from ..models import load_biggan, resolve_device, resolve_dtype
    from ..settings import PRECISIONS, SIZES

    if size not in SIZES:
        raise UserError(f"--size {size!r}: allowed sizes are {', '.join(map(str, SIZES))}")
    if precision not in PRECISIONS:
        raise UserError(f"--precision {precision!r}: allowed are {', '.join(PRECISIONS)}")
    dev = resolve_device(device)
    name = biggan or f"biggan-deep-{size}"
    return load_biggan(name, dev).to(resolve_dtype(precision, dev)), name


def _mkdir(folder: Path, given: str) -> None:
    from ..errors import UserError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {given!r}: cannot create the folder {str(folder)!r} ({err.strerror or err})") from None


def _out_path(out: str | None, stem: str, allowed: tuple[str, ...]) -> Path:
    """``--out`` itself (its extension must be one of ``allowed``), or a new ``stem`` name in a folder (default outputs/)."""
    from ..errors import UserError
    from ..outputs import slugify

    if out is not None:
        path = Path(out).expanduser()
        if path.suffix and not path.is_dir():
            if path.suffix.lower() not in allowed:
                raise UserError(f"--out {out!r}: unknown file type {path.suffix!r}; allowed: {', '.join(allowed)}")
            _mkdir(path.parent, out)
            return path
        folder = path
    else:
        folder = Path(d("out"))
    _mkdir(folder, str(folder))
    name = slugify(stem, "explore")
    for n in range(1, 100_000):
        candidate = folder / f"{name if n == 1 else f'{name}-{n}'}{allowed[0]}"
        if not candidate.exists() and not candidate.with_suffix("").exists():
            return candidate
    raise UserError(f"--out {str(folder)!r}: too many outputs named {name!r} already")


def _classes(specs: list[str]) -> list[int]:
    from ..imagenet import resolve_class

    return [resolve_class(spec) for spec in specs]


def _labels(indices: list[int]) -> list[str]:
    from ..imagenet import class_label

    return [class_label(i) for i in indices]


def _numbers(text: str, option: str) -> list[float]:
    """``"0.1,0.5, 1"`` → [0.1, 0.5, 1.0]."""
    from ..errors import UserError

    values = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise UserError(f"{option} {part!r}: not a number (write numbers separated by commas, e.g. 0.2,0.5,1)") from None
    if not values:
        raise UserError(f"{option} {text!r}: give at least one number")
    return values


def _check_frames(option: str, frames: int) -> None:
    from ..errors import UserError

    if frames < 2:
        raise UserError(f"{option} {frames}: an animation needs at least 2 frames")


def _recipe(command: str, biggan: str, **fields) -> dict:
    return {"command": command, "biggan": biggan, **fields, "software": f"textsleep {_version()}"}


def _save_grid(images, path: Path, recipe: dict, *, cols: int, pad: int) -> Path:
    from ..errors import UserError
    from ..media import make_grid, to_pil
    from ..outputs import save_png

    if pad < 0:
        raise UserError(f"--pad {pad}: must be 0 or more")
    save_png(to_pil(make_grid(images, cols=cols, pad=pad)), path, {"recipe": recipe})
    return path


def _save_animation(frames, path: Path, fps: float, recipe: dict) -> int:
    """Stream frame batches into a GIF/MP4; the recipe goes to ``PATH.json``.  Returns the frame count."""
    from ..media import VideoWriter
    from ..outputs import write_json

    with VideoWriter(path, fps=fps) as writer:
        for batch in frames:
            writer.add(batch)
    write_json(path.with_name(path.name + ".json"), {**recipe, "frames": writer.frames_written, "fps": fps})
    return writer.frames_written


def _check_animation(out: str | None, stem: str, fps: float) -> Path:
    from ..media import VIDEO_SUFFIXES, VideoWriter

    path = _out_path(out, stem, VIDEO_SUFFIXES)
    VideoWriter(path, fps=fps)  # checks the fps for the format before any model loads; opens nothing
    return path


# ---------------------------------------------------------------------------------------------- classes
def classes(query: Optional[str] = typer.Argument(None, metavar="[QUERY]", help="Part of a name, or an index; all 1000 classes when omitted.")) -> None:
    """List or search the 1000 ImageNet classes BigGAN knows (as "971) bubble")."""
    from ..errors import UserError
    from ..imagenet import class_label, search_classes

    hits = search_classes(query)
    if not hits:
        raise UserError(f"no ImageNet class is like {query!r}; run textsleep classes to list all 1000")
    q = " ".join((query or "").lower().split())
    q = re.sub(r"^([+-]?\d+)\s*\).*$", r"\1", q)  # "971) bubble" is looked up by its index
    if q and not any(q in name.lower() or q == str(i) for i, name in hits):
        echo_err(f"no class name contains {query!r}; the closest:")
    for index, _ in hits:
        typer.echo(class_label(index))


# ---------------------------------------------------------------------------------------------- sample
def sample(
    class_: list[str] = typer.Option(..., "--class", "-c", help="A class: index, name or '971) bubble' (repeatable; one grid row each)."),
    n: int = typer.Option(4, "--n", help="Samples per class (grid columns)."),
    seed: int = _seed_opt(),
    truncation: float = _truncation_opt(),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: Optional[str] = _out_opt(".png"),
    pad: int = _pad_opt(),
    batch: int = _batch_opt(),
) -> None:
    """Class-conditional samples with the truncation trick: a grid PNG and the single pictures beside it."""
    from .. import explore
    from ..media import to_pil
    from ..outputs import save_png, slugify

    indices = _classes(class_)
    path = _out_path(out, "sample-" + "-".join(str(i) for i in indices), _PNG)
    model, name = _generator(size, biggan, device, precision)
    images = explore.sample_grid(model, indices, n, seed, truncation, batch)
    labels = _labels(indices)
    recipe = _recipe("sample", name, classes=labels, n=n, seed=seed, truncation=truncation, layout="one row per class; column j uses the seed's j-th latent")
    _save_grid(images, path, recipe, cols=n, pad=pad)
    singles = path.with_suffix("")
    singles.mkdir(exist_ok=True)
    for k, image in enumerate(images):
        row, col = divmod(k, n)
        one = _recipe("sample", name, **{"class": labels[row]}, seed=seed, sample=col, truncation=truncation, note="the seed's latent number `sample` (from 0)")
        save_png(to_pil(image), singles / f"{row}-{col}-{slugify(labels[row])}.png", {"recipe": one})
    typer.echo(f"saved {path} ({len(indices)}x{n}) and {len(images)} pictures in {singles}")


# ---------------------------------------------------------------------------------------------- interpolate
def _endpoint_spec(spec: str, default_seed: int, which: str) -> dict:
    """An endpoint before the model loads: a run folder's saved latents, or a class with a seed (CLASS@SEED)."""
    from ..errors import UserError
    from ..imagenet import resolve_class
    from ..starts import load_latents

    if Path(spec).expanduser().exists():
        return {"run": spec, "saved": load_latents(spec)}
    if "/" in spec or "\\" in spec or spec.endswith(".pt"):
        raise UserError(f"{which} {spec!r}: no such run folder (an endpoint is a class, CLASS@SEED or a run folder)")
    name, at, raw = spec.rpartition("@")
    if at and raw.strip().isdigit() and name.strip():
        return {"class": resolve_class(name), "seed": int(raw)}
    if at:
        raise UserError(f"{which} {spec!r}: after '@' comes a seed, a whole number (e.g. bubble@3)")
    return {"class": resolve_class(spec), "seed": default_seed}


def _endpoint(model, spec: dict, truncation: float):
    from .. import explore

    if "run" in spec:
        return explore.run_point(model, spec["saved"], spec["run"])
    return explore.class_point(model, spec["class"], spec["seed"], truncation)


def _describe(point) -> dict:
    from ..imagenet import class_label

    recipe = dict(point.recipe)
    if "class" in recipe:
        recipe["class"] = class_label(recipe["class"])
    return recipe


def interpolate(
    a: str = typer.Argument(..., metavar="A", help="Start: a class (index, name, '971) bubble'), optionally CLASS@SEED, or a finished run folder."),
    b: str = typer.Argument(..., metavar="B", help="End: the same kinds as A."),
    frames: int = typer.Option(48, "--frames", help="Frames from A to B (at least 2)."),
    mode: str = typer.Option("linear", "--mode", help="How the latents move: linear or slerp."),
    space: str = typer.Option("both", "--space", help="What moves: both, class (z stays A's) or latent (classes stay A's)."),
    loop: bool = typer.Option(False, "--loop", help="Come back to A (seamless when repeated)."),
    fps: float = typer.Option(24.0, "--fps", help="Frames per second."),
    seed: int = typer.Option(0, "--seed", help="Seed of class endpoints without their own @SEED."),
    truncation: float = _truncation_opt(),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: Optional[str] = _out_opt(".gif or .mp4"),
    batch: int = _batch_opt(),
) -> None:
    """Morph A into B in class space, latent space or both, as a GIF or MP4 (frames stream to the file)."""
    from .. import explore
    from ..errors import UserError

    _check_frames("--frames", frames)
    if mode not in explore.MODES:
        raise UserError(f"--mode {mode!r}: allowed are {', '.join(explore.MODES)}")
    if space not in explore.SPACES:
        raise UserError(f"--space {space!r}: allowed are {', '.join(explore.SPACES)}")
    spec_a, spec_b = _endpoint_spec(a, seed, "A"), _endpoint_spec(b, seed, "B")
    stem = "-".join(Path(s["run"]).name if "run" in s else str(s["class"]) for s in (spec_a, spec_b))
    path = _check_animation(out, f"interpolate-{stem}", fps)
    model, name = _generator(size, biggan, device, precision)
    start, end = _endpoint(model, spec_a, truncation), _endpoint(model, spec_b, truncation)
    recipe = _recipe("interpolate", name, a=_describe(start), b=_describe(end), frames_a_to_b=frames, mode=mode, space=space, loop=loop, truncation=truncation)
    count = _save_animation(explore.interpolate(model, start, end, frames, mode=mode, space=space, loop=loop, batch=batch), path, fps, recipe)
    typer.echo(f"saved {path} ({count} frames)")


# ---------------------------------------------------------------------------------------------- breed
def breed(
    a: str = typer.Argument(..., metavar="A", help="Class A (index, name or '971) bubble')."),
    b: str = typer.Argument(..., metavar="B", help="Class B."),
    ratio: list[str] = typer.Option(["0.5"], "--ratio", help="Share of A in [0, 1]: y = r·A + (1−r)·B (repeatable, or 1,0.5,0)."),
    strip: Optional[int] = typer.Option(None, "--strip", help="A strip of N ratios from 1 (all A) to 0 (all B), instead of --ratio."),
    n: int = typer.Option(1, "--n", help="Latents (grid rows), from the seed."),
    seed: int = _seed_opt(),
    truncation: float = _truncation_opt(),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: Optional[str] = _out_opt(".png"),
    pad: int = _pad_opt(),
    batch: int = _batch_opt(),
) -> None:
    """Breed two classes: mix their class vectors with the same latent."""
    from .. import explore
    from ..errors import UserError

    if strip is not None:
        if strip < 2:
            raise UserError(f"--strip {strip}: a strip needs at least 2 ratios")
        ratios = [1 - k / (strip - 1) for k in range(strip)]
    else:
        ratios = [r for item in ratio for r in _numbers(item, "--ratio")]
    for r in ratios:
        explore.check_ratio(r)
    if n < 1:
        raise UserError(f"--n {n}: must be a whole number >= 1")
    ia, ib = _classes([a, b])
    path = _out_path(out, f"breed-{ia}-{ib}", _PNG)
    model, name = _generator(size, biggan, device, precision)
    seeds = [seed + k for k in range(n)]
    images = explore.breed(model, ia, ib, ratios, seeds, truncation, batch)
    recipe = _recipe("breed", name, a=_labels([ia])[0], b=_labels([ib])[0], ratios=ratios, seeds=seeds, truncation=truncation, layout="one row per seed, one column per ratio")
    _save_grid(images, path, recipe, cols=len(ratios), pad=pad)
    typer.echo(f"saved {path} ({n}x{len(ratios)})")


# ---------------------------------------------------------------------------------------------- hallucinate
def hallucinate(
    class_: str = typer.Argument(..., metavar="CLASS", help="The class (index, name or '971) bubble')."),
    n: int = typer.Option(4, "--n", help="Hallucinations (after the original)."),
    keep: float = typer.Option(0.5, "--keep", help="Latent values within ±keep·truncation are kept; the rest vary."),
    seed: int = _seed_opt(),
    truncation: float = _truncation_opt(),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: Optional[str] = _out_opt(".png"),
    pad: int = _pad_opt(),
    batch: int = _batch_opt(),
) -> None:
    """Background hallucination: keep the latent's values near zero, vary the rest with sin(); original first."""
    from .. import explore

    index = _classes([class_])[0]
    path = _out_path(out, f"hallucinate-{index}", _PNG)
    model, name = _generator(size, biggan, device, precision)
    images = explore.hallucinate(model, index, seed, n, truncation, keep, batch)
    recipe = _recipe("hallucinate", name, **{"class": _labels([index])[0]}, n=n, keep=keep, seed=seed, truncation=truncation, layout="original, then phases 2πk/n")
    _save_grid(images, path, recipe, cols=n + 1, pad=pad)
    typer.echo(f"saved {path} (1x{n + 1})")


# ---------------------------------------------------------------------------------------------- zoom
def zoom(
    class_: str = typer.Argument(..., metavar="CLASS", help="The class (index, name or '971) bubble')."),
    levels: str = typer.Option("0.25,0.5,0.75,1,1.25,1.5,1.75,2", "--levels", help="Values of a in z → −a·z/|z|, comma-separated, each > 0."),
    seed: int = _seed_opt(),
    truncation: float = _truncation_opt(),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: Optional[str] = _out_opt(".png"),
    pad: int = _pad_opt(),
    batch: int = _batch_opt(),
) -> None:
    """Natural zoom: z → −a·z/|z| for growing a; one picture per level, in a row."""
    from .. import explore

    values = _numbers(levels, "--levels")
    explore.check_levels(values)
    index = _classes([class_])[0]
    path = _out_path(out, f"zoom-{index}", _PNG)
    model, name = _generator(size, biggan, device, precision)
    images = explore.zoom(model, index, seed, values, truncation, batch)
    recipe = _recipe("zoom", name, **{"class": _labels([index])[0]}, levels=values, seed=seed, truncation=truncation)
    _save_grid(images, path, recipe, cols=len(values), pad=pad)
    typer.echo(f"saved {path} (1x{len(values)})")


# ---------------------------------------------------------------------------------------------- truncation sweep
def truncation_sweep(
    class_: list[str] = typer.Argument(..., metavar="CLASS...", help="Classes (one or more rows each)."),
    values: str = typer.Option("0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", "--values", help="Truncations in (0, 1], comma-separated (grid columns)."),
    n: int = typer.Option(1, "--n", help="Rows (latents) per class."),
    fresh: bool = typer.Option(False, "--fresh", help="A new latent in every cell (default: a row keeps its latent across columns)."),
    seed: int = _seed_opt(),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: Optional[str] = _out_opt(".png"),
    pad: int = _pad_opt(),
    batch: int = _batch_opt(),
) -> None:
    """One grid: rows are classes (× --n latents), columns truncation values."""
    from .. import explore
    from ..errors import UserError

    truncations = _numbers(values, "--values")
    explore.check_values(truncations)
    if n < 1:
        raise UserError(f"--n {n}: must be a whole number >= 1")
    indices = _classes(class_)
    path = _out_path(out, "truncation-sweep-" + "-".join(map(str, indices)), _PNG)
    model, name = _generator(size, biggan, device, precision)
    images = explore.truncation_sweep(model, indices, truncations, seed, n, fresh, batch)
    layout = "rows: classes × n latents; columns: truncations; " + ("a new latent per cell" if fresh else "a row keeps its latent")
    recipe = _recipe("truncation-sweep", name, classes=_labels(indices), values=truncations, n=n, fresh=fresh, seed=seed, layout=layout)
    _save_grid(images, path, recipe, cols=len(truncations), pad=pad)
    typer.echo(f"saved {path} ({len(indices) * n}x{len(truncations)})")


# ---------------------------------------------------------------------------------------------- loop
def loop(
    class_: str = typer.Argument(..., metavar="CLASS", help="The class (index, name or '971) bubble')."),
    seconds: float = typer.Option(4.0, "--seconds", help="Length of one loop."),
    fps: float = typer.Option(24.0, "--fps", help="Frames per second."),
    seed: int = _seed_opt(),
    truncation: float = _truncation_opt(),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: Optional[str] = _out_opt(".gif or .mp4"),
    batch: int = _batch_opt(),
) -> None:
    """A seamless latent loop, z(t) = z0·cos t + z1·sin t, as a GIF or MP4."""
    from .. import explore

    frames = round(seconds * fps)
    _check_frames(f"--seconds {seconds} at --fps {fps} gives", frames)
    index = _classes([class_])[0]
    path = _check_animation(out, f"loop-{index}", fps)
    model, name = _generator(size, biggan, device, precision)
    recipe = _recipe("loop", name, **{"class": _labels([index])[0]}, seconds=seconds, seed=seed, truncation=truncation)
    count = _save_animation(explore.loop(model, index, seed, frames, truncation, batch), path, fps, recipe)
    typer.echo(f"saved {path} ({count} frames)")


# ---------------------------------------------------------------------------------------------- invert
def invert(
    photo: str = typer.Argument(..., metavar="PHOTO", help="The picture to find in BigGAN's latent space (PNG, JPEG, …; its centre square is used)."),
    iterations: int = typer.Option(300, "--iterations", "-i", help="Optimisation steps."),
    lr: float = typer.Option(float(d("lr")), "--lr", help="Learning rate."),
    cutouts: int = typer.Option(32, "--cutouts", help="Random crops CLIP compares with the photo per step."),
    pixel_weight: float = typer.Option(500.0, "--pixel-weight", help="Weight of the low-resolution pixel loss against CLIP's similarity."),
    pixel_size: int = typer.Option(32, "--pixel-size", help="Side in pixels at which render and photo are compared."),
    candidates: int = typer.Option(8, "--candidates", help="Start from the best of K one-class starts (classes CLIP finds closest to the photo)."),
    seed: int = _seed_opt(),
    truncation: float = _truncation_opt(float(d("truncation"))),
    clip_model: str = typer.Option("ViT-B-32", "--clip-model", help="open_clip model name or JSON config path."),
    clip_pretrained: str = typer.Option("openai", "--clip-pretrained", help="open_clip pretrained tag or checkpoint file."),
    size: int = _size_opt(),
    biggan: Optional[str] = _biggan_opt(),
    device: str = _device_opt(),
    precision: str = _precision_opt(),
    out: str = typer.Option(d("out"), "--out", "-o", help="Folder for run folders."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Find latents and class vectors whose picture matches a photo; saves a run folder (--init / interpolate endpoint)."""
    from .. import explore
    from ..errors import UserError
    from ..models import load_clip, resolve_device, resolve_dtype
    from ..settings import DreamSettings

    settings = DreamSettings(  # validates the shared options and is the record's settings
        images=(photo,), iterations=iterations, lr=lr, cutouts=cutouts, seed=seed, size=size, biggan=biggan, truncation=truncation,
        clip_model=(clip_model,), clip_pretrained=(clip_pretrained,), device=device, precision=precision, out=out, ema_decay=0.99,
    )
    for option, value, low in (("--pixel-size", pixel_size, 1), ("--candidates", candidates, 1)):
        if value < low:
            raise UserError(f"{option} {value}: must be a whole number >= {low}")
    if pixel_weight < 0:
        raise UserError(f"--pixel-weight {pixel_weight!r}: must be >= 0")
    goal = explore.load_photo(photo, size)  # an unreadable photo fails before any model loads
    model, name = _generator(size, biggan, device, precision)
    if goal.shape[-1] != model.config.output_dim:  # --biggan named a model of another size
        goal = explore.load_photo(photo, model.config.output_dim)
    dev = resolve_device(device)
    clip = load_clip(clip_model, clip_pretrained, dev).to(dev, resolve_dtype(precision, dev))
    t0 = time.perf_counter()
    dream, start = explore.invert(
        model, clip, goal, seed=seed, truncation=truncation, lr=lr, cutouts=cutouts, pixel_weight=pixel_weight, pixel_size=pixel_size, candidates=candidates
    )
    first = float(explore.pixel_loss(dream.render(), goal, pixel_size)[0])
    bar = None if quiet else _bar(iterations)
    for step in dream.steps(iterations):
        if bar is not None:
            bar.update(1)
            bar.set_postfix(pixel=f"{step.losses['extra'] / max(pixel_weight, 1e-12):.4f}", clip=f"{step.score:.3f}", refresh=False)
    if bar is not None:
        bar.close()
    recipe = _recipe(
        "invert", name, photo=str(photo), iterations=iterations, lr=lr, cutouts=cutouts, pixel_weight=pixel_weight, pixel_size=pixel_size,
        candidates=candidates, seed=seed, truncation=truncation, clip_model=clip_model, clip_pretrained=clip_pretrained, start=start,
    )
    run_dir = _save_inversion(dream, goal, settings, recipe, name, first, time.perf_counter() - t0, out, Path(photo).stem)
    typer.echo(f"saved {run_dir} (pixel loss {first:.4f} → {recipe['final_pixel_loss']:.4f}); use it with --init {run_dir} or as an interpolate endpoint")


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="inverting", unit="step", dynamic_ncols=True)


def _save_inversion(dream, goal, settings, recipe: dict, biggan: str, first: float, seconds: float, out: str, stem: str) -> Path:
    """A run folder as a dream leaves one: image.png, latents.pt and run.json (plus target.png, the photo as compared)."""
    from .. import explore, outputs
    from ..media import to_pil
    from ..runs import RUN_FILES, RunFolder

    LATENTS_FILE = RUN_FILES["latents"]

    images = dream.render(ema=True)
    final = float(explore.pixel_loss(images, goal, recipe["pixel_size"])[0])
    score = dream.score(images)[0]
    recipe.update(first_pixel_loss=round(first, 6), final_pixel_loss=round(final, 6), clip_score=round(score, 5))
    run_dir = RunFolder.create(out, f"invert-{stem}").path
    averaged = dream.ema.averaged(dream.latents)
    outputs.save_checkpoint(
        run_dir / LATENTS_FILE,
        {
            "z": averaged["z"][0].detach().cpu(),
            "logits": averaged["logits"][0].detach().cpu(),
            "truncation": recipe["truncation"],
            "max_classes": None,
            "class_temperature": settings.class_temperature,
            "biggan": biggan,
            "seed": recipe["seed"],
            "step": dream.step_count,
        },
    )
    meta = {"prompt": "", "photo": recipe["photo"], "seed": str(recipe["seed"]), "step": str(dream.step_count), "clip_score": f"{score:.5f}", "recipe": recipe}
    outputs.save_png(to_pil(images[0]), run_dir / RUN_FILES["image"], meta)
    outputs.save_png(to_pil(goal[0]), run_dir / "target.png", {"photo": recipe["photo"]})
    outputs.write_json(
        run_dir / RUN_FILES["record"],
        {
            "textsleep": _version(),
            "kind": "invert",
            "status": "finished",
            "prompt": "",
            "seed": recipe["seed"],
            "seeds": [recipe["seed"]],
            "settings": settings.to_dict(),
            "invert": recipe,
            "models": {"biggan": biggan, "clip": [{"name": recipe["clip_model"], "pretrained": recipe["clip_pretrained"], "weight": 1.0}]},
            "steps_done": dream.step_count,
            "final_score": score,
            "seconds": round(seconds, 3),
            "files": {"image": "image.png", "target": "target.png", "record": "run.json", "latents": LATENTS_FILE},
        },
    )
    return run_dir


# ---------------------------------------------------------------------------------------------- registration
def register(app: typer.Typer) -> None:
    for name, func in (
        ("classes", classes),
        ("sample", sample),
        ("interpolate", interpolate),
        ("breed", breed),
        ("hallucinate", hallucinate),
        ("zoom", zoom),
        ("truncation-sweep", truncation_sweep),
        ("loop", loop),
        ("invert", invert),
    ):
        app.command(name)(cli_errors(func))
