"""Where bytes come from: local files, S3 (endpoint, temporary credentials that renew) and HTTPS
(bearer token). Everything else in gcov-index takes an ``Access`` and never sees a secret.

Where the archive is comes from one :class:`~gcov_index.io.endpoints.Endpoints` value (NASA's
by default, or ``Endpoints.from_env()``); the Earthdata token from
:func:`gcov_index.io.auth.find_token`; temporary S3 credentials from
``GET {endpoints.s3_credentials_url}`` with the token, renewed before they expire.

Who gets what is decided here, per URL (:meth:`Access.route`), for every request: S3 URLs go to
the configured S3 endpoint with the temporary credentials; an http(s) URL gets the token only
when ``Endpoints.token_refusal`` allows it (https, or plain http to loopback, to a configured
host); any other host is read without credentials.

NASA's HTTPS endpoint answers a granule's GET with a redirect (303 or 307) to a pre-signed S3
URL on another host, valid for an hour or so. Following it on every request (which obstore, as
reqwest, does by itself, dropping ``Authorization`` on the way to the other host) would cost
two round trips per chunk and send the token with each. So for a host that gets the token,
:class:`Redirects` asks once per granule, without following (one GET with the token), keeps
the ``Location`` until shortly before it expires (``X-Amz-Date`` + ``X-Amz-Expires``, or
``Expires``; unknown: until refused) and reads every range from it with a store that carries
no ``Authorization``; concurrent reads of one granule wait for the same answer. A signed URL
refused (expired early, revoked) is resolved again once, transparently. An endpoint that
answers with the bytes themselves is read as before. The signed URL is a secret while it
lives: errors never show its query.

Transient failures are retried by obstore under ``Access.retry`` (a
:class:`~gcov_index.io.retry.RetryPolicy`); :func:`remote_error` and :func:`read_failure` are
the one place that tells a failed read (refused, missing, unreachable) from bad bytes.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import email.utils
import re
import threading
import time
import weakref
from calendar import timegm
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import parse_qsl, unquote, urljoin, urlparse, urlsplit

import obstore
from fsspec.asyn import AsyncFileSystem
from obspec_utils.readers import BlockStoreReader
from obstore.store import HTTPStore, LocalStore, S3Store

from .._log import hide, logger
from ..errors import AccessError, AuthError, first_line
from .auth import TRANSIENT_STATUS, BearerAuth, CredentialProvider, find_token_and_source
from .endpoints import PROD, Endpoints, is_loopback
from .retry import DEFAULT, RetryPolicy

log = logger(__name__)

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
    line = re.sub(r"^The operation lacked (?:the necessary privileges to complete|valid "
                  r"authentication credentials) for path [^:]*: ", "", line)
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
        return _kind(AccessError(f"{what}: no such object "
                                 f"({_no_query(first_line(missing, 200))})"), "missing")
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


class _Logged:
    """What a :class:`SourceReader` asks of a store (``head``, ``get``, ``get_ranges``), each
    request logged at debug: what, the URL, ranges and bytes, how long (obstore does not tell
    the status, nor its own retries: those happen inside it)."""

    def __init__(self, store, url: str):
        self.store, self.url = store, url
        self.via = " (at its pre-signed URL)" if isinstance(store, _SignedSource) else ""

    def _timed(self, what: str, call, done):
        if not log.isEnabledFor(10):  # logging.DEBUG
            return call()
        started = time.monotonic()
        try:
            result = call()
        except Exception as e:
            log.debug("%s %s%s failed after %.3f s: %s", what, self.url, self.via,
                      time.monotonic() - started, _no_query(first_line(e, 200)))
            raise
        log.debug("%s %s%s: %s in %.3f s", what, self.url, self.via, done(result),
                  time.monotonic() - started)
        return result

    def head(self, path: str):
        return self._timed("HEAD", lambda: self.store.head(path),
                           lambda meta: f"{meta['size']} bytes long")

    def get(self, path: str, **options):
        return self._timed("GET", lambda: self.store.get(path, **options),
                           lambda result: "the whole object")

    def get_ranges(self, path: str, **ranges):
        starts = ranges.get("starts") or []
        lengths = ranges.get("lengths") or [e - s for s, e in zip(
            starts, ranges.get("ends") or [], strict=False)]
        return self._timed(f"GET {len(starts)} ranges ({sum(lengths)} bytes) of",
                           lambda: self.store.get_ranges(path, **ranges),
                           lambda result: "received")


def _signed(store, path: str, url: str | None):
    """``store``, or for a host that gets the token (:meth:`Access.route`) the pre-signed URL
    the granule ``url`` redirects to (:class:`Redirects`), read as ``path``."""
    redirects = getattr(store, "redirects", None)
    return _SignedSource(redirects, url, store, path) if redirects is not None and url else store


def open_reader(store, path: str, url: str | None = None) -> SourceReader:
    """A file-like reader of ``path`` in an obstore ``store`` for h5py, caching 4 MiB pages;
    ``reader.failure`` is the first request that failed (see :func:`read_failure`). A store of
    a host that gets the token (from :meth:`Access.route`) is read through the pre-signed URL
    the granule ``url`` redirects to (:class:`Redirects`)."""
    store = _Logged(_signed(store, path, url), url or path)
    reader = SourceReader(store, path, block_size=PAGE, max_cached_blocks=CACHED_PAGES)
    reader.url = url
    return reader


# The scan's reader (issue 11): libhdf5 asks for ~1.6 MB of metadata spread over ~9 of a
# full-size granule's 4 MiB pages (the superblock page, two more near the head, six after the
# raw data); caching whole pages fetched 36 MB. 64 KiB blocks fetch what is asked for, and
# since libhdf5 asks one small read after another, round trips are what cost: each miss fetches
# a few blocks ahead within its page in the same concurrent round, the first read also fetches
# the head of the file, and the blocks a scan used are remembered per layout (``hint_key``) and
# fetched in that first round for the next granule of the same layout (a guess: a block it
# misses is fetched on demand, so the bytes never depend on it).
BLOCK = 64 * 1024
READ_AHEAD = 7  # blocks after a missed one, in the same 4 MiB page
HEAD_BLOCKS = 16  # the first 1 MiB: superblock, root group, the first object headers
CACHED_BLOCKS = 2048  # 128 MiB at most
_LAYOUTS: dict = {}  # hint key -> frozenset of blocks a scan of that layout used (per process)
_MAX_LAYOUTS = 256
_LAYOUTS_LOCK = threading.Lock()  # scans run in threads too


def remember_layout(key, blocks) -> None:
    """Keep the blocks a scan used under ``key`` (the next granule of that layout prefetches
    them); the oldest of more than ``_MAX_LAYOUTS`` layouts is forgotten."""
    if key is None or not blocks:
        return
    with _LAYOUTS_LOCK:
        _LAYOUTS.pop(key, None)
        while len(_LAYOUTS) >= _MAX_LAYOUTS:
            _LAYOUTS.pop(next(iter(_LAYOUTS)), None)
        _LAYOUTS[key] = frozenset(blocks)


def known_layout(*keys) -> frozenset:
    """The blocks remembered under the first of ``keys`` that has any."""
    with _LAYOUTS_LOCK:
        for key in keys:
            if key is not None and key in _LAYOUTS:
                return _LAYOUTS[key]
    return frozenset()


class FrugalReader(SourceReader):
    """A :class:`SourceReader` of 64 KiB blocks for the scan: a miss fetches the missed blocks
    and up to ``READ_AHEAD`` more after each (within its 4 MiB page) in one concurrent round;
    the first fetch adds the file's head and ``hint`` (blocks a scan of the same layout used).
    ``used`` is the set of blocks reads asked for (for :func:`remember_layout`)."""

    def __init__(self, store, path: str, hint=frozenset(), size: int | None = None):
        super().__init__(store, path, block_size=BLOCK, max_cached_blocks=CACHED_BLOCKS)
        self._size = size
        self._hint = frozenset(hint)
        self._started = False
        self.used: set[int] = set()
        self.rounds = 0  # fetches (each one concurrent round of range requests)

    def read(self, size: int = -1, /) -> bytes:
        file_size = self._get_size()
        pos = self._position
        end = file_size if size is None or size < 0 else min(file_size, pos + size)
        if end <= pos:
            return b""
        first, last = pos // BLOCK, (end - 1) // BLOCK
        if first == last:  # most of libhdf5's reads: a few bytes inside one block
            self.used.add(first)
            block = self._cache.get(first)
            if block is None:
                self._fetch([first], file_size)
                block = self._cache[first]
            self._position = end
            return block[pos - first * BLOCK:end - first * BLOCK]
        wanted = range(first, last + 1)
        self.used.update(wanted)
        missing = [i for i in wanted if i not in self._cache]
        if missing:
            self._fetch(missing, file_size)
        return super().read(size)

    def _fetch(self, missing: list[int], file_size: int) -> None:
        last = (file_size - 1) // BLOCK
        per_page = PAGE // BLOCK
        want = set(missing)
        for i in missing:
            # ahead only where reads go on from the block before (an object header or a
            # B-tree node running on); an isolated miss fetches the next block only
            ahead = READ_AHEAD if i - 1 in self.used else 1
            page_end = (i // per_page + 1) * per_page - 1
            want.update(range(i + 1, min(i + ahead, page_end, last) + 1))
        if not self._started:
            self._started = True
            want.update(range(min(HEAD_BLOCKS, last + 1)))
            want.update(i for i in self._hint if i <= last)
        want.difference_update(self._cache)
        self.rounds += 1
        self._get_blocks(sorted(want))


def open_frugal_reader(store, path: str, url: str | None = None, *, hint=frozenset(),
                       size: int | None = None) -> FrugalReader:
    """:func:`open_reader` for the scan: a :class:`FrugalReader` (``size``, when known from
    the fingerprint just taken, saves a HEAD request)."""
    store = _Logged(_signed(store, path, url), url or path)
    reader = FrugalReader(store, path, hint=hint, size=size)
    reader.url = url
    return reader


# ---------------------------------------------------------------------------------------
# pre-signed redirects

# a signed URL is asked again this long (or a fifth of its lifetime, when shorter) before it
# expires, so that no read goes out with a dying one
RENEW_MARGIN = 60.0
_REDIRECTS = (301, 302, 303, 307, 308)


class _TokenHTTPStore(HTTPStore):
    """An HTTPStore whose requests carry the Earthdata token (a trusted host); ``redirects``
    resolves the pre-signed URLs its granules redirect to."""

    redirects: Redirects | None = None


@dataclass(frozen=True)
class Signed:
    """Where a granule's endpoint redirected: a pre-signed URL (a secret while it lives: never
    shown), read with ``store`` (no ``Authorization``) until ``renew_at`` (``time.monotonic``;
    None: unknown, kept until refused)."""

    location: str = field(repr=False)
    store: HTTPStore = field(repr=False)
    renew_at: float | None
    status: int

    def fresh(self) -> bool:
        return self.renew_at is None or time.monotonic() < self.renew_at


def _epoch(text: str | None, fmt: str | None = None) -> float | None:
    if not text:
        return None
    try:
        if fmt:
            return float(timegm(time.strptime(text, fmt)))
        return email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def signed_lifetime(location: str, date: str | None = None) -> float | None:
    """Seconds a pre-signed URL has left when received, from its query (``X-Amz-Date`` +
    ``X-Amz-Expires`` as S3's SigV4, or ``Expires`` as SigV2 and CloudFront) and the
    response's ``Date`` (the server's clock; ours when absent); None when it does not say. One
    second less than it says: both times have whole seconds."""
    q = {k.lower(): v for k, v in parse_qsl(urlsplit(location).query)}
    now = _epoch(date) or time.time()
    try:
        if "x-amz-expires" in q:
            signed_at = _epoch(q.get("x-amz-date"), "%Y%m%dT%H%M%SZ") or now
            return float(q["x-amz-expires"]) - max(0.0, now - signed_at) - 1.0
        if "expires" in q:
            return float(q["expires"]) - now - 1.0
    except ValueError:
        return None
    return None


_POOL: list[concurrent.futures.ThreadPoolExecutor] = []


def _resolver_pool() -> concurrent.futures.ThreadPoolExecutor:
    """Threads for the resolves of chunk reads (one per granule at a time)."""
    if not _POOL:
        _POOL.append(concurrent.futures.ThreadPoolExecutor(16, thread_name_prefix="gcov-resolve"))
    return _POOL[0]


class Redirects:
    """Per granule URL of a host that gets the token: the pre-signed URL its endpoint
    redirects to, asked once (one GET with the token that does not follow the redirect) and
    reused until shortly before it expires; or that the host serves the bytes itself. One
    resolve per granule at a time, whatever the number of reads waiting for it, from threads
    (:meth:`get`) or coroutines (:meth:`aget`). ``resolves`` counts the requests made."""

    def __init__(self, endpoints: Endpoints, token: str, retry: RetryPolicy = DEFAULT):
        self.endpoints = endpoints
        self._token = token
        self.retry = retry
        self._lock = threading.Lock()
        self._signed: dict[str, Signed] = {}
        self._direct: set[str] = set()  # hosts (netloc) or URLs read as they are
        self._pending: dict[str, concurrent.futures.Future] = {}
        self._refused: dict[str, AuthError] = {}  # host -> its 401: the token is not valid there
        self._session = None
        self.resolves = 0

    def __repr__(self) -> str:
        return f"Redirects({len(self._signed)} signed, {len(self._direct)} direct)"

    # -- one answer per granule ----------------------------------------------------------
    def _claim(self, url: str, stale: Signed | None):
        """(answer, None) when known: a fresh Signed, or None (read the URL as it is);
        (future, owner) when a resolve is (now) under way."""
        netloc = urlsplit(url).netloc
        with self._lock:
            if netloc in self._refused:
                raise AuthError(str(self._refused[netloc]))
            if netloc in self._direct or url in self._direct:
                return None, None
            current = self._signed.get(url)
            if current is not None and current is not stale and current.fresh():
                return current, None
            future = self._pending.get(url)
            if future is not None:
                return future, False
            future = self._pending[url] = concurrent.futures.Future()
            return future, True

    def _settle(self, url: str, future: concurrent.futures.Future) -> None:
        """Resolve ``url`` and give every waiter the answer (never raises: the error is the
        future's)."""
        try:
            answer = self._resolve(url)
        except BaseException as e:
            with self._lock:
                self._pending.pop(url, None)
            future.set_exception(e)
            return
        with self._lock:
            if answer is None:
                self._signed.pop(url, None)
            else:
                self._signed[url] = answer
            self._pending.pop(url, None)
        future.set_result(answer)

    def get(self, url: str, stale: Signed | None = None) -> Signed | None:
        """The pre-signed URL to read ``url`` at (a new one when ``stale`` is what is held:
        it was refused), or None to read ``url`` itself."""
        answer, owner = self._claim(url, stale)
        if owner is None:
            return answer
        if owner:
            self._settle(url, answer)
        return answer.result()

    async def aget(self, url: str, stale: Signed | None = None) -> Signed | None:
        """:meth:`get` for coroutines: the resolve runs in a thread, once for all waiters."""
        answer, owner = self._claim(url, stale)
        if owner is None:
            return answer
        if owner:
            _resolver_pool().submit(self._settle, url, answer)
        return await asyncio.shield(asyncio.wrap_future(answer))

    # -- the request -----------------------------------------------------------------------
    def _http(self):
        import requests

        with self._lock:
            if self._session is None:
                self._session = requests.Session()
            return self._session

    def _resolve(self, url: str) -> Signed | None:
        """One GET of ``url`` with the token, not following a redirect (transient failures
        retried under the RetryPolicy): its pre-signed Location, or None when the host
        answered with the bytes."""
        import requests

        session = self._http()
        waits = iter(self.retry.delays())
        tries = 0
        while True:
            started = time.monotonic()
            tries += 1
            with self._lock:
                self.resolves += 1
            log.debug("GET %s with the token, a redirect not followed (try %d)", url, tries)
            try:
                r = session.get(url, auth=BearerAuth(self._token), headers={"Range": "bytes=0-0"},
                                allow_redirects=False, stream=True,
                                timeout=self.retry.requests_timeout)
                try:
                    status = r.status_code
                    if status >= 300:  # a redirect or an error: a small body, read
                        body = r.content[:2000].decode("utf-8", "replace")
                finally:
                    r.close()
            except requests.RequestException as e:
                wait = next(waits, None)
                log.debug("GET %s failed after %.3f s: %s%s", url, time.monotonic() - started,
                          type(e).__name__, "" if wait is None else f"; retry in {wait:g} s")
                if wait is None:
                    raise _kind(AccessError(
                        f"{url}: unreachable ({type(e).__name__}, after {self.retry.retries} "
                        "retries)"), "unreachable") from None
                time.sleep(wait)
                continue
            log.debug("GET %s: HTTP %s in %.3f s", url, status, time.monotonic() - started)
            if status in TRANSIENT_STATUS:
                wait = next(waits, None)
                if wait is not None:
                    log.debug("GET %s: retry in %g s (HTTP %s is transient)", url, wait, status)
                    time.sleep(wait)
                    continue
            break
        netloc = urlsplit(url).netloc
        if 200 <= status < 300:  # the bytes themselves: this host is read as it is
            with self._lock:
                self._direct.add(netloc)
            return None
        what = f"HTTP {status} {r.reason or ''}".rstrip()
        if status in _REDIRECTS and r.headers.get("Location"):
            return self._signed_at(url, urljoin(url, r.headers["Location"]), status,
                                   r.headers.get("Date"), started)
        code = re.search(r"<Code>(\w+)</Code>", body)
        what += f" ({code.group(1)})" if code else ""
        if status in (401, 403):
            err = _kind(AuthError(f"{url}: access refused ({what})"), "refused")
            if status == 401:
                with self._lock:
                    self._refused[netloc] = err
            raise err
        if status in (404, 410):
            raise _kind(AccessError(f"{url}: no such object ({what})"), "missing")
        retried = f", after {self.retry.retries} retries" if status in TRANSIENT_STATUS else ""
        raise _kind(AccessError(f"{url}: unreachable ({what}{retried})"), "unreachable")

    def _signed_at(self, url: str, location: str, status: int, date: str | None,
                   started: float) -> Signed | None:
        parts = urlsplit(location)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        if scheme not in ("http", "https") or not host:
            raise _kind(AccessError(f"{url}: redirected (HTTP {status}) to something else than "
                                    "an http(s) URL"), "unreachable")
        if self.endpoints.is_login(location):
            raise _kind(AuthError(f"{url}: redirected to {host} (HTTP {status}, not followed; a "
                                  "login page? the Earthdata token was not accepted)"), "refused")
        if self.endpoints.token_refusal(location) is None:
            # a host that gets the token (the same one, elsewhere on it): read the URL as it
            # is, the redirect followed by obstore
            with self._lock:
                self._direct.add(url)
            return None
        if scheme == "http" and not is_loopback(host):
            raise _kind(AuthError(f"{url}: redirected (HTTP {status}) to plain http at {host}; "
                                  "not followed (a pre-signed URL goes over https only)"),
                        "refused")
        left = signed_lifetime(location, date)
        renew_at = None
        if left is not None:
            renew_at = started + left - min(RENEW_MARGIN, max(left, 0.0) / 5)
        log.debug("%s: redirected (HTTP %s) to %s, %s", url, status, location,
                  "valid for an unknown time" if left is None else f"valid {left:.0f} s")
        store = HTTPStore.from_url(location, client_options=self.retry.obstore_client(
            scheme == "http"), retry_config=self.retry.obstore_retry())
        return Signed(location, store, renew_at, status)


def _refused(e: BaseException) -> bool:
    return failure_kind(e) == "refused"


class _SignedSource:
    """What a :class:`SourceReader` asks of a store (``head``, ``get``, ``get_ranges``), sent to
    the pre-signed URL ``url`` redirects to; asked again once when it is refused; to ``url``
    itself (``store``, ``path``) when its host serves the bytes."""

    def __init__(self, redirects: Redirects, url: str, store, path: str):
        self.redirects, self.url, self.store, self.path = redirects, url, store, path

    def _call(self, direct, signed_read):
        signed = self.redirects.get(self.url)
        if signed is None:
            return direct(self.store, self.path)
        try:
            return signed_read(signed.store)
        except Exception as e:
            if not _refused(e):
                raise
        log.debug("%s: its pre-signed URL was refused; asking for a new one", self.url)
        signed = self.redirects.get(self.url, stale=signed)
        if signed is None:
            return direct(self.store, self.path)
        return signed_read(signed.store)

    def head(self, path: str) -> dict:
        # a URL signed for GET refuses a HEAD (S3): the size from a GET of one byte
        def signed_head(store):
            result = obstore.get(store, "", options={"range": (0, 1)})
            result.bytes()
            return dict(result.meta)

        return self._call(obstore.head, signed_head)

    def get(self, path: str, *, options=None):
        return self._call(lambda s, p: obstore.get(s, p, options=options),
                          lambda s: obstore.get(s, "", options=options))

    def get_ranges(self, path: str, *, starts, ends=None, lengths=None):
        return self._call(
            lambda s, p: obstore.get_ranges(s, p, starts=starts, ends=ends, lengths=lengths),
            lambda s: obstore.get_ranges(s, "", starts=starts, ends=ends, lengths=lengths))


@dataclass
class Access:
    """How to reach granules: the archive's endpoints, the Earthdata token (held in memory
    only) and the retry policy. ``Access.from_env()`` finds all three as the CLI does."""

    endpoints: Endpoints = PROD
    token: str | None = field(default=None, repr=False)
    retry: RetryPolicy = DEFAULT
    # where the token came from, never the token: "env:EARTHDATA_TOKEN", "file:PATH", "netrc",
    # "env-login" (None: given in memory, or an earthaccess login of this process); what a
    # worker is told so it fetches its own (index/workers.py)
    token_source: str | None = field(default=None, repr=False, compare=False)
    _provider: CredentialProvider | None = field(default=None, init=False, repr=False,
                                                 compare=False)
    _stores: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _redirects: Redirects | None = field(default=None, init=False, repr=False, compare=False)
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
        found, source = find_token_and_source(token, token_file, edl_url=endpoints.edl_url)
        if source in ("argument", "earthaccess"):  # held by this process only
            source = None
        log.info("Earthdata token: %s", f"from {source}" if source else "given in memory"
                 if found else "none found (argument, file, EARTHDATA_TOKEN, earthaccess, "
                 "EARTHDATA_USERNAME/PASSWORD, ~/.netrc)")
        return cls(endpoints=endpoints, retry=retry or RetryPolicy.from_env(), token=found,
                   token_source=source)

    def __post_init__(self) -> None:
        hide(self.token)  # never in a log record, wherever it would appear

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

    @property
    def redirects(self) -> Redirects:
        """The pre-signed URLs granules of hosts that get the token redirect to."""
        with self._lock:
            if self._redirects is None:
                self._redirects = Redirects(self.endpoints, self.token or "", self.retry)
            return self._redirects

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
            return self._store(key, lambda: self._http_store(
                f"{scheme}://{parsed.netloc}", options, refusal is None)), unquote(
                parsed.path.lstrip("/"))
        raise _kind(AccessError(f"{url}: unsupported URL (use a path, s3:// or https://)"),
                    "missing")

    def _http_store(self, base: str, options: dict, with_token: bool) -> HTTPStore:
        log.debug("%s: read %s", base, "with the Earthdata token" if with_token else
                  f"without the Earthdata token ({_untrusted.get(urlsplit(base).netloc)})")
        if not with_token:
            return HTTPStore.from_url(base, client_options=options,
                                      retry_config=self.retry.obstore_retry())
        store = _TokenHTTPStore.from_url(base, client_options=options,
                                         retry_config=self.retry.obstore_retry())
        store.redirects = self.redirects  # granules there are read at their pre-signed URLs
        return store

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
        if start is not None or end is not None:
            if start is None or end is None or start < 0 or end < 0:
                raise remote_error(url, NotImplementedError(
                    f"{path}: open-ended range {start}-{end}"))
        redirects = getattr(store, "redirects", None)
        started = time.monotonic()
        what = "whole" if start is None else f"bytes {start}-{end}"
        try:
            if redirects is None:
                data = await _get(store, key, start, end)
            else:
                data = await self._signed_get(redirects, url, store, key, start, end)
        except Exception as e:
            log.debug("GET %s (%s) failed after %.3f s: %s", url, what,
                      time.monotonic() - started, _no_query(first_line(e, 200)))
            raise remote_error(url, e) from e
        log.debug("GET %s (%s): %d bytes in %.3f s", url, what, len(data),
                  time.monotonic() - started)
        if start is None:
            return data
        if len(data) != end - start:  # a short body is a failed read, not a corrupt chunk
            raise _kind(AccessError(f"{url}: unreachable (bytes {start}-{end}: {len(data)} of "
                                    f"{end - start} received)"), "unreachable")
        return data

    @staticmethod
    async def _signed_get(redirects: Redirects, url: str, store, key: str, start, end) -> bytes:
        """The bytes at the pre-signed URL ``url`` redirects to (resolved once for all the
        reads of that granule; asked again once when refused), or at ``url`` when its host
        serves them itself."""
        signed = await redirects.aget(url)
        if signed is None:
            return await _get(store, key, start, end)
        try:
            return await _get(signed.store, "", start, end)
        except Exception as e:
            if not _refused(e):
                raise
        log.debug("%s: its pre-signed URL was refused; asking for a new one", url)
        signed = await redirects.aget(url, stale=signed)
        if signed is None:
            return await _get(store, key, start, end)
        return await _get(signed.store, "", start, end)

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
        started = time.monotonic()
        try:
            meta = await obstore.head_async(store, key)
        except Exception as e:
            log.debug("HEAD %s failed after %.3f s: %s", url, time.monotonic() - started,
                      _no_query(first_line(e, 200)))
            raise remote_error(url, e) from e
        log.debug("HEAD %s: %s bytes long in %.3f s", url, meta["size"],
                  time.monotonic() - started)
        return {"name": path, "size": int(meta["size"]), "type": "file"}


async def _get(store, key: str, start: int | None, end: int | None) -> bytes:
    if start is None:
        result = await obstore.get_async(store, key)
        return (await result.bytes_async()).to_bytes()
    return (await obstore.get_range_async(store, key, start=start, end=end)).to_bytes()


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
