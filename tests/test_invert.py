"""Photo inversion on tiny random models: the loss it lowers, the run folder it leaves, its one-line errors."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from textsleep import DreamSettings, Hook, Imagine, Status, explore
from textsleep.cli import app
from textsleep.errors import UserError
from textsleep.invert import invert, invert_photo, load_photo, pixel_loss
from textsleep.media import read_video
from textsleep.models import load_clip
from textsleep.render import render
from textsleep.runs import RunRecord
from textsleep.starts import load_latents
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
    steps = [dream.step() for _ in range(15)]
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


class _Seen(Hook):
    """A dream's hook, as the command line's progress bar is: the total, the step and its pixel loss; its close."""

    def __init__(self):
        self.seen, self.closed = [], []

    def __call__(self, run, step):
        self.seen.append((step.index, run.settings.iterations, step.losses["extra"]))

    def close(self, run, status):
        self.closed.append(status)


def test_invert_photo_calls_its_hooks_as_a_dreams_and_leaves_a_run_folder_as_a_dreams(tiny, photo, tmp_path):
    hook, seen = _Seen(), []
    clip = {"clip_model": tiny["clip_model"], "clip_pretrained": tiny["clip_pretrained"]}
    run_dir = invert_photo(
        photo,
        candidates=2,
        on_step=[hook, lambda run, step: seen.append(step.index)],
        iterations=3,
        cutouts=2,
        biggan=tiny["biggan"],
        device="cpu",
        precision="fp32",
        out=str(tmp_path / "runs"),
        **clip,
    )
    assert [i for i, _, _ in hook.seen] == [1, 2, 3] == seen and run_dir == tmp_path / "runs" / "invert_photo"
    assert all(total == 3 and extra > 0 for _, total, extra in hook.seen) and hook.closed == [Status.FINISHED]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["settings"]["iterations"] == 3 and record["invert"]["start"]["candidates"] == 2
    dreams = RunRecord(DreamSettings(text="a dream", seed=0)).to_json([run_dir])
    assert set(record) == set(dreams) | {"invert"} and record["kind"] == "invert" and record["status"] == "finished"
    assert record["starts"] == [record["invert"]["start"]] and record["final_scores"] == [record["final_score"]]
    latents = torch.load(run_dir / "latents.pt", weights_only=True)
    assert set(latents) == {"z", "logits", "truncation", "max_classes", "class_temperature", "biggan", "seed", "step"}
    assert latents["step"] == 3 and latents["biggan"] == tiny["biggan"] and latents["seed"] == 0
    with Image.open(run_dir / "image.png") as im:
        assert json.loads(im.text["invert"])["photo"] == str(photo) and im.text["step"] == "3"
    with Image.open(run_dir / "target.png") as im:
        assert im.text["photo"] == str(photo) and im.size == (SIZE, SIZE)


@pytest.mark.parametrize(
    "options, fragments",
    [
        ({"pixel_size": 0}, ["pixel_size=0"]),
        ({"video": True}, ["video=True", "no use for it"]),
        ({"text": "a cat", "num_images": 2}, ["text='a cat', num_images=2", "no use for them"]),
        ({"clip_model": ("ViT-B-32", "RN50")}, ["clip_model=('ViT-B-32', 'RN50')", "one CLIP model"]),
        ({"truncation": 2.0}, ["truncation=2.0"]),
    ],
)
def test_invert_photo_refuses_what_it_cannot_use_before_loading_anything(photo, tmp_path, options, fragments):
    with pytest.raises(UserError) as caught:
        invert_photo(photo, out=str(tmp_path / "none"), biggan=str(tmp_path / "no-such-biggan"), **options)
    assert all(f in str(caught.value) for f in fragments), str(caught.value)
    assert not (tmp_path / "none").exists()


def test_an_older_inversions_folder_still_starts_dreams_and_walks(gan, tiny_options, tmp_path):
    """A folder as inversions left it before they were written as dreams are: latents.pt and a shorter run.json."""
    old = tmp_path / "invert-photo"
    old.mkdir()
    point = explore.class_point(gan, 3, seed=1, truncation=1.0)
    logits = torch.logit(point.classes.clamp(1e-4, 1 - 1e-4))
    saved = {"z": point.z, "logits": logits, "truncation": 1.0, "max_classes": None, "class_temperature": 2.0}
    torch.save({**saved, "biggan": "biggan-deep-128", "seed": 0, "step": 300}, old / "latents.pt")
    record = {"textsleep": "0.1", "kind": "invert", "status": "finished", "prompt": "", "seed": 0, "steps_done": 300}
    (old / "run.json").write_text(json.dumps({**record, "invert": {"photo": "p.jpg"}, "settings": {}}))
    walked = explore.run_point(gan, load_latents(old), str(old))
    assert torch.allclose(walked.z, point.z) and walked.classes.argmax(-1).unique().tolist() == [3]
    imagine = Imagine("a photo", **{**tiny_options, "init": str(old), "iterations": 1})
    dream = imagine.prepare()
    assert imagine.record.starts == [{"init": str(old)}] and torch.allclose(dream.latents.z[0], point.z)


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
