"""Time and peak memory of `textsleep upscale` 4x on the CPU, for a few tile sizes.

A full-size RealESRGAN_x4plus (23 blocks, 64 features) with random weights is
written to a temporary .pth (no download); each tile size then runs in its own
child process, which loads it through textsleep.upscale and enlarges a
512 px picture to 2048 px.  The child reports the seconds spent upscaling; the
parent reads the child's peak resident memory from wait4().  A "load only" child
gives the floor (Python, torch, the network) that every run pays.

    python benchmarks/upscale_memory.py                 # tiles 0 (one pass), 256, 128
    python benchmarks/upscale_memory.py --tiles 512 192 --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _write_network(path: Path) -> None:
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4)
    torch.save(net.state_dict(), path)


def _child(weights: str, size: int, tile: int | None) -> None:
    """Runs in the child: load the network, then (unless tile is None) time one upscale."""
    import time

    import numpy as np
    from PIL import Image

    from textsleep.upscale import load_upscaler, upscale_image

    net = load_upscaler(weights, scale=4, device="cpu")
    result = {"tile": tile}
    if tile is not None:
        rng = np.random.default_rng(0)
        picture = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        start = time.perf_counter()
        big = upscale_image(picture, upscaler=net, tile=tile)
        result.update(seconds=time.perf_counter() - start, out=list(big.size))
    print(json.dumps(result))


def _measure(weights: Path, size: int, tile: int | None) -> dict:
    args = [sys.executable, __file__, "--child", str(weights), "--size", str(size)]
    if tile is not None:
        args += ["--tile", str(tile)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, env=env, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"the child for tile {tile} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    result["peak_rss_mib"] = usage.ru_maxrss * scale / 2**20
    return result


def _cpu_name() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tiles", type=int, nargs="+", default=[0, 256, 128], help="tile sides in input pixels (0: one pass)"
    )
    parser.add_argument("--size", type=int, default=512, help="side of the square input picture")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child, args.size, args.tile)

    import torch

    print(
        f"CPU: {_cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"RealESRGAN_x4plus-sized network (23 blocks, 64 features, random weights), {args.size} px -> "
        f"{args.size * 4} px"
    )
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random_x4plus.pth"
        _write_network(weights)
        floor = _measure(weights, args.size, None)
        print(f"{'load only':>10}: {'':>9}  peak RSS {floor['peak_rss_mib']:7.0f} MiB")
        for tile in args.tiles:
            r = _measure(weights, args.size, tile)
            name = "one pass" if tile == 0 else f"tile {tile}"
            print(
                f"{name:>10}: {r['seconds']:7.1f} s  peak RSS {r['peak_rss_mib']:7.0f} MiB  "
                f"({r['out'][0]}x{r['out'][1]})"
            )


if __name__ == "__main__":
    main()
