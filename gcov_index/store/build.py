"""build: select -> scan (parallel, cached) -> merge -> write, as one call."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .._log import logger
from .._version import __version__
from ..discover.display import dataframe, html_table, span
from ..discover.search import SearchResult
from ..discover.select import Selection, select_latest
from ..errors import BadInputError
from ..granule import Granule
from ..index.cache import ManifestCache, default_cache_dir
from ..index.manifest import GranuleManifest
from ..index.stacks import Stack, merge_stacks
from ..index.tree import VirtualTree
from ..index.workers import scan_all, stage
from ..io.access import Access, canonical_url
from ..io.fingerprint import fingerprint
from ..product import IDENT, SPEC_VERSIONS, version_tuple
from .layout import STORE_ATTR, store_format
from .update import change_record, existing, model_record
from .write import claim

FORMAT_VERSION = 3  # 2: the integrity record; 3: the model record (readers take 1 to 3)
log = logger(__name__)


# A JSON store is read whole (parsed, checked, and turned into fsspec's reference dict) by
# every open; a Parquet store reads the .zmetadata and only the refs files of what is read.
# Measured (tests/support/bigstore.py, 1000 granules, 550k references, 158 MB): JSON opens a
# grid group in 6-8 s with 730 MB RSS, Parquet in 0.1-0.2 s with 175 MB; at ~100k references
# (a 14 MB JSON, ~13 full-size granules) the JSON open passes 1 s. Above that, build says so.
JSON_NOTE_REFS = 100_000


@dataclass
class BuildResult:
    store: Path
    selection: Selection
    tree: VirtualTree
    scanned: int  # granules scanned now
    cached: int  # granules whose manifest came from the cache
    stacks: list[dict] = field(default_factory=list)  # what each stack holds (Stack.describe)
    warnings: list[str] = field(default_factory=list)  # one line each: said, never refused
    # what the build did to the store (the ``changes`` record): granuleIds added,
    # {granuleId, by} replaced, how many of the store's granules stayed, nothing to do
    added: list[str] = field(default_factory=list)
    replaced: list[dict] = field(default_factory=list)
    kept: int = 0
    unchanged: bool = False
    notes: list[str] = field(default_factory=list)  # advice, one line each (a big JSON store)

    # -- presentation (a notebook: repr, HTML, a DataFrame) --------------------------------------
    def __repr__(self) -> str:
        done = ("unchanged" if self.unchanged else
                f"{len(self.added)} added, {len(self.replaced)} replaced, {self.kept} kept")
        ids = ", ".join(s.get("id") or "root" for s in self.stacks)
        return (f"BuildResult({self.store}: {len(self.selection.selected)} granules in "
                f"{len(self.stacks)} stack{'s' if len(self.stacks) != 1 else ''}"
                f"{f' ({ids})' if ids else ''}; {done}; {self.scanned} scanned, {self.cached} "
                f"from the cache; {len(self.warnings)} warning"
                f"{'s' if len(self.warnings) != 1 else ''})")

    def rows(self) -> list[dict]:
        """One plain row per granule in the store: granuleId, time (ISO), stack, maturity,
        status (``added``, ``replaced``: a newer release or a rewritten source, ``kept``),
        replaces (the granuleIds it replaced), url."""
        record = self.tree.groups.get("", {}).get(STORE_ATTR) or {}
        stack_of = {g.get("granuleId"): g.get("stack") for g in record.get("granules", [])}
        only = self.stacks[0].get("id") if len(self.stacks) == 1 else None  # (unchanged)
        added = set(self.added)
        replaces: dict[str, list[str]] = {}
        for r in self.replaced:
            replaces.setdefault(r.get("by"), []).append(r.get("granuleId"))
        rows = []
        for g in self.selection.selected:
            status = ("added" if g.stem in added else "replaced" if g.stem in replaces
                      else "kept")
            rows.append({"granuleId": g.stem, "time": g.start.isoformat(),
                         "stack": stack_of.get(g.stem, only), "maturity": g.maturity,
                         "status": status, "replaces": ",".join(replaces.get(g.stem, [])) or None,
                         "url": g.url})
        return rows

    _COLUMNS = ("granuleId", "time", "stack", "maturity", "status", "replaces", "url")

    def to_dataframe(self):
        """The granules in the store, one row each (:meth:`rows`), ``time`` as UTC datetimes.
        Needs pandas."""
        return dataframe(self.rows(), self._COLUMNS, times=("time",))

    def _repr_html_(self) -> str:
        rows = self.rows()
        return html_table(
            f"gcov-index build: {self.store}",
            [("granules", f"{len(rows)} ({span(r['time'] for r in rows)})"),
             ("stacks", "; ".join(f"{s.get('id') or 'root'}: {s.get('granules')} granules"
                                  for s in self.stacks)),
             ("changes", "nothing new" if self.unchanged else
              f"{len(self.added)} added, {len(self.replaced)} replaced, {self.kept} kept"),
             ("scanned", f"{self.scanned} ({self.cached} from the cache)"),
             ("chunk references", self.tree.n_refs),
             *[("warning", w) for w in self.warnings], *[("note", n) for n in self.notes]],
            self._COLUMNS, rows)


def build(inputs: Sequence[str] | SearchResult, out: str | Path, *,
          access: Access | None = None, cache: bool = True, cache_dir: str | Path | None = None,
          workers: int | None = None, pool: str | None = None, client=None,
          progress: bool = False, extra_attrs: dict | None = None,
          maturity: str | Sequence[str] | None = None, replace: bool = False) -> BuildResult:
    """Index GCOV granules into one reference store of time-stacked granules.

    ``inputs`` are paths or s3/https URLs, or a :class:`SearchResult`, whose URLs are indexed
    and whose saved search (query and granules found) goes into the store's attributes.
    Granules are grouped into stacks (same track, direction, frame and grids); one stack keeps
    the product's layout at the root, several each get a root group (``BuildResult.stacks``).
    ``maturity`` (``PROVISIONAL``, ``BETA,PROVISIONAL``, ...) refuses a store that would hold
    another. ``access`` defaults to ``Access.from_env()``. Manifests are cached in
    ``cache_dir`` (default :func:`~gcov_index.index.cache.default_cache_dir`) unless
    ``cache=False``. Scans run in ``workers`` processes (None: the cores), or threads with
    ``pool="thread"`` (default: ``$GCOV_INDEX_POOL``, else processes), or on a Dask cluster with ``client`` (a ``dask.distributed.Client``):
    see :func:`~gcov_index.index.workers.scan_all`.

    Into an existing store, only what is new is added (an *incremental* build, nothing scanned
    twice: the store's granules are read back from it), a newer release replacing the store's
    one; ``BuildResult.added``, ``replaced`` and ``kept`` say what changed, and the store's
    ``changes`` record keeps it (:mod:`gcov_index.store.update`). Nothing to add: nothing is
    written (``unchanged``). ``replace=True`` makes the store hold exactly ``inputs``
    instead, as a first build.
    """
    store_format(out)  # a bad --out fails before any work
    started = time.monotonic()
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
        when = _now().isoformat(timespec="seconds")
        old = None if replace else existing(out)  # incremental: its granules are not rescanned
        known: dict[str, GranuleManifest] = {}
        if old is not None:
            extra_attrs = {**old.extra, **(extra_attrs or {})}
            if old.manifests is None:  # written before the model record: scanned (cache first)
                inputs = list(old.granules) + inputs
            else:
                known = dict(old.manifests)
                inputs = [c if (c := canonical_url(u)) in known else u for u in inputs]
                given = sorted({u for u in inputs if u in known})
                for url, fp in zip(given, _fingerprints(given, access, workers), strict=True):
                    if fp != known[url].fingerprint:  # rewritten since it was indexed
                        known.pop(url)
                inputs = [m.granule for m in known.values()] + inputs
            selection = select_latest(inputs, maturity)
        todo = [u for u in [g.url for g in selection.selected] + selection.unnamed
                if canonical_url(u) not in known]
        scanned, cached = (scan_all(todo, access, store, workers, progress, pool=pool,
                                    client=client) if todo else ([], 0))
        by_url = {**known, **{m.url: m for m in scanned}}
        if selection.unnamed:  # identified by their contents: select again, all together
            selection = _reselect(selection, [by_url[canonical_url(u)].granule for u in
                                              [g.url for g in selection.selected]
                                              + selection.unnamed], maturity)
        manifests = [by_url[canonical_url(g.url)] for g in selection.selected]
        change = change_record(old, manifests, selection.superseded, when)
        with stage("merge", progress, len(manifests), "granule"):
            tree, stacks = merge_stacks(manifests)
        if old is not None and not change["added"] and not change["replaced"]:
            log.info("%s: nothing new, left as it was (%d granules)", target.out,
                     len(manifests))
            return BuildResult(store=target.out, selection=selection, tree=tree, scanned=0,
                               cached=0, stacks=old.gi.get("stacks", []),
                               warnings=list(old.gi.get("warnings", [])),
                               kept=len(manifests), unchanged=True)
        warnings = _warnings(selection, stacks, manifests)
        extra_attrs = {**(extra_attrs or {}), "model": model_record(stacks),
                       "superseded": _superseded(old, selection),
                       "changes": [*(old.gi.get("changes", []) if old else []), change]}
        tree.groups[""] = tree.groups[""] | {STORE_ATTR: _provenance(stacks, selection, tree,
                                                                    extra_attrs, warnings, when)}
        path = target.write(tree, progress)
    log.info("wrote %s: %d granules, %d chunk references, %d stack%s (%d scanned, %d from "
             "the cache, %d added, %d replaced) in %.2f s", path, len(manifests), tree.n_refs,
             len(stacks), "s" * (len(stacks) != 1), len(scanned) - cached, cached,
             len(change["added"]), len(change["replaced"]), time.monotonic() - started)
    return BuildResult(store=path, selection=selection, tree=tree,
                       scanned=len(scanned) - cached, cached=cached,
                       stacks=[s.describe() for s in stacks], warnings=warnings,
                       added=change["added"], replaced=change["replaced"],
                       kept=len(manifests) - len(change["added"]),
                       notes=_notes(out, tree))


def _fingerprints(urls: list[str], access: Access, workers: int | None) -> list:
    """The sources' fingerprints now (a HEAD or stat each, no scan)."""
    if not urls:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers or 8, len(urls)))) as pool:
        return list(pool.map(lambda u: fingerprint(u, access), urls))


def _superseded(old, selection: Selection) -> list[dict]:
    """Every release left out, by this build or an earlier one into the same store, in time
    order of the acquisition."""
    now = [{"granuleId": o.stem, "url": canonical_url(o.url) if o.url else o.url, "by": k.stem,
            "_start": o.start}
           for o, k in selection.superseded]
    ids = {s["granuleId"] for s in now}
    for s in (old.gi.get("superseded", []) if old else []):
        if s.get("granuleId") not in ids:
            try:
                start = Granule.parse(s.get("url") or s["granuleId"]).start
            except (BadInputError, ValueError, KeyError):
                start = datetime.min
            now.append({**s, "_start": start})
    now.sort(key=lambda s: (s["_start"], s["granuleId"]))
    return [{k: v for k, v in s.items() if k != "_start"} for s in now]


def _notes(out, tree: VirtualTree) -> list[str]:
    """Advice on the format: a JSON store big enough that every open is slow (JSON_NOTE_REFS)."""
    if store_format(out) != "json" or tree.n_refs <= JSON_NOTE_REFS:
        return []
    stem = str(out)[: -len(".json")]
    return [f"{out} holds {tree.n_refs} chunk references: a JSON store is read whole at every "
            f"open (over {JSON_NOTE_REFS} references, more than a second); {stem}.parquet "
            "opens one group at a time (or use .icechunk)"]


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
                extra: dict | None, warnings: list[str], when: str | None = None) -> dict:
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
        "created": when or _now().isoformat(timespec="seconds"),
        "granules": granules,
        "stacks": [s.describe() for s in stacks],
        "superseded": [{"granuleId": old.stem, "url": old.url, "by": new.stem}
                       for old, new in selection.superseded],
        "warnings": warnings,
        "n_chunk_refs": tree.n_refs,
        "n_bytes_referenced": tree.n_bytes_referenced,
        **(extra or {}),
    }


def _now() -> datetime:
    """Now, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds: reproducible-builds.org)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), UTC)
        except ValueError:
            raise BadInputError(f"SOURCE_DATE_EPOCH={epoch!r}: not a whole number of seconds") \
                from None
    return datetime.now(UTC)
