#!/usr/bin/env python3
"""One command that proves a GPU: correctness, speed against big-sleep's own step, memory, and what pays.

Where textsleep is installed with its test extra (``pip install -e ".[test]"``, which brings big-sleep 0.9.1):

    python benchmarks/gpu_check.py

On a GPU machine that reaches no package index, from the checkout, with the wheels it lacks in ``.gpu/wheels``:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/wheels/*.whl && PYTHONPATH=/tmp/site:$PWD python3 benchmarks/gpu_check.py

In one go (meant to take under eight minutes on an H100-class card; it prints the time of each part):

1. correctness: ``pytest -m gpu tests/test_gpu.py`` (render and gradients, the CLIP rewrites and a short dream
   against the CPU; a full-size 512 px dream at ``--precision auto`` stays finite; bf16's losses within 2% of
   fp32's; the compiled step equals the eager one);
2. speed: big-sleep 0.9.1's own ``train_step`` against textsleep's step, eager and compiled, in alternating
   rounds, at 512 px with 32 and 128 cutouts and at 256 and 128 px with 32; random full-size models (a step
   costs the same whatever the weights); peak GPU memory (max allocated) of each, models included;
3. ``--num-images 8`` against one picture (512 px, 32 cutouts);
4. the levers (``textsleep.speed.Levers``), each timed against the step without it, and which pay;
5. writes ``benchmarks/results/<card>-<date>.json`` (``-2``, ``-3``… when that day has one already), prints the
   table README's Speed section shows and checks the targets: at least 8× big-sleep's speed at 512/32 and 4×
   elsewhere; at most 3 GB at 512/32 and under 6 GB at 512/128; eight pictures in at most twice the time of one.

It exits with 0 when the tests pass and, on a GPU, every target is met.  ``--device cpu --quick`` runs the same
on the CPU with small models of the real classes (128 px, a few cutouts and steps) and writes its results to a
temporary folder: it proves the check itself works (a test runs it); its figures mean nothing.
"""  # noqa: E501 (the one-line command above)

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import open_clip
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # (the peer, beside this file)

import peer_bigsleep  # noqa: E402

from textsleep.devices import device_info, resolve_device, resolve_dtype  # noqa: E402
from textsleep.dream import Dream, Judge  # noqa: E402
from textsleep.errors import UserError  # noqa: E402
from textsleep.speed import Levers  # noqa: E402
from textsleep.testing import random_biggan, random_clip  # noqa: E402

FULL_ROWS = [(512, 32), (512, 128), (256, 32), (128, 32)]
QUICK_ROWS = [(128, 4)]  # (--quick: CLIP takes its cutouts 2 at a time, so the cutout batch lever changes something)
# a small CLIP of the real classes at big-sleep's input size (224 px), for --quick; both sides use it
QUICK_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
}
LEVERS = {  # each against the step without it
    "attention sdpa": Levers(attention="sdpa"),
    "noise on the device": Levers(noise_on_device=True),
    "no host sync": Levers(host_sync=False),
    "foreach moving average": Levers(foreach_ema=True),
    "all cutouts at once": Levers(cutout_batch=0),
}
PAYS = 0.97  # a lever pays when its median step is at least 3% shorter


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default cuda)")
    p.add_argument("--quick", action="store_true", help="small models, few steps: proves the check, measures nothing")
    p.add_argument("--precision", default=None, help="textsleep's precision (default auto; fp32 with --quick)")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3; 2 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per round (default 4; 1 with --quick)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results; a temporary one --quick)")
    p.add_argument("--skip-tests", action="store_true", help="leave out pytest -m gpu")
    args = p.parse_args()
    started = time.perf_counter()
    if importlib.util.find_spec("big_sleep") is None:
        print("gpu check: big-sleep is not installed; it times big-sleep's own step (pip install big-sleep==0.9.1)")
        return 2
    try:
        dev = resolve_device(args.device)
    except UserError as err:
        print(f"gpu check: {err}")
        return 2
    rounds = args.rounds or (2 if args.quick else 3)
    steps = args.steps or (1 if args.quick else 4)
    precision = args.precision or ("fp32" if args.quick else "auto")
    out = (
        Path(args.out)
        if args.out
        else (Path(tempfile.mkdtemp(prefix="gpu-check-")) if args.quick else HERE / "results")
    )

    report: dict = {"device_name": _device_name(dev), "torch": torch.__version__, "date": _today(), "quick": args.quick}
    report["command"] = shlex.join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]])
    print(
        f"gpu check on {report['device_name']} ({dev}), torch {torch.__version__}, python {platform.python_version()}"
    )

    # 1. correctness
    t0 = time.perf_counter()
    report["tests"] = {"skipped": True} if args.skip_tests else _pytest()
    print(f"1. tests: {report['tests'].get('summary', 'left out')} ({time.perf_counter() - t0:.0f} s)", flush=True)

    # 2-4. speed and memory
    bench = _Bench(dev, resolve_dtype(precision, dev), quick=args.quick, steps=steps)
    report["precision"] = str(bench.dtype).replace("torch.", "")
    report["models"] = "small models of the real classes" if args.quick else "ViT-B/32, BigGAN-deep (random weights)"
    t0 = time.perf_counter()
    rows = []
    for size, cutouts in QUICK_ROWS if args.quick else FULL_ROWS:
        rows += bench.row(size, cutouts, rounds, report)
        print(f"   {size} px, {cutouts} cutouts done ({time.perf_counter() - t0:.0f} s)", flush=True)
    report["rows"] = rows
    print(f"2. speed and memory ({time.perf_counter() - t0:.0f} s)", flush=True)
    t0 = time.perf_counter()
    size, cutouts = rows[0]["size"], rows[0]["cutouts"]
    report["num_images"] = bench.num_images(size, cutouts, 2 if args.quick else 8, rounds)
    print(f"3. several pictures against 1 ({time.perf_counter() - t0:.0f} s)", flush=True)
    t0 = time.perf_counter()
    report["levers"] = bench.levers(size, cutouts, max(c for s, c in (QUICK_ROWS if args.quick else FULL_ROWS)), rounds)
    print(f"4. levers ({time.perf_counter() - t0:.0f} s)", flush=True)

    # 5. results, table, targets
    report["targets"] = _targets(report, dev)
    report["seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{_slug(report['device_name'])}-{report['date']}"
    path = next(p for n in range(1, 1000) if not (p := out / (name + (f"-{n}" if n > 1 else "") + ".json")).exists())
    path.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(_table(report))
    print()
    for t in report["targets"]:
        print(f"{t['result']:>4}  {t['what']}: {t['measured']}")
    ok = report["tests"].get("passed", True) and all(t["result"] != "FAIL" for t in report["targets"])
    print(f"\n{'passed' if ok else 'FAILED'} in {report['seconds']:.0f} s; results: {path}")
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------- 1. tests
def _pytest() -> dict:
    """``pytest -m gpu`` on the GPU tests, in a fresh process; on a machine without a GPU they skip."""
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"]
    try:
        done = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"passed": False, "summary": "pytest -m gpu took over 10 minutes"}
    lines = (done.stdout + done.stderr).strip().splitlines()
    if "No module named pytest" in done.stderr:
        return {"passed": False, "summary": "pytest is not installed (pip install pytest)"}
    summary = next(
        (line.strip("= ") for line in reversed(lines) if re.search(r"\d+ (passed|failed|skipped)", line)), ""
    )
    if done.returncode:
        print("\n".join(lines[-40:]))
    return {"passed": done.returncode == 0, "summary": summary or f"pytest exited with {done.returncode}"}


# ---------------------------------------------------------------------------------------------- 2-4. timings
class _Bench:
    """Models built once per size; textsleep's and big-sleep's steps timed in alternating segments."""

    def __init__(self, dev: torch.device, dtype: torch.dtype, *, quick: bool, steps: int) -> None:
        self.dev, self.dtype, self.quick, self.steps = dev, dtype, quick, steps
        self.width = 4 if quick else 128  # BigGAN's channel width
        self.cutout_batch = 2 if quick else 32  # (32: the settings' default)
        self.warm_up = 1 if quick else 2  # steps before the timed ones, the first time
        self.clip_name = "ViT-B-32"
        if quick:
            config = Path(tempfile.mkdtemp(prefix="gpu-check-clip-")) / "textsleep-check-clip.json"
            config.write_text(json.dumps(QUICK_CLIP))
            open_clip.add_model_config(config)
            self.clip_name = config.stem
        self.clip = random_clip(self.clip_name).to(dev, dtype)
        with torch.inference_mode():
            prompt = self.clip.encode_text(["upside down tree"])
        self.judge = Judge(self.clip, prompt, torch.ones(1, device=dev))
        self.biggans: dict[int, torch.nn.Module] = {}

    def biggan(self, size: int):
        if size not in self.biggans:
            self.biggans[size] = random_biggan(size, self.width).to(self.dev, self.dtype)
        return self.biggans[size]

    def dream(self, size: int, cutouts: int, *, compile: bool = False, levers: Levers | None = None, batch: int = 1):
        return Dream(
            self.biggan(size),
            [self.judge],
            seeds=list(range(batch)),
            cutouts=cutouts,
            cutout_batch=self.cutout_batch,
            compile=compile,
            levers=levers or Levers(),
        )

    def _run(self, stepper, count: int) -> list[float]:
        """Seconds of each of ``count`` steps, the device synchronised around each."""
        times = []
        for _ in range(count):
            _sync(self.dev)
            t0 = time.perf_counter()
            stepper()
            _sync(self.dev)
            times.append(time.perf_counter() - t0)
        return times

    def _first(self, make, warm_up: int):
        """Build a stepper (``make()`` → (step function, bytes of models built before)), warm it up and time
        ``steps`` steps: (stepper, every step's seconds, peak GB on CUDA — max allocated, models included).
        """
        cuda = self.dev.type == "cuda"
        if cuda:
            _free(self.dev)
            torch.cuda.synchronize(self.dev)
            torch.cuda.reset_peak_memory_stats(self.dev)
            before = torch.cuda.memory_allocated(self.dev)
        stepper, model_bytes = make()
        times = self._run(stepper, warm_up + self.steps)
        peak = None
        if cuda:
            peak = round((torch.cuda.max_memory_allocated(self.dev) - before + model_bytes) / 2**30, 3)
        return stepper, times, peak

    def _alternate(self, makers: dict, rounds: int, warm_up: dict | None = None) -> tuple[dict, dict, dict]:
        """Each stepper in turn, ``rounds`` times: {name: timed seconds}, {name: peak GB}, {name: first step s}."""
        steppers, times, peaks, firsts = {}, {k: [] for k in makers}, {}, {}
        for _ in range(rounds):
            for name, make in makers.items():
                if name not in steppers:
                    w = (warm_up or {}).get(name, self.warm_up)
                    steppers[name], all_times, peaks[name] = self._first(make, w)
                    firsts[name], timed = all_times[0], all_times[w:]
                else:
                    timed = self._run(steppers[name], 1 + self.steps)[1:]  # (one step to warm up again)
                times[name] += timed
        return times, peaks, firsts

    def _textsleep(self, size, cutouts, compile, levers=None, batch=1):
        def make():
            dream = self.dream(size, cutouts, compile=compile, levers=levers, batch=batch)
            return dream.step, _bytes(self.biggan(size), self.clip.model)

        return make

    def _bigsleep(self, size, cutouts):
        def make():
            clip = self.clip_name if self.quick else "ViT-B-32"
            imagine = peer_bigsleep.build(size, cutouts, str(self.dev), channel_width=self.width, clip_config=clip)
            counter = iter(range(10**9))
            return (lambda: imagine.train_step(0, next(counter))), 0  # (its models are built in make, so counted)

        return make

    def _compiled_warm_up(self) -> int:
        # the compile; CUDA graphs: then a warm-up step and the recording
        return self.warm_up + (2 if self.dev.type == "cuda" else 0)

    def row(self, size: int, cutouts: int, rounds: int, report: dict) -> list[dict]:
        """Eager, big-sleep and compiled steps in alternating rounds: two result rows (eager and compiled)."""
        makers = {"eager": self._textsleep(size, cutouts, False), "big-sleep": self._bigsleep(size, cutouts)}
        makers["compiled"] = self._textsleep(size, cutouts, True)
        times, peaks, firsts = self._alternate(makers, rounds, {"compiled": self._compiled_warm_up()})
        _free(self.dev)
        theirs = statistics.median(times["big-sleep"])
        rows = []
        for mode in ("eager", "compiled"):
            ours = statistics.median(times[mode])
            rows.append(
                {
                    "device_name": report["device_name"],
                    "size": size,
                    "cutouts": cutouts,
                    "compiled": mode == "compiled",
                    "textsleep_s_per_step": round(ours, 5),
                    "bigsleep_s_per_step": round(theirs, 5),
                    "speedup": round(theirs / ours, 2),
                    "textsleep_peak_gb": peaks[mode],
                    "bigsleep_peak_gb": peaks["big-sleep"],
                    "precision": str(self.dtype).replace("torch.", ""),
                    "torch": torch.__version__,
                    "date": report["date"],
                    "first_step_s": round(firsts[mode], 2),  # compiled: the compile included
                    "steps_timed": len(times[mode]),
                }
            )
            print(
                f"   {size} px, {cutouts} cutouts, {mode}: textsleep {ours:.4f} s/step, big-sleep {theirs:.4f} "
                f"s/step, {theirs / ours:.2f}x; peak {peaks[mode]} GB against {peaks['big-sleep']} GB; first step "
                f"{firsts[mode]:.1f} s",
                flush=True,
            )
        return rows

    def num_images(self, size: int, cutouts: int, many: int, rounds: int) -> dict:
        """Seconds per step of ``many`` pictures against one (eager), alternating."""
        makers = {1: self._textsleep(size, cutouts, False), many: self._textsleep(size, cutouts, False, batch=many)}
        times, peaks, _ = self._alternate(makers, rounds)
        _free(self.dev)
        one, several = statistics.median(times[1]), statistics.median(times[many])
        print(f"   {many} pictures: {several:.4f} s/step, one: {one:.4f} s/step ({several / one:.2f}x)", flush=True)
        return {
            "size": size,
            "cutouts": cutouts,
            "pictures": many,
            "one_s_per_step": round(one, 5),
            "many_s_per_step": round(several, 5),
            "ratio": round(several / one, 3),
            "many_peak_gb": peaks[many],
        }

    def levers(self, size: int, cutouts: int, most_cutouts: int, rounds: int) -> list[dict]:
        """Each lever against the step without it, eager, and compiled where the compiled code stays the same.

        The cutout batch is measured with the most cutouts of the check (at 32 it changes nothing).
        """
        found = []
        for name, levers in LEVERS.items():
            count = most_cutouts if levers.cutout_batch is not None else cutouts
            same_graphs = levers.attention == "matmul" and levers.cutout_batch is None
            for compile in (False, True) if same_graphs else (False,):
                makers = {
                    "without": self._textsleep(size, count, compile, levers=Levers()),
                    "with": self._textsleep(size, count, compile, levers=levers),
                }
                w = self._compiled_warm_up() if compile else self.warm_up
                times, _, _ = self._alternate(makers, rounds, {"without": w, "with": w})
                _free(self.dev)
                without, with_ = statistics.median(times["without"]), statistics.median(times["with"])
                pays = with_ < PAYS * without
                found.append(
                    {"lever": name, "levers": asdict(levers), "size": size, "cutouts": count, "compiled": compile}
                    | {"without_s": round(without, 5), "with_s": round(with_, 5), "pays": pays}
                )
                print(
                    f"   {name}{' (compiled)' if compile else ''}: {with_:.4f} s/step against {without:.4f} "
                    f"({with_ / without:.2f}x): {'pays' if pays else 'does not pay'}",
                    flush=True,
                )
        return found


def _bytes(*modules) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in [*m.parameters(), *m.buffers()])


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _free(dev: torch.device) -> None:
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- 5. results
def _targets(report: dict, dev: torch.device) -> list[dict]:
    """The targets, each checked on the faster of eager and compiled (what the default would be)."""
    if dev.type != "cuda":
        return [{"what": "targets", "measured": "they apply on a CUDA GPU only", "result": "n/a"}]
    best: dict = {}
    for row in report["rows"]:
        key = (row["size"], row["cutouts"])
        if key not in best or row["textsleep_s_per_step"] < best[key]["textsleep_s_per_step"]:
            best[key] = row
    found = []
    for (size, cutouts), row in best.items():
        mode = "compiled" if row["compiled"] else "eager"
        goal = 8 if (size, cutouts) == (512, 32) else 4
        found.append(
            _target(
                f"{size}/{cutouts}: at least {goal}x big-sleep's speed ({mode})",
                f"{row['speedup']}x",
                row["speedup"] >= goal,
            )
        )
        peak = row["textsleep_peak_gb"]
        if (size, cutouts) == (512, 32):
            found.append(_target(f"512/32: at most 3 GB ({mode})", f"{peak} GB", peak is not None and peak <= 3))
        if (size, cutouts) == (512, 128):
            found.append(_target(f"512/128: under 6 GB ({mode})", f"{peak} GB", peak is not None and peak < 6))
    n = report["num_images"]
    found.append(_target(f"{n['pictures']} pictures: at most 2x one picture's step", f"{n['ratio']}x", n["ratio"] <= 2))
    return found


def _target(what: str, measured: str, ok: bool) -> dict:
    return {"what": what, "measured": measured, "result": "ok" if ok else "FAIL"}


def _table(report: dict) -> str:
    """The Speed section's table: one line per size, cutouts and mode."""
    memory = "max allocated GPU memory, models included" if report["rows"][0]["textsleep_peak_gb"] else "not measured"
    head = (
        f"{report['device_name']}, torch {report['torch']}, {report['date']}, {report['models']}, "
        f"{report['precision']}, medians of alternating rounds; peak memory: {memory}; `{report['command']}`"
    )
    lines = [head, ""]
    lines.append(
        "| size | cutouts | textsleep | textsleep s/step | big-sleep s/step | speed-up | textsleep peak "
        "| big-sleep peak |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        mode = f"compiled (first step {r['first_step_s']:.0f} s)" if r["compiled"] else "eager"
        peak = (
            (f"{r['textsleep_peak_gb']:.2f} GB", f"{r['bigsleep_peak_gb']:.2f} GB")
            if r["bigsleep_peak_gb"]
            else ("—",) * 2
        )
        lines.append(
            f"| {r['size']} | {r['cutouts']} | {mode} | {r['textsleep_s_per_step']:.4f} | "
            f"{r['bigsleep_s_per_step']:.4f} | {r['speedup']:.1f}× | {peak[0]} | {peak[1]} |"
        )
    n = report["num_images"]
    lines += [
        "",
        f"`--num-images {n['pictures']}` ({n['size']} px, {n['cutouts']} cutouts, eager): {n['many_s_per_step']:.4f} "
        f"s/step against {n['one_s_per_step']:.4f} for one picture ({n['ratio']:.2f}×).",
        "",
        "Levers (each against the step without it): "
        + "; ".join(
            f"{x['lever']}{' compiled' if x['compiled'] else ''} {x['with_s'] / x['without_s']:.2f}× "
            f"({'pays' if x['pays'] else 'does not pay'})"
            for x in report["levers"]
        )
        + ".",
    ]
    return "\n".join(lines)


def _device_name(dev: torch.device) -> str:
    return device_info(dev)["name"]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def _today() -> str:
    return datetime.date.today().isoformat()


if __name__ == "__main__":
    sys.exit(main())
