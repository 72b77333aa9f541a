"""The batch gallery: a static page with relative links, checked as HTML and in a real headless Chromium."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from textsleep import batch as lib
from textsleep.cli import app
from textsleep.gallery import write_gallery

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _Links(HTMLParser):
    """Every tag, and every src/href, of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.links, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag == "img":
            self.images.append(attrs["src"])


def _parse(page: str) -> _Links:
    parser = _Links()
    parser.feed(page)
    return parser


def _picture(path: Path, colour="red", size=64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


def test_each_job_with_its_picture_facts_and_relative_links(tmp_path):
    _picture(tmp_path / "runs/a-1/image.png")
    _picture(tmp_path / "runs/a-1/best.png", "blue")
    (tmp_path / "runs/a-1/run.json").write_text("{}")
    (tmp_path / "runs/a-1/progress.mp4").write_bytes(b"not really a video")
    _picture(tmp_path / "runs/b-2/image.png", "green")
    (tmp_path / "runs/b-2/run.json").write_text("{}")
    records = [
        {
            "id": "1",
            "prompt": 'a "quoted" <script>alert(1)</script> 🌋',
            "seed": 11,
            "final_score": 0.31234,
            "status": "finished",
            "folder": "runs/a-1",
        },
        {
            "id": "2",
            "prompt": "a castle:2|fog:-1",
            "seed": 12,
            "final_score": 0.2,
            "status": "finished",
            "folder": "runs/b-2",
        },
        {
            "id": "3",
            "prompt": "",
            "source": "broken -- --size 300",
            "seed": None,
            "status": "failed",
            "folder": None,
            "error": "p.txt:3: --size 300 <b>",
        },
        {
            "id": "4",
            "prompt": "later",
            "seed": 5,
            "status": "pending",
            "folder": "runs/c-4",
            "steps_done": 0,
            "iterations": 100,
        },
    ]
    page = write_gallery(tmp_path, records, title="overnight.txt").read_text(encoding="utf-8")
    found = _parse(page)
    assert set(found.tags).isdisjoint({"script", "link", "iframe", "object", "embed"})  # nothing to fetch or run
    assert "url(" not in page and "@import" not in page
    for link in found.links:  # relative, and every one points at a file that is there
        assert not re.match(r"^[a-z]+:|^/", link), link
        assert (tmp_path / link).is_file(), link
    assert found.images == ["runs/a-1/image.png", "runs/b-2/image.png"]
    assert sorted(found.links) == sorted(
        ["runs/a-1/image.png"] * 3
        + ["runs/a-1/best.png", "runs/a-1/run.json", "runs/a-1/progress.mp4"]
        + ["runs/b-2/image.png"] * 3
        + ["runs/b-2/run.json"]
    )
    assert "&quot;quoted&quot; &lt;script&gt;" in page and "🌋" in page and "<script>" not in page
    assert "seed 11" in page and "score 0.312" in page and "seed 12" in page and "score 0.200" in page
    assert "broken -- --size 300" in page and "p.txt:3: --size 300 &lt;b&gt;" in page
    assert "step 0/100" in page and 'http-equiv="refresh"' in page  # work left: the page reloads itself
    assert "4 jobs: 1 failed · 2 finished · 1 pending" in page
    assert not list(tmp_path.glob(".index.html*"))  # written through a temporary file, renamed whole


def test_the_page_follows_the_manifest(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a red cube\na blue sphere -- --size 100\n")
    folder = lib.BatchFolder.prepare(tmp_path / "batch", lib.plan_batch(path))
    page = (folder.path / "index.html").read_text()
    assert "1 failed · 1 pending" in page and "p.txt:2: --size 100" in page and "<title>p.txt" in page
    job = lib.plan_batch(path).jobs[0]
    _picture(folder.path / f"runs/{job.folder}/image.png")
    folder.update(job.id, status="finished", final_score=0.5)
    page = (folder.path / "index.html").read_text()
    assert "1 failed · 1 finished" in page and "score 0.500" in page and f"runs/{job.folder}/image.png" in page
    assert "http-equiv" not in page  # all done: no reloading


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


_CHECK = """
<img id="control" src="no-such-picture.png" alt="">
<script>
window.addEventListener("load", () => {
  const seen = [...document.images].map(i => ({src: i.getAttribute("src"), width: i.naturalWidth, done: i.complete}));
  const out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});
</script>
</body>"""


@pytest.mark.browser
def test_gallery_in_headless_chromium(tiny_args, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; CI installs it (.ci/run)")
        pytest.skip("needs chromium (apt-get install chromium)")
    prompts = tmp_path / "gallery.txt"
    prompts.write_text(
        'a "quoted" lighthouse 🌋\na castle:2|fog:-1 -- --video --save-every 1\nbroken -- --size 300\n',
        encoding="utf-8",
    )
    out = tmp_path / "batch"
    result = CliRunner().invoke(
        app, ["batch", str(prompts), *tiny_args, "--iterations", "2", "--cutouts", "2", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output  # the broken line
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "progress.mp4" in page and page.count("<img ") == 2

    # every picture on the page loads (and the check itself sees a broken one)
    check = out / "check.html"
    check.write_text(page.replace("</body>", _CHECK), encoding="utf-8")
    run = _chromium(tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", check.as_uri())
    match = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, re.S)
    assert match, run.stdout[-2000:] + run.stderr[-2000:]
    seen = {i["src"]: i for i in json.loads(match[1].replace("&quot;", '"').replace("&amp;", "&"))}
    assert seen.pop("no-such-picture.png")["width"] == 0
    assert len(seen) == 2 and all(i["done"] and i["width"] == 128 for i in seen.values()), seen

    shot = tmp_path / "gallery.png"
    run = _chromium(
        tmp_path / "profile",
        "--window-size=1280,900",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        (out / "index.html").as_uri(),
    )
    assert shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 900)
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 50  # pictures and text, not a blank page
