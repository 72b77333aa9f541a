"""Whole dreams on tiny random models of the real classes, through the Python API."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from textsleep import Hook, Imagine, Status, UserError
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
    imagine = Imagine(text="tree", num_cutouts=3, text_min="snow", image_size=128, **options)
    assert imagine.settings.cutouts == 3 and imagine.prompts[-1].weight == -1.0 and imagine.settings.size == 128
    with pytest.raises(UserError, match="num_cutouts is big-sleep's name for cutouts"):
        Imagine(text="tree", num_cutouts=3, **tiny_options)


# ------------------------------------------------------------------------------------------------ stories
def _targets_seen(imagine, seen):
    from textsleep.dream import encode_prompts
    from textsleep.prompts import parse_prompts, story_parts

    def hook(im, step):
        clip = im.dream.judges[0].clip
        embeds = im.dream.judges[0].prompt_embeds
        for part, text in enumerate(story_parts(im.settings.text)):
            if torch.allclose(embeds, encode_prompts(clip, parse_prompts(text))[0].to(embeds)):
                seen.append((step.index, part))
                return
        seen.append((step.index, None))

    return hook


def test_a_story_moves_on_every_change_every_steps_and_resumes_at_its_part(tiny_options):
    story = "a quiet forest ^ a burning forest ^ grey ashes"
    options = {**tiny_options, "change_every": 2, "iterations": 7, "save_every": 1}
    seen = []
    straight = Imagine(story, **options, on_step=_targets_seen(None, seen))()
    assert seen == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2), (7, 2)]  # the last part holds to the end
    record = json.loads((straight / "run.json").read_text())
    assert [p["from_step"] for p in record["story"]["parts"]] == [1, 3, 5]
    assert record["story"]["at_saved_step"]["target"] == "grey ashes"
    assert json.loads(read_png_text(straight / "image.png")["story"])["part"] == 3
    assert straight.name == "a_quiet_forest"

    seen.clear()
    half = Imagine(story, **{**options, "iterations": 3})()
    assert json.loads((half / "run.json").read_text())["story"]["at_saved_step"]["part"] == 2
    Imagine(resume=half, iterations=7, on_step=_targets_seen(None, seen))()
    assert seen == [(4, 1), (5, 2), (6, 2), (7, 2)]
    assert np.array_equal(_pixels(straight / "image.png"), _pixels(half / "image.png"))


# ------------------------------------------------------------------------------------------------ patience
@pytest.fixture
def blind_clip(tiny, tmp_path):
    """A CLIP whose picture embedding ignores the picture: no step can ever score better."""
    state = torch.load(tiny["clip_pretrained"], weights_only=True)
    state["visual.conv1.weight"] = torch.zeros_like(state["visual.conv1.weight"])
    path = tmp_path / "blind.pt"
    torch.save(state, path)
    return str(path)


def test_patience_stops_a_dream_that_cannot_improve(tiny_options, blind_clip):
    imagine = Imagine(
        "tree", **{**tiny_options, "clip_pretrained": blind_clip, "iterations": 50, "patience": 3, "video": True}
    )
    run = imagine()
    record = json.loads((run / "run.json").read_text())
    assert imagine.stopped_early == 4 and record["steps_done"] == 4  # best at step 1, then 3 steps without better
    assert record["status"] == "finished" and record["stopped_early"]["step"] == 4
    assert (run / "best.png").is_file() and (run / "progress.mp4").is_file()


def test_patience_restarts_with_each_part_of_a_story(tiny_options, blind_clip):
    options = {**tiny_options, "clip_pretrained": blind_clip, "iterations": 30, "patience": 3, "change_every": 3}
    imagine = Imagine("a ^ b ^ c", **options)
    imagine()
    assert imagine.stopped_early == 10  # parts start at steps 4 and 7; the last part's best is at 7, then 3 more


def test_patience_on_the_command_line(tiny_options, blind_clip):
    from typer.testing import CliRunner

    from textsleep.cli import app

    args = [
        a
        for k, v in {**tiny_options, "clip_pretrained": blind_clip}.items()
        for a in (f"--{k.replace('_', '-')}", str(v))
    ]
    result = CliRunner().invoke(app, ["tree", *args, "--iterations", "50", "--patience", "2"])
    assert result.exit_code == 0, result.output
    assert "stopped at step 3: no better score for 2 steps" in result.output


def test_stop_saves_and_returns(tiny_options):
    def stop_at_two(imagine, step):
        if step.index == 2:
            imagine.stop()

    imagine = Imagine("tree", **{**tiny_options, "iterations": 100, "save_every": 50}, on_step=stop_at_two)
    run = imagine()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["steps_done"] == 2
    assert torch.load(run / "checkpoint.pt", weights_only=True)["dream"]["step"] == 2
    resumed = Imagine(resume=run, iterations=3)()
    assert json.loads((resumed / "run.json").read_text())["status"] == "finished"


class Recorder(Hook):
    """Notes each step and each close; stops the run, fails or is interrupted (Ctrl-C) at a step when asked."""

    def __init__(self, stop_at=None, fail_at=None, interrupt_at=None):
        self.steps, self.closed = [], []
        self.stop_at, self.fail_at, self.interrupt_at = stop_at, fail_at, interrupt_at

    def __call__(self, imagine, step):
        self.steps.append(step.index)
        if step.index == self.stop_at:
            imagine.stop()
        if step.index == self.fail_at:
            raise RuntimeError("out of memory")
        if step.index == self.interrupt_at:
            raise KeyboardInterrupt

    def close(self, imagine, status):
        self.closed.append((status, imagine.dream.step_count))


def test_hooks_see_every_step_and_are_closed(tiny_options):
    hook = Recorder()
    Imagine("tree", **tiny_options, on_step=[hook])()
    assert hook.steps == [1, 2, 3, 4] and hook.closed == [(Status.FINISHED, 4)]
    assert isinstance(hook.closed[0][0], Status) and hook.closed[0][0] == "finished"  # (a str too, as run.json has it)


def test_a_hook_is_closed_once_with_the_status_of_stop_ctrl_c_and_failure(tiny_options):
    stopped, interrupted, failed = Recorder(stop_at=2), Recorder(interrupt_at=3), Recorder(fail_at=3)
    run = Imagine("tree", **{**tiny_options, "iterations": 6}, on_step=stopped)()
    assert (
        stopped.closed == [(Status.INTERRUPTED, 2)]
        and json.loads((run / "run.json").read_text())["status"] == "interrupted"
    )
    imagine = Imagine("tree", **{**tiny_options, "iterations": 6}, on_step=interrupted)
    with pytest.raises(KeyboardInterrupt):
        imagine()
    record = json.loads((imagine.run_dir / "run.json").read_text())
    assert interrupted.closed == [(Status.INTERRUPTED, 3)] and record["status"] == "interrupted"
    assert (
        record["steps_done"] == 3
        and torch.load(imagine.run_dir / "checkpoint.pt", weights_only=True)["dream"]["step"] == 3
    )
    imagine = Imagine("tree", **{**tiny_options, "iterations": 6}, on_step=failed)
    with pytest.raises(RuntimeError, match="out of memory"):
        imagine()
    record = json.loads((imagine.run_dir / "run.json").read_text())
    assert failed.closed == [(Status.FAILED, 3)] and record["status"] == "failed" and record["steps_done"] == 2
    assert imagine.error == "RuntimeError: out of memory" == record["error"]


def test_a_plain_function_is_a_hook_and_anything_else_is_refused(tiny_options):
    seen = []
    Imagine("tree", **tiny_options, on_step=lambda imagine, step: seen.append(step.index))()
    assert seen == [1, 2, 3, 4]
    with pytest.raises(TypeError, match="not a hook"):
        Imagine("tree", **tiny_options, on_step=[42])


def test_run_dir_is_used_as_given(tiny_options, tmp_path):
    run = Imagine("tree", **tiny_options, run_dir=tmp_path / "mine" / "job-1")()
    assert run == tmp_path / "mine" / "job-1" and (run / "image.png").is_file()


# ------------------------------------------------------------------------------------------------ models handed in
def test_models_loaded_by_the_user_are_used_and_recorded(tiny, tiny_options):
    from textsleep import load_biggan, load_clip

    gan, clip = load_biggan(tiny["biggan"]), load_clip(tiny["clip_model"], tiny["clip_pretrained"])
    options = {k: v for k, v in tiny_options.items() if k not in ("biggan", "clip_model", "clip_pretrained")}
    imagine = Imagine("a cat", biggan=gan, clip=clip, **options)
    run = imagine()
    assert imagine.dream.biggan is gan and imagine.dream.judges[0].clip is clip  # used, not loaded again
    record = json.loads((run / "run.json").read_text())
    assert record["models"] == {
        "biggan": "biggan-deep-128",  # named by its size, from its config
        "clip": [{"name": clip.name, "pretrained": tiny["clip_pretrained"], "weight": 1.0}],
    }
    assert record["settings"]["size"] == 128 and record["settings"]["clip_model"] == [clip.name]
    with pytest.raises(UserError, match=r"size=256 disagrees with the model handed in \(128\)"):
        Imagine("a cat", biggan=gan, size=256, **options)
    with pytest.raises(UserError, match=r"clip='ViT-B-32': give a model from textsleep.load_clip"):
        Imagine("a cat", clip="ViT-B-32", **options)
