import numpy as np
import pytest
import torch
from PIL import Image

from textsleep.errors import UserError
from textsleep.media import VideoWriter, centre_square, contact_sheet, make_grid, read_video, to_pil, to_uint8


def test_grid_size_and_padding():
    images = torch.zeros(5, 3, 10, 20)
    grid = make_grid(images, cols=3, pad=2, pad_value=1.0)
    assert grid.shape == (3, 2 * 10 + 3 * 2, 3 * 20 + 4 * 2)
    assert (
        grid[:, :2].eq(1).all()
        and grid[:, :, :2].eq(1).all()
        and grid[:, -2:].eq(1).all()
        and grid[:, :, -2:].eq(1).all()
    )
    assert grid[:, 12:14].eq(1).all() and grid[:, :, 22:24].eq(1).all()  # gutters between cells
    assert grid[:, 2:12, 2:22].eq(0).all()  # first cell
    assert grid[:, 14:24, 2 + 22 : 2 + 22 + 20].eq(0).all()  # fifth cell: row 1, column 1
    assert grid[:, 14:24, 2 + 2 * 22 : 2 + 2 * 22 + 20].eq(1).all()  # the sixth cell is empty
    assert grid.eq(0).sum() == 5 * 3 * 10 * 20  # every picture pixel is placed, nothing else is 0


def test_grid_places_pictures_in_row_order_and_handles_cols():
    images = torch.arange(6.0).div(10).view(6, 1, 1, 1).expand(6, 3, 4, 5)
    grid = make_grid(images, cols=2, pad=1, pad_value=0.9)
    assert grid.shape == (3, 3 * 4 + 4, 2 * 5 + 3)
    for i in range(6):
        r, c = divmod(i, 2)
        assert torch.allclose(grid[:, 1 + r * 5 : 5 + r * 5, 1 + c * 6 : 6 + c * 6], torch.tensor(i / 10))
    assert make_grid(torch.zeros(4, 3, 8, 8), pad=0).shape == (3, 16, 16)  # default: a square grid
    assert make_grid(torch.zeros(5, 3, 8, 8), pad=0).shape == (3, 16, 24)  # ceil(sqrt(5)) = 3 columns
    assert make_grid(torch.zeros(2, 3, 8, 8), cols=5, pad=0).shape == (3, 8, 16)  # cols capped at B, like imgrid
    assert make_grid(torch.zeros(3, 8, 8), pad=3).shape == (3, 14, 14)  # a single picture
    with pytest.raises(ValueError):
        make_grid(torch.zeros(2, 3, 8, 8), cols=0)


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_streams_and_reads_back(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    frames = torch.nn.functional.interpolate(
        torch.rand(12, 3, 6, 8, generator=torch.Generator().manual_seed(0)), size=(48, 64), mode="bilinear"
    )  # smooth, like pictures
    with VideoWriter(path, fps=12) as writer:
        for i in range(3):
            writer.add(frames[4 * i : 4 * i + 4])  # batches of frames
            assert writer.frames_written == 4 * (i + 1)
        assert not path.exists()  # only renamed into place when closed
    assert writer.frames_written == 12 and not list(tmp_path.glob(".*"))
    back = read_video(path)
    assert back.shape == (12, 48, 64, 3) and back.dtype == np.uint8
    # lossy (a palette per GIF frame, H.264), but each frame is clearly its own picture
    err = np.abs(back.astype(int) - to_uint8(frames)).mean(axis=(1, 2, 3))
    assert err.max() < 12
    assert np.abs(back[0].astype(int) - to_uint8(frames[1])).mean() > err[0] + 20


def test_gif_is_exact_for_few_colours_loops_and_keeps_time(tmp_path):
    colours = torch.rand(30, 3)
    frames = colours[:, :, None, None].expand(30, 3, 6, 7).clone()
    frames[:, :, :2, :2] = 0.5
    with VideoWriter(tmp_path / "a.gif", fps=24) as writer:
        writer.add(frames[0])
        writer.add(frames[1:])
    assert np.array_equal(read_video(tmp_path / "a.gif"), to_uint8(frames))
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.info["loop"] == 0 and gif.n_frames == 30
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert sum(durations) == 1250 and set(durations) <= {40, 50}  # 30 frames at 24 fps


def test_gif_frames_go_to_disk_as_they_come(tmp_path):
    sizes = []
    with VideoWriter(tmp_path / "s.gif") as writer:
        for _ in range(3):
            writer.add(torch.rand(3, 32, 32))
            (tmp,) = tmp_path.glob(".s.gif*")
            sizes.append(tmp.stat().st_size)
    assert sizes[0] > 32 * 32 // 2 and sizes[2] - sizes[1] > 32 * 32 // 2


def test_video_odd_sizes_and_failures(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4") as writer:
        writer.add(torch.rand(3, 3, 33, 35))
    assert read_video(tmp_path / "odd.mp4").shape == (3, 34, 36, 3)
    with VideoWriter(tmp_path / "odd.gif") as writer:
        writer.add(torch.rand(3, 3, 33, 35))
    assert read_video(tmp_path / "odd.gif").shape == (3, 33, 35, 3)
    for suffix in (".gif", ".mp4"):
        with pytest.raises(RuntimeError):
            with VideoWriter(tmp_path / f"broken{suffix}") as writer:
                writer.add(torch.rand(2, 3, 8, 8))
                raise RuntimeError("crash while writing")
        assert not (tmp_path / f"broken{suffix}").exists() and not list(tmp_path.glob(".broken*"))
    with VideoWriter(tmp_path / "empty.gif"):
        pass
    assert not (tmp_path / "empty.gif").exists()
    with pytest.raises(ValueError, match="differs"):
        with VideoWriter(tmp_path / "sizes.gif") as writer:
            writer.add(torch.rand(3, 8, 8))
            writer.add(torch.rand(3, 8, 10))
    assert not (tmp_path / "sizes.gif").exists()
    with pytest.raises(ValueError, match="closed"):
        writer.add(torch.rand(3, 8, 8))


def test_video_rejects_bad_suffix_and_fps(tmp_path):
    with pytest.raises(UserError, match=r"'\.avi'.*allowed: \.gif, \.mp4"):
        VideoWriter(tmp_path / "x.avi")
    with pytest.raises(UserError, match=r"'\(none\)'"):
        VideoWriter(tmp_path / "x")
    with pytest.raises(UserError, match="fps 0"):
        VideoWriter(tmp_path / "x.mp4", fps=0)
    with pytest.raises(UserError, match="fps 60.*mp4"):
        VideoWriter(tmp_path / "x.gif", fps=60)
    VideoWriter(tmp_path / "x.MP4", fps=60)  # suffix case does not matter


def test_to_pil_round_trip():
    x = torch.rand(3, 16, 24)
    image = to_pil(x)
    assert image.size == (24, 16) and image.mode == "RGB"
    back = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255
    assert (back - x).abs().max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(np.array(to_pil(x[None])), np.array(image))
    assert np.array(to_pil(torch.full((3, 2, 2), 7.0))).min() == 255  # clamped
    assert np.array(to_pil(torch.full((3, 2, 2), -1.0))).max() == 0
    with pytest.raises(ValueError):
        to_pil(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError):
        to_pil(torch.rand(1, 4, 4))


def test_contact_sheet():
    red = Image.new("RGB", (64, 32), "red")
    sheet = contact_sheet([red] * 3, ["a", "b", "a much longer caption that cannot fit"], cols=2, thumb=32, pad=4)
    assert sheet.size == (2 * 36 + 4, 2 * (32 + 16 + 4) + 4)
    assert sheet.getpixel((4 + 16, 4 + 16)) == (255, 0, 0)  # 32x16 thumbnail centred in its cell
    assert sheet.getpixel((4 + 16, 4 + 2)) == (255, 255, 255)
    assert sheet.getpixel((4 + 36 + 16, 4 + 52 + 16)) == (255, 255, 255)  # the fourth cell is empty
    caption = np.array(sheet.crop((4, 4 + 32, 4 + 32, 4 + 48)))
    assert (caption < 128).any()  # some dark caption text
    long_caption = np.array(sheet.crop((4 + 32, 4 + 52 + 32, 4 + 36, 4 + 52 + 48)))
    assert (long_caption == 255).all()  # cut to the thumbnail's width, nothing in the gutter
    assert red.size == (64, 32)  # the caller's image is untouched
    assert contact_sheet([red] * 5, list("abcde"), thumb=32, pad=4).size == (3 * 36 + 4, 2 * 52 + 4)
    with pytest.raises(ValueError):
        contact_sheet([red] * 2, ["one caption"])


def test_centre_square_crops_the_middle_of_a_wide_or_tall_picture_at_the_asked_size():
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, 20:40] = 255  # only the centre square is white
    square = centre_square(Image.fromarray(wide), 10)
    assert square.shape == (1, 3, 10, 10) and square.dtype == torch.float32
    assert torch.allclose(square, torch.ones(1, 3, 10, 10), atol=1e-6)
    tall = np.zeros((60, 20), dtype=np.uint8)  # greyscale: comes back as RGB
    tall[20:40] = 128
    assert torch.allclose(
        centre_square(Image.fromarray(tall, mode="L"), 5), torch.full((1, 3, 5, 5), 128 / 255), atol=1e-6
    )
