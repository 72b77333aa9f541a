"""Batch prompt files: parsing, a manifest that survives anything, resume, shards, claims, bad input."""

import json
import re
import signal
import subprocess
import sys

import pytest
from batchtools import ONE_THREAD, one_line_error, read_records, run_batch, saved_run, wait_for, write_prompts

from textsleep import UserError
from textsleep import batch as lib


def _by_prompt(folder):
    return {(r["prompt"] or r["source"], r["seed"]): r for r in read_records(folder)}


@pytest.fixture
def quick(tiny_args):
    """Tiny-model defaults for a batch: few steps, cheap saves."""
    return [*tiny_args, "--iterations", "2", "--save-every", "2", "--cutouts", "2"]


# ---------------------------------------------------------------------------------------------- parsing
def test_plan_reads_the_format_and_names_bad_lines(tmp_path):
    (tmp_path / "refs").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "refs" / "cat.png")
    path = write_prompts(
        tmp_path,
        "# a comment\n\n"
        "a lighthouse in a storm\n"  # 3
        "a castle:2|fog:-1 -- --seed 3 --size 256\n"  # 4
        "a cat -- --seeds 1,2,3\n"  # 5
        'a fox -- --repeat 2 --negative "blurry photo"\n'  # 6
        "a bad size -- --size 300\n"  # 7
        "an unknown option -- --frobnicate 3\n"  # 8
        "a missing image -- --image nowhere.png\n"  # 9
        "a cat -- --image refs/cat.png:0.5\n"  # 10: found beside the prompt file
        'bad quoting -- --negative "unclosed\n'  # 11
        "a lighthouse in a storm\n"  # 12: a duplicate of line 3
        "its own folder -- --out elsewhere\n",  # 13
    )
    plan = lib.plan_batch(path, {"iterations": 5})
    bad = {job.line: job.error for job in plan.invalid}
    assert set(bad) == {7, 8, 9, 11, 13}
    assert bad[7] == "prompts.txt:7: --size 300: allowed sizes are 128, 256, 512"
    assert bad[8].startswith("prompts.txt:8:") and "--frobnicate" in bad[8]
    assert bad[9] == "prompts.txt:9: --image 'nowhere.png': no such file"
    assert bad[11].startswith("prompts.txt:11:") and "quot" in bad[11]
    assert bad[13].startswith("prompts.txt:13: --out cannot be given on a line")
    good = [job for job in plan.jobs if job.valid]
    assert [(j.line, j.seed) for j in good if j.line in (4, 5)] == [(4, 3), (5, 1), (5, 2), (5, 3)]
    castle = next(j for j in good if j.line == 4)
    assert (
        castle.prompt == "a castle:2|fog:-1" and castle.settings["size"] == 256 and castle.settings["iterations"] == 5
    )
    fox = [j for j in good if j.line == 6]
    assert len(fox) == 2 and fox[0].seed != fox[1].seed and fox[0].settings["negatives"] == ["blurry photo"]
    assert next(j for j in good if j.line == 10).settings["images"] == [
        f"{tmp_path.resolve() / 'refs' / 'cat.png'}:0.5"
    ]
    # duplicate lines: distinct jobs, seeds and folders
    twins = [j for j in good if j.source == "a lighthouse in a storm"]
    assert len(twins) == 2 and twins[0].id != twins[1].id and twins[0].folder != twins[1].folder
    assert len({j.id for j in plan.jobs}) == len(plan.jobs)


def test_job_ids_follow_line_content_not_line_numbers(tmp_path):
    path = write_prompts(tmp_path, "a red cube\na blue sphere -- --seed 4\n")
    before = {j.source: j.id for j in lib.plan_batch(path).jobs}
    assert before == {j.source: j.id for j in lib.plan_batch(path).jobs}  # the same on every read
    path.write_text("# new comment\na green cone\na red cube\na blue sphere -- --seed 4\n")
    after = {j.source: j.id for j in lib.plan_batch(path).jobs}
    assert (
        after["a red cube"] == before["a red cube"]
        and after["a blue sphere -- --seed 4"] == before["a blue sphere -- --seed 4"]
    )
    assert set(after) - set(before) == {"a green cone"}
    # the options that shape the picture are part of a job; where it runs is not
    assert lib.plan_batch(path, {"iterations": 9}).jobs[1].id != after["a red cube"]
    assert lib.plan_batch(path, {"device": "cpu", "save_every": 3, "cutout_batch": 8}).jobs[1].id == after["a red cube"]


def test_awkward_prompts_get_safe_distinct_folders(tmp_path):
    long = "a very long prompt " * 16  # 300 characters
    prompts = [
        "a/b/../../etc/passwd",
        "\"quoted\" and 'single'",
        "🌋🌋 a volcano 🌋",
        "🌋🌋🌋",
        long[:300],
        long[:300],
        "a/b",
        "a b",
    ]
    path = write_prompts(tmp_path, "\n".join(prompts) + "\n")
    plan = lib.plan_batch(path)
    names = [job.folder for job in plan.jobs]
    assert len(plan.jobs) == len(prompts) and len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"[a-z0-9_]{1,60}-[0-9a-f]{10}", name), name
    folder = lib.BatchFolder.prepare(tmp_path / "out", plan)
    for job in plan.jobs:  # every one can be made, inside the batch's runs/
        (folder.runs / job.folder).mkdir()
    assert sorted(p.name for p in folder.runs.iterdir()) == sorted(names)


def test_shards_partition_the_jobs(tmp_path):
    path = write_prompts(tmp_path, "".join(f"prompt {i}\n" for i in range(7)) + "prompt x -- --seeds 1,2,3\n")
    jobs = lib.plan_batch(path).jobs
    for n in (1, 2, 3, 4, 11):
        shards = [lib.select_shard(jobs, i, n) for i in range(n)]
        ids = [job.id for shard in shards for job in shard]
        assert sorted(ids) == sorted(j.id for j in jobs) and len(ids) == len(set(ids)), n
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert lib.parse_shard("2/4") == (2, 4)
    for bad in ("3/2", "2/2", "1/0", "x", "-1/2"):
        with pytest.raises(UserError, match="--shard"):
            lib.parse_shard(bad)


def test_eta_comes_from_measured_times():
    records = [
        {"status": "finished", "seconds": 20.0, "steps_run": 100, "steps_done": 100, "iterations": 100},
        {"status": "finished", "seconds": 10.0, "steps_run": 100, "steps_done": 100, "iterations": 100},
        {"status": "interrupted", "seconds": 3.0, "steps_run": 20, "steps_done": 20, "iterations": 100},
        {"status": "pending", "iterations": 200},
        {"status": "failed", "iterations": 50},
    ]
    p = lib.progress(records)
    assert (p.total, p.finished, p.failed, p.waiting, p.done) == (5, 2, 1, 2, 3)
    assert p.seconds_per_step == pytest.approx(33 / 220) and p.remaining_steps == 280
    assert p.eta_seconds == pytest.approx(33 / 220 * 280)
    assert lib.progress(records, workers=2).eta_seconds == pytest.approx(33 / 220 * 140)
    assert lib.progress([{"status": "pending", "iterations": 9}]).eta_seconds is None  # nothing measured yet


# ---------------------------------------------------------------------------------------------- the command
def test_bad_lines_are_skipped_and_recorded_rerun_skips_finished(tmp_path, quick):
    path = write_prompts(tmp_path, "a red cube\nbroken -- --size 300\na red cube -- --seed 9\n")
    out = tmp_path / "batch"
    result = run_batch([str(path), *quick, "--out", str(out)])
    assert result.exit_code == 1, result.output  # a line failed
    assert "warning: prompts.txt:2: --size 300: allowed sizes are 128, 256, 512" in result.output
    assert "dreaming: 100%" in result.stderr and "2/2" in result.stderr  # each job's progress bar (not with --quiet)
    records = _by_prompt(out)
    assert [r["status"] for r in records.values()] == ["finished", "failed", "finished"]
    assert (
        records[("broken -- --size 300", None)]["error"] == "prompts.txt:2: --size 300: allowed sizes are 128, 256, 512"
    )
    cube = records[("a red cube", 9)]
    run_dir = out / cube["folder"]
    assert (run_dir / "image.png").is_file() and json.loads((run_dir / "run.json").read_text())["seed"] == 9
    assert isinstance(cube["final_score"], float) and cube["steps_done"] == 2 and len(cube["attempts"]) == 1
    assert (out / "index.html").is_file()
    stamp = (run_dir / "run.json").stat().st_mtime_ns

    again = run_batch([str(path), *quick, "--out", str(out)])
    assert "skipped 2 finished and 1 failed job(s) (1 of them a bad line: fix it to dream it)" in again.output
    assert all(len(r["attempts"]) == len(records[k]["attempts"]) for k, r in _by_prompt(out).items())
    assert (run_dir / "run.json").stat().st_mtime_ns == stamp
    assert len(list((out / "runs").iterdir())) == 2

    status = run_batch(["--status", str(out)])
    assert status.exit_code == 0
    assert "2 finished · 1 failed" in status.output and "prompts.txt:2: --size 300" in status.output


def test_strict_stops_before_any_model_loads(tmp_path, quick, monkeypatch):
    from textsleep.models import ModelCache

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(ModelCache, "biggan", no_models)
    monkeypatch.setattr(ModelCache, "clip", no_models)
    path = write_prompts(tmp_path, "fine\nbad -- --truncation 2\nworse -- --bogus\n")
    result = run_batch([str(path), *quick, "--out", str(tmp_path / "batch"), "--strict"])
    one_line_error(result, "2 bad line(s)", "--strict")
    assert "prompts.txt:2: --truncation 2.0: must be in (0, 1]" in result.output and "prompts.txt:3:" in result.output
    assert not (tmp_path / "batch").exists()


def test_a_failing_job_is_recorded_and_the_batch_goes_on(tmp_path, quick):
    path = write_prompts(tmp_path, f"first -- --biggan {tmp_path / 'no-such-biggan'}\nsecond\n")
    out = tmp_path / "batch"
    result = run_batch([str(path), *quick, "--out", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    first, second = read_records(out)
    assert (
        first["status"] == "failed"
        and "no-such-biggan" in first["error"]
        and first["attempts"][0]["status"] == "failed"
    )
    assert second["status"] == "finished"
    assert "failed (line 1)" in result.output
    # failed jobs run again only when asked
    run_batch([str(path), *quick, "--out", str(out)])
    assert len(read_records(out)[0]["attempts"]) == 1
    run_batch([str(path), *quick, "--out", str(out), "--retry-failed"])
    first, second = read_records(out)
    assert len(first["attempts"]) == 2 and first["status"] == "failed" and len(second["attempts"]) == 1


def test_a_job_claimed_by_another_worker_is_left_to_it(tmp_path, quick):
    path = write_prompts(tmp_path, "mine\ntheirs\n")
    out = tmp_path / "batch"
    from textsleep.options import parse_options

    plan = lib.plan_batch(path, parse_options(quick))  # the same jobs the command will find
    folder = lib.BatchFolder(out)
    out.mkdir()
    theirs = plan.jobs[1].id
    with folder.claim(theirs) as held:  # as a worker elsewhere would hold it
        assert held
        with folder.claim(theirs) as second:
            assert not second
        result = run_batch([str(path), *quick, "--out", str(out), "--force"])
    assert "skipped theirs: another worker is running it" in result.output
    assert [r["status"] for r in read_records(out)] == ["finished", "pending"]


def test_folder_of_another_prompt_file_or_options_is_refused(tmp_path, quick):
    a = write_prompts(tmp_path, "a red cube\n", "a.txt")
    b = write_prompts(tmp_path, "a blue sphere\n", "b.txt")
    out = tmp_path / "batch"
    lib.BatchFolder.prepare(out, lib.plan_batch(a, {"iterations": 2}))
    one_line_error(run_batch([str(b), *quick, "--out", str(out)]), "batch folder of", "a.txt", "--force")
    one_line_error(
        run_batch([str(a), *quick, "--out", str(out), "--iterations", "3"]),
        "other options",
        "--iterations 2 then, 3 now",
    )
    lib.BatchFolder.prepare(out, lib.plan_batch(b, {"iterations": 2}), force=True)
    assert json.loads((out / "batch.json").read_text())["prompt_file"] == str(b.resolve())
    assert len(read_records(out)) == 2  # the first file's job is still recorded
    other = tmp_path / "somebody-elses"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    one_line_error(run_batch([str(a), *quick, "--out", str(other)]), "not a batch folder")
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["missing.txt"], ["'missing.txt': no such prompt file"]),
        (["EMPTY"], ["no prompts in it"]),
        (["FILE", "--shard", "3/2"], ["--shard 3/2", "0 … N-1"]),
        (["FILE", "--repeat", "0"], ["--repeat '0'", ">= 1"]),
        (["FILE", "--seeds", "a,b"], ["--seeds 'a,b'"]),
        (["FILE", "--size", "300"], ["--size 300", "128, 256, 512"]),
        (["FILE", "--resume", "x"], ["--resume"]),
        (["FILE", "--devices", "cpu", "--device", "cpu"], ["--devices and --device"]),
        ([], ["give a prompt file"]),
    ],
)
def test_bad_input_is_one_line(args, fragments, tmp_path):
    good = write_prompts(tmp_path, "a red cube\n")
    empty = write_prompts(tmp_path, "# only a comment\n\n", "empty.txt")
    args = [{"FILE": str(good), "EMPTY": str(empty)}.get(a, a) for a in args]
    one_line_error(run_batch([*args, "--out", str(tmp_path / "batch")]), *fragments)


def test_status_of_a_folder_that_is_not_a_batch(tmp_path):
    one_line_error(run_batch(["--status", str(tmp_path)]), "not a batch folder")


# ---------------------------------------------------------------------------------------------- kill -9
def test_sigkill_mid_job_then_rerun_resumes_it_and_runs_each_job_once(tmp_path, tiny_args):
    iterations, every = 18, 3
    path = write_prompts(tmp_path, f"first\nsecond -- --iterations {iterations} --save-every {every}\nthird\n")
    out = tmp_path / "batch"
    args = [str(path), *tiny_args, "--cutouts", "2", "--iterations", "2", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "textsleep", "batch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
    )

    try:
        run_dir = wait_for(lambda: saved_run(out, "second", every), proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    killed_at = json.loads((run_dir / "run.json").read_text())["steps_done"]
    records = {r["source"].split(" --")[0]: r for r in read_records(out)}  # still readable after kill -9
    assert records["first"]["status"] == "finished" and records["second"]["status"] == "running"
    assert records["third"]["status"] == "pending" and killed_at < iterations
    first_record = (out / records["first"]["folder"] / "run.json").read_bytes()

    again = run_batch([a for a in args if a != "--quiet"])  # the same command again, with its lines per job
    assert again.exit_code == 0, again.output
    records = {r["source"].split(" --")[0]: r for r in read_records(out)}
    assert all(r["status"] == "finished" for r in records.values())
    assert len(list((out / "runs").iterdir())) == 3  # one folder per job: nothing started twice
    assert (out / records["first"]["folder"] / "run.json").read_bytes() == first_record  # not run again
    assert [len(records[k]["attempts"]) for k in ("first", "second", "third")] == [1, 2, 1]
    stopped, resumed = records["second"]["attempts"]
    assert stopped["status"] == "stopped" and resumed["status"] == "finished"
    # resumed from its checkpoint, not restarted: it went on from a saved step to the end
    assert stopped["to_step"] == killed_at and resumed["from_step"] % every == 0
    assert every <= killed_at <= resumed["from_step"] < iterations and resumed["to_step"] == iterations
    assert f"resuming from step {killed_at}" in again.output
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "finished" and run["steps_done"] == iterations


def test_devices_run_one_worker_each_and_ctrl_c_saves_both(tmp_path, tiny_options):
    path = write_prompts(tmp_path, "one\ntwo\nthree\n")
    out = tmp_path / "batch"
    options = {**tiny_options, "iterations": 100000, "save_every": 2, "cutouts": 2, "out": out}
    args = [sys.executable, "-m", "textsleep", "batch", str(path)]
    for key, value in options.items():
        if key != "device":  # --devices gives each worker its own
            args += [f"--{key.replace('_', '-')}", str(value)]
    proc = subprocess.Popen(
        [*args, "--devices", "cpu,cpu", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ONE_THREAD,
    )

    def both_running():
        try:
            records = read_records(out)
        except (OSError, ValueError):
            return False
        running = [r for r in records if r["status"] == "running" and (out / r["folder"] / "run.json").is_file()]
        return len(running) == 2 and running  # both dreaming, each past its first save

    try:
        running = wait_for(both_running, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert (
        "2 workers: cpu, cpu" in stdout and "resume with: textsleep batch" in stderr and "--devices cpu,cpu" in stderr
    )
    assert len({r["worker"] for r in running}) == 2  # two processes, one job each
    records = {r["source"]: r for r in read_records(out)}
    assert sorted(r["status"] for r in records.values()) == ["interrupted", "interrupted", "pending"]
    for record in records.values():
        if record["status"] == "interrupted":
            run = json.loads((out / record["folder"] / "run.json").read_text())
            assert (
                run["status"] == "interrupted" and run["steps_done"] >= 1 and record["steps_done"] == run["steps_done"]
            )
            assert (out / record["folder"] / "checkpoint.pt").is_file()
