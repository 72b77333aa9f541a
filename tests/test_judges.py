"""Judges trained on human preference: the published formats, preprocessing and scales, on random weights."""

import hashlib
import importlib.util
import os
import time
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from textsleep.errors import UserError
from textsleep.fastclip import block_options
from textsleep.judges import JUDGES, load_judge, parse_judge, self_judging
from textsleep.scorers import aesthetic_head, crop_preprocess, hps_preprocess
from textsleep.settings import ClipSpec
from textsleep.testing import write_aesthetic, write_hps, write_pickscore

# The ViT-H-14 that HPS's own code builds (tgxs002/HPSv2 at 866735e, hpsv2/src/open_clip, create_model("ViT-H-14")):
# its 686 state-dict entries as "key (shape)" lines, sorted, hashed.  HPS checkpoints hold exactly these.
HPS_ENTRIES = 686
HPS_KEYS_SHA256 = "e8c4c7fb33610e2fabd57424351e6a9095993cd49a0c27633e995eed05ac83c6"
# The published aesthetic predictor, sac+logos+ava1-l14-linearMSE.pth (christophschuhmann/improved-aesthetic-predictor
# at 6934dd8): its entries and shapes.
AESTHETIC_ENTRIES = {
    "layers.0.weight": (1024, 768),
    "layers.0.bias": (1024,),
    "layers.2.weight": (128, 1024),
    "layers.2.bias": (128,),
    "layers.4.weight": (64, 128),
    "layers.4.bias": (64,),
    "layers.6.weight": (16, 64),
    "layers.6.bias": (16,),
    "layers.7.weight": (1, 16),
    "layers.7.bias": (1,),
}


def _fingerprint(state: dict) -> tuple[int, str]:
    lines = "\n".join(f"{k} {tuple(v.shape)}" for k, v in sorted(state.items()))
    return len(state), hashlib.sha256(lines.encode()).hexdigest()


def _picture(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random picture (3, h, w) in [0, 1], exactly representable in 8 bits."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 16), max(2, w // 16), generator=g)
    return (F.interpolate(coarse, size=(h, w), mode="bilinear")[0] * 255).round() / 255


def _pil(picture: torch.Tensor) -> Image.Image:
    return Image.fromarray((picture * 255).round().byte().permute(1, 2, 0).numpy())


# ---------------------------------------------------------------------------------------------- HPS
def _hps_published_view(image: Image.Image, size: int = 224) -> torch.Tensor:
    """HPS's evaluation transform as its repository writes it (hpsv2/src/open_clip/transform.py, image_transform
    with resize_longest_max=True): ToTensor, ResizeMaxSize (bicubic, pad with 0 to a centred square), Normalize."""
    img = TF.to_tensor(image.convert("RGB"))
    height, width = img.shape[1:]
    scale = size / float(max(height, width))
    if scale != 1.0:
        new_size = tuple(round(dim * scale) for dim in (height, width))
        img = TF.resize(img, new_size, InterpolationMode.BICUBIC)
        pad_h, pad_w = size - new_size[0], size - new_size[1]
        img = TF.pad(img, padding=[pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)
    return TF.normalize(img, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)


@pytest.mark.parametrize("h, w", [(512, 512), (300, 200), (128, 160), (97, 301), (640, 480)])
def test_hps_view_is_the_published_transform(h, w):
    picture = _picture(h, w)
    ours = hps_preprocess(picture[None])[0]
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(3, 1, 1)
    assert ours.shape == (3, 224, 224)
    torch.testing.assert_close((ours - mean) / std, _hps_published_view(_pil(picture)), atol=1e-5, rtol=0)


def test_vit_h_14_has_the_hps_checkpoint_entries():
    for options in ({}, block_options("ViT-H-14")):  # the loader asks for open_clip's batch-first blocks
        with torch.device("meta"):
            model = open_clip.create_model("ViT-H-14", pretrained=None, load_weights=False, device="meta", **options)
        assert _fingerprint(model.state_dict()) == (HPS_ENTRIES, HPS_KEYS_SHA256)


@pytest.mark.dream  # a full-size ViT-H-14: 2 GB written, 4 GB in memory, about a minute
def test_a_full_size_hps_checkpoint_loads_strictly_and_scores(tmp_path):
    with torch.device("meta"):
        shapes = open_clip.create_model("ViT-H-14", pretrained=None, load_weights=False, device="meta").state_dict()
    # random weights: a million draws tiled over one buffer (a billion draws would take longer than all the rest)
    total = sum(meta.numel() for meta in shapes.values())
    pool = torch.randn(1 << 20, generator=torch.Generator().manual_seed(0)).mul_(0.02).half()
    buffer = pool.repeat(-(-(total + len(shapes)) // pool.numel()))
    state, at = {}, 0
    for key, meta in shapes.items():
        state[key] = buffer[at : at + meta.numel()].view(meta.shape)
        at += meta.numel() + 1  # (each entry starts at another place in the pool)
    state["logit_scale"].fill_(4.6)
    file = tmp_path / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": state}, file)  # HPS's format (its "compressed" files hold float16 weights)
    probe = {k: state[k].float() for k in ("visual.conv1.weight", "token_embedding.weight", "ln_final.bias")}
    del state
    start = time.perf_counter()
    judge = load_judge(f"hps-v2.1={file}")
    print(f"ViT-H-14 HPS checkpoint loaded in {time.perf_counter() - start:.1f} s")
    assert judge.clip.name == "ViT-H-14" and judge.image_size == 224
    loaded = judge.clip.model.state_dict()
    assert _fingerprint(torch.load(file, weights_only=True, mmap=True)["state_dict"]) == (HPS_ENTRIES, HPS_KEYS_SHA256)
    torch.testing.assert_close(loaded["token_embedding.weight"], probe["token_embedding.weight"])
    torch.testing.assert_close(loaded["ln_final.bias"], probe["ln_final.bias"])
    # (the patch convolution is held as a matmul's weight: the same numbers, flattened)
    patch = judge.clip.model.visual.conv1.weight
    torch.testing.assert_close(patch.reshape(probe["visual.conv1.weight"].shape), probe["visual.conv1.weight"])
    with torch.inference_mode():
        scores = judge.score(_picture(256, 256)[None], "a red fox in the snow")
    assert scores.shape == (1,) and torch.isfinite(scores).all() and (scores.abs() <= 100).all()


@pytest.fixture(scope="module")
def hps_folder(tmp_path_factory):
    return write_hps(tmp_path_factory.mktemp("hps"), "v2.1", seed=3)


def _reference_hps(folder: Path, pictures: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """100 × cosine as HPS computes it, with open_clip's model built and loaded the ordinary way."""
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False).eval()
    model.load_state_dict(torch.load(folder / "HPS_v2.1_compressed.pt", weights_only=True)["state_dict"])
    size = model.visual.image_size[0]
    images = torch.stack([_hps_published_view(_pil(p), size) for p in pictures])
    with torch.no_grad():
        image = model.encode_image(images, normalize=True)
        text = model.encode_text(open_clip.get_tokenizer(f"local-dir:{folder}")(prompts), normalize=True)
    return 100 * (image * text).sum(-1)


def test_hps_judge_scores_as_hps_does(hps_folder):
    judge = load_judge(f"hps-v2.1={hps_folder}")
    pictures = torch.stack([_picture(128, 128), _picture(128, 128, 1)])
    prompts = ["a lighthouse at dusk", "a red fox in snow"]
    with torch.inference_mode():
        ours = judge.score(pictures, prompts)
    torch.testing.assert_close(ours, _reference_hps(hps_folder, pictures, prompts), atol=2e-3, rtol=0)
    assert judge.describe() == {"name": "hps-v2.1", "source": str(hps_folder / JUDGES["hps-v2.1"].file),
                                "scale": "100 × cosine"}  # fmt: skip


def test_hps_judge_is_differentiable(hps_folder):
    judge = load_judge(f"hps-v2.1={hps_folder}")
    picture = _picture(64, 64)[None].requires_grad_(True)
    judge.score(picture, "a lighthouse").sum().backward()
    assert picture.grad is not None and picture.grad.abs().sum() > 0
    # and the gradient is the score's: a small step along it raises the score
    with torch.no_grad():
        before = judge.score(picture, "a lighthouse")
        after = judge.score(picture + 1e-3 * picture.grad / picture.grad.norm(), "a lighthouse")
    assert after > before


def test_a_checkpoint_that_does_not_fit_is_one_line(hps_folder, tmp_path):
    state = torch.load(hps_folder / "HPS_v2.1_compressed.pt", weights_only=True)["state_dict"]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "open_clip_config.json").write_text((hps_folder / "open_clip_config.json").read_text())
    missing = {k: v for k, v in state.items() if k != "ln_final.weight"}
    torch.save({"state_dict": missing}, bad / "HPS_v2.1_compressed.pt")
    with pytest.raises(UserError, match=r"does not fit HPS v2.1.*ln_final\.weight") as err:
        load_judge(f"hps-v2.1={bad}")
    assert "\n" not in str(err.value)
    (bad / "HPS_v2.1_compressed.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot be read as the hps-v2.1 judge's checkpoint"):
        load_judge(f"hps-v2.1={bad}")
    with pytest.raises(UserError, match="the folder has no HPS_v2_compressed.pt"):
        load_judge(f"hps-v2={bad}")


def _hub_cache(tmp_path, monkeypatch, repo: str, filename: str, source: Path) -> Path:
    """``source`` placed in a Hugging Face cache as the Hub's downloads leave it."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    (snapshot / filename).write_bytes(source.read_bytes())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return snapshot / filename


def test_offline_without_the_weights_says_how_to_get_them_within_seconds(monkeypatch):
    for name in ("hps-v2.1", "hps-v2", "aesthetic"):
        start = time.perf_counter()
        with pytest.raises(UserError) as err:
            load_judge(name)
        assert time.perf_counter() - start < 5
        message = str(err.value)
        assert "HF_HUB_OFFLINE" in message and f"textsleep download --judge {name}" in message
        assert f"--judge {name}=FILE" in message and JUDGES[name].file in message and "\n" not in message


def test_hps_weights_come_from_the_hub_cache(hps_folder, tmp_path, monkeypatch):
    _hub_cache(tmp_path, monkeypatch, "xswu/HPSv2", "HPS_v2.1_compressed.pt", hps_folder / "HPS_v2.1_compressed.pt")
    # found offline, and loaded strictly into the real architecture: this tiny file is not a ViT-H-14
    with pytest.raises(UserError, match=r"HPS_v2.1_compressed.pt does not fit HPS v2.1's ViT-H-14: .*Missing key"):
        load_judge("hps-v2.1")


# ---------------------------------------------------------------------------------------------- aesthetic
def test_aesthetic_mlp_has_the_published_entries():
    assert {k: tuple(v.shape) for k, v in aesthetic_head(768).state_dict().items()} == AESTHETIC_ENTRIES


@pytest.fixture(scope="module")
def aesthetic_folder(tmp_path_factory):
    return write_aesthetic(tmp_path_factory.mktemp("aesthetic"), seed=4)


def test_aesthetic_is_its_mlp_on_the_normalised_embedding(aesthetic_folder):
    judge = load_judge(f"aesthetic={aesthetic_folder}")
    pictures = torch.stack([_picture(96, 128), _picture(96, 128, 1)])
    seen = []
    judge.head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.inference_mode():
        ours = judge.score(pictures)
    # the MLP reads unit-length embeddings of CLIP's view (shortest side to its input size, centre crop)
    model, clip = judge.clip.model, judge.clip
    view = crop_preprocess(pictures, clip.image_size)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (clip.mean, clip.std))
    with torch.no_grad():
        embedding = F.normalize(model.encode_image((view - mean) / std), dim=-1)
    torch.testing.assert_close(seen[0], embedding, atol=1e-5, rtol=0)
    torch.testing.assert_close(seen[0].norm(dim=-1), torch.ones(2))
    assert ours.shape == (2,)
    with torch.no_grad():
        torch.testing.assert_close(ours, judge.head(embedding).squeeze(-1), atol=1e-5, rtol=0)


def test_aesthetic_score_is_the_predictor_s_own_rating(aesthetic_folder, tmp_path):
    """No rescaling: a predictor that rates everything 6.5 gives 6.5 (its scale is the 1–10 of its training)."""
    state = torch.load(aesthetic_folder / JUDGES["aesthetic"].file, weights_only=True)
    state["layers.7.weight"].zero_()
    state["layers.7.bias"].fill_(6.5)
    folder = tmp_path / "flat"
    folder.mkdir()
    for f in aesthetic_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    torch.save(state, folder / JUDGES["aesthetic"].file)
    judge = load_judge(f"aesthetic={folder}")
    with torch.inference_mode():
        scores = judge.score(torch.stack([_picture(64, 64), _picture(64, 64, 2)]))
    torch.testing.assert_close(scores, torch.full((2,), 6.5))
    assert judge.describe()["scale"] == "1–10"


def test_aesthetic_mlp_for_another_embedding_size_is_refused(aesthetic_folder, tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    for f in aesthetic_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    torch.save(aesthetic_head(768).state_dict(), folder / JUDGES["aesthetic"].file)
    with pytest.raises(UserError, match="an MLP on 768-d embeddings, but .* gives 32-d ones"):
        load_judge(f"aesthetic={folder}")


def test_the_hub_copy_of_the_aesthetic_file_must_be_the_published_one(aesthetic_folder, tmp_path, monkeypatch):
    name = JUDGES["aesthetic"].file
    _hub_cache(tmp_path, monkeypatch, JUDGES["aesthetic"].repo, name, aesthetic_folder / name)
    with pytest.raises(UserError, match="is not the published predictor .*christophschuhmann/improved-aesthetic"):
        load_judge("aesthetic")


# ---------------------------------------------------------------------------------------------- PickScore
@pytest.fixture(scope="module")
def transformers():
    if importlib.util.find_spec("transformers") is None:
        if os.environ.get("CI"):
            pytest.fail("transformers is not installed (pip install -e '.[test]' brings it)")
        pytest.skip("transformers is not installed (pip install 'textsleep[judges]')")
    import transformers

    return transformers


@pytest.fixture(scope="module")
def pickscore_folder(transformers, tmp_path_factory):
    return write_pickscore(tmp_path_factory.mktemp("pickscore"), seed=5)


def test_pickscore_equals_clipmodel_logits(transformers, pickscore_folder):
    judge = load_judge(f"pickscore={pickscore_folder}")
    model = transformers.CLIPModel.from_pretrained(pickscore_folder).eval()
    processor = transformers.AutoProcessor.from_pretrained(pickscore_folder)
    pictures = [_picture(512, 512), _picture(300, 200, 1)]
    prompt = "a lighthouse at dusk, oil painting"
    ours_view = torch.cat([judge.preprocess(p[None]) for p in pictures])
    published_view = processor(images=[_pil(p) for p in pictures], return_tensors="pt").pixel_values
    # the processor works on 8-bit images with PIL; ours in float: within one grey level
    torch.testing.assert_close(ours_view, published_view, atol=0.03, rtol=0)
    tokens = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.inference_mode():
        ours = torch.cat([judge.score(p[None], prompt) for p in pictures])
        logits = model(input_ids=tokens.input_ids, pixel_values=ours_view).logits_per_image[:, 0]
        published = model(input_ids=tokens.input_ids, pixel_values=published_view).logits_per_image[:, 0]
    torch.testing.assert_close(ours, logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(ours, published, atol=0.05, rtol=0)


def test_pickscore_offline_without_its_files(transformers, monkeypatch):
    with pytest.raises(UserError, match=r"cannot load PickScore's model .*HF_HUB_OFFLINE.*--judge pickscore=DIR"):
        load_judge("pickscore")


# ---------------------------------------------------------------------------------------------- names
def test_judge_names_and_paths(tmp_path):
    assert parse_judge("hps-v2.1") == ("hps-v2.1", None)
    assert parse_judge(f"HPS-v2={tmp_path}") == ("hps-v2", tmp_path)
    with pytest.raises(UserError, match="not a judge; known are clip, hps-v2.1, hps-v2, aesthetic, pickscore"):
        parse_judge("hps3")
    with pytest.raises(UserError, match="no such file or folder"):
        parse_judge(f"aesthetic={tmp_path / 'missing.pth'}")
    with pytest.raises(UserError, match="--judge-model and --judge-pretrained"):
        parse_judge(f"clip={tmp_path}")


def test_a_judge_that_guides_the_dream_is_found(tmp_path):
    hps_file = tmp_path / "HPS_v2.1_compressed.pt"
    hps_file.write_bytes(b"x")
    guides = [ClipSpec("ViT-B-32", "openai"), ClipSpec("ViT-H-14", str(hps_file), 0.5)]
    judges = [("clip", None), ("hps-v2.1", None), ("hps-v2", None), ("aesthetic", None)]
    assert self_judging(judges, guides, "ViT-L-14", "openai") == ["hps-v2.1"]
    assert self_judging(judges, guides, "ViT-B-32", "openai") == ["clip", "hps-v2.1"]
    renamed = tmp_path / "mine.pt"
    renamed.write_bytes(b"x")
    assert self_judging([("hps-v2.1", renamed)], [ClipSpec("ViT-H-14", str(renamed))], "ViT-L-14", "openai")
    assert self_judging([("pickscore", None)], [ClipSpec("pickscore", "")], "ViT-L-14", "openai") == ["pickscore"]
    assert self_judging([("clip", None)], guides, "ViT-B-32", "laion2b_s34b_b79k") == []


# ---------------------------------------------------------------------------------------------- downloads
class _Hub:
    """A Hugging Face Hub on 127.0.0.1: ``/[datasets/]REPO/resolve/main/FILE`` with the headers the Hub sends."""

    def __init__(self, files: dict[str, bytes]):
        import http.server
        import threading

        self.files, self.gets = files, []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _head(self) -> bytes | None:
                body = hub.files.get(self.path.split("?")[0])
                if body is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return None
                self.send_response(200)
                self.send_header("X-Repo-Commit", "2" * 40)
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return body

            def do_HEAD(self):
                self._head()

            def do_GET(self):
                hub.gets.append(self.path)
                body = self._head()
                if body is not None:
                    self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _point_at(hub: _Hub, monkeypatch, cache: Path) -> None:
    """huggingface_hub's endpoint (read once at its import) and cache, here."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))


def test_benchmark_prompts_are_downloaded_once_from_the_hub(tmp_path, monkeypatch):
    import json

    from huggingface_hub import constants

    from textsleep.hps import STYLES, benchmark_prompts

    prompts = {s: [f"{s} prompt {i}" for i in range(3)] for s in STYLES}
    hub = _Hub({f"/datasets/zhwang/HPDv2/resolve/main/benchmark/{s}.json": json.dumps(p).encode()
                for s, p in prompts.items()})  # fmt: skip
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _point_at(hub, monkeypatch, tmp_path / "hub")
    try:
        assert benchmark_prompts() == prompts
        files = sorted(g for g in hub.gets if g.startswith("/datasets/"))
        assert files == sorted(f"/datasets/zhwang/HPDv2/resolve/main/benchmark/{s}.json" for s in STYLES)
    finally:
        hub.stop()
    assert benchmark_prompts() == prompts  # the server is gone: from the cache
    # a file the Hub does not have is one line that says what else to do
    hub = _Hub({})
    _point_at(hub, monkeypatch, tmp_path / "other")
    try:
        with pytest.raises(UserError, match=r"download of zhwang/HPDv2/benchmark/anime.json failed .*hps=DIR"):
            benchmark_prompts()
    finally:
        hub.stop()


def test_doctor_and_download_know_the_judges(aesthetic_folder, tmp_path, monkeypatch, one_line_error):
    from typer.testing import CliRunner

    from textsleep.cli import app

    runner = CliRunner()
    doctor = runner.invoke(app, ["doctor"])
    assert doctor.exit_code == 0, doctor.output
    lines = {line.split()[1]: line for line in doctor.output.splitlines() if line.startswith("judge ")}
    assert set(lines) == {"hps-v2.1", "hps-v2", "aesthetic", "pickscore"}
    assert "not cached (textsleep download --judge hps-v2.1); xswu/HPSv2 (Apache-2.0)" in lines["hps-v2.1"]
    name = JUDGES["aesthetic"].file
    _hub_cache(tmp_path, monkeypatch, JUDGES["aesthetic"].repo, name, aesthetic_folder / name)
    doctor = runner.invoke(app, ["doctor"])
    assert any(line.startswith("judge aesthetic") and " cached;" in line for line in doctor.output.splitlines())
    result = runner.invoke(app, ["download", "--no-biggan", "--no-clip", "--judge", "hps-v3"])
    one_line_error(result, "--judge 'hps-v3': not a judge to fetch; known are hps-v2.1, hps-v2, aesthetic, pickscore")
    result = runner.invoke(app, ["download", "--no-biggan", "--no-clip", "--judge", "hps-v2"])
    one_line_error(result, "HPS_v2_compressed.pt (HF_HUB_OFFLINE is set)", "--judge hps-v2=FILE")
