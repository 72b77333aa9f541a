"""Faults a long or unattended run meets, through the command line: each one line, a non-zero exit, nothing lost."""

import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from textsleep import Imagine, UserError
from textsleep.imagine import DreamFailed


def _cli(args, *, limit_bytes=None, timeout=180):
    def limit():  # a file-size limit stands in for a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [sys.executable, "-m", "textsleep", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit if limit_bytes else None,
    )


def _one_line(result, *fragments):
    assert result.returncode not in (0, None), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def _record(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _no_temporary_files(run: Path) -> None:
    assert not [p.name for p in run.rglob(".*") if p.name != ".textsleep.lock"], list(run.rglob(".*"))


# ------------------------------------------------------------------------------------------------ non-finite numbers
def test_a_generator_that_makes_nan_from_the_start_is_named(tiny, tiny_args, tmp_path):
    from textsleep.testing import write_biggan

    broken = write_biggan(tmp_path / "unconverged", size=128, channel_width=4)
    state = torch.load(broken / "pytorch_model.bin", weights_only=True)
    for key in [k for k in state if k.endswith("weight_u")]:
        state[key] = torch.zeros_like(state[key])  # spectral-norm vectors never converged: sigma 0
    torch.save(state, broken / "pytorch_model.bin")
    result = _cli(["tree", *tiny_args, "--biggan", str(broken), "--quiet"])
    _one_line(result, "step 1", "non-finite pictures from the start", str(broken))
    assert result.returncode == 2
    record = _record(tmp_path / "outputs" / "tree")
    assert record["status"] == "failed" and "step 1" in record["error"] and record["steps_done"] == 0


def test_nan_mid_dream_keeps_the_last_good_save(tiny_options):
    def poison(imagine, step):
        if step.index == 3:
            imagine.dream.latents.z.data.fill_(float("nan"))

    imagine = Imagine("tree", **{**tiny_options, "iterations": 6}, on_step=poison)
    with pytest.raises(DreamFailed, match=r"at step 4.*--precision fp32 or a lower --lr"):
        imagine()
    run = imagine.run_dir
    record = _record(run)
    assert record["status"] == "failed" and "step 4" in record["error"] and record["steps_done"] == 2
    assert torch.load(run / "checkpoint.pt", weights_only=True)["dream"]["step"] == 2
    from PIL import Image

    with Image.open(run / "image.png") as im:
        assert im.text["step"] == "2"
    resumed = Imagine(resume=run, iterations=4)()  # the kept checkpoint resumes
    assert _record(resumed)["status"] == "finished" and _record(resumed)["steps_done"] == 4


# ------------------------------------------------------------------------------------------------ the disk
def test_a_full_disk_names_the_file_and_keeps_what_was_saved(tiny_args, tmp_path):
    first = _cli(["tree", *tiny_args, "--iterations", "2", "--quiet"])
    assert first.returncode == 0, first.stderr
    run = tmp_path / "outputs" / "tree"
    before = {name: (run / name).read_bytes() for name in ("image.png", "checkpoint.pt", "run.json", "latents.pt")}
    result = _cli(
        ["--resume", str(run), "--iterations", "4", "--quiet"], limit_bytes=100_000
    )  # pictures fit, the checkpoint does not
    line = _one_line(result, "checkpoint.pt", "cannot be written", "what was saved there before is unchanged")
    assert "File too large" in line
    assert (run / "checkpoint.pt").read_bytes() == before["checkpoint.pt"]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["dream"]["step"] == 2
    assert _record(run)["status"] == "failed" and _record(run)["steps_done"] == 2
    _no_temporary_files(run)
    again = _cli(["--resume", str(run), "--iterations", "4", "--quiet"])  # space again: it goes on from step 2
    assert again.returncode == 0, again.stderr
    assert _record(run)["steps_done"] == 4


# ------------------------------------------------------------------------------------------------ damaged files
@pytest.mark.parametrize("name, cut", [("checkpoint.pt", 1000), ("run.json", 100)])
def test_a_damaged_file_is_named_on_resume(tiny_options, name, cut):
    run = Imagine("tree", **{**tiny_options, "iterations": 2})()
    data = (run / name).read_bytes()
    (run / name).write_bytes(data[:cut])
    with pytest.raises(UserError, match=f"{name}.*(damaged or cut short)"):
        Imagine(resume=run, iterations=4)
    result = _cli(["--resume", str(run), "--iterations", "4"])
    _one_line(result, str(run / name), "damaged or cut short")


# ------------------------------------------------------------------------------------------------ one writer
def test_one_writer_per_run_folder(tiny_args, tmp_path):
    run = tmp_path / "outputs" / "tree"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "textsleep",
            "tree",
            *tiny_args,
            "--iterations",
            "100000",
            "--save-every",
            "1",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        second = _cli(["--resume", str(run), "--iterations", "100000", "--quiet"])
        _one_line(second, str(run), "another textsleep process is dreaming into this run folder")
    finally:
        first.send_signal(signal.SIGKILL)  # a crash: the lock must not outlive it
        first.wait(timeout=60)
    done = _record(run)["steps_done"]
    third = _cli(["--resume", str(run), "--iterations", str(done + 1), "--quiet"])
    assert third.returncode == 0, third.stderr
    assert _record(run)["steps_done"] == done + 1 and _record(run)["status"] == "finished"
    _no_temporary_files(run)


def test_one_writer_in_one_process_too(tiny_options):
    run = Imagine("tree", **{**tiny_options, "iterations": 2})()
    seen = []

    def second_writer(imagine, step):
        with pytest.raises(UserError, match="another textsleep process"):
            Imagine(resume=run, iterations=8)()
        seen.append(step.index)
        imagine.stop()

    Imagine(resume=run, iterations=4, on_step=second_writer)()
    assert seen == [3]


# ------------------------------------------------------------------------------------------------ signals
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_term_and_hup_save_like_ctrl_c(tiny_args, tmp_path, sig, code):
    args = ["tree", *tiny_args, "--iterations", "100000", "--save-every", "1000"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "textsleep", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    err_seen: list[str] = []
    reader = threading.Thread(target=lambda: err_seen.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    run = tmp_path / "outputs" / "tree"
    deadline = time.monotonic() + 120
    while not re.search(r"\b[2-9]\d*/100000", "".join(err_seen)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the progress bar has counted a few steps, none saved yet (--save-every 1000)
    proc.send_signal(sig)
    out = proc.stdout.read()
    proc.wait(timeout=60)
    reader.join(timeout=10)
    err = "".join(err_seen)
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"textsleep --resume {run}" in err
    record = _record(run)
    assert record["status"] == "interrupted" and record["steps_done"] >= 2, out
    assert torch.load(run / "checkpoint.pt", weights_only=True)["dream"]["step"] == record["steps_done"]
    _no_temporary_files(run)


def test_no_signal_handler_at_import():
    code = (
        "import signal, textsleep, textsleep.cli, textsleep.imagine; "
        "print(signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, signal.getsignal(signal.SIGHUP) is signal.SIG_DFL)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ})
    assert out.stdout.split() == ["True", "True"], out.stderr
