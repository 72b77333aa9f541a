"""The run-folder format: names, whole-or-nothing writes, the one-writer lock, several pictures, the record."""

import json

import pytest
import torch
from PIL import Image

from textsleep import DreamSettings, Status
from textsleep.errors import UserError
from textsleep.outputs import read_png_text
from textsleep.runs import RUN_FILES, RunFolder, RunRecord, read_record


def _save(folder, record, step, scores, **kw):
    """A save of random pictures (B, 3, 8, 8) and latents (B, 11, 128)/(B, 11, 1000) with these scores."""
    b = len(scores)
    pictures = torch.rand(b, 3, 8, 8, generator=torch.Generator().manual_seed(step))
    latents = {"z": torch.randn(b, 11, 128), "logits": torch.randn(b, 11, 1000)}
    folder.save(record, pictures, scores, latents, step=step, **kw)
    return pictures, latents


def test_create_never_reuses_a_folder(tmp_path):
    a = RunFolder.create(tmp_path, "Upside down tree!")
    b = RunFolder.create(tmp_path, "upside down tree")
    assert a.path.name == "upside_down_tree" and b.path.name == "upside_down_tree-2"
    with pytest.raises(UserError, match="--out .*cannot create"):
        (tmp_path / "file").write_text("x")
        RunFolder.create(tmp_path / "file" / "sub", "tree")


def test_files_round_trip(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    image = Image.new("RGB", (8, 8), (200, 10, 10))
    folder.save_picture(image, {"prompt": "tree", "settings": {"seed": 1}}, progress_step=7)
    assert read_png_text(folder.file("image")) == {"prompt": "tree", "settings": '{"seed": 1}'}
    assert (folder.path / "progress" / "000007.png").is_file()
    folder.write_record({"status": "running", "settings": {}})
    assert read_record(folder.path)["status"] == "running" and not folder.has_checkpoint()
    assert set(RUN_FILES.values()) >= {"image.png", "best.png", "run.json", "checkpoint.pt", "latents.pt"}


def test_a_save_writes_pictures_latents_checkpoint_and_record(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    record = RunRecord(DreamSettings(text="tree", seed=5, save_progress=True), status=Status.RUNNING)
    pictures, latents = _save(folder, record, 2, [0.2], checkpoint={"dream": {"step": 2}})
    _save(folder, record, 4, [0.1], checkpoint={"dream": {"step": 4}})  # worse: best.png stays step 2's
    assert sorted(p.name for p in folder.path.iterdir()) == sorted(
        ["image.png", "best.png", "progress", "checkpoint.pt", "latents.pt", "run.json"]
    )
    assert read_png_text(folder.file("best"))["step"] == "2" and read_png_text(folder.file("image"))["step"] == "4"
    meta = read_png_text(folder.file("image"))
    assert meta["prompt"] == "tree" and meta["seed"] == "5" and json.loads(meta["settings"])["seed"] == 5
    assert sorted(p.name for p in (folder.path / "progress").iterdir()) == ["000002.png", "000004.png"]
    with Image.open(folder.path / "progress" / "000002.png") as im:  # the picture as given, to the nearest level
        assert list(im.getpixel((0, 0))) == (pictures[0, :, 0, 0] * 255).round().int().tolist()
    saved = torch.load(folder.file("latents"), weights_only=True)
    assert set(saved) == {"z", "logits", "truncation", "max_classes", "class_temperature", "biggan", "seed", "step"}
    assert saved["z"].shape == (11, 128) and saved["step"] == 4 and saved["biggan"] == "biggan-deep-512"
    checkpoint = folder.load_checkpoint()
    assert checkpoint["dream"]["step"] == 4 and checkpoint["settings"]["seed"] == 5 and folder.has_checkpoint()
    run = read_record(folder.path)
    assert run["status"] == "running" and run["steps_done"] == 4 and run["kind"] == "dream"
    assert (run["final_score"], run["best_score"], run["best_step"]) == (0.1, 0.2, 2)
    again = RunRecord.read(folder.path)  # what a resumed run goes on from
    assert (again.steps_done, again.best_scores, again.best_steps, again.status) == (4, [0.2], [2], "running")


def test_a_save_cut_short_leaves_the_record_at_the_last_whole_one(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    record = RunRecord(DreamSettings(text="tree", seed=5))
    _save(folder, record, 2, [0.2], checkpoint={"dream": {"step": 2}})
    with pytest.raises(UserError, match="checkpoint.pt: cannot be written"):
        _save(folder, record, 4, [0.9], checkpoint={"dream": {"step": 4}, "unsaveable": lambda: None})
    assert record.steps_done == 2 and record.best_scores == [0.2] and read_record(folder.path)["steps_done"] == 2


def test_several_pictures_each_have_their_record_and_the_story_is_recorded(tmp_path):
    folder = RunFolder.create(tmp_path, "story")
    settings = DreamSettings(text="a ^ b", change_every=3, seed=7, num_images=2)
    record = RunRecord(settings, status=Status.FINISHED)
    _save(folder, record, 4, [0.3, 0.5])
    run = read_record(folder.path)
    assert [i["folder"] for i in run["images"]] == ["1-seed7", "2-seed8"] and run["final_score"] == 0.5
    assert run["story"]["at_saved_step"] == {"part": 2, "of": 2, "target": "b", "change_every": 3}
    one = read_record(folder.path / "2-seed8")
    assert one["seed"] == 8 and one["seeds"] == [8] and one["final_score"] == 0.5 and one["batch"]["index"] == 1
    assert "images" not in one and RunFolder.open(folder.path / "2-seed8").path == folder.path
    meta = read_png_text(folder.path / "1-seed7" / "image.png")
    assert json.loads(meta["settings"])["num_images"] == 1 and json.loads(meta["story"])["part"] == 2


def test_open_a_pictures_sub_folder_opens_the_whole_run(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    folder.write_record({"settings": {}})
    subs = folder.picture_dirs([5, 6])
    assert [p.name for p in subs] == ["1-seed5", "2-seed6"] and folder.picture_dirs([5]) == [folder.path]
    subs[0].mkdir()
    folder.write_record({"batch": {"folder": "..", "index": 0}}, subs[0])
    assert RunFolder.open(subs[0]).path == folder.path
    with pytest.raises(UserError, match="not a run folder"):
        RunFolder.open(tmp_path)


def test_the_lock_admits_one_writer_and_leaves_only_its_file_behind(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    with folder.lock():
        with pytest.raises(UserError, match="another textsleep process is dreaming into this run folder"):
            with RunFolder(folder.path).lock():
                pass
    with RunFolder(folder.path).lock():  # free again once released
        pass
    # the lock's file is never deleted (a deleted one could be held twice: see test_trust's three processes)
    assert [p.name for p in folder.path.iterdir()] == [".textsleep.lock"]


def test_a_damaged_record_is_named(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    folder.file("record").write_text('{"status": "runn')
    with pytest.raises(UserError, match=r"run.json: not readable JSON .*damaged or cut short"):
        read_record(folder.path)


def test_contact_sheet_and_keep_best(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    record = RunRecord(DreamSettings(text="tree", seed=1, num_images=3, keep="best"))
    _save(folder, record, 1, [0.1, 0.3, 0.2])
    dirs = folder.picture_dirs([1, 2, 3])
    folder.finish(record)
    with Image.open(folder.file("sheet")) as sheet:
        assert sheet.width > 3 * 8 and sheet.text["prompt"] == "tree"
    assert [d.exists() for d in dirs] == [False, True, False]
