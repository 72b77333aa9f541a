"""Each lever of the step (textsleep.speed.Levers) computes the same thing as the step without it."""

import json

import open_clip
import pytest
import torch

from textsleep import Imagine
from textsleep.cutouts import Cutouts
from textsleep.dream import Dream, Judge, Step
from textsleep.fastclip import block_options, speed_up, use_attention
from textsleep.latents import EMA, Latents
from textsleep.speed import Levers
from textsleep.testing import random_biggan, random_clip, write_clip

CLIP_CONFIG = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def clip_name(tmp_path_factory):
    config, _ = write_clip(tmp_path_factory.mktemp("levers"), "textsleep-levers-test", CLIP_CONFIG)
    return config.stem


def _dream(clip_name, levers=None, *, seeds=(3,), cutouts=6, cutout_batch=32):
    biggan = random_biggan(128, 4)
    clip = random_clip(clip_name)
    with torch.inference_mode():
        prompt = clip.encode_text(["a lighthouse"])
    judge = Judge(clip, prompt, torch.ones(1))
    return Dream(biggan, [judge], seeds=list(seeds), cutouts=cutouts, cutout_batch=cutout_batch, levers=levers)


def _run(dream, steps=3):
    found = [dream.step() for _ in range(steps)]
    return [s.loss for s in found], [s.scores for s in found], dream.latents.z.detach().clone()


def test_sdpa_attention_equals_two_matmuls(clip_name):
    torch.manual_seed(0)
    model = open_clip.create_model(clip_name, pretrained=None, **block_options(clip_name)).eval().requires_grad_(False)
    speed_up(model)
    images = torch.rand(3, 3, 32, 32, requires_grad=True)
    found = {}
    for kind in ("matmul", "sdpa"):
        assert use_attention(model, kind) == 2  # both blocks, the last one (class token only) too
        embeds = model.encode_image(images)
        (grad,) = torch.autograd.grad(embeds.square().sum(), images)
        found[kind] = embeds, grad
    assert torch.allclose(found["sdpa"][0], found["matmul"][0], atol=1e-5)
    assert torch.allclose(found["sdpa"][1], found["matmul"][1], atol=1e-5)
    with pytest.raises(ValueError, match="flash"):
        use_attention(model, "flash")


def test_a_dream_with_sdpa_attention_follows_the_matmul_one(clip_name):
    matmul = _run(_dream(clip_name))
    with_sdpa = _dream(clip_name, Levers(attention="sdpa"))
    sdpa = _run(with_sdpa)
    assert sdpa[0] == pytest.approx(matmul[0], rel=1e-5)
    assert torch.allclose(sdpa[2], matmul[2], atol=1e-5)
    # two dreams sharing a CLIP model each compute with their own lever
    model = with_sdpa.judges[0].clip.model
    other = Dream(with_sdpa.biggan, with_sdpa.judges, seeds=[3], cutouts=6)
    other.step()
    assert not any(getattr(block.attn, "sdpa", False) for block in model.visual.transformer.resblocks[:-1])
    with_sdpa.step()
    assert all(block.attn.sdpa for block in model.visual.transformer.resblocks[:-1])


def test_noise_drawn_on_the_device_is_reproducible_and_standard_normal():
    cut = Cutouts(32, 64, "light")
    draw = lambda seed, **k: cut.draw(64, 64, torch.Generator().manual_seed(seed), **k)  # noqa: E731
    here, there = draw(1), draw(1, noise_device="cpu")
    assert torch.equal(there.noise, draw(1, noise_device="cpu").noise)  # the same seed, the same noise
    assert not torch.equal(there.noise, draw(2, noise_device="cpu").noise)
    assert there.noise.shape == here.noise.shape and not torch.equal(there.noise, here.noise)  # other numbers…
    assert abs(there.noise.mean()) < 0.01 and abs(there.noise.std() - 1) < 0.01  # …of the same distribution
    assert torch.equal(there.boxes, here.boxes)  # (drawn before the noise: the same places)


def test_no_host_sync_makes_the_same_steps_without_reading_back(clip_name, monkeypatch):
    synced = _dream(clip_name)
    lazy = _dream(clip_name, Levers(host_sync=False))
    reads = []

    def counted(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args):
            # (Adam's step counts are tensors kept on the CPU whatever the device: reading them costs no sync)
            if not any(self is state.get("step") for d in (synced, lazy) for state in d.optimizer.state.values()):
                reads.append(name)
            return original(self, *args)

        return read

    with monkeypatch.context() as m:
        for name in ("item", "tolist", "__bool__", "__float__"):
            m.setattr(torch.Tensor, name, counted(name))
        synced.step()
        assert "tolist" in reads and "__bool__" in reads  # (the synced step reads back; the patches see it)
        reads.clear()
        steps = [lazy.step() for _ in range(2)]
        assert reads == ["__bool__"]  # nothing read back inside a step but the step before's finiteness
    assert isinstance(steps[0], Step) and isinstance(steps[0].loss, float) and isinstance(steps[0].scores[0], float)
    more = _dream(clip_name)
    expected = [more.step() for _ in range(2)]
    assert [s.loss for s in steps] == [s.loss for s in expected]
    assert steps[1].losses == expected[1].losses and steps[1].score == expected[1].score


def test_without_host_sync_a_non_finite_loss_is_caught_a_step_late(clip_name):
    dream = _dream(clip_name, Levers(host_sync=False))
    dream.step()
    with torch.no_grad():
        dream.latents.z.fill_(float("nan"))
    dream.step()  # (its loss is checked with the next step)
    with pytest.raises(FloatingPointError, match="at step 2"):
        dream.step()
    dream = _dream(clip_name, Levers(host_sync=False))
    with torch.no_grad():
        dream.latents.z.fill_(float("nan"))
    dream.step()
    with pytest.raises(FloatingPointError, match="at step 1"):
        dream.state_dict()  # nothing non-finite is saved


def test_foreach_moving_average_is_the_same_numbers():
    latents = Latents(5, generators=[torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)])
    loop, foreach = EMA(latents, 0.9), EMA(latents, 0.9)
    for _ in range(3):
        with torch.no_grad():
            latents.z.add_(0.1)
            latents.logits.mul_(1.1)
        loop.update(latents)
        foreach.update(latents, foreach=True)
    for name, value in loop.averaged(latents).items():
        assert torch.equal(foreach.averaged(latents)[name], value)


def test_cutout_batch_lever_takes_all_cutouts_at_once_for_the_same_dream(clip_name):
    dream = _dream(clip_name, Levers(cutout_batch=0), seeds=(3, 4), cutout_batch=2)
    assert dream.cutout_batch is None
    assert _dream(clip_name, Levers(cutout_batch=4), cutout_batch=2).cutout_batch == 4
    assert _dream(clip_name, cutout_batch=2).cutout_batch == 2  # (no lever: as the settings say)
    losses, scores, z = _run(dream)
    reference = _run(_dream(clip_name, seeds=(3, 4), cutout_batch=2))
    assert losses == pytest.approx(reference[0], rel=1e-5)
    assert torch.allclose(z, reference[2], atol=1e-5)


def test_levers_are_checked():
    with pytest.raises(ValueError, match="attention 'flash'"):
        Levers(attention="flash")
    with pytest.raises(ValueError, match="cutout_batch -1"):
        Levers(cutout_batch=-1)
    assert Levers.for_device("cpu") == Levers()


def test_every_lever_on_resumes_exactly(tiny_options, monkeypatch):
    levers = Levers(noise_on_device=True, host_sync=False, foreach_ema=True, cutout_batch=0)
    monkeypatch.setattr(Levers, "for_device", classmethod(lambda cls, device: levers))
    straight = Imagine("a lighthouse", **tiny_options)()
    half = Imagine("a lighthouse", **{**tiny_options, "iterations": 2})()
    resumed = Imagine(resume=half, iterations=4)()
    for name in ("z", "logits"):
        a = torch.load(straight / "latents.pt", weights_only=True)[name]
        assert torch.equal(torch.load(resumed / "latents.pt", weights_only=True)[name], a)
    record = json.loads((resumed / "run.json").read_text())
    assert record["status"] == "finished" and record["steps_done"] == 4
