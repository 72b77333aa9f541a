"""Photo inversion on tiny random models: the loss it lowers, the run folder it leaves, its one-line errors."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from textsleep import explore
from textsleep.cli import app
from textsleep.errors import UserError
from textsleep.invert import invert, invert_photo, load_photo, pixel_loss
from textsleep.media import read_video
from textsleep.models import load_clip
from textsleep.render import render
from textsleep.testing import random_biggan

runner = CliRunner()
SIZE = 128


@pytest.fixture(scope="module")
def gan():
    return random_biggan(SIZE, channel_width=4)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.effect_mandelbrot((96, 64), (-2, -1.2, 1, 1.2), 60).convert("RGB").save(path)
    return path


def test_invert_lowers_its_loss(gan, tiny):
    clip = load_clip(tiny["clip_model"], tiny["clip_pretrained"], "cpu")
    point = explore.class_point(gan, 7, seed=9, truncation=1.0)
    with torch.inference_mode():
        target = render(gan, point.z[None], point.classes[None], point.truncation)
    dream, start = invert(gan, clip, target, seed=0, cutouts=4, ema_decay=0.0, candidates=3)
    assert start["candidates"] == 3 and len(start["scores"]) == 3
    before = pixel_loss(dream.render(), target).item()
    steps = list(dream.steps(15))
    after = pixel_loss(dream.render(), target).item()
    assert after < 0.5 * before, (before, after)
    assert steps[-1].losses["extra"] < steps[0].losses["extra"]
    assert pixel_loss(target, target).item() == 0


def test_load_photo_is_the_centre_square(photo):
    goal = load_photo(photo, 32)
    assert goal.shape == (1, 3, 32, 32) and 0 <= goal.min() and goal.max() <= 1
    with Image.open(photo) as im:
        centre = im.crop((16, 0, 80, 64)).resize((32, 32), Image.BICUBIC)
    assert torch.allclose(
        goal[0].permute(1, 2, 0) * 255, torch.from_numpy(np.asarray(centre, dtype=np.float32)), atol=0.5
    )


def test_invert_photo_calls_its_hook_every_step_and_leaves_a_run_folder(tiny, photo, tmp_path):
    seen = []
    clip = {"clip_model": tiny["clip_model"], "clip_pretrained": tiny["clip_pretrained"]}
    run_dir = invert_photo(
        photo,
        candidates=2,
        on_step=seen.append,
        iterations=3,
        cutouts=2,
        biggan=tiny["biggan"],
        device="cpu",
        precision="fp32",
        out=str(tmp_path / "runs"),
        **clip,
    )
    assert [step.index for step in seen] == [1, 2, 3] and run_dir == tmp_path / "runs" / "invert_photo"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["settings"]["iterations"] == 3 and record["invert"]["start"]["candidates"] == 2
    with pytest.raises(UserError, match=r"--pixel-size 0"):
        invert_photo(photo, pixel_size=0, out=str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------------------------- the command
def _run(args):
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_invert_writes_a_run_folder_that_dreams_and_morphs_start_from(gan_args, tiny, photo, tmp_path):
    clip = ["--clip-model", tiny["clip_model"], "--clip-pretrained", tiny["clip_pretrained"]]
    result = _run(
        [
            "invert",
            str(photo),
            "--iterations",
            "4",
            "--cutouts",
            "2",
            "--candidates",
            "2",
            *gan_args,
            *clip,
            "--out",
            str(tmp_path / "runs"),
            "--quiet",
        ]
    )
    run_dir = tmp_path / "runs" / "invert_photo"
    assert str(run_dir) in result.stdout and "pixel loss" in result.stdout
    assert {p.name for p in run_dir.iterdir()} == {"image.png", "target.png", "run.json", "latents.pt"}
    record = json.loads((run_dir / "run.json").read_text())
    assert record["kind"] == "invert" and record["steps_done"] == 4 and record["invert"]["photo"] == str(photo)
    assert f"{record['invert']['final_pixel_loss']:.4f}" in result.stdout
    latents = torch.load(run_dir / "latents.pt", weights_only=True)
    assert latents["z"].shape == (11, 128) and latents["logits"].shape == (11, 1000) and latents["truncation"] == 1.0
    out = tmp_path / "from-photo.gif"
    _run(["interpolate", str(run_dir), "bubble", "--frames", "3", *gan_args, "--out", str(out)])
    assert read_video(out).shape[0] == 3
    dream = _run(
        [
            "a photo",
            "--init",
            str(run_dir),
            "--iterations",
            "1",
            "--cutouts",
            "2",
            *gan_args,
            *clip,
            "--out",
            str(tmp_path / "dreams"),
            "--quiet",
        ]
    )
    assert dream.stdout.strip().endswith("image.png")


def test_invert_shows_its_progress_with_the_pixel_loss_and_passes_every_option(gan_args, tiny, photo, tmp_path):
    clip = ["--clip-model", tiny["clip_model"], "--clip-pretrained", tiny["clip_pretrained"]]
    options = ["--iterations", "3", "--cutouts", "2", "--candidates", "1", "--lr", "0.05", "--seed", "4"]
    options += ["--truncation", "0.8", "--pixel-weight", "200", "--pixel-size", "16"]
    result = _run(["invert", str(photo), *options, *gan_args, *clip, "--out", str(tmp_path / "runs")])
    assert "inverting: 100%" in result.stderr and "3/3" in result.stderr
    pixel = float(re.findall(r"pixel=([0-9.]+)", result.stderr)[-1])
    assert 0 < pixel < 1  # the mean squared difference of pictures in [0, 1], not its weighted share of the loss
    record = json.loads((tmp_path / "runs" / "invert_photo" / "run.json").read_text())
    assert {k: record["settings"][k] for k in ("iterations", "cutouts", "lr", "seed", "truncation")} == {
        "iterations": 3,
        "cutouts": 2,
        "lr": 0.05,
        "seed": 4,
        "truncation": 0.8,
    }
    assert (record["invert"]["pixel_weight"], record["invert"]["pixel_size"], record["invert"]["candidates"]) == (
        200.0,
        16,
        1,
    )


@pytest.mark.parametrize(
    "name, extra, fragments",
    [
        ("notes.txt", [], ["notes.txt", "not an image"]),
        ("missing.jpg", [], ["missing.jpg", "no such file"]),
        ("photo.jpg", ["--pixel-weight", "-1"], ["--pixel-weight -1.0", ">= 0"]),
        ("photo.jpg", ["--candidates", "0"], ["--candidates 0", ">= 1"]),
        ("photo.jpg", ["--size", "100"], ["--size 100", "128, 256, 512"]),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(gan_args, photo, tmp_path, name, extra, fragments):
    (tmp_path / "notes.txt").write_text("not a picture")
    result = runner.invoke(
        app, ["invert", str(tmp_path / name), *extra, *gan_args, "--out", str(tmp_path / "runs"), "--quiet"]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(f in errors[0] for f in fragments), result.output
    assert not (tmp_path / "runs").exists(), "nothing is written on bad input"
