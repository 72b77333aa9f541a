"""Batches meeting faults: TERM and HUP, damaged run folders, and Slurm array tasks taking their shard."""

import json
import signal
import subprocess
import sys

import pytest
from batchtools import ONE_THREAD, read_records, run_batch, saved_run, wait_for, write_prompts

from textsleep import UserError
from textsleep import batch as lib


def _by_source(out):
    return {r["source"].split(" --")[0]: r for r in read_records(out)}


def _batch_process(args, env=ONE_THREAD):
    return subprocess.Popen(
        [sys.executable, "-m", "textsleep", "batch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


# ---------------------------------------------------------------------------------------------- signals
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_term_or_hup_saves_the_running_job_and_a_rerun_resumes_it(tmp_path, tiny_args, signum, code):
    iterations, every = 24, 2
    path = write_prompts(tmp_path, f"long -- --iterations {iterations}\nnext\n")
    out = tmp_path / "batch"
    args = [
        str(path),
        *tiny_args,
        "--cutouts",
        "2",
        "--iterations",
        "2",
        "--save-every",
        str(every),
        "--out",
        str(out),
        "--quiet",
    ]
    proc = _batch_process(args)
    try:
        wait_for(lambda: saved_run(out, "long", every), proc)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    name = signal.Signals(signum).name
    assert f"stopped by {name}" in stderr and "resume with: textsleep batch" in stderr
    records = _by_source(out)
    long, nxt = records["long"], records["next"]
    assert long["status"] == "interrupted" and nxt["status"] == "pending"
    attempt = long["attempts"][-1]
    assert attempt["status"] == "interrupted" and attempt["signal"] == name
    run_dir = out / long["folder"]
    run = json.loads((run_dir / "run.json").read_text())
    saved = run["steps_done"]
    assert run["status"] == "interrupted" and every <= saved < iterations and long["steps_done"] == saved
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "image.png").is_file()
    if signum != signal.SIGTERM:
        return  # (resuming is the same whatever stopped the job)

    again = run_batch([a for a in args if a != "--quiet"])  # the same command (with its lines per job): the
    # interrupted job goes on from its saved step
    assert again.exit_code == 0, again.output
    assert f"resuming from step {saved}" in again.output
    records = _by_source(out)
    assert [r["status"] for r in records.values()] == ["finished", "finished"]
    first, second = records["long"]["attempts"]
    assert (first["from_step"], first["to_step"]) == (0, saved)
    assert (second["status"], second["from_step"], second["to_step"]) == ("finished", saved, iterations)
    assert json.loads((run_dir / "run.json").read_text())["steps_done"] == iterations
    assert len(list((out / "runs").iterdir())) == 2


def test_signals_are_handled_only_while_a_command_runs():
    from textsleep.commands.common import stop_signals
    from textsleep.errors import Interrupted

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    with stop_signals():
        with pytest.raises(Interrupted) as caught:
            signal.raise_signal(signal.SIGTERM)
        assert caught.value.exit_code == 143 and isinstance(caught.value, KeyboardInterrupt)
        signal.raise_signal(signal.SIGHUP)  # a second signal while the first unwinds is ignored
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before
    assert Interrupted(signal.SIGHUP).exit_code == 129 and str(Interrupted(signal.SIGHUP)) == "stopped by SIGHUP"


# ---------------------------------------------------------------------------------------------- damaged files
@pytest.mark.parametrize("damaged", ["checkpoint.pt", "run.json"])
def test_a_damaged_run_folder_starts_its_job_again_from_step_0(tmp_path, tiny_args, damaged):
    from textsleep.options import parse_options

    iterations, every = 6, 2
    path = write_prompts(tmp_path, "a red cube\n")
    out = tmp_path / "batch"
    options = [*tiny_args, "--cutouts", "2", "--iterations", str(iterations), "--save-every", str(every)]
    plan = lib.plan_batch(path, parse_options(options))  # the jobs the command will find
    folder = lib.BatchFolder.prepare(out, plan)

    def stop_after_first_save(imagine, step):
        if step.index == every:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        for _ in lib.run_jobs(folder, plan.jobs, on_step=stop_after_first_save):
            pass
    (record,) = read_records(out)
    run_dir = out / record["folder"]
    assert record["status"] == "interrupted" and json.loads((run_dir / "run.json").read_text())["steps_done"] == every
    file = run_dir / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])  # cut short, as by a full disk

    result = run_batch([str(path), *options, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"starting over: {damaged} could not be read" in result.output
    assert "dreaming" not in result.stderr  # --quiet: no progress bar
    (record,) = read_records(out)
    interrupted, restarted = record["attempts"]
    assert interrupted["status"] == "interrupted" and interrupted["to_step"] == every
    assert restarted["restarted"].startswith(f"{damaged} could not be read (") and restarted["restarted"].endswith(
        "started again from step 0"
    )
    assert (restarted["status"], restarted["from_step"], restarted["to_step"]) == ("finished", 0, iterations)
    assert record["status"] == "finished" and record["steps_done"] == iterations
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["steps_done"] == iterations
    assert (run_dir / f"{damaged}.damaged").is_file()  # kept, out of the way
    assert [p.name for p in (out / "runs").iterdir()] == [run_dir.name]


def test_a_dream_gone_to_nan_fails_its_job_and_the_batch_goes_on(tmp_path, tiny_args, monkeypatch):
    from textsleep import losses

    real, calls = losses.latent_loss, []

    def nan_at_third_step(z, truncation=1.0):  # the first job's third step (one call a step)
        calls.append(1)
        value = real(z, truncation)
        return value * float("nan") if len(calls) == 3 else value

    monkeypatch.setattr(losses, "latent_loss", nan_at_third_step)
    path = write_prompts(tmp_path, "unstable\nsteady\n")
    out = tmp_path / "batch"
    result = run_batch(
        [
            str(path),
            *tiny_args,
            "--cutouts",
            "2",
            "--iterations",
            "4",
            "--save-every",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert result.exit_code == 1, result.output  # a job failed; the batch itself ran to the end
    assert "Traceback" not in result.output
    unstable, steady = read_records(out)
    assert unstable["status"] == "failed" and "\n" not in unstable["error"]
    assert unstable["error"].startswith("the loss became nan at step 3"), unstable["error"]
    assert unstable["attempts"][0]["status"] == "failed" and unstable["attempts"][0]["to_step"] == 2
    assert steady["status"] == "finished" and steady["steps_done"] == 4
    run = json.loads((out / unstable["folder"] / "run.json").read_text())
    assert run["status"] == "failed" and run["steps_done"] == 2  # the last good save is kept
    assert "failed (line 1): the loss became nan at step 3" in result.output


# ---------------------------------------------------------------------------------------------- Slurm arrays
def _array(task, count, first=0, step=1):
    return {
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_STEP": str(step),
    }


def test_a_slurm_array_task_is_its_place_in_the_array():
    assert lib.shard_from_env({}) is None
    assert lib.shard_from_env({"SLURM_ARRAY_TASK_ID": "3"}) is None  # not an array job's full set
    assert [lib.shard_from_env(_array(t, 4)) for t in range(4)] == [(0, 4), (1, 4), (2, 4), (3, 4)]  # --array=0-3
    assert [lib.shard_from_env(_array(t, 4, first=1)) for t in (1, 2, 3, 4)] == [(0, 4), (1, 4), (2, 4), (3, 4)]  # 1-4
    assert [lib.shard_from_env(_array(t, 3, first=0, step=2)) for t in (0, 2, 4)] == [(0, 3), (1, 3), (2, 3)]  # 0-4:2
    assert lib.shard_from_env({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}) == (1, 2)  # no MIN: from 0
    for bad in (_array(7, 3, first=1), _array(3, 3, first=0, step=2)):  # a list like --array=1,2,7
        with pytest.raises(UserError, match="--shard I/N"):
            lib.shard_from_env(bad)


def test_batch_in_a_slurm_array_task_runs_its_shard(tmp_path, tiny_args):
    path = write_prompts(tmp_path, "zero\none\ntwo\n")
    out = tmp_path / "batch"
    args = [str(path), *tiny_args, "--cutouts", "2", "--iterations", "2", "--out", str(out), "--quiet"]
    task = subprocess.run(
        [sys.executable, "-m", "textsleep", "batch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**ONE_THREAD, **_array(2, 3, first=1)},
    )  # the second task of --array=1-3
    assert task.returncode == 0, task.stderr
    first_line = task.stdout.splitlines()[0]
    assert "1 jobs (shard 1/3 from Slurm array task 2)" in first_line, task.stdout
    assert [(r["source"], r["status"]) for r in read_records(out)] == [
        ("zero", "pending"),
        ("one", "finished"),
        ("two", "pending"),
    ]
    # --shard, when given, is obeyed over the environment
    given = subprocess.run(
        [sys.executable, "-m", "textsleep", "batch", *args, "--shard", "0/3"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**ONE_THREAD, **_array(2, 3, first=1)},
    )
    assert given.returncode == 0 and "(shard 0/3)" in given.stdout.splitlines()[0], given.stdout
    assert [r["status"] for r in read_records(out)] == ["finished", "finished", "pending"]
