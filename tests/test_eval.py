"""textsleep eval: independent judge scores, reports, comparisons."""

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from textsleep.cli import app
from textsleep.errors import UserError
from textsleep.evaluate import plan_eval
from textsleep.hps import PUBLISHED, STYLES, dream_text
from textsleep.testing import write_aesthetic, write_hps, write_hps_prompts

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
    assert all(-1 <= r["scores"]["clip"] <= 1 and r["seconds"] > 0 for r in data["rows"])
    assert set(data["summary"]["per_prompt"]) == {"a red cube", "a blue sphere"}
    assert data["meta"]["judge"]["model"].endswith("textsleep-tiny-judge.json")
    assert [j["name"] for j in data["meta"]["judges"]] == ["clip"] and data["meta"]["self_judged"] == []
    with open(a.parent / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and -1 <= float(rows[0]["clip"]) <= 1
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


def test_a_judge_that_guides_the_dreams_is_refused_or_marked(tmp_path, tiny, tiny_args, one_line_error):
    """(Once a warning: a picture optimised for a score is no evidence about that score.)"""
    prompts = tmp_path / "eval.txt"
    prompts.write_text("a red cube\n")
    args = ["eval", str(prompts), "--judge-model", tiny["clip_model"], "--judge-pretrained", tiny["clip_pretrained"],
            *tiny_args, "--out", str(tmp_path / "r"), "--iterations", "1"]  # fmt: skip
    result = runner.invoke(app, args)
    one_line_error(result, "--judge clip is also one of the models", "--allow-self-judging")
    assert result.exit_code == 2 and not (tmp_path / "r").exists()
    result = runner.invoke(app, [*args, "--allow-self-judging"])
    assert result.exit_code == 0, result.output
    assert "clip (guided the dream)" in result.output
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["meta"]["self_judged"] == ["clip"] and data["summary"]["self_judged"] == ["clip"]
    with open(tmp_path / "r" / "results.csv") as f:
        assert "clip (guided the dream)" in next(csv.reader(f))
    compared = runner.invoke(app, ["eval", "--compare", str(tmp_path / "r"), "--compare", str(tmp_path / "r")])
    assert compared.exit_code == 0 and "clip guided the dream in A or B: not independent evidence" in compared.output


@pytest.fixture(scope="module")
def judge_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("judges")
    return {"hps-v2.1": write_hps(root / "hps", seed=1), "aesthetic": write_aesthetic(root / "aesthetic", seed=2)}


def test_every_judge_is_a_column_and_compare_shows_each(tmp_path, tiny_args, judge, judge_folders):
    extra = [f"--judge={name}={folder}" for name, folder in judge_folders.items()]
    a, out = _eval(tmp_path, tiny_args, judge, "a", ["--judge", "clip", *extra])
    data = json.loads(a.read_text())
    assert [j["name"] for j in data["meta"]["judges"]] == ["clip", "hps-v2.1", "aesthetic"]
    assert data["meta"]["judges"][1]["scale"] == "100 × cosine"
    assert all(list(r["scores"]) == ["clip", "hps-v2.1", "aesthetic"] for r in data["rows"])
    assert all(-100 <= r["scores"]["hps-v2.1"] <= 100 for r in data["rows"])
    assert set(data["summary"]["means"]) == {"clip", "hps-v2.1", "aesthetic"}
    with open(a.parent / "results.csv") as f:
        header = next(csv.reader(f))
    assert header == ["prompt", "seed", "clip", "hps-v2.1", "aesthetic", "objective_score", "seconds", "run_dir"]
    assert "hps-v2.1" in out.splitlines()[-2] and "aesthetic" in out.splitlines()[-2]
    b, _ = _eval(tmp_path, tiny_args, judge, "b", [*extra, "--lr", "0.5"])  # no clip judge this time
    result = runner.invoke(app, ["eval", "--compare", str(a), "--compare", str(b)])
    assert result.exit_code == 0, result.output
    assert "under hps-v2.1" in result.output and "under aesthetic" in result.output
    assert "under clip" not in result.output  # only the judges both files have


def test_compare_reads_reports_from_before_judges(tmp_path, tiny_args, judge):
    new, _ = _eval(tmp_path, tiny_args, judge, "new")
    old = json.loads(new.read_text())
    old["rows"] = [{**{k: v for k, v in r.items() if k != "scores"}, "judge_score": r["scores"]["clip"]}
                   for r in old["rows"]]  # fmt: skip
    old["summary"]["per_prompt"] = {p: v["clip"] for p, v in old["summary"]["per_prompt"].items()}
    (tmp_path / "old.json").write_text(json.dumps(old))
    result = runner.invoke(app, ["eval", "--compare", str(tmp_path / "old.json"), "--compare", str(new)])
    assert result.exit_code == 0, result.output
    assert "B better on 0 of 2 prompts under clip" in result.output


def test_unknown_judge_is_one_line(tmp_path, one_line_error):
    prompts = tmp_path / "eval.txt"
    prompts.write_text("a red cube\n")
    result = runner.invoke(app, ["eval", str(prompts), "--judge", "hps-v3"])
    one_line_error(result, "--judge 'hps-v3': not a judge; known are clip, hps-v2.1")
    result = runner.invoke(app, ["eval", str(prompts), "--judge", "clip", "--judge", "clip"])
    one_line_error(result, "--judge clip is given twice")


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


# ---------------------------------------------------------------------------------------------- the HPS benchmark
def _benchmark(tmp_path, tiny_args, judge_folders, out="bench", extra=(), env=None):
    prompts = write_hps_prompts(tmp_path / "prompts", per_style=4)
    args = ["eval", "--benchmark", f"hps={prompts}", "--limit", "2", "--judge", f"hps-v2.1={judge_folders['hps-v2.1']}",
            *tiny_args, "--iterations", "2", "--out", str(tmp_path / out), *extra]  # fmt: skip
    return runner.invoke(app, args, env=env)


def _lines(output: str) -> list[str]:
    """The printed lines without the progress bar's redraws (carriage returns and the blanks that clear it)."""
    return [line.split("\r")[-1].lstrip() for line in output.split("\n")]


def test_benchmark_limit_2_dreams_8_pictures_and_prints_the_table(tmp_path, tiny_args, judge_folders):
    extra = ["--judge", f"aesthetic={judge_folders['aesthetic']}"]
    result = _benchmark(tmp_path, tiny_args, judge_folders, extra=extra)
    assert result.exit_code == 0, result.output
    out = tmp_path / "bench"
    runs = sorted((out / "batch" / "runs").iterdir())
    assert len(runs) == 8 and all((r / "image.png").is_file() for r in runs)
    lines = _lines(result.output)
    header = next(i for i, line in enumerate(lines) if line.startswith("HPS v2.1 (100 × cosine)"))
    assert lines[header].split()[-5:] == ["Animation", "Concept-art", "Painting", "Photo", "Averaged"]
    ours = lines[header + 1]
    assert ours.startswith("textsleep (2/style × 1 seed)") and len(ours.split()[-5:]) == 5
    published = {line.split(" (published)")[0]: line.split()[-5:] for line in lines[header + 2 : header + 6]}
    assert published == {name: [f"{v:.2f}" for v in values] for name, values in PUBLISHED["hps-v2.1"].items()}
    assert "VQGAN + CLIP" in published and published["FuseDream"][-1] == "19.42"
    assert any(line.startswith("LAION aesthetic (1–10)") for line in lines)
    note = next(line for line in lines if line.startswith("textsleep: the first 2 prompts of each style"))
    assert "seeds 0: 8 pictures" in note and "iterations 2" in note and "all 800 prompts" in note
    data = json.loads((out / "results.json").read_text())
    assert [(r["style"], r["prompt"]) for r in data["rows"]] == [
        (s, p) for s in STYLES for p in json.loads((tmp_path / "prompts" / f"{s}.json").read_text())[:2]
    ]
    ours_values = [float(v) for v in ours.split()[-5:]]
    table = data["meta"]["tables"]["hps-v2.1"]
    assert [round(table[k], 2) for k in (*STYLES, "averaged")] == ours_values
    anime = [r["scores"]["hps-v2.1"] for r in data["rows"] if r["style"] == "anime"]
    assert table["anime"] == pytest.approx(sum(anime) / 2)
    assert (out / "table.md").read_text().startswith("HPS v2.1 (100 × cosine)")
    with open(out / "results.csv") as f:
        assert next(csv.reader(f))[:5] == ["prompt", "seed", "style", "hps-v2.1", "aesthetic"]
    # a rerun finds every picture done: no dream runs again, and the table is the same
    again = _benchmark(tmp_path, tiny_args, judge_folders, extra=extra)
    assert again.exit_code == 0, again.output
    assert ours in again.output and not any(line.startswith("[") for line in _lines(again.output))
    assert sorted((out / "batch" / "runs").iterdir()) == runs


def test_benchmark_prompts_are_dreamt_as_written(tmp_path):
    assert dream_text("a city of glass: morning") == "a city of glass, morning"
    assert dream_text("an old | new bridge ^ at night") == "an old / new bridge at night"
    assert dream_text("# tags -- --seed 3  ") == "tags - --seed 3"


def test_benchmark_as_shards_of_a_slurm_array(tmp_path, tiny_args, judge_folders):
    first = _benchmark(tmp_path, tiny_args, judge_folders, extra=["--shard", "0/2"])
    assert first.exit_code == 0, first.output
    assert "(shard 0/2: 4 of them here)" in first.output
    assert "4 of 8 pictures done; the table comes when all are" in first.output
    # the second task of an array --array=0-1 finds its shard in Slurm's variables, as textsleep batch does
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "0"}
    second = _benchmark(tmp_path, tiny_args, judge_folders, env=env)
    assert second.exit_code == 0, second.output
    assert "(shard 1/2: 4 of them here)" in second.output and "textsleep (2/style × 1 seed)" in second.output
    assert len(list((tmp_path / "bench" / "batch" / "runs").iterdir())) == 8


def test_benchmark_mistakes_are_one_line(tmp_path, tiny_args, judge_folders, one_line_error):
    result = runner.invoke(app, ["eval", "--benchmark", "drawbench"])
    one_line_error(result, "--benchmark 'drawbench': the benchmark here is hps")
    result = runner.invoke(app, ["eval", "--benchmark", "hps", "--judge", "clip"])
    one_line_error(result, "--benchmark hps needs an HPS judge")
    prompts = write_hps_prompts(tmp_path / "p")
    (prompts / "photo.json").unlink()
    hps_v2 = f"hps-v2={judge_folders['hps-v2.1']}"
    result = runner.invoke(app, ["eval", "--benchmark", f"hps={prompts}", "--judge", hps_v2])
    one_line_error(result, "the folder has no photo.json")
    (prompts / "photo.json").write_text('{"not": "a list"}')
    result = runner.invoke(app, ["eval", "--benchmark", f"hps={prompts}"])
    one_line_error(result, "photo.json: not a JSON list of prompts")
    result = runner.invoke(app, ["eval", "--benchmark", "hps", "--limit", "0"])
    one_line_error(result, "--limit 0: must be a whole number >= 1")
    result = _benchmark(tmp_path, tiny_args, judge_folders, extra=["--allow-self-judging", "--iterations", "x"])
    one_line_error(result, "--iterations")


def test_benchmark_prompts_come_from_the_dataset_in_the_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from textsleep.hps import benchmark_prompts

    snapshot = tmp_path / "hub" / "datasets--zhwang--HPDv2" / "snapshots" / ("1" * 40)
    write_hps_prompts(snapshot / "benchmark", per_style=5)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("1" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    prompts = benchmark_prompts()
    assert list(prompts) == list(STYLES) and all(len(p) == 5 for p in prompts.values())
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    offline = r"zhwang/HPDv2/benchmark/anime.json \(HF_HUB_OFFLINE is set\).*--benchmark hps=DIR"
    with pytest.raises(UserError, match=offline):
        benchmark_prompts()


def test_benchmark_folder_of_other_settings_is_refused_and_a_larger_limit_adds_to_it(tmp_path):
    from textsleep.hps import Benchmark

    prompts = write_hps_prompts(tmp_path / "p", per_style=3)
    first = Benchmark.prepare(out=tmp_path / "b", limit=1, options={"iterations": 3}, source=prompts)
    assert len(first.jobs) == 4 and first.progress() == (0, 4)
    with pytest.raises(UserError, match=r"holds a benchmark dreamt with other settings \(iterations\).*another --out"):
        Benchmark.prepare(out=tmp_path / "b", limit=1, options={"iterations": 4}, source=prompts)
    more = Benchmark.prepare(out=tmp_path / "b", limit=2, options={"iterations": 3}, source=prompts, seeds=[0])
    assert len(more.jobs) == 8 and {j.id for j in first.jobs} <= {j.id for j in more.jobs}
