"""The latent-space explorer: ``classes``, ``sample``, ``interpolate``, ``breed``, ``hallucinate``, ``zoom``,
``truncation-sweep`` and ``loop``.

Each command parses, calls :mod:`textsleep.explore` and saves: grids as PNG
(the recipe in the PNG's text metadata), animations as GIF or MP4 by the
``--out`` extension (the recipe in a ``.json`` beside it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import explore
from ..errors import UserError
from ..imagenet import class_label, resolve_class, search_classes
from ..media import VIDEO_SUFFIXES, VideoWriter, make_grid, to_pil
from ..outputs import save_png, slugify, write_json
from ..starts import load_latents
from ..version import __version__
from .common import cli_errors, echo_err
from .common import settings_default as d
from .options import EXPLORE_TRUNCATION, AnimationOptions, ClassArg, GridOptions, Seed, Truncation, with_options

__all__ = ["register"]

_PNG = (".png",)


# ---------------------------------------------------------------------------------------------- helpers
def _mkdir(folder: Path, given: str) -> None:

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {given!r}: cannot create the folder {str(folder)!r} ({err.strerror or err})") from None


def _out_path(out: str | None, stem: str, allowed: tuple[str, ...]) -> Path:
    """``--out`` itself (its extension must be one of ``allowed``), or a new ``stem`` name in a folder (default
    outputs/).
    """

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

    return [resolve_class(spec) for spec in specs]


def _label(index: int) -> str:

    return class_label(index)


def _numbers(text: str, option: str) -> list[float]:
    """``"0.1,0.5, 1"`` → [0.1, 0.5, 1.0]."""

    values = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise UserError(
                f"{option} {part!r}: not a number (write numbers separated by commas, e.g. 0.2,0.5,1)"
            ) from None
    if not values:
        raise UserError(f"{option} {text!r}: give at least one number")
    return values


def _recipe(command: str, biggan: str, **fields) -> dict:
    return {"command": command, "biggan": biggan, **fields, "software": f"textsleep {__version__}"}


def _grid(grid: GridOptions, stem: str, draw: Callable, *, cols: int, command: str, **recipe):
    """Load the BigGAN, ``draw(model)`` the pictures and save them as a grid PNG with its recipe.

    Returns the grid's path, the pictures and the BigGAN's name.
    """

    if grid.pad < 0:
        raise UserError(f"--pad {grid.pad}: must be 0 or more")
    path = _out_path(grid.out, stem, _PNG)
    model, name = grid.load()
    images = draw(model)
    save_png(to_pil(make_grid(images, cols=cols, pad=grid.pad)), path, {"recipe": _recipe(command, name, **recipe)})
    return path, images, name


def _animation(video: AnimationOptions, stem: str, draw: Callable, *, command: str, **recipe) -> Path:
    """Load the BigGAN and stream ``draw(model)``'s frame batches into a GIF/MP4; the recipe goes to ``PATH.json``.

    ``draw`` returns the frame batches and any recipe fields that need the model.
    """

    path = _out_path(video.out, stem, VIDEO_SUFFIXES)
    VideoWriter(path, fps=video.fps)  # checks the fps for the format before any model loads; opens nothing
    model, name = video.load()
    frames, drawn = draw(model)
    with VideoWriter(path, fps=video.fps) as writer:
        for batch in frames:
            writer.add(batch)
    recipe = {**_recipe(command, name, **drawn, **recipe), "frames": writer.frames_written, "fps": video.fps}
    write_json(path.with_name(path.name + ".json"), recipe)
    typer.echo(f"saved {path} ({writer.frames_written} frames)")
    return path


# ---------------------------------------------------------------------------------------------- classes
def classes(
    query: Optional[str] = typer.Argument(
        None, metavar="[QUERY]", help="Part of a name, or an index; all 1000 classes when omitted."
    ),
) -> None:
    """List or search the 1000 ImageNet classes BigGAN knows (as "971) bubble")."""

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
@with_options
def sample(
    class_: Annotated[
        list[str],
        typer.Option("--class", "-c", help="A class: index, name or '971) bubble' (repeatable; one grid row each)."),
    ],
    n: Annotated[int, typer.Option("--n", help="Samples per class (grid columns).")] = 4,
    seed: Seed = 0,
    truncation: Truncation = EXPLORE_TRUNCATION,
    *,
    grid: GridOptions,
) -> None:
    """Class-conditional samples with the truncation trick: a grid PNG and the single pictures beside it."""

    indices = _classes(class_)
    labels = [_label(i) for i in indices]
    layout = "one row per class; column j uses the seed's j-th latent"
    path, images, name = _grid(
        grid,
        "sample-" + "-".join(map(str, indices)),
        lambda model: explore.sample_grid(model, indices, n, seed, truncation, grid.batch),
        cols=n,
        command="sample",
        classes=labels,
        n=n,
        seed=seed,
        truncation=truncation,
        layout=layout,
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
    typer.echo(f"saved {path} ({len(indices)}x{n}) and {len(images)} pictures in {singles}")


# ---------------------------------------------------------------------------------------------- interpolate
def _endpoint_spec(spec: str, default_seed: int, which: str) -> dict:
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


def _endpoint(model, spec: dict, truncation: float):

    if "run" in spec:
        return explore.run_point(model, spec["saved"], spec["run"])
    return explore.class_point(model, spec["class"], spec["seed"], truncation)


def _describe(point) -> dict:
    recipe = dict(point.recipe)
    if "class" in recipe:
        recipe["class"] = _label(recipe["class"])
    return recipe


@with_options
def interpolate(
    a: Annotated[
        str,
        typer.Argument(
            metavar="A",
            help="Start: a class (index, name, '971) bubble'), optionally CLASS@SEED, or a finished run folder.",
        ),
    ],
    b: Annotated[str, typer.Argument(metavar="B", help="End: the same kinds as A.")],
    frames: Annotated[int, typer.Option("--frames", help="Frames from A to B (at least 2).")] = 48,
    mode: Annotated[str, typer.Option("--mode", help="How the latents move: linear or slerp.")] = "linear",
    space: Annotated[
        str, typer.Option("--space", help="What moves: both, class (z stays A's) or latent (classes stay A's).")
    ] = "both",
    loop: Annotated[bool, typer.Option("--loop", help="Come back to A (seamless when repeated).")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of class endpoints without their own @SEED.")] = 0,
    truncation: Truncation = EXPLORE_TRUNCATION,
    *,
    video: AnimationOptions,
) -> None:
    """Morph A into B in class space, latent space or both, as a GIF or MP4 (frames stream to the file)."""

    explore.check_mix(mode, space)
    spec_a, spec_b = _endpoint_spec(a, seed, "A"), _endpoint_spec(b, seed, "B")

    def draw(model):
        start, end = _endpoint(model, spec_a, truncation), _endpoint(model, spec_b, truncation)
        morph = explore.interpolate(model, start, end, frames, mode=mode, space=space, loop=loop, batch=video.batch)
        return morph, {"a": _describe(start), "b": _describe(end)}

    stem = "-".join(Path(s["run"]).name if "run" in s else str(s["class"]) for s in (spec_a, spec_b))
    _animation(
        video,
        f"interpolate-{stem}",
        draw,
        command="interpolate",
        frames_a_to_b=frames,
        mode=mode,
        space=space,
        loop=loop,
        truncation=truncation,
    )


# ---------------------------------------------------------------------------------------------- breed
@with_options
def breed(
    a: Annotated[str, typer.Argument(metavar="A", help="Class A (index, name or '971) bubble').")],
    b: Annotated[str, typer.Argument(metavar="B", help="Class B.")],
    ratio: Annotated[
        list[str], typer.Option("--ratio", help="Share of A in [0, 1]: y = r·A + (1−r)·B (repeatable, or 1,0.5,0).")
    ] = ["0.5"],
    strip: Annotated[
        Optional[int],
        typer.Option("--strip", help="A strip of N ratios from 1 (all A) to 0 (all B), instead of --ratio."),
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Latents (grid rows), from the seed.")] = 1,
    seed: Seed = 0,
    truncation: Truncation = EXPLORE_TRUNCATION,
    *,
    grid: GridOptions,
) -> None:
    """Breed two classes: mix their class vectors with the same latent."""

    if strip is not None:
        if strip < 2:
            raise UserError(f"--strip {strip}: a strip needs at least 2 ratios")
        ratios = [1 - k / (strip - 1) for k in range(strip)]
    else:
        ratios = [r for item in ratio for r in _numbers(item, "--ratio")]
    for r in ratios:
        explore.check_ratio(r)  # before the model loads
    if n < 1:
        raise UserError(f"--n {n}: must be a whole number >= 1")
    ia, ib = _classes([a, b])
    seeds = [seed + k for k in range(n)]
    path, _, _ = _grid(
        grid,
        f"breed-{ia}-{ib}",
        lambda model: explore.breed(model, ia, ib, ratios, seeds, truncation, grid.batch),
        cols=len(ratios),
        command="breed",
        a=_label(ia),
        b=_label(ib),
        ratios=ratios,
        seeds=seeds,
        truncation=truncation,
        layout="one row per seed, one column per ratio",
    )
    typer.echo(f"saved {path} ({n}x{len(ratios)})")


# ---------------------------------------------------------------------------------------------- hallucinate
@with_options
def hallucinate(
    class_: ClassArg,
    n: Annotated[int, typer.Option("--n", help="Hallucinations (after the original).")] = 4,
    keep: Annotated[
        float, typer.Option("--keep", help="Latent values within ±keep·truncation are kept; the rest vary.")
    ] = 0.5,
    seed: Seed = 0,
    truncation: Truncation = EXPLORE_TRUNCATION,
    *,
    grid: GridOptions,
) -> None:
    """Background hallucination: keep the latent's values near zero, vary the rest with sin(); original first."""

    (index,) = _classes([class_])
    path, _, _ = _grid(
        grid,
        f"hallucinate-{index}",
        lambda model: explore.hallucinate(model, index, seed, n, truncation, keep, grid.batch),
        cols=n + 1,
        command="hallucinate",
        **{"class": _label(index)},
        n=n,
        keep=keep,
        seed=seed,
        truncation=truncation,
        layout="original, then phases 2πk/n",
    )
    typer.echo(f"saved {path} (1x{n + 1})")


# ---------------------------------------------------------------------------------------------- zoom
@with_options
def zoom(
    class_: ClassArg,
    levels: Annotated[
        str, typer.Option("--levels", help="Values of a in z → −a·z/|z|, comma-separated, each > 0.")
    ] = "0.25,0.5,0.75,1,1.25,1.5,1.75,2",
    seed: Seed = 0,
    truncation: Truncation = EXPLORE_TRUNCATION,
    *,
    grid: GridOptions,
) -> None:
    """Natural zoom: z → −a·z/|z| for growing a; one picture per level, in a row."""

    values = _numbers(levels, "--levels")
    explore.check_levels(values)  # before the model loads
    (index,) = _classes([class_])
    path, _, _ = _grid(
        grid,
        f"zoom-{index}",
        lambda model: explore.zoom(model, index, seed, values, truncation, grid.batch),
        cols=len(values),
        command="zoom",
        **{"class": _label(index)},
        levels=values,
        seed=seed,
        truncation=truncation,
    )
    typer.echo(f"saved {path} (1x{len(values)})")


# ---------------------------------------------------------------------------------------------- truncation sweep
@with_options
def truncation_sweep(
    class_: Annotated[list[str], typer.Argument(metavar="CLASS...", help="Classes (one or more rows each).")],
    values: Annotated[
        str, typer.Option("--values", help="Truncations in (0, 1], comma-separated (grid columns).")
    ] = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
    n: Annotated[int, typer.Option("--n", help="Rows (latents) per class.")] = 1,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="A new latent in every cell (default: a row keeps its latent across columns)."),
    ] = False,
    seed: Seed = 0,
    *,
    grid: GridOptions,
) -> None:
    """One grid: rows are classes (× --n latents), columns truncation values."""

    truncations = _numbers(values, "--values")
    explore.check_values(truncations)  # before the model loads
    indices = _classes(class_)
    layout = "rows: classes × n latents; columns: truncations; " + (
        "a new latent per cell" if fresh else "a row keeps its latent"
    )
    path, _, _ = _grid(
        grid,
        "truncation-sweep-" + "-".join(map(str, indices)),
        lambda model: explore.truncation_sweep(model, indices, truncations, seed, n, fresh, grid.batch),
        cols=len(truncations),
        command="truncation-sweep",
        classes=[_label(i) for i in indices],
        values=truncations,
        n=n,
        fresh=fresh,
        seed=seed,
        layout=layout,
    )
    typer.echo(f"saved {path} ({len(indices) * n}x{len(truncations)})")


# ---------------------------------------------------------------------------------------------- loop
@with_options
def loop(
    class_: ClassArg,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of one loop.")] = 4.0,
    seed: Seed = 0,
    truncation: Truncation = EXPLORE_TRUNCATION,
    *,
    video: AnimationOptions,
) -> None:
    """A seamless latent loop, z(t) = z0·cos t + z1·sin t, as a GIF or MP4."""

    frames = round(seconds * video.fps)
    (index,) = _classes([class_])
    _animation(
        video,
        f"loop-{index}",
        lambda model: (explore.loop(model, index, seed, frames, truncation, video.batch), {}),
        command="loop",
        **{"class": _label(index)},
        seconds=seconds,
        seed=seed,
        truncation=truncation,
    )


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
    ):
        app.command(name)(cli_errors(func))
