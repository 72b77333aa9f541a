#!/usr/bin/env python3
"""big-sleep 0.9.1's own optimisation step, on randomly initialised models (a step costs the same whatever the
weights' values).

usage: python benchmarks/peer_bigsleep.py SIZE CUTOUTS STEPS [--device cpu|cuda]
prints: 'big-sleep s/step: X' (median of the timed steps after one warm-up) and, on CUDA, its peak GPU memory.

:func:`build` gives big-sleep's ``Imagine`` itself (its ``train_step`` is what its users run), with full-size
BigGAN-deep and ViT-B/32 of big-sleep's own classes, or smaller ones of the same classes for a quick check.
big-sleep asserts CUDA when imported and calls ``.cuda()``; on the CPU both are answered for the while it is
imported and built.  Its import also sets a Ctrl-C handler, which is put back as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import statistics
import sys
import time

import open_clip
import torch

# BigGAN-deep's generator layers (upsample?, in, out) × channel width, by output size
LAYERS = {
    128: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 4)]
    + [(False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    256: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8)]
    + [(False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
}
LAYERS[512] = LAYERS[256] + [(False, 1, 1), (True, 1, 1)]


@contextlib.contextmanager
def _cuda_answered(device: torch.device):
    """On the CPU: CUDA reported available and ``.cuda()`` a no-op while inside; nothing changes on CUDA."""
    if device.type == "cuda":
        yield
        return
    saved = torch.cuda.is_available, torch.nn.Module.cuda, torch.Tensor.cuda
    torch.cuda.is_available = lambda: True
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.cuda.is_available, torch.nn.Module.cuda, torch.Tensor.cuda = saved


def _import(device: torch.device):
    handler = signal.getsignal(signal.SIGINT)
    try:
        with _cuda_answered(device):
            import big_sleep.big_sleep as bs
            from big_sleep import biggan as bsg
            from big_sleep.clip import _transform, build_model
    finally:
        signal.signal(signal.SIGINT, handler)
    return bs, bsg, build_model, _transform


def build(size: int, cutouts: int, device: str = "cuda", *, channel_width: int = 128, clip_config: str = "ViT-B-32"):
    """big-sleep's ``Imagine`` with random models: BigGAN-deep-``size`` and an open_clip ``clip_config`` model
    (ViT-B-32 as big-sleep loads it: fp16 weights on CUDA, fp32 on the CPU); call ``train_step(0, i)`` to step.
    """
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index not in (None, 0):
        raise ValueError("big-sleep runs on the first CUDA device only")
    bs, bsg, build_model, transform = _import(dev)

    def random_biggan(name, *args, **kwargs):
        config = bsg.BigGANConfig(
            output_dim=size, channel_width=channel_width, layers=LAYERS[size], attention_layer_position=8
        )
        return bsg.BigGAN(config)

    def random_clip(name, jit=False):
        model = build_model(open_clip.create_model(clip_config).state_dict())
        return (model.cuda() if dev.type == "cuda" else model.float()), transform()

    saved = bsg.BigGAN.from_pretrained, bs.load
    bsg.BigGAN.from_pretrained = classmethod(lambda cls, name, *a, **k: random_biggan(name))
    bs.load = random_clip
    try:
        with _cuda_answered(dev):
            torch.manual_seed(0)
            return bs.Imagine(
                text="upside down tree",
                image_size=size,
                num_cutouts=cutouts,
                iterations=10**6,
                epochs=1,
                save_every=10**9,
                open_folder=False,
            )
    finally:
        bsg.BigGAN.from_pretrained, bs.load = saved


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("size", type=int, choices=sorted(LAYERS))
    p.add_argument("cutouts", type=int)
    p.add_argument("steps", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    gpu = args.device.startswith("cuda")
    imagine = build(args.size, args.cutouts, args.device)
    times = []
    for i in range(args.steps + 1):
        t0 = time.perf_counter()
        imagine.train_step(0, i)
        if gpu:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    print("big-sleep s/step:", round(statistics.median(times[1:]), 3), "device:", "cuda" if gpu else "cpu")
    if gpu:
        print("big-sleep peak GPU memory GiB:", round(torch.cuda.max_memory_allocated() / 2**30, 2))


if __name__ == "__main__":
    main(sys.argv[1:])
