"""The GPU check runs end to end on the CPU (``--device cpu --quick``), so it only has to be carried to a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {
    "device_name",
    "size",
    "cutouts",
    "compiled",
    "textsleep_s_per_step",
    "bigsleep_s_per_step",
    "speedup",
    "textsleep_peak_gb",
    "bigsleep_peak_gb",
    "precision",
    "torch",
    "date",
}


@pytest.mark.dream
def test_gpu_check_runs_end_to_end_on_the_cpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (results,) = tmp_path.glob("*.json")
    report = json.loads(results.read_text())
    assert results.name.endswith(f"-{report['date']}.json")
    rows = report["rows"]
    assert [r["compiled"] for r in rows] == [False, True]  # eager and compiled, each beside big-sleep's step
    for row in rows:
        assert FIELDS <= set(row) and row["device_name"] == report["device_name"]
        assert row["textsleep_s_per_step"] > 0 and row["bigsleep_s_per_step"] > 0
        assert row["speedup"] == pytest.approx(row["bigsleep_s_per_step"] / row["textsleep_s_per_step"], rel=0.01)
    assert rows[1]["first_step_s"] > 0  # (the compile, or reading it from torch's cache)
    assert report["num_images"]["ratio"] > 0
    assert {x["lever"] for x in report["levers"]} == {
        "attention sdpa",
        "noise on the device",
        "no host sync",
        "foreach moving average",
        "all cutouts at once",
    }
    assert report["tests"]["passed"] and report["targets"][0]["result"] == "n/a"  # (targets are for a GPU)
    assert "| size | cutouts |" in done.stdout and "passed in" in done.stdout
