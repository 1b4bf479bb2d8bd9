"""File modes under a chosen umask, for the tests of what gcov-index writes for a group."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


@contextlib.contextmanager
def umask(mask: int):
    """The process's umask for the block, restored after (pytest runs one test at a time in a
    process)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    """The permission bits of ``path`` itself (a link's own, not its target's)."""
    return stat.S_IMODE(path.lstat().st_mode)
