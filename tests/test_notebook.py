"""notebooks/textsleep.ipynb executed top to bottom by a real kernel, on tiny random models."""

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "textsleep.ipynb"


class _Recording(nbclient.NotebookClient):
    """A notebook client that also keeps the kind of every message each cell sent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages: dict[int, list[dict]] = {}

    def process_message(self, msg, cell, cell_index):
        self.messages.setdefault(cell_index, []).append(msg)
        return super().process_message(msg, cell, cell_index)


def _cell(nb, text: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in c.source)


def _pictures(outputs, kind="image/png") -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(o["data"][kind]))) for o in outputs if kind in o.get("data", {})]


def test_the_notebook_runs_top_to_bottom_with_a_live_picture(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTSLEEP_BIGGAN", tiny["biggan"])
    monkeypatch.setenv("TEXTSLEEP_CLIP_MODEL", tiny["clip_model"])
    monkeypatch.setenv("TEXTSLEEP_CLIP_PRETRAINED", tiny["clip_pretrained"])
    monkeypatch.setenv("TEXTSLEEP_OPTIONS", "--iterations 6 --cutouts 4 --device cpu --precision fp32 --save-every 3")
    monkeypatch.setenv("TEXTSLEEP_OUT", str(tmp_path / "outputs"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("# @param" in c.source for c in nb.cells)  # Colab form fields
    client = _Recording(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell's traceback, if any cell fails

    # the dream: two outputs for the whole run (progress bar, picture), each updated in place
    dream = _cell(nb, "imagine = Imagine(")
    outputs = [
        o for o in nb.cells[dream].outputs if o["output_type"] == "display_data"
    ]  # (and maybe a library's warning)
    assert len(outputs) == 2, nb.cells[dream].outputs
    kinds = [m["msg_type"] for m in client.messages[dream]]
    assert kinds.count("display_data") == 2
    assert kinds.count("update_display_data") >= 6  # the picture at steps 1..6 and at the end, the bar as well
    updates = [m["content"] for m in client.messages[dream] if m["msg_type"] == "update_display_data"]
    assert all(u["transient"]["display_id"] for u in updates)
    shown = [u for u in updates if "image/png" in u["data"]]
    assert len(shown) >= 6
    assert len({u["data"]["image/png"] for u in shown}) >= 3  # the picture changes as it dreams
    bar, picture = outputs
    assert "<progress" in bar["data"]["text/html"] and "finished: 6/6 steps" in bar["data"]["text/plain"]
    assert picture["data"]["text/plain"].startswith("finished at step 6/6")
    assert _pictures([picture])[0].size == (128 + 8, 128 + 8)

    # the best picture and the run's files
    files = nb.cells[_cell(nb, "best CLIP score")].outputs
    text = "".join(o.get("text", "") for o in files if o["output_type"] == "stream")
    assert "finished, 6 steps, seed 0" in text and "checkpoint.pt" in text and "run.json" in text
    assert _pictures(files)[0].size == (128, 128)

    # continued for more steps, in the same folder
    run = next((tmp_path / "outputs").glob("upside_down_tree*/run.json"))
    record = json.loads(run.read_text())
    assert record["status"] == "finished" and record["steps_done"] == 9

    # the batch: both prompts dreamt, shown as one contact sheet
    batch = tmp_path / "outputs" / "batch-notebook"
    manifest = [json.loads(line) for line in (batch / "manifest.jsonl").read_text().splitlines() if line.strip()]
    assert sorted(r["status"] for r in manifest) == ["finished", "finished"]
    assert len(_pictures(nb.cells[_cell(nb, "contact_sheet(")].outputs)) == 1

    # the interpolation GIF, shown inline
    gif = nb.cells[_cell(nb, '"interpolate"')].outputs
    assert len(_pictures(gif, "image/gif")) == 1
    with Image.open(tmp_path / "outputs" / "morph.gif") as animation:
        assert animation.n_frames == 12
