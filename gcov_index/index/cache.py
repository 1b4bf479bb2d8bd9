"""ManifestCache: per-granule manifests on disk, so that a granule is scanned once.

Keyed by the canonical URL and the source's :class:`~gcov_index.io.fingerprint.Fingerprint`
(size, ETag, mtime): a changed source is scanned again. Entries hold URLs, never a secret.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

from ..io.fingerprint import Fingerprint
from .manifest import GranuleManifest


def default_cache_dir() -> Path:
    """``$GCOV_INDEX_CACHE``, else ``$XDG_CACHE_HOME/gcov-index``, else ``~/.cache/gcov-index``."""
    base = os.environ.get("GCOV_INDEX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gcov-index")
    return Path(base)


class ManifestCache:
    """A directory of gzipped manifest files; ``ManifestCache(None)`` caches nothing."""

    def __init__(self, directory: Path | None):
        self.directory = None if directory is None else Path(directory)

    def path(self, url: str, fp: Fingerprint) -> Path:
        key = hashlib.sha256(f"{url}|{fp.key}".encode()).hexdigest()
        return self.directory / f"{key[:32]}.json.gz"

    def get(self, url: str, fp: Fingerprint) -> GranuleManifest | None:
        """The manifest scanned from ``url`` when it had fingerprint ``fp``, or None."""
        if self.directory is None:
            return None
        path = self.path(url, fp)
        try:
            with gzip.open(path, "rt") as f:
                return GranuleManifest.from_json(json.load(f))
        except FileNotFoundError:
            return None
        except Exception:  # a damaged cache entry is rescanned, never trusted
            path.unlink(missing_ok=True)
            return None

    def put(self, m: GranuleManifest) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(m.url, m.fingerprint)
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
        with gzip.open(tmp, "wt") as f:
            json.dump(m.to_json(), f)
        tmp.replace(path)
