"""Tiny random models of the real classes, written in the real on-disk formats."""

from __future__ import annotations

import os

import pytest

from textsleep.testing import write_biggan, write_clip


def pytest_collection_modifyitems(config, items):
    import torch

    has_gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    real = os.environ.get("TEXTSLEEP_REAL_WEIGHTS") == "1"
    for item in items:
        if "tiny" in getattr(item, "fixturenames", ()):
            item.add_marker(
                pytest.mark.dream
            )  # runs whole dreams on tiny models: `pytest -m "not dream"` for the quick tests
        if item.get_closest_marker("gpu") and not has_gpu:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA or MPS device; none here"))
        if item.get_closest_marker("weights") and not real:
            item.add_marker(
                pytest.mark.skip(
                    reason="needs real pretrained weights; set TEXTSLEEP_REAL_WEIGHTS=1 where they are cached"
                )
            )


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict:
    """Paths of a tiny BigGAN-deep-128 folder and a tiny open_clip config + checkpoint."""
    root = tmp_path_factory.mktemp("tiny-weights")
    biggan = write_biggan(root / "biggan-deep-128", size=128, channel_width=4)
    clip_config, clip_weights = write_clip(root)
    return {"biggan": str(biggan), "clip_model": str(clip_config), "clip_pretrained": str(clip_weights), "root": root}


@pytest.fixture
def tiny_options(tiny, tmp_path) -> dict:
    """Imagine keyword options for a quick CPU dream on the tiny models."""
    return {
        "biggan": tiny["biggan"],
        "clip_model": tiny["clip_model"],
        "clip_pretrained": tiny["clip_pretrained"],
        "cutouts": 4,
        "iterations": 4,
        "save_every": 2,
        "device": "cpu",
        "precision": "fp32",
        "seed": 7,
        "out": str(tmp_path / "outputs"),
    }


@pytest.fixture
def tiny_args(tiny_options) -> list[str]:
    """The same as CLI arguments."""
    args = []
    for key, value in tiny_options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    """No test touches the user's caches or the network."""
    monkeypatch.setenv("TEXTSLEEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def one_line_error():
    """``check(result, *fragments)``: a CliRunner result failed with exactly one ``error:`` line
    holding each fragment.
    """

    def check(result, *fragments):
        assert result.exit_code != 0, result.output
        assert "Traceback" not in result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output
        for fragment in fragments:
            assert fragment in errors[0], errors[0]
        return errors[0]

    return check


@pytest.fixture
def gan_args(tiny) -> list[str]:
    """Command-line options for the explorer commands on the tiny BigGAN."""
    return ["--biggan", tiny["biggan"], "--device", "cpu", "--precision", "fp32"]
