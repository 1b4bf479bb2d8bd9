"""build: select -> scan (parallel, cached) -> merge -> write, as one call."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .._version import __version__
from ..discover.search import SearchResult
from ..discover.select import Selection, select_latest
from ..errors import BadInputError
from ..index.cache import ManifestCache, default_cache_dir
from ..index.manifest import GranuleManifest
from ..index.scan import scan
from ..index.stacks import Stack, merge_stacks
from ..index.tree import VirtualTree
from ..io.access import Access, canonical_url
from ..io.fingerprint import fingerprint
from ..product import IDENT, SPEC_VERSIONS, version_tuple
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
    stacks: list[dict] = field(default_factory=list)  # what each stack holds (Stack.describe)
    warnings: list[str] = field(default_factory=list)  # one line each: said, never refused


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
          workers: int = 4, progress: bool = False, extra_attrs: dict | None = None,
          maturity: str | Sequence[str] | None = None) -> BuildResult:
    """Index GCOV granules into one reference store of time-stacked granules.

    ``inputs`` are paths or s3/https URLs, or a :class:`SearchResult`, whose URLs are indexed
    and whose saved search (query and granules found) goes into the store's attributes.
    Granules are grouped into stacks (same track, direction, frame and grids); one stack keeps
    the product's layout at the root, several each get a root group (``BuildResult.stacks``).
    ``maturity`` (``PROVISIONAL``, ``BETA,PROVISIONAL``, ...) refuses a store that would hold
    another. ``access`` defaults to ``Access.from_env()``. Manifests are cached in
    ``cache_dir`` (default :func:`~gcov_index.index.cache.default_cache_dir`) unless
    ``cache=False``.
    """
    store_format(out)  # a bad --out fails before any work
    if isinstance(inputs, SearchResult):
        extra_attrs = {"search": inputs.record(), **(extra_attrs or {})}
        inputs = inputs.urls
    inputs = list(inputs)
    access = access or Access.from_env()
    selection = select_latest(inputs, maturity)
    if not selection.selected and not selection.unnamed:
        raise BadInputError(f"no GCOV data granules among the {len(inputs)} inputs")
    with claim(out, access) as target:  # locked, checked, leftovers gone: before any scan
        store = ManifestCache((cache_dir or default_cache_dir()) if cache else None)
        urls = [g.url for g in selection.selected] + selection.unnamed
        manifests, cached = scan_all(urls, access, store, workers, progress)
        if selection.unnamed:  # identified by their contents: select again, all together
            by_url = {m.url: m for m in manifests}
            selection = _reselect(selection, [m.granule for m in manifests], maturity)
            manifests = [by_url[canonical_url(g.url)] for g in selection.selected]
        tree, stacks = merge_stacks(manifests)
        warnings = _warnings(selection, stacks, manifests)
        tree.groups[""] = tree.groups[""] | {STORE_ATTR: _provenance(stacks, selection, tree,
                                                                    extra_attrs, warnings)}
        path = target.write(tree)
    return BuildResult(store=path, selection=selection, tree=tree,
                       scanned=len(manifests) - cached, cached=cached,
                       stacks=[s.describe() for s in stacks], warnings=warnings)


def _reselect(first: Selection, granules: list, maturity) -> Selection:
    again = select_latest(granules, maturity)
    again.skipped = first.skipped
    again.superseded = sorted(first.superseded + again.superseded, key=lambda p: p[0].start)
    return again


def _spec_version(m: GranuleManifest) -> str | None:
    a = m.arrays.get(f"{IDENT}/productSpecificationVersion")
    if a is None or a.data is None:
        return None
    v = a.data.reshape(-1)[0] if a.data.shape else a.data[()]
    return (v.decode() if isinstance(v, bytes) else str(v)).strip()


def _warnings(selection: Selection, stacks: list[Stack], ms: list[GranuleManifest]) -> list[str]:
    """What the user should know about what was indexed: said, never refused."""
    out = list(selection.notes)
    newest = max(SPEC_VERSIONS, key=version_tuple)
    newer = sorted({v for m in ms if (v := _spec_version(m)) and version_tuple(v) >
                    version_tuple(newest)})
    for v in newer:
        names = [m.granule.filename for m in ms if _spec_version(m) == v]
        out.append(f"{names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''}: "
                   f"product specification {v} is newer than any gcov-index knows ({newest}); "
                   "indexed as found, check the result")
    out += [w for s in stacks if (w := s.mixed_maturity)]
    if len(stacks) > 1:
        out.append(f"{len(stacks)} stacks (grids or passes differ): "
                   + ", ".join(f"{s.id} ({len(s.manifests)})" for s in stacks)
                   + "; each is a root group of the store")
    return out


def _provenance(stacks: list[Stack], selection: Selection, tree: VirtualTree,
                extra: dict | None, warnings: list[str]) -> dict:
    """The store's own record; ``granules`` in the order of the tree's URLs (``{{uN}}``)."""
    granules = []
    for s in stacks:
        for m in sorted(s.manifests, key=lambda m: m.start_time):
            granules.append({"url": m.url, "granuleId": m.granule.stem, "time": str(m.start_time),
                             "stack": s.id, "maturity": m.granule.maturity,
                             "fingerprint": m.fingerprint.to_dict()})
    assert [g["url"] for g in granules] == tree.urls
    return {
        "format_version": FORMAT_VERSION,
        "software": f"gcov-index {__version__}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "granules": granules,
        "stacks": [s.describe() for s in stacks],
        "superseded": [{"granuleId": old.stem, "url": old.url, "by": new.stem}
                       for old, new in selection.superseded],
        "warnings": warnings,
        "n_chunk_refs": tree.n_refs,
        "n_bytes_referenced": tree.n_bytes_referenced,
        **(extra or {}),
    }
