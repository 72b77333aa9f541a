"""Dreams people prefer: preference models in the guiding ensemble, --init-judge, FuseDream's mixed latents, latent
noise and --recipe fusedream, on tiny random models in the real formats."""

import io
import json

import pytest
import torch
from typer.testing import CliRunner

from textsleep.cli import app
from textsleep.command_settings import BenchSettings
from textsleep.cutouts import Cutouts
from textsleep.dream import Dream
from textsleep.errors import UserError, for_command_line
from textsleep.evaluate import check_self_judging
from textsleep.guides import Judge, encode_prompts, load_guide
from textsleep.latents import MixedLatents, logit, mix
from textsleep.models import ModelCache, load_clip
from textsleep.prompts import Prompt
from textsleep.recipes import RECIPES
from textsleep.render import num_latents, render
from textsleep.settings import ClipSpec, DreamSettings
from textsleep.testing import random_biggan, write_aesthetic, write_clip, write_hps

runner = CliRunner()
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def biggan():
    return random_biggan(128, 4, seed=1)


@pytest.fixture(scope="module")
def clip_judge(tmp_path_factory):
    return load_clip(*map(str, write_clip(tmp_path_factory.mktemp("clip"), seed=2)))


def _judge(clip, text="a red cube", weight=1.0) -> Judge:
    return Judge(clip, *encode_prompts(clip, [Prompt(text)]), weight)


def _hps_guide(folder, weight=1.0, text="a red cube") -> Judge:
    judge = load_guide(ClipSpec("hps-v2.1", str(write_hps(folder)), weight), CPU, torch.float32, ModelCache())
    judge.prompt_embeds, judge.prompt_weights = judge.encode([Prompt(text)])
    return judge


# ---------------------------------------------------------------------------------------------- FuseDream's mix
def test_mix_is_a_per_coordinate_softmax_over_the_bases():
    g = torch.Generator().manual_seed(0)
    weights, bases = torch.randn(2, 3, 4, 5, generator=g), torch.randn(2, 3, 4, 5, generator=g)
    by_hand = sum(weights[:, k].exp() / weights.exp().sum(1) * bases[:, k] for k in range(3))
    torch.testing.assert_close(mix(weights, bases), by_hand)
    one = torch.randn(2, 1, 4, 5, generator=g)
    assert torch.equal(mix(torch.randn(2, 1, 4, 5, generator=g), one), one[:, 0])  # one basis: itself, exactly


def test_mixed_latents_follow_the_formula_and_the_clamp():
    latents = MixedLatents(5, bases=3, generators=[torch.Generator().manual_seed(s) for s in (1, 2)], truncation=0.5)
    assert latents.z.shape == (2, 3, 5, 128) and latents.logits.shape == (2, 3, 5, 1000)
    assert latents.z_weights.shape == latents.z.shape and latents.class_weights.shape == latents.logits.shape
    with torch.no_grad():
        latents.z.mul_(10)  # far out of the truncation range
    latents.clamp_()
    assert latents.z.abs().max() <= 1.0 + 1e-6 and latents.z.abs().max() > 0.99  # ±2·truncation
    z, classes = latents()
    w = torch.softmax(latents.z_weights, dim=1)
    torch.testing.assert_close(z, (w * latents.z).sum(1))
    torch.testing.assert_close(
        classes, (torch.softmax(latents.class_weights, 1) * torch.sigmoid(latents.logits)).sum(1)
    )
    assert z.abs().max() <= 1.0 + 1e-6  # a mix of clamped bases stays in range
    recorded = latents.current()  # what latents.pt records: the mix (z and the logits of the mixed classes)
    torch.testing.assert_close(recorded["z"], z)
    torch.testing.assert_close(torch.sigmoid(recorded["logits"]), classes, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logit(torch.tensor([0.2, 0.7])), torch.tensor([0.2, 0.7]).logit())


def test_every_part_of_the_mix_is_learnt(biggan, clip_judge):
    dream = Dream(biggan, [_judge(clip_judge)], seeds=[3], cutouts=2, bases=2, ema_decay=0)
    before = {k: p.detach().clone() for k, p in dream.latents.named_parameters()}
    dream.step()
    assert set(before) == {"z", "logits", "z_weights", "class_weights"}
    for name, p in dream.latents.named_parameters():
        assert not torch.equal(p, before[name]), name


def test_one_basis_and_no_noise_is_todays_dream(biggan, clip_judge):
    judge = _judge(clip_judge)
    today = Dream(biggan, [judge], seeds=[5, 6], cutouts=3)
    settings = DreamSettings(text="x", bases=1, latent_noise=0.0, cutouts=3)
    again = Dream(biggan, [judge], seeds=[5, 6], cutouts=3, bases=settings.bases, latent_noise=settings.latent_noise)
    for _ in range(2):
        a, b = today.step(), again.step()
        assert a.loss == b.loss
    for k, v in today.latent_params().items():
        assert torch.equal(v, again.latent_params()[k])
    defaults = DreamSettings(text="x")
    assert (defaults.bases, defaults.latent_noise, defaults.recipe, defaults.init_judge) == (1, 0.0, None, None)


def test_latent_noise_is_added_to_what_biggan_renders(biggan, clip_judge, monkeypatch):
    dream = Dream(biggan, [_judge(clip_judge)], seeds=[1, 2], cutouts=2, latent_noise=0.25, bases=3)
    seen = []

    def spy(gan, z, classes, truncation):
        seen.append((z.detach(), classes.detach()))
        return render(gan, z, classes, truncation)

    monkeypatch.setattr("textsleep.dream.render", spy)
    z, classes = dream.latents()
    state = [g.get_state() for g in dream.generators]
    expected = dream._noise()  # what the step's draw will be, from each picture's own generator
    for g, s in zip(dream.generators, state):
        g.set_state(s)
    dream.step()
    torch.testing.assert_close(seen[0][0], z.detach() + expected[0])
    torch.testing.assert_close(seen[0][1], classes.detach() + expected[1])
    noise = torch.cat([expected[0].flatten(), expected[1].flatten()])
    assert abs(noise.std().item() - 0.25) < 0.01 and abs(noise.mean().item()) < 0.01


def test_mixed_latents_checkpoint_and_resume(biggan, clip_judge):
    judge = _judge(clip_judge)
    options = dict(seeds=[4], cutouts=2, bases=3, latent_noise=0.01)
    first = Dream(biggan, [judge], **options)
    for _ in range(2):
        first.step()
    file = io.BytesIO()  # (as checkpoint.pt holds it)
    torch.save(first.state_dict(), file)
    file.seek(0)
    state = torch.load(file)
    resumed = Dream(biggan, [judge], **options)
    resumed.load_state_dict(state)
    a, b = first.step(), resumed.step()
    assert a.loss == b.loss
    for k, v in first.latent_params().items():
        assert torch.equal(v, resumed.latent_params()[k])


def test_fusedream_augmentations_are_copies_of_the_whole_picture():
    cutouts = Cutouts(32, 6, "fusedream")
    images = torch.rand(2, 3, 64, 64)
    g = torch.Generator().manual_seed(0)
    out = cutouts.apply(images, cutouts.draw(64, 64, g, batch=2))
    assert out.shape == (12, 3, 32, 32)
    assert (out == 0.5).any()  # grey: the square blanked out and what left the frame
    assert not torch.equal(out[0], out[1])


# ---------------------------------------------------------------------------------------------- preference guides
def test_a_weight_of_0_is_todays_dream(biggan, clip_judge, tmp_path):
    judge = _judge(clip_judge)
    today = Dream(biggan, [judge], seeds=[8], cutouts=3)
    with_zero = Dream(biggan, [judge, _hps_guide(tmp_path / "hps", weight=0.0)], seeds=[8], cutouts=3)
    for _ in range(2):
        assert today.step().loss == with_zero.step().loss
    assert torch.equal(today.latent_params()["z"], with_zero.latent_params()["z"])
    assert [s.weight for s in DreamSettings(text="x", clip_model=("ViT-B-32", "hps-v2.1:0")).clips()] == [1.0, 0.0]
    with pytest.raises(UserError, match="every weight is 0"):
        DreamSettings(text="x", clip_model=("hps-v2.1:0",))


def test_a_preference_guide_s_gradient_reaches_the_latents(biggan, tmp_path):
    """Autograd's derivative of HPS's score along a direction in latent space matches the finite difference."""
    judge = _hps_guide(tmp_path / "hps")
    z0 = torch.randn(1, num_latents(biggan), 128, generator=torch.Generator().manual_seed(0)) * 0.5
    classes = torch.sigmoid(torch.randn(1, num_latents(biggan), 1000, generator=torch.Generator().manual_seed(1)) - 4)

    def score(z):
        view = judge.view(render(biggan, z, classes, 1.0))
        return judge.similarity(judge.clip.encode_image(view)[:, None])[0]

    z = z0.clone().requires_grad_()
    score(z).backward()
    direction = z.grad / z.grad.norm()
    eps = 0.05
    with torch.no_grad():
        numeric = (score(z0 + eps * direction) - score(z0 - eps * direction)) / (2 * eps)
    analytic = (z.grad * direction).sum()
    assert analytic > 0
    assert numeric.item() == pytest.approx(analytic.item(), rel=0.1)


def test_the_aesthetic_guide_reads_no_prompt_and_its_rating_moves_the_picture(biggan, tmp_path):
    judge = load_guide(
        ClipSpec("aesthetic", str(write_aesthetic(tmp_path / "a")), 1.0), CPU, torch.float32, ModelCache()
    )
    embeds, weights = judge.encode([Prompt("a red cube")])
    assert not judge.reads_prompts and embeds.numel() == 0 and weights.numel() == 0
    dream = Dream(biggan, [judge], seeds=[2], cutouts=2, ema_decay=0)
    before = dream.latents.z.detach().clone()
    step = dream.step()
    assert torch.isfinite(torch.tensor(step.loss)) and not torch.equal(dream.latents.z, before)


def test_a_preference_model_that_guided_is_refused_as_judge(tmp_path):
    hps = write_hps(tmp_path / "hps")
    options = dict(clip_model="ViT-B-32", clip_pretrained="openai", allow=False)
    for guides in ({"clip_model": ("ViT-B-32", "hps-v2.1:0.5")}, {"init_judge": "hps-v2.1", "init_candidates": 4}):
        with pytest.raises(UserError, match="hps-v2.1"):
            check_self_judging(["hps-v2.1"], [guides], **options)
        with pytest.raises(UserError, match="hps-v2.1"):
            check_self_judging([f"hps-v2.1={hps}"], [guides], **options)
    assert check_self_judging(["aesthetic"], [{"clip_model": ("ViT-B-32", "hps-v2.1:0.5")}], **options) == []
    assert check_self_judging(["hps-v2.1"], [{"clip_model": ("ViT-B-32", "hps-v2.1:0")}], **options) == []


def test_settings_check_the_new_options():
    # (from Python the error names the keyword; the command line words the same error with the flag)
    for given, message, flag in [
        ({"bases": 0}, "bases=0", "--bases 0"),
        ({"bases": 33}, "bases=33", "--bases 33"),
        ({"latent_noise": -1.0}, "latent_noise=-1.0", "--latent-noise -1.0"),
        ({"bases": 3, "init_candidates": 2}, "--init-candidates >= 3", "--init-candidates >= 3"),
        ({"bases": 2, "max_classes": 3}, "--max-classes", "--max-classes"),
        ({"init_judge": "hps-v3", "init_candidates": 4}, "init_judge='hps-v3'", "--init-judge 'hps-v3'"),
        ({"init_judge": "hps-v2.1"}, "--init-candidates K > 1", "--init-candidates K > 1"),
        ({"recipe": "dalle"}, "recipe='dalle'", "--recipe 'dalle'"),
    ]:
        with pytest.raises(UserError, match=message.replace("+", r"\+").replace(".", r"\.")) as raised:
            DreamSettings(text="x", **given)
        assert flag in for_command_line(raised.value)


# ---------------------------------------------------------------------------------------------- the recipe
def test_a_recipe_fills_in_what_is_not_given_and_given_options_win():
    chosen = DreamSettings(text="x", recipe="fusedream")
    for key, value in RECIPES["fusedream"].items():
        assert getattr(chosen, key) == value, key
    given = DreamSettings(text="x", recipe="fusedream", bases=2, iterations=7, lr=0.07)
    assert (given.bases, given.iterations, given.lr, given.init_candidates) == (2, 7, 0.07, 10_000)
    assert DreamSettings.from_dict(given.to_dict()) == given  # (a saved record takes nothing from the recipe)
    assert DreamSettings.from_dict({**given.to_dict(), "bases": 1}).bases == 1


def test_recipe_values_are_in_help():
    result = runner.invoke(app, ["dream", "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())  # (help's lines, unwrapped, without the frame)
    assert "--recipe" in text and "fusedream: --init-candidates 10000 --bases 5" in text


# ---------------------------------------------------------------------------------------------- whole dreams
def test_a_dream_guided_by_hps_and_chosen_by_a_judge(tiny, tiny_args, tmp_path):
    hps = write_hps(tmp_path / "hps")
    aesthetic = write_aesthetic(tmp_path / "aesthetic")
    args = ["dream", "a red cube", *tiny_args, "--clip-model", f"hps-v2.1={hps}:0.5", "--init-candidates", "3",
            "--init-judge", f"aesthetic={aesthetic}", "--out", str(tmp_path / "o")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = [p.parent for p in (tmp_path / "o").rglob("run.json")]
    record = json.loads((run / "run.json").read_text())
    names = [c["name"] for c in record["models"]["clip"]]
    assert names[-1] == "hps-v2.1" and record["models"]["clip"][-1]["weight"] == 0.5
    (start,) = record["starts"]
    assert start["judge"] == "aesthetic" and start["chosen"] == max(range(3), key=start["scores"].__getitem__)
    assert (run / "image.png").is_file() and (run / "latents.pt").is_file()


def test_a_fusedream_dream_records_its_recipe_and_resumes(tiny, tiny_args, tmp_path):
    out = tmp_path / "o"
    args = ["dream", "a red cube", *tiny_args, "--recipe", "fusedream", "--init-candidates", "12", "--cutouts", "4",
            "--iterations", "4", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = [p.parent for p in out.rglob("run.json")]
    record = json.loads((run / "run.json").read_text())
    recipe = record["recipe"]
    assert recipe["name"] == "fusedream"
    assert recipe["chose"] == {k: v for k, v in RECIPES["fusedream"].items() if k not in ("init_candidates", "cutouts",
                                                                                         "iterations")}  # fmt: skip
    assert recipe["given_instead"] == {"init_candidates": 12, "cutouts": 4, "iterations": 4}
    assert record["settings"]["bases"] == 5 and record["starts"][0]["bases"][0] == record["starts"][0]["chosen"]
    saved = torch.load(run / "latents.pt")
    assert saved["z"].shape[-1] == 128 and saved["z"].dim() == 2  # the mix, as a one-basis run records it
    assert saved["z"].abs().max() <= 2.0 + 1e-5


def test_bench_takes_a_preference_guide_by_name():
    assert BenchSettings(guide="hps-v2.1:0.5").guide == "hps-v2.1:0.5"
    for bad in ("hps-v3", "pickscore", "hps-v2.1=/x", "aesthetic:0"):
        with pytest.raises(UserError, match="guide="):
            BenchSettings(guide=bad)
