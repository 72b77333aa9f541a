"""The notebook hook: kernel detection without importing IPython, and in-place updates through a fake kernel."""

import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

from textsleep import display
from textsleep.errors import UserError
from textsleep.imagine import Imagine


class _Handle:
    def __init__(self, obj):
        self.shown = [obj]

    def update(self, obj):
        self.shown.append(obj)


class _Kernel:
    """A stand-in for IPython as a kernel has it: get_ipython() and IPython.display.display."""

    def __init__(self, shell_name="ZMQInteractiveShell", kernel=True):
        self.handles = []
        shell_type = type(shell_name, (), {})
        self.shell = shell_type()
        if kernel:
            self.shell.kernel = object()
        self.ipython = types.ModuleType("IPython")
        self.ipython.get_ipython = lambda: self.shell
        self.display = types.ModuleType("IPython.display")
        self.display.display = self._display
        self.ipython.display = self.display

    def _display(self, obj, display_id=None):
        assert display_id is True  # always a handle, so that later pictures replace this output
        handle = _Handle(obj)
        self.handles.append(handle)
        return handle

    def install(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "IPython", self.ipython)
        monkeypatch.setitem(sys.modules, "IPython.display", self.display)
        return self


def test_outside_a_kernel_nothing_is_shown_and_ipython_is_not_imported():
    code = (
        "import sys\n"
        "from textsleep.display import notebook_hook, in_notebook\n"
        "assert notebook_hook(None) is None and notebook_hook(10) is None and not in_notebook()\n"
        "print('IPython' in sys.modules)\n"
    )
    env_path = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": ""},
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_detects_jupyter_and_colab_kernels_not_a_terminal_shell(monkeypatch):
    kernel = _Kernel().install(monkeypatch)
    assert display.in_notebook()
    hook = display.notebook_hook(None)
    assert isinstance(hook, display.NotebookDisplay) and hook.every == display.DEFAULT_EVERY
    assert display.notebook_hook(7).every == 7
    assert display.notebook_hook(0) is None

    kernel.shell = type("TerminalInteractiveShell", (), {})()  # plain `ipython` in a terminal
    assert not display.in_notebook() and display.notebook_hook(None) is None
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert display.in_notebook()  # Colab's own shell class
    kernel.shell = None  # IPython imported by a library, no shell running
    assert not display.in_notebook()


@pytest.mark.parametrize("bad", [-1, 2.5, "50", True])
def test_bad_display_every_is_a_one_line_error(bad):
    with pytest.raises(UserError, match=r"display_every=.*whole number >= 0"):
        display.notebook_hook(bad)


def test_one_picture_output_updated_in_place_every_n_steps(monkeypatch, tiny_options):
    kernel = _Kernel().install(monkeypatch)
    run_dir = Imagine("a red cube", **{**tiny_options, "iterations": 6}, display_every=2)()
    bar, picture = kernel.handles  # two outputs for the whole run, however many steps
    views = picture.shown
    # shown at step 1, updated at steps 2, 4, 6, and once more when the run ends
    assert [v.headline for v in views] == ["step 1/6", "step 2/6", "step 4/6", "step 6/6", "finished at step 6/6"]
    for view in views:
        bundle = view._repr_mimebundle_()
        png = Image.open(io.BytesIO(bundle["image/png"]))
        assert png.size == (128 + 8, 128 + 8)
        assert "data:image/png;base64," in bundle["text/html"] and "score" in bundle["text/html"]
    assert "prompt: a red cube" in views[0].details and f"folder: {run_dir}" in views[-1].details
    assert views[1].strip().tobytes() != views[-1].strip().tobytes()  # the picture moves as it dreams
    with Image.open(run_dir / "image.png") as saved:  # the last picture shown is the one saved
        assert views[-1].pictures[0].tobytes() == saved.convert("RGB").tobytes()
    texts = [b.text for b in bar.shown]
    assert texts[0].startswith("1/6 steps") and texts[-1].startswith("finished: 6/6 steps")
    assert bar.shown[-1]._repr_mimebundle_()["text/html"].count("<progress") == 1


def test_quiet_or_zero_shows_nothing(monkeypatch, tiny_options):
    kernel = _Kernel().install(monkeypatch)
    Imagine("a red cube", **{**tiny_options, "iterations": 2}, display_every=0)()
    Imagine("a red cube", **{**tiny_options, "iterations": 2}, quiet=True)()
    assert kernel.handles == []
    Imagine("a red cube", **{**tiny_options, "iterations": 2})()  # the default inside a kernel: shown
    assert len(kernel.handles) == 2


def test_several_pictures_side_by_side_each_with_its_score(monkeypatch, tiny_options):
    kernel = _Kernel().install(monkeypatch)
    Imagine("a red cube", **{**tiny_options, "iterations": 2, "num_images": 3}, display_every=2)()
    view = kernel.handles[1].shown[-1]
    assert len(view.pictures) == 3 and view.strip().size == (3 * 128 + 16, 128 + 8)
    assert [c.split(" · ")[0] for c in view.captions] == ["seed 7", "seed 8", "seed 9"]
    assert all("score" in c for c in view.captions)
    assert view._repr_mimebundle_()["text/html"].count("<img") == 3


class _Stop:
    """A hook that stops the dream at a step, as the kernel's interrupt or a Stop button would."""

    def __init__(self, at, interrupt=False):
        self.at, self.interrupt = at, interrupt

    def __call__(self, imagine, step):
        if step.index == self.at:
            if self.interrupt:
                raise KeyboardInterrupt
            imagine.stop()


@pytest.mark.parametrize("interrupt", [True, False], ids=["kernel-interrupt", "stop"])
def test_a_stopped_run_closes_the_display_and_says_how_to_resume(monkeypatch, tiny_options, capsys, interrupt):
    kernel = _Kernel().install(monkeypatch)
    imagine = Imagine("a red cube", **tiny_options, on_step=_Stop(2, interrupt), display_every=50)
    if interrupt:
        with pytest.raises(KeyboardInterrupt):
            imagine()
    else:
        imagine()
    out = capsys.readouterr().out
    assert f"stopped at step 2; saved to {imagine.run_dir}" in out
    assert f"Imagine(resume={str(imagine.run_dir)!r})" in out
    bar, picture = kernel.handles
    assert bar.shown[-1].text.startswith("interrupted: 2/4 steps")
    assert picture.shown[-1].headline == "interrupted at step 2/4"
    assert (imagine.run_dir / "checkpoint.pt").is_file()
    Imagine(resume=imagine.run_dir, display_every=0)()  # and it resumes
    assert json.loads((imagine.run_dir / "run.json").read_text())["steps_done"] == 4


class _Fail:
    def __call__(self, imagine, step):
        if step.index == 2:
            raise RuntimeError("out of memory")


def test_a_failed_run_leaves_the_last_picture_and_marks_the_bar(monkeypatch, tiny_options):
    kernel = _Kernel().install(monkeypatch)
    with pytest.raises(RuntimeError):
        Imagine("a red cube", **tiny_options, on_step=_Fail(), display_every=50)()
    bar, picture = kernel.handles
    assert bar.shown[-1].failed and "color:#b00020" in bar.shown[-1]._repr_mimebundle_()["text/html"]
    assert len(picture.shown) == 1  # no render after a failure
