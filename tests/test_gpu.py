"""The same code on a GPU (CUDA or Apple MPS) computes what it computes on the CPU (skipped without one)."""

import numpy as np
import pytest
import torch

from textsleep import Imagine
from textsleep.render import num_latents, render
from textsleep.testing import random_biggan

pytestmark = pytest.mark.gpu


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "mps"


def test_render_and_its_gradients_match_the_cpu():
    biggan = random_biggan(128, channel_width=4)
    n = num_latents(biggan)
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(2, n, 128, generator=g) * 0.7).requires_grad_()
    classes = (torch.rand(2, n, 1000, generator=g) * 0.05).requires_grad_()
    weights = torch.rand(2, 3, 128, 128, generator=g)
    cpu = render(biggan, z, classes, 0.614)
    cpu_grads = torch.autograd.grad((cpu * weights).sum(), [z, classes])
    dev = _device()
    gpu = render(biggan.to(dev), z.to(dev), classes.to(dev), 0.614)
    gpu_grads = torch.autograd.grad((gpu * weights.to(dev)).sum(), [z, classes])
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)
    for a, b in zip(gpu_grads, cpu_grads):
        assert torch.allclose(a.cpu(), b, rtol=1e-3, atol=1e-3 * b.abs().max().item())


def test_tiny_dream_follows_the_cpu(tiny_options):
    cpu = [s.loss for s in Imagine("a lighthouse", **tiny_options).steps()]
    gpu = [s.loss for s in Imagine("a lighthouse", **{**tiny_options, "device": _device()}).steps()]
    assert np.allclose(gpu, cpu, rtol=1e-3, atol=1e-3), (cpu, gpu)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="max allocated memory is a CUDA figure")
def test_bench_reports_gpu_memory():
    from textsleep.bench import run_bench

    result = run_bench(size=128, cutouts=2, steps=1, device="cuda", clip_model="ViT-B-32")
    assert result.device.startswith("cuda") and "GPU" in result.memory_kind and result.peak_memory_gb > 0
