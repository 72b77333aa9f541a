"""The whole test suite's wall time, measured and recorded: the figure README's "Set up" quotes.

Runs ``python -m pytest -q`` (every test, as README's test line does) in this checkout, then writes
``benchmarks/results/suite-time.json``: the seconds it took, the minutes README quotes (rounded), the outcome
counts, the processor and its cores, torch's version and the date.  A red run is recorded but says so
(``failed`` > 0), and README quotes only a green one (``tests/test_suite_time.py`` checks the two agree).

    python benchmarks/suite_time.py
    python benchmarks/suite_time.py --out /tmp/suite-time.json -- -x    # options after -- go to pytest
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

from textsleep.devices import device_info

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "suite-time.json"


def outcome_counts(summary: str) -> dict[str, int]:
    """``{"passed": 412, "skipped": 4, …}`` from pytest's last line (``412 passed, 4 skipped in 905.1s``)."""
    counts = {kind: 0 for kind in ("passed", "failed", "errors", "skipped", "deselected")}
    for number, kind in re.findall(r"(\d+) (passed|failed|errors?|skipped|deselected)", summary):
        counts["errors" if kind.startswith("error") else kind] += int(number)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULT, help="Where to write the figures (JSON).")
    parser.add_argument("pytest_args", nargs="*", help="More pytest options (after --).")
    args = parser.parse_args()

    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args]
    started, summary = time.perf_counter(), ""
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        for line in run.stdout:  # (shown as it comes; the last line is pytest's summary)
            sys.stdout.write(line)
            sys.stdout.flush()
            summary = line.strip() or summary
    seconds = time.perf_counter() - started
    figures = {
        "seconds": round(seconds, 1),
        "minutes": round(seconds / 60),
        "exit_code": run.returncode,
        **outcome_counts(summary),
        "summary": summary.strip("= "),
        "cpu": device_info("cpu")["name"],
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "command": " ".join(["python", "-m", "pytest", "-q", *args.pytest_args]),
        "date": date.today().isoformat(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"{summary}\nthe whole suite: {seconds / 60:.1f} min on {figures['cores']} cores ({figures['cpu']})")
    print(f"written: {args.out}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
