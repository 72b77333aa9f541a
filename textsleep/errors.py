"""The one exception type for mistakes a user can fix.

Anything raised as :class:`UserError` is shown by the CLI as a single line
(``error: …``) with a non-zero exit code and no traceback.  Its message names
the bad value and what is allowed instead.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input or a missing resource that the user can put right."""
