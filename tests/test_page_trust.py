"""The web page on a shared machine, attacked over real HTTP on 127.0.0.1 (tiny models): it never shares itself,
serves only the pictures it wrote, accepts back only what it listed, holds a visitor to its limits, asks for a login
when told and leaves nothing behind."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

gr = pytest.importorskip("gradio")

from textsleep import batch as lib  # noqa: E402
from textsleep.cli import app  # noqa: E402
from textsleep.page_lists import list_runs  # noqa: E402
from textsleep.studio import Studio  # noqa: E402
from textsleep.ui import Page, serve  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _call(base: str, name: str, data: list) -> list:
    """Call one of the page's events as a browser would (Gradio's call API); its outputs, or its error."""
    request = urllib.request.Request(
        f"{base}gradio_api/call/{name}",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        event = json.load(r)["event_id"]
    with urllib.request.urlopen(f"{base}gradio_api/call/{name}/{event}", timeout=120) as r:
        body = r.read().decode()
    kind = [line[len("event: ") :] for line in body.splitlines() if line.startswith("event: ")][-1]
    data = [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")][-1]
    return json.loads(data) if kind == "complete" else [{"error": json.loads(data)}]


def _run_folder(parent: Path, name: str, prompt: str, colour=(200, 0, 0)) -> Path:
    """A finished run as a dream leaves it (its record, its picture, a checkpoint), without dreaming."""
    folder = parent / name
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32), colour).save(folder / "image.png")
    record = {"prompt": prompt, "seed": 1, "status": "finished", "steps_done": 2, "final_score": 0.25}
    (folder / "run.json").write_text(json.dumps({**record, "settings": {"iterations": 2, "seed": 1}}))
    (folder / "checkpoint.pt").write_bytes(b"the run's checkpoint")
    return folder


@pytest.fixture
def page(tiny_options, tmp_path):
    out = Path(tiny_options["out"])
    out.mkdir(parents=True)
    p = serve({**tiny_options, "iterations": 10}, port=_free_port())
    yield p
    p.close()


def test_the_environment_cannot_make_the_page_public(tiny_options, monkeypatch):
    tunnels = []
    monkeypatch.setattr(gr.networking, "setup_tunnel", lambda **kw: tunnels.append(kw) or "https://x.gradio.live")
    monkeypatch.setenv("GRADIO_SHARE", "true")  # what a shell profile or a notebook host may set
    monkeypatch.setattr(gr.utils, "colab_check", lambda: True)  # as inside Colab, where Gradio shares by default
    p = serve(tiny_options, port=_free_port())
    try:
        assert tunnels == [] and p.app.share is False and p.app.share_url is None
        assert p.url.startswith("http://127.0.0.1:")
    finally:
        p.close()


def test_only_the_pictures_the_page_wrote_are_served(page, tmp_path):
    out = Path(page.studio.out)
    run = _run_folder(out, "a_red_cube", "a red cube")
    key = out / "id_rsa"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not the page's")
    # what textsleep ui --out ~ served before: any file under --out (and Gradio's proxying of URLs)
    for target in [run / "checkpoint.pt", run / "run.json", run / "image.png", key, outside]:
        for route in (f"gradio_api/file={target}", f"gradio_api/file/{target}"):
            status, body = _get(page.url + route)
            assert status in (403, 404) and b"secret" not in body and b"checkpoint" not in body, (route, status)
    assert _get(page.url + "gradio_api/file=https://example.com/")[0] in (403, 404)

    gallery, _, note = _call(page.url, "runs", [])
    assert [item["caption"] for item in gallery] == ["a red cube · seed 1 · score 0.250"] and note == ""
    served = Path(gallery[0]["image"]["path"])
    assert served.is_relative_to(page.temp) and not served.is_relative_to(out)  # a copy the page made
    status, body = _get(gallery[0]["image"]["url"])
    assert status == 200 and Image.open(io.BytesIO(body)).convert("RGB").getpixel((0, 0)) == (200, 0, 0)


def test_symlinks_do_not_lead_the_page_out_of_its_folder(page, tmp_path):
    out = Path(page.studio.out)
    secret = _run_folder(tmp_path / "private", "diary", "a private run", colour=(0, 0, 200))
    (out / "linked_run").symlink_to(secret)  # a run folder that is a symlink
    mine = _run_folder(out, "mine", "my own run")
    (mine / "image.png").unlink()
    (mine / "image.png").symlink_to(secret / "image.png")  # a picture that is a symlink
    gallery, _, _ = _call(page.url, "runs", [])
    assert gallery == []  # neither the linked run nor the linked picture is shown
    assert [r["folder"].name for r in list_runs(out)] == ["mine"]
    assert [r["picture"] for r in list_runs(out)] == [None]


def test_a_damaged_run_is_skipped_and_named_beside_the_list(page):
    out = Path(page.studio.out)
    _run_folder(out, "good", "a good run")
    for name, text in [("five", "5"), ("bad_lr", None), ("cut", '{"prompt": "a red')]:
        folder = _run_folder(out, name, name)
        if text is None:
            record = json.loads((folder / "run.json").read_text())
            text = json.dumps({**record, "settings": {**record["settings"], "lr": "x"}})
        (folder / "run.json").write_text(text)
    gallery, _, note = _call(page.url, "runs", [])
    assert [item["caption"] for item in gallery] == ["a good run · seed 1 · score 0.250"]
    assert note.startswith("**Damaged runs, not listed:**")
    assert "`five` skipped: " in note and "holds a int, not a run record" in note
    assert "`bad_lr` skipped: " in note and "settings: lr='x': must be a number" in note
    assert "`cut` skipped: " in note and "not readable JSON" in note


def test_the_batch_box_accepts_only_the_batches_it_lists(page, tmp_path):
    prompts = tmp_path / "private" / "prompts.txt"
    prompts.parent.mkdir()
    prompts.write_text("my secret prompt\n")
    elsewhere = tmp_path / "private" / "batch"
    lib.BatchFolder.prepare(elsewhere, lib.plan_batch(prompts, {"iterations": 2}))
    (Path(page.studio.out) / "linked-batch").symlink_to(elsewhere)
    for typed in (str(elsewhere), str(Path(page.studio.out) / "linked-batch")):
        answer = _call(page.url, "show_batch", [typed])[0]
        assert "my secret prompt" not in json.dumps(answer), answer


def test_a_visitor_is_held_to_the_pages_limits(tiny_options, tmp_path):
    studio = Studio({**tiny_options, "iterations": 10})
    for options, text, fragment in [
        ({"num_images": 1_000_000_000}, "a cat", "--num-images 1000000000: at most 4 allowed on this page"),
        ({"num_images": 5}, "a cat", "--num-images 5: at most 4 allowed on this page"),
        ({"iterations": 100_000}, "a cat", "--iterations 100000: at most 5000 allowed on this page"),
        ({"cutouts": 10**9}, "a cat", "--cutouts 1000000000: at most 256 allowed on this page"),
        ({"init_candidates": 10**9}, "a cat", "--init-candidates 1000000000: at most 64 allowed on this page"),
        ({}, "a|" * 20 + "a", "21 prompts: at most 16 allowed on this page"),
        ({}, "a" * 2000, "prompt of 2000 characters: at most 1000 allowed on this page"),
    ]:
        updates = list(studio.dream(text, options))
        assert len(updates) == 1 and updates[0].error, updates
        assert fragment in updates[0].text and updates[0].text.startswith("error: "), updates[0].text
    assert not Path(tiny_options["out"]).exists()  # refused before anything started


def test_uploads_are_refused(page):
    body = (
        b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n\r\n' + b"0" * 4096
    )  # over the page's cap
    request = urllib.request.Request(
        page.url + "gradio_api/upload",
        data=body + b"\r\n--x--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    try:
        status = urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as err:
        status = err.code
    assert status in (403, 404, 413)
    assert not [p for p in page.temp.rglob("*") if p.is_file()]


def test_the_pictures_it_handed_out_are_removed_when_it_stops(tiny_options):
    out = Path(tiny_options["out"])
    _run_folder(out, "a_red_cube", "a red cube")
    p = serve(tiny_options, port=_free_port())
    gallery, _, _ = _call(p.url, "runs", [])
    handed = Path(gallery[0]["image"]["path"])
    assert handed.is_file()
    p.close()
    assert not handed.exists() and not p.temp.exists()
    assert (out / "a_red_cube" / "image.png").is_file()  # the run's own picture stays


def test_beyond_loopback_it_warns_names_its_address_and_can_ask_for_a_login(tiny_options, tmp_path, monkeypatch):
    seen = {}

    def look_then_close(self: Page) -> None:  # instead of serving until Ctrl-C
        local = f"http://127.0.0.1:{self.app.server_port}/"
        seen["anonymous"] = _get(local + "config")[0]
        login = urllib.parse.urlencode({"username": "ada", "password": "s3cret pass"}).encode()
        request = urllib.request.Request(local + "login", data=login, method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            cookie = "; ".join(c.split(";")[0] for c in r.headers.get_all("set-cookie"))
        seen["logged in"] = _get(local + "config", {"Cookie": cookie})[0]
        self.close()

    monkeypatch.setattr(Page, "wait", look_then_close)
    logins = tmp_path / "logins"
    logins.write_text("# who may use the page\nada:s3cret pass\n")
    args = [f"--{k.replace('_', '-')}={v}" for k, v in tiny_options.items()]
    port = str(_free_port())
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--port", port, "--auth-file", str(logins), *args])
    assert result.exit_code == 0, result.output
    assert seen == {"anonymous": 401, "logged in": 200}
    lines = result.output.splitlines()
    warning = next(line for line in lines if line.startswith("warning:"))
    assert "0.0.0.0" in warning and "anyone who logs in can dream, read the gallery" in warning
    assert "stop dreams" in warning
    address = next(line for line in lines if line.startswith("dreaming at"))
    assert "localhost" not in address.split()[2] and f":{port}/" in address

    monkeypatch.setattr(Page, "wait", Page.close)
    result = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--port", str(_free_port()), *args])
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert "anyone who can reach this port can dream, read the gallery" in warning and "--auth USER:PASS" in warning
    result = CliRunner().invoke(app, ["ui", "--port", str(_free_port()), *args])  # loopback: no warning
    assert result.exit_code == 0 and "warning:" not in result.output
    assert "dreaming at http://127.0.0.1:" in result.output


def test_a_bad_login_option_is_one_line(tmp_path):
    for args, fragment in [
        (["--auth", "no-colon"], "--auth: write USER:PASS"),
        (["--auth-file", str(tmp_path / "missing")], "--auth-file"),
    ]:
        result = CliRunner().invoke(app, ["ui", *args])
        assert result.exit_code == 2 and result.output.startswith("error: ") and fragment in result.output
