"""How the dream step is run: the compiled step and the levers, each computing the same thing another way.

The levers are switches for what only a measurement on the device can
decide; ``benchmarks/gpu_check.py`` times each against the step without it.
:meth:`Levers.for_device` holds the choice per device: on the CPU every lever
stays as the step was measured fastest there, and on CUDA nothing is switched
on until that check has measured it on a GPU.

- ``attention``: ``"matmul"`` (two matmuls and a softmax) or ``"sdpa"``
  (``scaled_dot_product_attention``, a fused flash kernel on CUDA) in CLIP's
  image tower;
- ``noise_on_device``: the cutouts' colour noise drawn on the device from a
  seed the picture's own generator draws, instead of on the CPU and copied
  over (the same distribution, other numbers; still reproducible and
  resumable);
- ``host_sync``: False keeps each step's loss and scores on the device until
  they are read (see :class:`~textsleep.dream.Step`), so a step makes no host
  round-trip and the device can run one step ahead; a non-finite loss is then
  caught one step later;
- ``foreach_ema``: the moving average updated with ``torch._foreach`` (one
  kernel for all parameters; the same numbers);
- ``cutout_batch``: cutouts CLIP encodes at once on this device, ``None`` for
  what the settings say, ``0`` for all of a step's at once (same picture).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch

from .errors import UserError

__all__ = ["Levers", "compiled", "compile_mode"]

ATTENTIONS = ("matmul", "sdpa")


@dataclass(frozen=True)
class Levers:
    attention: str = "matmul"
    noise_on_device: bool = False
    host_sync: bool = True
    foreach_ema: bool = False
    cutout_batch: int | None = None

    def __post_init__(self) -> None:
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention {self.attention!r}: allowed are {', '.join(ATTENTIONS)}")
        if self.cutout_batch is not None and self.cutout_batch < 0:
            raise ValueError(f"cutout_batch {self.cutout_batch!r}: must be None, 0 (all) or a whole number >= 1")

    @classmethod
    def for_device(cls, device: torch.device | str) -> "Levers":
        """The levers this device runs fastest with, as measured (on CUDA: none yet, until a GPU check)."""
        return cls()

    def replace(self, **changes) -> "Levers":
        return dataclasses.replace(self, **changes)


def compile_mode(device: torch.device) -> str | None:
    """``torch.compile``'s mode for a device: CUDA graphs on CUDA, where a step is decided by kernel launches."""
    return "reduce-overhead" if device.type == "cuda" else None


_COMPILED: dict = {}


def compiled(fn, device: torch.device):
    """``fn`` through ``torch.compile`` for this device's mode, one wrapper per function and mode.

    Models are passed to ``fn`` as arguments, so another model of the same
    shapes (a resumed run, the next job of a batch) reuses the compiled code;
    shapes are fixed for a dream (``dynamic=False``).
    """
    mode = compile_mode(device)
    key = (fn, mode)
    if key not in _COMPILED:
        _COMPILED[key] = _one_line_errors(torch.compile(fn, mode=mode, dynamic=False))
    return _COMPILED[key]


def _one_line_errors(compiled_fn):
    """A compiled function whose compile failures (no C++ compiler, an unsupported operation) are one UserError."""

    @functools.wraps(compiled_fn)
    def run(*args, **kwargs):
        try:
            return compiled_fn(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as err:  # (torch._dynamo is imported by then)
            cause = getattr(err, "inner_exception", None) or err  # (a backend's failure is wrapped)
            lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
            why = (lines[0] if lines else type(cause).__name__)[:200]
            raise UserError(f"--compile: torch.compile failed here ({why}); run without --compile") from err

    return run
