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


# ------------------------------------------------------------------------------ what only a GPU can show
# Tolerances: the CLIP rewrites within 1e-3 of the stock model on the CPU (TF32 and fused kernels on the GPU);
# bf16's losses within 2% of fp32's; the compiled step's losses within 1e-3 of the eager step's.


def test_clip_rewrites_and_sdpa_match_the_stock_model_on_the_cpu():
    import open_clip

    from textsleep.fastclip import block_options, speed_up, use_attention

    torch.manual_seed(0)
    stock = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval().requires_grad_(False)
    fast = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None, **block_options("ViT-B-32-quickgelu"))
    fast.load_state_dict(stock.state_dict())
    fast = fast.eval().requires_grad_(False)
    speed_up(fast)
    images = torch.rand(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    cpu = images.clone().requires_grad_()
    expected = stock.encode_image(cpu)
    (expected_grad,) = torch.autograd.grad(expected.square().sum(), cpu)
    fast.to(_device())
    for kind in ("matmul", "sdpa"):
        use_attention(fast, kind)
        x = images.to(_device()).requires_grad_()
        embeds = fast.encode_image(x)
        (grad,) = torch.autograd.grad(embeds.square().sum(), x)
        assert torch.allclose(embeds.cpu(), expected, rtol=1e-3, atol=1e-3), kind
        assert torch.allclose(grad.cpu(), expected_grad, rtol=1e-3, atol=1e-3 * expected_grad.abs().max().item()), kind


def test_full_size_512_dream_at_auto_precision_stays_finite():
    from textsleep.devices import resolve_dtype
    from textsleep.dream import Dream, Judge
    from textsleep.testing import random_clip

    dev = torch.device(_device())
    dtype = resolve_dtype("auto", dev)
    biggan = random_biggan(512, 128).to(dev, dtype)
    clip = random_clip("ViT-B-32").to(dev, dtype)
    with torch.inference_mode():
        prompt = clip.encode_text(["upside down tree"])
    dream = Dream(biggan, [Judge(clip, prompt, torch.ones(1, device=dev))], seeds=[0], cutouts=32)
    losses = [dream.step().loss for _ in range(3)]
    picture = dream.render()
    assert np.isfinite(losses).all() and torch.isfinite(picture).all() and picture.shape == (1, 3, 512, 512)


def test_bf16_follows_fp32_on_the_gpu(tiny_options):
    options = {**tiny_options, "device": _device(), "iterations": 5}
    fp32 = [s.loss for s in Imagine("a lighthouse", **options).steps()]
    bf16 = [s.loss for s in Imagine("a lighthouse", **{**options, "precision": "bf16"}).steps()]
    assert np.allclose(bf16, fp32, rtol=0.02, atol=0.05), (fp32, bf16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled step's CUDA graphs are a CUDA feature")
def test_compiled_step_equals_eager_on_cuda(tiny_options):
    options = {**tiny_options, "device": "cuda", "iterations": 5}
    eager = [(s.loss, s.scores) for s in Imagine("a lighthouse", **options).steps()]
    imagine = Imagine("a lighthouse", **options, compile=True)
    compiled = [(s.loss, s.scores) for s in imagine.steps()]
    assert np.allclose([c[0] for c in compiled], [e[0] for e in eager], rtol=1e-3, atol=1e-3)
    assert np.allclose([c[1] for c in compiled], [e[1] for e in eager], rtol=1e-3, atol=1e-3)
    assert torch.isfinite(imagine.dream.render()).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="levers for CUDA")
def test_levers_on_cuda_compute_the_same(tiny_options, monkeypatch):
    from textsleep.speed import Levers

    options = {**tiny_options, "device": "cuda"}
    plain = [s.loss for s in Imagine("a lighthouse", **options).steps()]
    same = Levers(attention="sdpa", host_sync=False, foreach_ema=True, cutout_batch=0)
    monkeypatch.setattr(Levers, "for_device", classmethod(lambda cls, device: same))
    assert np.allclose([s.loss for s in Imagine("a lighthouse", **options).steps()], plain, rtol=1e-4, atol=1e-4)
    noisy = Levers(noise_on_device=True)
    monkeypatch.setattr(Levers, "for_device", classmethod(lambda cls, device: noisy))
    a = [s.loss for s in Imagine("a lighthouse", **options).steps()]
    b = [s.loss for s in Imagine("a lighthouse", **options).steps()]
    assert a == b and np.isfinite(a).all()  # reproducible, from the pictures' own seeds
