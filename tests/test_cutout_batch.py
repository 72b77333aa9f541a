"""Encoding cutouts a few at a time (to cap memory) gives the same dream as all at once."""

import pytest
import torch
from typer.testing import CliRunner

from textsleep import DreamSettings, Imagine
from textsleep.cli import app
from textsleep.cutouts import Cutouts
from textsleep.errors import UserError


def _run(options, **changes):
    imagine = Imagine("a lighthouse", **{**options, **changes})
    steps = list(imagine.steps())
    return [s.loss for s in steps], [s.scores for s in steps], imagine.dream.latents.z.detach().clone()


@pytest.mark.parametrize("num_images, cutout_batch", [(1, 2), (2, 4), (2, 1)])
def test_same_dream_whatever_the_cutout_batch(tiny_options, num_images, cutout_batch):
    # (2, 4): batches of 4 rows over 2 pictures × 6 cutouts cut across the pictures
    options = {**tiny_options, "cutouts": 6, "num_images": num_images, "iterations": 3}
    whole_loss, whole_scores, whole_z = _run(options, cutout_batch=12)
    part_loss, part_scores, part_z = _run(options, cutout_batch=cutout_batch)
    assert part_loss == pytest.approx(whole_loss, rel=1e-5)
    assert torch.tensor(part_scores) == pytest.approx(torch.tensor(whole_scores), abs=1e-5)
    assert torch.allclose(part_z, whole_z, atol=1e-5)
    assert not torch.equal(whole_z, Imagine("a lighthouse", **options).prepare().latents.z)  # the dream did move


def test_cutouts_in_pieces_equal_cutouts_at_once():
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    for preset in ("none", "light", "strong"):
        cut = Cutouts(32, 5, preset)
        whole = cut(images, torch.Generator().manual_seed(3))
        draw = cut.draw(64, 64, torch.Generator().manual_seed(3), batch=2)
        pieces = torch.cat([cut.apply(images, draw, slice(i, min(i + 3, 10))) for i in range(0, 10, 3)])
        assert pieces.shape == whole.shape == (10, 3, 32, 32)
        assert torch.allclose(pieces, whole, atol=1e-4), preset


def test_cutout_batch_is_checked_and_may_change_on_resume(tiny_options, tiny_args):
    with pytest.raises(UserError, match="cutout_batch=0"):
        DreamSettings(text="a", cutout_batch=0)
    result = CliRunner().invoke(app, ["dream", "a cat", *tiny_args, "--cutout-batch", "0"])
    assert result.exit_code == 2 and "--cutout-batch 0" in result.output
    run = Imagine("a cat", **{**tiny_options, "cutout_batch": 1})()
    resumed = Imagine(resume=run, iterations=6, cutout_batch=4)
    assert resumed.settings.cutout_batch == 4 and resumed.settings.iterations == 6
