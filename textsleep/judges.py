"""Judges of finished pictures: CLIP, and models trained on people's choices.

``load_judge(name)`` returns a :class:`textsleep.scorers.Judge`: the model with
its own preprocessing, as openai/CLIP's ``load()`` returns a model and its
transform; ``judge.score(images, prompts)`` gives one score per picture.

=============  ============================================================  =====================
name           what                                                          scale
=============  ============================================================  =====================
``clip``       an open_clip model (``--judge-model``/``--judge-pretrained``)  cosine, -1 … 1
``hps-v2.1``   Human Preference Score v2.1: open_clip ViT-H-14, fine-tuned   100 × cosine
``hps-v2``     Human Preference Score v2.0                                   100 × cosine
``aesthetic``  LAION's improved aesthetic predictor: an MLP on ViT-L/14      about 1 … 10
``pickscore``  PickScore v1: a CLIP-H in transformers format                 logit scale × cosine
=============  ============================================================  =====================

Weights come through the Hugging Face cache (``HF_HOME``, ``HF_HUB_OFFLINE``)
and are loaded strictly with ``weights_only=True``; ``NAME=PATH`` takes a local
file or folder instead (see :func:`parse_judge`).  Nothing happens at import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
from torch import nn

from .errors import UserError, one_line
from .fastclip import block_options
from .lazy import open_clip
from .models import ModelCache, wrap_clip
from .scorers import AestheticJudge, ClipJudge, Judge, PickScoreJudge, aesthetic_head, hps_preprocess, resize_preprocess
from .weights import hub_problem

__all__ = [
    "JUDGES",
    "JudgeInfo",
    "parse_judge",
    "load_judge",
    "load_hps",
    "load_aesthetic",
    "load_pickscore",
    "cached",
    "fetch",
    "hub_file",
    "self_judging",
]


@dataclass(frozen=True)
class JudgeInfo:
    """Where a judge comes from and what its numbers mean."""

    name: str
    title: str
    scale: str
    source: str  # the repository that publishes it
    licence: str
    repo: str | None = None  # Hugging Face Hub repository of its weights
    file: str | None = None  # its weight file there
    sha256: str | None = None  # the published file's hash, where one is known
    uses_text: bool = True


_HPS = {"source": "github.com/tgxs002/HPSv2", "licence": "Apache-2.0", "repo": "xswu/HPSv2"}
JUDGES: dict[str, JudgeInfo] = {
    "clip": JudgeInfo("clip", "CLIP", "cosine", "open_clip (--judge-model, --judge-pretrained)", "that model's"),
    "hps-v2.1": JudgeInfo("hps-v2.1", "HPS v2.1", "100 × cosine", file="HPS_v2.1_compressed.pt", **_HPS),
    "hps-v2": JudgeInfo("hps-v2", "HPS v2.0", "100 × cosine", file="HPS_v2_compressed.pt", **_HPS),
    "aesthetic": JudgeInfo(
        "aesthetic",
        "LAION aesthetic",
        "1–10",
        source="github.com/christophschuhmann/improved-aesthetic-predictor",
        licence="Apache-2.0",
        repo="camenduru/improved-aesthetic-predictor",  # a copy on the Hub of the file in that repository
        file="sac+logos+ava1-l14-linearMSE.pth",
        # SHA-256 of the file in christophschuhmann/improved-aesthetic-predictor (commit 6934dd8)
        sha256="21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0",
        uses_text=False,
    ),
    "pickscore": JudgeInfo(
        "pickscore",
        "PickScore",
        "logit scale × cosine",
        source="github.com/yuvalkirstain/PickScore",
        licence="MIT (its repository)",
        repo="yuvalkirstain/PickScore_v1",
    ),
}
HPS_ARCH = "ViT-H-14"
AESTHETIC_CLIP = ("ViT-L-14", "openai")  # OpenAI's ViT-L/14, whose embeddings the predictor was trained on
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
_AESTHETIC_HOME = (
    "sac+logos+ava1-l14-linearMSE.pth from https://github.com/christophschuhmann/improved-aesthetic-predictor"
)
_PROC_FILE = "preprocessor_config.json"  # the processor's file in LAION's CLIP-H repository
_ALSO = "likewise --clip-model and --init-judge"  # (which take a judge to guide a dream, or to choose its start)


def parse_judge(text: str) -> tuple[str, Path | None]:
    """``"hps-v2.1"`` → ``("hps-v2.1", None)``; ``"hps-v2.1=PATH"`` → the name and a local file or folder.

    A folder holds the judge's file under its published name (``HPS_v2.1_compressed.pt``,
    ``sac+logos+ava1-l14-linearMSE.pth``, or a transformers model for ``pickscore``) and, in open_clip's
    ``local-dir`` layout (``open_clip_config.json``), another architecture in the same format.
    """
    name, sep, raw = text.partition("=")
    name = name.strip().lower()
    if name not in JUDGES:
        raise UserError(f"--judge {text!r}: not a judge; known are {', '.join(JUDGES)} (NAME=PATH for a local file)")
    if not sep:
        return name, None
    if name == "clip":
        raise UserError("--judge clip=…: choose the CLIP judge's model with --judge-model and --judge-pretrained")
    path = Path(raw.strip()).expanduser()
    if not raw.strip() or not path.exists():
        raise UserError(f"--judge {text!r}: no such file or folder {raw.strip()!r}")
    return name, path


# ---------------------------------------------------------------------------------------------- loading
def load_judge(
    spec: str,
    device: torch.device | str = "cpu",
    *,
    clip_model: str = "ViT-L-14",
    clip_pretrained: str = "openai",
    dtype: torch.dtype = torch.float32,
    models: ModelCache | None = None,
) -> Judge:
    """Load a judge by name (``hps-v2.1``) or ``NAME=PATH``, ready on ``device`` (see :data:`JUDGES`).

    ``clip_model``/``clip_pretrained``/``dtype`` choose the ``clip`` judge; the others run in float32,
    as they were published.
    """
    name, path = parse_judge(spec)
    models = models or ModelCache()
    device = torch.device(device)
    if name == "clip":
        clip = models.clip(clip_model, clip_pretrained, device, dtype, for_judge=True)
        return ClipJudge("clip", f"{clip_model} ({clip_pretrained})", clip, resize_preprocess)
    if name.startswith("hps"):
        return load_hps(name, path).to(device)
    if name == "aesthetic":
        return load_aesthetic(path, device, models=models)
    return load_pickscore(path).to(device)


def load_hps(name: str = "hps-v2.1", path: Path | None = None) -> ClipJudge:
    """HPS v2/v2.1 on the CPU: ViT-H-14 (or a folder's ``open_clip_config.json``) with the checkpoint's weights.

    The checkpoint is HPS's format, a dict whose ``state_dict`` loads strictly into the model.  The model is
    built without initialising its weights (every one comes from the file), so loading costs one read.
    """
    info = JUDGES[name]
    folder = path if path is not None and path.is_dir() else None
    file = _named_in(folder, info.file, name) if folder else path or hub_file(info.repo, info.file, how=_how(name))
    arch = f"local-dir:{folder}" if folder and (folder / "open_clip_config.json").is_file() else HPS_ARCH
    state = _read(file, name)
    state = state.get("state_dict", state)
    with torch.device("meta"):
        model = open_clip.create_model(arch, pretrained=None, load_weights=False, device="meta", **block_options(arch))
    _load_strict(model, state, file, f"{info.title}'s {arch.replace('local-dir:', '')}", assign=True)
    for key, buffer in list(model.named_buffers()):  # open_clip's causal text mask is not in a checkpoint
        if buffer.is_meta:
            if not key.endswith("attn_mask"):
                raise UserError(f"{file}: {key} is not in it and cannot be rebuilt")
            _set_buffer(model, key, torch.full(buffer.shape, float("-inf")).triu_(1))
    mean_std = {"mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD}
    clip = wrap_clip(arch, str(file), model.float(), mean_std)
    return ClipJudge(name, str(file), clip, hps_preprocess, factor=100.0, scale=info.scale)


def load_aesthetic(
    path: Path | None = None, device="cpu", *, models: ModelCache | None = None, dtype: torch.dtype = torch.float32
) -> AestheticJudge:
    """LAION's improved aesthetic predictor: its MLP file, on the embeddings of OpenAI's ViT-L/14.

    A folder holds ``sac+logos+ava1-l14-linearMSE.pth`` and may hold, in open_clip's ``local-dir`` layout,
    another CLIP to read embeddings with.  The Hub copy must be the published file (its SHA-256).  ``dtype`` is
    the CLIP's (the MLP stays in float32).
    """
    info = JUDGES["aesthetic"]
    folder = path if path is not None and path.is_dir() else None
    hub = None if folder or path else hub_file(info.repo, info.file, how=_how("aesthetic"))
    file = _named_in(folder, info.file, "aesthetic") if folder else path or _published(hub)
    state = _read(file, "aesthetic")
    first = state.get("layers.0.weight")
    if not isinstance(first, torch.Tensor) or first.ndim != 2:
        raise UserError(f"{file}: not the aesthetic predictor's MLP (no layers.0.weight); get {_AESTHETIC_HOME}")
    head = aesthetic_head(first.shape[1])
    _load_strict(head, state, file, "the aesthetic predictor's MLP")
    if folder and (folder / "open_clip_config.json").is_file():
        clip = wrap_clip(f"local-dir:{folder}", str(folder), open_clip.create_model(f"local-dir:{folder}"))
        clip.to(device, dtype)
    else:
        clip = (models or ModelCache()).clip(*AESTHETIC_CLIP, torch.device(device), dtype)
    dim = getattr(clip.model.visual, "output_dim", first.shape[1])
    if dim != first.shape[1]:
        raise UserError(f"{file}: an MLP on {first.shape[1]}-d embeddings, but {clip.name} gives {dim}-d ones")
    return AestheticJudge(str(file), clip, head.to(device))


def load_pickscore(path: Path | None = None) -> PickScoreJudge:
    """PickScore v1 on the CPU: a transformers CLIPModel and its processor (the folder's own, or LAION's)."""
    try:
        import transformers  # noqa: PLC0415 (an optional extra)
    except ImportError:
        raise UserError("pickscore needs the transformers package: pip install 'textsleep[judges]'") from None
    info = JUDGES["pickscore"]
    own = path is not None and any((path / f).is_file() for f in ("processor_config.json", "preprocessor_config.json"))
    sources = {"model": str(path) if path else info.repo, "processor": str(path) if own else PICKSCORE_PROCESSOR}
    loaded = {}
    for part, source in sources.items():
        cached_here = Path(source).is_dir() or _hub_cached(source, "config.json" if part == "model" else _PROC_FILE)
        problem = None if cached_here else hub_problem()
        load = transformers.CLIPModel if part == "model" else transformers.AutoProcessor
        try:
            loaded[part] = load.from_pretrained(source, local_files_only=bool(problem))
        except (OSError, ValueError) as err:
            how = _how(
                "pickscore", f"or pass --judge pickscore=DIR ({_ALSO}; a folder transformers saved {info.repo} to)"
            )
            raise UserError(f"cannot load PickScore's {part} from {source} ({problem or one_line(err, 200)}); {how}")
    model = loaded["model"].eval().requires_grad_(False)
    images = loaded["processor"].image_processor
    crop = images.crop_size if isinstance(images.crop_size, int) else images.crop_size["height"]
    size = images.size if isinstance(images.size, int) else images.size.get("shortest_edge") or crop
    tokenizer = loaded["processor"].tokenizer
    return PickScoreJudge(sources["model"], model, tokenizer, size, crop, images.image_mean, images.image_std)


def _named_in(folder: Path, filename: str, name: str) -> Path:
    file = folder / filename
    if not file.is_file():
        raise UserError(f"{name}={folder}: the folder has no {filename}")
    return file


def _read(file: Path, name: str) -> dict:
    """A checkpoint file as a dict (weights only; memory-mapped where the format allows)."""
    try:
        try:
            data = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
            data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types
        raise UserError(f"{file}: cannot be read as the {name} judge's checkpoint ({one_line(err, 200)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{file}: holds a {type(data).__name__}, not the {name} judge's checkpoint (a dict)")
    return data


def _load_strict(model: nn.Module, state: dict, file: Path, what: str, assign: bool = False) -> None:
    try:
        model.load_state_dict(state, strict=True, assign=assign)
    except (RuntimeError, TypeError, AttributeError) as err:
        reason = one_line(err, 500, named=False)
        reason = reason.split(":", 1)[1].strip() if reason.startswith("Error(s) in loading") else reason
        raise UserError(f"{file} does not fit {what}: {reason}") from None


def _set_buffer(model: nn.Module, key: str, value: torch.Tensor) -> None:
    owner, _, leaf = key.rpartition(".")
    (model.get_submodule(owner) if owner else model).register_buffer(leaf, value, persistent=False)


def _published(file: Path) -> Path:
    """The aesthetic file from the Hub, if it is byte for byte the one its authors published."""
    expected = JUDGES["aesthetic"].sha256
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if digest != expected:
        raise UserError(
            f"{file} (the Hub copy) is not the published predictor (SHA-256 {digest[:12]}…, not {expected[:12]}…); "
            f"download {_AESTHETIC_HOME} and pass --judge aesthetic=PATH"
        )
    return file


# ---------------------------------------------------------------------------------------------- the Hub
def _hub_cached(repo: str, filename: str, repo_type: str | None = None) -> str | None:
    hit = try_to_load_from_cache(repo, filename, repo_type=repo_type)
    return hit if isinstance(hit, str) else None


def _how(judge: str, local: str = "") -> str:
    info = JUDGES[judge]
    local = local or f"or pass --judge {judge}=FILE ({_ALSO}; a copy of {info.file} from " + (
        f"{_AESTHETIC_HOME.split(' from ')[1]})" if judge == "aesthetic" else f"the Hub repository {info.repo})"
    )
    return (
        f"run `textsleep download --judge {judge}` where there is network and copy the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}) here (or set HF_HOME to it), {local}"
    )


def hub_file(repo: str, filename: str, *, how: str, repo_type: str | None = None) -> Path:
    """A file of a Hugging Face Hub repository: from the cache, else downloaded (with a progress bar).

    No network, or ``HF_HUB_OFFLINE``, is a one-line error within seconds that ends with ``how`` (how else
    to supply the file).
    """
    hit = _hub_cached(repo, filename, repo_type)
    if hit:
        return Path(hit)
    problem = hub_problem()
    if problem:
        raise UserError(f"cannot get {repo}/{filename} ({problem}); it is not in the Hugging Face cache; {how}")
    try:
        return Path(hf_hub_download(repo, filename, repo_type=repo_type))
    except Exception as err:  # network, a missing repository or file: one line either way
        raise UserError(f"download of {repo}/{filename} failed ({one_line(err, 200)}); {how}") from None


def cached(name: str) -> bool:
    """Whether a judge's weights are in the Hugging Face cache (no network used; ``clip``: see models)."""
    info = JUDGES[name]
    if name == "pickscore":
        return bool(_hub_cached(info.repo, "config.json") and _hub_cached(PICKSCORE_PROCESSOR, _PROC_FILE))
    return info.repo is not None and _hub_cached(info.repo, info.file) is not None


def fetch(name: str) -> str:
    """Download a judge's weights into the Hugging Face cache now; where they are."""
    if name.startswith("hps"):
        return str(hub_file(JUDGES[name].repo, JUDGES[name].file, how=_how(name)))
    if name == "aesthetic":
        file = _published(hub_file(JUDGES[name].repo, JUDGES[name].file, how=_how(name)))
        ModelCache().clip(*AESTHETIC_CLIP, torch.device("cpu"))
        return f"{file} (and CLIP {AESTHETIC_CLIP[0]} {AESTHETIC_CLIP[1]})"
    if name == "pickscore":
        load_pickscore()
        return f"{JUDGES[name].repo} and {PICKSCORE_PROCESSOR}, in {constants.HF_HUB_CACHE}"
    raise UserError(f"--judge {name!r}: fetch the CLIP judge with --clip-model/--clip-pretrained")


# ---------------------------------------------------------------------------------------------- self-judging
def self_judging(judges: Sequence[tuple[str, Path | None]], clip_specs, clip_model: str, clip_pretrained: str) -> list:
    """The judges (names) that are also among a dream's guiding models ``clip_specs`` (``ClipSpec``s).

    A guide is the judge when it names it (``--clip-model hps-v2.1``), when it is the same open_clip model
    and weights as the ``clip`` judge, or when its weights are the judge's file.
    """
    found = []
    for name, path in judges:
        info = JUDGES[name]
        for spec in clip_specs:
            same = spec.name == name
            if name == "clip":
                same = spec.name == clip_model and _same_weights(spec.pretrained, clip_pretrained)
            elif info.file and spec.pretrained:
                same = same or Path(spec.pretrained).name == info.file or _same_file(spec.pretrained, path)
            if same and name not in found:
                found.append(name)
    return found


def _same_weights(a: str, b: str) -> bool:
    return a == b or _same_file(a, b)


def _same_file(a, b) -> bool:
    try:
        return b is not None and Path(a).expanduser().is_file() and Path(a).expanduser().samefile(Path(b))
    except OSError:
        return False
