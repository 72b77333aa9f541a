import numpy as np
import pytest
import torch

from textsleep.errors import UserError
from textsleep.media import VideoWriter, contact_sheet, make_grid, read_video, to_pil


def test_grid_size_and_padding():
    images = torch.zeros(5, 3, 10, 20)
    grid = make_grid(images, cols=3, pad=2, pad_value=1.0)
    assert grid.shape == (3, 2 * 10 + 3 * 2, 3 * 20 + 4 * 2)
    assert grid[:, :2].eq(1).all() and grid[:, :, :2].eq(1).all()  # border
    assert grid[:, 2:12, 2:22].eq(0).all()  # first cell
    assert grid[:, 14:24, 2 + 2 * 22 : 2 + 2 * 22 + 20].eq(1).all()  # the sixth cell is empty
    assert make_grid(torch.zeros(4, 3, 8, 8), pad=0).shape == (3, 16, 16)  # default: a square grid


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_streams_and_reads_back(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    with VideoWriter(path, fps=12) as writer:
        for i in range(3):
            writer.add(torch.rand(4, 3, 48, 64))  # batches of frames
        assert not path.exists()  # only renamed into place when closed
    frames = read_video(path)
    assert writer.frames_written == 12 and frames.shape == (12, 48, 64, 3)


def test_video_odd_sizes_and_failures(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4") as writer:
        writer.add(torch.rand(3, 3, 33, 35))
    assert read_video(tmp_path / "odd.mp4").shape[1:3] == (34, 36)
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "broken.gif") as writer:
            writer.add(torch.rand(2, 3, 8, 8))
            raise RuntimeError("crash while writing")
    assert not (tmp_path / "broken.gif").exists() and not list(tmp_path.glob(".broken*"))
    with pytest.raises(UserError, match=r"'\.avi'.*\.gif, \.mp4"):
        VideoWriter(tmp_path / "x.avi")


def test_to_pil_round_trip_and_contact_sheet():
    x = torch.rand(3, 16, 24)
    image = to_pil(x)
    assert image.size == (24, 16)
    back = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    assert (back - x).abs().max() <= 0.5 / 255 + 1e-6
    sheet = contact_sheet([image] * 3, ["a", "b", "c"], cols=3, thumb=32, pad=4)
    assert sheet.size == (3 * 36 + 4, 32 + 16 + 4 + 4)
