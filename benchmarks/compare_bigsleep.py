#!/usr/bin/env python3
"""Time textsleep's dream step against big-sleep's, alternating, and print the ratio.

usage: python benchmarks/compare_bigsleep.py [--size 512 [128 ...]] [--cutouts 32 [128 ...]] [--steps 3]
                                             [--rounds 3] [--precision auto] [--device auto]
                                             [--peer benchmarks/peer_bigsleep.py] [--markdown]

For every size × cutouts, each round runs ``textsleep bench --json`` and then the
peer script (big-sleep's own ``train_step`` on random full-size models) in fresh
processes, back to back, so both see the same machine state; the medians over
rounds are compared.  Peak memory is each process's own peak RSS on the CPU (as
the kernel reports it for that child), and max allocated GPU memory on CUDA.
big-sleep must be installed for the peer side (``pip install big-sleep==0.9.1``, in the test extra);
without it only textsleep's figures are printed.  ``--markdown`` ends with a table
for the README.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from pathlib import Path


def _child(cmd: list[str]) -> tuple[str, float]:
    """Run a command; its stdout and its own peak RSS in GB (not that of other children)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return out, usage.ru_maxrss / (2**30 if sys.platform == "darwin" else 2**20)


def _textsleep(args, size: int, cutouts: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "textsleep",
        "bench",
        "--json",
        "--size",
        str(size),
        "--cutouts",
        str(cutouts),
        "--steps",
        str(args.steps),
        "--precision",
        args.precision,
        "--device",
        args.device,
    ]
    out, _ = _child(cmd)
    return json.loads(out.strip().splitlines()[-1])


def _peer(args, size: int, cutouts: int) -> dict | None:
    if not args.peer or importlib.util.find_spec("big_sleep") is None:
        return None
    out, rss = _child([sys.executable, args.peer, str(size), str(cutouts), str(args.steps)])
    step = re.search(r"big-sleep s/step:\s*([0-9.]+)", out)
    gpu = re.search(r"peak GPU memory GiB:\s*([0-9.]+)", out)
    if not step:
        raise SystemExit(f"unexpected output from {args.peer}:\n{out}")
    return {"median_s": float(step.group(1)), "memory_gb": float(gpu.group(1)) if gpu else rss}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    default_peer = Path(__file__).resolve().parent / "peer_bigsleep.py"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs="+", default=[512])
    p.add_argument("--cutouts", type=int, nargs="+", default=[32])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--peer", default=str(default_peer) if default_peer.exists() else None)
    p.add_argument("--markdown", action="store_true", help="end with a Markdown table of the results")
    args = p.parse_args()

    rows = []
    for size in args.size:
        for cutouts in args.cutouts:
            ours, theirs = [], []
            for r in range(args.rounds):
                result = _textsleep(args, size, cutouts)
                ours.append(result)
                peer = _peer(args, size, cutouts)
                if peer is not None:
                    theirs.append(peer)
                print(
                    f"size {size}, cutouts {cutouts}, round {r + 1}: textsleep {result['median_s']:.3f} s/step "
                    f"({result['precision']}, {result['device']}, {result['peak_memory_gb']:.2f} GB)"
                    + (f", big-sleep {peer['median_s']:.3f} s/step ({peer['memory_gb']:.2f} GB)" if peer else ""),
                    flush=True,
                )
            a = statistics.median(r["median_s"] for r in ours)
            row = {
                "size": size,
                "cutouts": cutouts,
                "textsleep_s": a,
                "textsleep_gb": max(r["peak_memory_gb"] for r in ours),
                "memory_kind": result["memory_kind"],
                "precision": result["precision"],
                "device": result["device"],
                "torch": result["torch"],
            }
            print(
                f"textsleep median: {a:.3f} s/step, {1 / a:.2f} it/s; {row['memory_kind']} {row['textsleep_gb']:.2f} "
                "GB "
                f"(size {size}, cutouts {cutouts}, {result['device']}, {result['precision']}, torch {result['torch']})"
            )
            if theirs:
                b = statistics.median(t["median_s"] for t in theirs)
                row.update(bigsleep_s=b, bigsleep_gb=max(t["memory_gb"] for t in theirs), ratio=b / a)
                print(f"big-sleep median: {b:.3f} s/step, {1 / b:.2f} it/s; {row['bigsleep_gb']:.2f} GB")
                print(f"speed-up: {b / a:.2f}x")
            else:
                print("big-sleep: not installed, no ratio (pip install --no-deps big-sleep fire)")
            rows.append(row)

    if args.markdown:
        print()
        print(
            f"{_cpu_name()}, {os.cpu_count()} cores, {rows[0]['device']}, torch {rows[0]['torch']}, "
            f"{datetime.date.today().isoformat()}, medians of {args.rounds} alternating rounds of {args.steps} steps, "
            f"ViT-B/32, `{shlex.join(['python', 'benchmarks/compare_bigsleep.py', *sys.argv[1:]])}`"
        )
        print()
        print(
            "| size | cutouts | textsleep s/step | big-sleep s/step | speed-up | textsleep peak memory | big-sleep "
            "peak memory |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            theirs = (
                (f"{r['bigsleep_s']:.2f} | {r['ratio']:.1f}×", f"{r['bigsleep_gb']:.2f} GB")
                if "ratio" in r
                else ("— | —", "—")
            )
            print(
                f"| {r['size']} | {r['cutouts']} | {r['textsleep_s']:.2f} ({r['precision']}) | {theirs[0]} | "
                f"{r['textsleep_gb']:.2f} GB | {theirs[1]} |"
            )


if __name__ == "__main__":
    main()
