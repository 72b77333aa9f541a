"""CLIP weights from the Hugging Face cache, with no network."""

from __future__ import annotations

import os


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
