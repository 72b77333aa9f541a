"""A batch's gallery: one static ``index.html`` to open in a browser in the morning.

No server, no script, no external assets: inline CSS and relative links only,
so the folder can be copied anywhere (or opened over a network share) and
still work.  Each job shows its picture, prompt, seed, CLIP score and status,
with links to the full picture, the best one, its ``run.json`` and its
``progress.mp4`` when there is one.  The page is replaced atomically, so a
browser never reads half of it.
"""

from __future__ import annotations

import html
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .hooks import Status
from .outputs import write_text
from .runs import RUN_FILES

__all__ = ["write_gallery", "render_gallery", "GALLERY_FILE"]

GALLERY_FILE = "index.html"
_PICTURES = (RUN_FILES["image"], RUN_FILES["sheet"])  # a several-picture run has a contact sheet instead
_LINKS = (
    (RUN_FILES["image"], "full image"),
    (RUN_FILES["sheet"], "contact sheet"),
    (RUN_FILES["best"], "best"),
    (RUN_FILES["record"], RUN_FILES["record"]),
    (RUN_FILES["video"], RUN_FILES["video"]),
)
_REFRESH_SECONDS = 60

_STYLE = """
:root { color-scheme: light dark; --bg: #f6f6f4; --card: #fff; --ink: #222; --dim: #666; --line: #ddd; }
@media (prefers-color-scheme: dark) { :root { --bg: #161616; --card: #222; --ink: #eee; --dim: #aaa; --line: #333; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem; background: var(--bg); color: var(--ink); font: 15px/1.4 system-ui, sans-serif; }
header h1 { margin: 0 0 .25rem; font-size: 1.4rem; }
header p { margin: 0 0 1rem; color: var(--dim); }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 1rem; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; overflow: hidden; }
figure .picture { display: block; aspect-ratio: 1; background: #0001; }
figure img { display: block; width: 100%; height: 100%; object-fit: contain; image-rendering: auto; }
figure .empty { display: flex; align-items: center; justify-content: center; aspect-ratio: 1; padding: 1rem;
  color: var(--dim); text-align: center; font-size: .9rem; overflow-wrap: anywhere; }
figcaption { padding: .6rem .75rem .75rem; }
.prompt { margin: 0 0 .3rem; font-weight: 600; overflow-wrap: anywhere; }
.meta, .links { margin: 0; color: var(--dim); font-size: .85rem; }
.links a { color: inherit; }
.status { display: inline-block; padding: 0 .4rem; border-radius: 4px; font-size: .8rem;
  color: #fff; background: #888; }
.finished .status { background: #2e7d32; } .failed .status { background: #c62828; }
.running .status { background: #1565c0; } .interrupted .status { background: #ef6c00; }
.error { margin: .3rem 0 0; color: #c62828; font-size: .85rem; overflow-wrap: anywhere; }
"""


def write_gallery(
    batch_dir: str | os.PathLike, records: list[dict[str, Any]], *, title: str = "batch", note: str = ""
) -> Path:
    """Write ``batch_dir/index.html`` for job records (in the order given); returns its path."""
    batch_dir = Path(batch_dir)
    path = batch_dir / GALLERY_FILE
    return write_text(path, render_gallery(batch_dir, records, title=title, note=note))


def render_gallery(batch_dir: Path, records: list[dict[str, Any]], *, title: str = "batch", note: str = "") -> str:
    """The gallery page as text (links are relative to ``batch_dir``)."""
    counts: dict[str, int] = {}
    for record in records:
        status = str(record.get("status", Status.PENDING))
        counts[status] = counts.get(status, 0) + 1
    summary = " · ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    busy = any(r.get("status") in (Status.PENDING, Status.RUNNING, Status.INTERRUPTED) for r in records)
    refresh = f'<meta http-equiv="refresh" content="{_REFRESH_SECONDS}">' if busy else ""
    cards = "\n".join(_card(batch_dir, r) for r in records)
    extra = f"<p>{html.escape(note)}</p>" if note else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}
<title>{html.escape(title)} · textsleep batch</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{html.escape(title)}</h1>
<p>{len(records)} jobs: {html.escape(summary or "none yet")} · updated {datetime.now():%Y-%m-%d %H:%M}</p>
{extra}
</header>
<main>
{cards}
</main>
</body>
</html>
"""


def _card(batch_dir: Path, record: dict[str, Any]) -> str:
    status = str(record.get("status") or Status.PENDING)
    folder = record.get("folder")
    present = {name for name, _ in _LINKS if folder and (batch_dir / folder / name).is_file()}
    prompt = record.get("prompt") or record.get("source") or ""
    picture = next((name for name in _PICTURES if name in present), None)
    if picture:
        href = _href(folder, picture)
        shown = f'<a class="picture" href="{href}"><img src="{href}" alt="{html.escape(prompt)}"></a>'
    else:
        shown = f'<div class="empty">{html.escape(status)}</div>'
    meta = [f'<span class="status">{html.escape(status)}</span>']
    if record.get("seed") is not None:
        meta.append(f"seed {html.escape(str(record['seed']))}")
    if isinstance(record.get("final_score"), (int, float)):
        meta.append(f"score {record['final_score']:.3f}")
    if record.get("iterations") and status != Status.FINISHED:
        meta.append(f"step {int(record.get('steps_done') or 0)}/{int(record['iterations'])}")
    links = [f'<a href="{_href(folder, name)}">{label}</a>' for name, label in _LINKS if name in present]
    error = f'<p class="error">{html.escape(str(record["error"]))}</p>' if record.get("error") else ""
    return (
        f'<figure class="{html.escape(status)}" id="job-{html.escape(str(record.get("id", "")))}">{shown}'
        f'<figcaption><p class="prompt">{html.escape(prompt)}</p><p class="meta">{" · ".join(meta)}</p>'
        f'<p class="links">{" · ".join(links)}</p>{error}</figcaption></figure>'
    )


def _href(folder: str, name: str) -> str:
    return html.escape(quote(f"{folder}/{name}"))
