"""README's Slurm script, submitted as written to a real one-node Slurm.

Every job runs once, scancel saves, resubmitting resumes.

Skipped, with the reason, where Slurm cannot start (not installed, not root).
"""

import json
import os
import re
import sys
from pathlib import Path

import pytest
from batchtools import read_records, saved_run, wait_for, write_prompts
from slurm import Unavailable, start_cluster

README = Path(__file__).resolve().parents[1] / "README.md"
_START, _END = "<!-- slurm-overnight.sh -->", "<!-- end slurm-overnight.sh -->"


def readme_script() -> str:
    """The Slurm script of README's "Overnight batches", exactly as printed there."""
    text = README.read_text(encoding="utf-8")
    assert _START in text and _END in text, "README.md lost its Slurm script's markers"
    block = text.split(_START, 1)[1].split(_END, 1)[0].strip()
    assert block.startswith("```bash\n") and block.endswith("\n```"), block[:40]
    return block[len("```bash\n") : -len("```")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        cluster = start_cluster(tmp_path_factory.mktemp("slurm"), kill_wait=30)
    except Unavailable as err:
        pytest.skip(f"no Slurm here: {err}")
    yield cluster
    cluster.stop()


@pytest.fixture
def job_env(cluster, tmp_path):
    """What a job needs to run this checkout's ``textsleep`` (jobs inherit the submitting environment)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "textsleep"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m textsleep "$@"\n')
    shim.chmod(0o755)
    root = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {
        **cluster.env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": python_path,
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "overnight.sh"
    path.write_text(readme_script(), encoding="utf-8")
    return path


def _options(tiny_options, **changes):
    """Dream options for the script's "$@" (its own --out is the batch folder)."""
    options = {**tiny_options, "cutouts": 2, **changes}
    args = []
    for key, value in options.items():
        if key != "out":
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def _log(folder, job_id, task=0):
    return (Path(folder) / f"slurm-{job_id}_{task}.out").read_text(encoding="utf-8")


def test_readme_array_script_runs_every_job_exactly_once(cluster, job_env, script, tmp_path, tiny_options):
    path = write_prompts(tmp_path, "a red cube\na blue sphere\na green cone -- --seeds 1,2\na lighthouse\na fox\n")
    out = tmp_path / "batch"
    options = _options(tiny_options, iterations=2, save_every=2)
    # --gres=none: this test cluster has no GPUs; every other line of the script applies as written
    job = cluster.sbatch(
        "--gres=none",
        "--wait",
        f"--chdir={tmp_path}",
        str(script),
        str(path),
        str(out),
        *options,
        env=job_env,
        timeout=300,
    )
    records = read_records(out)
    assert len(records) == 6 and all(r["status"] == "finished" for r in records), [
        (r["source"], r["status"], r["error"]) for r in records
    ]
    assert all(len(r["attempts"]) == 1 for r in records)  # nothing ran twice
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(Path(r["folder"]).name for r in records)
    # each of the four array tasks took its own shard from Slurm and ran exactly that shard's jobs
    for task in range(4):
        log = _log(tmp_path, job, task)
        assert f"(shard {task}/4 from Slurm array task {task})" in log.splitlines()[0], log
        done = set(re.findall(r" done: (?:score \S+ · )?\S*/runs/(\S+)", log))
        assert done == {Path(r["folder"]).name for r in records[task::4]}, log


def test_scancel_saves_the_running_job_and_resubmitting_resumes_it(cluster, job_env, script, tmp_path, tiny_options):
    iterations, every = 24, 2
    path = write_prompts(tmp_path, "a slow dream\n", "slow.txt")
    out = tmp_path / "batch"
    options = _options(tiny_options, iterations=iterations, save_every=every)
    args = ["--gres=none", "--array=0", f"--chdir={tmp_path}", str(script), str(path), str(out), *options]
    job = cluster.sbatch(*args, env=job_env)
    run_dir = wait_for(lambda: saved_run(out, "a_slow_dream", every), seconds=120, every=0.05)
    cluster.run("scancel", job)  # TERM to the job's processes, KILL after KillWait (30 s)
    assert cluster.wait_gone(job, 60), f"job {job} still there a minute after scancel"

    (record,) = read_records(out)
    run = json.loads((run_dir / "run.json").read_text())
    saved = run["steps_done"]
    assert record["status"] == "interrupted" and record["attempts"][-1]["signal"] == "SIGTERM", record
    assert run["status"] == "interrupted" and every <= saved < iterations and record["steps_done"] == saved
    assert (run_dir / "checkpoint.pt").is_file()
    log = _log(tmp_path, job)
    assert "stopped by SIGTERM" in log and "resume with: textsleep batch" in log, log

    again = cluster.sbatch("--wait", *args, env=job_env, timeout=300)  # the same submission again
    assert f"resuming from step {saved}" in _log(tmp_path, again), _log(tmp_path, again)
    (record,) = read_records(out)
    first, second = record["attempts"]
    assert (first["status"], first["from_step"], first["to_step"]) == ("interrupted", 0, saved)
    assert (second["status"], second["from_step"], second["to_step"]) == ("finished", saved, iterations)
    assert json.loads((run_dir / "run.json").read_text())["steps_done"] == iterations
