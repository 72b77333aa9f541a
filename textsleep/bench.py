"""Speed and memory of the real dream step, on randomly initialised full-size models.

The cost of a step does not depend on the weights' values, so no download is
needed: BigGAN-deep and CLIP are built from their real classes with random
weights and the same :class:`~textsleep.dream.Dream` step a user runs is timed.
``guide`` adds a preference model to the guiding ensemble, built as
:mod:`textsleep.judges` builds it (HPS: ViT-H-14 with HPS's view; the aesthetic
predictor: its MLP on ViT-L-14), also with random weights.
"""

from __future__ import annotations

import gc
import platform
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .command_settings import BenchSettings
from .devices import resolve_device, resolve_dtype
from .dream import Dream, Judge
from .guides import encode_prompts
from .judges import HPS_ARCH
from .prompts import Prompt
from .render import render
from .scorers import aesthetic_head, crop_preprocess, hps_preprocess
from .speed import Levers
from .testing import random_biggan, random_clip

__all__ = ["BenchResult", "run_bench", "random_guide"]


@dataclass
class BenchResult:
    size: int
    cutouts: int
    cutout_batch: int | None
    batch: int
    steps: int
    device: str
    precision: str
    median_s: float  # median seconds per step (after one warm-up step)
    it_per_s: float
    min_s: float
    max_s: float
    peak_memory_gb: float  # peak RSS on the CPU, max allocated on a GPU
    memory_kind: str
    clip_model: str
    torch: str
    python: str
    gflop_per_step: float | None = None  # matmul and convolution work of one step (with breakdown)
    phases: dict | None = None  # with breakdown: {phase: {"median_s": …, "gflop": …}} for generator, cutouts, clip
    matmul_gflops: float | None = None  # with breakdown: a large dense matmul's rate on this device and dtype
    compiled: bool = False  # the step timed went through torch.compile
    compile_s: float | None = None  # compiled: seconds of the first compiled step (the compile included)
    eager_median_s: float | None = None  # compiled: the eager step's median, timed in the same run
    levers: dict | None = None  # the levers the step ran with (textsleep.speed.Levers)
    guide: str | None = None  # the preference model guiding beside the CLIP (NAME:weight)

    def to_dict(self) -> dict:
        return asdict(self)


def _times(fn, dev, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, the device synchronised around each."""
    times = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return times


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _peak_rss_gb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


def run_bench(
    size: int = BenchSettings.size,
    cutouts: int = BenchSettings.cutouts,
    steps: int = BenchSettings.steps,
    batch: int = BenchSettings.batch,
    device: str = BenchSettings.device,
    precision: str = BenchSettings.precision,
    clip_model: str = BenchSettings.clip_model,
    augment: str = BenchSettings.augment,
    cutout_batch: int | None = BenchSettings.cutout_batch,
    guide: str | None = BenchSettings.guide,
    breakdown: bool = BenchSettings.breakdown,
    compile: bool = BenchSettings.compile,
    levers: Levers | None = None,
) -> BenchResult:
    """Time ``steps`` dream steps (plus one warm-up) and return the medians.

    ``breakdown`` then also times the step's three parts on their own (BigGAN
    forward + backward, cutouts forward + backward, CLIP forward + backward)
    and counts the arithmetic of each and of a whole step.  ``compile`` times
    the eager step first, then the compiled one on the same models: its first
    step (the compile) on its own, then the steady steps after a warm-up.
    ``guide`` (``hps-v2.1:0.5``) guides with a preference model too (the
    breakdown's CLIP part is the first CLIP's alone).
    """
    dev = resolve_device(device)
    dtype = resolve_dtype(precision, dev)
    biggan = random_biggan(size, 128).to(dev, dtype)
    clip = random_clip(clip_model).to(dev, dtype)
    with torch.inference_mode():
        prompt = clip.encode_text(["upside down tree"])
    judges = [Judge(clip, prompt, torch.ones(1))]
    if guide is not None:
        judges.append(random_guide(guide, dev, dtype))

    def new_dream(compiled: bool) -> Dream:
        options = dict(cutouts=cutouts, augment=augment, cutout_batch=cutout_batch, levers=levers)
        return Dream(biggan, judges, seeds=list(range(batch)), compile=compiled, **options)

    dream = new_dream(False)
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    timed = _times(dream.step, dev, steps + 1)[1:]  # (the first step warms up)
    median = statistics.median(timed)
    compile_s = eager = None
    if compile:
        eager, dream = median, new_dream(True)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        compile_s = _times(dream.step, dev, 1)[0]
        warm_up = 2 if dev.type == "cuda" else 1  # (CUDA graphs: one step to warm up, one to record)
        timed = _times(dream.step, dev, steps + warm_up)[warm_up:]
        median = statistics.median(timed)
    if dev.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(dev) / 2**30, "max allocated GPU memory"
    else:
        peak, kind = _peak_rss_gb(), "peak RSS"
    gflop = phases = peak_rate = None
    if breakdown:
        gflop = round(_gflop(dream.step), 1)
        phases = _phases(dream, steps, dev)
        peak_rate = round(_matmul_rate(dev, dtype), 1)
    return BenchResult(
        size=size,
        cutouts=cutouts,
        cutout_batch=cutout_batch,
        batch=batch,
        steps=steps,
        device=str(dev),
        precision=str(dtype).replace("torch.", ""),
        median_s=round(median, 4),
        it_per_s=round(1 / median, 3),
        min_s=round(min(timed), 4),
        max_s=round(max(timed), 4),
        peak_memory_gb=round(peak, 3),
        memory_kind=kind,
        clip_model=clip_model,
        torch=torch.__version__,
        python=platform.python_version(),
        gflop_per_step=gflop,
        phases=phases,
        matmul_gflops=peak_rate,
        compiled=compile,
        compile_s=None if compile_s is None else round(compile_s, 2),
        eager_median_s=None if eager is None else round(eager, 4),
        levers=asdict(dream.levers),
        guide=guide,
    )


def random_guide(spec: str, device: torch.device, dtype: torch.dtype, text: str = "upside down tree") -> Judge:
    """A preference model of the guiding ensemble at full size with random weights: ``hps-v2.1:0.5``, ``aesthetic``."""
    name, sep, raw = spec.partition(":")
    name, weight = name.strip().lower(), float(raw) if sep else 1.0
    if name.startswith("hps"):
        clip = random_clip(HPS_ARCH).to(device, dtype)

        def view(images: torch.Tensor) -> torch.Tensor:
            return hps_preprocess(images, clip.image_size)

        return Judge(clip, *encode_prompts(clip, [Prompt(text)]), weight, view=view, name=name)
    if name == "aesthetic":
        clip = random_clip("ViT-L-14").to(device, dtype)
        none = torch.zeros(0, 1, device=device), torch.zeros(0, device=device)

        def view(images: torch.Tensor) -> torch.Tensor:
            return crop_preprocess(images, clip.image_size)

        head = aesthetic_head(clip.model.visual.output_dim).to(device)
        return Judge(clip, *none, weight, view=view, head=head, name=name)
    raise ValueError(f"guide {spec!r}: bench builds hps-v2.1, hps-v2 or aesthetic")


def _matmul_rate(dev: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n×n by n×n matmul: about the most this device does in this dtype."""
    a = torch.randn(n, n, device=dev).to(dtype)
    b = torch.randn(n, n, device=dev).to(dtype)
    a @ b
    return 2 * n**3 / statistics.median(_times(lambda: a @ b, dev, repeats)) / 1e9


def _gflop(fn) -> float:
    """Matmul and convolution GFLOP of one call (forward and backward), as torch's flop counter counts them."""

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _phases(dream: Dream, steps: int, dev: torch.device) -> dict:
    """Median seconds and GFLOP of each part of a step, each run on its own with its backward."""
    judge, cutouts = dream.judges[0], dream.cutouts[0]
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z, classes = dream.latents()
        pixels = render(dream.biggan, z, classes, dream.truncation).float()
    batch = dream.cutout_batch or pixels.shape[0] * cutouts.count
    h, w = pixels.shape[-2:]

    def generator_part():
        z, classes = dream.latents()
        render(dream.biggan, z, classes, dream.truncation).sum().backward()

    def cutouts_part():
        images = pixels.detach().requires_grad_()
        for b in range(images.shape[0]):
            cutouts.apply(images[b : b + 1], cutouts.draw(h, w, generator)).sum().backward()

    cut = torch.cat([cutouts.apply(pixels[b : b + 1], cutouts.draw(h, w, generator)) for b in range(pixels.shape[0])])

    def clip_part():
        for start in range(0, cut.shape[0], batch):
            views = cut[start : start + batch].detach().requires_grad_()
            judge.clip.encode_image(views).sum().backward()

    out = {}
    for name, fn in (("generator", generator_part), ("cutouts", cutouts_part), ("clip", clip_part)):
        times = _times(fn, dev, steps + 1)[1:]
        dream.optimizer.zero_grad(set_to_none=True)
        out[name] = {"median_s": round(statistics.median(times), 4), "gflop": round(_gflop(fn), 1)}
    return out
