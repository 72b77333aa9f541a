"""What the batch tests share: running ``textsleep batch``, prompt files, reading the manifest, bounded waits."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: threads only fight over two cores


def run_batch(args):
    """``textsleep batch ARGS`` in this process."""
    from textsleep.cli import app

    return CliRunner().invoke(app, ["batch", *args], catch_exceptions=False)


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def write_prompts(folder, text, name="prompts.txt"):
    path = Path(folder) / name
    path.write_text(text, encoding="utf-8")
    return path


def read_records(folder):
    """The manifest's records, in file order."""
    lines = (Path(folder) / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def saved_run(out, prefix, steps):
    """The run folder of the job whose folder starts with ``prefix`` once its run.json says ``steps``
    done, else None.
    """
    runs = sorted((Path(out) / "runs").glob(f"{prefix}-*/run.json")) if (Path(out) / "runs").is_dir() else []
    for run in runs:
        try:
            if json.loads(run.read_text())["steps_done"] >= steps:
                return run.parent
        except (ValueError, OSError, KeyError):
            pass  # being replaced right now
    return None


def wait_for(predicate, proc=None, seconds=90, every=0.02):
    """``predicate()``'s first true value, polled for at most ``seconds``; fails if ``proc`` ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the process ended early: {proc.communicate()}")
        time.sleep(every)
    pytest.fail(f"timed out after {seconds} s")
