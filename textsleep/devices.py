"""Where a run computes and in what precision: the device, ``--precision auto``'s choice per card, the card's name."""

from __future__ import annotations

import os
import platform

import torch

from .errors import UserError

__all__ = ["resolve_device", "resolve_dtype", "auto_precision", "device_info"]


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device that is not there is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name!r}: no CUDA device is available here; use --device auto or cpu")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name!r}: Apple MPS is not available here; use --device auto or cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: allowed are auto, cpu, cuda, cuda:N, mps") from None


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for the models: ``auto`` is :func:`auto_precision`'s choice, the others are asked for."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type == "cpu":
            raise UserError("--precision fp16 is not supported on the CPU; use auto, bf16 or fp32")
        return torch.float16
    return auto_precision(device)[0]


def auto_precision(device: torch.device) -> tuple[torch.dtype, str]:
    """What ``--precision auto`` computes in on ``device``, and why (in words, for ``textsleep doctor``).

    An NVIDIA card: bf16 from compute capability 8.0 (A100, A10, L4, RTX 30xx/40xx, H100), whose tensor cores run it
    natively; fp32 below (a T4 is 7.5, a V100 7.0), where ``torch.cuda.is_bf16_supported()`` still answers True but
    bf16 is emulated, slower than fp32, and some of its kernels fail on Volta.  fp16 stays opt-in (``--precision
    fp16``): it is not verified that BigGAN's activations and CLIP stay inside its range.  The CPU: bf16 with native
    bf16 instructions (AVX512-BF16 or AMX), else fp32; Apple's MPS: fp32.
    """
    if device.type == "cuda" and torch.version.hip:  # an AMD card's "capability" numbers its architecture: ask ROCm
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "ROCm reports bf16 support"
        return torch.float32, "ROCm reports no bf16 support"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) >= (8, 0):
            return torch.bfloat16, f"compute capability {major}.{minor}: native bf16"
        return torch.float32, f"compute capability {major}.{minor}, below 8.0: bf16 would be emulated (fp16 is opt-in)"
    if device.type == "cpu" and _cpu_has_fast_bf16():
        return torch.bfloat16, "the CPU has native bf16 instructions (AVX512-BF16 or AMX)"
    if device.type == "cpu":
        return torch.float32, "the CPU has no native bf16 instructions"
    return torch.float32, f"{device.type}: fp32"


def device_info(device: torch.device | str) -> dict:
    """The device a run computes on, as ``run.json`` records it: ``{"type", "name", "capability", "memory_gb"}``.

    A CUDA device: the card's name, its compute capability (``"8.0"``) and its memory; the CPU or MPS: the
    processor's name and the machine's memory, capability None.  Nothing is allocated on the device.
    """
    device = torch.device(device)
    if device.type == "cuda":
        card = torch.cuda.get_device_properties(device)
        memory = round(card.total_memory / 2**30, 1)
        return {"type": "cuda", "name": card.name, "capability": f"{card.major}.{card.minor}", "memory_gb": memory}
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        memory = None
    return {"type": device.type, "name": _cpu_name(), "capability": None, "memory_gb": memory}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cpu_has_fast_bf16() -> bool:
    """Native bf16 matrix instructions (AVX512-BF16 or AMX): there bf16 runs at 2× (AMX: far more) fp32's speed.

    oneDNN also "supports" bf16 on plain AVX-512 by converting, which is no faster than fp32.
    """
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        pass
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
