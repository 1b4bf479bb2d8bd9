"""The store format and reading it: kerchunk reference stores (JSON, Parquet).

The store is the product's contract with collaborators: standard kerchunk version 1 (JSON) or
kerchunk's Parquet layout, so plain xarray opens it. gcov-index facts (format version, granule
fingerprints) live in the root group's attributes, never in a side file. No secret is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import AccessError, BadInputError

FORMATS = {".json": "json", ".parquet": "parquet"}
STORE_ATTR = "gcov_index"


def dumps_json_attrs(d: dict) -> str:
    return json.dumps(d, separators=(",", ":"), allow_nan=True)


def store_format(path: str | Path) -> str:
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    if suffix not in FORMATS:
        raise BadInputError(f"{path}: unknown store format {suffix or '(no suffix)'!r}; "
                            "name it NAME.json or NAME.parquet")
    return FORMATS[suffix]


def metadata_of(refs: dict) -> dict[str, dict]:
    """The ``.zgroup`` / ``.zarray`` / ``.zattrs`` entries of kerchunk refs, parsed."""
    return {k: json.loads(v) if isinstance(v, str) else v for k, v in refs.items()
            if k.rsplit("/", 1)[-1] in (".zgroup", ".zarray", ".zattrs")}


def open_refs(store: str | Path) -> dict | str:
    """What fsspec's ReferenceFileSystem takes as ``fo``: a JSON store's references, parsed
    once, or a Parquet store's path (read lazily by fsspec)."""
    path = Path(store)
    fmt = store_format(path)
    if not path.exists():
        raise AccessError(f"{store}: no such store")
    if fmt != "json":
        return str(path)
    try:
        with open(path) as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadInputError(f"{store}: not a kerchunk JSON reference store") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("refs", {}), dict):  # [], null, ...
        raise BadInputError(f"{store}: not a kerchunk JSON reference store (no refs object)")
    return doc


def reference_filesystem(fo: dict | str, remote_fs):
    """An async fsspec ReferenceFileSystem over ``open_refs(store)``, chunks read with
    ``remote_fs`` (one file system, or a dict of them by protocol)."""
    import fsspec

    return fsspec.filesystem("reference", fo=fo, asynchronous=True, fs=remote_fs)


def metadata(store: str | Path, fo: dict | str | None = None) -> dict[str, dict]:
    """Every ``.zgroup`` / ``.zarray`` / ``.zattrs`` of a store, parsed, read from the store
    file(s) alone (JSON refs, or the ``.zmetadata`` of a Parquet store)."""
    fo = open_refs(store) if fo is None else fo
    if isinstance(fo, dict):
        refs = fo.get("refs", {})
        if ".zmetadata" in refs:  # written by gcov-index: everything, parsed in one go
            return json.loads(refs[".zmetadata"])["metadata"]
        return metadata_of(refs)  # another tool's JSON store: look through every key
    try:
        return metadata_of(json.loads((Path(fo) / ".zmetadata").read_text())["metadata"])
    except (OSError, ValueError, KeyError):
        raise BadInputError(f"{store}: not a kerchunk Parquet reference store") from None


def store_attrs(store: str | Path, meta: dict | None = None) -> dict:
    """The root ``gcov_index`` attributes of a store, or a clear error if it is not one."""
    attrs = (meta if meta is not None else metadata(store)).get(".zattrs") or {}
    if STORE_ATTR not in attrs:
        raise BadInputError(f"{store}: not a gcov-index store (no '{STORE_ATTR}' root attribute)")
    return attrs[STORE_ATTR]
