"""textsleep.upscale and `textsleep upscale` on tiny random Real-ESRGAN networks written in the
released files' format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from test_weights import _Server  # noqa: E402  (the Range-honouring file server of the BigGAN download tests)
from typer.testing import CliRunner

from textsleep import upscale as up
from textsleep import weights
from textsleep.cli import app
from textsleep.errors import UserError
from textsleep.outputs import read_png_text, save_png
from textsleep.testing import upscaler_state as released_state

runner = CliRunner()


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("upscalers")
    found = {}
    for scale in (4, 2):
        net, state = released_state(scale)
        torch.save(state, root / f"tiny_x{scale}plus.pth")
        found[scale] = root / f"tiny_x{scale}plus.pth"
        found[f"net{scale}"] = net
    return found


def picture(w: int, h: int, seed: int = 1) -> Image.Image:
    """A smooth picture with some detail (not noise, not flat)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    rgb = np.stack([np.sin(xx / 7 + c) * np.cos(yy / 5 - c) for c in range(3)], -1) * 0.4 + 0.5
    rgb += rng.normal(0, 0.03, rgb.shape)
    return Image.fromarray((rgb.clip(0, 1) * 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("scale", [4, 2])
def test_released_format_is_detected_with_its_scale(nets, scale):
    net = up.load_upscaler(nets[scale], scale=scale)
    assert net.scale == scale and net.descriptor.architecture.id == "ESRGAN"
    assert ("unshuffle" in net.descriptor.tags) == (scale == 2)
    # every tensor of the released layout landed on the same parameter of spandrel's class
    original = nets[f"net{scale}"].state_dict()
    loaded = net.descriptor.model.state_dict()
    assert list(original) == list(loaded) and all(torch.equal(original[k], loaded[k]) for k in original)
    big = up.upscale_image(picture(37, 29), scale=scale, upscaler=net, tile=0)
    assert big.size == (37 * scale, 29 * scale) and big.mode == "RGB"
    assert np.asarray(big).std() > 3  # a picture, not a flat or clipped field


def test_2x_really_unshuffles(nets):
    """The 2x network's first conv sees 12 channels: a 2x2 pixel-unshuffle of the picture, as in the released x2plus."""
    net = up.load_upscaler(nets[2], scale=2)
    first = net.descriptor.model.model[0]
    assert first.weight.shape[1] == 12
    seen = []
    handle = first.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    up.upscale_image(picture(40, 24), scale=2, upscaler=net, tile=0)
    handle.remove()
    assert seen == [(1, 12, 12, 20)]


# --------------------------------------------------------------------------------------------- tiles
def _counting(net: up.Upscaler, sizes: list) -> up.Upscaler:
    def call(x):
        sizes.append(tuple(x.shape[-2:]))
        return net.descriptor(x)

    return dataclasses.replace(net, descriptor=call)


def test_tiles_with_enough_overlap_equal_one_pass(nets):
    """Tolerance: at most 1 of 256 levels (float sums in another order can round the other way), nearly all equal.

    The 1-block network sees about 18 input pixels around each pixel; with an overlap of 80 the quarter dropped at
    each shared edge (20 px) covers that, so the tiled result is the one-pass result.
    """
    net = up.load_upscaler(nets[4], scale=4)
    image = picture(250, 180)
    whole = np.asarray(up.upscale_image(image, upscaler=net, tile=0), dtype=int)
    sizes: list = []
    tiled = np.asarray(up.upscale_image(image, upscaler=_counting(net, sizes), tile=96, overlap=80), dtype=int)
    assert sizes == [(90 + 80, 84 + 80)] * (2 * 3)  # ceil(180/96) x ceil(250/96) pieces, each grown by the overlap
    diff = np.abs(whole - tiled)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


def test_default_overlap_blends_seams_closely(nets):
    """Tolerance with the default overlap (32) and small tiles: at most 2 levels, mean under 0.05 level.

    For the 2x network this needs the pieces to start on even pixels (its pixel-unshuffle then groups the same
    2x2 blocks as one pass does); starting anywhere else gives a mean difference of about 0.13.
    """
    for scale in (4, 2):
        net = up.load_upscaler(nets[scale], scale=scale)
        image = picture(150, 110)
        whole = np.asarray(up.upscale_image(image, scale=scale, upscaler=net, tile=0), dtype=int)
        sizes: list = []
        tiled = np.asarray(up.upscale_image(image, scale=scale, upscaler=_counting(net, sizes), tile=64), dtype=int)
        assert len(sizes) == 2 * 3 and all(h <= 55 + 32 + 3 and w <= 50 + 32 + 3 for h, w in sizes), sizes
        diff = np.abs(whole - tiled)
        assert diff.mean() < 0.05 and diff.max() <= 2, (scale, diff.mean(), diff.max())


def test_tiles_without_blending_would_show_seams(nets):
    """The blending matters: plain abutting tiles (overlap 0) differ much more from one pass than blended ones."""
    net = up.load_upscaler(nets[4], scale=4)
    image = picture(150, 110)
    whole = np.asarray(up.upscale_image(image, upscaler=net, tile=0), dtype=int)
    abutting = np.abs(np.asarray(up.upscale_image(image, upscaler=net, tile=64, overlap=0), dtype=int) - whole).mean()
    blended = np.abs(np.asarray(up.upscale_image(image, upscaler=net, tile=64, overlap=32), dtype=int) - whole).mean()
    assert blended < abutting / 2


def test_alpha_is_kept(nets):
    rgba = picture(20, 16).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 90))
    big = up.upscale_image(rgba, upscaler=nets[4], tile=0)
    assert big.mode == "RGBA" and big.size == (80, 64) and big.getchannel("A").getextrema() == (90, 90)


# --------------------------------------------------------------------------------------------- files and runs
def test_upscale_file_carries_the_text_over_and_records_the_upscaler(nets, tmp_path):
    src = save_png(
        picture(24, 20), tmp_path / "tree.png", {"prompt": "upside down tree", "seed": 3, "settings": {"size": 128}}
    )
    dst = up.upscale_file(src, upscaler=nets[4])
    assert dst == tmp_path / "tree_x4.png"
    with Image.open(dst) as im:
        assert im.size == (96, 80)
    text = read_png_text(dst)
    assert text["prompt"] == "upside down tree" and json.loads(text["seed"]) == 3
    assert json.loads(text["settings"]) == {"size": 128}
    assert json.loads(text["upscaler"]) == {"name": "tiny_x4plus.pth", "scale": 4}
    with pytest.raises(UserError, match="tree_x4.png.*already exists"):
        up.upscale_file(src, upscaler=nets[4], overwrite=False)


def test_upscale_run_writes_beside_every_picture_and_keeps_image_png(nets, tmp_path):
    run = tmp_path / "run"
    for folder in (run, run / "0", run / "1", run / "1" / "deeper"):
        folder.mkdir(parents=True)
        save_png(picture(16, 12), folder / "image.png", {"prompt": "a"})
    (run / "notes").mkdir()
    before = {p: p.read_bytes() for p in run.rglob("image.png")}
    written = up.upscale_run(run, 2, nets[2])
    assert sorted(written) == sorted([run / "image_x2.png", run / "0" / "image_x2.png", run / "1" / "image_x2.png"])
    assert not (run / "1" / "deeper" / "image_x2.png").exists()
    assert {p: p.read_bytes() for p in run.rglob("image.png")} == before
    with Image.open(run / "0" / "image_x2.png") as im:
        assert im.size == (32, 24)
    assert up.upscale_run(run, 2, nets[2]) == written  # a finished run upscaled again replaces its _x2 files
    with pytest.raises(UserError, match="no image.png"):
        up.upscale_run(run / "notes", 2, nets[2])


# --------------------------------------------------------------------------------------------- downloads
@pytest.fixture
def served(nets, tmp_path, monkeypatch):
    """The tiny 4x file served as RealESRGAN_x4plus.pth from 127.0.0.1, with its own SHA-256 as the published one."""
    data = nets[4].read_bytes()
    server = _Server({"RealESRGAN_x4plus.pth": data, "RealESRGAN_x2plus.pth": nets[2].read_bytes()})
    monkeypatch.setenv("TEXTSLEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TEXTSLEEP_UPSCALER_URL", server.url)
    monkeypatch.setitem(
        weights.UPSCALERS,
        "RealESRGAN_x4plus",
        (weights.UPSCALERS["RealESRGAN_x4plus"][0], hashlib.sha256(data).hexdigest()),
    )
    yield server
    server.stop()


def test_known_names_are_the_release_assets_with_published_hashes():
    assert weights.UPSCALERS["RealESRGAN_x4plus"][0].endswith(
        "/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth"
    )
    assert weights.UPSCALERS["RealESRGAN_x2plus"][0].endswith(
        "/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth"
    )
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) for _, sha in weights.UPSCALERS.values())
    assert up.DEFAULT_UPSCALERS == {4: "RealESRGAN_x4plus", 2: "RealESRGAN_x2plus"}


def test_default_network_is_downloaded_once_then_served_from_the_cache(served, tmp_path, capfd):
    net = up.load_upscaler(scale=4, progress=True)
    cached = tmp_path / "cache" / "upscale" / "RealESRGAN_x4plus.pth"
    assert net.scale == 4 and cached.is_file() and served.gets("RealESRGAN_x4plus.pth") == [None]
    assert "RealESRGAN_x4plus.pth" in capfd.readouterr().err  # the progress bar
    served.stop()
    big = up.upscale_image(picture(10, 8), scale=4, upscaler=None, tile=0, progress=False)
    assert big.size == (40, 32)


def test_download_fetches_an_upscaler_ahead_and_doctor_lists_it(served, tmp_path, one_line_error):
    from typer.testing import CliRunner

    from textsleep.cli import app

    runner = CliRunner()
    before = runner.invoke(app, ["doctor"]).output
    assert any(line.startswith("RealESRGAN_x4plus") and "not cached" in line for line in before.splitlines())
    result = runner.invoke(app, ["download", "--no-biggan", "--no-clip", "--upscaler", "RealESRGAN_x4plus"])
    cached = tmp_path / "cache" / "upscale" / "RealESRGAN_x4plus.pth"
    assert result.exit_code == 0, result.output
    assert f"RealESRGAN_x4plus: {cached}" in result.output and cached.is_file()
    after = runner.invoke(app, ["doctor"]).output
    assert any(
        line.startswith("RealESRGAN_x4plus") and "not cached" not in line and str(cached) in line
        for line in after.splitlines()
    ), after
    one_line_error(
        runner.invoke(app, ["download", "--no-biggan", "--no-clip", "--upscaler", "bogus"]),
        "--upscaler 'bogus'",
        "RealESRGAN_x2plus",
    )


def test_a_cut_download_resumes_with_range(served, tmp_path):
    served.cuts = [100_000]
    up.load_upscaler(scale=4, progress=False)
    gets = served.gets("RealESRGAN_x4plus.pth")
    assert gets[0] is None and gets[1] == "bytes=100000-"


def test_a_file_with_the_wrong_hash_is_refused_and_not_kept(served, tmp_path):
    served.files["RealESRGAN_x4plus.pth"] = served.files["RealESRGAN_x2plus.pth"]  # a real network, but not this one
    with pytest.raises(UserError) as err:
        up.load_upscaler(scale=4, progress=False)
    message = str(err.value)
    assert (
        "RealESRGAN_x4plus.pth" in message
        and "wrong file" in message
        and "SHA-256" in message
        and "--upscaler PATH" in message
    )
    assert len(served.gets("RealESRGAN_x4plus.pth")) == 1  # not retried
    left = {p.name for p in (tmp_path / "cache" / "upscale").iterdir()}
    assert not left & {"RealESRGAN_x4plus.pth", "RealESRGAN_x4plus.pth.part", "RealESRGAN_x4plus.pth.sha256"}


def test_a_corrupted_cached_file_is_named(served, tmp_path):
    up.load_upscaler(scale=4, progress=False)
    cached = tmp_path / "cache" / "upscale" / "RealESRGAN_x4plus.pth"
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    with pytest.raises(UserError, match=re.escape(str(cached)) + ".*corrupted"):
        up.load_upscaler(scale=4, progress=False)


def test_offline_fails_within_seconds_in_one_line(tmp_path, monkeypatch, one_line_error):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TEXTSLEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TEXTSLEEP_UPSCALER_URL", f"http://127.0.0.1:{port}")
    picture(8, 8).save(tmp_path / "a.png")
    start = time.monotonic()
    result = runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "--scale", "2", "--device", "cpu"])
    assert time.monotonic() - start < 5
    one_line_error(result, f"127.0.0.1:{port}/RealESRGAN_x2plus.pth", "--upscaler PATH", "TEXTSLEEP_UPSCALER_URL")
    assert not (tmp_path / "a_x2.png").exists()


# --------------------------------------------------------------------------------------------- command line
def test_cli_writes_beside_then_refuses_to_overwrite(nets, tmp_path, one_line_error):
    save_png(picture(12, 10), tmp_path / "a.png", {"prompt": "a"})
    args = ["upscale", str(tmp_path / "a.png"), "--upscaler", str(nets[4]), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "a_x4.png")
    first = (tmp_path / "a_x4.png").stat().st_mtime_ns
    one_line_error(runner.invoke(app, args), "a_x4.png", "already exists", "--force")
    assert (tmp_path / "a_x4.png").stat().st_mtime_ns == first
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0


def test_cli_out_folder_and_file(nets, tmp_path, one_line_error):
    for name in ("a", "b"):
        picture(12, 10).save(tmp_path / f"{name}.png")
    pics = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    result = runner.invoke(
        app,
        ["upscale", *pics, "--scale", "2", "--upscaler", str(nets[2]), "--out", str(tmp_path / "big"), "--tile", "16"],
    )
    assert result.exit_code == 0, result.output
    for name in ("a", "b"):
        with Image.open(tmp_path / "big" / f"{name}_x2.png") as im:
            assert im.size == (24, 20)
    result = runner.invoke(app, ["upscale", pics[0], "--upscaler", str(nets[4]), "--out", str(tmp_path / "one.png")])
    assert result.exit_code == 0 and (tmp_path / "one.png").is_file()
    one_line_error(
        runner.invoke(app, ["upscale", *pics, "--upscaler", str(nets[4]), "--out", str(tmp_path / "two.png")]),
        "two.png",
        "give a folder",
    )


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--scale", "3"], ["--scale 3", "allowed are 2, 4"]),
        (["--tile", "8"], ["--tile 8"]),
        (["--upscaler", "RealESRGAN_x9"], ["'RealESRGAN_x9'", "RealESRGAN_x4plus, RealESRGAN_x2plus"]),
        (["--out", "x.jpg"], ["x.jpg", ".png"]),
    ],
)
def test_cli_bad_options_are_one_line(extra, fragments, tmp_path, one_line_error):
    picture(8, 8).save(tmp_path / "a.png")
    one_line_error(runner.invoke(app, ["upscale", str(tmp_path / "a.png"), *extra]), *fragments)


def test_cli_bad_files_are_one_line(nets, tmp_path, one_line_error):
    picture(8, 8).save(tmp_path / "a.png")
    a = str(tmp_path / "a.png")
    not_net = tmp_path / "notes.pth"
    not_net.write_text("hello")
    one_line_error(runner.invoke(app, ["upscale", a, "--upscaler", str(not_net)]), str(not_net), "not an upscaler")
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, other)
    one_line_error(runner.invoke(app, ["upscale", a, "--upscaler", str(other)]), str(other), "not an upscaler")
    one_line_error(
        runner.invoke(app, ["upscale", a, "--upscaler", str(nets[4]), "--scale", "2"]), "enlarges 4x", "--scale 4"
    )
    one_line_error(
        runner.invoke(app, ["upscale", str(tmp_path / "missing.png"), "--upscaler", str(nets[4])]),
        "missing.png",
        "no such picture",
    )
    (tmp_path / "text.png").write_text("not a picture")
    one_line_error(
        runner.invoke(app, ["upscale", str(tmp_path / "text.png"), "--upscaler", str(nets[4])]),
        "text.png",
        "not a picture",
    )


def test_without_spandrel_the_extra_is_named(nets, tmp_path, monkeypatch, one_line_error):
    monkeypatch.setitem(sys.modules, "spandrel", None)  # import spandrel now raises ImportError
    picture(8, 8).save(tmp_path / "a.png")
    one_line_error(
        runner.invoke(app, ["upscale", str(tmp_path / "a.png"), "--upscaler", str(nets[4])]),
        'pip install "textsleep[upscale]"',
    )


def test_check_upscale_fails_before_any_work(nets, monkeypatch):
    up.check_upscale(4)
    up.check_upscale(2, nets[2])
    with pytest.raises(UserError, match="allowed are 2, 4"):
        up.check_upscale(3)
    with pytest.raises(UserError, match="neither a known upscaler"):
        up.check_upscale(4, "nowhere.pth")
    monkeypatch.setitem(sys.modules, "spandrel", None)
    with pytest.raises(UserError, match=re.escape('pip install "textsleep[upscale]"')):
        up.check_upscale(4)


def test_a_dream_with_upscale_writes_image_x4_beside_image_png(served, tiny_options):
    from textsleep import Imagine

    run = Imagine("upside down tree", upscale=4, **tiny_options)()
    with Image.open(run / "image.png") as small, Image.open(run / "image_x4.png") as big:
        assert big.size == (small.width * 4, small.height * 4)
    text = read_png_text(run / "image_x4.png")
    assert "upside down tree" in json.dumps(text) and json.loads(text["upscaler"]) == {
        "name": "RealESRGAN_x4plus",
        "scale": 4,
    }


@pytest.mark.weights
def test_real_realesrgan_x4plus_enlarges_a_picture(tmp_path):
    big = up.upscale_image(picture(64, 48), scale=4, tile=32)
    assert big.size == (256, 192)
