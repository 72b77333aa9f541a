"""The run-folder format: names, whole-or-nothing writes, the one-writer lock, several pictures."""

import pytest
import torch
from PIL import Image

from textsleep.errors import UserError
from textsleep.outputs import read_png_text
from textsleep.runs import RUN_FILES, RunFolder, read_record


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
    folder.save_checkpoint({"dream": {"step": 7}})
    folder.save_latents({"z": torch.zeros(2, 128)})
    folder.write_record({"status": "running", "settings": {}})
    assert folder.load_checkpoint()["dream"]["step"] == 7 and folder.has_checkpoint()
    assert read_record(folder.path)["status"] == "running"
    assert sorted(p.name for p in folder.path.iterdir()) == sorted(
        ["image.png", "progress", "checkpoint.pt", "latents.pt", "run.json"]
    )
    assert set(RUN_FILES.values()) >= {"image.png", "best.png", "run.json", "checkpoint.pt", "latents.pt"}


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


def test_the_lock_admits_one_writer_and_leaves_nothing_behind(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    with folder.lock():
        with pytest.raises(UserError, match="another textsleep process is dreaming into this run folder"):
            with RunFolder(folder.path).lock():
                pass
    with RunFolder(folder.path).lock():  # free again once released
        pass
    assert list(folder.path.iterdir()) == []


def test_a_damaged_record_is_named(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    folder.file("record").write_text('{"status": "runn')
    with pytest.raises(UserError, match=r"run.json: not readable JSON .*damaged or cut short"):
        folder.read_record()


def test_contact_sheet_and_keep_best(tmp_path):
    folder = RunFolder.create(tmp_path, "tree")
    dirs = folder.picture_dirs([1, 2, 3])
    for i, d in enumerate(dirs):
        d.mkdir()
        folder.save_picture(Image.new("RGB", (16, 16), (80 * i, 0, 0)), {}, sub=d)
    sheet = folder.write_contact_sheet(dirs, ["a", "b", "c"], {"prompt": "tree"})
    assert Image.open(sheet).width > 3 * 16 and read_png_text(sheet)["prompt"] == "tree"
    folder.keep_only(dirs, best=1)
    assert [d.exists() for d in dirs] == [False, True, False]
