"""What the web page lists from ``--out``: run folders with their records, batch folders, and copies of pictures.

Only what lies inside ``--out`` is listed (a folder, record or picture that is a symlink, or resolves outside it,
is left out); a run whose ``run.json`` is damaged is listed apart, with why; a picture goes to the page as a copy
decoded here, never as a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from .batch import BatchFolder, batch_status
from .errors import UserError, one_line
from .hooks import Status
from .runs import RUN_FILES, read_run

__all__ = ["runs_on_disk", "list_runs", "picture_copy", "caption", "list_batches", "table_cell", "batch_summary"]

_PICTURE_BYTES = 64 << 20  # the largest picture file the page copies for a visitor
_THUMBNAIL = 512  # the longest side of a run's picture in the page's list


def _inside(path: Path, root: Path) -> bool:
    """``path`` is a real file or folder (no symlink) that resolves inside ``root``."""
    try:
        return not path.is_symlink() and path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def _first_picture(folder: Path) -> Path | None:
    """The run's picture to show: its image, contact sheet or first picture's image, a regular file in the folder."""
    candidates = [folder / RUN_FILES["image"], folder / RUN_FILES["sheet"]]
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and _inside(p, folder))
    candidates += [sub / RUN_FILES["image"] for sub in subs]
    return next((p for p in candidates if p.is_file() and _inside(p, folder)), None)


def runs_on_disk(out: str | Path) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """The run folders directly under ``out``, newest first, with what their (checked) run.json says; and the
    damaged ones, each with why.  Folders and pictures that are symlinks, or lie outside ``out``, are left out.
    """
    out = Path(out).expanduser()
    found, damaged = [], []
    for folder in sorted(out.iterdir()) if out.is_dir() else []:
        record_file = folder / RUN_FILES["record"]
        if not _inside(folder, out) or not folder.is_dir() or not (record_file.exists() or record_file.is_symlink()):
            continue  # not a run folder of ours
        try:
            if not _inside(record_file, folder):
                raise UserError(f"{record_file}: a symlink, not the run's own record")
            record = read_run(folder)
            mtime = record_file.stat().st_mtime
            picture = _first_picture(folder)
        except UserError as err:
            damaged.append((folder, one_line(err, 300)))
            continue
        except OSError:
            continue  # gone meanwhile
        if "batch" in record:
            continue  # a picture's sub-folder of a several-picture run
        found.append(
            dict(
                folder=folder,
                picture=picture,
                prompt=record.get("prompt") if isinstance(record.get("prompt"), str) else "",
                seed=record["settings"].get("seed"),
                score=record.get("final_score") if isinstance(record.get("final_score"), (int, float)) else None,
                status=record.get("status", "?"),
                steps_done=int(record.get("steps_done") or 0),
                iterations=int(record["settings"].get("iterations") or 0),
                settings=record["settings"],
                mtime=mtime,
            )
        )
    found.sort(key=lambda r: r["mtime"], reverse=True)
    return found, damaged


def list_runs(out: str | Path) -> list[dict[str, Any]]:
    """The run folders directly under ``out``, newest first (damaged ones left out: :func:`runs_on_disk`)."""
    return runs_on_disk(out)[0]


def picture_copy(path: Path, out: str | Path, side: int = _THUMBNAIL) -> Image.Image | None:
    """A copy of a picture the page may show, at most ``side`` pixels a side: a regular file (no symlink) inside
    ``out`` and of a sane size, decoded here (None when it is none of these or not a picture)."""
    out = Path(out).expanduser()
    try:
        if not path.is_file() or not _inside(path, out) or path.stat().st_size > _PICTURE_BYTES:
            return None
        with Image.open(path) as im:
            im.thumbnail((side, side))
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def caption(run: dict[str, Any]) -> str:
    score = f" · score {run['score']:.3f}" if isinstance(run["score"], (int, float)) else ""
    state = "" if run["status"] == Status.FINISHED else f" · {run['status']} at {run['steps_done']}/{run['iterations']}"
    return f"{run['prompt'] or run['folder'].name} · seed {run['seed']}{score}{state}"


def list_batches(out: str | Path) -> list[str]:
    """Batch folders under ``out`` (and ``out`` itself when it is one), newest first; only real folders inside
    ``out`` (no symlink) whose batch.json is their own."""

    out = Path(out).expanduser()
    folders = [out, *(p for p in sorted(out.iterdir()) if p.is_dir() and _inside(p, out))] if out.is_dir() else []
    found = [p for p in folders if BatchFolder(p).meta_file.is_file() and _inside(BatchFolder(p).meta_file, p)]
    return [str(p) for p in sorted(found, key=lambda p: (p != out, -BatchFolder(p).meta_file.stat().st_mtime))]


def table_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def batch_summary(path: str | Path) -> str:
    """A batch folder's progress as Markdown: counts, time left, one row per job."""

    if not str(path or "").strip():
        raise UserError("give a batch folder (the --out of a textsleep batch run)")
    status = batch_status(path)
    p = status.progress
    lines = [
        f"**{table_cell(status.folder)}** ({table_cell(status.prompt_file)}): {p.total} jobs · {p.finished} finished "
        f"· {p.failed} failed · {p.running} running · {p.waiting} waiting"
    ]
    if p.eta_seconds is not None and p.remaining_steps:
        lines.append(
            f"about {p.eta_seconds / 60:.0f} min left ({p.remaining_steps} steps at {p.seconds_per_step:.2f} s a step)"
        )
    lines += ["", "| status | score | steps | seed | prompt |", "|---|---|---|---|---|"]
    for r in status.records:
        score = f"{r['final_score']:.3f}" if isinstance(r.get("final_score"), (int, float)) else "-"
        steps = f"{r.get('steps_done') or 0}/{r.get('iterations')}" if r.get("iterations") else "-"
        prompt = r.get("prompt") or r.get("source", "")
        if r.get("error"):
            prompt += f" — {r['error']}"
        lines.append(f"| {r.get('status', '?')} | {score} | {steps} | {r.get('seed', '-')} | {table_cell(prompt)} |")
    return "\n".join(lines)
