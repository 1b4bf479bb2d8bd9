"""The few exception types a user can meet; each carries a one-line message naming the input,
and the exit code the CLI ends with: 2 bad input, 3 unreachable, 4 refused, 5 nothing found,
6 a store that does not match its sources (130: interrupted)."""

from __future__ import annotations


def first_line(error: BaseException | str, limit: int = 160) -> str:
    """The first non-blank line of an error (or text), cut to ``limit``: the detail a one-line
    message quotes from a library's multi-line error."""
    text = str(error)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        line = type(error).__name__ if isinstance(error, BaseException) else "no detail"
    return line[:limit]


class GcovIndexError(Exception):
    """Base class: ``str(err)`` is one line that names the input and what is wrong."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class BadInputError(GcovIndexError):
    """An argument, a name or a file is not what gcov-index expects."""

    exit_code = 2


class NotGcovError(BadInputError):
    """A file that is not HDF5, or an HDF5 file that is not a NISAR L2 GCOV granule."""


class GridMismatchError(BadInputError):
    """Granules whose grids (EPSG, shape or coordinates) differ cannot be stacked."""


class AccessError(GcovIndexError):
    """A source or store could not be reached: missing file, unreachable URL, refused request."""

    exit_code = 3


class AuthError(AccessError):
    """A missing, rejected or expired Earthdata token or S3 credential."""

    exit_code = 4


class SearchError(AccessError):
    """CMR failed, timed out or refused the search."""


class NoResultsError(GcovIndexError):
    """The search found no GCOV data granule."""

    exit_code = 5


class ValidationError(GcovIndexError):
    """The store does not match its sources."""

    exit_code = 6
