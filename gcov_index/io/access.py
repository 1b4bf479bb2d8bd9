"""Where bytes come from: local files, S3 (endpoint, temporary credentials that renew) and HTTPS
(bearer token). Everything else in gcov-index takes an ``Access`` and never sees a secret.

Where the archive is comes from one :class:`~gcov_index.io.endpoints.Endpoints` value (NASA's
by default, or ``Endpoints.from_env()``); the Earthdata token from
:func:`gcov_index.io.auth.find_token`; temporary S3 credentials from
``GET {endpoints.s3_credentials_url}`` with the token, renewed before they expire.

Who gets what is decided here, per URL (:meth:`Access.route`), for every request: S3 URLs go to
the configured S3 endpoint with the temporary credentials; an http(s) URL gets the token only
when ``Endpoints.token_refusal`` allows it (https, or plain http to loopback, to a configured
host); any other host is read without credentials. obstore (reqwest) drops the
``Authorization`` header when a redirect leads to another host, so a pre-signed redirect never
carries the token.

Transient failures are retried by obstore under ``Access.retry`` (a
:class:`~gcov_index.io.retry.RetryPolicy`); :func:`remote_error` and :func:`read_failure` are
the one place that tells a failed read (refused, missing, unreachable) from bad bytes.
"""

from __future__ import annotations

import asyncio
import atexit
import re
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlparse, urlsplit

import obstore
from fsspec.asyn import AsyncFileSystem
from obspec_utils.readers import BlockStoreReader
from obstore.store import HTTPStore, LocalStore, S3Store

from ..errors import AccessError, AuthError, first_line
from .auth import CredentialProvider, find_token
from .endpoints import PROD, Endpoints
from .retry import DEFAULT, RetryPolicy

# HDF5 reads go through a cache of 4 MiB blocks: the product's file-space page size, so one
# block holds one metadata page (shared/gcov-product.md)
PAGE = 4 * 1024 * 1024
CACHED_PAGES = 64

# S3 bucket names (so that a store's bucket can only ever be a bucket at the configured endpoint)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


# ---------------------------------------------------------------------------------------
# what went wrong: the one place that classifies a failed read

# what a refusal looks like in obstore's / fsspec's messages; whole words only, since the
# same text holds ports, durations and request ids that may contain "401" or "403"
_REFUSED = re.compile(r"\b(?:401|403) (?:Unauthorized|Forbidden)\b|status(?: code)?:? (?:401|403)\b"
                      r"|\b(?:ExpiredToken|InvalidAccessKeyId|InvalidToken|AccessDenied"
                      r"|SignatureDoesNotMatch|Unauthenticated|token was rejected)\b")
_MISSING = re.compile(r"\b404 Not Found\b|status(?: code)?:? 404\b|\bNoSuchKey\b")

# hosts read without the token because they are not trusted: netloc -> why (no secret here)
_untrusted: dict[str, str] = {}


def _transport_errors() -> tuple[type[BaseException], ...]:
    from fsspec.implementations.reference import ReferenceNotReachable
    from obstore.exceptions import BaseError

    return (BaseError, ReferenceNotReachable, ConnectionError, TimeoutError, FileNotFoundError,
            PermissionError)


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8 and e not in chain:  # the reason may be wrapped
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


def failure_kind(exc: BaseException) -> str | None:
    """How a read failed on the way: "refused" (a token or credential refused), "missing" (no
    such object or file), "unreachable" (still failing after the retries: 5xx, resets,
    stalls, timeouts, truncated bodies); None when ``exc`` is not a failed read (the bytes
    arrived, and what they hold is wrong: a malformed file, a chunk that does not decode)."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, AccessError):
            return getattr(e, "kind", None) or ("refused" if isinstance(e, AuthError)
                                                 else "unreachable")
    if not any(isinstance(e, _transport_errors()) for e in chain):
        return None
    text = " ".join(str(e) for e in chain)
    if any(f"{cls.__name__}: " in text for cls in (AuthError,)) or _REFUSED.search(text):
        return "refused"
    if any(isinstance(e, FileNotFoundError) for e in chain) or _MISSING.search(text):
        return "missing"
    return "unreachable"


def _kind(err: AccessError, kind: str) -> AccessError:
    err.kind = kind
    return err


def _tidy(line: str) -> str:
    """obstore's first line, without the URL (the message names it already) and the body."""
    line = re.sub(r"^(?:Generic \w+ error: )+", "", line)
    m = re.search(r"Error performing (\w+) \S+ in [^,-]+(?:, after (\d+) retries)?[^-]*-\s*(.*)$",
                  line)
    if m:
        method, retries, rest = m.groups()
        line = (line[:m.start()] + f"{method} failed"
                + (f" after {retries} retries" if retries else "") + f": {rest}")
    status = re.search(r"Server returned non-2xx status code: (\d{3})([A-Za-z ]*)(.*)$", line)
    if status:
        code, reason, body = status.groups()
        s3code = re.search(r"<Code>(\w+)</Code>", body)
        line = (line[:status.start()] + f"HTTP {code}{reason.rstrip()}"
                + (f" ({s3code.group(1)})" if s3code else ""))
    return line


_QUERY = re.compile(r"(\w+://[^\s?#'\"<>]+)\?[^\s'\"<>]*")


def _no_query(line: str) -> str:
    """URLs without their query: a pre-signed URL's query holds a key id and a session token."""
    return _QUERY.sub(r"\1?...", line)


def _detail(chain: list[BaseException]) -> str:
    """The most telling line: the first library error (obstore, OS) of the chain."""
    for e in chain:
        if type(e).__module__.startswith("obstore") or (
                isinstance(e, OSError) and str(e).strip()):
            return _no_query(_tidy(first_line(e, 1000)))[:200]
    return _no_query(next((first_line(e, 200) for e in chain if str(e).strip()),
                          type(chain[0]).__name__))


def _not_trusted(what: str, text: str) -> str | None:
    for netloc, why in list(_untrusted.items()):
        if f"//{netloc}/" in f"{what} {text}" or f"//{netloc} " in f"{what} {text} ":
            return why
    return None


def remote_error(what: str, exc: BaseException) -> AccessError:
    """One clear error for a failed remote read: AuthError when access was refused (a
    rejected token, expired or unknown credentials, a host that refused a read without the
    token), AccessError otherwise ("no such object", or "unreachable" after the retries). The
    error's ``kind`` attribute is "refused", "missing" or "unreachable"."""
    if isinstance(exc, AccessError):
        return exc
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, AccessError):
            return _kind(type(e)(f"{what}: {e}"), failure_kind(e) or "unreachable")
    text = " ".join(str(e) for e in chain)
    for cls in (AuthError, AccessError):  # ours, raised inside obstore's credential callback
        marker = f"{cls.__name__}: "
        if marker in text:
            return _kind(cls(f"{what}: {text.split(marker, 1)[1].splitlines()[0]}"),
                         "refused" if cls is AuthError else "unreachable")
    kind = failure_kind(exc) or "unreachable"
    if kind == "missing" and not _REFUSED.search(text):
        missing = next((e for e in chain if isinstance(e, FileNotFoundError)), chain[0])
        return _kind(AccessError(f"{what}: no such object ({first_line(missing, 200)})"),
                     "missing")
    detail = _detail(chain)
    if kind == "refused" or _REFUSED.search(text):
        why = _not_trusted(what, text)
        if why:
            return _kind(AuthError(f"{what}: refused, and the Earthdata token was not sent: "
                                   f"{why}"), "refused")
        return _kind(AuthError(f"{what}: access refused ({detail})"), "refused")
    return _kind(AccessError(f"{what}: unreachable ({detail})"), "unreachable")


def read_failure(what: str, exc: BaseException, reader=None) -> AccessError | None:
    """The one-line error to raise when ``exc`` is a read that failed on the way (refused,
    missing, unreachable after the retries), or None when it is not: the bytes arrived and
    what they hold is wrong (a malformed HDF5 file, a chunk that does not decode), which is
    the caller's finding. ``reader`` (from :func:`open_reader`), when given, knows for sure:
    h5py may turn a failed read into an error about the file."""
    failed = getattr(reader, "failure", None)
    if failed is not None:
        return remote_error(what, failed)
    if failure_kind(exc) is not None:
        return remote_error(what, exc)
    return None


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> Path:
    return Path(url.removeprefix("file://")).expanduser().resolve()  # not %-decoded: as fsspec


def canonical_url(url: str) -> str:
    """Local paths become absolute ``file://`` URLs, the path as is (not %-encoded: fsspec, which
    reads the store, takes ``file://a b/100%`` literally); remote URLs are kept as given."""
    return f"file://{local_path(url).as_posix()}" if is_local(url) else url


class SourceReader(BlockStoreReader):
    """``BlockStoreReader`` (4 MiB pages for h5py) that remembers the first request that failed
    (``failure``) and checks that every page has the length asked for, so that a failed or
    short read is never taken for a malformed file."""

    failure: BaseException | None = None
    url: str | None = None  # named in errors

    def _failed(self, e: BaseException) -> NoReturn:
        if self.failure is None:
            self.failure = e
        raise e

    def _get_size(self) -> int:
        try:
            return super()._get_size()
        except Exception as e:
            self._failed(e)

    def _get_blocks(self, block_indices: list[int]) -> dict[int, bytes]:
        try:
            blocks = super()._get_blocks(block_indices)
        except Exception as e:
            self._failed(e)
        size = self._get_size()
        for i, data in blocks.items():
            want = max(0, min(self._block_size, size - i * self._block_size))
            if len(data) != want:
                self._cache.pop(i, None)
                self._failed(_kind(AccessError(
                    f"{self.url or self._path}: unreachable (short read: {len(data)} of {want} "
                    f"bytes at offset {i * self._block_size})"), "unreachable"))
        return blocks

    def readall(self) -> bytes:
        try:
            return super().readall()
        except Exception as e:
            self._failed(e)


def open_reader(store, path: str, url: str | None = None) -> SourceReader:
    """A file-like reader of ``path`` in an obstore ``store`` for h5py, caching 4 MiB pages;
    ``reader.failure`` is the first request that failed (see :func:`read_failure`)."""
    reader = SourceReader(store, path, block_size=PAGE, max_cached_blocks=CACHED_PAGES)
    reader.url = url
    return reader


@dataclass
class Access:
    """How to reach granules: the archive's endpoints, the Earthdata token (held in memory
    only) and the retry policy. ``Access.from_env()`` finds all three as the CLI does."""

    endpoints: Endpoints = PROD
    token: str | None = field(default=None, repr=False)
    retry: RetryPolicy = DEFAULT
    _provider: CredentialProvider | None = field(default=None, init=False, repr=False,
                                                 compare=False)
    _stores: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False,
                                  compare=False)

    @classmethod
    def from_env(cls, *, token: str | None = None, token_file: str | None = None,
                 endpoints: Endpoints | None = None, retry: RetryPolicy | None = None,
                 **endpoint_overrides) -> Access:
        """Endpoints from ``endpoints`` or the environment (with ``endpoint_overrides``, e.g.
        ``s3_endpoint=``), the token from :func:`~gcov_index.io.auth.find_token`, the retry
        policy from ``retry`` or the environment (``RetryPolicy.from_env()``)."""
        endpoints = (endpoints or Endpoints.from_env()).with_(**endpoint_overrides)
        return cls(endpoints=endpoints, retry=retry or RetryPolicy.from_env(),
                   token=find_token(token, token_file, edl_url=endpoints.edl_url))

    @property
    def https_base(self) -> str:
        return self.endpoints.https_base

    # -- credentials -------------------------------------------------------------------------
    @property
    def credentials(self) -> CredentialProvider:
        with self._lock:
            if self._provider is None:
                self._provider = CredentialProvider(self.endpoints.s3_credentials_url,
                                                    self.token, policy=self.retry)
            return self._provider

    def _s3_config(self) -> dict:
        config = {"region": self.endpoints.region}
        if self.endpoints.s3_endpoint:
            config["endpoint"] = self.endpoints.s3_endpoint
        return config

    def _bearer(self, url: str) -> dict:
        if not self.token:
            raise AuthError(f"{url}: no Earthdata token for HTTPS; set EARTHDATA_TOKEN, pass "
                            "--token-file, or add urs.earthdata.nasa.gov to ~/.netrc")
        return {"Authorization": f"Bearer {self.token}"}

    # -- who gets what: one decision per URL -------------------------------------------------
    def sends_token_to(self, url: str) -> bool:
        """Whether a request to ``url`` carries the Earthdata token."""
        return self.endpoints.token_refusal(url) is None

    def route(self, url: str):
        """``(obstore store, path inside it)`` for an s3:// or http(s):// URL: S3 at the
        configured endpoint with the temporary credentials; the token to a trusted host only
        (``Endpoints.token_refusal``); any other host without credentials."""
        parsed = urlsplit(url)
        scheme = parsed.scheme.lower()
        if scheme == "s3":
            bucket = parsed.netloc
            if not _BUCKET.fullmatch(bucket):
                raise _kind(AccessError(f"{url}: {bucket!r} is not an S3 bucket name"),
                            "missing")
            return self._store(("s3", bucket), lambda: S3Store(
                bucket, config=self._s3_config(), retry_config=self.retry.obstore_retry(),
                client_options=self.retry.obstore_client(
                    (self.endpoints.s3_endpoint or "").startswith("http://")),
                credential_provider=self.credentials)), parsed.path.lstrip("/")
        if scheme in ("http", "https") and parsed.netloc:
            refusal = self.endpoints.token_refusal(url)
            options = self.retry.obstore_client(scheme == "http")
            if refusal is None:
                options["default_headers"] = self._bearer(url)
                _untrusted.pop(parsed.netloc, None)
            else:
                _untrusted[parsed.netloc] = refusal
            key = (scheme, parsed.netloc, refusal is None)
            return self._store(key, lambda: HTTPStore.from_url(
                f"{scheme}://{parsed.netloc}", client_options=options,
                retry_config=self.retry.obstore_retry())), unquote(parsed.path.lstrip("/"))
        raise _kind(AccessError(f"{url}: unsupported URL (use a path, s3:// or https://)"),
                    "missing")

    def _store(self, key, make):
        with self._lock:
            store = self._stores.get(key)
        if store is None:
            store = make()
            with self._lock:
                store = self._stores.setdefault(key, store)
        return store

    # -- obstore (scan, validate) -------------------------------------------------------------
    def object_store(self, url: str):
        """``(obstore store, path inside it)`` for a local path or an s3/http(s) URL."""
        if is_local(url):
            path = local_path(url)
            if not path.is_file():
                raise _kind(AccessError(f"{url}: no such file"), "missing")
            return LocalStore(str(path.parent)), path.name
        if urlsplit(url).scheme.lower() == "s3":
            self.credentials.get()  # fail early, with a clear message, on a bad token
        return self.route(url)

    # -- fsspec (reading a reference store) -----------------------------------------------------
    def chunk_filesystem(self, rewrite=None, only: str | None = None) -> ChunkFileSystem:
        """The async fsspec file system a reference store reads its chunks with: every
        s3/http(s) URL goes through :meth:`route`. ``rewrite`` maps each URL first (s3 <->
        https); ``only`` ("s3" or "https") refuses URLs that are not then of that family."""
        return ChunkFileSystem(self, rewrite, only)

    def s3fs_options(self) -> dict:
        """``remote_options`` for plain fsspec/s3fs users (credentials valid for one hour)."""
        options = ({"client_kwargs": {"region_name": self.endpoints.region}}
                   | self.credentials.get().as_s3fs())
        if self.endpoints.s3_endpoint:
            options["endpoint_url"] = self.endpoints.s3_endpoint
        return options

    # -- URLs ---------------------------------------------------------------------------------
    def to_https(self, url: str) -> str:
        """``s3://bucket/<collection>/<stem>/<stem>.h5`` -> ``{https_base}/<collection>/...``"""
        parsed = urlparse(url)
        if parsed.scheme != "s3":
            return url
        return f"{self.https_base.rstrip('/')}/{parsed.path.lstrip('/')}"

    def to_s3(self, url: str) -> str:
        base = self.https_base.rstrip("/") + "/"
        if not url.startswith(base):
            return url
        return f"s3://{self.endpoints.s3_bucket}/{url[len(base):]}"


# ---------------------------------------------------------------------------------------
# chunk reads of a reference store


def family(url: str) -> str:
    """``s3``, ``file``, or ``https`` for both http and https URLs."""
    scheme = urlsplit(url).scheme.lower()
    return "https" if scheme == "http" else scheme


class ChunkFileSystem(AsyncFileSystem):
    """Chunk reads for fsspec's ReferenceFileSystem, each URL routed by :meth:`Access.route`
    (so a store naming another host never gets the token), retried by obstore under the
    Access's RetryPolicy; a read that still fails raises a one-line :class:`AccessError`
    (``remote_error``)."""

    protocol = ("s3", "https", "http")
    cachable = False  # fsspec would otherwise hand the same instance to another Access

    def __init__(self, access: Access, rewrite=None, only: str | None = None):
        super().__init__(asynchronous=True)
        self.access = access
        self.rewrite = rewrite
        self.only = only
        _watch_reads()

    def _target(self, path: str):
        url = self.rewrite(path) if self.rewrite else path
        if self.only and family(url) != self.only:
            raise _kind(AccessError(f"{path}: cannot be read over {self.only}"), "missing")
        store, key = self.access.route(url)
        return url, store, key

    async def _cat_file(self, path, start=None, end=None, **kwargs):
        _LOOPS.add(asyncio.get_running_loop())
        url, store, key = self._target(path)
        try:
            if start is None and end is None:
                result = await obstore.get_async(store, key)
                return (await result.bytes_async()).to_bytes()
            if start is None or end is None or start < 0 or end < 0:
                raise NotImplementedError(f"{path}: open-ended range {start}-{end}")
            data = (await obstore.get_range_async(store, key, start=start,
                                                  end=end)).to_bytes()
        except Exception as e:
            raise remote_error(url, e) from e
        if len(data) != end - start:  # a short body is a failed read, not a corrupt chunk
            raise _kind(AccessError(f"{url}: unreachable (bytes {start}-{end}: {len(data)} of "
                                    f"{end - start} received)"), "unreachable")
        return data

    async def _cat_ranges(self, paths, starts, ends, max_gap=None, on_error="return",
                          **kwargs):
        if not isinstance(starts, list):
            starts = [starts] * len(paths)
        if not isinstance(ends, list):
            ends = [ends] * len(paths)
        out = await asyncio.gather(*(self._cat_file(p, s, e) for p, s, e in zip(
            paths, starts, ends, strict=True)), return_exceptions=True)
        if on_error == "raise":
            for r in out:
                if isinstance(r, BaseException):
                    raise r
        return out

    async def _info(self, path, **kwargs):
        url, store, key = self._target(path)
        try:
            meta = await obstore.head_async(store, key)
        except Exception as e:
            raise remote_error(url, e) from e
        return {"name": path, "size": int(meta["size"]), "type": "file"}


# Chunk reads run on an event loop (zarr's): when one fails, zarr gives up on the others, which
# go on. At exit, they are let end (or cancelled) before the interpreter shuts down, so that no
# obstore request completes into a dying interpreter (an abort or a segfault at exit) and
# asyncio prints nothing about them.
_LOOPS: weakref.WeakSet = weakref.WeakSet()
_WATCHING: list[bool] = []
SETTLE_SECONDS = 10.0


def _watch_reads() -> None:
    if not _WATCHING:
        _WATCHING.append(True)
        atexit.register(settle_reads)  # runs before zarr's own clean-up (registered earlier)


async def _settle(timeout: float) -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: no "exception was never retrieved" at exit


def settle_reads(timeout: float = SETTLE_SECONDS) -> None:
    """Let the chunk reads still in flight end, then cancel what is left after ``timeout``."""
    for loop in list(_LOOPS):
        if loop.is_closed() or not loop.is_running():
            continue
        try:
            if asyncio.get_running_loop() is loop:
                continue
        except RuntimeError:
            pass
        try:
            asyncio.run_coroutine_threadsafe(_settle(timeout), loop).result(timeout + 2.0)
        except Exception:  # a loop stopping under us: nothing left to wait for
            pass
