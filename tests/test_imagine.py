"""Whole dreams on tiny random models of the real classes, through the Python API."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from textsleep import Imagine, UserError
from textsleep.outputs import read_png_text


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_steps_is_a_generator_that_writes_nothing(tiny_options, tmp_path):
    imagine = Imagine("upside down tree", **tiny_options)
    steps = list(imagine.steps())
    assert [s.index for s in steps] == [1, 2, 3, 4]
    assert all(np.isfinite(s.loss) and set(s.losses) == {"clip", "latent", "class"} for s in steps)
    assert not (tmp_path / "outputs").exists()
    assert imagine.image().size == (128, 128)


def test_whole_run_writes_its_folder(tiny_options, tmp_path):
    run = Imagine("upside down tree", **tiny_options)()
    assert run == tmp_path / "outputs" / "upside_down_tree"
    for name in ("image.png", "best.png", "run.json", "checkpoint.pt"):
        assert (run / name).is_file(), name
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["steps_done"] == 4 and record["seed"] == 7
    assert record["settings"]["cutouts"] == 4 and isinstance(record["final_score"], float)
    assert record["versions"]["torch"] == torch.__version__.split("+")[0] or record["versions"]["torch"]
    meta = read_png_text(run / "image.png")
    assert meta["prompt"] == "upside down tree" and meta["seed"] == "7"
    assert json.loads(meta["settings"])["iterations"] == 4
    # a second run with the same prompt never overwrites the first
    second = Imagine("upside down tree", **tiny_options)()
    assert second.name == "upside_down_tree-2"


def test_same_seed_same_picture_other_seed_other_picture(tiny_options, tmp_path):
    a = Imagine("a red cube", **tiny_options)()
    b = Imagine("a red cube", **tiny_options)()
    c = Imagine("a red cube", **{**tiny_options, "seed": 8})()
    assert np.array_equal(_pixels(a / "image.png"), _pixels(b / "image.png"))
    assert not np.array_equal(_pixels(a / "image.png"), _pixels(c / "image.png"))


def test_resume_continues_exactly(tiny_options):
    straight = Imagine("a lighthouse", **tiny_options)()
    half = Imagine("a lighthouse", **{**tiny_options, "iterations": 2})()
    assert json.loads((half / "run.json").read_text())["steps_done"] == 2
    resumed = Imagine(resume=half, iterations=4, quiet=True)()
    assert resumed == half
    assert json.loads((half / "run.json").read_text())["steps_done"] == 4
    assert np.array_equal(_pixels(straight / "image.png"), _pixels(resumed / "image.png"))


def test_resume_refuses_to_change_the_picture(tiny_options):
    run = Imagine("a lighthouse", **{**tiny_options, "iterations": 2})()
    with pytest.raises(UserError, match="truncation cannot change"):
        Imagine(resume=run, truncation=0.5)
    with pytest.raises(UserError, match="not a run folder"):
        Imagine(resume=run / "nowhere")


def test_progress_frames_and_video(tiny_options):
    run = Imagine("a lighthouse", **{**tiny_options, "save_progress": True, "video": True})()
    assert sorted(p.name for p in (run / "progress").iterdir()) == ["000002.png", "000004.png"]
    assert (run / "progress.mp4").stat().st_size > 0


def test_max_classes_and_truncation_dream(tiny_options):
    imagine = Imagine("a lighthouse", **{**tiny_options, "max_classes": 3, "truncation": 0.4})
    steps = list(imagine.steps())
    assert "class" not in steps[-1].losses
    assert imagine.dream.latents.z.abs().max() <= 0.8 + 1e-6
    classes = imagine.dream.latent_params()["classes"]
    assert ((classes > 0).sum(-1) == 3).all()


def test_image_and_negative_prompts(tiny_options, tmp_path):
    picture = tmp_path / "ref.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(picture)
    imagine = Imagine("a lighthouse", images=[f"{picture}:2"], negatives=["fog"], **tiny_options)
    assert [(p.kind, p.weight) for p in imagine.prompts] == [("text", 1.0), ("text", -1.0), ("image", 2.0)]
    assert len(list(imagine.steps())) == 4


def test_the_dream_lowers_its_loss(tiny_options):
    imagine = Imagine("a lighthouse", **{**tiny_options, "iterations": 30, "lr": 0.05, "augment": "none", "cutouts": 2})
    losses = [s.loss for s in imagine.steps()]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_big_sleep_keyword_names(tiny_options):
    options = {k: v for k, v in tiny_options.items() if k != "cutouts"}
    imagine = Imagine(text="tree", num_cutouts=3, text_min="snow", **options)
    assert imagine.settings.cutouts == 3 and imagine.prompts[-1].weight == -1.0
