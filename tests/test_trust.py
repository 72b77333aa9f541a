"""Files handed around and numbers typed by anyone, tried as an attacker or an unlucky user would: a run folder,
checkpoint, latents file or manifest that is damaged or hostile is one line naming it (exit 2, nothing overwritten),
a size-like setting has an upper bound, the run-folder lock holds against three processes, and the CLIP score does
not grow with the number of prompts."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from textsleep import DreamSettings, Imagine, UserError
from textsleep.cli import app
from textsleep.dream import Judge, encode_prompts, score_images
from textsleep.prompts import parse_prompts
from textsleep.runs import RunFolder
from textsleep.testing import random_clip

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny) -> Path:
    """A finished two-step dream on the tiny models (copied by each test that damages it)."""
    out = tmp_path_factory.mktemp("finished")
    options = {
        "biggan": tiny["biggan"],
        "clip_model": tiny["clip_model"],
        "clip_pretrained": tiny["clip_pretrained"],
        "cutouts": 4,
        "iterations": 2,
        "save_every": 2,
        "device": "cpu",
        "precision": "fp32",
        "seed": 7,
        "out": str(out),
    }
    return Imagine("tree", **options)()


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def _edit_record(run: Path, change) -> None:
    record = json.loads((run / "run.json").read_text())
    change(record)
    (run / "run.json").write_text(json.dumps(record))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- 4. records are input
def test_a_run_json_naming_an_internal_url_is_not_fetched_on_resume(run, one_line_error):
    asked = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/internal-admin"
    try:
        _edit_record(run, lambda r: r["settings"].update(biggan=url))
        before = _files(run)
        result = _cli("dream", "--resume", run, "--iterations", "4")
        assert result.exit_code == 2
        one_line_error(result, "run.json", url, f"--biggan {url}")
        assert asked == [] and _files(run) == before
        with pytest.raises(UserError, match="fetched only when you give it again"):
            Imagine(resume=run, iterations=4)
        # given again, it is the user's own choice: the record is accepted (the generator loads when the dream runs)
        assert Imagine(resume=run, iterations=4, biggan=url).record.settings.biggan == url
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_manifest_folder_leading_out_of_the_batch_is_refused(tmp_path, tiny_args, one_line_error):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red cube\n")
    folder = tmp_path / "batch"
    dream_args = [a for i, a in enumerate(tiny_args) if "--out" not in tiny_args[max(i - 1, 0) : i + 1]]
    args = ["batch", prompts, *dream_args, "--out", folder, "--quiet", "--iterations", "2"]
    assert _cli(*args).exit_code == 0
    target = tmp_path / "elsewhere" / "x"
    manifest = folder / "manifest.jsonl"
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    records[0].update(folder="../../../../" + str(target).lstrip("/"), status="failed")
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    for again in (args + ["--retry-failed"], ["batch", "--status", folder]):
        result = _cli(*again)
        assert result.exit_code == 2
        one_line_error(result, "manifest.jsonl:1", "is not a folder inside runs/")
    assert not (tmp_path / "elsewhere").exists()


def test_continue_refuses_a_symlinked_run_folder(run, tiny_options, tmp_path):
    from textsleep.studio import Studio

    out = Path(tiny_options["out"])
    out.mkdir(parents=True)
    (out / "linked").symlink_to(run)
    before = _files(run)
    updates = list(Studio(tiny_options).dream("", {"iterations": 4}, resume=str(out / "linked")))
    assert len(updates) == 1 and updates[0].error and "not a run this page lists" in updates[0].text
    assert _files(run) == before


# ---------------------------------------------------------------------------------------------- 5. upper bounds
@pytest.mark.parametrize(
    "flag, value, limit",
    [
        ("--num-images", 1_000_000_000, 64),
        ("--cutouts", 1_000_000_000, 4096),
        ("--cutout-batch", 1_000_000_000, 4096),
        ("--init-candidates", 1_000_000_000, 10_000),
        ("--iterations", 10**12, 1_000_000),
        ("--change-every", 10**12, 1_000_000),
        ("--patience", 10**12, 1_000_000),
    ],
)
def test_a_huge_size_is_refused_before_anything_is_allocated(tiny_args, flag, value, limit, one_line_error):
    result = _cli("dream", "tree", *tiny_args, flag, value)
    assert result.exit_code == 2
    one_line_error(result, f"{flag} {value}", f"at most {limit} allowed")


def test_too_many_or_too_long_prompts_are_refused():
    with pytest.raises(UserError, match="at most 64 allowed"):
        DreamSettings(text="|".join(["a"] * 100))
    with pytest.raises(UserError, match="is 20000 characters long: at most 10000 allowed"):
        DreamSettings(text="a" * 20_000)


# ---------------------------------------------------------------------------------------------- 6. damaged files
@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda r: r["settings"].update(lr="x"), "settings: lr='x': must be a number"),
        (lambda r: r.update(seconds="x"), "seconds 'x' must be a number of seconds"),
        (lambda r: r.pop("settings"), "no settings in it"),
    ],
    ids=["lr", "seconds", "no-settings"],
)
def test_a_damaged_run_json_is_one_line_on_resume(run, change, fragment, one_line_error):
    _edit_record(run, change)
    before = _files(run)
    result = _cli("dream", "--resume", run, "--iterations", "4")
    assert result.exit_code == 2
    one_line_error(result, str(run / "run.json"), fragment)
    assert _files(run) == before


def test_a_run_json_that_is_a_number_is_one_line(run, one_line_error):
    (run / "run.json").write_text("5")
    result = _cli("dream", "--resume", run, "--iterations", "4")
    assert result.exit_code == 2
    one_line_error(result, str(run / "run.json"), "holds a int, not a run record")


def test_a_checkpoint_holding_a_list_is_one_line(run, one_line_error):
    torch.save([1, 2, 3], run / "checkpoint.pt")
    before = _files(run)
    result = _cli("dream", "--resume", run, "--iterations", "4")
    assert result.exit_code == 2
    one_line_error(result, str(run / "checkpoint.pt"), "holds a list")
    assert _files(run) == before


def test_a_256_checkpoint_in_a_128_run_is_one_line(run, one_line_error):
    from textsleep.run_checks import latents_of_size  # noqa: PLC0415 (the test must import on older code too)

    assert latents_of_size(128) == 11 and latents_of_size(256) == 13
    state = torch.load(run / "checkpoint.pt", weights_only=True)

    def widen(t):  # 11 latents -> 13, as a 256 px run's
        return torch.cat([t, t[:, :2]], dim=1) if isinstance(t, torch.Tensor) and t.dim() == 3 else t

    dream = state["dream"]
    for group in (dream["latents"], dream["ema"]["biased"], *dream["optimizer"]["state"].values()):
        group.update({k: widen(t) for k, t in group.items()})
    torch.save(state, run / "checkpoint.pt")
    before = _files(run)
    result = _cli("dream", "--resume", run, "--iterations", "4")
    assert result.exit_code == 2
    one_line_error(result, str(run / "checkpoint.pt"), "made with biggan-deep-256 (13 latents)", "takes 11")
    assert _files(run) == before


def test_latents_holding_a_list_are_one_line_for_init_and_interpolate(
    run, tiny_args, gan_args, tmp_path, one_line_error
):
    torch.save([1, 2], run / "latents.pt")
    result = _cli("dream", "tree", *tiny_args, "--init", run)
    assert result.exit_code == 2
    one_line_error(result, "latents.pt", "holds a list")
    result = _cli("interpolate", run, "207@3", "--frames", "3", *gan_args, "--out", tmp_path / "walk.gif")
    assert result.exit_code == 2
    one_line_error(result, "latents.pt", "holds a list")


def test_a_pickle_that_is_not_weights_for_clip_pretrained_is_one_line(tiny_args, tmp_path, one_line_error):
    import pickle

    bad = tmp_path / "not-weights.bin"
    bad.write_bytes(pickle.dumps(DreamSettings))  # a pickle that names a class: never unpickled
    args = [a if a != tiny_args[tiny_args.index("--clip-pretrained") + 1] else str(bad) for a in tiny_args]
    result = _cli("dream", "tree", *args)
    assert result.exit_code == 2
    one_line_error(result, "could not load CLIP", "not-weights.bin")


# ---------------------------------------------------------------------------------------------- 7. the lock
_HOLD = (
    "import sys, time, pathlib\n"
    "from textsleep.runs import RunFolder\n"
    "from textsleep.errors import UserError\n"
    "folder, hold, mark = pathlib.Path(sys.argv[1]), float(sys.argv[2]), pathlib.Path(sys.argv[3])\n"
    "try:\n"
    "    with RunFolder(folder).lock():\n"
    "        mark.write_text('locked')\n"
    "        print('locked', flush=True)\n"
    "        time.sleep(hold)\n"
    "except UserError:\n"
    "    print('refused', flush=True)\n"
)


_WAIT_THEN_LOCK = (
    "import fcntl, os, sys, time\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"  # opened while the first holds the lock
    "print('opened', flush=True)\n"
    "fcntl.flock(fd, fcntl.LOCK_EX)\n"  # and locked as soon as the first lets it go
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def test_the_lock_is_held_by_one_of_three_processes(tmp_path):
    """The first dreams into a folder; a second opens the lock file meanwhile and takes the lock when the first lets
    it go; then a third must be refused (had the first deleted the file, the second would hold the lock on the
    deleted file and the third lock a new file of the same name: two writers)."""
    folder = RunFolder.create(tmp_path, "tree").path
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    lock_file = folder / ".textsleep.lock"

    def holder(hold: float, mark: str):
        args = [sys.executable, "-c", _HOLD, str(folder), str(hold), str(tmp_path / mark)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)

    first = holder(2.0, "first")
    while not (tmp_path / "first").exists():
        time.sleep(0.02)
    second = subprocess.Popen(
        [sys.executable, "-c", _WAIT_THEN_LOCK, str(lock_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert second.stdout.readline().strip() == "opened"
        assert first.wait(timeout=60) == 0 and first.stdout.read().strip() == "locked"
        assert second.stdout.readline().strip() == "locked"
        third = holder(0.0, "third")
        assert third.wait(timeout=120) == 0 and third.stdout.read().strip() == "refused"
        assert not (tmp_path / "third").exists()
    finally:
        second.kill()
        second.wait(timeout=60)


# ---------------------------------------------------------------------------------------------- 9. the score
def test_a_prompt_repeated_scores_as_the_prompt_once():
    clip = random_clip()
    pictures = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def score(text: str) -> torch.Tensor:
        embeds, weights = encode_prompts(clip, parse_prompts(text))
        return score_images([Judge(clip, embeds, weights)], pictures)

    once, thrice, many = score("a"), score("a|a|a"), score("|".join(["a"] * 50))
    assert torch.allclose(once, thrice, atol=1e-6) and torch.allclose(once, many, atol=1e-6)
    assert once.abs().max() <= 1.0  # a cosine similarity, whatever the number of prompts
