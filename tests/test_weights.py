"""textsleep.weights against a real HTTP server on 127.0.0.1 serving a tiny BigGAN folder in the real formats."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from textsleep import fetch, weights
from textsleep.errors import UserError

REPO = Path(__file__).resolve().parents[1]
TINY_LAYERS = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
               (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]  # fmt: skip


# --------------------------------------------------------------------------------------------- fixtures
class _Server:
    """A file server that honours ``Range``, counts requests and can misbehave on demand."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cuts: list[int] = []  # each of the next transfers sends only this many body bytes, then hangs up
        self.status: dict[str, int] = {}  # file name -> error status to answer with
        self.ignore_range = False  # answer 200 with the whole file even when asked for a range
        self.piece_delay = 0.0  # seconds between 64 KiB pieces (makes transfers overlap)
        self.requests: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def gets(self, name: str) -> list[str | None]:
        """The Range headers of the requests for ``name`` (None: no Range)."""
        return [rng for n, rng in self.requests if n == name]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name, rng = self.path.lstrip("/"), self.headers.get("Range")
                with server._lock:
                    server.requests.append((name, rng))
                    cut = server.cuts.pop(0) if server.cuts else None
                if name in server.status:
                    return self.send_error(server.status[name])
                if name not in server.files:
                    return self.send_error(404)
                body, start = server.files[name], 0
                if rng and not server.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        return self.end_headers()
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:] if cut is None else body[start : start + cut]
                try:
                    for i in range(0, len(payload), 1 << 16):
                        self.wfile.write(payload[i : i + (1 << 16)])
                        time.sleep(server.piece_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


@pytest.fixture(scope="module")
def tiny_biggan() -> dict[str, bytes]:
    """config.json and pytorch_model.bin of a tiny BigGAN-deep-128 (channel width 4), as bytes."""
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    config = BigGANConfig(output_dim=128, z_dim=128, class_embed_dim=128, channel_width=4, num_classes=1000,
                          layers=TINY_LAYERS, attention_layer_position=8)  # fmt: skip
    torch.manual_seed(0)
    model = BigGAN(config)
    with torch.no_grad():  # created uninitialised by the library
        model.generator.bn.weight.fill_(1.0)
        model.generator.bn.bias.zero_()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return {"config.json": config.to_json_string().encode(), "pytorch_model.bin": buffer.getvalue()}


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TEXTSLEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


@pytest.fixture
def server(tiny_biggan, cache, monkeypatch):
    """A mirror on 127.0.0.1 serving the tiny files under the released names (the 256 files' pinned SHA-256 is set
    aside for it: these tests are about transfers; test_a_mirror_serving_other_files_as_the_released_256_is_refused
    pins them)."""
    files = {f"{name}-{f}": data for name in ("biggan-deep-128", "biggan-deep-256") for f, data in tiny_biggan.items()}
    files.update({f"plain/{f}": data for f, data in tiny_biggan.items()})
    s = _Server(files)
    monkeypatch.setattr(weights, "PINNED", {})
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", s.url)
    yield s
    s.stop()


@pytest.fixture
def closed_port() -> int:
    """A 127.0.0.1 port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Child interpreters import textsleep.weights alone (a bare package object stands in for textsleep/__init__,
# which imports torch): they start in a fraction of a second.
_LIGHT_IMPORT = (
    "import sys, types\n"
    f"pkg = types.ModuleType('textsleep'); pkg.__path__ = [{str(REPO / 'textsleep')!r}]; sys.modules['textsleep'] = "
    "pkg\n"
    "from textsleep import weights\n"
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp(path: Path) -> dict:
    return json.loads(Path(f"{path}.stamp").read_text())


def _sha_record(path: Path) -> str:
    """The SHA-256 found at download, as its stamp records it."""
    return _stamp(path)["sha256"]


# --------------------------------------------------------------------------------------------- names and sources
def test_shortcuts_and_their_urls_come_from_pytorch_pretrained_biggan(monkeypatch):
    from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP

    monkeypatch.delenv("TEXTSLEEP_BIGGAN_URL", raising=False)
    assert weights.BIGGAN_SHORTCUTS == tuple(PRETRAINED_MODEL_ARCHIVE_MAP)
    for name in weights.BIGGAN_SHORTCUTS:
        folder, urls = weights._biggan_sources(name)
        assert folder == weights.cache_root() / "biggan" / name
        assert urls == {
            "pytorch_model.bin": PRETRAINED_MODEL_ARCHIVE_MAP[name],
            "config.json": PRETRAINED_CONFIG_ARCHIVE_MAP[name],
        }


def test_fresh_download_then_cache_hit_with_the_server_stopped(server, tiny_biggan, cache):
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    assert folder == cache / "biggan" / "biggan-deep-128"
    for f, data in tiny_biggan.items():
        assert (folder / f).read_bytes() == data
        assert _sha_record(folder / f) == _sha(data)
        assert server.gets(f"biggan-deep-128-{f}") == [None]
    assert not list(folder.glob("*.part"))

    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    model = BigGAN(BigGANConfig.from_json_file(str(folder / "config.json")))
    model.load_state_dict(torch.load(folder / "pytorch_model.bin", map_location="cpu"), strict=True)

    server.stop()
    assert weights.biggan_dir("biggan-deep-128", progress=False) == folder
    assert weights.is_cached("biggan-deep-128") and not weights.is_cached("biggan-deep-512")
    size = sum(len(d) for d in tiny_biggan.values())
    assert weights.cached_models() == [{"name": "biggan-deep-128", "path": str(folder), "size": size}]


def test_url_of_a_folder(server, tiny_biggan, cache):
    folder = weights.biggan_dir(server.url + "/plain/", progress=False)
    assert folder.parent == cache / "biggan" and "127.0.0.1" in folder.name
    assert (folder / "pytorch_model.bin").read_bytes() == tiny_biggan["pytorch_model.bin"]
    server.stop()
    assert weights.biggan_dir(server.url + "/plain", progress=False) == folder  # from the cache now


def test_local_folders_and_unknown_names(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for f in ("config.json", "pytorch_model.bin"):
        (good / f).write_bytes(b"x")
    assert weights.biggan_dir(str(good)) == good
    half = tmp_path / "half"
    half.mkdir()
    (half / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(UserError, match=rf"{re.escape(str(half))}.*no config\.json"):
        weights.biggan_dir(str(half))
    with pytest.raises(UserError) as err:
        weights.biggan_dir("biggan-deep-1024")
    message = str(err.value)
    assert "biggan-deep-1024" in message and all(name in message for name in weights.BIGGAN_SHORTCUTS)
    assert "folder" in message and "URL" in message


# --------------------------------------------------------------------------------------------- transfers
def test_cut_off_transfer_is_kept_and_resumed_with_range(server, tiny_biggan, tmp_path):
    data = tiny_biggan["pytorch_model.bin"]
    url, dest = f"{server.url}/plain/pytorch_model.bin", tmp_path / "w.bin"
    server.cuts = [len(data) // 2]
    with pytest.raises(UserError, match=r"stopped after \d+ of \d+ bytes.*w\.bin\.part is kept"):
        weights.download(url, dest, progress=False, plain_http=True, retries=0)
    assert (tmp_path / "w.bin.part").stat().st_size == len(data) // 2
    assert not dest.exists() and not Path(f"{dest}.stamp").exists()  # never left looking complete
    weights.download(url, dest, progress=False, plain_http=True, retries=0)
    assert server.gets("plain/pytorch_model.bin") == [None, f"bytes={len(data) // 2}-"]
    assert _sha(dest.read_bytes()) == _sha(data) == _sha_record(dest)
    assert not (tmp_path / "w.bin.part").exists()


def test_a_cut_is_healed_by_the_retries_of_one_call(server, tiny_biggan, tmp_path):
    server.cuts = [1000]
    dest = weights.download(
        f"{server.url}/plain/pytorch_model.bin", tmp_path / "w.bin", progress=False, plain_http=True
    )
    assert dest.read_bytes() == tiny_biggan["pytorch_model.bin"]
    assert server.gets("plain/pytorch_model.bin") == [None, "bytes=1000-"]


def test_a_server_that_ignores_range_restarts_the_file(server, tiny_biggan, tmp_path):
    url, dest = f"{server.url}/plain/pytorch_model.bin", tmp_path / "w.bin"
    server.cuts = [12345]
    with pytest.raises(UserError):
        weights.download(url, dest, progress=False, plain_http=True, retries=0)
    server.ignore_range = True
    weights.download(url, dest, progress=False, plain_http=True, retries=0)
    assert server.gets("plain/pytorch_model.bin")[-1] == "bytes=12345-"
    assert dest.read_bytes() == tiny_biggan["pytorch_model.bin"]
    assert _sha_record(dest) == _sha(tiny_biggan["pytorch_model.bin"])


def test_an_unresumable_part_is_fetched_again(server, tiny_biggan, tmp_path):
    data = tiny_biggan["config.json"]
    (tmp_path / "c.json.part").write_bytes(data + b"junk")  # longer than the file: the server answers 416
    dest = weights.download(f"{server.url}/plain/config.json", tmp_path / "c.json", progress=False, plain_http=True)
    assert dest.read_bytes() == data
    assert server.gets("plain/config.json") == [f"bytes={len(data) + 4}-", None]


def test_http_404_is_not_retried_and_500_is(server, tmp_path):
    with pytest.raises(UserError, match=r"/plain/missing\.bin failed: HTTP 404"):
        weights.download(f"{server.url}/plain/missing.bin", tmp_path / "m.bin", progress=False, plain_http=True)
    assert len(server.gets("plain/missing.bin")) == 1
    server.status["plain/pytorch_model.bin"] = 500
    with pytest.raises(UserError, match=rf"{re.escape(server.url)}/plain/pytorch_model\.bin.*HTTP 500"):
        weights.download(
            f"{server.url}/plain/pytorch_model.bin", tmp_path / "m.bin", progress=False, plain_http=True, retries=1
        )
    assert len(server.gets("plain/pytorch_model.bin")) == 2
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []  # no part, no file, no record


@pytest.fixture
def no_hashing(monkeypatch):
    """Hashing a cached file fails the test: loads compare stamps only."""

    def refuse(path):
        raise AssertionError(f"{path} was hashed")

    monkeypatch.setattr(weights, "sha256_of", refuse)


def test_a_download_is_stamped_and_later_loads_read_only_the_stamp(server, tiny_biggan, no_hashing):
    from textsleep.models import load_biggan

    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    for f, data in tiny_biggan.items():
        st = (folder / f).stat()
        assert _stamp(folder / f) == {"sha256": _sha(data), "size": len(data), "mtime_ns": st.st_mtime_ns}
    server.stop()
    assert load_biggan("biggan-deep-128", progress=False).config.channel_width == 4  # from the cache, not hashed


@pytest.mark.parametrize("change", ["cut short", "replaced"])
def test_a_file_changed_after_download_is_caught_on_load_without_hashing_it(server, change, no_hashing):
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    path = folder / "pytorch_model.bin"
    data = path.read_bytes()
    if change == "cut short":
        path.write_bytes(data[: len(data) // 2])
        why = rf"{len(data) // 2} bytes, not the {len(data)} downloaded"
    else:  # the same size, other bytes, written a second after the download
        path.write_bytes(bytes(b ^ 0xFF for b in data[:100]) + data[100:])
        os.utime(path, ns=(time.time_ns(), _stamp(path)["mtime_ns"] + 10**9))
        why = "modified since it was downloaded"
    with pytest.raises(UserError) as err:
        weights.biggan_dir("biggan-deep-128", progress=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path} is not the file that was downloaded")
    assert re.search(why, message) and "`textsleep download --size 128 --force`" in message
    assert "textsleep doctor --verify" in message  # for a cache copied here without its files' times
    assert len(server.gets("biggan-deep-128-pytorch_model.bin")) == 1  # nothing fetched behind the user's back
    weights.biggan_dir("biggan-deep-128", progress=False, force=True)  # what the message advises
    assert path.read_bytes() == data and len(server.gets("biggan-deep-128-pytorch_model.bin")) == 2
    weights.check(path)


def test_verify_hashes_reports_and_renews_the_stamp_of_a_good_copy(server, tiny_biggan):
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    path, data = folder / "pytorch_model.bin", tiny_biggan["pytorch_model.bin"]
    assert weights.verify(path) == _sha(data)
    os.utime(path, ns=(time.time_ns(), _stamp(path)["mtime_ns"] + 10**9))  # copied without its time: the same bytes
    with pytest.raises(UserError, match="modified since it was downloaded"):
        weights.check(path)
    assert weights.verify(path) == _sha(data)  # hashed: it is the file downloaded, and stamped again
    weights.check(path)
    # bytes rotting in place (same size, same time) pass the stamp; only hashing finds them
    mtime = _stamp(path)["mtime_ns"]
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    os.utime(path, ns=(mtime, mtime))
    weights.check(path)
    with pytest.raises(UserError, match=r"pytorch_model\.bin is corrupted.*`textsleep download --size 128 --force`"):
        weights.verify(path)
    assert weights.cached_files() == [folder / "config.json", path]


def test_doctor_verify_hashes_every_cached_file_and_reports(server, tiny_biggan, one_line_error):
    from typer.testing import CliRunner

    from textsleep.cli import app

    runner = CliRunner()
    folders = [weights.biggan_dir(name, progress=False) for name in ("biggan-deep-128", "biggan-deep-256")]
    result = runner.invoke(app, ["doctor", "--verify"])
    assert result.exit_code == 0, result.output
    verified = [line[22:].strip() for line in result.output.splitlines() if line.startswith("verify ")]
    expected = {f"{folder / f}: ok, SHA-256 {_sha(data)}" for folder in folders for f, data in tiny_biggan.items()}
    assert set(verified) == expected and len(verified) == 4
    plain = runner.invoke(app, ["doctor"]).output
    assert not [
        line for line in plain.splitlines() if line.startswith("verify ")
    ]  # hashing is asked for, never unasked

    bad = folders[1] / "pytorch_model.bin"  # rotted in place: the stamp still matches, the bytes do not
    data, mtime = bad.read_bytes(), _stamp(bad)["mtime_ns"]
    bad.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    os.utime(bad, ns=(mtime, mtime))
    result = runner.invoke(app, ["doctor", "--verify"])
    one_line_error(result, "1 of 4 cached weight files are not what was downloaded")
    verified = [line[22:].strip() for line in result.output.splitlines() if line.startswith("verify ")]
    why = "its SHA-256 differs from the one found at download"
    assert f"{bad} is corrupted ({why}); fetch it again with `textsleep download --size 256 --force`" in verified
    assert sum(line.endswith(": ok, SHA-256 " + _sha(tiny_biggan["config.json"])) for line in verified) == 2
    assert result.exit_code == 2


def test_an_earlier_versions_record_is_checked_once_then_stamped(server, tiny_biggan, monkeypatch):
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    for f, data in tiny_biggan.items():  # the cache as an earlier version left it: a .sha256 record, no stamp
        Path(f"{folder / f}.stamp").unlink()
        Path(f"{folder / f}.sha256").write_text(_sha(data) + "\n")
    hashed = []
    monkeypatch.setattr(weights, "sha256_of", lambda path: hashed.append(path.name) or fetch.sha256_of(path))
    weights.biggan_dir("biggan-deep-128", progress=False)
    assert sorted(hashed) == sorted(tiny_biggan)
    assert all(_sha_record(folder / f) == _sha(data) for f, data in tiny_biggan.items())
    assert not list(folder.glob("*.sha256"))
    weights.biggan_dir("biggan-deep-128", progress=False)
    assert len(hashed) == 2  # stamped: not hashed again


def test_a_2019_checkpoint_loads_as_the_same_generator(tmp_path):
    """The released files predate spectral norm's ``weight_v`` (they hold ``weight`` instead) and torch's zip format;
    spectral norm's own load hook upgrades them, and the generator computes what the new-format file computes."""
    from textsleep.models import load_biggan
    from textsleep.testing import write_biggan

    new = write_biggan(tmp_path / "new", size=128, channel_width=4)
    state = torch.load(new / "pytorch_model.bin", weights_only=True)
    old = {key: value for key, value in state.items() if not key.endswith(".weight_v")}
    for key in [k[: -len("_orig")] for k in state if k.endswith(".weight_orig")]:
        matrix = state[f"{key}_orig"].flatten(1)
        old[key] = state[f"{key}_orig"] / (state[f"{key}_u"] @ matrix @ state[f"{key}_v"])
    assert len(old) > len(state) - len(old)  # (a real difference: dozens of spectral norms)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text((new / "config.json").read_text())
    torch.save(old, tmp_path / "old" / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    z, classes = torch.randn(1, 128, generator=torch.Generator().manual_seed(0)), torch.eye(1000)[[7]]
    with torch.no_grad():
        pictures = [load_biggan(str(folder))(z, classes, 0.4) for folder in (new, tmp_path / "old")]
    assert pictures[0].shape == (1, 3, 128, 128) and pictures[0].std() > 0.01
    torch.testing.assert_close(pictures[1], pictures[0], atol=1e-4, rtol=1e-3)


def test_two_processes_downloading_at_once_make_one_good_file(server, tiny_biggan, tmp_path):
    server.piece_delay = 0.01  # about 0.6 s for the whole file: the second process arrives mid-transfer
    url, dest, go = f"{server.url}/plain/pytorch_model.bin", tmp_path / "c.bin", tmp_path / "go"
    code = _LIGHT_IMPORT + (
        "import pathlib, time\n"
        "print('ready', flush=True)\n"
        "while not pathlib.Path(sys.argv[3]).exists(): time.sleep(0.005)\n"
        "print(weights.download(sys.argv[1], pathlib.Path(sys.argv[2]), progress=False, plain_http=True))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, str(dest), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out.strip() == str(dest)
    assert server.gets("plain/pytorch_model.bin") == [None]  # the second waited for the lock and found the file done
    assert _sha(dest.read_bytes()) == _sha(tiny_biggan["pytorch_model.bin"]) == _sha_record(dest)


def test_progress_bar_goes_to_stderr_only_when_asked(server, tmp_path, capfd):
    url = f"{server.url}/plain/pytorch_model.bin"
    weights.download(url, tmp_path / "quiet.bin", progress=False, plain_http=True)
    assert capfd.readouterr() == ("", "")
    weights.download(url, tmp_path / "loud.bin", progress=True, plain_http=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "loud.bin" in err and "100%" in err and "3.38M/3.38M" in err and "B/s" in err


# --------------------------------------------------------------------------------------------- no network
def test_offline_fails_within_seconds_with_what_to_do(cache, closed_port, monkeypatch):
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{closed_port}/")
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        weights.biggan_dir("biggan-deep-256", progress=False)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert f"http://127.0.0.1:{closed_port}/biggan-deep-256-" in message
    assert str(cache / "biggan" / "biggan-deep-256") in message
    assert (
        "--biggan DIR" in message and "pytorch_model.bin + config.json" in message and "TEXTSLEEP_BIGGAN_URL" in message
    )


def test_offline_128_tries_its_hub_copy_and_still_fails_fast(cache, closed_port, monkeypatch):
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{closed_port}")
    start = time.monotonic()
    with pytest.raises(UserError, match=r"127\.0\.0\.1.*osanseviero/BigGAN-deep-128"):
        weights.biggan_dir("biggan-deep-128", progress=False)
    assert time.monotonic() - start < 5


def test_128_comes_from_the_hub_cache_when_the_mirror_is_down(cache, closed_port, tiny_biggan, tmp_path, monkeypatch):
    from huggingface_hub import constants

    revision = "0" * 40
    repo = tmp_path / "hub" / "models--osanseviero--BigGAN-deep-128"
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    for f, data in tiny_biggan.items():
        (repo / "snapshots" / revision / f).write_bytes(data)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(fetch, "_BACKOFF_S", 0.01)
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{closed_port}")
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    for f, data in tiny_biggan.items():
        assert (folder / f).read_bytes() == data and _sha_record(folder / f) == _sha(data)


def test_a_silent_server_times_out(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepts connections, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x.bin"
        start = time.monotonic()
        with pytest.raises(UserError, match=r"x\.bin \(timed out; 2 tries\)"):
            weights.download(url, tmp_path / "x.bin", progress=False, plain_http=True, timeout=0.3, retries=1)
        assert time.monotonic() - start < 3


# --------------------------------------------------------------------------------------------- the disk
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full to stand in for a full disk")
def test_disk_full_while_writing(server, tiny_biggan, tmp_path):
    dest = tmp_path / "w.bin"
    (tmp_path / "w.bin.part").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(
        UserError, match=r"writing .*w\.bin\.part failed \(No space left on device\).*TEXTSLEEP_CACHE.*resumes"
    ):
        weights.download(f"{server.url}/plain/pytorch_model.bin", dest, progress=False, plain_http=True)
    assert not dest.exists() and not Path(f"{dest}.stamp").exists()
    assert len(server.gets("plain/pytorch_model.bin")) == 1  # a write error is not a network error: no retry
    (tmp_path / "w.bin.part").unlink()
    weights.download(f"{server.url}/plain/pytorch_model.bin", dest, progress=False, plain_http=True)
    assert dest.read_bytes() == tiny_biggan["pytorch_model.bin"]


def test_cache_path_through_a_file_is_not_writable(server, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("TEXTSLEEP_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(UserError, match=r"file/cache/biggan/biggan-deep-256.*not writable.*TEXTSLEEP_CACHE"):
        weights.biggan_dir("biggan-deep-256", progress=False)


def _in_child(fn, *, uid: int | None = None) -> str:
    """Run ``fn()`` in a forked child (as ``uid`` if given) and return what it returned, or its UserError's message."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no threads; always leaves through os._exit
        code = 0
        try:
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            try:
                answer = "ok " + str(fn())
            except UserError as err:
                answer = str(err)
            os.write(write, answer.encode())
        except BaseException as err:  # pragma: no cover - reported by the parent
            os.write(write, f"child failed: {err!r}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, answer
    return answer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_read_only_cache(server, cache, monkeypatch):
    """An empty read-only cache is a clear error; a complete read-only copy is served without writing.

    Root ignores permissions, so as root the calls run in a child that has become ``nobody``.
    """
    weights.biggan_dir("biggan-deep-256", progress=False)
    requests = len(server.requests)
    uid = 65534 if os.geteuid() == 0 else None
    ro = Path(tempfile.mkdtemp(prefix="textsleep-ro-"))  # outside tmp_path, whose parents nobody may not enter
    try:
        (ro / "empty").mkdir()
        shutil.copytree(cache, ro / "full", ignore=shutil.ignore_patterns("*.lock"))
        for path in sorted(ro.rglob("*"), reverse=True) + [ro]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        monkeypatch.setenv("TEXTSLEEP_CACHE", str(ro / "empty"))
        empty = _in_child(lambda: weights.biggan_dir("biggan-deep-256", progress=False), uid=uid)
        assert re.search(rf"{re.escape(str(ro / 'empty'))}.*not writable.*TEXTSLEEP_CACHE", empty), empty
        monkeypatch.setenv("TEXTSLEEP_CACHE", str(ro / "full"))
        full = _in_child(lambda: weights.biggan_dir("biggan-deep-256", progress=False), uid=uid)
        assert full == f"ok {ro / 'full' / 'biggan' / 'biggan-deep-256'}"
        assert len(server.requests) == requests  # neither case touched the network
    finally:
        for path in [ro, *ro.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(ro)


def test_import_has_no_side_effects(tmp_path):
    env = {**os.environ, "TEXTSLEEP_CACHE": str(tmp_path / "cache"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    run = subprocess.run(
        [sys.executable, "-c", _LIGHT_IMPORT + "weights.cache_root()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- what is kept
class _NoLength(http.server.BaseHTTPRequestHandler):
    """Answers with no Content-Length and closes the connection after ``body`` (HTTP/1.0): a cut looks like an end."""

    files: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            return self.send_error(404)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def no_length_server(cache, monkeypatch):
    handler = type("Handler", (_NoLength,), {"files": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield handler.files
    httpd.shutdown()
    httpd.server_close()


def test_a_body_cut_short_with_no_length_is_not_kept(no_length_server, tiny_biggan, cache):
    name = "biggan-deep-128"
    no_length_server.update({f"{name}-{f}": data for f, data in tiny_biggan.items()})
    no_length_server[f"{name}-pytorch_model.bin"] = tiny_biggan["pytorch_model.bin"][:-5000]  # the server hung up
    with pytest.raises(UserError, match=r"no length was sent and the \d+ bytes received are not a whole file"):
        weights.biggan_dir(name, progress=False)
    folder = cache / "biggan" / name
    assert not (folder / "pytorch_model.bin").exists() and not (folder / "pytorch_model.bin.stamp").exists()
    no_length_server[f"{name}-pytorch_model.bin"] = tiny_biggan["pytorch_model.bin"]  # whole: it loads, it is kept
    assert (weights.biggan_dir(name, progress=False) / "pytorch_model.bin").read_bytes() == tiny_biggan[
        "pytorch_model.bin"
    ]


def test_a_huge_config_is_refused(server, tiny_biggan, cache):
    server.files["biggan-deep-128-config.json"] = b" " * (40 << 20)
    with pytest.raises(UserError, match=r"41943040 bytes, more than the 65536 a config\.json may have"):
        weights.biggan_dir("biggan-deep-128", progress=False)
    assert [p.name for p in (cache / "biggan" / "biggan-deep-128").glob("config.json*")] == ["config.json.lock"]


@pytest.mark.parametrize("mirror", ["file:///etc/passwd#", "ftp://127.0.0.1/mirror"])
def test_other_schemes_are_refused(mirror, cache, monkeypatch, one_line_error):
    from typer.testing import CliRunner

    from textsleep.cli import app

    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", mirror)
    with pytest.raises(UserError, match=r"is not fetched, only https://"):
        weights.biggan_dir("biggan-deep-128", progress=False)
    result = CliRunner().invoke(app, ["download", "--size", "128", "--no-clip"])
    assert result.exit_code == 2
    one_line_error(result, "is not fetched, only https://")
    assert not [p for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]


def test_plain_http_only_from_a_source_the_user_gave(server, tmp_path):
    url = f"{server.url}/plain/config.json"
    with pytest.raises(UserError, match="plain http is fetched only from a mirror you configured"):
        fetch.download(url, tmp_path / "c.json", progress=False)
    assert server.gets("plain/config.json") == []
    assert fetch.download(url, tmp_path / "c.json", progress=False, plain_http=True).is_file()


def test_a_mirror_may_be_a_folder_path(tiny_biggan, cache, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for f, data in tiny_biggan.items():
        (mirror / f"biggan-deep-128-{f}").write_bytes(data)
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", str(mirror))
    folder = weights.biggan_dir("biggan-deep-128", progress=False)
    for f, data in tiny_biggan.items():
        assert (folder / f).read_bytes() == data and _sha_record(folder / f) == _sha(data)
    (mirror / "RealESRGAN_x4plus.pth").write_bytes(b"not the release")
    monkeypatch.setenv("TEXTSLEEP_UPSCALER_URL", str(mirror))
    with pytest.raises(UserError, match=r"RealESRGAN_x4plus\.pth is not the published file"):
        weights.upscaler_file("RealESRGAN_x4plus", progress=False)  # read from the folder, and checked
    assert not (cache / "upscale" / "RealESRGAN_x4plus.pth").exists()


def test_a_mirror_serving_other_files_as_the_released_256_is_refused(tiny_biggan, cache, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for f, data in tiny_biggan.items():
        (mirror / f"biggan-deep-256-{f}").write_bytes(data)
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", str(mirror))
    with pytest.raises(UserError, match=r"is not the published file \(\d+ bytes with SHA-256 [0-9a-f]{64}, not the"):
        weights.biggan_dir("biggan-deep-256", progress=False)
    assert weights.PINNED["biggan-deep-256"]["config.json"][0].startswith("edd106f6")
    assert not [p for p in (cache / "biggan" / "biggan-deep-256").glob("*") if not p.name.endswith(".lock")]


def test_a_truncated_cached_file_is_moved_aside_with_what_to_do(tiny_biggan, cache):
    from textsleep.models import load_biggan

    folder = cache / "biggan" / "biggan-deep-128"
    folder.mkdir(parents=True)
    (folder / "config.json").write_bytes(tiny_biggan["config.json"])
    (folder / "pytorch_model.bin").write_bytes(tiny_biggan["pytorch_model.bin"][:100_000])  # copied in, cut short
    with pytest.raises(UserError, match=r"moved aside to pytorch_model\.bin\.damaged.*textsleep download --size 128"):
        load_biggan("biggan-deep-128")
    assert not (folder / "pytorch_model.bin").exists() and (folder / "pytorch_model.bin.damaged").is_file()
