"""Incremental builds: the granules already in a store, taken back from the store itself.

A store written by gcov-index 3+ (``format_version`` 3) keeps, in its root ``gcov_index``
attributes, a ``model`` record: what the merge needs of each granule and cannot read back from
the references (each array's shape, dtype, dimension names, attributes, codecs, whether it was
a dimension scale or materialised; each group's attributes). Values are stored once and named
by their index in ``model.parts`` (granules of one track share nearly all of them). With the
chunk references and inlined values of the store, that gives back every granule's
:class:`~gcov_index.index.manifest.GranuleManifest` exactly, without reading the granule: an
incremental build scans only what is new, even with the manifest cache off or empty.

The ``changes`` record (a list, oldest first, kept across builds) says what each build did::

    {"time": "2026-11-26T20:41:07+00:00",          # when the build wrote the store
     "added": ["NISAR_L2_PR_GCOV_..._001", ...],   # granuleIds new in the store
     "replaced": [{"granuleId": "..._001",         # a granule taken out of the store ...
                   "by": "..._002"}]}              # ... for a newer release of its acquisition

A first build records every granule as added. A build that would change nothing writes
nothing (and records nothing).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..discover.query import SearchQuery
from ..discover.search import SearchResult, search
from ..errors import BadInputError, ValidationError
from ..granule import Granule
from ..index.manifest import ArrayManifest, GranuleManifest
from ..index.stacks import Stack
from ..io.access import canonical_url
from ..io.endpoints import Endpoints
from ..io.fingerprint import Fingerprint
from .layout import STORE_ATTR, StoreHandle, opened

MODEL_VERSION = 1
_SKIP = ("refs", "inline", "data", "path")


class _Parts:
    """JSON values stored once each, named by their index."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._index: dict[str, int] = {}

    def add(self, value: Any) -> int:
        key = json.dumps(value, sort_keys=True, separators=(",", ":"))
        if key not in self._index:
            self._index[key] = len(self.values)
            self.values.append(value)
        return self._index[key]


def _array_part(a: ArrayManifest) -> dict:
    d = {k: v for k, v in asdict(a).items() if k not in _SKIP}
    if a.data is not None:
        d["data"] = {"dtype": a.data.dtype.str, "shape": list(a.data.shape)}
    return d


def model_record(stacks: list[Stack]) -> dict:
    """The ``model`` record of a store whose granules are those of ``stacks`` (in the order of
    the provenance's ``granules``: stacks in order, each in time order)."""
    parts = _Parts()
    granules: list[dict] = []
    base: dict[str, dict] = {}
    for s in stacks:
        for m in sorted(s.manifests, key=lambda m: m.start_time):
            now = {"arrays": {p: parts.add(_array_part(a)) for p, a in m.arrays.items()},
                   "groups": {g: parts.add(attrs) for g, attrs in m.groups.items()}}
            rec = {"granule": m.granule.filename, "root_attrs": parts.add(m.root_attrs)}
            for k, d in now.items():  # the first granule's in full, the others' differences
                if not granules:
                    rec[k] = d
                else:
                    rec[k] = {p: i for p, i in d.items() if base[k].get(p) != i} | {
                        p: None for p in base[k] if p not in d}
            base = base or now
            granules.append(rec)
    return {"version": MODEL_VERSION, "parts": parts.values, "granules": granules}


def _expand(records: list[dict], key: str) -> list[dict[str, int]]:
    base = records[0][key]
    return [base] + [{p: i for p, i in (base | r[key]).items() if i is not None}
                     for r in records[1:]]


def _stack_dim(names: set[str]) -> str:
    return "zeroDopplerStartTime" if "time" in names else "time"  # as merge names it


def _nested(prefix: str, path: str) -> str:
    return f"{prefix}/{path}" if prefix else path


def _chunk(v: Any) -> tuple[int, int] | bytes:
    if isinstance(v, str):
        if not v.startswith("base64:"):
            return v.encode()
        return base64.b64decode(v[len("base64:"):])
    return int(v[1]), int(v[2])


def manifests_from_store(h: StoreHandle) -> dict[str, GranuleManifest] | None:
    """Every granule of the store as the manifest its scan gave (by URL), or None when the
    store keeps no ``model`` record (written before format 3: its granules are scanned)."""
    gi = h.attrs
    model = gi.get("model")
    if not isinstance(model, dict) or model.get("version") != MODEL_VERSION:
        return None
    parts, records = model.get("parts"), model.get("granules")
    if not isinstance(parts, list) or not isinstance(records, list) or \
            len(records) != len(gi["granules"]):
        raise BadInputError(f"{h.name}: its model record does not match its granules (damaged?)")
    try:
        return _manifests(h, gi, parts, records)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        raise BadInputError(f"{h.name}: its model record does not match its references "
                            "(damaged?); build the store afresh under another --out") from None


def _manifests(h: StoreHandle, gi: dict, parts: list, records: list[dict]
               ) -> dict[str, GranuleManifest]:
    out: dict[str, GranuleManifest] = {}
    arrays_all, groups_all = _expand(records, "arrays"), _expand(records, "groups")
    for stack in h.stacks:
        members = stack["members"]
        group, T = stack["group"], len(members)
        arrays_of = {i: arrays_all[i] for i, _ in members}
        by_group: dict[str, set[str]] = {}
        for arrays in arrays_of.values():
            for p in arrays:
                g, _, name = p.rpartition("/")
                by_group.setdefault(g, set()).add(name)
        refs_cache: dict[str, dict] = {}
        for t, (i, g) in enumerate(members):
            rec = records[i]
            arrays = {}
            for p, part in arrays_of[i].items():
                a = _array(h, parts[part], p, _nested(group, p), t, T,
                           _stack_dim(by_group[p.rpartition("/")[0]]), refs_cache)
                arrays[p] = a
            fp = Fingerprint.from_dict(g["fingerprint"])
            out[g["url"]] = GranuleManifest(
                granule=replace(Granule.parse(rec["granule"]), url=g["url"]), url=g["url"],
                fingerprint=fp, start_time=np.datetime64(g["time"], "ns"),
                root_attrs=parts[rec["root_attrs"]],
                groups={k: parts[v] for k, v in groups_all[i].items()}, arrays=arrays)
    return out


def _array(h: StoreHandle, part: dict, path: str, tree_path: str, t: int, T: int, stack: str,
           refs_cache: dict[str, dict]) -> ArrayManifest:
    meta = h.meta[f"{tree_path}/.zarray"]
    dims = (h.meta.get(f"{tree_path}/.zattrs") or {}).get("_ARRAY_DIMENSIONS", [])
    a = ArrayManifest(path=path, **{k: v for k, v in part.items() if k != "data"})
    a.shape, a.dims = tuple(a.shape), tuple(a.dims)
    a.chunks = None if a.chunks is None else tuple(a.chunks)
    stacked = bool(dims) and dims[0] == stack and len(meta["shape"]) == len(a.shape) + 1 \
        and meta["shape"][0] == T
    if tree_path not in refs_cache:  # each array's references read once, split by time step
        prefix = len(tree_path) + 1
        refs = {k[prefix:]: v for k, v in h.array_refs(tree_path).items()}
        by_t: dict[int, dict] = {}
        if stacked:
            for k, v in refs.items():
                head, _, rest = k.partition(".")
                by_t.setdefault(int(head), {})[rest] = v
        refs_cache[tree_path] = (refs, by_t)
    refs, by_t = refs_cache[tree_path]
    mine = by_t.get(t, {}) if stacked else refs
    if "data" in part:
        want = part["data"]
        block_shape = meta["shape"][1:] if stacked else meta["shape"]
        key = ".".join("0" for _ in block_shape) or ("" if stacked else "0")
        raw = _chunk(mine[key])
        data = np.frombuffer(raw, dtype=meta["dtype"]).reshape(block_shape)
        if data.ndim:  # padded to the longest granule's length: cut back to its own
            data = data[tuple(slice(0, n) for n in want["shape"])]
        a.data = np.array(data, dtype=want["dtype"]).reshape(want["shape"])
        return a
    for k, v in mine.items():
        c = _chunk(v)
        if isinstance(c, bytes):
            a.inline[k] = c
        else:
            a.refs[k] = c
    return a


# keys of the provenance that every build writes afresh; any other (``search``) is carried over
OWN_KEYS = frozenset({"format_version", "software", "created", "granules", "stacks",
                      "superseded", "warnings", "n_chunk_refs", "n_bytes_referenced", "model",
                      "changes", "integrity"})


@dataclass
class Existing:
    """The store an incremental build adds to, read once (under the build's lock)."""

    gi: dict  # its provenance (root ``gcov_index`` attributes)
    manifests: dict[str, GranuleManifest] | None  # by URL; None: no model record (older store)

    @property
    def extra(self) -> dict:
        return {k: v for k, v in self.gi.items() if k not in OWN_KEYS}

    @property
    def granules(self) -> dict[str, dict]:
        return {g["url"]: g for g in self.gi["granules"]}


def existing(out: str | Path) -> Existing | None:
    """The gcov-index store at ``out``, or None when there is none yet, or when it lists no
    granules (nothing to keep: it is replaced, as before)."""
    if not os.path.lexists(out):
        return None
    with opened(out, verify=False) as h:
        gi = (h.meta.get(".zattrs") or {}).get(STORE_ATTR)
        if not isinstance(gi, dict) or not gi.get("granules"):
            return None
        try:
            h.verify()
        except ValidationError as e:  # not added to: what it holds is not to be trusted
            raise ValidationError(str(e).removesuffix("; build it again") +
                                  "; build it again with --replace (replace=True)") from None
        # an Icechunk repository's references are not read back here (yet): its granules come
        # from the manifest cache, else are scanned again, as a store written before format 3
        return Existing(gi=h.attrs, manifests=None if h.fmt == "icechunk"
                        else manifests_from_store(h))


def change_record(old: Existing | None, kept: list[GranuleManifest],
                  superseded: list[tuple[Granule, Granule]], when: str) -> dict:
    """What this build does to the store (see the module's docstring)."""
    before = old.granules if old else {}
    now = {m.url for m in kept}
    added = [m for m in kept if m.url not in before
             or m.fingerprint.to_dict() != before[m.url].get("fingerprint")]
    by = {canonical_url(o.url): k.stem for o, k in superseded if o.url}
    replaced = [{"granuleId": g["granuleId"], "by": by.get(url, g["granuleId"])}
                for url, g in before.items()
                if url not in now or any(m.url == url for m in added)]
    return {"time": when, "added": [m.granule.stem for m in added
                                    if m.url not in before],
            "replaced": replaced}


def saved_search(store: str | Path, *, cmr_host: str | None = None) -> SearchResult:
    """Run the search a store was built from again (its ``search`` record: the query, the
    protocol and the CMR host, unless ``cmr_host`` says otherwise): what it finds now, for
    :func:`~gcov_index.store.build.build` into the same store (``build --update``)."""
    with opened(store) as h:
        rec = h.attrs.get("search")
    if not isinstance(rec, dict) or not isinstance(rec.get("query"), dict):
        raise BadInputError(f"--update {store}: the store has no saved search (it was built "
                            "from granules; add more with: gcov-index build GRANULE... --out "
                            f"{store})")
    query = SearchQuery.from_dict(rec["query"])
    return search(query, protocol=rec.get("protocol", "https"),
                  endpoints=Endpoints.from_env(cmr_host=cmr_host or rec.get("cmr_host")))
