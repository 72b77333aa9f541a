"""Time a cached BigGAN-deep-512 load: what every dream, batch job and explorer run pays before its first step.

A random full-size BigGAN-deep-512 (the released file's size, about 230 MB) is written once, served from
127.0.0.1 as the ``TEXTSLEEP_BIGGAN_URL`` mirror and downloaded into a fresh cache; then
``load_biggan("biggan-deep-512")`` is timed ``--loads`` times in a fresh process.  With ``--against DIR [DIR ...]``
(other checkouts' roots) each of those checkouts' textsleep does the same, in alternating rounds and with a cache of
its own, and the ratios of the medians are printed.

    python benchmarks/cached_load.py                         # this checkout alone
    python benchmarks/cached_load.py --against ../other --rounds 3 --loads 3
    python -m textsleep.testing full --full && python benchmarks/cached_load.py --model full/biggan-deep-512
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
from textsleep.models import load_biggan
load_biggan("biggan-deep-512", progress=False)  # the download on the first round, a cached load after it
times = []
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    load_biggan("biggan-deep-512", progress=False)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", type=int, default=3, help="timed loads per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per checkout, alternating")
    parser.add_argument("--against", type=Path, nargs="*", default=[], help="other checkouts' roots, timed in turn")
    parser.add_argument("--model", type=Path, help="a BigGAN-deep-512 folder to serve (default: write a random one)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from textsleep.devices import device_info
    from textsleep.testing import write_biggan

    trees = {"this": REPO, **{f"other {i + 1}": tree.resolve() for i, tree in enumerate(args.against)}}
    with tempfile.TemporaryDirectory(prefix="textsleep-load-") as tmp:
        tmp = Path(tmp)
        model = args.model.resolve() if args.model else write_biggan(tmp / "model", 512, 128)
        size = (model / "pytorch_model.bin").stat().st_size
        served = tmp / "served"
        served.mkdir()
        for f in ("config.json", "pytorch_model.bin"):
            (served / f"biggan-deep-512-{f}").symlink_to(model / f)
        handler = functools.partial(_Quiet, directory=str(served))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                env = {
                    **os.environ,
                    "PYTHONPATH": str(tree),
                    "TEXTSLEEP_CACHE": str(tmp / f"cache-{name}"),
                    "TEXTSLEEP_BIGGAN_URL": f"http://127.0.0.1:{httpd.server_address[1]}",
                    "HF_HUB_OFFLINE": "1",
                }
                run = [sys.executable, "-c", CHILD, str(args.loads)]
                out = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
                times[name] += json.loads(out.strip().splitlines()[-1])
        httpd.shutdown()
    cpu = device_info("cpu")["name"]
    print(f"cached biggan-deep-512 load ({size / 2**20:.0f} MiB), {args.rounds} x {args.loads} loads, CPU: {cpu}")
    for name, tree in trees.items():
        t = times[name]
        print(f"  {name:8} {tree}: median {statistics.median(t):.3f} s (min {min(t):.3f}, max {max(t):.3f})")
    for name in list(trees)[1:]:
        print(f"  {name} / this: {statistics.median(times[name]) / statistics.median(times['this']):.2f}x")


if __name__ == "__main__":
    main()
