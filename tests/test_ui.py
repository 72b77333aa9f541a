"""textsleep ui: the Studio behind the page, the command, and the page itself in a real headless Chromium."""

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textsleep.cli import app
from textsleep.errors import UserError
from textsleep.page_lists import batch_summary, caption, list_batches, list_runs
from textsleep.studio import Studio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EMPTY = 'error: empty prompt; type some words in the Prompt box, e.g. "upside down tree"'  # the page's advice


@pytest.fixture
def studio(tiny_options):
    return Studio({**tiny_options, "iterations": 10_000, "seed": 3}, preview_seconds=0.0)


def _until(updates, predicate, limit=60.0):
    """Updates up to and including the first one ``predicate`` likes."""
    seen, t0 = [], time.monotonic()
    for update in updates:
        seen.append(update)
        if predicate(update):
            return seen
        assert time.monotonic() - t0 < limit, seen[-1]
    raise AssertionError(f"ended before: {seen[-1]}")


def test_a_dream_streams_pictures_stops_and_continues(studio, tiny_options):
    stream = studio.dream("a red cube", {"cutouts": 4}, session="me")
    first = _until(stream, lambda u: u.step >= 3 and u.picture is not None)
    assert first[0].text.startswith("loading the models") and "seed 3" in first[0].text
    pictures = [u.picture for u in first if u.picture is not None]
    assert pictures[0].size == (128, 128)
    assert pictures[0].tobytes() != pictures[-1].tobytes()  # it moves
    assert "CLIP score" in first[-1].text and "/10000" in first[-1].text
    assert studio.stop("someone else") == "nothing to stop"  # another page cannot stop this dream
    assert studio.stop("me") == "stopping after this step…"
    last = list(stream)[-1]
    assert last.done and not last.error and last.text.startswith("stopped at step")
    record = json.loads((last.run_dir / "run.json").read_text())
    assert record["status"] == "interrupted" and (last.run_dir / "checkpoint.pt").is_file()
    done = record["steps_done"]

    # continued from the gallery: the same folder, to more steps; the page's run-only options (here a
    # --save-every given on the command line) apply, the picture's own settings stay as they were
    later = Studio({**tiny_options, "save_every": 1000, "cutouts": 64}, models=studio.models, preview_seconds=0.0)
    resumed = list(later.dream(options={"iterations": done + 2, "cutouts": 32}, resume=last.run_dir, session="me"))
    assert resumed[-1].text.startswith(f"finished: step {done + 2}/{done + 2}"), resumed[-1]
    record = json.loads((last.run_dir / "run.json").read_text())
    assert (
        record["status"] == "finished"
        and record["settings"]["save_every"] == 1000
        and record["settings"]["cutouts"] == 4
    )

    runs = list_runs(tiny_options["out"])
    assert [r["folder"] for r in runs] == [last.run_dir]
    assert caption(runs[0]).startswith("a red cube · seed 3 · score ")


def test_shutdown_stops_and_saves_the_running_dream(studio):
    stream = studio.dream("a red cube", {"cutouts": 4}, session="me")
    _until(stream, lambda u: u.step >= 2)
    studio.shutdown()  # what Ctrl-C on textsleep ui does; nobody reads the page's stream meanwhile
    last = list(stream)[-1]
    assert last.text.startswith("stopped at step")
    assert json.loads((last.run_dir / "run.json").read_text())["status"] == "interrupted"


def test_mistakes_are_the_command_lines_one_line_messages(studio):
    for text, options, message in [
        ("   ", {}, EMPTY),
        ("a cat", {"truncation": 1.5}, "error: --truncation 1.5: must be in (0, 1]"),
        ("a cat", {"size": 300}, "error: --size 300: allowed sizes are 128, 256, 512"),
    ]:
        updates = list(studio.dream(text, options))
        assert len(updates) == 1 and updates[0].error and updates[0].text == message
    assert list(studio.dream("a cat", {"iterations": 2}))[-1].text.startswith("finished: step 2/2")  # still serving


def test_a_stop_before_the_turn_cancels_the_waiting_dream(studio):
    studio.expect("me")
    assert studio.stop("me") == "your waiting dream will not start"
    assert [u.text for u in studio.dream("a cat", session="me")] == ["stopped before it started"]
    assert not Path(studio.out).exists()


def test_runs_newest_first_and_batch_progress(tmp_path):
    for name, prompt, age in [("old", "an old one", 100), ("new", "a new one", 0)]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "image.png").write_bytes(b"")
        record = {
            "prompt": prompt,
            "seed": 1,
            "final_score": 0.25,
            "status": "finished",
            "steps_done": 5,
            "settings": {"iterations": 5},
        }
        (folder / "run.json").write_text(json.dumps(record))
        os.utime(folder / "run.json", (time.time() - age, time.time() - age))
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "run.json").write_text("{not json")
    assert [r["prompt"] for r in list_runs(tmp_path)] == ["a new one", "an old one"]

    from textsleep import batch as lib

    prompts = tmp_path / "p.txt"
    prompts.write_text("a | b\na red cube -- --seed 2 --size 300\n")
    lib.BatchFolder.prepare(tmp_path / "batch-x", lib.plan_batch(prompts, {"iterations": 4}))
    assert list_batches(tmp_path) == [str(tmp_path / "batch-x")]
    summary = batch_summary(tmp_path / "batch-x")
    assert "2 jobs · 0 finished · 1 failed · 0 running · 1 waiting" in summary
    assert "| pending | - | 0/4 |" in summary and "a \\| b |" in summary  # a | inside a cell is escaped
    assert "--size 300: allowed sizes are 128, 256, 512" in summary
    with pytest.raises(UserError, match="not a batch folder"):
        batch_summary(tmp_path / "old")


def test_command_errors_are_one_line(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["ui", "--size", "300"])
    assert result.exit_code == 2 and result.output.strip() == "error: --size 300: allowed sizes are 128, 256, 512"
    result = runner.invoke(app, ["ui", "--no-such-option", "1"])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "--no-such-option" in result.output
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if not installed
    result = runner.invoke(app, ["ui", "--out", str(tmp_path)])
    assert (
        result.exit_code == 2
        and result.output.strip() == 'error: the web page needs gradio: pip install "textsleep[ui]"'
    )


# ---------------------------------------------------------------------------------------------- in a browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def page_url(tiny_options):
    pytest.importorskip("gradio")
    from textsleep.ui import serve

    page = serve({**tiny_options, "iterations": 10_000, "seed": 3}, port=_free_port())
    page.studio.preview_seconds = 0.2
    yield page
    page.close()


@pytest.fixture
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; CI installs it (.ci/run)")
        pytest.skip("needs a headless Chromium (the chromium package); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def _picture_src(page) -> str | None:
    return page.evaluate("() => document.querySelector('#picture img')?.getAttribute('src') || null")


@pytest.mark.browser
def test_dream_watch_and_stop_in_a_browser(page_url, browser, tiny_options, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(page_url.url)
    page.get_by_label("Prompt").fill("a red cube")
    page.locator("#dream").click()
    page.wait_for_function("() => document.querySelector('#picture img')", timeout=60_000)
    first = _picture_src(page)
    page.wait_for_function(
        "first => { const i = document.querySelector('#picture img'); return i && i.getAttribute('src') !== first }",
        arg=first,
        timeout=60_000,
    )
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('CLIP score')", timeout=30_000)
    shot = Path(os.environ.get("TEXTSLEEP_UI_SCREENSHOT", tmp_path / "dreaming.png"))
    page.screenshot(path=str(shot), full_page=True)
    assert "step " in page.locator("#status").inner_text()

    page.locator("#stop").click()
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('stopped at step')", timeout=60_000
    )
    runs = list(Path(tiny_options["out"]).glob("a_red_cube*"))
    assert len(runs) == 1
    record = json.loads((runs[0] / "run.json").read_text())
    assert record["status"] == "interrupted" and (runs[0] / "checkpoint.pt").is_file()
    assert str(runs[0]) in page.locator("#status").inner_text()
    # in the gallery now: open it, see its settings, continue it two more steps in the same folder
    page.wait_for_function("() => document.querySelectorAll('#runs img').length == 1", timeout=30_000)
    page.locator("#runs img").first.click()
    page.wait_for_function(
        "() => document.querySelector('#run-info').innerText.includes('interrupted')", timeout=30_000
    )
    assert "a red cube · seed 3" in page.locator("#run-info").inner_text()
    settings = page.locator("#run-settings").inner_text()
    assert "cutouts" in settings and "truncation" in settings and tiny_options["biggan"] in settings
    steps = record["steps_done"]
    page.locator("#continue-to input").fill(str(steps + 2))
    page.locator("#continue").click()
    page.wait_for_function(
        "s => document.querySelector('#status').innerText.includes('finished: step ' + s)",
        arg=f"{steps + 2}/{steps + 2}",
        timeout=60_000,
    )
    record = json.loads((runs[0] / "run.json").read_text())
    assert record["status"] == "finished" and record["steps_done"] == steps + 2
    assert list(Path(tiny_options["out"]).glob("a_red_cube*")) == runs

    # a blank prompt: the page's own advice, and the page still works
    page.get_by_label("Prompt").fill("  ")
    page.locator("#dream").click()
    page.wait_for_function("m => document.querySelector('#status').innerText.includes(m)", arg=EMPTY, timeout=30_000)
    assert "Traceback" not in page.content()


@pytest.mark.browser
def test_a_second_page_waits_its_turn_and_sees_its_place(page_url, browser):
    first, second = browser.new_page(), browser.new_page()
    for page in (first, second):
        page.goto(page_url.url)
        page.get_by_label("Prompt").fill("a red cube")
    first.locator("#dream").click()
    first.wait_for_function("() => document.querySelector('#status').innerText.includes('CLIP score')", timeout=60_000)
    second.locator("#dream").click()
    second.wait_for_function("() => /queue: 1\\/1/.test(document.body.innerText)", timeout=30_000)
    assert not second.locator("#status").inner_text().startswith("step")
    first.locator("#stop").click()  # then the second one's turn comes, with the models already loaded
    second.wait_for_function("() => document.querySelector('#status').innerText.includes('CLIP score')", timeout=60_000)
    second.locator("#stop").click()
    second.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('stopped at step')", timeout=60_000
    )
