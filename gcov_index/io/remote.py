"""Stores kept away from this machine: in a team's S3 bucket (``s3://bucket/key``) or behind an
``https://`` URL (read only).

A store's bucket is the team's, not NASA's: it is reached with the credentials of the standard
AWS chain that obstore reads (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``, web identity, instance or container roles; ``AWS_ENDPOINT_URL`` for
another S3 API, ``AWS_REGION``), never with the Earthdata temporary credentials. (obstore does
not read ``~/.aws`` profiles: ``eval "$(aws configure export-credentials --format env)"``
puts a profile's credentials in the environment.) An https store URL is read through the
:meth:`Access.route` of the Access given, so the Earthdata token goes only to a host it is
meant for (``Endpoints.token_refusal``); without an Access, it is read with no credentials.

obstore is imported when a remote store is used: a local store's ``info`` loads none of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._log import logger
from ..errors import AccessError, AuthError, BadInputError, first_line

log = logger(__name__)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")


def is_remote(store) -> bool:
    """Whether ``store`` names a store by an s3:// or http(s):// URL."""
    return isinstance(store, str) and urlsplit(store).scheme.lower() in ("s3", "https", "http")


def _missing(e: BaseException) -> bool:
    return isinstance(e, FileNotFoundError) or type(e).__name__ == "NotFoundError"


_REFUSED = re.compile(r"\b(401|403)\b|AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|"
                      r"Forbidden|ExpiredToken|InvalidToken|credential", re.IGNORECASE)


def remote_error(url: str, e: BaseException) -> AccessError:
    """One line for a failed request to a store's host."""
    if isinstance(e, AccessError):
        return e
    text = first_line(" ".join(str(e).split()), 200)
    if _REFUSED.search(str(e)):
        return AuthError(f"{url}: access refused ({text}); a store's bucket is reached with the "
                         "team's AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...)")
    return AccessError(f"{url}: unreachable ({text})")


def _s3_store(bucket: str):
    """The team's bucket, credentials from the standard AWS chain (never Earthdata's)."""
    from obstore.store import S3Store

    endpoint = next((os.environ[v] for v in ENDPOINT_VARS if os.environ.get(v)), "")
    options = {"allow_http": True} if endpoint.startswith("http://") else {}
    return S3Store(bucket, client_options=options)


@dataclass
class Place:
    """Where a remote store is: an obstore store and the key of the store inside it."""

    url: str
    store: object
    key: str
    writable: bool

    def sibling(self, name: str) -> str:
        """The key of ``name`` beside the store (``.NAME.parquet.v7``)."""
        parent = self.key.rsplit("/", 1)[0] + "/" if "/" in self.key else ""
        return parent + name

    def url_of(self, key: str) -> str:
        if self.url.startswith("s3://"):
            return f"s3://{urlsplit(self.url).netloc}/{key}"
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/{key}"

    # -- reads -----------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is none."""
        import obstore

        log.debug("GET %s", self.url_of(key))
        try:
            data = obstore.get(self.store, key).bytes().to_bytes()
        except Exception as e:
            if _missing(e):
                log.debug("GET %s: no such object", self.url_of(key))
                return None
            raise remote_error(self.url_of(key), e) from None
        log.debug("GET %s: %d bytes", self.url_of(key), len(data))
        return data

    def list(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (a folder's, ``prefix`` ending with ``/``)."""
        if not self.writable:
            return []
        import obstore

        log.debug("LIST %s", self.url_of(prefix))
        try:
            return [m["path"] for batch in obstore.list(self.store, prefix=prefix)
                    for m in batch]
        except Exception as e:
            if _missing(e):
                return []
            raise remote_error(self.url_of(prefix), e) from None

    def sizes(self, prefix: str) -> dict[str, int]:
        """Key -> size of every object under ``prefix`` (one listing)."""
        import obstore

        log.debug("LIST %s", self.url_of(prefix))

        try:
            return {m["path"]: int(m["size"]) for batch in obstore.list(self.store, prefix=prefix)
                    for m in batch}
        except Exception as e:
            if _missing(e):
                return {}
            raise remote_error(self.url_of(prefix), e) from None

    def folders(self, parent: str) -> list[str]:
        """The "folders" directly under ``parent`` (a key prefix ending with ``/``, or "")."""
        import obstore

        log.debug("LIST %s (folders)", self.url_of(parent))
        try:
            found = obstore.list_with_delimiter(self.store, prefix=parent.rstrip("/") or None)
        except Exception as e:
            if _missing(e):
                return []
            raise remote_error(self.url_of(parent), e) from None
        return [p.rstrip("/") for p in found["common_prefixes"]]

    def first_under(self, prefix: str) -> str | None:
        """A key under ``prefix``, or None (one short listing)."""
        import obstore

        log.debug("LIST %s (the first key)", self.url_of(prefix))

        try:
            for batch in obstore.list(self.store, prefix=prefix, chunk_size=1):
                for m in batch:
                    return m["path"]
        except Exception as e:
            if _missing(e):
                return None
            raise remote_error(self.url_of(prefix), e) from None
        return None

    # -- writes ----------------------------------------------------------------------------
    def put(self, key: str, data: bytes, mode=None) -> dict:
        import obstore

        log.debug("PUT %s: %d bytes%s", self.url_of(key), len(data),
                  f" ({mode})" if isinstance(mode, str) else "" if mode is None
                  else " (if unchanged)")
        try:
            return obstore.put(self.store, key, data, mode=mode)
        except Exception as e:
            if type(e).__name__ in ("AlreadyExistsError", "PreconditionError"):
                raise
            raise remote_error(self.url_of(key), e) from None

    def head(self, key: str) -> dict | None:
        import obstore

        log.debug("HEAD %s", self.url_of(key))
        try:
            return obstore.head(self.store, key)
        except Exception as e:
            if _missing(e):
                return None
            raise remote_error(self.url_of(key), e) from None

    def delete(self, keys: Iterable[str]) -> None:
        import obstore

        keys = list(keys)
        if keys:
            log.debug("DELETE %d objects under %s", len(keys), self.url_of(""))
        for i in range(0, len(keys), 1000):
            try:
                obstore.delete(self.store, keys[i:i + 1000])
            except Exception as e:
                if not _missing(e):
                    raise remote_error(self.url_of(keys[i]), e) from None


def place(url: str, access=None) -> Place:
    """Where the store ``url`` is, and how to reach it (s3: the team's bucket; https: read
    only, through ``access``'s router (an :class:`~gcov_index.io.access.Access`), or with no
    credentials at all without one)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    key = parts.path.lstrip("/")
    if scheme == "s3":
        if not _BUCKET.fullmatch(parts.netloc or ""):
            raise BadInputError(f"{url}: {parts.netloc!r} is not an S3 bucket name")
        if not key or key.endswith("/"):
            raise BadInputError(f"{url}: no object key (give s3://BUCKET/PATH/NAME.json or "
                                ".parquet)")
        if parts.query or parts.fragment:
            raise BadInputError(f"{url}: an s3:// store URL takes no query or fragment")
        return Place(url, _s3_store(parts.netloc), key, True)
    if scheme in ("https", "http"):
        bare = url.split("?", 1)[0].split("#", 1)[0]
        if access is not None:
            store, key = access.route(bare)
        else:
            from obstore.store import HTTPStore

            store = HTTPStore.from_url(f"{scheme}://{parts.netloc}",
                                       client_options={"allow_http": scheme == "http"})
            key = urlsplit(bare).path.lstrip("/")
        return Place(url, store, key, False)
    raise AccessError(f"{url}: unsupported store URL (use a path, s3:// or https://)")


class ObjectFiles:
    """The one call fsspec's ``LazyReferenceMapper`` makes to read a Parquet store's files
    (``cat_file``), answered from an obstore store: a Parquet store in a bucket or behind
    https is read through the same router as everything else (fsspec's own s3/http file
    systems would take other credentials, and send the token wherever asked)."""

    def __init__(self, where: Place):
        self.where = where

    def unstrip_protocol(self, path: str) -> str:
        return path

    def cat_file(self, path: str, start=None, end=None, **kwargs) -> bytes:
        prefix = self.where.url_of("")
        key = path[len(prefix):] if path.startswith(prefix) else path
        data = self.where.get(key)
        if data is None:
            raise FileNotFoundError(path)
        return data if start is None and end is None else data[start:end]
