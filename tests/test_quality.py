"""Best-of-K starts, several pictures at once, CLIP ensembles, augmentation presets."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from textsleep import DreamSettings, Imagine, UserError
from textsleep.cutouts import Cutouts
from textsleep.dream import Dream, Judge
from textsleep.starts import best_of_k
from textsleep.testing import random_biggan, random_clip


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def test_best_of_k_picks_the_highest_score():
    rendered = []

    def render_fn(z, logits):
        rendered.append(z.shape[0])
        return z[:, 0, :3, None, None].expand(-1, 3, 4, 4)  # a "picture" made from z

    def score_fn(images):
        return images[:, 0, 0, 0]  # the score is the first z value

    start = best_of_k(render_fn, score_fn, k=10, num_latents=4, seed=3, truncation=0.5, classes=[5, 9], micro_batch=4)
    scores = start.record["scores"]
    assert start.record["chosen"] == int(np.argmax(scores))
    assert rendered == [4, 4, 2]  # micro-batches
    assert start.z.shape == (4, 128) and start.z.abs().max() <= 1.0
    assert start.record["chosen_class"] == [5, 9][start.record["chosen"] % 2]
    assert start.logits.argmax(-1).tolist() == [start.record["chosen_class"]] * 4


def test_init_candidates_recorded_and_used(tiny_options):
    imagine = Imagine("a lighthouse", **{**tiny_options, "init_candidates": 4, "init_class": "5"})
    run = imagine()
    record = json.loads((run / "run.json").read_text())
    start = record["starts"][0]
    assert len(start["scores"]) == 4 and start["chosen"] == int(np.argmax(start["scores"]))
    assert start["classes"] == [5, 5, 5, 5]


def test_several_images_equal_single_runs(tiny_options):
    batch = Imagine("a red cube", **{**tiny_options, "num_images": 2})()
    assert sorted(p.name for p in batch.iterdir() if p.is_dir()) == ["1-seed7", "2-seed8"]
    assert (batch / "contact_sheet.png").is_file()
    single7 = Imagine("a red cube", **tiny_options)()
    single8 = Imagine("a red cube", **{**tiny_options, "seed": 8})()
    for sub, single in (("1-seed7", single7), ("2-seed8", single8)):
        diff = np.abs(_pixels(batch / sub / "image.png") - _pixels(single / "image.png"))
        assert diff.max() <= 2, sub  # same picture, up to rounding of batched convolutions
    record = json.loads((batch / "run.json").read_text())
    assert [i["seed"] for i in record["images"]] == [7, 8]


def test_keep_best_leaves_one_folder(tiny_options):
    run = Imagine("a red cube", **{**tiny_options, "num_images": 3, "keep": "best"})()
    kept = [p for p in run.iterdir() if p.is_dir()]
    record = json.loads((run / "run.json").read_text())
    best = max(record["images"], key=lambda i: i["final_score"])
    assert [p.name for p in kept] == [best["folder"]]


def test_ensemble_loss_is_the_weighted_mean():
    biggan = random_biggan(128, channel_width=4)
    clip_a = random_clip("ViT-B-32", seed=1)
    torch.manual_seed(0)
    prompt = torch.nn.functional.normalize(torch.randn(1, 512), dim=-1)
    judges = [
        Judge(clip_a, prompt, torch.ones(1), 2.0),
        Judge(random_clip("ViT-B-32", seed=2), prompt, torch.ones(1), 0.5),
    ]
    images = torch.rand(1, 3, 128, 128)

    def sim(js):
        dream = Dream(biggan, js, seeds=[4], cutouts=3)
        # whole-picture "cutouts", so every judge sees the same views whatever the random state
        dream.cutouts = [Cutouts(j.clip.image_size, 3, "none", min_frac=1.0, max_frac=1.0) for j in js]
        return dream.similarity(images)

    both = sim(judges)
    one, two = sim(judges[:1]), sim(judges[1:])
    assert not torch.allclose(one, two)
    assert torch.allclose(both, (2.0 * one + 0.5 * two) / 2.5, atol=1e-5)
    # the whole-view score used to pick the best picture follows the same rule
    from textsleep.dream import score_images

    assert torch.allclose(
        score_images(judges, images),
        (2.0 * score_images(judges[:1], images) + 0.5 * score_images(judges[1:], images)) / 2.5,
        atol=1e-5,
    )


def test_ensemble_settings_errors():
    with pytest.raises(UserError, match=r"weight 'x' is not a number"):
        DreamSettings(text="a", clip_model=("ViT-B-32", "ViT-B-16:x"))
    with pytest.raises(UserError, match="given twice"):
        DreamSettings(text="a", clip_model=("ViT-B-32", "ViT-B-32:0.5"))
    with pytest.raises(UserError, match="init_candidates=0"):
        DreamSettings(text="a", init_candidates=0)
    with pytest.raises(UserError, match="num_images=0"):
        DreamSettings(text="a", num_images=0)
    specs = DreamSettings(text="a", clip_model=("ViT-B-32", "ViT-B-16:0.5")).clips()
    assert [(c.name, c.pretrained, c.weight) for c in specs] == [
        ("ViT-B-32", "openai", 1.0),
        ("ViT-B-16", "openai", 0.5),
    ]


@pytest.mark.parametrize("preset", ["none", "light", "strong"])
def test_augment_presets_are_seeded_and_differentiable(preset):
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    cut = Cutouts(32, 6, preset)
    a = cut(images, torch.Generator().manual_seed(1))
    b = cut(images, torch.Generator().manual_seed(1))
    assert a.shape == (6, 3, 32, 32) and torch.equal(a, b)
    a.sum().backward()
    assert images.grad.abs().sum() > 0
    if preset == "strong":  # a blanked square in every cutout (seen without the colour noise)
        quiet = Cutouts(32, 6, preset, noise=0.0)(images.detach(), torch.Generator().manual_seed(1))
        assert ((quiet == 0).flatten(1).sum(1) >= 3 * 8 * 8).all()
