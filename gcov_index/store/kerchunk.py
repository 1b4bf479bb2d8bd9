"""The model as kerchunk references: the writer takes a :class:`VirtualTree` (as VirtualiZarr's
``writers/kerchunk.py`` takes a dataset) and gives kerchunk version 1 references."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from ..index.tree import VirtualArray, VirtualTree
from .layout import INTEGRITY, STORE_ATTR, dumps_json_attrs, integrity_record, metadata_of


def zarray(a: VirtualArray) -> dict:
    """The zarr v2 ``.zarray`` of one array."""
    return {"zarr_format": 2, "shape": list(a.shape), "chunks": list(a.chunks),
            "dtype": a.dtype, "compressor": a.compressor, "filters": a.filters or None,
            "fill_value": a.fill_value, "order": "C", "dimension_separator": "."}


def tree_to_refs(tree: VirtualTree) -> dict:
    """Kerchunk references, version 1, one URL template per granule (``u0``, ``u1``, ...)."""
    refs: dict[str, Any] = {}
    for path, attrs in tree.groups.items():
        prefix = f"{path}/" if path else ""
        refs[f"{prefix}.zgroup"] = dumps_json_attrs({"zarr_format": 2})
        refs[f"{prefix}.zattrs"] = dumps_json_attrs(attrs)
    for path, a in tree.arrays.items():
        refs[f"{path}/.zarray"] = dumps_json_attrs(zarray(a))
        refs[f"{path}/.zattrs"] = dumps_json_attrs({"_ARRAY_DIMENSIONS": a.dims, **a.attrs})
        for key, v in a.chunks_ref.items():
            if isinstance(v, tuple):
                refs[f"{path}/{key}"] = [f"{{{{u{v[0]}}}}}", v[1], v[2]]
            else:
                refs[f"{path}/{key}"] = "base64:" + base64.b64encode(v).decode()
    return {"version": 1, "templates": {f"u{i}": u for i, u in enumerate(tree.urls)},
            "refs": refs}


def expand_templates(refs: dict) -> dict:
    """The references with full URLs (kerchunk's Parquet layout has no templates)."""
    templates = refs.get("templates", {})
    out = {}
    for k, v in refs["refs"].items():
        if isinstance(v, list) and v and isinstance(v[0], str) and v[0].startswith("{{"):
            v = [templates[v[0][2:-2]], *v[1:]]
        out[k] = v
    return {"version": 1, "refs": out}


def consolidated(refs: dict) -> dict:
    """The refs with zarr v2's ``.zmetadata`` (every group's and array's metadata in one key),
    so that a reader opens the whole tree from one key instead of one lookup per node."""
    meta = {"zarr_consolidated_format": 1, "metadata": metadata_of(refs["refs"])}
    return {**refs, "refs": {**refs["refs"], ".zmetadata": dumps_json_attrs(meta)}}


def with_integrity(refs: dict) -> dict:
    """The refs with their integrity record (metadata digest, per-array reference counts and
    digests) in the root ``gcov_index`` attributes; refs without those attributes as they are."""
    r = refs["refs"]
    root = json.loads(r.get(".zattrs", "{}"))
    if not isinstance(root.get(STORE_ATTR), dict):
        return refs
    record = integrity_record(r, metadata_of(r))
    root = {**root, STORE_ATTR: {**root[STORE_ATTR], INTEGRITY: record}}
    return {**refs, "refs": {**r, ".zattrs": dumps_json_attrs(root)}}


def record_size(tree: VirtualTree, most: int = 100_000) -> int:
    """References per Parquet refs file: kerchunk pads every file to this many rows, so the
    largest array's chunk count (at most ``most``) rather than always ``most``."""
    counts = [math.prod(math.ceil(s / c) for s, c in zip(a.shape, a.chunks, strict=True))
              for a in tree.arrays.values()]
    return max(1, min(most, max(counts, default=1)))
