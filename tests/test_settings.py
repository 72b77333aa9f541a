import pytest

from textsleep import DreamSettings, UserError
from textsleep.errors import SettingError, for_command_line


@pytest.mark.parametrize(
    "change, message, flag",
    [
        ({"size": 300}, "size=300: allowed sizes are 128, 256, 512", "--size 300: allowed sizes are 128, 256, 512"),
        ({"truncation": 0.0}, "truncation=0.0: must be in (0, 1]", "--truncation 0.0: must be in (0, 1]"),
        ({"truncation": 1.5}, "truncation=1.5", "--truncation 1.5"),
        ({"cutouts": 0}, "cutouts=0", "--cutouts 0"),
        ({"iterations": 0}, "iterations=0", "--iterations 0"),
        ({"device": "tpu"}, "device='tpu'", "--device 'tpu'"),
        ({"precision": "int8"}, "precision='int8'", "--precision 'int8'"),
        ({"max_classes": 0}, "max_classes=0", "--max-classes 0"),
        ({"images": ("a.png",), "num_images": 0}, "num_images=0", "--num-images 0"),
        ({"clip_model": ("ViT-B-32:x",)}, "clip_model='ViT-B-32:x': weight 'x'", "--clip-model 'ViT-B-32:x'"),
        ({"text": "a ^ b"}, "give change_every=N, the steps", "give --change-every N, the steps"),
    ],
)
def test_bad_values_name_the_keyword_to_python_and_the_flag_to_the_command_line(change, message, flag):
    with pytest.raises(SettingError) as err:
        DreamSettings(**{"text": "x", **change})
    assert isinstance(err.value, UserError) and message in str(err.value) and "--" not in str(err.value)
    assert flag in for_command_line(err.value)


def test_round_trip_and_unknown_keys():
    s = DreamSettings(text="tree", images=("a.png",), seed=3)
    assert DreamSettings.from_dict(s.to_dict()) == s
    with pytest.raises(UserError, match="unknown setting"):
        DreamSettings.from_dict({"text": "x", "bogus": 1})
    assert s.biggan_name == "biggan-deep-512"
    assert s.replace(size=128).biggan_name == "biggan-deep-128"


# ------------------------------------------------------------------------------------------------ metadata
import dataclasses  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from textsleep.options import options, parse_options  # noqa: E402
from textsleep.settings import RESUMABLE, RUN_ONLY  # noqa: E402

_SAMPLE = {int: "3", float: "0.5", str: "x"}


def test_every_field_has_help_and_every_option_is_on_the_command_line():
    fields = {f.name: f for f in dataclasses.fields(DreamSettings)}
    assert all(len(f.metadata["help"]) > 10 for f in fields.values())
    names = {opt.name for opt in options()}
    assert names == set(fields) - {"text"}  # the prompt is the command's argument
    help_text = (
        CliRunner()
        .invoke(__import__("textsleep.cli", fromlist=["app"]).app, ["dream", "--help"], terminal_width=200)
        .output
    )
    for opt in options():
        assert opt.flag in help_text, opt.flag


def test_the_line_parser_takes_every_option_the_command_takes():
    for opt in options():
        if opt.kind is bool:
            assert parse_options([opt.flag]) == {opt.name: True}
            assert parse_options([f"--no-{opt.flag[2:]}"]) == {opt.name: False}
            continue
        value = _SAMPLE[opt.kind]
        want = opt.kind(value)
        assert parse_options([opt.flag, value]) == {opt.name: (want,) if opt.multiple else want}, opt.flag
        assert parse_options([f"{opt.flag}={value}"]) == {opt.name: (want,) if opt.multiple else want}, opt.flag
    assert parse_options(["--image", "a.png", "--image", "b.png"]) == {"images": ("a.png", "b.png")}
    with pytest.raises(UserError, match="--bogus"):
        parse_options(["--bogus", "1"])
    with pytest.raises(UserError, match="--seed 'x': .*integer"):
        parse_options(["--seed", "x"])


def test_resume_rules_come_from_the_fields():
    assert {"iterations", "save_every", "device", "out", "keep", "cutout_batch", "patience"} <= RESUMABLE
    assert not {"lr", "size", "text", "seed", "cutouts", "precision"} & RESUMABLE
    saved = DreamSettings(text="tree", seed=1)
    assert saved.resumed_with({"iterations": 50, "out": "elsewhere"}).iterations == 50
    assert saved.resumed_with({"lr": 0.07}) == saved  # the same value is no change
    for name in ("lr", "size", "cutouts"):
        with pytest.raises(UserError, match=f"--resume: {name} cannot change"):
            saved.resumed_with({name: {"lr": 0.5, "size": 128, "cutouts": 9}[name]})


def test_job_identity_leaves_out_the_run_only_fields(tmp_path):
    from textsleep.batch import plan_batch

    assert RUN_ONLY == {
        "device",
        "out",
        "save_every",
        "save_progress",
        "video",
        "cutout_batch",
        "upscale",
        "upscaler",
        "compile",
    }
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cube\n")
    ids = lambda defaults: [j.id for j in plan_batch(prompts, defaults).jobs]  # noqa: E731
    assert ids({"save_every": 5, "cutout_batch": 8, "compile": True}) == ids({})
    assert ids({"lr": 0.5}) != ids({})


def test_stories_need_change_every_and_no_empty_part():
    with pytest.raises(UserError, match="give change_every=N"):
        DreamSettings(text="a forest ^ ashes")
    with pytest.raises(UserError, match="part 2 is empty"):
        DreamSettings(text="a ^ ^ b", change_every=5)
    with pytest.raises(UserError, match="change_every=0"):
        DreamSettings(text="a ^ b", change_every=0)
    with pytest.raises(UserError, match="patience=0"):
        DreamSettings(text="a", patience=0)
    with pytest.raises(UserError, match="upscale=3: allowed are 2, 4"):
        DreamSettings(text="a", upscale=3)
