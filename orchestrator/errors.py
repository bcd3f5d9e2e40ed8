"""What a user did wrong, said in one line: the orchestrator's error type and its helpers.

Every module of the orchestrator that refuses user input raises `UserError` (spec mistakes raise
its subclass `SpecError`); `ablate` prints it as `ablate: error: <one line>` and exits 2. This module
imports nothing of ours, so any module may use it without an import running back up to the CLI.
"""

from __future__ import annotations

import errno
from pathlib import Path


class UserError(Exception):
    """A mistake in what the user asked for: printed as one line, exit code 2, no traceback."""


def one_line(text: str) -> str:
    """``text`` with every unprintable character escaped (``\\n``, ``\\x1b``, ``\\u2028``): a key or file
    name from a spec can hold line breaks or terminal escapes, and an error is one printable line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)
"""Errors of the results folder's file system (full, read-only, no permission): not bugs, one line each."""


def storage_error(e: OSError, results_dir: Path) -> UserError | None:
    """The one-line UserError for a file-system error writing `results_dir`, or None for other errors."""
    if e.errno not in STORAGE_ERRNOS:
        return None
    what = e.strerror or str(e)
    where = f" ({e.filename})" if e.filename else ""
    return UserError(
        f"cannot write to {results_dir}: {what}{where}; the sweep stopped. Runs that finished are kept, the "
        "ones running were stopped: fix the disk (free space, permissions) and run the same command again "
        "to resume"
    )
