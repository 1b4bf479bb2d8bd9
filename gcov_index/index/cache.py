"""ManifestCache: per-granule manifests on disk, so that a granule is scanned once.

Keyed by the canonical URL and the source's :class:`~gcov_index.io.fingerprint.Fingerprint`
(size, ETag, mtime): a changed source is scanned again. Each entry carries the URL and the
fingerprint it was scanned with and a SHA-256 of its contents; an entry that is damaged, not a
file, of another version, for another source or whose checksum does not match is deleted and
the granule scanned again: never trusted, never an error. Entries hold URLs, never a secret.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..io.fingerprint import Fingerprint
from .manifest import GranuleManifest

CHECKSUM = "sha256"


def default_cache_dir() -> Path:
    """``$GCOV_INDEX_CACHE``, else ``$XDG_CACHE_HOME/gcov-index``, else ``~/.cache/gcov-index``."""
    base = os.environ.get("GCOV_INDEX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gcov-index")
    return Path(base)


def checksum(entry: dict) -> str:
    """SHA-256 of an entry's contents (its checksum field left out), however it was formatted."""
    body = {k: v for k, v in entry.items() if k != CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


class ManifestCache:
    """A directory of gzipped manifest files; ``ManifestCache(None)`` caches nothing."""

    def __init__(self, directory: Path | None):
        self.directory = None if directory is None else Path(directory)

    def path(self, url: str, fp: Fingerprint) -> Path:
        key = hashlib.sha256(f"{url}|{fp.key}".encode()).hexdigest()
        return self.directory / f"{key[:32]}.json.gz"

    def get(self, url: str, fp: Fingerprint) -> GranuleManifest | None:
        """The manifest scanned from ``url`` when it had fingerprint ``fp``, or None (then the
        granule is scanned again)."""
        if self.directory is None:
            return None
        path = self.path(url, fp)
        try:
            with gzip.open(path, "rt") as f:
                entry = json.load(f)
            if not isinstance(entry, dict) or entry.get(CHECKSUM) != checksum(entry):
                raise ValueError("checksum")
            if entry.get("url") != url or entry.get("fingerprint") != fp.to_dict():
                raise ValueError("another source")
            m = GranuleManifest.from_json(entry)
            if m.url != url or m.fingerprint != fp:
                raise ValueError("another source")
            return m
        except FileNotFoundError:
            return None
        except Exception:  # damaged, a folder, altered, or not ours: rescanned, never trusted
            self._discard(path)
            return None

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def put(self, m: GranuleManifest) -> None:
        """Store a manifest; a cache that cannot be written only means scanning again."""
        if self.directory is None:
            return
        path = self.path(m.url, m.fingerprint)
        entry = m.to_json()
        entry[CHECKSUM] = checksum(entry)
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                       dir=self.directory)
            with os.fdopen(fd, "wb") as raw, gzip.open(raw, "wt") as f:
                json.dump(entry, f)
            if path.is_dir():  # a folder where the entry goes: not ours to keep
                self._discard(path)
            os.replace(tmp, path)
        except OSError:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
