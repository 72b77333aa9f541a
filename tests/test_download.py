"""BigGAN weights over HTTP: a real server on 127.0.0.1 serving tiny checkpoints in the real formats."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from textsleep import weights
from textsleep.errors import UserError


class _Server:
    """Serves files by name; can cut transfers short, fail with a status, and counts requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut_after: int | None = None
        self.status: int | None = None
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append((name, self.headers.get("Range")))
                if server.status:
                    self.send_error(server.status)
                    return
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.cut_after is not None and not rng:
                    payload = payload[: server.cut_after]
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def biggan_files(tiny) -> dict[str, bytes]:
    folder = Path(tiny["biggan"])
    return {
        "biggan-deep-128-config.json": (folder / "config.json").read_bytes(),
        "biggan-deep-128-pytorch_model.bin": (folder / "pytorch_model.bin").read_bytes(),
        "config.json": (folder / "config.json").read_bytes(),
        "pytorch_model.bin": (folder / "pytorch_model.bin").read_bytes(),
    }


@pytest.fixture
def server(biggan_files, monkeypatch):
    s = _Server(biggan_files)
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", s.url)
    yield s
    s.stop()


def test_fresh_download_then_cache_hit_without_network(server, biggan_files, tmp_path):
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    assert folder == tmp_path / "cache" / "biggan" / "biggan-deep-128"
    assert (folder / "pytorch_model.bin").read_bytes() == biggan_files["pytorch_model.bin"]
    assert (folder / "pytorch_model.bin.sha256").is_file()
    assert not list(folder.glob("*.part"))
    server.stop()
    assert weights.biggan_dir("biggan-deep-128", progress=False) == folder  # no network needed now
    assert weights.is_cached("biggan-deep-128")
    assert [m["name"] for m in weights.cached_models()] == ["biggan-deep-128"]


def test_the_downloaded_folder_loads_strictly(server):
    from textsleep.models import load_biggan

    model = load_biggan("biggan-deep-128", progress=False)
    assert model.config.output_dim == 128


def test_resume_after_a_cut_off_transfer(server, biggan_files, tmp_path):
    server.cut_after = 100_000
    with pytest.raises(UserError, match="cannot download"):
        weights.download(f"{server.url}/pytorch_model.bin", tmp_path / "w.bin", progress=False, retries=0)
    part = tmp_path / "w.bin.part"
    assert part.stat().st_size == 100_000 and not (tmp_path / "w.bin").exists()
    server.cut_after = None
    weights.download(f"{server.url}/pytorch_model.bin", tmp_path / "w.bin", progress=False)
    assert (tmp_path / "w.bin").read_bytes() == biggan_files["pytorch_model.bin"]
    assert ("pytorch_model.bin", "bytes=100000-") in server.requests


def test_http_errors_name_the_url_and_status(server, tmp_path):
    with pytest.raises(UserError, match=r"missing\.bin failed: HTTP 404"):
        weights.download(f"{server.url}/missing.bin", tmp_path / "m.bin", progress=False)
    assert len(server.requests) == 1  # no retry on 404
    server.status = 500
    with pytest.raises(UserError, match="HTTP 500"):
        weights.download(f"{server.url}/pytorch_model.bin", tmp_path / "m.bin", progress=False, retries=1)
    assert not (tmp_path / "m.bin").exists()


def test_corrupted_cache_is_reported_with_the_refetch_command(server):
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    data = bytearray((folder / "pytorch_model.bin").read_bytes())
    data[1000] ^= 0xFF
    (folder / "pytorch_model.bin").write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"corrupted.*textsleep download --size 128 --force"):
        weights.biggan_dir("biggan-deep-128", progress=False)
    weights.biggan_dir("biggan-deep-128", progress=False, force=True)  # the advice works
    weights.biggan_dir("biggan-deep-128", progress=False)


def test_two_concurrent_downloaders_get_one_good_file(server, biggan_files, tmp_path):
    results, errors = [], []

    def fetch():
        try:
            results.append(weights.download(f"{server.url}/pytorch_model.bin", tmp_path / "c.bin", progress=False))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2
    assert (tmp_path / "c.bin").read_bytes() == biggan_files["pytorch_model.bin"]
    assert sum(1 for name, _ in server.requests if name == "pytorch_model.bin") == 1  # the second waited, then found it


def test_url_folder(server, biggan_files):
    folder = weights.biggan_dir(server.url + "/", progress=False)
    assert (folder / "config.json").read_bytes() == biggan_files["config.json"]


def test_offline_fails_in_seconds(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        weights.biggan_dir("biggan-deep-256", progress=False)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert f"127.0.0.1:{port}" in message and "--biggan DIR" in message and "TEXTSLEEP_BIGGAN_URL" in message


def test_hub_fallback_for_128_is_tried_and_fails_fast_offline(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(UserError, match="osanseviero/BigGAN-deep-128"):
        weights.biggan_dir("biggan-deep-128", progress=False)
    assert time.monotonic() - start < 5


def test_bad_names_and_folders(tmp_path):
    with pytest.raises(UserError, match="biggan-deep-128, biggan-deep-256, biggan-deep-512"):
        weights.biggan_dir("biggan-deep-1024")
    half = tmp_path / "half"
    half.mkdir()
    (half / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(UserError, match="no config.json"):
        weights.biggan_dir(str(half))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders, so the error cannot happen")
def test_read_only_cache(monkeypatch, tmp_path, server):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("TEXTSLEEP_CACHE", str(ro / "cache"))
    with pytest.raises(UserError, match="TEXTSLEEP_CACHE"):
        weights.biggan_dir("biggan-deep-128", progress=False)


def test_unwritable_cache_path(monkeypatch, tmp_path, server):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("TEXTSLEEP_CACHE", str(blocker / "cache"))
    with pytest.raises(UserError, match="not writable.*TEXTSLEEP_CACHE"):
        weights.biggan_dir("biggan-deep-128", progress=False)


def test_clip_from_a_hugging_face_cache_layout_offline(tmp_path, monkeypatch):
    """An open_clip checkpoint laid out as huggingface_hub caches it loads with HF_HUB_OFFLINE=1."""
    import subprocess
    import sys

    import open_clip
    import torch

    repo_dir = tmp_path / "hf" / "hub" / "models--timm--vit_base_patch32_clip_224.openai"
    snap = repo_dir / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    torch.save(open_clip.create_model("ViT-B-32-quickgelu").state_dict(), snap / "open_clip_pytorch_model.bin")
    code = (
        "from textsleep.models import load_clip, clip_cached;"
        "assert clip_cached('ViT-B-32', 'openai');"
        "c = load_clip('ViT-B-32', 'openai');"
        "print('loaded', c.name, c.image_size)"
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "loaded ViT-B-32 224" in out.stdout
