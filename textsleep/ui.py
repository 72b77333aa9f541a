"""The web page of ``textsleep ui``: dream from a browser, watch the picture change, stop, look back, continue.

:func:`build_app` lays the page out with Gradio (``pip install "textsleep[ui]"``)
around a :class:`~textsleep.studio.Studio`, the page's engine, and :func:`serve`
starts it.

What the page exposes: anyone who can reach its port can dream, see every run
under ``--out`` (pictures, prompts, settings) and its batches, and stop dreams.
So it binds loopback unless told otherwise, never shares itself publicly
(whatever ``GRADIO_SHARE`` or a notebook host says), can ask for a password
(:func:`~textsleep.page_guard.read_auth`), and serves only the pictures it wrote: they go to Gradio
as copies kept in the page's own temporary folder, removed when it stops, and
every ``file=`` request for anything else, uploads and proxying are refused.
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .page_guard import OnlyOwnFiles, addresses, gradio_temp, is_loopback
from .page_lists import batch_summary, caption, list_batches, picture_copy, runs_on_disk, table_cell
from .settings import AUGMENTS, SIZES
from .studio import Studio

__all__ = ["Studio", "require_gradio", "build_app", "serve", "Page"]

_MAX_UPLOAD = "1kb"  # the page takes no files; Gradio's upload route gets this much at most (and is refused)


def require_gradio():
    """Gradio, or a one-line error naming the extra that installs it."""
    try:
        import gradio  # noqa: PLC0415 (an optional extra)
    except ModuleNotFoundError:
        raise UserError('the web page needs gradio: pip install "textsleep[ui]"') from None
    return gradio


# ---------------------------------------------------------------------------------------------- the engine
def _fields(gr, d) -> dict[str, Any]:
    """One input per dream option on the page, its value the default given on the command line (the rest under
    Advanced).
    """

    fields = {
        "size": gr.Dropdown(
            list(SIZES), value=d.size, label="Size", info="BigGAN-deep model (ignored when --biggan names a folder)"
        ),
        "iterations": gr.Number(d.iterations, precision=0, label="Iterations"),
        "seed": gr.Number(d.seed, precision=0, label="Seed", info="empty: a random one (always recorded)"),
        "cutouts": gr.Number(d.cutouts, precision=0, label="Cutouts"),
        "truncation": gr.Slider(0.02, 1.0, value=d.truncation, step=0.01, label="Truncation"),
    }
    with gr.Accordion("Advanced", open=False):
        fields.update(
            lr=gr.Number(d.lr, label="Learning rate"),
            num_images=gr.Number(d.num_images, precision=0, label="Pictures at once"),
            init_candidates=gr.Number(d.init_candidates, precision=0, label="Start from the best of K"),
            init_class=gr.Textbox(d.init_class or "", label="Start class", info="index, name or '971) bubble'"),
            negatives=gr.Textbox(
                " | ".join(d.negatives), label="Negative prompts", info="texts to move away from, separated by |"
            ),
            augment=gr.Dropdown(list(AUGMENTS), value=d.augment, label="Augment"),
            max_classes=gr.Number(d.max_classes, precision=0, label="Max classes", info="empty: off"),
            ema_decay=gr.Number(d.ema_decay, label="EMA decay"),
            save_every=gr.Number(d.save_every, precision=0, label="Save every N steps"),
        )
    return fields


def _options(values: dict[str, Any]) -> dict[str, Any]:
    """The page's values as DreamSettings fields (whole numbers as int; empty means the default or off)."""
    options = {}
    for name, value in values.items():
        if isinstance(value, float) and value.is_integer() and name not in ("lr", "truncation", "ema_decay"):
            value = int(value)
        if name == "negatives":
            value = tuple(t.strip() for t in (value or "").split("|") if t.strip())
        elif name == "init_class":
            value = (value or "").strip() or None
        if value is None and name not in ("seed", "max_classes", "init_class"):
            continue
        options[name] = value
    return options


def build_app(studio: Studio, *, title: str = "textsleep"):
    """The page as a Gradio Blocks app (not yet launched); every dream goes through ``studio``."""
    gr = require_gradio()
    d = studio.defaults
    with gr.Blocks(
        title=title, analytics_enabled=False, delete_cache=(600, 3600)
    ) as app:  # live pictures: kept an hour
        gr.Markdown(f"# {title}\nText to image with BigGAN guided by CLIP. Runs are saved under `{studio.out}`.")
        with gr.Row():
            with gr.Column(scale=1):
                prompt = gr.Textbox(d.text, label="Prompt", placeholder="upside down tree", lines=2, elem_id="prompt")
                with gr.Row():
                    dream_button = gr.Button("Dream", variant="primary", elem_id="dream")
                    stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
                fields = _fields(gr, d)
            with gr.Column(scale=2):
                picture = gr.Image(
                    label="Picture", type="pil", format="png", interactive=False, height=520, elem_id="picture"
                )
                status = gr.Markdown(elem_id="status")
        with gr.Tab("Runs"):
            refresh = gr.Button("Refresh", size="sm")
            damaged = gr.Markdown(elem_id="run-problems")
            gallery = gr.Gallery(
                label="Runs, newest first",
                columns=6,
                fit_columns=False,
                object_fit="contain",
                height="auto",
                allow_preview=False,
                elem_id="runs",
            )
            shown = gr.State([])
            chosen = gr.State(None)
            with gr.Row():
                run_info = gr.Markdown("Pick a run to see its settings and continue it.", elem_id="run-info")
                with gr.Column():
                    more = gr.Number(None, precision=0, label="Continue to step", elem_id="continue-to")
                    continue_button = gr.Button("Continue", elem_id="continue")
            run_settings = gr.JSON(label="Settings", elem_id="run-settings")
        with gr.Tab("Batch"):
            batch_folder = gr.Dropdown(list_batches(studio.out), label="Batch folder", allow_custom_value=False)
            batch_button = gr.Button("Show progress", size="sm")
            batch_view = gr.Markdown()

        def stream(updates):
            for update in updates:
                out = {status: update.text}
                if update.picture is not None:
                    out[picture] = update.picture
                yield out

        def dream(data, request):  # data: {component: value} (the inputs are given as a set)
            options = _options({name: data[field] for name, field in fields.items()})
            yield from stream(studio.dream(data[prompt], options, session=request.session_hash or ""))

        def resume(folder, iterations, request):
            if not folder:
                yield {status: "error: pick a run under Runs first"}
                return
            options = {"iterations": int(iterations)} if iterations else {}
            yield from stream(studio.dream(options=options, resume=folder, session=request.session_hash or ""))

        def expect(request):
            studio.expect(request.session_hash or "")

        def stop(request):
            return studio.stop(request.session_hash or "")

        def runs():  # copies of the pictures, made here: never a path the page hands to Gradio
            found, bad = runs_on_disk(studio.out)
            shown = [(r, copy) for r in found if r["picture"] and (copy := picture_copy(r["picture"], studio.out))]
            note = "".join(f"\n- `{table_cell(folder.name)}` skipped: {table_cell(why)}" for folder, why in bad)
            return (
                [(copy, caption(r)) for r, copy in shown],
                [str(r["folder"]) for r, _ in shown],
                f"**Damaged runs, not listed:**{note}" if note else "",
            )

        def choose(folders, evt):
            if not isinstance(evt.index, int) or not 0 <= evt.index < len(folders):
                return None, "pick a run from the list", None, None
            folder = Path(folders[evt.index])
            run = next((r for r in runs_on_disk(studio.out)[0] if r["folder"] == folder), None)
            if run is None:
                return None, f"{folder}: no longer a run folder", None, None
            again = run["iterations"] if run["steps_done"] < run["iterations"] else run["steps_done"] + d.iterations
            return (
                str(folder),
                f"**{table_cell(caption(run))}**\n\n`{folder}` · {run['status']} · step "
                f"{run['steps_done']}/{run['iterations']}",
                run["settings"],
                again,
            )

        def show_batch(folder):  # only a folder the page lists, whatever the request says
            if folder not in list_batches(studio.out):
                return "error: pick one of the batch folders listed"
            try:
                return batch_summary(folder)
            except UserError as err:
                return f"error: {err}"

        for fn in (
            dream,
            resume,
            expect,
            stop,
            choose,
        ):  # what Gradio passes in, by annotation (gradio is imported late)
            special = {"request": gr.Request, "evt": gr.SelectData}
            fn.__annotations__.update(
                {name: special[name] for name in inspect.signature(fn).parameters if name in special}
            )

        def queued(trigger, fn, inputs):  # wait for the one dream slot (the page shows the place in the queue)
            trigger(expect, queue=False).then(
                fn, inputs, [picture, status], concurrency_limit=1, concurrency_id="dream"
            ).then(runs, None, [gallery, shown, damaged])

        queued(dream_button.click, dream, {prompt, *fields.values()})
        queued(prompt.submit, dream, {prompt, *fields.values()})
        queued(continue_button.click, resume, [chosen, more])
        stop_button.click(stop, None, status, queue=False)
        refresh.click(runs, None, [gallery, shown, damaged], queue=False)
        gallery.select(choose, shown, [chosen, run_info, run_settings, more], queue=False)
        batch_button.click(show_batch, batch_folder, batch_view, queue=False)
        app.load(runs, None, [gallery, shown, damaged], queue=False)
        app.load(lambda: gr.Dropdown(choices=list_batches(studio.out)), None, batch_folder, queue=False)
    return app


@dataclass
class Page:
    """A running page: its address, the Gradio app, the studio behind it and the folder of its temporary pictures."""

    url: str
    app: Any
    studio: Studio
    temp: Path | None = None
    host: str = "127.0.0.1"
    urls: list[str] = field(default_factory=list)  # every address it answers on (a non-loopback host's too)

    def wait(self) -> None:
        """Serve until Ctrl-C; then stop a running dream (it saves), close, and let the KeyboardInterrupt go on."""
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.close()
            raise

    def close(self) -> None:
        """Stop a running dream (it saves), stop serving, and remove the pictures handed to browsers."""
        try:
            self.studio.shutdown()
            self.app.close()
        finally:
            if self.temp is not None:
                shutil.rmtree(self.temp, ignore_errors=True)


def serve(
    defaults: dict[str, Any] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    models=None,
    auth: list[tuple[str, str]] | None = None,
) -> Page:
    """Start the page on ``host:port`` (the first free port from 7860 when None) and return it, serving.

    It is never shared publicly; ``auth`` (USER, PASS) pairs ask for a login first
    (:func:`~textsleep.page_guard.read_auth`).
    """
    gr = require_gradio()
    from starlette.middleware import Middleware  # noqa: PLC0415 (an optional extra, with gradio)

    studio = Studio(defaults, models=models)
    # the page's own folder inside Gradio's (whose checks at run time read GRADIO_TEMP_DIR as it is)
    gradio_dir = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    gradio_dir.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix="textsleep-page-", dir=gradio_dir)).resolve()
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])  # no web fonts
    try:
        with gradio_temp(temp):
            app = build_app(studio)
            app.queue(default_concurrency_limit=1)
            app.launch(
                server_name=host,
                server_port=port,
                share=False,  # never a public link, whatever GRADIO_SHARE or a notebook host says
                auth=auth,
                mcp_server=False,
                run_history=False,
                max_file_size=_MAX_UPLOAD,
                app_kwargs={"middleware": [Middleware(OnlyOwnFiles, folder=str(temp))]},
                prevent_thread_lock=True,
                quiet=True,
                ssr_mode=False,
                theme=theme,
                footer_links=[],
            )
    except OSError as err:
        shutil.rmtree(temp, ignore_errors=True)
        if port is not None and "port" in str(err):
            raise UserError(f"--port {port}: already in use on {host}; choose another --port") from None
        raise UserError(f"--host {host}: cannot serve there ({getattr(err, 'strerror', None) or err})") from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    bound = app.server_port
    urls = addresses(host, bound) if not is_loopback(host) else [app.local_url]
    return Page(urls[0], app, studio, temp, host, urls)
