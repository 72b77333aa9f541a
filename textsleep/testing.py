"""Models of the real classes with random weights, and weight files in the real on-disk formats.

For tests, benchmarks and trying the whole program where no real weights can
be had: ``python -m textsleep.testing DIR [--full]`` writes a tiny (or
full-size) BigGAN folder and CLIP checkpoint (and, with spandrel installed, a tiny
4x upscaler as Real-ESRGAN releases them) and prints the ``textsleep`` commands
that use them.  The pictures are noise; everything else is real.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch

from .fastclip import block_options
from .judges import JUDGES
from .lazy import biggan_package, open_clip
from .models import Clip, biggan_config, clip_name, prepare_biggan, wrap_clip
from .scorers import aesthetic_head

__all__ = [
    "random_biggan",
    "random_clip",
    "write_biggan",
    "write_clip",
    "write_hps",
    "write_aesthetic",
    "write_pickscore",
    "write_hps_prompts",
    "upscaler_state",
    "write_upscaler",
    "TINY_CLIP_CONFIG",
]


def random_biggan(size: int = 512, channel_width: int = 128, seed: int = 0, *, prepare: bool = True):
    """A BigGAN-deep of the real class with random weights (for tests and benchmarks).

    ``prepare=False`` returns it as a checkpoint would hold it (spectral norm not yet baked in).
    """

    torch.manual_seed(seed)
    model = biggan_package.BigGAN(biggan_config(size, channel_width))
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
    config_file, registered = folder / f"{name}.json", open_clip.get_model_config(name)
    config_file.write_text(json.dumps(config or registered or TINY_CLIP_CONFIG))  # (written even when registered)
    if config is not None or not registered:
        open_clip.add_model_config(config_file)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    weights = folder / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    return config_file, weights


# ---------------------------------------------------------------------------------------------- judges
def _open_clip_dir(folder: Path, config: dict, seed: int, *, weights: bool) -> torch.nn.Module:
    """An open_clip model in open_clip's ``local-dir`` layout: ``open_clip_config.json`` (+ its weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    torch.manual_seed(seed)
    model = open_clip.create_model(f"local-dir:{folder}", load_weights=False)
    if weights:
        torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return model


def write_hps(folder: Path, version: str = "v2.1", config: dict | None = None, seed: int = 0) -> Path:
    """An HPS judge folder: a checkpoint in HPS's format (``{"state_dict": …}``) of a tiny architecture.

    The architecture is named in ``open_clip_config.json`` beside it (``--judge hps-v2.1=FOLDER`` reads it);
    the real judge is ViT-H-14 with no such file.
    """
    folder = Path(folder)
    model = _open_clip_dir(folder, config or TINY_CLIP_CONFIG, seed, weights=False)
    file = folder / JUDGES[f"hps-{version}"].file
    torch.save({"state_dict": model.state_dict()}, file)
    return folder


def write_aesthetic(folder: Path, config: dict | None = None, seed: int = 0) -> Path:
    """An aesthetic judge folder: the predictor's MLP file (random) and the tiny CLIP it reads embeddings with."""
    folder = Path(folder)
    config = config or TINY_CLIP_CONFIG
    _open_clip_dir(folder, config, seed, weights=True)
    torch.manual_seed(seed + 1)
    torch.save(aesthetic_head(config["embed_dim"]).state_dict(), folder / JUDGES["aesthetic"].file)
    return folder


def write_pickscore(folder: Path, seed: int = 0) -> Path:
    """A PickScore folder as transformers saves one: a tiny random ``CLIPModel`` and a CLIP processor.

    The tokenizer's vocabulary is CLIP's own (open_clip's copy); the image processor has the settings of
    LAION's CLIP-H processor (shortest side 224, bicubic, centre crop 224, OpenAI mean and std).
    """
    import transformers  # noqa: PLC0415 (an optional extra)
    from open_clip.tokenizer import SimpleTokenizer  # noqa: PLC0415 (only for this writer)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32},
        projection_dim=16,
    )  # fmt: skip
    transformers.CLIPModel(config).save_pretrained(folder)
    bpe = SimpleTokenizer()
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    (folder / "vocab.json").write_text(json.dumps({names.get(k, k): v for k, v in bpe.encoder.items()}))
    merges = sorted(bpe.bpe_ranks, key=bpe.bpe_ranks.get)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    images = transformers.CLIPImageProcessor(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        resample=3,
        image_mean=list(open_clip.OPENAI_DATASET_MEAN),
        image_std=list(open_clip.OPENAI_DATASET_STD),
    )
    transformers.CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def write_hps_prompts(folder: Path, per_style: int = 3) -> Path:
    """The HPS benchmark's prompt files as the dataset holds them (``STYLE.json``, a JSON list), made up."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    subjects = ["a lighthouse at dusk", "a red fox in snow", "a city of glass: morning", "an old | new bridge"]
    for style in ("anime", "concept-art", "paintings", "photo"):
        prompts = [f"{subjects[i % len(subjects)]}, {style} style" for i in range(per_style)]
        (folder / f"{style}.json").write_text(json.dumps(prompts))
    return folder


# The key names of Real-ESRGAN's released RRDBNet files (the "new" ESRGAN layout) for spandrel's own (old-layout)
# parameter names; spandrel translates them back on load.
_RELEASED = {"0": "conv_first", "3": "conv_up1", "6": "conv_up2", "8": "conv_hr", "10": "conv_last"}


def upscaler_state(scale: int, *, blocks: int = 1, features: int = 8, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """A random RRDBNet of spandrel's ESRGAN class and its ``{"params_ema": state}`` as in RealESRGAN_x{scale}plus.pth.

    Like the released x2plus, the 2x network is the 4x one fed a pixel-unshuffled picture (12 input channels).
    The last bias is mid-grey so outputs are pictures, not clipped black.
    """
    from spandrel.architectures.ESRGAN import ESRGAN  # noqa: PLC0415 (an optional extra)

    torch.manual_seed(seed)
    net = ESRGAN(
        in_nc=12 if scale == 2 else 3,
        out_nc=3,
        num_filters=features,
        num_blocks=blocks,
        scale=4,
        shuffle_factor=2 if scale == 2 else None,
    )
    with torch.no_grad():
        net.model[10].bias += 0.5
    state = {}
    for key, value in net.state_dict().items():
        rdb = re.fullmatch(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", key)
        if rdb:
            state[f"body.{rdb[1]}.rdb{rdb[2]}.conv{rdb[3]}.{rdb[4]}"] = value.clone()
            continue
        index, sub, kind = re.fullmatch(r"model\.(\d+)\.(?:sub\.(\d+)\.)?(weight|bias)", key).groups()
        state[f"{'conv_body' if sub else _RELEASED[index]}.{kind}"] = value.clone()
    return net, {"params_ema": state}


def write_upscaler(file: Path, scale: int = 4, seed: int = 0) -> Path:
    """A tiny random upscaler ``.pth`` in the released Real-ESRGAN format (needs spandrel, the upscale extra)."""
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(upscaler_state(scale, seed=seed)[1], file)
    return file


TRY_IT = "--size 128 --iterations 30 --cutouts 8 --save-every 3 --save-progress"
"""The options of the dream :func:`main` prints: few steps and cutouts, a picture saved every 3 steps."""


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
        return
    config, weights = write_clip(out)
    dream = f"--biggan {out}/biggan-deep-128 --clip-model {config} --clip-pretrained {weights}"
    # a short dream (well under a minute on two CPU cores) whose progress/ shows the picture changing step by step
    print(f"textsleep 'upside down tree' {dream} {TRY_IT} --out {out}/outputs")
    hps, aesthetic = write_hps(out / "hps-v2.1"), write_aesthetic(out / "aesthetic")
    prompts = write_hps_prompts(out / "hps-prompts")
    print(
        f"textsleep eval --benchmark hps={prompts} --limit 2 --judge hps-v2.1={hps} --judge aesthetic={aesthetic} "
        f"{dream} --iterations 2 --cutouts 4 --size 128 --out {out}/benchmark"
    )
    try:
        upscaler = write_upscaler(out / "upscaler_x4.pth")
    except ImportError:
        print('# pip install "textsleep[upscale]" and run this again for a tiny upscaler too')
        return
    print(f"textsleep upscale {out}/outputs/upside_down_tree/image.png --upscaler {upscaler}")
    print(f"# or upscale as the dream ends: add --upscale 4 --upscaler {upscaler} to the first command")


if __name__ == "__main__":
    main(sys.argv[1:])
