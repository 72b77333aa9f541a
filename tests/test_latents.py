import pytest
import torch

from textsleep.latents import EMA, Latents, topk_classes, truncated_normal


def test_truncated_normal_stays_in_bounds_and_is_seeded():
    a = truncated_normal((10_000,), torch.Generator().manual_seed(1))
    b = truncated_normal((10_000,), torch.Generator().manual_seed(1))
    assert a.abs().max() <= 2.0
    assert torch.equal(a, b)
    assert 0.8 < a.std() < 0.95  # a normal cut at ±2 has std ≈ 0.88


@pytest.mark.parametrize("truncation", [0.3, 1.0])
def test_latents_start_and_stay_within_two_truncations(truncation):
    lat = Latents(5, generators=[torch.Generator().manual_seed(0), None], truncation=truncation)
    assert lat.z.shape == (2, 5, 128) and lat.logits.shape == (2, 5, 1000)
    assert lat.z.abs().max() <= 2 * truncation + 1e-6
    with torch.no_grad():
        lat.z.mul_(10)
    lat.clamp_()
    assert lat.z.abs().max() <= 2 * truncation + 1e-6
    assert lat.z.abs().max() >= 2 * truncation - 1e-3


def test_classes_sigmoid_and_topk():
    lat = Latents(3, generators=[torch.Generator().manual_seed(0)])
    assert torch.allclose(lat.classes(), torch.sigmoid(lat.logits))
    lat.max_classes = 5
    c = lat.classes()
    assert torch.allclose(c.sum(-1), torch.ones(1, 3))
    assert ((c > 0).sum(-1) == 5).all()


def test_topk_is_differentiable_and_temperature_sharpens():
    logits = torch.randn(2, 50, requires_grad=True)
    out = topk_classes(logits, 4, 2.0)
    (out * torch.arange(50.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    hot = topk_classes(logits.detach(), 4, 0.1).max(-1).values
    warm = topk_classes(logits.detach(), 4, 10.0).max(-1).values
    assert (hot > warm).all()


def test_ema_is_bias_corrected_average():
    lat = Latents(2, generators=[torch.Generator().manual_seed(0)])
    ema = EMA(lat, decay=0.5)
    first = lat.z.detach().clone()
    ema.update(lat)
    assert torch.allclose(ema.averaged(lat)["z"], first)  # one update: exactly the value, not half of it
    with torch.no_grad():
        lat.z.add_(1.0)
    ema.update(lat)
    # (0.5·x + 0.5·(x+1)·... ) bias-corrected: weights 1/3 and 2/3
    assert torch.allclose(ema.averaged(lat)["z"], first + 2 / 3, atol=1e-6)
    state = ema.state_dict()
    other = EMA(lat, decay=0.5)
    other.load_state_dict(state)
    assert torch.allclose(other.averaged(lat)["z"], ema.averaged(lat)["z"])
