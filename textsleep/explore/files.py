"""The explorer's pictures as files, each with the recipe that makes it again.

A grid is a PNG with its recipe in the PNG's text metadata (a sample also
leaves its single pictures beside it); an animation is a GIF or an MP4, by the
extension of ``out``, with its recipe in ``NAME.gif.json`` beside it.  Each
``save_*`` function checks its arguments, picks the path (``out`` itself, or a
new name in the folder ``out`` names, ``outputs/`` by default, never over an
earlier file), and only then loads the BigGAN, renders and writes; it returns
what it saved.

>>> saved = save_zoom("bubble", ZoomOptions(levels="0.5,1,2"), RenderOptions(size=128))  # doctest: +SKIP
>>> saved.path, saved.cols
(PosixPath('outputs/zoom_971.png'), 3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..imagenet import class_label, resolve_class
from ..media import VIDEO_SUFFIXES, VideoWriter, make_grid, to_pil
from ..outputs import save_png, slugify, write_json
from ..settings import DreamSettings
from ..starts import load_latents
from ..version import __version__
from .points import class_point, load_generator, run_point
from .settings import (
    AnimationOptions,
    BreedOptions,
    GridOptions,
    HallucinateOptions,
    InterpolateOptions,
    LoopOptions,
    RenderOptions,
    SampleOptions,
    TruncationSweepOptions,
    ZoomOptions,
    numbers,
)
from .walks import breed, hallucinate, interpolate, loop, sample_grid, truncation_sweep, zoom

__all__ = [
    "Saved",
    "save_sample",
    "save_interpolation",
    "save_breed",
    "save_hallucination",
    "save_zoom",
    "save_truncation_sweep",
    "save_loop",
]

_PNG = (".png",)


@dataclass(frozen=True)
class Saved:
    """What a ``save_*`` function wrote: a grid of ``rows`` × ``cols`` pictures, or an animation of ``frames``."""

    path: Path
    rows: int = 0
    cols: int = 0
    frames: int = 0
    singles: Path | None = None  # a sample's folder of single pictures


# ---------------------------------------------------------------------------------------------- paths and recipes
def _mkdir(folder: Path, given: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {given!r}: cannot create the folder {str(folder)!r} ({err.strerror or err})") from None


def _out_path(out: str | None, stem: str, allowed: tuple[str, ...]) -> Path:
    """``out`` itself (its extension must be one of ``allowed``), or a new ``stem`` name in a folder."""

    if out is not None:
        path = Path(out).expanduser()
        if path.suffix and not path.is_dir():
            if path.suffix.lower() not in allowed:
                raise UserError(f"--out {out!r}: unknown file type {path.suffix!r}; allowed: {', '.join(allowed)}")
            _mkdir(path.parent, out)
            return path
        folder = path
    else:
        folder = Path(DreamSettings.out)
    _mkdir(folder, str(folder))
    name = slugify(stem, "explore")
    for n in range(1, 100_000):
        candidate = folder / f"{name if n == 1 else f'{name}-{n}'}{allowed[0]}"
        if not candidate.exists() and not candidate.with_suffix("").exists():
            return candidate
    raise UserError(f"--out {str(folder)!r}: too many outputs named {name!r} already")


def _recipe(command: str, biggan: str, **fields) -> dict:
    return {"command": command, "biggan": biggan, **fields, "software": f"textsleep {__version__}"}


def _load(render: RenderOptions):
    return load_generator(render.size, render.biggan, render.device, render.precision)


def _grid(render: RenderOptions, grid: GridOptions, stem: str, draw: Callable, *, cols: int, command: str, **recipe):
    """Load the BigGAN, ``draw(model)`` the pictures and save them as a grid PNG with its recipe.

    Returns the grid's path, the pictures and the BigGAN's name.
    """
    path = _out_path(grid.out, stem, _PNG)
    model, name = _load(render)
    images = draw(model)
    save_png(to_pil(make_grid(images, cols=cols, pad=grid.pad)), path, {"recipe": _recipe(command, name, **recipe)})
    return path, images, name


def _animation(render: RenderOptions, video: AnimationOptions, stem: str, draw: Callable, *, command: str, **recipe):
    """Load the BigGAN and stream ``draw(model)``'s frame chunks into a GIF/MP4; the recipe goes to ``PATH.json``.

    ``draw`` returns the frame chunks and any recipe fields that need the model.
    """
    path = _out_path(video.out, stem, VIDEO_SUFFIXES)
    VideoWriter(path, fps=video.fps)  # checks the fps for the format before any model loads; opens nothing
    model, name = _load(render)
    frames, drawn = draw(model)
    with VideoWriter(path, fps=video.fps) as writer:
        for chunk in frames:
            writer.add(chunk)
    recipe = {**_recipe(command, name, **drawn, **recipe), "frames": writer.frames_written, "fps": video.fps}
    write_json(path.with_name(path.name + ".json"), recipe)
    return Saved(path, frames=writer.frames_written)


# ---------------------------------------------------------------------------------------------- grids
def save_sample(
    options: SampleOptions, render: RenderOptions = RenderOptions(), grid: GridOptions = GridOptions()
) -> Saved:
    """Class-conditional samples: a grid (one row per class) and each picture on its own in a folder beside it."""

    indices = [resolve_class(spec) for spec in options.classes]
    labels = [class_label(i) for i in indices]
    seed, truncation, n = options.seed, options.truncation, options.n
    path, images, name = _grid(
        render,
        grid,
        "sample-" + "-".join(map(str, indices)),
        lambda model: sample_grid(model, indices, n, seed, truncation, render.chunk),
        cols=n,
        command="sample",
        classes=labels,
        n=n,
        seed=seed,
        truncation=truncation,
        layout="one row per class; column j uses the seed's j-th latent",
    )
    singles = path.with_suffix("")
    singles.mkdir(exist_ok=True)
    for k, image in enumerate(images):
        row, col = divmod(k, n)
        one = _recipe(
            "sample",
            name,
            **{"class": labels[row]},
            seed=seed,
            sample=col,
            truncation=truncation,
            note="the seed's latent number `sample` (from 0)",
        )
        save_png(to_pil(image), singles / f"{row}-{col}-{slugify(labels[row])}.png", {"recipe": one})
    return Saved(path, rows=len(indices), cols=n, singles=singles)


def save_breed(
    a: str,
    b: str,
    options: BreedOptions = BreedOptions(),
    render: RenderOptions = RenderOptions(),
    grid: GridOptions = GridOptions(),
) -> Saved:
    """Children of classes A and B (their class vectors mixed, the same latent): one row per seed, a column a ratio."""

    ia, ib = resolve_class(a), resolve_class(b)
    ratios = options.ratios
    seeds = [options.seed + k for k in range(options.n)]
    path, _, _ = _grid(
        render,
        grid,
        f"breed-{ia}-{ib}",
        lambda model: breed(model, ia, ib, ratios, seeds, options.truncation, render.chunk),
        cols=len(ratios),
        command="breed",
        a=class_label(ia),
        b=class_label(ib),
        ratios=ratios,
        seeds=seeds,
        truncation=options.truncation,
        layout="one row per seed, one column per ratio",
    )
    return Saved(path, rows=options.n, cols=len(ratios))


def save_hallucination(
    class_: str,
    options: HallucinateOptions = HallucinateOptions(),
    render: RenderOptions = RenderOptions(),
    grid: GridOptions = GridOptions(),
) -> Saved:
    """A class's picture for the seed, then ``n`` background hallucinations of it, in a row."""

    index, n, o = resolve_class(class_), options.n, options
    path, _, _ = _grid(
        render,
        grid,
        f"hallucinate-{index}",
        lambda model: hallucinate(model, index, o.seed, n, o.truncation, o.keep, render.chunk),
        cols=n + 1,
        command="hallucinate",
        **{"class": class_label(index)},
        n=n,
        keep=o.keep,
        seed=o.seed,
        truncation=o.truncation,
        layout="original, then phases 2πk/n",
    )
    return Saved(path, rows=1, cols=n + 1)


def save_zoom(
    class_: str,
    options: ZoomOptions = ZoomOptions(),
    render: RenderOptions = RenderOptions(),
    grid: GridOptions = GridOptions(),
) -> Saved:
    """Natural zoom, z → −a·z/|z| for growing a: one picture per level, in a row."""

    index, levels, o = resolve_class(class_), numbers(options.levels, "--levels"), options
    path, _, _ = _grid(
        render,
        grid,
        f"zoom-{index}",
        lambda model: zoom(model, index, o.seed, levels, o.truncation, render.chunk),
        cols=len(levels),
        command="zoom",
        **{"class": class_label(index)},
        levels=levels,
        seed=o.seed,
        truncation=o.truncation,
    )
    return Saved(path, rows=1, cols=len(levels))


def save_truncation_sweep(
    classes: list[str],
    options: TruncationSweepOptions = TruncationSweepOptions(),
    render: RenderOptions = RenderOptions(),
    grid: GridOptions = GridOptions(),
) -> Saved:
    """One grid: rows are classes (× ``n`` latents), columns truncation values."""

    values, o = numbers(options.values, "--values"), options
    indices = [resolve_class(spec) for spec in classes]
    layout = "rows: classes × n latents; columns: truncations; " + (
        "a new latent per cell" if o.fresh else "a row keeps its latent"
    )
    path, _, _ = _grid(
        render,
        grid,
        "truncation-sweep-" + "-".join(map(str, indices)),
        lambda model: truncation_sweep(model, indices, values, o.seed, o.n, o.fresh, render.chunk),
        cols=len(values),
        command="truncation-sweep",
        classes=[class_label(i) for i in indices],
        values=values,
        n=o.n,
        fresh=o.fresh,
        seed=o.seed,
        layout=layout,
    )
    return Saved(path, rows=len(indices) * o.n, cols=len(values))


# ---------------------------------------------------------------------------------------------- animations
def _endpoint(spec: str, default_seed: int, which: str) -> dict:
    """An endpoint before the model loads: a run folder's saved latents, or a class with a seed (CLASS@SEED)."""

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


def _point(model, spec: dict, truncation: float):
    if "run" in spec:
        return run_point(model, spec["saved"], spec["run"])
    return class_point(model, spec["class"], spec["seed"], truncation)


def _described(point) -> dict:
    recipe = dict(point.recipe)
    if "class" in recipe:
        recipe["class"] = class_label(recipe["class"])
    return recipe


def save_interpolation(
    a: str,
    b: str,
    options: InterpolateOptions = InterpolateOptions(),
    render: RenderOptions = RenderOptions(),
    video: AnimationOptions = AnimationOptions(),
) -> Saved:
    """A morph of A into B (each a class, CLASS@SEED or a finished run folder), frames streamed to the file."""

    o = options
    spec_a, spec_b = _endpoint(a, o.seed, "A"), _endpoint(b, o.seed, "B")

    def draw(model):
        start, end = _point(model, spec_a, o.truncation), _point(model, spec_b, o.truncation)
        morph = interpolate(model, start, end, o.frames, mode=o.mode, space=o.space, loop=o.loop, chunk=render.chunk)
        return morph, {"a": _described(start), "b": _described(end)}

    stem = "-".join(Path(s["run"]).name if "run" in s else str(s["class"]) for s in (spec_a, spec_b))
    return _animation(
        render,
        video,
        f"interpolate-{stem}",
        draw,
        command="interpolate",
        frames_a_to_b=o.frames,
        mode=o.mode,
        space=o.space,
        loop=o.loop,
        truncation=o.truncation,
    )


def save_loop(
    class_: str,
    options: LoopOptions = LoopOptions(),
    render: RenderOptions = RenderOptions(),
    video: AnimationOptions = AnimationOptions(),
) -> Saved:
    """A seamless latent loop of one class, z(t) = z0·cos t + z1·sin t, ``seconds`` long at the video's fps."""

    index, o = resolve_class(class_), options
    frames = round(o.seconds * video.fps)
    return _animation(
        render,
        video,
        f"loop-{index}",
        lambda model: (loop(model, index, o.seed, frames, o.truncation, render.chunk), {}),
        command="loop",
        **{"class": class_label(index)},
        seconds=o.seconds,
        seed=o.seed,
        truncation=o.truncation,
    )
