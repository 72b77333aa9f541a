"""The compiled step (``--compile``) makes the same pictures as the eager one, within float rounding.

Tolerance: over a four-step fp32 dream on the tiny models, each step's loss within 1e-4 relative and the
latents within 1e-4; saved pictures within one level of 255.  The first compile on a machine takes minutes
on the CPU; later runs read torch's compile cache.
"""

import functools
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import textsleep.bench
import textsleep.render
from textsleep import Imagine, speed
from textsleep.cli import app
from textsleep.testing import TINY_CLIP_CONFIG, random_biggan, write_clip

LOSS_RTOL, LATENT_ATOL = 1e-4, 1e-4


class _Recorder:
    def __init__(self):
        self.seen = []

    def __call__(self, imagine, step):
        self.seen.append((step.index, step.loss, step.scores))


def _steps(options, monkeypatch):
    """The steps of a dream, its last latents, and how often render's hand-written kernel ran (only eager runs it)."""
    imagine = Imagine("a lighthouse", **options)
    imagine.prepare()
    calls = []
    original = textsleep.render._AffineReLU.apply
    with monkeypatch.context() as m:
        m.setattr(textsleep.render._AffineReLU, "apply", lambda *a: calls.append(1) or original(*a))
        steps = [(s.index, s.loss, s.scores) for s in imagine.steps()]
    return steps, imagine.dream.latents.z.detach().clone(), len(calls)


def _close(a, b):
    assert [s[0] for s in a] == [s[0] for s in b]
    assert [s[1] for s in a] == pytest.approx([s[1] for s in b], rel=LOSS_RTOL)
    assert np.allclose([s[2] for s in a], [s[2] for s in b], rtol=LOSS_RTOL, atol=1e-6)


def _pixels(path):
    return np.asarray(Image.open(path)).astype(int)


def test_compiled_dream_equals_the_eager_one(tiny_options, monkeypatch):
    eager, eager_z, eager_calls = _steps(tiny_options, monkeypatch)
    compiled, compiled_z, compiled_calls = _steps({**tiny_options, "compile": True}, monkeypatch)
    assert eager_calls > 0 and compiled_calls == 0  # the compiled step really ran through the compiler
    _close(compiled, eager)
    assert torch.allclose(compiled_z, eager_z, atol=LATENT_ATOL)
    assert not torch.equal(eager_z, Imagine("a lighthouse", **tiny_options).prepare().latents.z)  # it did move


def test_compiled_run_calls_hooks_every_step_and_resumes_as_the_eager_run(tiny_options):
    straight, hooks = _Recorder(), _Recorder()
    eager_run = Imagine("a lighthouse", **tiny_options, on_step=straight)()
    half = Imagine("a lighthouse", **{**tiny_options, "iterations": 2, "compile": True}, on_step=hooks)()
    resumed = Imagine(resume=half, iterations=4, on_step=hooks)()  # (compile stays on: it is resumable)
    assert resumed == half
    assert json.loads((half / "run.json").read_text())["settings"]["compile"] is True
    assert [s[0] for s in hooks.seen] == [1, 2, 3, 4]
    _close(hooks.seen, straight.seen)
    assert np.abs(_pixels(resumed / "image.png") - _pixels(eager_run / "image.png")).max() <= 1


def test_compiled_story_changes_part_as_the_eager_one(tiny_options):
    options = {**tiny_options, "change_every": 2, "iterations": 4}
    story = "a lighthouse ^ a dark forest"
    eager = [(s.index, s.loss, s.scores) for s in Imagine(story, **options).steps()]
    compiled = [(s.index, s.loss, s.scores) for s in Imagine(story, **options, compile=True).steps()]
    _close(compiled, eager)
    one_part = [s.loss for s in Imagine("a lighthouse", **{**options, "change_every": None}, compile=True).steps()]
    assert one_part[:2] == pytest.approx([s[1] for s in compiled[:2]], rel=LOSS_RTOL)  # the same first part
    assert one_part[2] != pytest.approx(compiled[2][1], rel=1e-3)  # then the story aims elsewhere


def test_compile_is_off_by_default_and_may_change_on_resume(tiny_options):
    run = Imagine("a lighthouse", **{**tiny_options, "iterations": 1})()
    assert json.loads((run / "run.json").read_text())["settings"]["compile"] is False
    assert Imagine(resume=run, iterations=2, compile=True).settings.compile is True


def test_bench_compile_reports_compile_time_beside_the_eager_step(monkeypatch, tmp_path):
    config, _ = write_clip(tmp_path, config=TINY_CLIP_CONFIG)
    monkeypatch.setattr(textsleep.bench, "random_biggan", lambda size, width: random_biggan(size, 4))  # (tiny)
    args = ["bench", "--json", "--compile", "--size", "128", "--cutouts", "4", "--steps", "2", "--device", "cpu"]
    args += ["--precision", "fp32", "--clip-model", str(config)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["compiled"] is True and figures["compile_s"] > 0
    assert figures["median_s"] > 0 and figures["eager_median_s"] > 0
    text = CliRunner().invoke(app, args[:1] + args[2:])
    assert text.exit_code == 0 and "compile:" in text.output and "eager:" in text.output


def test_a_compile_that_fails_is_one_line(tiny_options, tiny_args, monkeypatch, one_line_error):
    def broken(graph, inputs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(speed, "_COMPILED", {})
    monkeypatch.setattr(speed.torch, "compile", functools.partial(torch.compile, backend=broken))
    result = CliRunner().invoke(app, ["dream", "a lighthouse", *tiny_args, "--compile"])
    one_line_error(result, "--compile", "no C++ compiler found", "run without --compile")
    assert result.exit_code == 2
