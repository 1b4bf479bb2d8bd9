"""Where granule scans run: worker processes (default), threads, or a Dask cluster.

Cache lookups and fingerprints stay in the caller; only scans go out, and manifests come back.
What a worker is sent is an :class:`AccessSpec`: endpoints, retry policy and *where* the
Earthdata token comes from (an env var name, a file path, ~/.netrc), never a token, key or
session token. Each worker process builds its own :class:`Access` from it once and fetches its
own temporary S3 credentials.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from .._log import logger
from ..errors import BadInputError
from ..io.access import Access, canonical_url
from ..io.endpoints import Endpoints
from ..io.fingerprint import Fingerprint, fingerprint
from ..io.retry import RetryPolicy
from .cache import ManifestCache
from .manifest import GranuleManifest
from .scan import scan

POOLS = ("process", "thread")
POOL_ENV = "GCOV_INDEX_POOL"  # the default pool when none is given (else "process")
START_METHOD = "spawn"  # forkserver's server keeps the environment of its first use: stale tokens
log = logger(__name__)


@dataclass(frozen=True)
class AccessSpec:
    """How a worker gets access: picklable and free of secrets."""

    endpoints: Endpoints
    retry: RetryPolicy
    token_source: str | None  # "env:NAME", "file:PATH", "netrc", "env-login" or None (no token)

    @classmethod
    def of(cls, access: Access) -> AccessSpec:
        return cls(access.endpoints, access.retry, access.token_source)

    def access(self) -> Access:
        """An Access of this worker's own: the token read where the spec says."""
        src = self.token_source
        if src is None:
            return Access(endpoints=self.endpoints, retry=self.retry)
        if src.startswith("file:"):
            return Access.from_env(token_file=src[5:], endpoints=self.endpoints,
                                   retry=self.retry)
        if src.startswith("env:"):
            token = os.environ.get(src[4:])
            return Access(endpoints=self.endpoints, retry=self.retry, token=token, token_source=src)
        return Access.from_env(endpoints=self.endpoints, retry=self.retry)  # a login: netrc, env


_ACCESS: dict[AccessSpec, Access] = {}  # per worker process: credentials fetched once, reused


def worker_access(spec: AccessSpec) -> Access:
    if spec not in _ACCESS:
        _ACCESS[spec] = spec.access()
    return _ACCESS[spec]


def scan_task(url: str, spec: AccessSpec, fp: Fingerprint) -> GranuleManifest:
    """What runs in a worker: one scan with the worker's own Access."""
    return _scan(url, worker_access(spec), fp)


def _scan(url: str, access: Access, fp: Fingerprint) -> GranuleManifest:
    """One scan, its start and end logged at debug (in a worker process or on a Dask worker,
    in that process's logging: the caller logs each manifest as it comes back)."""
    log.debug("scan %s: started (%d bytes)", url, fp.size)
    started = time.monotonic()
    m = scan(url, access, fp)
    log.debug("scan %s: done in %.2f s, %d arrays", url, time.monotonic() - started,
              len(m.arrays))
    return m


def _remote(url: str) -> bool:
    url = str(url)
    return "://" in url and not url.lower().startswith("file://")


def _spec(access: Access, urls: Sequence[str], where: str) -> AccessSpec | None:
    """The spec to send, or None when the token is held in memory only and a URL needs it."""
    if access.token and access.token_source is None and any(map(_remote, urls)):
        if where == "dask":
            raise BadInputError("the Earthdata token was given in memory; Dask workers fetch "
                                "their own: set EARTHDATA_TOKEN or --token-file on them")
        return None
    return AccessSpec.of(access)


def default_workers(n: int) -> int:
    return max(1, min(os.cpu_count() or 1, n))


def scan_all(urls: Sequence[str], access: Access, cache: ManifestCache,
             workers: int | None = None, progress: bool = False, *, pool: str | None = None,
             client=None) -> tuple[list[GranuleManifest], int]:
    """Manifests of ``urls`` in order (cache first, the rest scanned) and how many were cached.

    ``pool`` "process" (default: ``$GCOV_INDEX_POOL``, else "process") or "thread" with ``workers`` at once (None: the cores, at most
    one per granule); ``client`` a ``dask.distributed.Client``: the scans run on its cluster.
    A process pool given a token held in memory only (not from env, file or netrc) scans in
    threads instead, so the token never leaves this process.
    """
    pool = pool or os.environ.get(POOL_ENV) or "process"
    if pool not in POOLS:
        raise BadInputError(f"pool {pool!r}: expected one of {', '.join(POOLS)}")
    out: list[GranuleManifest | None] = [None] * len(urls)
    todo: list[tuple[int, str, Fingerprint]] = []
    for i, url in enumerate(urls):
        fp = fingerprint(url, access)
        m = cache.get(canonical_url(url), fp)
        if m is None:
            todo.append((i, url, fp))
        else:
            log.debug("%s: from the cache", url)
            out[i] = m
    cached = len(urls) - len(todo)
    log.info("%d granules: %d from the cache, %d to scan", len(urls), cached, len(todo))
    bar = _bar(len(urls), "scan", "granule", progress, initial=cached)
    if todo:
        n = workers or default_workers(len(todo))
        started = time.monotonic()
        elsewhere = True  # scans in other processes: their own log records are not seen here
        if client is not None:
            log.info("scanning %d granules on the Dask cluster at %s", len(todo),
                     getattr(client.scheduler, "address", "?"))
            done = _on_dask(client, todo, _spec(access, [u for _, u, _ in todo], "dask"))
        else:
            spec = _spec(access, [u for _, u, _ in todo], pool) if pool == "process" else None
            log.info("scanning %d granules in %d %s", len(todo), max(1, min(n, len(todo))),
                     "threads" if spec is None else "worker processes")
            elsewhere = spec is not None
            if spec is None:
                ex: Executor = ThreadPoolExecutor(max_workers=max(1, min(n, len(todo))))
                task: Callable = lambda url, fp: _scan(url, access, fp)  # noqa: E731
            else:
                ex = ProcessPoolExecutor(max_workers=max(1, min(n, len(todo))),
                                         mp_context=multiprocessing.get_context(START_METHOD))
                task = lambda url, fp: ex.submit(scan_task, url, spec, fp)  # noqa: E731
            done = _on_pool(ex, todo, task, spec is None)
        try:
            for k, (i, m) in enumerate(done, 1):
                out[i] = m
                cache.put(m)
                if elsewhere:
                    log.debug("scanned %s (%d of %d, %.2f s after the first was sent)", m.url,
                              k, len(todo), time.monotonic() - started)
                if bar:
                    bar.update()
        finally:
            if bar:
                bar.close()
        log.info("scanned %d granules in %.2f s", len(todo), time.monotonic() - started)
    elif bar:
        bar.close()
    return [m for m in out if m is not None], cached


def _on_pool(ex: Executor, todo, task, threads: bool):
    with ex:
        futures = {(ex.submit(task, url, fp) if threads else task(url, fp)): i
                   for i, url, fp in todo}
        try:
            for f in as_completed(futures):
                yield futures[f], f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _on_dask(client, todo, spec: AccessSpec | None):
    from distributed import as_completed as dask_completed

    run = uuid.uuid4().hex[:8]
    futures = client.map(scan_task, [u for _, u, _ in todo], [spec] * len(todo),
                         [fp for _, _, fp in todo], key=[f"scan-{run}-{i}" for i, _, _ in todo],
                         pure=False)
    index = {f.key: i for f, (i, _, _) in zip(futures, todo, strict=True)}
    try:
        for f in dask_completed(futures, loop=client.loop):  # not the default client's
            yield index[f.key], f.result()
    except BaseException:
        client.cancel(futures)
        raise


@contextlib.contextmanager
def stage(desc: str, progress: bool, total: int = 1, unit: str = "step"):
    """A bar over one step of the build that has no finer progress of its own (merge)."""
    bar = _bar(total, desc, unit, progress)
    try:
        yield bar
        if bar:
            bar.update(total - bar.n)
    finally:
        if bar:
            bar.close()


def _bar(total: int, desc: str, unit: str, progress: bool, initial: int = 0):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr)
