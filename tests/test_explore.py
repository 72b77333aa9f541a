"""The latent-space explorer on a tiny random BigGAN-deep-128: the functions, and the commands end to end."""

import json
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from textsleep import explore
from textsleep.cli import app
from textsleep.errors import UserError
from textsleep.imagenet import resolve_class
from textsleep.media import read_video
from textsleep.render import num_latents, render
from textsleep.testing import random_biggan

runner = CliRunner()
SIZE = 128


@pytest.fixture(scope="module")
def gan():
    return random_biggan(SIZE, channel_width=4)


def _direct(gan, point: explore.Point) -> torch.Tensor:
    with torch.inference_mode():
        return render(gan, point.z[None], point.classes[None], point.truncation)[0]


def _class_render(gan, index: int, z: torch.Tensor, truncation: float) -> torch.Tensor:
    """One picture of a class with latent z (128,) at every input, rendered on its own."""
    L = num_latents(gan)
    return _direct(gan, explore.Point(z.expand(L, 128), explore.one_hot(index, L), truncation))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, atol=2e-5)


# ---------------------------------------------------------------------------------------------- sample
def test_sample_grid_rows_are_classes_columns_share_a_latent(gan):
    images = explore.sample_grid(gan, [1, 971], n=3, seed=5, truncation=0.4, chunk=2)
    assert images.shape == (6, 3, SIZE, SIZE)
    unit = explore.unit_latents(3, 5)
    assert unit.abs().max() <= 2  # truncated normal, ±2
    for k, (cls, col) in enumerate([(1, 0), (1, 1), (1, 2), (971, 0), (971, 1), (971, 2)]):
        assert _close(images[k], _class_render(gan, cls, unit[col] * 0.4, 0.4))
    assert not _close(images[0], images[1]) and not _close(images[0], images[3])
    assert torch.equal(explore.unit_latents(5, 5)[:3], unit)  # a sample does not depend on how many were asked for


# ---------------------------------------------------------------------------------------------- interpolate
@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_interpolation_starts_at_a_and_ends_at_b(gan, mode):
    a = explore.class_point(gan, 1, seed=0, truncation=0.4)
    b = explore.class_point(gan, 971, seed=1, truncation=0.7)  # another truncation too: it moves with the frames
    frames = torch.cat(list(explore.interpolate(gan, a, b, 7, mode=mode, chunk=3)))
    assert frames.shape == (7, 3, SIZE, SIZE)
    assert _close(frames[0], _direct(gan, a)) and _close(frames[-1], _direct(gan, b))
    assert not _close(frames[3], frames[0]) and not _close(frames[3], frames[-1])


def test_interpolation_loop_and_spaces(gan):
    a = explore.class_point(gan, 1, seed=0, truncation=0.5)
    b = explore.class_point(gan, 2, seed=1, truncation=0.5)
    frames = torch.cat(list(explore.interpolate(gan, a, b, 5, loop=True, chunk=4)))
    assert frames.shape[0] == 8  # A … B … and back, stopping just before A again
    assert _close(frames[4], _direct(gan, b)) and _close(frames[1], frames[7]) and not _close(frames[-1], frames[0])
    t = torch.tensor([0.0, 0.5, 1.0])
    z, classes, truncs = explore.mix(a, b, t, space="class")
    assert (
        torch.equal(z, a.z.expand(3, -1, -1))
        and torch.equal(classes[2], b.classes)
        and torch.equal(truncs, torch.full((3,), 0.5))
    )
    assert torch.allclose(classes[1].sum(-1), torch.ones(num_latents(gan)))  # a 50/50 class mixture
    z, classes, _ = explore.mix(a, b, t, space="latent", mode="slerp")
    assert torch.equal(classes, a.classes.expand(3, -1, -1)) and torch.equal(z[2], b.z) and not torch.equal(z[1], a.z)


def test_interpolation_streams_batches_without_rendering_ahead(gan):
    a, b = explore.class_point(gan, 1, 0, 0.4), explore.class_point(gan, 2, 1, 0.4)
    frames = explore.interpolate(gan, a, b, 100_000, chunk=2)
    started = time.perf_counter()
    first = next(frames)
    assert first.shape == (2, 3, SIZE, SIZE) and time.perf_counter() - started < 10  # 100,000 frames would take minutes


def test_slerp_is_exact_at_the_ends_and_keeps_the_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 128, generator=g), torch.randn(4, 128, generator=g)
    b = b / b.norm(dim=-1, keepdim=True) * a.norm(dim=-1, keepdim=True)
    assert torch.equal(explore.slerp(a, b, torch.zeros(4)), a) and torch.equal(explore.slerp(a, b, torch.ones(4)), b)
    mid = explore.slerp(a, b, torch.full((4,), 0.5))
    assert torch.allclose(mid.norm(dim=-1), a.norm(dim=-1), rtol=1e-4)
    assert torch.allclose(explore.slerp(a, a, torch.full((4,), 0.3)), a, atol=1e-5)  # parallel: no division by zero


def test_run_endpoint_uses_its_averaged_latents_and_refuses_another_size(gan):
    L = num_latents(gan)
    g = torch.Generator().manual_seed(3)
    saved = {
        "z": torch.randn(L, 128, generator=g).clamp(-2, 2),
        "logits": torch.randn(L, 1000, generator=g) - 3,
        "truncation": 0.8,
        "biggan": "biggan-deep-128",
        "seed": 3,
    }
    point = explore.run_point(gan, saved, "runs/a")
    assert torch.equal(point.classes, torch.sigmoid(saved["logits"])) and point.truncation == 0.8
    top = explore.run_point(gan, {**saved, "max_classes": 2, "class_temperature": 1.0}, "runs/a")
    assert top.classes.gt(0).sum(-1).eq(2).all()  # top-k runs come back as their top-k mixtures
    other = {"z": torch.zeros(13, 128), "logits": torch.zeros(13, 1000), "truncation": 1.0, "biggan": "biggan-deep-256"}
    with pytest.raises(UserError, match=r"biggan-deep-256.*13 latents.*takes 11.*--size 256"):
        explore.run_point(gan, other, "runs/big")


# ---------------------------------------------------------------------------------------------- breed
def test_breed_ratio_one_is_class_a_and_zero_is_class_b(gan):
    images = explore.breed(gan, 1, 971, [1.0, 0.5, 0.0], seeds=[4, 5], truncation=0.4, chunk=4)
    assert images.shape == (6, 3, SIZE, SIZE)
    z4 = explore.unit_latents(1, 4)[0] * 0.4
    assert _close(images[0], _class_render(gan, 1, z4, 0.4)) and _close(images[2], _class_render(gan, 971, z4, 0.4))
    assert not _close(images[1], images[0]) and not _close(images[1], images[2])
    assert _close(images[3], _class_render(gan, 1, explore.unit_latents(1, 5)[0] * 0.4, 0.4))  # second row: next seed
    with pytest.raises(UserError, match=r"--ratio 1.5.*between 0 and 1"):
        explore.breed(gan, 1, 2, [1.5], [0], 0.4)


# ---------------------------------------------------------------------------------------------- hallucinate, zoom
def test_hallucination_keeps_values_near_zero_and_varies_the_rest(gan):
    z = explore.unit_latents(1, 2)[0] * 0.5
    varied = explore.hallucinate_latents(z, 4, truncation=0.5, keep=0.5)
    near = z.abs() < 0.25
    assert varied.shape == (4, 128) and near.any() and (~near).any()
    assert torch.equal(varied[:, near], z[near].expand(4, -1))
    assert (varied[:, ~near] != z[~near]).all(dim=1).any() and not torch.equal(varied[0], varied[1])
    assert varied.abs().max() <= 2 * 0.5 + 1e-6  # stays within the truncation's range
    images = explore.hallucinate(gan, 1, seed=2, n=4, truncation=0.5)
    assert images.shape == (5, 3, SIZE, SIZE)
    assert _close(images[0], _class_render(gan, 1, z, 0.5)) and not any(_close(images[0], im) for im in images[1:])


def test_natural_zoom_moves_along_minus_sign_of_z(gan):
    z = explore.unit_latents(1, 0)[0]
    zs = explore.zoom_latents(z, [0.5, 1.0, 2.0])
    assert zs.shape == (3, 128)
    assert torch.equal(zs.abs(), torch.tensor([0.5, 1.0, 2.0])[:, None].expand(3, 128))
    assert (zs.sign() == -z.sign()).all()
    images = explore.zoom(gan, 1, 0, [0.5, 1.0, 2.0], truncation=0.4)
    assert images.shape == (3, 3, SIZE, SIZE) and not _close(images[0], images[2])
    with pytest.raises(UserError, match="> 0"):
        explore.zoom_latents(z, [0.5, 0.0])


# ---------------------------------------------------------------------------------------------- truncation sweep, loop
def test_truncation_sweep_same_latent_per_row_or_fresh_per_cell(gan):
    values = [0.2, 0.6, 1.0]
    images = explore.truncation_sweep(gan, [1, 2], values, seed=3, n=2, chunk=3)
    assert images.shape == (12, 3, SIZE, SIZE)
    unit = explore.unit_latents(4, 3)
    for row, cls in enumerate([1, 1, 2, 2]):
        for col, t in enumerate(values):
            assert _close(images[row * 3 + col], _class_render(gan, cls, unit[row] * t, t))
    fresh = explore.truncation_sweep(gan, [1], values, seed=3, fresh=True)
    fresh_unit = explore.unit_latents(3, 3)
    assert _close(fresh[1], _class_render(gan, 1, fresh_unit[1] * 0.6, 0.6)) and not _close(fresh[1], images[1])
    with pytest.raises(UserError, match=r"--values 1.5"):
        explore.truncation_sweep(gan, [1], [0.5, 1.5], seed=0)


def test_loop_is_seamless_and_streams(gan):
    z0, z1 = explore.unit_latents(2, 0) * 0.5
    zs = explore.loop_latents(z0, z1, 8, truncation=0.5)
    assert torch.allclose(zs[0], z0) and torch.allclose(zs[2], z1, atol=1e-6)  # t = 0 and t = π/2
    assert zs.abs().max() <= 1.0 + 1e-6  # within ±2·truncation
    around = torch.cat([zs, zs[:1]])  # the frame after the last is the first: no jump, no repeated frame
    steps = (around[1:] - around[:-1]).norm(dim=-1)
    assert steps.min() > 0 and steps.max() < 1.5 * steps.min(), steps
    batches = list(explore.loop(gan, 1, 0, frames=7, truncation=0.5, chunk=3))
    assert [b.shape[0] for b in batches] == [3, 3, 1]
    assert _close(batches[0][0], _class_render(gan, 1, z0, 0.5))


def test_animations_check_their_options_when_called_not_at_the_first_frame(gan):
    a, b = explore.class_point(gan, 1, 0, 0.4), explore.class_point(gan, 2, 1, 0.4)
    with pytest.raises(UserError, match="--frames 1"):
        explore.interpolate(gan, a, b, 1)
    with pytest.raises(UserError, match="--mode 'cubic'"):
        explore.interpolate(gan, a, b, 4, mode="cubic")
    with pytest.raises(UserError, match="at least 2 frames"):
        explore.loop(gan, 1, 0, frames=1, truncation=0.5)


# ---------------------------------------------------------------------------------------------- classes
def test_class_lookup_by_index_name_and_label():
    assert resolve_class(971) == resolve_class("971") == resolve_class("bubble") == resolve_class("971) bubble") == 971
    with pytest.raises(UserError, match=r"closest: 971\) bubble"):
        resolve_class("bubbel")


def test_classes_command_lists_searches_and_suggests():
    result = runner.invoke(app, ["classes"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1000 and "971) bubble" in result.stdout
    result = runner.invoke(app, ["classes", "retriever"])
    assert result.exit_code == 0 and "207) Golden Retriever" in result.stdout and len(result.stdout.splitlines()) >= 4
    assert runner.invoke(app, ["classes", "971) bubble"]).stdout.strip() == "971) bubble"
    result = runner.invoke(app, ["classes", "bubbel"])
    assert result.exit_code == 0 and "closest" in result.stderr and result.stdout.splitlines()[0] == "971) bubble"


# ---------------------------------------------------------------------------------------------- the commands
def _run(args):
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_sample_command_writes_a_padded_grid_singles_and_its_recipe(gan_args, tmp_path):
    out = tmp_path / "grid.png"
    _run(
        [
            "sample",
            "--class",
            "bubble",
            "--class",
            "207",
            "--n",
            "3",
            "--pad",
            "5",
            "--seed",
            "1",
            *gan_args,
            "--out",
            str(out),
        ]
    )
    with Image.open(out) as im:
        assert im.size == (3 * SIZE + 4 * 5, 2 * SIZE + 3 * 5)
        pixels = torch.from_numpy(np.array(im.convert("RGB")))
        recipe = json.loads(im.text["recipe"])
    assert (pixels[:5] == 255).all() and (pixels[:, SIZE + 5 : SIZE + 10] == 255).all()  # border and gutter
    assert (
        recipe["classes"] == ["971) bubble", "207) Golden Retriever"]
        and recipe["seed"] == 1
        and recipe["truncation"] == 0.4
        and recipe["n"] == 3
    )
    singles = sorted((tmp_path / "grid").glob("*.png"))
    assert len(singles) == 6 and singles[0].name == "0-0-971_bubble.png"
    with Image.open(singles[-1]) as im:
        assert im.size == (SIZE, SIZE) and json.loads(im.text["recipe"])["sample"] == 2


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_interpolate_and_loop_commands_write_animations_that_read_back(gan_args, tmp_path, suffix):
    out = tmp_path / f"morph{suffix}"
    _run(["interpolate", "bubble", "207@3", "--frames", "6", "--loop", "--mode", "slerp", *gan_args, "--out", str(out)])
    frames = read_video(out)
    assert frames.shape == (10, SIZE, SIZE, 3)
    recipe = json.loads(out.with_name(out.name + ".json").read_text())
    assert (
        recipe["a"]["class"] == "971) bubble"
        and recipe["b"]["seed"] == 3
        and recipe["frames"] == 10
        and recipe["mode"] == "slerp"
    )
    out = tmp_path / f"loop{suffix}"
    _run(["loop", "bubble", "--seconds", "0.5", "--fps", "10", *gan_args, "--out", str(out), "--batch", "2"])
    assert read_video(out).shape == (5, SIZE, SIZE, 3)


def test_grid_commands(gan_args, tmp_path):
    cases = [
        (["breed", "bubble", "207", "--strip", "4", "--n", "2"], (4, 2), "ratios", [1.0, 2 / 3, 1 / 3, 0.0]),
        (["breed", "bubble", "207", "--ratio", "0.25,0.75"], (2, 1), "ratios", [0.25, 0.75]),
        (["hallucinate", "bubble", "--n", "3"], (4, 1), "n", 3),
        (["zoom", "bubble", "--levels", "0.5,1,2"], (3, 1), "levels", [0.5, 1.0, 2.0]),
        (
            ["truncation-sweep", "bubble", "207", "--values", "0.3,1", "--n", "2", "--fresh"],
            (2, 4),
            "values",
            [0.3, 1.0],
        ),
    ]
    for i, (args, (cols, rows), key, value) in enumerate(cases):
        out = tmp_path / f"{i}.png"
        _run([*args, *gan_args, "--out", str(out), "--pad", "2"])
        with Image.open(out) as im:
            assert im.size == (cols * SIZE + (cols + 1) * 2, rows * SIZE + (rows + 1) * 2), args
            recipe = json.loads(im.text["recipe"])
        assert recipe["command"] == args[0] and recipe[key] == pytest.approx(value), recipe
    # without --out: a new name under the folder given, never over an earlier one
    first = _run(["zoom", "bubble", "--levels", "1", *gan_args, "--out", str(tmp_path / "grids")]).stdout
    second = _run(["zoom", "bubble", "--levels", "1", *gan_args, "--out", str(tmp_path / "grids")]).stdout
    assert first.split()[1].endswith("zoom_971.png") and second.split()[1].endswith("zoom_971-2.png")


def test_a_python_user_gets_the_same_recipe_stamped_files(tiny, tmp_path):
    render = explore.RenderOptions(biggan=tiny["biggan"], device="cpu", precision="fp32", chunk=2)
    grid = explore.GridOptions(out=str(tmp_path / "grids"), pad=0)
    saved = explore.save_zoom("bubble", explore.ZoomOptions(levels="0.5,1"), render, grid)
    assert saved.path == tmp_path / "grids" / "zoom_971.png" and (saved.rows, saved.cols) == (1, 2)
    with Image.open(saved.path) as im:
        assert im.size == (2 * SIZE, SIZE)
        recipe = json.loads(im.text["recipe"])
    assert recipe["command"] == "zoom" and recipe["levels"] == [0.5, 1.0] and recipe["class"] == "971) bubble"
    assert recipe["truncation"] == 0.4 and recipe["seed"] == 0 and recipe["software"].startswith("textsleep ")
    video = explore.AnimationOptions(out=str(tmp_path / "loop.gif"), fps=4.0)
    saved = explore.save_loop("bubble", explore.LoopOptions(seconds=1.0), render, video)
    assert saved.frames == 4 and read_video(saved.path).shape[0] == 4
    assert json.loads((tmp_path / "loop.gif.json").read_text())["frames"] == 4
    with pytest.raises(UserError, match="--levels 0.0"):  # options are checked as they are built, before any model
        explore.ZoomOptions(levels="0,1")


# ---------------------------------------------------------------------------------------------- bad input
def _other_size_run(folder):
    folder.mkdir()
    torch.save(
        {"z": torch.zeros(13, 128), "logits": torch.zeros(13, 1000), "truncation": 1.0, "biggan": "biggan-deep-256"},
        folder / "latents.pt",
    )
    return str(folder)


@pytest.mark.parametrize(
    "make_args, fragments",
    [
        (lambda tmp: ["sample", "--class", "bubbel"], ["unknown class 'bubbel'", "closest: 971) bubble"]),
        (lambda tmp: ["interpolate", "bubble", "retreiver"], ["'retreiver'", "closest:"]),
        (lambda tmp: ["breed", "bubble", "207", "--ratio", "1.5"], ["--ratio 1.5", "between 0 and 1"]),
        (lambda tmp: ["breed", "bubble", "207", "--ratio", "-0.1"], ["--ratio -0.1"]),
        (lambda tmp: ["interpolate", "bubble", "207", "--frames", "1"], ["--frames 1", "at least 2"]),
        (lambda tmp: ["loop", "bubble", "--seconds", "0.01"], ["at least 2 frames"]),
        (lambda tmp: ["interpolate", _other_size_run(tmp / "big"), "bubble"], ["biggan-deep-256", "--size 256"]),
        (lambda tmp: ["interpolate", "bubble", str(tmp / "nowhere" / "run")], ["no such run folder"]),
        (lambda tmp: ["interpolate", "bubble", "207", "--out", str(tmp / "morph.avi")], ["morph.avi", ".gif, .mp4"]),
        (lambda tmp: ["sample", "--class", "1", "--out", str(tmp / "grid.jpg")], ["grid.jpg", "allowed: .png"]),
        (lambda tmp: ["zoom", "bubble", "--levels", "1,x"], ["--levels 'x'", "not a number"]),
        (lambda tmp: ["truncation-sweep", "bubble", "--values", "0,0.5"], ["--values 0.0", "(0, 1]"]),
        (lambda tmp: ["interpolate", "bubble", "207", "--mode", "cubic"], ["--mode 'cubic'", "linear, slerp"]),
        (lambda tmp: ["sample", "--class", "1", "--truncation", "1.5"], ["--truncation 1.5", "(0, 1]"]),
        (lambda tmp: ["zoom", "bubble", "--batch", "0"], ["--batch 0", ">= 1"]),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(gan_args, tmp_path, make_args, fragments, one_line_error):
    args = make_args(tmp_path)
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    one_line_error(runner.invoke(app, [*args, *gan_args]), *fragments)
    assert not any(p.suffix in (".png", ".gif", ".mp4", ".json") for p in tmp_path.rglob("*")), (
        "nothing is written on bad input"
    )


def test_option_groups_become_options_and_reach_the_command_as_one_dataclass():
    import inspect

    from textsleep.options import with_settings

    @with_settings
    def command(x: int = 1, *, render: explore.RenderOptions, grid: explore.GridOptions):
        return render, grid

    params = inspect.signature(command).parameters
    assert list(params) == ["x", "size", "biggan", "device", "precision", "chunk", "out", "pad"]
    assert command(x=2, size=256, biggan=None, device="cpu", precision="fp32", chunk=3, out="a.png", pad=0) == (
        explore.RenderOptions(size=256, device="cpu", precision="fp32", chunk=3),
        explore.GridOptions(out="a.png", pad=0),
    )
    with pytest.raises(UserError, match="--batch 0"):  # building the group checks it
        command(x=2, size=256, biggan=None, device="cpu", precision="fp32", chunk=0, out=None, pad=0)
    assert "--batch" in runner.invoke(app, ["zoom", "--help"]).stdout


def test_unit_latents_are_a_truncated_normal():
    z = explore.unit_latents(4000, 0)
    assert z.abs().max() <= 2 and abs(z.mean().item()) < 0.02 and math.isclose(z.std().item(), 0.88, abs_tol=0.03)
