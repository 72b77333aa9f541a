"""What the web page lets through: its logins, the addresses it answers on, and only the files it wrote.

:func:`read_auth` reads ``--auth``/``--auth-file``; :func:`is_loopback` and :func:`addresses` say who can reach a
page bound to a host; :class:`OnlyOwnFiles` stands in front of Gradio and refuses every file request but those for
the page's own temporary folder, uploads and proxying; :func:`gradio_temp` points Gradio's temporary folder there.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from .errors import UserError

__all__ = ["read_auth", "is_loopback", "addresses", "OnlyOwnFiles", "gradio_temp"]


def read_auth(auth: str | None = None, auth_file: str | os.PathLike | None = None) -> list[tuple[str, str]] | None:
    """The page's logins: ``USER:PASS`` (``--auth``) and/or a file of such lines (``--auth-file``, ``#`` comments);
    None for no login."""
    lines = [("--auth", auth)] if auth else []
    if auth_file:
        path = Path(auth_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            why = getattr(err, "strerror", None) or err
            raise UserError(f"--auth-file {str(auth_file)!r}: cannot be read ({why})") from None
        lines += [(f"{path}:{n}", line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        lines = [(where, line) for where, line in lines if not line.startswith("#")]
        if not any(where != "--auth" for where, _ in lines):
            raise UserError(f"--auth-file {str(auth_file)!r}: no USER:PASS line in it")
    logins = []
    for where, line in lines:
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise UserError(f"{where}: write USER:PASS (a user name, a colon, a password)")
        logins.append((user.strip(), password))
    return logins or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.1, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def addresses(host: str, port: int) -> list[str]:
    """The URLs a page bound to ``host`` answers on: the host itself, or for 0.0.0.0 (::) this machine's addresses."""
    if host.strip("[]") not in ("0.0.0.0", "::", ""):
        shown = f"[{host}]" if ":" in host else host
        return [f"http://{shown}:{port}/"]
    found: list[str] = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # (no packet is sent: only a route chosen)
            probe.connect(("192.0.2.1", 9))
            found.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        found += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except OSError:
        pass
    real = [a for a in dict.fromkeys(found) if not ipaddress.ip_address(a).is_loopback]
    return [f"http://{a}:{port}/" for a in real] + [f"http://127.0.0.1:{port}/"]


class OnlyOwnFiles:
    """ASGI guard in front of Gradio: a file request (``file=PATH``, ``file/PATH``) is answered only for a file in
    the page's own temporary folder (the pictures it wrote); a path anywhere else, a URL to fetch, an upload, a
    remote proxy or the run history is refused."""

    _FILE = re.compile(r"/file[=/]")
    _NEVER = re.compile(r"/upload/?$|/proxy=|/run-history")

    def __init__(self, app, folder: str) -> None:
        self.app, self.folder = app, os.path.realpath(folder)

    def refused(self, path: str) -> bool:
        if self._NEVER.search(path):
            return True
        found = self._FILE.search(path)
        if found is None:
            return False
        target = unquote(path[found.end() :])
        if "://" in target or ":/" in target:
            return True
        return not os.path.realpath(target).startswith(self.folder + os.sep)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and self.refused(scope.get("path", "")):
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"Not Found"})
            return
        await self.app(scope, receive, send)


@contextmanager
def gradio_temp(folder: Path):
    """Gradio keeps what it hands to browsers in GRADIO_TEMP_DIR, read as the app is built and launched: the page's
    own folder while that happens (and the setting as it was afterwards)."""
    before = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before
