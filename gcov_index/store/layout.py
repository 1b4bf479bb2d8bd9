"""The store format and reading it: kerchunk reference stores (JSON, Parquet).

The store is the product's contract with collaborators: standard kerchunk version 1 (JSON) or
kerchunk's Parquet layout, so plain xarray opens it. gcov-index facts (format version, granule
fingerprints, the integrity record) live in the root group's attributes, never in a side file.
No secret is written.

On disk, beside each other::

    NAME.json                            one file, replaced whole (os.replace)
    NAME.parquet -> .NAME.parquet.v7     a link to the current version (kerchunk's Parquet layout)
    .NAME.parquet.v6/                    the previous version, kept for readers still on it
    .NAME.json.lock, .NAME.parquet.lock  a build's lock: removed when it ends, but left by a
                                         killed build until the next build of the store

Integrity record (root attribute ``gcov_index``, key ``integrity``): a digest of the metadata
(every ``.zgroup`` / ``.zarray`` / ``.zattrs``, the record itself left out), the number of
chunk references and a digest of them per array, and for Parquet the size and digest of every
``refs.N.parq`` file. :func:`open_handle` checks it: a store with a part missing or altered is
refused with one line (exit 6), never read as fill values.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import AccessError, BadInputError, ValidationError
from ..io.remote import ObjectFiles, Place, is_remote, place
from . import icechunk as icechunk_store

try:
    import fcntl
except ImportError:  # not POSIX: no reader pins, builds not locked
    fcntl = None  # type: ignore[assignment]

O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)  # 0: folders are not opened (no locks, no fsync)


def folder_flags() -> int:
    """Flags that open a folder (to lock or fsync it), or 0 where the system has no
    ``O_DIRECTORY`` (not POSIX): no folder is opened there."""
    return os.O_RDONLY | O_DIRECTORY | getattr(os, "O_CLOEXEC", 0) if O_DIRECTORY else 0


FORMATS = {".json": "json", ".parquet": "parquet", ".icechunk": "icechunk"}
STORE_ATTR = "gcov_index"
INTEGRITY = "integrity"
INTEGRITY_VERSION = 1
DIGEST_CHARS = 32  # of a sha256 hex digest: 128 bits
META_KEYS = (".zgroup", ".zarray", ".zattrs")


def dumps_json_attrs(d: dict) -> str:
    return json.dumps(d, separators=(",", ":"), allow_nan=True)


def store_format(path: str | Path) -> str:
    p = Path(str(path).rstrip("/"))
    suffix = p.suffix.lower()
    if re.fullmatch(r"\.v\d+", suffix) and p.name.startswith(".") and \
            Path(p.stem).suffix.lower() == ".parquet":
        return "parquet"  # one version of a Parquet store, opened by its folder's name
    if suffix not in FORMATS:
        raise BadInputError(f"{path}: unknown store format {suffix or '(no suffix)'!r}; "
                            "name it NAME.json, NAME.parquet or NAME.icechunk")
    return FORMATS[suffix]


def metadata_of(refs: Mapping) -> dict[str, dict]:
    """The ``.zgroup`` / ``.zarray`` / ``.zattrs`` entries of kerchunk refs, parsed."""
    ends = tuple("/" + k for k in META_KEYS)
    return {k: json.loads(v) if isinstance(v, str | bytes) else v for k, v in refs.items()
            if k in META_KEYS or k.endswith(ends)}


# -- the Parquet layout: versions behind a link ---------------------------------------------------
def version_name(out: Path, n: int) -> str:
    return f".{out.name}.v{n}"


def versions_of(out: Path) -> dict[int, Path]:
    """The version folders beside a Parquet store, by number."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.v(\d+)")
    try:
        names = os.listdir(out.parent)
    except OSError:
        return {}
    return {int(m.group(1)): out.parent / name for name in names
            if (m := pattern.fullmatch(name))}


def current_version(out: Path) -> int | None:
    """The version a gcov-index Parquet link points at (``.NAME.parquet.vN`` beside it), or
    None when ``out`` is not such a link."""
    try:
        target = os.readlink(out)
    except OSError:
        return None
    m = re.fullmatch(rf"\.{re.escape(out.name)}\.v(\d+)", target)
    return int(m.group(1)) if m else None


# -- integrity ------------------------------------------------------------------------------------
def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def without_record(meta: Mapping[str, Any]) -> dict:
    """The metadata with the integrity record taken out of the root attributes."""
    root = dict(meta.get(".zattrs") or {})
    if isinstance(root.get(STORE_ATTR), dict) and INTEGRITY in root[STORE_ATTR]:
        root[STORE_ATTR] = {k: v for k, v in root[STORE_ATTR].items() if k != INTEGRITY}
    return {**meta, ".zattrs": root} if ".zattrs" in meta else dict(meta)


def metadata_digest(meta: Mapping[str, Any]) -> str:
    """Digest of every group's and array's metadata (the integrity record left out), however
    the JSON was formatted."""
    text = json.dumps(without_record(meta), sort_keys=True, separators=(",", ":"),
                      allow_nan=True)
    return _digest(text.encode())


def array_paths(meta: Mapping[str, Any]) -> list[str]:
    return sorted(k[: -len("/.zarray")] for k in meta if k.endswith("/.zarray"))


def refs_digest(keys: list[str], values: list) -> str:
    """Digest of one array's chunk references, in key order: ``["{{uT}}", offset, length]``
    for a chunk in granule T, ``"base64:..."`` for a chunk held in the store."""
    text = json.dumps([keys, values], separators=(",", ":"))
    return _digest(text.encode())


class SortedRefs:
    """A JSON store's references, with each array's chunk keys found by bisection."""

    def __init__(self, refs: Mapping[str, Any]):
        self.refs = refs
        self.keys = sorted(refs)

    def chunk_keys(self, array: str) -> list[str]:
        lo = bisect.bisect_left(self.keys, array + "/")
        hi = bisect.bisect_left(self.keys, array + "0", lo)  # "0" follows "/"
        n = len(array) + 1
        return [k for k in self.keys[lo:hi] if k[n] != "."]  # an array has no child keys

    def digests(self, arrays: Iterable[str]) -> dict[str, list]:
        out = {}
        for a in arrays:
            keys = self.chunk_keys(a)
            out[a] = [len(keys), refs_digest(keys, [self.refs[k] for k in keys])]
        return out


def integrity_record(refs: Mapping[str, Any], meta: Mapping[str, Any]) -> dict:
    """The record a store carries of what it must contain (JSON form of the refs, templates
    ``{{uT}}`` not expanded)."""
    return {"version": INTEGRITY_VERSION, "metadata": metadata_digest(meta),
            "arrays": SortedRefs(refs).digests(array_paths(meta))}


def file_digest(path: Path) -> list:
    """``[size, digest]`` of a file's bytes."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return [size, h.hexdigest()[:DIGEST_CHARS]]


# -- one store, opened once -----------------------------------------------------------------------
class StoreHandle:
    """One version of a store, read once: a JSON store parsed, or the Parquet version folder
    the link pointed at when opened (resolved once, and pinned with a shared lock so that no
    build deletes it while this handle lives). Everything read through the handle comes from
    that one version, even while a build replaces the store."""

    def __init__(self, name: str, path: Path | str, fmt: str, fo: dict | str, meta: dict,
                 record_size: int | None = None, fd: int | None = None,
                 raw: bytes | None = None, remote: Place | None = None):
        self.name = name  # as the user gave it: for messages
        self.path = path  # what is read: the JSON file, or the Parquet version folder (a URL
        self.fmt = fmt    # of its prefix for a store in a bucket or behind https)
        self.fo = fo  # what fsspec's ReferenceFileSystem takes
        self.meta = meta
        self.record_size = record_size
        self.raw = raw  # the .zmetadata bytes of a Parquet store, as read once
        self.remote = remote  # where a remote store is (None: on this machine)
        self._fd = fd
        self._files_ok: set[str] = set()  # refs files whose bytes were checked (Parquet)
        self._mapper = None
        self._sorted: SortedRefs | None = None
        self._parquet_refs: dict[str, dict] = {}

    def close(self) -> None:
        """Let the version go (a build may then delete it): reads through trees opened from
        this handle must be over."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.close()

    def __enter__(self) -> StoreHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __str__(self) -> str:
        return self.name

    @property
    def attrs(self) -> dict:
        """The root ``gcov_index`` attributes, or a clear error if it is not a gcov-index store."""
        attrs = self.meta.get(".zattrs") or {}
        if not isinstance(attrs, dict) or not isinstance(attrs.get(STORE_ATTR), dict):
            raise BadInputError(f"{self.name}: not a gcov-index store (no '{STORE_ATTR}' root "
                                "attribute)")
        gi = attrs[STORE_ATTR]
        granules = gi.get("granules")
        if not isinstance(granules, list) or not granules or not all(
                isinstance(g, dict) and all(isinstance(g.get(k), str) for k in (
                    "url", "granuleId", "time")) for g in granules):
            raise BadInputError(f"{self.name}: not a gcov-index store (its '{STORE_ATTR}' root "
                                "attribute lists no granules)")
        return gi

    @property
    def record(self) -> dict | None:
        """The integrity record, or None for a store written before gcov-index kept one."""
        rec = self.attrs.get(INTEGRITY)
        return rec if isinstance(rec, dict) else None

    @property
    def stacks(self) -> list[dict]:
        """Each stack of the store (``id``, ``group``: ``""`` at the root, and what build said
        of it) with ``members``: its granules as (index of ``{{uN}}``, granule record), in time
        order. A store written before stacks holds one, at the root."""
        gi = self.attrs
        granules = gi["granules"]
        listed = gi.get("stacks")
        if listed is None:
            return [{"id": "", "group": "", "members": list(enumerate(granules))}]
        if not isinstance(listed, list) or not listed or not all(
                isinstance(x, dict) and isinstance(x.get("id"), str)
                and isinstance(x.get("group"), str) for x in listed):
            raise BadInputError(f"{self.name}: its '{STORE_ATTR}' stacks are not a list of "
                                "stacks (damaged?)")
        out = [{**x, "members": [(i, g) for i, g in enumerate(granules)
                                 if g.get("stack", listed[0]["id"]) == x["id"]]}
               for x in listed]
        return out

    def stack(self, name: str | None) -> list[dict]:
        """The stacks to read: all of them, or the one named ``name`` (``--stack``)."""
        stacks = self.stacks
        if name is None:
            return stacks
        hits = [x for x in stacks if x["id"] == name]
        if not hits:
            raise BadInputError(f"--stack {name}: no such stack in {self.name} (stacks: "
                                f"{', '.join(x['id'] or '(one, unnamed)' for x in stacks)})")
        return hits

    @property
    def urls(self) -> list[str]:
        """The granule URLs, in time order (index T of ``{{uT}}``)."""
        return [g["url"] for g in self.attrs["granules"]]

    # -- the references of one array, as a JSON store holds them --------------------------------
    def array_refs(self, array: str) -> dict[str, Any]:
        """Chunk key -> ``["{{uT}}", offset, length]`` or ``"base64:..."`` for one array
        (a Parquet store's URLs mapped back to their granule's template)."""
        if self.fmt == "json":
            if self._sorted is None:
                self._sorted = SortedRefs(self.fo["refs"])
            return {k: self._sorted.refs[k] for k in self._sorted.chunk_keys(array)}
        if array not in self._parquet_refs:
            self._parquet_refs[array] = _parquet_array_refs(self, array)
        return self._parquet_refs[array]

    # -- integrity -------------------------------------------------------------------------------
    def problems(self, *, deep: bool = False, arrays: Iterable[str] | None = None
                 ) -> list[str]:
        """What is missing or altered against the store's integrity record (empty: whole).

        Always: the metadata, and the references of every array (JSON) or the size and bytes
        of every refs file (Parquet); of the arrays under the ``arrays`` prefixes only when
        given (a group opened): the rest are checked when read (:meth:`mapper`). Results are
        kept per version: the metadata by the digest of its bytes, a local refs file by its
        inode, size and times. ``deep`` also re-derives a Parquet store's references and
        checks them against the record (validate)."""
        out = self._template_problems()
        rec = self.record
        if rec is None:
            return out
        if rec.get("version") != INTEGRITY_VERSION:
            return [*out, f"integrity record version {rec.get('version')!r} unknown to this "
                    "gcov-index"]
        if not _record_shape_ok(rec):
            return [*out, MALFORMED]
        try:
            return out + self._record_problems(rec, deep, arrays)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError):
            return [*out, MALFORMED]  # a shape the check above let through: never exit 1

    def _record_problems(self, rec: dict, deep: bool, under: Iterable[str] | None
                         ) -> list[str]:
        out = []
        if not _metadata_ok(self.meta, rec["metadata"], self.raw):
            out.append("metadata (.zarray / .zattrs / .zgroup) altered")
        arrays: dict = rec["arrays"]
        present = array_paths(self.meta)
        out += [f"{a}: array missing" for a in sorted(set(arrays) - set(present))]
        out += [f"{a}: array not in the integrity record" for a in sorted(set(present)
                                                                           - set(arrays))]
        if self.fmt == "json":
            refs = self.fo["refs"]
            if ".zmetadata" in refs and metadata_digest(metadata_of(refs)) != rec.get("metadata"):
                out.append("per-array metadata differ from .zmetadata")
            self._sorted = self._sorted or SortedRefs(refs)
            out += _compare_arrays(self._sorted.digests(a for a in present if a in arrays),
                                   arrays)
        else:
            out += self._file_problems(rec.get("files") or {}, arrays, deep, under)
            if deep:
                out += _compare_arrays(
                    {a: _digest_of(self.array_refs(a)) for a in present if a in arrays}, arrays)
        return out

    def _template_problems(self) -> list[str]:
        """A JSON store's chunks are read through its URL templates: template ``uT`` must name
        granule T's recorded URL, or the values read would be labelled with the wrong granule.
        (``protocol=`` rewrites URLs when reading and never edits the templates.)"""
        if self.fmt != "json":
            return []
        templates = self.fo.get("templates", {})
        if not isinstance(templates, dict):
            return ["URL templates malformed"]
        out = []
        for t, url in enumerate(self.urls):
            read_from = templates.get(f"u{t}", url)
            if read_from != url:
                out.append(f"template u{t}: chunks read from {read_from}, not from the "
                           f"indexed granule {url}")
        return out

    def _file_problems(self, files: dict, arrays: dict, deep: bool = True,
                       under: Iterable[str] | None = None) -> list[str]:
        if not isinstance(files, dict) or not all(
                _refs_file_key(rel, arrays) and _size_digest(v) for rel, v in files.items()):
            return [MALFORMED]
        out = []
        prefixes = None if under is None else tuple(
            p.strip("/") + "/" if p.strip("/") else "" for p in under)
        chosen = sorted(rel for rel in files if prefixes is None or rel.startswith(prefixes))
        if self.remote is not None:
            out += self._remote_file_problems(files, chosen, deep)
        else:
            root = Path(self.fo)
            dirs_ok: dict[str, bool] = {}
            for rel in chosen:
                problem = self._local_file_problem(root, rel, files[rel], dirs_ok)
                if problem:
                    out.append(problem)
        with_files = {rel.rsplit("/", 1)[0] for rel in files}
        out += [f"{a}/refs.0.parq: not in the integrity record" for a, (n, _) in sorted(
            arrays.items()) if n and a not in with_files]
        return out

    def _local_file_problem(self, root: Path, rel: str, recorded: list,
                            dirs_ok: dict[str, bool]) -> str | None:
        """What is wrong with one local refs file: a link or not a file (no path outside
        the store is ever read), its size or its bytes; checked once per version of the
        file (its inode, size and times unchanged since)."""
        size, digest = recorded
        p = root / rel
        try:
            parent = rel.rsplit("/", 1)[0]
            if not _folder_ok(root, parent, dirs_ok):  # no folder on the way is a link out
                return f"{rel}: not a regular file in the store"
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                return f"{rel}: not a regular file in the store"
            if st.st_size != size:
                return f"{rel}: altered ({st.st_size} bytes, {size} recorded)"
            seen = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if _CHECKED_FILES.get(seen) == digest:
                self._files_ok.add(rel)
                return None
            got_size, got_digest = file_digest(p)
            if got_size != size:
                return f"{rel}: altered ({got_size} bytes, {size} recorded)"
            if got_digest != digest:
                return f"{rel}: altered"
            _CHECKED_FILES[seen] = digest
            self._files_ok.add(rel)
        except FileNotFoundError:
            return f"{rel}: missing"
        except OSError as e:
            return f"{rel}: unreadable ({e.strerror})"
        return None

    def _remote_file_problems(self, files: dict, chosen: list[str], deep: bool) -> list[str]:
        """A remote store's refs files: their sizes from one listing of the version (their
        bytes are checked as they are read, :meth:`mapper`; ``deep``: all read now)."""
        where = self.remote
        prefix = str(self.fo).rstrip("/") + "/"
        base = where.url_of("")
        key_prefix = prefix[len(base):]
        if where.writable:
            sizes = where.sizes(key_prefix)
        else:
            sizes = None
        out = []
        for rel in chosen:
            size, digest = files[rel]
            if sizes is not None:
                got = sizes.get(key_prefix + rel)
                if got is None:
                    out.append(f"{rel}: missing")
                    continue
                if got != size:
                    out.append(f"{rel}: altered ({got} bytes, {size} recorded)")
                    continue
            if deep:
                data = where.get(key_prefix + rel)
                if data is None:
                    out.append(f"{rel}: missing")
                elif _digest(data) != digest or len(data) != size:
                    out.append(f"{rel}: altered")
        return out

    def mapper(self):
        """fsspec's lazy Parquet reference mapper over this version, each refs file's bytes
        checked against the integrity record as it is read (one line, exit 6, when a part is
        missing or altered), the ``.zmetadata`` the bytes this handle checked."""
        if self._mapper is None:
            self._mapper = _checked_mapper(self)
        return self._mapper

    def verify(self, arrays: Iterable[str] | None = None) -> StoreHandle:
        """Raise ValidationError (exit 6), one line, if a part is missing or altered (of the
        arrays under the ``arrays`` prefixes only, when given)."""
        problems = self.problems(arrays=arrays)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ValidationError(f"{self.name}: damaged store: {problems[0]}{more}; build it "
                                  "again")
        return self


MALFORMED = "malformed integrity record"

# what was found whole in this process: a metadata digest by the digest of the bytes it was
# parsed from; a local refs file's digest by its (device, inode, size, mtime, ctime)
_CHECKED_META: dict[tuple[str, str], bool] = {}
_CHECKED_FILES: dict[tuple, str] = {}


def _metadata_ok(meta: Mapping, recorded: str, raw: bytes | None) -> bool:
    """Whether the metadata digest is the recorded one; when ``raw`` (the bytes ``meta``
    was parsed from) is known, the answer is kept for the same bytes."""
    key = (_digest(raw), recorded) if raw is not None else None
    if key is not None and key in _CHECKED_META:
        return _CHECKED_META[key]
    ok = metadata_digest(meta) == recorded
    if key is not None:
        _CHECKED_META[key] = ok
    return ok


def _folder_ok(root: Path, folder: str, seen: dict[str, bool]) -> bool:
    """Whether every folder on the way from ``root`` to ``folder`` is a real folder (not a link
    out of the store); each folder looked at once."""
    if folder in seen:
        return seen[folder]
    up = folder.rsplit("/", 1)[0] if "/" in folder else ""
    try:
        ok = (not up or _folder_ok(root, up, seen)) and stat.S_ISDIR(
            os.lstat(os.path.join(root, folder)).st_mode)
    except OSError:
        ok = False
    seen[folder] = ok
    return ok


def _checked_mapper(h: StoreHandle):
    """A ``LazyReferenceMapper`` whose refs files are checked as they are read."""
    import io

    from fsspec.implementations.reference import LazyReferenceMapper

    rec = h.record or {}
    files = rec.get("files") if isinstance(rec.get("files"), dict) else None
    root = str(h.fo).rstrip("/")
    fs = ObjectFiles(h.remote) if h.remote is not None else None

    class Checked(LazyReferenceMapper):
        def setup(self):
            super().setup() if h.raw is None else None
            if h.raw is None:
                return
            from functools import lru_cache

            self._items = {".zmetadata": h.raw}
            met = json.loads(h.raw)
            self.record_size = met["record_size"]
            self.zmetadata = met["metadata"]

            @lru_cache(maxsize=self.cache_size)
            def open_refs(field, record):
                rel = f"{field}/refs.{record}.parq"
                data = _checked_bytes(h, self.fs, root, rel, files)
                if data is None:
                    return None
                try:  # fastparquet itself: pandas' read_parquet adds 2 ms a file (and a
                    import fastparquet  # deprecation warning), 0.3 s over a 1000-granule tree

                    df = fastparquet.ParquetFile(io.BytesIO(data)).to_pandas()
                    return {c: df[c].to_numpy(copy=True) for c in df.columns}
                except (OSError, ValueError):
                    return None

            self.open_refs = open_refs

    return Checked(root, fs=fs) if fs is not None else Checked(root)


def _checked_bytes(h: StoreHandle, fs, root: str, rel: str, files: dict | None) -> bytes | None:
    """One refs file's bytes, checked against the record; None when it has none."""
    try:
        data = fs.cat_file(f"{root}/{rel}")
    except FileNotFoundError:
        data = None
    if files is None:  # a store written before the record: read as found
        return data
    recorded = files.get(rel)
    problem = None
    if recorded is None:
        problem = None if data is None else f"{rel}: not in the integrity record"
    elif data is None:
        problem = f"{rel}: missing"
    elif len(data) != recorded[0] or (rel not in h._files_ok and _digest(data) != recorded[1]):
        problem = f"{rel}: altered"
    if problem:
        raise ValidationError(f"{h.name}: damaged store: {problem}; build it again")
    return data


def _record_shape_ok(rec: dict) -> bool:
    """The record as :func:`integrity_record` and the Parquet writer make it: a metadata
    digest, ``{array path: [count, digest]}`` and, if there, ``{refs file: [size, digest]}``
    (the file names are checked against the arrays where they are used)."""
    arrays, files = rec.get("arrays"), rec.get("files", {})
    return (isinstance(rec.get("metadata"), str) and isinstance(arrays, dict)
            and all(_array_key(a) and _size_digest(v) for a, v in arrays.items())
            and isinstance(files, dict) and all(_size_digest(v) for v in files.values()))


def _size_digest(v) -> bool:
    """``[count or size, digest]``, as the record holds it."""
    return (isinstance(v, list | tuple) and len(v) == 2 and isinstance(v[0], int)
            and not isinstance(v[0], bool) and v[0] >= 0 and isinstance(v[1], str))


def _refs_file_key(rel, arrays: Mapping) -> bool:
    """``<array path>/refs.<N>.parq`` for an array of the record: a path inside the store."""
    m = re.fullmatch(r"(.+)/refs\.\d+\.parq", rel) if isinstance(rel, str) else None
    return m is not None and m.group(1) in arrays and _array_key(m.group(1))


def _array_key(a) -> bool:
    """An array path: relative, no empty, ``.`` or ``..`` segment."""
    return isinstance(a, str) and "\0" not in a and all(
        seg not in ("", ".", "..") for seg in a.split("/"))


def _digest_of(refs: dict[str, Any]) -> list:
    keys = sorted(refs)
    return [len(keys), refs_digest(keys, [refs[k] for k in keys])]


def _compare_arrays(got: dict[str, list], recorded: dict[str, list]) -> list[str]:
    out = []
    for a, (n, digest) in sorted(got.items()):
        want_n, want_digest = recorded[a]
        if n != want_n:
            out.append(f"{a}: {n} chunk references, {want_n} recorded")
        elif digest != want_digest:
            out.append(f"{a}: chunk references altered")
    return out


def _parquet_array_refs(h: StoreHandle, array: str) -> dict[str, Any]:
    """One array's references read from its ``refs.N.parq`` files (pandas: validate only)."""
    import base64
    import itertools
    import math

    import pandas as pd

    z = h.meta[f"{array}/.zarray"]
    grid = [math.ceil(s / c) for s, c in zip(z["shape"], z["chunks"], strict=True)] or [1]
    n = math.prod(grid)
    token = {u: f"{{{{u{t}}}}}" for t, u in enumerate(h.urls)}
    keys = (".".join(map(str, i)) for i in itertools.product(*(range(g) for g in grid)))
    out: dict[str, Any] = {}
    size = h.record_size or n
    for record in range(math.ceil(n / size)):
        rel = f"{array}/refs.{record}.parq"
        batch = list(itertools.islice(keys, size))
        try:
            if h.remote is not None:
                import io

                df = pd.read_parquet(io.BytesIO(ObjectFiles(h.remote).cat_file(f"{h.fo}/{rel}")))
            else:
                df = pd.read_parquet(Path(h.fo) / rel)
        except Exception:  # no reference in this record, or a file gone or damaged (problems()
            continue  # says which from the record)
        for key, url, off, length, raw in zip(batch, df["path"], df["offset"], df["size"],
                                              df["raw"] if "raw" in df else itertools.repeat(None),
                                              strict=False):
            if raw is not None and not (isinstance(raw, float) and math.isnan(raw)):
                out[f"{array}/{key}"] = "base64:" + base64.b64encode(bytes(raw)).decode()
            elif isinstance(url, str):
                out[f"{array}/{key}"] = [token.get(url, url), int(off), int(length)]
    return out


def _pin(name: str, path: Path) -> tuple[Path, int | None]:
    """The Parquet folder ``path`` resolves to now, opened and share-locked so that a build
    does not delete it under the reader (a build deletes an old version only when it can take
    an exclusive lock on it). Retried when a build swapped or deleted it meanwhile."""
    flags = folder_flags()
    for attempt in range(50):
        real = Path(os.path.realpath(path))
        try:
            if not flags or fcntl is None:  # not POSIX: nothing to pin with, read unpinned
                if not real.is_dir():
                    raise (NotADirectoryError if real.exists() else FileNotFoundError)()
                return real, None
            fd = os.open(real, flags)
        except FileNotFoundError:
            if os.path.realpath(path) != str(real):
                continue  # swapped and pruned between resolving and opening: resolve again
            if path.is_symlink():
                raise ValidationError(f"{name}: damaged store: a link to {os.readlink(path)}, "
                                      "which is missing (copy a Parquet store with cp -rL)"
                                      ) from None
            raise AccessError(f"{name}: no such store") from None
        except NotADirectoryError:
            raise BadInputError(f"{name}: a file, not a kerchunk Parquet reference store "
                                "(a folder)") from None
        except OSError as e:
            raise BadInputError(f"{name}: cannot open ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # a build is deleting this (old) version: resolve again
            os.close(fd)
            time.sleep(0.001 * attempt)
            continue
        except OSError:  # no lock to be had here (NFS: EBADF on a read-only folder): unpinned
            return real, fd  # (a build cannot lock it either, so it never deletes it)
        if os.fstat(fd).st_nlink == 0:  # deleted before we locked it
            os.close(fd)
            continue
        return real, fd
    raise AccessError(f"{name}: replaced too often while opening; try again")


def open_handle(store: str | Path | StoreHandle, *, verify: bool = True,
                access=None, arrays: Iterable[str] | None = None
                ) -> StoreHandle:
    """Open a store once: one version, its metadata read, checked against its integrity record
    (``verify``; a damaged store raises ValidationError, exit 6; ``arrays``: only the arrays
    under those prefixes now, the others as their references are read).

    ``store`` is a path, or the URL of a store in a bucket (``s3://``, the team's credentials
    from the standard AWS chain) or behind ``https://`` (through ``access``'s router: the
    Earthdata token only to a host meant to get it). A ``NAME.icechunk`` repository (local or
    ``s3://``, ``access`` reaching the latter) opens at the head of ``main``."""
    if isinstance(store, StoreHandle):
        return store
    name = str(store)
    if store_format(name.split("?", 1)[0] if is_remote(name) else name) == "icechunk":
        return _open_icechunk(name, access)  # one snapshot, its own checksums
    if is_remote(name):
        fmt = store_format(name.split("?", 1)[0])
        where = place(name, access)
        handle = _open_remote_json(name, where) if fmt == "json" else \
            _open_remote_parquet(name, where)
    else:
        path = Path(store)
        fmt = store_format(path)
        handle = _open_json(name, path) if fmt == "json" else _open_parquet(name, path)
    return handle.verify(arrays) if verify else handle


@contextlib.contextmanager
def opened(store: str | Path | StoreHandle, *, verify: bool = True,
           access=None, arrays: Iterable[str] | None = None
           ) -> Iterator[StoreHandle]:
    """:func:`open_handle` for one block: the handle (and its pin) let go at the end, unless the
    caller passed a handle of its own."""
    handle = open_handle(store, verify=verify, access=access, arrays=arrays)
    try:
        yield handle
    finally:
        if handle is not store:
            handle.close()


def _open_json(name: str, path: Path) -> StoreHandle:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise AccessError(f"{name}: no such store") from None
    except IsADirectoryError:
        raise BadInputError(f"{name}: a folder, not a kerchunk JSON reference store") from None
    except OSError as e:
        raise BadInputError(f"{name}: cannot read ({e.strerror})") from None
    return _json_handle(name, path, raw)


def _json_handle(name: str, path: Path | str, raw: bytes, remote: Place | None = None
                 ) -> StoreHandle:
    not_json = f"{name}: not a kerchunk JSON reference store"
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadInputError(not_json) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("refs"), dict):
        raise BadInputError(not_json)
    refs = doc["refs"]
    try:
        if ".zmetadata" in refs:  # written by gcov-index: everything, parsed in one go
            z = refs[".zmetadata"]
            meta = (json.loads(z) if isinstance(z, str | bytes) else z)["metadata"]
        else:
            meta = metadata_of(refs)  # another tool's JSON store: look through every key
    except (ValueError, TypeError, KeyError):
        raise BadInputError(not_json) from None
    if not isinstance(meta, dict):
        raise BadInputError(not_json)
    return StoreHandle(name, path, "json", doc, meta, remote=remote)


def _open_remote_json(name: str, where: Place) -> StoreHandle:
    raw = where.get(where.key)
    if raw is None:
        raise AccessError(f"{name}: no such store")
    return _json_handle(name, name, raw, where)


POINTER = "gcov_index_parquet_pointer"


def pointer_bytes(version: str) -> bytes:
    """The small object at a remote Parquet store's path: which version prefix is current
    (``.NAME.parquet.vN``, beside it)."""
    return json.dumps({POINTER: 1, "version": version}).encode()


def read_pointer(raw: bytes | None) -> str | None:
    """The version a pointer object names, or None when ``raw`` is not one."""
    try:
        doc = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    v = doc.get("version") if isinstance(doc, dict) and doc.get(POINTER) == 1 else None
    return v if isinstance(v, str) and re.fullmatch(r"\..+\.parquet\.v\d+", v) else None


def _open_remote_parquet(name: str, where: Place) -> StoreHandle:
    """A Parquet store in a bucket or behind https: the pointer object read once (the
    version it names is what this handle reads), or a plain copy of a store's folder."""
    raw = where.get(where.key)
    version = read_pointer(raw)
    prefix = where.sibling(version) if version else where.key.rstrip("/")
    # no pointer: a store's folder copied as it is (aws s3 cp --recursive; an https server
    # answers a folder's own URL with a listing or a redirect)
    zm = where.get(f"{prefix}/.zmetadata")
    if zm is None:
        if version is not None:
            raise ValidationError(f"{name}: damaged store: its version {version} is missing")
        if raw is not None and where.writable:
            raise BadInputError(f"{name}: not a gcov-index Parquet store (an object that is "
                                "not its pointer)")
        raise AccessError(f"{name}: no such store")
    meta, record_size = _parse_zmetadata(name, zm)
    root = where.url_of(prefix)
    return StoreHandle(name, root, "parquet", root, meta, record_size, raw=zm, remote=where)


_PARSED: dict[str, tuple[dict, int | None]] = {}


def _parse_zmetadata(name: str, raw: bytes) -> tuple[dict, int | None]:
    """A Parquet store's metadata and record size (kept by the digest of the bytes: the same
    version opened again is not parsed again; the dict is shared, never changed)."""
    key = _digest(raw)
    if key in _PARSED:
        return _PARSED[key]
    try:
        met = json.loads(raw)
        meta, record_size = met["metadata"], met.get("record_size")
        if not isinstance(meta, dict):
            raise TypeError
    except (ValueError, TypeError, KeyError, RecursionError):
        raise BadInputError(f"{name}: not a kerchunk Parquet reference store") from None
    if len(_PARSED) > 64:
        _PARSED.clear()
    _PARSED[key] = (meta, record_size)
    return meta, record_size


def _open_icechunk(name: str, access=None) -> StoreHandle:
    """An Icechunk repository: ``fo`` is its opened snapshot (:class:`icechunk_store.Opened`:
    repository, read-only session, snapshot id), ``meta`` its metadata in zarr v2 terms."""
    opened = icechunk_store.open_repo(name, access, authorize=access is not None)
    where = name if icechunk_store.is_remote(name) else Path(name)
    handle = StoreHandle(name, where, "icechunk", opened, opened.meta)
    handle.access = access  # whom its session's containers are authorized for
    return handle


def _open_parquet(name: str, path: Path) -> StoreHandle:
    if not os.path.lexists(path):
        raise AccessError(f"{name}: no such store")
    real, fd = _pin(name, path)
    root = str(real)
    if fd is not None and not re.fullmatch(r"\..+\.parquet\.v\d+", real.name):
        # a plain folder (written by an older gcov-index, or a copy): a build replacing it
        # moves it aside, so read it through its descriptor, which follows it (Linux)
        by_fd = f"/proc/self/fd/{fd}"
        with contextlib.suppress(OSError):
            if os.path.samefile(by_fd, real):
                root = by_fd
    try:
        raw = (Path(root) / ".zmetadata").read_bytes()
        meta, record_size = _parse_zmetadata(name, raw)
    except (OSError, BadInputError):
        if fd is not None:
            os.close(fd)
        raise BadInputError(f"{name}: not a kerchunk Parquet reference store") from None
    return StoreHandle(name, real, "parquet", root, meta, record_size, fd, raw=raw)


# -- the functions earlier callers use ------------------------------------------------------------
def open_refs(store: str | Path) -> dict | str:
    """What fsspec's ReferenceFileSystem takes as ``fo``: a JSON store's references, parsed
    once, or the path of a Parquet store's current version folder (read lazily by fsspec; not
    pinned: a build may delete it once it is two versions old). Never a ``/proc/self/fd``
    path, which would name another file once the handle's descriptor is closed."""
    with opened(store, verify=False) as handle:
        return handle.fo if handle.fmt == "json" else str(handle.path)


def reference_filesystem(store: StoreHandle | dict | str, remote_fs):
    """An async fsspec ReferenceFileSystem over a store handle (or ``fo``), chunks read with
    ``remote_fs`` (one file system, or a dict of them by protocol). The file system keeps the
    handle, so the version it reads stays pinned for as long as it is used."""
    import fsspec

    fo = store.fo if isinstance(store, StoreHandle) else store
    if isinstance(store, StoreHandle) and store.fmt == "parquet":
        # fsspec's lazy Parquet mapper, each refs file checked as it is read (its own would
        # read the files unchecked, and only from a path or through fsspec's own s3/http)
        fs = fsspec.filesystem("reference", fo={"version": 1, "refs": {}}, asynchronous=True,
                               fs=remote_fs, skip_instance_cache=True)
        fs.references = store.mapper()
    else:
        fs = fsspec.filesystem("reference", fo=fo, asynchronous=True, fs=remote_fs,
                               skip_instance_cache=True)
    fs.gcov_index_store = store
    return fs


def metadata(store: str | Path | StoreHandle, fo: dict | str | None = None) -> dict[str, dict]:
    """Every ``.zgroup`` / ``.zarray`` / ``.zattrs`` of a store, parsed, read from the store
    file(s) alone (JSON refs, or the ``.zmetadata`` of a Parquet store)."""
    if fo is None or isinstance(store, StoreHandle):
        return open_handle(store, verify=False).meta
    if isinstance(fo, dict):
        refs = fo.get("refs", {})
        if ".zmetadata" in refs:
            return json.loads(refs[".zmetadata"])["metadata"]
        return metadata_of(refs)
    try:
        return metadata_of(json.loads((Path(fo) / ".zmetadata").read_text())["metadata"])
    except (OSError, ValueError, KeyError):
        raise BadInputError(f"{store}: not a kerchunk Parquet reference store") from None


def store_attrs(store: str | Path | StoreHandle, meta: dict | None = None) -> dict:
    """The root ``gcov_index`` attributes of a store, or a clear error if it is not one."""
    if meta is None:
        return open_handle(store, verify=False).attrs
    attrs = meta.get(".zattrs") or {}
    if STORE_ATTR not in attrs:
        raise BadInputError(f"{store}: not a gcov-index store (no '{STORE_ATTR}' root attribute)")
    return attrs[STORE_ATTR]
