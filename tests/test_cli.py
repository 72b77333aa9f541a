"""The command line: the main job, and every bad input giving one line, no traceback, a non-zero exit."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textsleep.cli import app

runner = CliRunner()


def _run(args):
    return runner.invoke(app, args, catch_exceptions=False)


def test_default_command_and_explicit_dream(tiny_args, tmp_path):
    result = _run(["upside down tree", *tiny_args, "--quiet"])
    assert result.exit_code == 0, result.output
    image = Path(result.output.strip().splitlines()[-1])
    assert image == tmp_path / "outputs" / "upside_down_tree" / "image.png" and image.is_file()
    result = _run(["dream", "upside down tree", *tiny_args, "--quiet"])
    assert result.exit_code == 0 and "upside_down_tree-2" in result.output


def test_help_shows_defaults_from_the_settings():
    result = _run(["dream", "--help"])
    assert result.exit_code == 0
    assert "--iterations" in result.output and "1000" in result.output and "--clip-pretrained" in result.output


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["   "], ["empty prompt"]),
        (["a:x"], ["'x' is not a number"]),
        (["tree", "--size", "300"], ["--size 300", "128, 256, 512"]),
        (["tree", "--truncation", "0"], ["--truncation 0.0", "(0, 1]"]),
        (["tree", "--truncation", "1.2"], ["--truncation 1.2"]),
        (["tree", "--cutouts", "0"], ["--cutouts 0"]),
        (["tree", "--image", "missing.png"], ["--image 'missing.png'", "no such file"]),
        (["tree", "--clip-model", "ViT-Q-99"], ["--clip-model 'ViT-Q-99'", "not an open_clip model"]),
        (["a forest ^ ^ ashes", "--change-every", "5"], ["part 2 is empty"]),
        (["a forest ^ ashes"], ["give --change-every N"]),
        (["a forest ^ ashes", "--change-every", "0"], ["--change-every 0"]),
        (["tree", "--patience", "0"], ["--patience 0"]),
        (["tree", "--upscale", "3"], ["--upscale 3", "2, 4"]),
        (["tree", "--bogus"], ["No such option: --bogus"]),
    ],
)
def test_bad_input_is_one_line(extra, fragments, tiny_args, one_line_error):
    # the bad value comes last so it wins over the tiny defaults
    one_line_error(_run([*extra[:1], *tiny_args, *extra[1:]]), *fragments)


def test_not_an_image(tiny_args, tmp_path, one_line_error):
    bad = tmp_path / "notes.png"
    bad.write_text("hello")
    one_line_error(_run(["tree", *tiny_args, "--image", str(bad)]), "not an image")


def test_biggan_folder_missing_a_file(tiny_args, tmp_path, one_line_error):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    one_line_error(_run(["tree", *tiny_args, "--biggan", str(folder)]), "pytorch_model.bin")


def test_biggan_of_the_wrong_architecture(tiny, tiny_args, tmp_path, one_line_error):
    from textsleep.testing import write_biggan

    other = write_biggan(tmp_path / "wide", size=128, channel_width=8)
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "config.json").write_text((Path(tiny["biggan"]) / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes((other / "pytorch_model.bin").read_bytes())
    result = _run(["tree", *tiny_args, "--biggan", str(folder)])
    one_line_error(result, "does not match", "size mismatch")


def test_biggan_with_extra_keys_is_rejected(tiny, tiny_args, tmp_path, one_line_error):
    import torch

    folder = tmp_path / "extra"
    folder.mkdir()
    (folder / "config.json").write_text((Path(tiny["biggan"]) / "config.json").read_text())
    state = torch.load(Path(tiny["biggan"]) / "pytorch_model.bin", weights_only=True)
    state["stray.weight"] = torch.zeros(1)
    del state["embeddings.weight"]
    torch.save(state, folder / "pytorch_model.bin")
    one_line_error(_run(["tree", *tiny_args, "--biggan", str(folder)]), "stray.weight", "embeddings.weight")


def test_unwritable_out(tiny_args, tmp_path, one_line_error):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one_line_error(_run(["tree", *tiny_args, "--out", str(blocker / "sub")]), "--out", "cannot create")


def test_long_prompt_warns(tiny_args):
    result = _run([" ".join(["word"] * 100), *tiny_args, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "cut off" in result.output


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args, env=None, **kw):
    env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "textsleep", *args], capture_output=True, text=True, env=env, timeout=120, **kw
    )


def test_offline_clip_fails_fast_with_advice(tiny, tmp_path):
    env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(tmp_path / "hf")}
    start = time.monotonic()
    result = _cli(["tree", "--biggan", tiny["biggan"], "--out", str(tmp_path), "--device", "cpu"], env)
    assert time.monotonic() - start < 30  # includes starting Python and importing torch
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ViT-B-32" in result.stderr and "openai" in result.stderr
    assert str(tmp_path / "hf") in result.stderr and "--clip-pretrained FILE" in result.stderr


def test_offline_biggan_fails_fast_with_advice(tiny, tmp_path):
    env = {"TEXTSLEEP_BIGGAN_URL": f"http://127.0.0.1:{_closed_port()}", "TEXTSLEEP_CACHE": str(tmp_path / "cache")}
    args = [
        "tree",
        "--size",
        "256",
        "--clip-model",
        tiny["clip_model"],
        "--clip-pretrained",
        tiny["clip_pretrained"],
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
    ]
    start = time.monotonic()
    result = _cli(args, env)
    assert time.monotonic() - start < 30
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "biggan-deep-256" in result.stderr and "--biggan" in result.stderr


def test_ctrl_c_saves_and_says_how_to_resume(tiny_args, tmp_path):
    args = ["tree", *tiny_args, "--iterations", "100000", "--save-every", "1", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "textsleep", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run = tmp_path / "outputs" / "tree"
    deadline = time.monotonic() + 120
    while not (run / "run.json").exists() and time.monotonic() < deadline:  # written after the first step
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and f"textsleep --resume {run}" in err
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "interrupted" and record["steps_done"] >= 1
    assert (run / "checkpoint.pt").is_file() and (run / "image.png").is_file()
