"""Models of the real classes with random weights, and weight files in the real on-disk formats.

For tests, benchmarks and trying the whole program where no real weights can
be had: ``python -m textsleep.testing DIR [--full]`` writes a tiny (or
full-size) BigGAN folder and CLIP checkpoint and prints the ``textsleep``
command that uses them.  The pictures are noise; everything else is real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import open_clip
import torch
from pytorch_pretrained_biggan import BigGAN

from .fastclip import block_options
from .models import Clip, biggan_config, clip_name, prepare_biggan, wrap_clip

__all__ = ["random_biggan", "random_clip", "write_biggan", "write_clip", "TINY_CLIP_CONFIG"]


def random_biggan(size: int = 512, channel_width: int = 128, seed: int = 0, *, prepare: bool = True):
    """A BigGAN-deep of the real class with random weights (for tests and benchmarks).

    ``prepare=False`` returns it as a checkpoint would hold it (spectral norm not yet baked in).
    """

    torch.manual_seed(seed)
    model = BigGAN(biggan_config(size, channel_width))
    # the package creates the final batch norm's affine parameters uninitialised
    torch.nn.init.ones_(model.generator.bn.weight)
    torch.nn.init.zeros_(model.generator.bn.bias)
    # a trained model's spectral-norm vectors have converged; random ones would make sigma arbitrary
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "weight_orig"):
                u, _, vh = torch.linalg.svd(module.weight_orig.flatten(1), full_matrices=False)
                module.weight_u.copy_(u[:, 0])
                module.weight_v.copy_(vh[0])
    return prepare_biggan(model) if prepare else model


def random_clip(name: str = "ViT-B-32", seed: int = 0) -> Clip:
    """A CLIP of the real class with random weights (for tests and benchmarks)."""

    name = clip_name(name)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None, **block_options(name))
    return wrap_clip(name, "random", model)


TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_biggan(folder: Path, size: int = 128, channel_width: int = 4, seed: int = 0) -> Path:
    """A BigGAN-deep folder (config.json + pytorch_model.bin) as the released ones are laid out."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = random_biggan(size, channel_width, seed, prepare=False)
    (folder / "config.json").write_text(json.dumps(model.config.__dict__, indent=2))
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def write_clip(
    folder: Path, name: str = "textsleep-tiny-clip", config: dict | None = None, seed: int = 0
) -> tuple[Path, Path]:
    """An open_clip JSON config (``folder/NAME.json``) and a checkpoint of it (``folder/NAME.pt``)."""

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


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: python -m textsleep.testing DIR [--full]")
    out = Path(argv[0])
    full = "--full" in argv
    for size in (128, 256, 512) if full else (128,):
        write_biggan(out / f"biggan-deep-{size}", size, 128 if full else 4)
    if full:
        _, weights = write_clip(out, "ViT-B-32")
        print(
            f"textsleep 'upside down tree' --biggan {out}/biggan-deep-512 --clip-model ViT-B-32 --clip-pretrained "
            f"{weights}"
        )
    else:
        config, weights = write_clip(out)
        print(
            f"textsleep 'upside down tree' --biggan {out}/biggan-deep-128 --clip-model {config} --clip-pretrained "
            f"{weights}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
