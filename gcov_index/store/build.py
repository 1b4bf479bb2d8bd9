"""build: select -> scan (parallel, cached) -> merge -> write, as one call."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .._version import __version__
from ..discover.search import SearchResult
from ..discover.select import Selection, select_latest
from ..errors import BadInputError
from ..index.cache import ManifestCache, default_cache_dir
from ..index.manifest import GranuleManifest
from ..index.merge import merge
from ..index.scan import scan
from ..index.tree import VirtualTree
from ..io.access import Access, canonical_url
from ..io.fingerprint import fingerprint
from .layout import STORE_ATTR, store_format
from .write import claim

FORMAT_VERSION = 2  # 2: the integrity record (readers take 1 and 2)


@dataclass
class BuildResult:
    store: Path
    selection: Selection
    tree: VirtualTree
    scanned: int  # granules scanned now
    cached: int  # granules whose manifest came from the cache


def scan_all(urls: Sequence[str], access: Access, cache: ManifestCache, workers: int = 4,
             progress: bool = False) -> tuple[list[GranuleManifest], int]:
    """Scan granules in parallel (cache first); returns the manifests and how many were cached."""
    cached = 0

    def one(url: str) -> GranuleManifest:
        nonlocal cached
        fp = fingerprint(url, access)
        m = cache.get(canonical_url(url), fp)
        if m is not None:
            cached += 1
            return m
        m = scan(url, access, fp)
        cache.put(m)
        return m

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(urls), desc="scan", unit="granule", file=sys.stderr)
    out: list[GranuleManifest] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(urls)))) as pool:
        for m in pool.map(one, urls):
            out.append(m)
            if bar:
                bar.update()
    if bar:
        bar.close()
    return out, cached


def build(inputs: Sequence[str] | SearchResult, out: str | Path, *,
          access: Access | None = None, cache: bool = True, cache_dir: str | Path | None = None,
          workers: int = 4, progress: bool = False, extra_attrs: dict | None = None
          ) -> BuildResult:
    """Index GCOV granules into one time-stacked reference store.

    ``inputs`` are paths or s3/https URLs, or a :class:`SearchResult`, whose URLs are indexed
    and whose saved search (query and granules found) goes into the store's attributes.
    ``access`` defaults to ``Access.from_env()``. Manifests are cached in ``cache_dir``
    (default :func:`~gcov_index.index.cache.default_cache_dir`) unless ``cache=False``.
    """
    store_format(out)  # a bad --out fails before any work
    if isinstance(inputs, SearchResult):
        if inputs.mixed_frames():
            raise BadInputError(inputs.mixed_frames())
        extra_attrs = {"search": inputs.record(), **(extra_attrs or {})}
        inputs = inputs.urls
    access = access or Access.from_env()
    selection = select_latest(inputs)
    if not selection.selected:
        raise BadInputError(f"no GCOV data granules among the {len(list(inputs))} inputs")
    with claim(out) as target:  # locked, checked, leftovers gone: before any scan
        store = ManifestCache((cache_dir or default_cache_dir()) if cache else None)
        urls = [g.url for g in selection.selected]
        manifests, cached = scan_all(urls, access, store, workers, progress)
        tree = merge(manifests)
        tree.groups[""] = tree.groups[""] | {STORE_ATTR: _provenance(manifests, selection, tree,
                                                                    extra_attrs)}
        path = target.write(tree)
    return BuildResult(store=path, selection=selection, tree=tree,
                       scanned=len(manifests) - cached, cached=cached)


def _provenance(ms: list[GranuleManifest], selection: Selection, tree: VirtualTree,
                extra: dict | None) -> dict:
    ms = sorted(ms, key=lambda m: m.start_time)
    return {
        "format_version": FORMAT_VERSION,
        "software": f"gcov-index {__version__}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "granules": [{"url": m.url, "granuleId": m.granule.stem, "time": str(m.start_time),
                      "fingerprint": m.fingerprint.to_dict()} for m in ms],
        "superseded": [{"granuleId": old.stem, "url": old.url, "by": new.stem}
                       for old, new in selection.superseded],
        "n_chunk_refs": tree.n_refs,
        "n_bytes_referenced": tree.n_bytes_referenced,
        **(extra or {}),
    }
