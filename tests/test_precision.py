"""The fast path (bf16) against the fp32 path, and the benchmark command."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from textsleep import Imagine
from textsleep.cli import app
from textsleep.devices import auto_precision, device_info, resolve_dtype

# name, compute capability, memory as torch reports it (bytes)
CARDS = {
    "T4": ("Tesla T4", (7, 5), 15_835_660_288),
    "V100": ("Tesla V100-SXM2-16GB", (7, 0), 16_945_512_448),
    "A100": ("NVIDIA A100-SXM4-80GB", (8, 0), 85_097_971_712),
    "H100": ("NVIDIA H100 80GB HBM3", (9, 0), 85_031_714_816),
}


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


def _fake_card(monkeypatch, card: str) -> None:
    """torch.cuda answers as on this card; is_bf16_supported() says True as torch does even where bf16 is emulated."""
    name, capability, memory = CARDS[card]
    props = SimpleNamespace(name=name, major=capability[0], minor=capability[1], total_memory=memory)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.version, "hip", None)


@pytest.mark.parametrize(
    "card, auto",
    [("T4", torch.float32), ("V100", torch.float32), ("A100", torch.bfloat16), ("H100", torch.bfloat16)],
)
def test_auto_precision_follows_the_compute_capability(monkeypatch, card, auto):
    _fake_card(monkeypatch, card)
    cuda = torch.device("cuda")
    assert resolve_dtype("auto", cuda) == auto  # bf16 only where the tensor cores run it natively (8.0 and up)
    dtype, why = auto_precision(cuda)
    major, minor = CARDS[card][1]
    assert dtype == auto and f"compute capability {major}.{minor}" in why
    # what is asked for is what is used, whatever the card
    assert [resolve_dtype(p, cuda) for p in ("fp32", "bf16", "fp16")] == [torch.float32, torch.bfloat16, torch.float16]
    info = device_info(cuda)
    assert info == {
        "type": "cuda",
        "name": CARDS[card][0],
        "capability": f"{major}.{minor}",
        "memory_gb": round(CARDS[card][2] / 2**30, 1),
    }
    json.dumps(info)  # run.json can hold it as it is


def test_device_info_on_the_cpu():
    info = device_info("cpu")
    assert info["type"] == "cpu" and info["name"] and info["capability"] is None
    assert info["memory_gb"] is None or info["memory_gb"] > 0.1
    assert auto_precision(torch.device("cpu"))[0] == resolve_dtype("auto", torch.device("cpu"))


def test_run_json_names_the_device_the_run_computed_on(tiny_options):
    run = Imagine("a lighthouse", **{**tiny_options, "iterations": 2})()
    record = json.loads((run / "run.json").read_text())
    assert record["device"] == "cpu" and record["device_name"] == device_info("cpu")["name"]


@pytest.mark.parametrize("card", ["T4", "H100"])
def test_doctor_names_the_card_its_capability_memory_and_auto_precision(monkeypatch, card):
    _fake_card(monkeypatch, card)
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = {line[:22].strip(): line[22:].strip() for line in result.output.splitlines()}
    name, (major, minor), memory = CARDS[card]
    assert lines["cuda"] == name and lines["auto device"] == "cuda" and lines["device name"] == name
    assert lines["compute capability"] == f"{major}.{minor}"
    assert lines["device memory"] == f"{round(memory / 2**30, 1)} GiB"
    auto = "bfloat16" if card == "H100" else "float32"
    assert lines["auto precision"].startswith(f"{auto} (compute capability {major}.{minor}")


def test_doctor_on_the_cpu_has_no_capability_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    result = CliRunner().invoke(app, ["doctor"])
    lines = {line[:22].strip(): line[22:].strip() for line in result.output.splitlines()}
    assert result.exit_code == 0 and lines["auto device"] == "cpu" and "compute capability" not in lines
    assert lines["device name"] == device_info("cpu")["name"]
    assert lines["auto precision"].split()[0] == str(resolve_dtype("auto", torch.device("cpu"))).replace("torch.", "")


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
