import torch

from textsleep import losses


def _unit(*shape):
    return torch.nn.functional.normalize(torch.randn(*shape), dim=-1)


def test_clip_similarity_is_weighted_mean_over_cutouts():
    img = _unit(2, 5, 8)
    prompts = _unit(3, 8)
    weights = torch.tensor([1.0, 2.0, -1.0])
    sim = losses.clip_similarity(img, prompts, weights)
    expected = torch.stack([sum(w * (img[b] @ prompts[p]).mean() for p, w in enumerate(weights)) for b in range(2)])
    assert sim.shape == (2,)
    assert torch.allclose(sim, expected, atol=1e-6)


def test_clip_similarity_higher_when_image_matches_prompt():
    prompt = _unit(1, 16)
    same = prompt.expand(4, 16)[None]
    other = _unit(1, 4, 16)
    w = torch.ones(1)
    assert losses.clip_similarity(same, prompt, w) > losses.clip_similarity(other, prompt, w)
    # a negative weight turns it round
    assert losses.clip_similarity(same, prompt, -w) < losses.clip_similarity(other, prompt, -w)


def test_latent_loss_small_for_gaussian_large_for_skewed():
    g = torch.Generator().manual_seed(0)
    gaussian = torch.randn(1, 15, 4096, generator=g)
    skewed = torch.rand(1, 15, 4096, generator=g) ** 4 * 3
    assert losses.latent_loss(gaussian).item() < 0.25  # sampling noise of four moments
    assert losses.latent_loss(skewed).item() > 1.0
    # truncation-aware: a gaussian scaled by t is judged after dividing by t
    assert torch.allclose(losses.latent_loss(gaussian * 0.4, truncation=0.4), losses.latent_loss(gaussian), atol=1e-5)


def test_latent_loss_gradient_pulls_std_towards_one():
    z = (torch.randn(1, 3, 512) * 3).requires_grad_()
    losses.latent_loss(z).sum().backward()
    # moving against the gradient shrinks a too-wide latent
    assert (z - 0.01 * z.grad).std() < z.std()


def test_class_loss_prefers_one_class():
    one_hot = torch.zeros(1, 2, 1000)
    one_hot[..., 3] = 1.0
    spread = torch.full((1, 2, 1000), 0.02)
    assert losses.class_loss(one_hot).item() == 0.0
    assert losses.class_loss(spread).item() > 0.5
    assert losses.class_loss(spread).shape == (1,)
