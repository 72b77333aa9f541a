"""What a newcomer meets in a first hour: typos, bare commands, help text, errors worded for where they were made."""

import json
import re
import shlex
import socket
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from textsleep import Imagine, UserError
from textsleep.cli import app
from textsleep.testing import main, write_upscaler
from textsleep.upscale import load_upscaler

runner = CliRunner()


@pytest.mark.parametrize(
    "args, meant, anyway",
    [
        (["doctr"], "textsleep doctor", "textsleep dream doctr"),
        (["upscal", "a.png"], "textsleep upscale", "textsleep dream upscal"),
        (["dowload"], "textsleep download", "textsleep dream dowload"),
    ],
)
def test_a_mistyped_command_names_the_command_meant_and_how_to_dream_the_word(args, meant, anyway, one_line_error):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    one_line_error(result, f"did you mean {meant}?", anyway)
    assert "Usage" not in result.output


def test_a_real_word_near_a_command_name_still_dreams(tiny_args, tmp_path):
    result = runner.invoke(app, ["beach", *tiny_args, "--quiet"])  # one letter from `bench`, but a word
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip().splitlines()[-1]) == tmp_path / "outputs" / "beach" / "image.png"


def test_textsleep_alone_prints_the_usage_without_an_error():
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert result.output.startswith("Usage: textsleep") and "error" not in result.output.lower()
    assert "Commands:" in result.output


def test_the_top_level_help_keeps_each_commands_sentence_whole():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert '(needs pip install "textsleep[upscale]"); prints each file written.' in text
    assert "..." not in text.split("Commands:")[1]  # no sentence cut short


def test_option_types_and_defaults_read_as_words():
    text = " ".join(runner.invoke(app, ["dream", "--help"]).output.split())
    for wrong in ("<list[", "(None)", "[default: ()]", "[default: (", "[default: False]"):
        assert wrong not in text
    assert "--iterations <int> Optimisation steps. [default: 1000]" in text
    assert "--image <str>" in text and "--seed <int>" in text and "[default: random]" in text
    assert "Usage: textsleep dream [OPTIONS] [TEXT]" in text


def test_errors_name_the_keyword_in_python_and_the_flag_on_the_command_line(one_line_error):
    with pytest.raises(UserError) as err:
        Imagine("a cat", size=100)
    assert str(err.value) == "size=100: allowed sizes are 128, 256, 512"
    result = runner.invoke(app, ["dream", "a cat", "--size", "100"])
    assert result.exit_code == 2
    assert one_line_error(result) == "error: --size 100: allowed sizes are 128, 256, 512"


def test_every_printed_picture_path_exists(tiny_args, tmp_path):
    args = ["dream", "two more", *tiny_args, "--seed", "4", "--num-images", "2"]
    quiet = runner.invoke(app, [*args, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    paths = [Path(line) for line in quiet.output.strip().splitlines()]
    run = tmp_path / "outputs" / "two_more"
    assert paths == [run / "1-seed4" / "image.png", run / "2-seed5" / "image.png"] and all(p.is_file() for p in paths)
    loud = runner.invoke(app, [*args, "--keep", "best"])
    assert loud.exit_code == 0, loud.output
    saved = re.findall(r"saved (\S+) \(CLIP score \d\.\d{3}\)", loud.output)
    assert len(saved) == 1, loud.output
    kept = Path(saved[0])
    assert kept.is_file() and kept.parent.parent == tmp_path / "outputs" / "two_more-2"


def test_the_model_folder_decides_the_size(tiny_args, tmp_path, one_line_error):
    result = runner.invoke(app, ["a cat", *tiny_args, "--quiet"])  # a 128 px BigGAN folder, no --size
    assert result.exit_code == 0, result.output
    run = Path(result.output.strip().splitlines()[-1]).parent
    assert json.loads((run / "run.json").read_text())["settings"]["size"] == 128
    with Image.open(run / "image.png") as im:
        assert im.size == (128, 128)
    refused = runner.invoke(app, ["a cat", *tiny_args, "--size", "256"])
    one_line_error(refused, "--size 256: the BigGAN in", "makes 128 px pictures; give 128 or leave it out")
    assert len(list((tmp_path / "outputs").iterdir())) == 1  # nothing dreamt


@pytest.mark.dream
def test_the_try_it_command_is_a_short_dream_that_shows_its_steps(tmp_path, capsys, monkeypatch):
    main([str(tmp_path / "weights")])
    line = capsys.readouterr().out.splitlines()[0]
    args = shlex.split(line)
    assert args[0] == "textsleep" and "--iterations" in args and int(args[args.index("--iterations") + 1]) <= 50
    assert int(args[args.index("--cutouts") + 1]) <= 16
    result = runner.invoke(app, [*args[1:], "--quiet"])
    assert result.exit_code == 0, result.output
    run = Path(result.output.strip().splitlines()[-1]).parent
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["settings"]["size"] == 128
    assert len(list((run / "progress").glob("*.png"))) >= 8  # the picture as it changes, every few steps


def test_eval_offline_names_the_judges_own_option_and_how_to_fetch_its_model(tiny_args, tmp_path, one_line_error):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cube\n")
    result = runner.invoke(app, ["eval", str(prompts), *tiny_args, "--iterations", "1"])  # HF_HUB_OFFLINE=1 here
    line = one_line_error(result, "ViT-L-14", "--judge-pretrained FILE")
    assert "textsleep download --clip-model ViT-L-14 --clip-pretrained openai --no-biggan" in line
    assert "--clip-pretrained FILE" not in line
    download = " ".join(runner.invoke(app, ["download", "--help"]).output.split())
    assert "--no-biggan" in download and "--clip-pretrained" in download and "--clip-model" in download


def _readme_commands() -> list[tuple[str, list[str]]]:
    """Each ``textsleep ...`` line of README's code blocks: its command and the options it uses."""
    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
    found = []
    for line in (line for block in blocks for line in block.splitlines()):
        line = re.sub(r"\s+#\s.*$", "", line.strip()).removeprefix(".venv/bin/")
        words = line.split()
        if len(words) < 2 or words[0] != "textsleep" or words[1].endswith(":") or words[1].startswith("("):
            continue
        command = words[1] if words[1] in app_commands() else "dream"
        found.append((command, re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line)))
    return found


def app_commands() -> set[str]:
    from textsleep.cli import app as typer_app

    return {info.name or info.callback.__name__ for info in typer_app.registered_commands}


def test_every_option_readme_uses_is_one_its_command_has():
    commands = _readme_commands()
    assert len(commands) > 30 and {c for c, _ in commands} >= {"dream", "eval", "upscale", "batch", "download", "ui"}
    helps = {"dream": runner.invoke(app, ["dream", "--help"], terminal_width=200).output}
    for command, flags in commands:
        if command not in helps:
            helps[command] = runner.invoke(app, [command, "--help"], terminal_width=200).output
        known = helps[command] + (
            helps["dream"]
            if re.search(r"dream option|option of textsleep dream", " ".join(helps[command].split()))
            else ""
        )
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", known)]
        assert not missing, f"README: textsleep {command} ... {missing} (not in textsleep {command} --help)"


def test_the_notebook_says_how_to_run_it_headless():
    notebook = json.loads((Path(__file__).parents[1] / "notebooks" / "textsleep.ipynb").read_text())
    first = "".join(notebook["cells"][0]["source"])
    assert "jupyter execute notebooks/textsleep.ipynb" in first
    code = "".join(notebook["cells"][1]["source"])
    for variable in re.findall(r"TEXTSLEEP_[A-Z_]+", first):  # each variable it names is one the notebook reads
        assert variable in code, variable


def test_readme_is_in_the_order_a_newcomer_reads_it():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    headings = re.findall(r"(?m)^## (.+)$", re.sub(r"(?ms)^```.*?^```", "", text))
    wanted = [
        "Set up",
        "Trying it without the real weights",
        "Dreaming",
        "When things go wrong",
        "Better pictures for the same work",
        "Overnight batches",
        "Exploring BigGAN's latent space",
        "Larger pictures",
        "From Python",
        "In a notebook",
        "In the browser",
        "Speed",
        "How it works",
        "Development",
    ]
    assert [h for h in headings if h in wanted] == wanted and headings[-1] == "Development"
    assert "`latents.pt`" in text and "needs CLIP too" in text
    assert ". .venv/bin/activate" in text and "--index-url https://download.pytorch.org/whl/cpu" in text
    assert 'python -m pytest -q -m "not dream"' in text


@pytest.mark.dream
def test_a_dream_upscales_with_a_local_pth_and_run_json_says_what_was_written(tiny_args, tmp_path):
    pytest.importorskip("spandrel")
    net = write_upscaler(tmp_path / "tiny_x4.pth")
    result = runner.invoke(app, ["a cat", *tiny_args, "--upscale", "4", "--upscaler", str(net), "--quiet"])
    assert result.exit_code == 0, result.output
    run = Path(result.output.strip().splitlines()[-1]).parent
    with Image.open(run / "image.png") as small, Image.open(run / "image_x4.png") as big:
        assert big.size == (small.width * 4, small.height * 4)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["settings"]["upscaler"] == str(net)
    assert record["upscaled"] == {"scale": 4, "upscaler": "tiny_x4.pth", "files": ["image_x4.png"], "error": None}


@pytest.mark.dream
def test_a_failed_upscale_keeps_the_dream_finished_and_run_json_says_why(tiny_args, tmp_path, one_line_error):
    pytest.importorskip("spandrel")
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a network")  # a file: the check before dreaming passes; loading it at the end fails
    result = runner.invoke(app, ["a cat", *tiny_args, "--upscale", "4", "--upscaler", str(broken)])
    run = tmp_path / "outputs" / "a_cat"
    one_line_error(result, f"the dream finished ({run})", "not an upscaler network", f"textsleep upscale {run}")
    assert result.exit_code == 2 and (run / "image.png").is_file() and not (run / "image_x4.png").exists()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished" and record["error"] is None
    upscaled = record["upscaled"]
    assert upscaled["upscaler"] == "broken.pth" and upscaled["files"] == []
    assert "not an upscaler network spandrel can load" in upscaled["error"] and "\n" not in upscaled["error"]


def test_an_upscaler_without_upscale_and_a_missing_one_fail_before_dreaming(tiny_args, tmp_path, one_line_error):
    alone = runner.invoke(app, ["a cat", *tiny_args, "--upscaler", "RealESRGAN_x4plus"])
    one_line_error(alone, "--upscaler 'RealESRGAN_x4plus': an upscaler without upscaling")
    missing = runner.invoke(app, ["a cat", *tiny_args, "--upscale", "4", "--upscaler", str(tmp_path / "no.pth")])
    one_line_error(missing, "is neither a known upscaler")
    assert not (tmp_path / "outputs").exists()  # nothing dreamt


def test_the_testing_writer_makes_an_upscaler_spandrel_loads_and_prints_how_to_use_it(tmp_path, capsys):
    pytest.importorskip("spandrel")
    main([str(tmp_path / "weights")])
    lines = capsys.readouterr().out.splitlines()
    line = next(line for line in lines if line.startswith("textsleep upscale "))
    args = shlex.split(line)
    assert load_upscaler(args[args.index("--upscaler") + 1], scale=4).scale == 4
    picture = Path(args[2])  # where the printed dream leaves its picture; a stand-in here
    picture.parent.mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 40, 40)).save(picture)
    result = runner.invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    with Image.open(picture.with_name("image_x4.png")) as big:
        assert big.size == (64, 64)
    assert any("--upscale 4 --upscaler" in line for line in lines)


@pytest.mark.dream
def test_a_batch_with_bad_lines_counts_them_the_same_everywhere_and_quiet_prints_no_job_lines(tiny_args, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cube\nblue -- --size 100\na green cube\nfoo -- --lr -1\n")
    quick = [*tiny_args, "--iterations", "2", "--save-every", "2", "--cutouts", "2"]
    out = tmp_path / "batch"
    first = runner.invoke(app, ["batch", str(prompts), *quick, "--out", str(out)])
    assert first.exit_code == 1, first.output  # two lines failed
    lines = first.stdout.splitlines()
    assert lines[0].startswith(f"batch {out}: 4 jobs (2 of them bad lines: recorded as failed, not dreamt);")
    assert [line.split()[0] for line in lines[1:5]] == ["[3/4]", "[3/4]", "[4/4]", "[4/4]"]  # bad lines settled first
    assert lines[5].startswith("4 jobs: 2 finished, 2 failed (2 of them bad lines), 0 running, 0 waiting")
    again = runner.invoke(app, ["batch", str(prompts), *quick, "--out", str(out)])
    assert "skipped 2 finished and 2 failed job(s) (2 of them bad lines: fix them to dream them)" in again.stdout
    quiet = runner.invoke(app, ["batch", str(prompts), *quick, "--out", str(tmp_path / "quiet"), "--quiet"])
    assert quiet.exit_code == 1, quiet.output
    assert not [line for line in quiet.stdout.splitlines() if line.startswith("[")], quiet.stdout
    assert [line.split(":")[0] for line in quiet.stdout.splitlines()][:2] == [f"batch {tmp_path / 'quiet'}", "4 jobs"]
    assert "dreaming" not in quiet.stderr and quiet.stderr.count("warning: ") == 2  # the bad lines, still named


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_first_dream_offline_names_clip_and_biggan_at_once(tmp_path, monkeypatch, one_line_error):
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{_closed_port()}")  # no network; HF_HUB_OFFLINE=1
    result = runner.invoke(app, ["a cat", "--iterations", "1", "--device", "cpu", "--out", str(tmp_path / "out")])
    line = one_line_error(
        result,
        "both models are missing, CLIP ViT-B-32 'openai' and BigGAN biggan-deep-512",
        "`textsleep download --size 512 --clip-model ViT-B-32 --clip-pretrained openai` fetches both",
    )
    assert "CLIP: cannot get CLIP ViT-B-32 weights 'openai'" in line and "BigGAN: cannot download" in line
    assert result.exit_code == 2


def test_download_offline_suggests_only_what_download_takes(tmp_path, monkeypatch, one_line_error):
    monkeypatch.setenv("TEXTSLEEP_BIGGAN_URL", f"http://127.0.0.1:{_closed_port()}")
    result = runner.invoke(app, ["download", "--no-clip", "--size", "128"])
    line = one_line_error(result, "set TEXTSLEEP_BIGGAN_URL to a mirror", "`textsleep download --size 128`")
    for_download = line.split("; a dream also takes")[0]
    options = " ".join(runner.invoke(app, ["download", "--help"], terminal_width=200).output.split())
    assert all(flag in options for flag in re.findall(r"--[a-z][a-z-]*", for_download)), for_download
    assert "--biggan DIR" not in for_download
