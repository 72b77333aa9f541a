"""Loading BigGAN-deep and CLIP, strictly, once.

``load_biggan`` and ``load_clip`` return models in eval mode with frozen
weights, ready for the dream loop.  Weight files are loaded with
``weights_only=True`` and ``strict=True``: a file that does not match its
architecture is an error that names the offending keys, never a model that
silently keeps random weights.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants, try_to_load_from_cache
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import weights
from .errors import UserError, one_line
from .fastclip import block_options, speed_up
from .fetch import hub_problem
from .lazy import biggan_package, open_clip

__all__ = [
    "Clip",
    "load_biggan",
    "biggan_folder_size",
    "load_clip",
    "biggan_config",
    "ModelCache",
]

# (upsample?, in, out) multiples of channel_width, per BigGAN-deep size; attention sits before block 8.
_BASE_LAYERS = [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8)]
_TAIL_LAYERS = [(True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)]
_LAYERS = {
    128: _BASE_LAYERS + _TAIL_LAYERS,
    256: _BASE_LAYERS + [(True, 8, 8), (False, 8, 8)] + _TAIL_LAYERS,
    512: _BASE_LAYERS + [(True, 8, 8), (False, 8, 8)] + _TAIL_LAYERS + [(False, 1, 1), (True, 1, 1)],
}


# ---------------------------------------------------------------------------------------------- BigGAN
def biggan_config(size: int, channel_width: int = 128):
    """The BigGAN-deep architecture of a given output size (``channel_width`` 128 is the released one)."""

    if size not in _LAYERS:
        raise UserError(f"--size {size!r}: allowed sizes are {', '.join(map(str, _LAYERS))}")
    return biggan_package.BigGANConfig(
        output_dim=size, channel_width=channel_width, layers=list(_LAYERS[size]), attention_layer_position=8
    )


def biggan_folder_size(name_or_path: str) -> int | None:
    """The picture size of the BigGAN in a local folder, read from its ``config.json`` (None for a shortcut name, a
    URL, or a folder without a readable config: those are checked when they load).
    """
    config = Path(name_or_path).expanduser() / "config.json"
    try:
        size = json.loads(config.read_text()).get("output_dim") if config.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return size if isinstance(size, int) else None


def load_biggan(name_or_path: str, device: torch.device | str = "cpu", *, progress: bool = True):
    """Load a BigGAN-deep from a shortcut name, a local folder or a URL (see :mod:`textsleep.weights`)."""

    folder = weights.biggan_dir(name_or_path, progress=progress)
    config_file, weights_file = folder / "config.json", folder / "pytorch_model.bin"
    try:
        config = biggan_package.BigGANConfig.from_json_file(str(config_file))
        model = biggan_package.BigGAN(config)
    except (ValueError, TypeError, KeyError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        why = one_line(err, 200)
        raise UserError(f"{config_file}: not a BigGAN config ({why}){weights.set_aside(config_file)}") from None
    try:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise UserError(
            f"{weights_file}: cannot be read as a PyTorch checkpoint ({one_line(err, 300, named=False)})"
            f"{weights.set_aside(weights_file)}"
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"{weights_file}: holds a {type(state).__name__}, not a state dict")
    try:
        # strict=True also lets spectral norm's load hook upgrade the 2019 files that lack weight_v; assign=True
        # takes the file's tensors as they are instead of copying them into the new model's
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        reason = one_line(err, 600, named=False).replace("Error(s) in loading state_dict for BigGAN: ", "")
        raise UserError(f"{weights_file} does not match the BigGAN in {config_file.name}: {reason}") from None
    return prepare_biggan(model.float()).to(device)


def prepare_biggan(model):
    """Eval mode, frozen weights, spectral norm baked in (it divides by the same sigma every forward in eval).

    Convolution weights are stored channels-last, the layout :func:`textsleep.render.render`
    keeps activations in, so the kernels need not reorder them at every call.
    """
    model.eval().requires_grad_(False)
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            torch.nn.utils.remove_spectral_norm(module)
    model.requires_grad_(False)
    return model.to(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------------------------- CLIP
@dataclass
class Clip:
    """A CLIP model with what it needs to judge pictures: input size, normalisation, tokenizer."""

    name: str
    pretrained: str
    model: torch.nn.Module
    tokenizer: object
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    context_length: int = 77

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> "Clip":
        self.model.to(device=device, dtype=dtype)
        return self

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings of images in [0, 1] already at ``image_size``."""
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        x = ((images - mean) / std).to(self.dtype)
        if x.device.type == "cpu":
            # for CLIP's short sequences (50 tokens) the plain attention kernel beats the fused one on the CPU

            with sdpa_kernel([SDPBackend.MATH]):
                return torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1)
        return torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def too_long(self, text: str) -> bool:
        """Whether CLIP's tokenizer would cut this prompt off."""
        inner = getattr(self.tokenizer, "encode", None)
        if inner is None:
            return False
        return len(inner(text)) + 2 > self.context_length


def load_clip(name: str, pretrained: str, device: torch.device | str = "cpu", *, for_judge: bool = False) -> Clip:
    """Load an open_clip model by name (or JSON config path) with a pretrained tag or a checkpoint file.

    ``for_judge``: the model is ``textsleep eval``'s CLIP judge, and advice names the judge's options.
    """

    name = clip_name(name)
    quick_gelu = pretrained == "openai" and "quickgelu" not in name.lower()
    tag_cfg = {}
    file = Path(pretrained).expanduser()
    if pretrained and (file.suffix or os.sep in pretrained) and not file.exists() and pretrained not in _tags(name):
        raise UserError(f"--clip-pretrained {pretrained!r}: no such file")
    if file.is_file():
        source = str(file)
    else:
        tags = _tags(name)
        if pretrained not in tags:
            listed = ", ".join(tags) if tags else "none (give a checkpoint file)"
            raise UserError(f"--clip-pretrained {pretrained!r} is not a known tag for {name}; known tags: {listed}")
        tag_cfg = open_clip.get_pretrained_cfg(name, pretrained)
        source = _cached_clip_file(tag_cfg) or _ensure_hub_reachable(name, pretrained, for_judge) or pretrained
    try:
        model = open_clip.create_model(
            name, pretrained=source, force_quick_gelu=quick_gelu, device=device, **block_options(name)
        )
    except Exception as err:  # (a file that is not weights fails in unpickling's many ways)
        raise UserError(
            f"could not load CLIP {name} weights {pretrained!r}: {one_line(err, 300, named=False)}"
        ) from None
    return wrap_clip(name, pretrained, model, tag_cfg)


def wrap_clip(name: str, pretrained: str, model, tag_cfg: dict | None = None) -> Clip:

    model.eval().requires_grad_(False)
    speed_up(model)
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    tag_cfg = tag_cfg or {}
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    return Clip(
        name=name,
        pretrained=pretrained,
        model=model,
        tokenizer=open_clip.get_tokenizer(name),
        image_size=size,
        mean=tuple(tag_cfg.get("mean") or cfg.get("mean") or open_clip.OPENAI_DATASET_MEAN),
        std=tuple(tag_cfg.get("std") or cfg.get("std") or open_clip.OPENAI_DATASET_STD),
        context_length=getattr(model, "context_length", 77) or 77,
    )


def clip_name(name: str) -> str:
    """Validate an open_clip model name; a path to a JSON config registers it first."""

    path = Path(name).expanduser()
    if path.suffix == ".json":
        if not path.is_file():
            raise UserError(f"--clip-model {name!r}: no such config file")
        open_clip.add_model_config(path)
        return path.stem
    known = open_clip.list_models()
    if name in known:
        return name
    close = difflib.get_close_matches(name, known, n=6, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else f"known models include {', '.join(known[:8])}, …"
    raise UserError(
        f"--clip-model {name!r} is not an open_clip model; {hint} ({len(known)} in all, or a path to a JSON config)"
    )


def _tags(name: str) -> list[str]:

    return list(open_clip.list_pretrained_tags_by_model(name))


def _hub_location(cfg: dict) -> tuple[str, str] | None:
    hub = (cfg or {}).get("hf_hub")
    if not hub:
        return None
    parts = hub.strip("/").split("/")
    return "/".join(parts[:2]), "/".join(parts[2:])


def _cached_clip_file(cfg: dict) -> str | None:
    """The checkpoint of a pretrained tag from the Hugging Face cache, without any network."""

    loc = _hub_location(cfg)
    if loc is None:
        return None
    repo, filename = loc
    candidates = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for candidate in candidates:
        hit = try_to_load_from_cache(repo, candidate)
        if isinstance(hit, str):
            return hit
    return None


def clip_cached(name: str, pretrained: str) -> bool:
    """Whether a pretrained tag's checkpoint is in the Hugging Face cache (no network used)."""

    try:
        name = clip_name(name)
        cfg = open_clip.get_pretrained_cfg(name, pretrained)
    except UserError:
        return False
    return _cached_clip_file(cfg) is not None


def _ensure_hub_reachable(name: str, tag: str, for_judge: bool = False) -> None:
    """Fail in seconds, not minutes, when the weights are not cached and the hub cannot be reached; the advice names
    the command that fetches these weights and the option that takes a local file instead.
    """

    problem = hub_problem()
    if problem:
        fetch = f"textsleep download --clip-model {name} --clip-pretrained {tag}" + (
            " --no-biggan" if for_judge else ""
        )
        option = "--judge-pretrained" if for_judge else "--clip-pretrained"
        raise UserError(
            f"cannot get CLIP {name} weights {tag!r} ({problem}); they are not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); download them where there is network (`{fetch}`) and copy that cache here "
            f"(or set HF_HOME to it), or pass a local checkpoint with {option} FILE"
        )
    return None


# ---------------------------------------------------------------------------------------------- cache
class ModelCache:
    """Loads each model once and hands it out again (a batch's jobs and the web page's dreams share one).

    Models loaded by your own code join it through :meth:`adopt`
    (``Imagine(biggan=..., clip=...)`` does that); they are moved to the
    dream's device and precision, as loaded ones are.
    """

    def __init__(self) -> None:
        self._models: dict[tuple, object] = {}
        self._given: dict[tuple, object] = {}  # models handed in, by what the settings call them

    def biggan(self, name: str, device: torch.device, dtype: torch.dtype = torch.float32, *, progress: bool = True):
        key = ("biggan", name, str(device), dtype)
        if key not in self._models:
            given = self._given.get(("biggan", name))
            model = given if given is not None else load_biggan(name, device, progress=progress)
            self._models[key] = model.to(device, dtype)
        return self._models[key]

    def clip(
        self,
        name: str,
        pretrained: str,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        *,
        for_judge: bool = False,
    ) -> Clip:
        key = ("clip", name, pretrained, str(device), dtype)
        if key not in self._models:
            given = self._given.get(("clip", name, pretrained))
            model = given if given is not None else load_clip(name, pretrained, device, for_judge=for_judge)
            self._models[key] = model.to(device, dtype)
        return self._models[key]

    def keep(self, key: tuple, load):
        """The model kept under ``key``, made by ``load()`` the first time (e.g. a preference model that guides)."""
        if key not in self._models:
            self._models[key] = load()
        return self._models[key]

    def adopt(self, options: dict[str, Any]) -> dict[str, Any]:
        """Keep the models in dream ``options`` — ``biggan=`` a loaded BigGAN-deep, ``clip=`` a loaded :class:`Clip`
        or a list of them — and return the options with the settings that name them instead.

        A BigGAN is named by its size (from its config), a CLIP by its name and
        pretrained tag; a setting given as well must agree with them.
        """
        options, named = dict(options), {}
        biggan, clips = options.pop("biggan", None), options.pop("clip", None)
        if isinstance(biggan, torch.nn.Module):
            named.update(size=biggan.config.output_dim, biggan=None)
            self._given["biggan", f"biggan-deep-{named['size']}"] = biggan
        elif biggan is not None:
            options["biggan"] = biggan
        if clips is not None:
            if isinstance(clips, Clip):
                clips = [clips]
            if not isinstance(clips, (list, tuple)) or not clips or not all(isinstance(c, Clip) for c in clips):
                raise UserError(f"clip={clips!r}: give a model from textsleep.load_clip, or a list of them")
            named.update(clip_model=[c.name for c in clips], clip_pretrained=[c.pretrained for c in clips])
            self._given.update({("clip", c.name, c.pretrained): c for c in clips})
        for key, value in named.items():
            given = options.get(key)
            if given is not None and self._listed(given) != self._listed(value):
                raise UserError(f"{key}={given!r} disagrees with the model handed in ({value!r}); leave it out")
        return {**options, **named}

    @staticmethod
    def _listed(value: Any) -> Any:
        return [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else value
