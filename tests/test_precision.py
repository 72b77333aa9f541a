"""The fast path (bf16) against the fp32 path, and the benchmark command."""

import json

import numpy as np
import torch
from typer.testing import CliRunner

from textsleep import Imagine
from textsleep.cli import app
from textsleep.models import resolve_dtype


def _losses(options, precision, iterations):
    imagine = Imagine("a lighthouse", **{**options, "precision": precision, "iterations": iterations})
    return [s.loss for s in imagine.steps()], imagine


def test_bf16_follows_the_fp32_trajectory(tiny_options):
    fp32, a = _losses(tiny_options, "fp32", 5)
    bf16, b = _losses(tiny_options, "bf16", 5)
    assert a.dtype == torch.float32 and b.dtype == torch.bfloat16
    # the same start (latents are fp32 in both), then the same path within 2% per step
    assert abs(fp32[0] - bf16[0]) <= 0.02 * abs(fp32[0])
    assert np.allclose(bf16, fp32, rtol=0.02, atol=0.05), (fp32, bf16)


def test_bf16_still_lowers_the_loss(tiny_options):
    losses, _ = _losses({**tiny_options, "augment": "none", "cutouts": 2, "lr": 0.05}, "bf16", 30)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_auto_precision_is_a_real_choice():
    cpu = resolve_dtype("auto", torch.device("cpu"))
    assert cpu in (torch.bfloat16, torch.float32)
    assert resolve_dtype("fp32", torch.device("cpu")) == torch.float32


def test_auto_precision_needs_native_bf16_on_the_cpu(monkeypatch):
    # plain AVX-512 converts bf16 in software (no faster than fp32): auto stays fp32 there
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert resolve_dtype("auto", torch.device("cpu")) == torch.bfloat16
    assert resolve_dtype("fp32", torch.device("cpu")) == torch.float32


def test_bench_prints_json_figures():
    args = [
        "bench",
        "--size",
        "128",
        "--cutouts",
        "2",
        "--steps",
        "1",
        "--json",
        "--clip-model",
        "ViT-B-32",
        "--breakdown",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["size"] == 128 and data["cutouts"] == 2 and data["median_s"] > 0 and data["peak_memory_gb"] > 0
    assert data["device"] == "cpu" and data["precision"] in ("bfloat16", "float32")
    # the parts of a step, each timed and counted on its own, add up to the whole step's arithmetic
    phases = data["phases"]
    assert set(phases) == {"generator", "cutouts", "clip"} and all(p["median_s"] > 0 for p in phases.values())
    assert (
        phases["generator"]["gflop"] > 20 and phases["clip"]["gflop"] > 10
    )  # BigGAN-deep-128 and 2 ViT-B/32 views, both ways
    parts = phases["generator"]["gflop"] + phases["clip"]["gflop"]
    assert 0.95 * data["gflop_per_step"] <= parts <= 1.05 * data["gflop_per_step"]
    assert data["matmul_gflops"] > 0


def test_bench_rejects_bad_values():
    result = CliRunner().invoke(app, ["bench", "--size", "300"])
    assert result.exit_code == 2 and "--size 300" in result.output
