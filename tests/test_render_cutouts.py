import torch

from textsleep.cutouts import Cutouts
from textsleep.render import affine_relu, num_latents, render
from textsleep.testing import random_biggan


def _with_random_statistics(biggan):
    """Give every batch norm distinct stored statistics, so the truncation matters as it does in real weights."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in biggan.named_buffers():
            if name.endswith("running_means"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
            elif name.endswith("running_vars"):
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)
    return biggan


def test_render_shape_range_and_one_condition_per_block():
    biggan = random_biggan(128, channel_width=4)
    n = num_latents(biggan)
    assert n == 11  # 10 blocks + the first layer
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, n, 128, generator=g).clamp(-2, 2)
    classes = torch.zeros(2, n, 1000)
    classes[..., 1] = 1
    images = render(biggan, z, classes, 1.0)
    assert images.shape == (2, 3, 128, 128)
    assert 0 <= images.min() and images.max() <= 1
    # changing only the last block's latent changes the picture: each block gets its own condition
    z2 = z.clone()
    z2[:, -1] += 1
    assert not torch.allclose(render(biggan, z2, classes, 1.0), images)


def test_render_matches_the_package_forward_when_all_conditions_agree():
    biggan = random_biggan(128, channel_width=4)
    n = num_latents(biggan)
    z = torch.randn(1, 128).clamp(-2, 2)
    y = torch.zeros(1, 1000)
    y[0, 207] = 1
    ours = render(biggan, z[:, None].expand(1, n, 128), y[:, None].expand(1, n, 1000), 0.7)
    theirs = (biggan(z, y, 0.7) + 1) / 2
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_render_gradients_match_the_package_forward():
    # the fused batch-norm + ReLU and the 3-channel colour convolution compute what the package's modules compute
    biggan = _with_random_statistics(random_biggan(128, channel_width=4))
    n = num_latents(biggan)
    g = torch.Generator().manual_seed(2)
    z = (torch.randn(2, 128, generator=g) * 0.7).requires_grad_()
    y = (torch.rand(2, 1000, generator=g) * 0.05).requires_grad_()
    weights = torch.rand(2, 3, 128, 128, generator=g)
    ours = render(biggan, z[:, None].expand(2, n, 128), y[:, None].expand(2, n, 1000), 0.614)
    theirs = (biggan(z, y, 0.614) + 1) / 2
    assert torch.allclose(ours, theirs, atol=1e-5)
    grads_ours = torch.autograd.grad((ours * weights).sum(), [z, y])
    grads_theirs = torch.autograd.grad((theirs * weights).sum(), [z, y])
    for a, b in zip(grads_ours, grads_theirs):
        assert a.abs().max() > 0
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_affine_relu_gradients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.randn(2, 3, 1, 1, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 3, 1, 1, generator=g, dtype=torch.float64, requires_grad=True)  # shared by the batch
    assert torch.equal(affine_relu(x, a, b), torch.relu(x * a + b))
    assert torch.autograd.gradcheck(affine_relu, (x, a, b))


def test_cutouts_shape_order_and_reproducibility():
    images = torch.rand(2, 3, 64, 64)
    cut = Cutouts(size=32, count=5, augment="light")
    a = cut(images, torch.Generator().manual_seed(3))
    b = cut(images, torch.Generator().manual_seed(3))
    assert a.shape == (10, 3, 32, 32)
    assert torch.equal(a, b)
    # rows 0..4 come from picture 0: a black picture gives (nearly) black cutouts there only
    images[0] = 0
    c = Cutouts(size=32, count=5, augment="none")(images, torch.Generator().manual_seed(3))
    assert c[:5].abs().max() < 1e-6 and c[5:].mean() > 0.2


def test_cutout_sizes_between_half_and_most_of_the_side():
    cut = Cutouts(size=32, count=2000, augment="none")
    boxes = cut.boxes(1, 100, 100, torch.Generator().manual_seed(0))
    side = boxes[:, 1, 0] - boxes[:, 0, 0] + 1
    assert side.min() >= 50 - 1e-3 and side.max() <= 95 + 1e-3
    assert (boxes >= 0).all() and (boxes <= 99 + 1e-3).all()


def test_cutouts_pass_gradients_to_the_picture():
    images = torch.rand(1, 3, 48, 48, requires_grad=True)
    Cutouts(size=16, count=3)(images, torch.Generator().manual_seed(0)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
