#!/usr/bin/env python3
"""Time textsleep's dream step against big-sleep's, alternating, and print the ratio.

usage: python benchmarks/compare_bigsleep.py [--size 512] [--cutouts 32] [--steps 3] [--rounds 3]
                                             [--peer PATH/peer_bigsleep.py] [--precision auto]

Each round runs ``textsleep bench --json`` and then the peer script (big-sleep's
own ``train_step`` on random full-size models) in fresh processes, back to back,
so both see the same machine state.  The medians over rounds are compared.
big-sleep must be installed for the peer side (``pip install --no-deps big-sleep fire``);
without it only textsleep's figures are printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path


def _textsleep(args) -> dict:
    cmd = [sys.executable, "-m", "textsleep", "bench", "--json", "--size", str(args.size), "--cutouts", str(args.cutouts),
           "--steps", str(args.steps), "--precision", args.precision, "--device", args.device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _peer(args) -> float | None:
    if not args.peer or importlib.util.find_spec("big_sleep") is None:
        return None
    out = subprocess.run([sys.executable, args.peer, str(args.size), str(args.cutouts), str(args.steps)], check=True, capture_output=True, text=True).stdout
    match = re.search(r"big-sleep s/step:\s*([0-9.]+)", out)
    return float(match.group(1)) if match else None


def main() -> None:
    default_peer = Path(__file__).resolve().parents[2] / "shared" / "bench" / "peer_bigsleep.py"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--cutouts", type=int, default=32)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--precision", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--peer", default=str(default_peer) if default_peer.exists() else None)
    args = p.parse_args()

    ours, theirs, mem = [], [], []
    for r in range(args.rounds):
        result = _textsleep(args)
        ours.append(result["median_s"])
        mem.append(result["peak_memory_gb"])
        peer = _peer(args)
        if peer is not None:
            theirs.append(peer)
        print(f"round {r + 1}: textsleep {result['median_s']:.3f} s/step ({result['precision']}, {result['device']})"
              + (f", big-sleep {peer:.3f} s/step" if peer is not None else ""), flush=True)
    a = statistics.median(ours)
    print(f"textsleep median: {a:.3f} s/step, {1 / a:.2f} it/s; {result['memory_kind']} {max(mem):.2f} GB "
          f"(size {args.size}, cutouts {args.cutouts}, {result['device']}, {result['precision']}, torch {result['torch']})")
    if theirs:
        b = statistics.median(theirs)
        print(f"big-sleep median: {b:.3f} s/step, {1 / b:.2f} it/s")
        print(f"speed-up: {b / a:.2f}x")
    else:
        print("big-sleep: not installed, no ratio (pip install --no-deps big-sleep fire)")


if __name__ == "__main__":
    main()
