"""Weight files in the real on-disk formats, with random values.

Tests use tiny ones; ``python tests/randomweights.py DIR [--full]`` writes a
BigGAN folder and a CLIP checkpoint a user could point textsleep at
(``--biggan DIR/biggan-deep-SIZE --clip-model ... --clip-pretrained DIR/clip.pt``),
to try the whole program where no real weights can be had.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_biggan(folder: Path, size: int = 128, channel_width: int = 4, seed: int = 0) -> Path:
    """A BigGAN-deep folder (config.json + pytorch_model.bin) as the released ones are laid out."""
    from textsleep.models import random_biggan

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = random_biggan(size, channel_width, seed, prepare=False)
    (folder / "config.json").write_text(json.dumps(model.config.__dict__, indent=2))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def write_clip(folder: Path, name: str = "textsleep-tiny-clip", config: dict | None = None, seed: int = 0) -> tuple[Path, Path]:
    """An open_clip JSON config (``folder/NAME.json``) and a checkpoint of it (``folder/NAME.pt``)."""
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / f"{name}.json"
    if config is not None or not open_clip.get_model_config(name):
        config_file.write_text(json.dumps(config or TINY_CLIP_CONFIG))
        open_clip.add_model_config(config_file)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    weights = folder / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    return config_file, weights


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    out = Path(sys.argv[1])
    full = "--full" in sys.argv
    for size in (128, 256, 512) if full else (128,):
        write_biggan(out / f"biggan-deep-{size}", size, 128 if full else 4)
    if full:
        _, weights = write_clip(out, "ViT-B-32")
        print(f"textsleep 'upside down tree' --biggan {out}/biggan-deep-512 --clip-model ViT-B-32 --clip-pretrained {weights}")
    else:
        config, weights = write_clip(out)
        print(f"textsleep 'upside down tree' --biggan {out}/biggan-deep-128 --clip-model {config} --clip-pretrained {weights}")
