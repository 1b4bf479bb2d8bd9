"""Fingerprint: what a source looked like when it was indexed (size, ETag, modification time),
so that a cache entry or a store can tell whether the source changed since."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import obstore

from .._log import logger
from ..errors import first_line
from .access import Access, canonical_url, remote_error

log = logger(__name__)

FIELDS = ("size", "etag", "mtime")


@dataclass(frozen=True)
class Fingerprint:
    size: int
    etag: str | None = None
    mtime: str | None = None  # ISO 8601

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Fingerprint:
        return cls(size=int(d["size"]), etag=d.get("etag"), mtime=d.get("mtime"))

    @property
    def key(self) -> str:
        """A string that changes whenever the source does (the manifest cache keys on it)."""
        return f"{self.size}|{self.etag}|{self.mtime}"

    def changes(self, now: Fingerprint, fields: tuple[str, ...] = FIELDS) -> list[str]:
        """``"size 10 -> 12"``-style lines for each of ``fields`` that differs in ``now``."""
        return [f"{k} {getattr(self, k)} -> {getattr(now, k)}" for k in fields
                if getattr(self, k) != getattr(now, k)]


def fingerprint_of(store, path: str, url: str) -> Fingerprint:
    """The fingerprint of ``path`` in an obstore ``store`` (one HEAD request)."""
    started = time.monotonic()
    try:
        meta = obstore.head(store, path)
    except Exception as e:  # obstore raises its own error types per backend; retried there
        log.debug("HEAD %s failed after %.3f s: %s", url, time.monotonic() - started,
                  first_line(e, 200))
        raise remote_error(url, e) from None
    log.debug("HEAD %s: %s bytes, ETag %s, in %.3f s", url, meta["size"], meta.get("e_tag"),
              time.monotonic() - started)
    modified = meta.get("last_modified")
    return Fingerprint(size=int(meta["size"]), etag=meta.get("e_tag"),
                       mtime=modified.isoformat() if modified else None)


def fingerprint(url: str, access: Access) -> Fingerprint:
    """Size, ETag and modification time of a source now."""
    url = canonical_url(url)
    store, path = access.object_store(url)
    return fingerprint_of(store, path, url)
