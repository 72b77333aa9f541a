"""textsleep eval: independent judge scores, reports, comparisons."""

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textsleep.cli import app
from textsleep.errors import UserError
from textsleep.evaluate import plan_eval

runner = CliRunner()


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    from textsleep.testing import write_clip

    config, weights = write_clip(tmp_path_factory.mktemp("judge"), name="textsleep-tiny-judge", seed=5)
    return ["--judge-model", str(config), "--judge-pretrained", str(weights)]


def _eval(tmp_path, tiny_args, judge, name, extra=()):
    prompts = tmp_path / "eval.txt"
    prompts.write_text("# two prompts\na red cube\n\na blue sphere -- --iterations 3\n")
    args = [
        "eval",
        str(prompts),
        *judge,
        "--seeds",
        "0,1",
        *tiny_args,
        "--out",
        str(tmp_path / name),
        "--iterations",
        "2",
        *extra,
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return tmp_path / name / "results.json", result.output


def test_eval_writes_a_report_and_compare_shows_differences(tmp_path, tiny_args, judge):
    a, out = _eval(tmp_path, tiny_args, judge, "a")
    assert "mean judge score" in out
    data = json.loads(a.read_text())
    assert [(r["prompt"], r["seed"]) for r in data["rows"]] == [
        ("a red cube", 0),
        ("a red cube", 1),
        ("a blue sphere", 0),
        ("a blue sphere", 1),
    ]
    assert all(-1 <= r["judge_score"] <= 1 and r["seconds"] > 0 for r in data["rows"])
    assert set(data["summary"]["per_prompt"]) == {"a red cube", "a blue sphere"}
    assert data["meta"]["judge"]["model"].endswith("textsleep-tiny-judge.json")
    with open(a.parent / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (a.parent / "sheet.png").is_file()
    # a line's own options hold for that line, as in a batch file
    steps = {
        (r["prompt"], r["seed"]): json.loads((Path(r["run_dir"]) / "run.json").read_text())["steps_done"]
        for r in data["rows"]
    }
    assert steps == {("a red cube", 0): 2, ("a red cube", 1): 2, ("a blue sphere", 0): 3, ("a blue sphere", 1): 3}

    b, _ = _eval(tmp_path, tiny_args, judge, "b", ["--lr", "0.5"])
    result = runner.invoke(app, ["eval", "--compare", str(a), "--compare", str(b)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("a red cube") for line in lines) and any(
        line.startswith("a blue sphere") for line in lines
    )
    assert "B better on" in result.output


def test_judge_that_is_optimised_against_warns(tmp_path, tiny, tiny_args):
    prompts = tmp_path / "eval.txt"
    prompts.write_text("a red cube\n")
    args = [
        "eval",
        str(prompts),
        "--judge-model",
        tiny["clip_model"],
        "--judge-pretrained",
        tiny["clip_pretrained"],
        *tiny_args,
        "--out",
        str(tmp_path / "r"),
        "--iterations",
        "1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "objective" in result.output


def test_eval_file_without_prompts(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(UserError, match="no prompts"):
        plan_eval(empty, {}, [0])
    result = runner.invoke(app, ["eval", str(empty)])
    assert result.exit_code == 2 and "error:" in result.output and "no prompts" in result.output


def test_eval_reads_lines_as_a_batch_does(tmp_path):
    prompts = tmp_path / "eval.txt"
    prompts.write_text("a red cube -- --seeds 5,6 --lr 0.2\na blue sphere\n")
    jobs = plan_eval(prompts, {"iterations": 7}, [0])
    assert [(j.prompt, j.seed, j.settings["lr"], j.settings["iterations"]) for j in jobs] == [
        ("a red cube", 5, 0.2, 7),
        ("a red cube", 6, 0.2, 7),
        ("a blue sphere", 0, 0.07, 7),
    ]
    prompts.write_text("a red cube\na blue sphere -- --size 300\n")
    with pytest.raises(UserError, match=r"eval.txt:2: --size 300"):
        plan_eval(prompts, {}, [0])
    result = runner.invoke(app, ["eval", str(prompts)])
    assert result.exit_code == 2 and "eval.txt:2: --size 300" in result.output and "Traceback" not in result.output


def test_shipped_eval_list():
    jobs = plan_eval(Path(__file__).parents[1] / "prompts" / "eval.txt", {}, [0])
    assert 20 <= len(jobs) <= 30
