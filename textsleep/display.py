"""Watch a dream in a Jupyter or Colab notebook: one picture output updated in place, and a progress bar.

:func:`notebook_hook` gives :class:`~textsleep.imagine.Imagine` an ``on_step``
hook when this process is a notebook kernel.  The hook shows two outputs and
updates both in place (IPython display handles), never adding a new one per
update: a progress bar with the step, the speed and the time left, and the
current picture(s) side by side with the step and the CLIP score beside them.

IPython stays optional: it is imported only when a kernel already runs (and so
has imported it).
"""

from __future__ import annotations

import base64
import html
import io
import sys
import time
from typing import Any

from PIL import Image

from .errors import UserError
from .hooks import Hook, Status
from .media import to_pil

__all__ = ["DEFAULT_EVERY", "in_notebook", "notebook_hook", "NotebookDisplay", "DreamView", "ProgressView"]

DEFAULT_EVERY = 50  # steps between picture updates inside a notebook when display_every is not given
_BAR_SECONDS = 0.5  # the progress bar is redrawn at most this often (and at every picture update)


def in_notebook() -> bool:
    """Whether this process is a Jupyter or Colab kernel, found without importing IPython.

    A kernel has imported IPython before running any cell; a terminal IPython
    shell has no ``kernel`` and does not count.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # a half-imported or unusual IPython: not a kernel we can draw in
        return False
    if shell is None:
        return False
    if "google.colab" in sys.modules:
        return True
    return getattr(shell, "kernel", None) is not None or type(shell).__name__ == "ZMQInteractiveShell"


def notebook_hook(every: int | None = None) -> "NotebookDisplay | None":
    """The live-picture hook for ``Imagine(display_every=every)``, or None when there is nothing to show.

    ``every``: steps between picture updates; None means :data:`DEFAULT_EVERY`
    inside a notebook kernel and off elsewhere; 0 turns it off.
    """
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
        raise UserError(f"display_every={every!r}: must be a whole number >= 0 (0 turns the live picture off)")
    if every == 0 or not in_notebook():
        return None
    return NotebookDisplay(every or DEFAULT_EVERY)


# ---------------------------------------------------------------------------------------------- what is shown
def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class DreamView:
    """The current picture(s) with their captions and a headline: PNG, HTML and plain text for IPython."""

    def __init__(self, pictures: list, captions: list[str], headline: str, details: list[str] = ()) -> None:
        self.pictures, self.captions, self.headline, self.details = (
            list(pictures),
            list(captions),
            headline,
            list(details),
        )

    def strip(self):
        """The pictures side by side on white, 4 px apart, as one PIL image."""

        pad = 4
        width = sum(p.width for p in self.pictures) + pad * (len(self.pictures) + 1)
        height = max(p.height for p in self.pictures) + 2 * pad
        strip = Image.new("RGB", (width, height), "white")
        x = pad
        for picture in self.pictures:
            strip.paste(picture, (x, pad))
            x += picture.width + pad
        return strip

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        figures = "".join(
            f'<figure style="margin:0"><img src="data:image/png;base64,{base64.b64encode(_png(p)).decode()}" '
            f'width="{p.width}" height="{p.height}" style="display:block;max-width:100%;height:auto">'
            f'<figcaption style="font:12px monospace">{html.escape(c)}</figcaption></figure>'
            for p, c in zip(self.pictures, self.captions)
        )
        side = "".join(f"<div>{html.escape(d)}</div>" for d in self.details)
        page = (
            '<div style="display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap">'
            f'<div style="display:flex;gap:6px;flex-wrap:wrap">{figures}</div>'
            f'<div style="font:13px monospace;line-height:1.6"><b>{html.escape(self.headline)}</b>{side}</div></div>'
        )
        plain = "\n".join([self.headline, *self.details, *self.captions])
        return {"image/png": _png(self.strip()), "text/html": page, "text/plain": plain}


class ProgressView:
    """A progress bar as HTML (a ``<progress>`` element) and as text."""

    def __init__(self, done: int, total: int, text: str, failed: bool = False) -> None:
        self.done, self.total, self.text, self.failed = done, total, text, failed

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, Any]:
        colour = "color:#b00020;" if self.failed else ""
        page = (
            f'<div style="font:13px monospace;{colour}"><progress value="{self.done}" max="{max(1, self.total)}" '
            f'style="width:24em;vertical-align:middle"></progress> {html.escape(self.text)}</div>'
        )
        width = 30
        filled = round(width * min(self.done, self.total) / max(1, self.total))
        return {"text/html": page, "text/plain": f"[{'#' * filled}{'.' * (width - filled)}] {self.text}"}


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------- the hook
class NotebookDisplay(Hook):
    """A dream's hook: picture(s) every ``every`` steps and a progress bar, both updated in place.

    ``close(imagine, status)`` shows the final picture and, when the run was
    stopped, prints how to resume it.
    """

    def __init__(self, every: int = DEFAULT_EVERY) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.every = every
        self._bar = self._picture = None
        self._first_step: int | None = None
        self._t0 = self._last_bar = 0.0
        self._step = None

    # IPython is imported here only, once a kernel is known to run
    @staticmethod
    def _show(view):
        from IPython.display import display  # noqa: PLC0415 (an optional extra)

        return display(view, display_id=True)

    def __call__(self, imagine, step) -> None:
        now = time.perf_counter()
        self._step = step
        if self._bar is None:
            self._first_step, self._t0 = step.index - 1, now
            self._bar = self._show(self._progress(imagine, step.index))
            self._picture = self._show(self._view(imagine, step.index, step.scores or (step.score,), live=True))
            self._last_bar = now
            return
        picture_due = step.index % self.every == 0
        if picture_due or now - self._last_bar >= _BAR_SECONDS or step.index >= imagine.settings.iterations:
            self._bar.update(self._progress(imagine, step.index))
            self._last_bar = now
        if picture_due:
            self._picture.update(self._view(imagine, step.index, step.scores or (step.score,), live=True))

    def close(self, imagine, status: Status) -> None:
        """The run ended (finished, interrupted or failed): final picture, final bar, and how to resume."""
        done = imagine.dream.step_count if imagine.dream is not None else 0
        if self._bar is not None:
            self._bar.update(self._progress(imagine, done, status))
            if status != Status.FAILED:
                scores = [s for s in imagine.final_scores if s is not None]
                if len(scores) != imagine.settings.num_images and self._step is not None:
                    scores = list(self._step.scores or (self._step.score,))
                self._picture.update(self._view(imagine, done, scores, live=False, status=status))
        if status == Status.INTERRUPTED and imagine.run_dir is not None:
            print(f"stopped at step {done}; saved to {imagine.run_dir}")
            print(
                f"resume with: Imagine(resume={str(imagine.run_dir)!r})()   or   textsleep --resume {imagine.run_dir}"
            )
        self._bar = self._picture = None

    # ------------------------------------------------------------------------------------------ views
    def _progress(self, imagine, done: int, status: Status | None = None) -> ProgressView:
        total = imagine.settings.iterations
        ran = done - (self._first_step or 0)
        elapsed = time.perf_counter() - self._t0
        text = f"{done}/{total} steps"
        if ran > 0 and elapsed > 0:
            per_step = elapsed / ran
            text += f" · {per_step:.2f} s/step"
            if status is None and done < total:
                text += f" · about {_duration(per_step * (total - done))} left"
        if status is not None:
            text = f"{status}: {text}"
        return ProgressView(done, total, text, failed=status == Status.FAILED)

    def _view(self, imagine, done: int, scores, *, live: bool, status: Status | None = None) -> DreamView:
        s = imagine.settings
        images = imagine.dream.render(ema=True)
        pictures = [to_pil(images[b]) for b in range(images.shape[0])]
        scores = list(scores)
        captions = [
            f"seed {seed}" + (f" · score {scores[b]:.3f}" if b < len(scores) else "")
            for b, seed in enumerate(s.seeds[: len(pictures)])
        ]
        mean = sum(scores) / len(scores) if scores else None
        headline = f"step {done}/{s.iterations}" if live else f"{status} at step {done}/{s.iterations}"
        details = [f"prompt: {s.text}" if s.text else f"image prompt: {', '.join(s.images)}"]
        if mean is not None:
            details.append(f"CLIP score {mean:.3f}" + (" (this step's cutouts)" if live else ""))
        if imagine.run_dir is not None:
            details.append(f"folder: {imagine.run_dir}")
        return DreamView(pictures, captions, headline, details)
