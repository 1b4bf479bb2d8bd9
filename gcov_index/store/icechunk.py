"""The model as an Icechunk repository: ``--out NAME.icechunk`` (a local folder or
``s3://bucket/prefix.icechunk``).

The same tree as the kerchunk stores (every group, array and attribute, the provenance record in
the root attributes, stacks as root groups), written with zarr-python (zarr v3 metadata) on an
Icechunk session's store: chunks held by reference become Icechunk **virtual** references
(``store.set_virtual_refs_arr``), chunks inlined in the tree are written as they are, encoded,
as real chunks. VirtualiZarr's ``to_icechunk`` writer takes an xarray tree of ``ManifestArray``
variables; gcov-index's model is not one (it is built for kerchunk, zarr v2 terms), and
turning it into xarray objects would decode every inlined chunk only to encode it again, so
the writer takes the model directly, as :mod:`gcov_index.store.kerchunk` does.

Virtual chunk containers (kept in the repository's config, without any credential): the S3
bucket(s) the granules are in (region and endpoint of :class:`~gcov_index.io.endpoints.Endpoints`),
the HTTPS base, and ``file:///`` when granules are local paths. Readers authorize them with
**refreshable** credentials (:func:`authorizations`): temporary Earthdata S3 credentials
fetched through :mod:`gcov_index.io.auth` again before they expire. Nothing secret is ever
written into the repository.

Each build is **one commit** on branch ``main`` whose message names the granules added and
replaced since the previous commit (the previous head's provenance ``granules``, or the build's
own ``changes`` record when there is one). Icechunk commits are atomic (the branch moves to the
new snapshot in one conditional write): a killed build leaves the previous snapshot the head,
readable and unchanged.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ..errors import AccessError, BadInputError
from ..granule import Granule
from ..index.tree import VirtualArray, VirtualTree
from ..io.endpoints import PROD, Endpoints

if TYPE_CHECKING:  # this module is imported by store.layout, which `info` loads: kept light
    from ..io.access import Access

SUFFIX = ".icechunk"
BRANCH = "main"
STORE_ATTR = "gcov_index"  # the root attribute (store.layout.STORE_ATTR, which imports this)
RENEW_MARGIN = timedelta(seconds=60)


def _icechunk():
    """The icechunk module, its Rust log records kept off stderr (warnings such as "the
    LocalFileSystem storage is not safe for concurrent commits": a build holds the store's
    lock) unless ``ICECHUNK_LOG`` or ``GCOV_INDEX_DEBUG`` asks for them."""
    import os

    import icechunk

    if not _QUIET and not os.environ.get("ICECHUNK_LOG") and not os.environ.get(
            "GCOV_INDEX_DEBUG"):
        icechunk.set_logs_filter("error")
        _QUIET.append(True)
    return icechunk


_QUIET: list[bool] = []


def is_icechunk(out: str | Path) -> bool:
    return str(out).rstrip("/").lower().endswith(SUFFIX)


def is_remote(out: str | Path) -> bool:
    return str(out).startswith("s3://")


# -- credentials: refreshable, never written ------------------------------------------------------
@dataclass
class EarthdataS3Credentials:
    """Icechunk's refreshable S3 credential callback: temporary Earthdata credentials from the
    ``s3credentials`` endpoint, fetched by gcov-index's own renewing provider
    (:class:`gcov_index.io.auth.CredentialProvider`, ``provider`` its class), handed to
    Icechunk until a little before they expire, when Icechunk calls again. Icechunk pickles
    the callback to keep it in memory (the provider is made again after unpickling); it is
    never part of a repository's config."""

    provider: type
    url: str
    token: str | None = field(repr=False)
    policy: Any = None
    _live: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_live"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _live=None)

    def __call__(self):
        icechunk = _icechunk()
        if self._live is None:
            self._live = self.provider(self.url, self.token, margin=RENEW_MARGIN,
                                       policy=self.policy)
        c = self._live.get()
        lifetime = c.expiration - datetime.now(UTC)
        early = min(RENEW_MARGIN, lifetime / 5)
        return icechunk.S3StaticCredentials(
            access_key_id=c.access_key_id, secret_access_key=c.secret_access_key,
            session_token=c.session_token, expires_after=c.expiration - early)


def _s3_callback(access: Access) -> EarthdataS3Credentials:
    return EarthdataS3Credentials(type(access.credentials), access.endpoints.s3_credentials_url,
                                  access.token, access.retry)


# -- where the repository is ----------------------------------------------------------------------
def _s3_options(endpoints: Endpoints) -> dict:
    endpoint = endpoints.s3_endpoint
    return {"region": endpoints.region, "endpoint_url": endpoint,
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
            "force_path_style": bool(endpoint)}


def storage(out: str | Path, access: Access | None):
    """Icechunk ``Storage`` of ``out``: a local folder, or ``s3://bucket/prefix`` at the
    configured S3 endpoint with refreshable temporary credentials (``access`` needed)."""
    icechunk = _icechunk()

    text = str(out)
    if is_remote(text):
        if access is None:
            raise BadInputError(f"{out}: an s3:// Icechunk store is reached with credentials: "
                                "pass access= (gi.Access.from_env())")
        parts = urlsplit(text)
        return icechunk.s3_storage(bucket=parts.netloc, prefix=parts.path.strip("/"),
                                   get_credentials=_s3_callback(access),
                                   **_s3_options(access.endpoints))
    return icechunk.local_filesystem_storage(str(Path(text).expanduser().resolve()))


# -- virtual chunk containers ----------------------------------------------------------------------
def _prefixes(endpoints: Endpoints, urls: list[str]) -> dict[str, str]:
    """url prefix -> kind ("s3", "http", "file"): the NISAR bucket, the HTTPS base, and any
    other bucket, host or the local file system the granules are in."""
    out = {f"s3://{endpoints.s3_bucket}/": "s3", endpoints.https_base.rstrip("/") + "/": "http"}
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme == "s3":
            out.setdefault(f"s3://{parts.netloc}/", "s3")
        elif parts.scheme in ("http", "https"):
            if not any(url.startswith(p) for p, k in out.items() if k == "http"):
                out.setdefault(f"{parts.scheme}://{parts.netloc}/", "http")
    local = sorted({str(Path(u.removeprefix("file://")).parent) for u in urls
                    if urlsplit(u).scheme in ("file", "")})
    if local:  # one container for the folder that holds them all (Icechunk wants a path)
        import os

        common = os.path.commonpath(local)
        for d in ([common] if common != "/" else local):
            out[f"file://{_quote(d.rstrip('/'))}/"] = "file"
    return out


def containers(endpoints: Endpoints, urls: list[str]) -> list:
    """The virtual chunk containers of a store of ``urls`` (no credentials in them)."""
    icechunk = _icechunk()

    out = []
    for prefix, kind in _prefixes(endpoints, urls).items():
        if kind == "s3":
            o = _s3_options(endpoints)
            store = icechunk.s3_store(region=o["region"], endpoint_url=o["endpoint_url"],
                                      allow_http=o["allow_http"],
                                      force_path_style=o["force_path_style"],
                                      s3_compatible=bool(o["endpoint_url"]))
        elif kind == "http":
            store = icechunk.http_store()
        else:
            store = icechunk.local_filesystem_store(_unquote(prefix.removeprefix("file://")))
        out.append(icechunk.VirtualChunkContainer(prefix, store))
    return out


def _config(endpoints: Endpoints, urls: list[str]):
    icechunk = _icechunk()

    config = icechunk.RepositoryConfig.default()
    for c in containers(endpoints, urls):
        config.set_virtual_chunk_container(c)
    return config


def authorizations(access: Access, prefixes) -> dict:
    """Credentials for each container: refreshable Earthdata S3 credentials for S3, none
    needed for local files and HTTPS (the bearer token goes into the reader's own HTTPS
    container, :func:`reader_config`, never into the repository)."""
    icechunk = _icechunk()

    out: dict[str, Any] = {}
    for prefix in prefixes:
        if prefix.startswith("s3://"):
            out[prefix] = icechunk.s3_refreshable_credentials(_s3_callback(access))
        elif prefix.startswith("file://"):
            out[prefix] = icechunk.credentials.LocalFileSystemAccess
        else:
            out[prefix] = icechunk.credentials.HttpAccess
    return icechunk.containers_credentials(out)


def reader_config(access: Access | None, repo_config):
    """The repository's containers as this reader reaches them: S3 at the configured endpoint,
    the Earthdata token as a header for the HTTPS containers whose host may get it
    (:meth:`Endpoints.token_refusal`). In memory only: never saved."""
    icechunk = _icechunk()

    config = icechunk.RepositoryConfig.default()
    endpoints = access.endpoints if access is not None else PROD
    for prefix, held in (repo_config.virtual_chunk_containers or {}).items():
        c = held
        if prefix.startswith("s3://"):
            o = _s3_options(endpoints)
            c = icechunk.VirtualChunkContainer(prefix, icechunk.s3_store(
                region=o["region"], endpoint_url=o["endpoint_url"], allow_http=o["allow_http"],
                force_path_style=o["force_path_style"], s3_compatible=bool(o["endpoint_url"])))
        elif prefix.startswith(("http://", "https://")) and access is not None and \
                access.token and access.sends_token_to(prefix):
            c = icechunk.VirtualChunkContainer(prefix, icechunk.http_store(
                headers={"authorization": f"Bearer {access.token}"}))
        config.set_virtual_chunk_container(c)
    return config


# -- the zarr v3 form of the model ----------------------------------------------------------------
def _np():
    import numpy

    return numpy


def _codecs(a: VirtualArray):
    """(filters, serializer, compressors) in zarr v3 terms for the array's zarr v2 numcodecs
    filters and compressor. zarr's own v2 -> v3 migration (``zarr.metadata.migrate_v3``) takes
    only array -> array filters and refuses HDF5's shuffle (a bytes -> bytes codec in v3);
    here each codec goes where its kind puts it, so that an encoded chunk is the same bytes."""
    from zarr.abc.codec import ArrayArrayCodec
    from zarr.codecs import BytesCodec
    from zarr.registry import get_codec_class

    filters, compressors = [], []
    for cfg in [*(a.filters or []), *([a.compressor] if a.compressor else [])]:
        cfg = dict(cfg)
        name = f"numcodecs.{cfg.pop('id')}"
        codec = get_codec_class(name).from_dict({"name": name, "configuration": cfg})
        (filters if isinstance(codec, ArrayArrayCodec) else compressors).append(codec)
    dtype = _np().dtype(a.dtype)
    endian = None if dtype.itemsize == 1 or dtype.kind == "S" else (
        "big" if dtype.byteorder == ">" else "little")
    return filters, BytesCodec(endian=endian), compressors


def _fill(a: VirtualArray):
    """The zarr v3 fill value (v3 has no "none": the dtype's zero), and the ``_FillValue``
    attribute xarray masks with (xarray reads a v2 array's fill value as ``_FillValue``, a v3
    array's only from the attribute), encoded as xarray encodes it."""
    from xarray.backends.zarr import FillValueCoder

    dtype = _np().dtype(a.dtype)
    if a.fill_value is None:
        return None, None
    v = a.fill_value
    if dtype.kind == "c":
        value = complex(float(v[0]), float(v[1])) if isinstance(v, list | tuple) else complex(v)
    elif dtype.kind == "f":
        value = float(v)
    elif dtype.kind in "iu":
        value = int(v)
    elif dtype.kind == "S":
        value = v.encode() if isinstance(v, str) else bytes(v)
    else:
        return v, None
    return value, FillValueCoder.encode(value, dtype)


def _meta_key(path: str) -> str:
    return f"{path}/zarr.json" if path else "zarr.json"


def _group_doc(attrs: dict) -> dict:
    from zarr.core.group import GroupMetadata

    return json.loads(GroupMetadata(attributes=attrs, zarr_format=3).to_buffer_dict(
        _proto())["zarr.json"].to_bytes())


def _proto():
    from zarr.core.buffer import default_buffer_prototype

    return default_buffer_prototype()


def _array_doc(a: VirtualArray) -> dict:
    """The array's ``zarr.json``, made by zarr-python's ``ArrayV3Metadata``."""
    from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
    from zarr.core.dtype import get_data_type_from_native_dtype
    from zarr.core.metadata.v3 import ArrayV3Metadata, RegularChunkGridMetadata

    filters, serializer, compressors = _codecs(a)
    fill, fill_attr = _fill(a)
    attrs = dict(a.attrs)
    if fill_attr is not None:
        attrs["_FillValue"] = fill_attr
    dtype = get_data_type_from_native_dtype(_np().dtype(a.dtype))
    meta = ArrayV3Metadata(
        shape=a.shape, data_type=dtype, chunk_grid=RegularChunkGridMetadata(chunk_shape=a.chunks),
        chunk_key_encoding=DefaultChunkKeyEncoding(separator="/"),
        fill_value=dtype.default_scalar() if fill is None else fill,
        codecs=[*filters, serializer, *compressors], attributes=attrs,
        dimension_names=tuple(a.dims), storage_transformers=None)
    return json.loads(meta.to_buffer_dict(_proto())["zarr.json"].to_bytes())


def _chunk_key(v2_key: str) -> str:
    """zarr v2 chunk key ``i.j.k`` -> v3 default ``c/i/j/k``."""
    return "c/" + v2_key.replace(".", "/") if v2_key else "c"


def _quote(path: str) -> str:
    return quote(path, safe="/:@!$&()*+,;=~-._")


def _unquote(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path)


def _location(url: str) -> str:
    """A granule URL as Icechunk takes a location: a URL whose path is the key, with ``%``,
    ``?``, ``#`` and spaces percent-encoded (a local path is kept as is by the kerchunk stores)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}{slash}{_quote(path)}"


def _write_tree(store, tree: VirtualTree) -> None:
    import warnings

    from zarr.errors import UnstableSpecificationWarning

    with warnings.catch_warnings():
        # fixed-length byte strings (|S): zarr-python's "null_terminated_bytes", not yet in
        # the zarr v3 specification (zarr-python reads it; other libraries may not)
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        _write_nodes(store, tree)


def _write_nodes(store, tree: VirtualTree) -> None:
    """Every group, then every array (zarr v3 metadata, concurrently), its virtual references
    in one call per array, and its inlined chunks as they are (already encoded)."""
    from zarr.core.sync import sync

    sync(_write_all(store, tree))


async def _write_all(store, tree: VirtualTree, concurrency: int = 64) -> None:
    """Metadata documents are made with zarr-python's metadata classes and written with
    ``store.set``, all at once. (zarr's ``create_array`` / ``open_group`` run concurrently on
    an Icechunk store deadlocked in 5 of 7 runs: zarr formats the store with ``str()``, a
    blocking call into Icechunk, from inside the event loop while other writes hold the
    session.)"""
    from zarr.core.buffer import default_buffer_prototype

    sem = asyncio.Semaphore(concurrency)
    proto = default_buffer_prototype()

    async def bounded(coro):
        async with sem:
            return await coro

    def put(key: str, doc: dict | bytes):
        data = doc if isinstance(doc, bytes) else json.dumps(doc, allow_nan=True).encode()
        return bounded(store.set(key, proto.buffer.from_bytes(data)))

    jobs = [put(_meta_key(path), _group_doc(attrs)) for path, attrs in tree.groups.items()]
    jobs += [put(_meta_key(path), _array_doc(a)) for path, a in tree.arrays.items()]
    await asyncio.gather(*jobs)
    np = _np()
    locations = [_location(u) for u in tree.urls]
    jobs = []
    for path, a in tree.arrays.items():
        grid = tuple(math.ceil(s / c) for s, c in zip(a.shape, a.chunks, strict=True))
        n = math.prod(grid)
        urls = [""] * n
        offsets = np.zeros(n, dtype=np.uint64)
        lengths = np.zeros(n, dtype=np.uint64)
        virtual = False
        for key, v in a.chunks_ref.items():
            if isinstance(v, tuple):
                flat = int(np.ravel_multi_index(tuple(int(i) for i in key.split(".")), grid))
                urls[flat], offsets[flat], lengths[flat] = locations[v[0]], v[1], v[2]
                virtual = True
            else:  # encoded by the same codecs: the chunk's bytes as they are
                jobs.append(put(f"{path}/{_chunk_key(key if a.shape else '')}", v))
        if virtual:
            jobs.append(bounded(_set_refs(store, path, grid, urls, offsets, lengths)))
    await asyncio.gather(*jobs)


async def _set_refs(store, path, grid, urls, offsets, lengths) -> None:
    failed = await store.set_virtual_refs_arr_async(path, grid, urls, offsets, lengths,
                                                    validate_containers=True)
    if failed:
        raise BadInputError(f"{path}: {len(failed)} chunk references name no virtual chunk "
                            "container")


# -- what changed: the commit message ---------------------------------------------------------------
def _acquisition(granule_id: str):
    try:
        return Granule.parse(granule_id + ".h5").acquisition_key
    except Exception:  # a name off the convention: its own acquisition
        return granule_id


def changes(previous: list[dict], current: list[dict], record: dict | None = None) -> dict:
    """Granules ``added``, ``replaced`` (old -> new release of one acquisition) and
    ``removed`` between two provenance ``granules`` lists; the build's own ``changes`` record
    when it gives them."""
    if isinstance(record, dict) and any(k in record for k in ("added", "replaced")):
        def ids(items):
            return [i if isinstance(i, str) else (i.get("granuleId") or i.get("url", "?"))
                    for i in items or [] if isinstance(i, str | dict)]

        replaced = []
        for r in record.get("replaced") or []:
            if isinstance(r, dict):
                replaced.append((str(r.get("old") or r.get("granuleId") or "?"),
                                 str(r.get("new") or r.get("by") or "?")))
            elif isinstance(r, list | tuple) and len(r) == 2:
                replaced.append((str(r[0]), str(r[1])))
        return {"added": ids(record.get("added")), "replaced": replaced,
                "removed": ids(record.get("removed"))}
    before = {g["granuleId"] for g in previous}
    after = {g["granuleId"] for g in current}
    old_by_acq = {_acquisition(g): g for g in sorted(before - after)}
    added, replaced = [], []
    for g in sorted(after - before):
        old = old_by_acq.pop(_acquisition(g), None)
        (replaced.append((old, g)) if old else added.append(g))
    return {"added": added, "replaced": replaced, "removed": sorted(old_by_acq.values())}


def commit_message(c: dict, n_granules: int, first: bool) -> str:
    head = (f"gcov-index build: {n_granules} granules" if first else
            f"gcov-index update: {len(c['added'])} added, {len(c['replaced'])} replaced"
            + (f", {len(c['removed'])} removed" if c["removed"] else "")
            + f" ({n_granules} granules)")
    lines = [head]
    lines += [f"added {g}" for g in c["added"]]
    lines += [f"replaced {old} by {new}" for old, new in c["replaced"]]
    lines += [f"removed {g}" for g in c["removed"]]
    if len(lines) == 1:
        lines.append("no granule added or replaced")
    return "\n".join(lines)


# -- writing --------------------------------------------------------------------------------------
def _refuse(out, what: str) -> BadInputError:
    return BadInputError(f"--out {out}: not an Icechunk repository ({what}); nothing was "
                         "changed: remove it or choose another --out")


def check_out(out: str | Path, access: Access | None = None) -> str:
    """What ``--out`` holds: "absent" (or an empty folder) or "repo" (an Icechunk
    repository). Anything else is refused with one line, untouched."""
    icechunk = _icechunk()

    if is_remote(out):
        try:
            exists = icechunk.Repository.exists(storage(out, access))
        except Exception as e:  # icechunk's errors: one line
            raise AccessError(f"--out {out}: cannot reach it ({_first(e)})") from None
        return "repo" if exists else "absent"
    p = Path(out).expanduser()
    if not p.exists() and not p.is_symlink():
        return "absent"
    if p.is_symlink() or not p.is_dir():
        raise _refuse(out, "a link" if p.is_symlink() else "a file")
    if not any(p.iterdir()):
        return "absent"
    if not (p / "repo").exists() or not icechunk.Repository.exists(storage(p, None)):
        raise _refuse(out, "a folder that holds something else")
    return "repo"


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def head_attrs(repo) -> dict | None:
    """The root ``gcov_index`` attributes of the branch's head, or None (a new repository)."""
    import zarr

    session = repo.readonly_session(branch=BRANCH)
    try:
        root = zarr.open_group(session.store, mode="r", zarr_format=3)
    except Exception:  # the first commit: no root group yet
        return None
    gi = root.attrs.asdict().get(STORE_ATTR)
    return gi if isinstance(gi, dict) else None


def write_icechunk(tree: VirtualTree, out: str | Path, access: Access) -> str:
    """Write the tree as one commit on ``main`` of the Icechunk repository ``out`` (created if
    absent); returns the snapshot id. The previous head stays in the history."""
    icechunk = _icechunk()

    kind = check_out(out, access)
    st = storage(out, access)
    config = _config(access.endpoints, tree.urls)
    auth = authorizations(access, [c.url_prefix for c in containers(access.endpoints,
                                                                      tree.urls)])
    try:
        if kind == "absent":
            if not is_remote(out):
                Path(out).expanduser().mkdir(parents=True, exist_ok=True)
            repo = icechunk.Repository.create(st, config=config,
                                              authorize_virtual_chunk_access=auth)
            previous = None
        else:
            repo = icechunk.Repository.open(st, config=config,
                                            authorize_virtual_chunk_access=auth)
            if set(config.virtual_chunk_containers) - set(
                    icechunk.Repository.fetch_config(st).virtual_chunk_containers or {}):
                repo.save_config()  # a granule of another bucket or host: its container kept
            previous = head_attrs(repo)
        session = repo.writable_session(BRANCH)
        store = session.store
        if previous is not None:
            store.sync_clear()  # the new tree replaces the old one in this commit
        _write_tree(store, tree)
        current = tree.groups.get("", {}).get(STORE_ATTR, {})
        c = changes((previous or {}).get("granules") or [], current.get("granules") or [],
                    current.get("changes"))
        message = commit_message(c, len(tree.urls), previous is None)
        return session.commit(message, metadata={
            "gcov_index": {"added": c["added"], "replaced": [list(p) for p in c["replaced"]],
                           "removed": c["removed"], "granules": len(tree.urls)}},
            allow_empty=True)
    except icechunk.ConflictError:
        raise BadInputError(f"--out {out}: another build committed to it meanwhile; nothing of "
                            "this build was committed: run it again") from None
    except (BadInputError, AccessError):
        raise
    except icechunk.IcechunkError as e:
        raise AccessError(f"--out {out}: cannot write the Icechunk repository "
                          f"({_first(e)})") from None


# -- reading --------------------------------------------------------------------------------------
@dataclass
class Opened:
    """One snapshot of a repository, read once: its session, and the metadata in zarr v2
    terms (``path/.zgroup`` / ``.zarray`` / ``.zattrs``), as the other formats give it."""

    repo: Any
    session: Any
    meta: dict
    authorized: bool = False


class LazyMeta(dict):
    """The metadata of a snapshot, read when first asked for beyond the root group's: opening
    a store needs only its root attributes (the ``gcov_index`` record), and listing every
    node of a repository costs a listing of every key."""

    def __init__(self, store):
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        super().__init__()
        self._store = store
        root = sync(store.get("zarr.json", default_buffer_prototype()))
        attrs = json.loads(root.to_bytes()).get("attributes") or {} if root is not None else {}
        self._root = {".zgroup": {"zarr_format": 2}, ".zattrs": attrs}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            dict.update(self, v2_metadata(self._store))
            self._loaded = True

    def __getitem__(self, key):
        if key in self._root and not self._loaded:
            return self._root[key]
        self._load()
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        if key in self._root and not self._loaded:
            return self._root[key]
        self._load()
        return dict.get(self, key, default)

    def __contains__(self, key) -> bool:
        if key in self._root and not self._loaded:
            return True
        self._load()
        return dict.__contains__(self, key)

    def __iter__(self):
        self._load()
        return dict.__iter__(self)

    def __len__(self) -> int:
        self._load()
        return dict.__len__(self)

    def keys(self):
        self._load()
        return dict.keys(self)

    def items(self):
        self._load()
        return dict.items(self)

    def values(self):
        self._load()
        return dict.values(self)


def not_found_errors() -> type[BaseException]:
    """What Icechunk raises for a group or key that is not there."""
    import zarr

    return zarr.errors.GroupNotFoundError


def open_repo(store: str | Path, access: Access | None = None, *, authorize: bool = True,
              snapshot_id: str | None = None, meta: bool = True) -> Opened:
    """Open the repository at ``store``: the head of ``main`` (or ``snapshot_id``), its
    containers authorized for ``access`` (refreshable S3 credentials; the token only to a
    trusted HTTPS host), read-only."""
    icechunk = _icechunk()

    st = storage(store, access)
    try:
        if not icechunk.Repository.exists(st):
            if is_remote(store) or Path(store).expanduser().exists():
                raise BadInputError(f"{store}: not an Icechunk repository")
            raise AccessError(f"{store}: no such store")
        held = icechunk.Repository.fetch_config(st)
        config = reader_config(access, held) if held is not None else None
        prefixes = list((config.virtual_chunk_containers or {}) if config else [])
        repo = icechunk.Repository.open(
            st, config=config,
            authorize_virtual_chunk_access=authorizations(access, prefixes)
            if authorize and access is not None else None)
        session = (repo.readonly_session(snapshot_id=snapshot_id) if snapshot_id else
                   repo.readonly_session(branch=BRANCH))
    except (BadInputError, AccessError):
        raise
    except icechunk.IcechunkError as e:
        raise AccessError(f"{store}: cannot open the Icechunk repository ({_first(e)})") from None
    return Opened(repo, session, LazyMeta(session.store) if meta else {},
                  authorized=authorize and access is not None)


def v2_metadata(store) -> dict[str, dict]:
    """Every group's and array's metadata of a zarr v3 tree in the kerchunk stores' terms
    (``path/.zgroup``, ``.zarray``, ``.zattrs``), from the ``zarr.json`` documents listed."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    async def read_all() -> dict[str, dict]:
        keys = [k async for k in store.list_prefix("") if k.rsplit("/", 1)[-1] == "zarr.json"]
        proto = default_buffer_prototype()
        docs = await asyncio.gather(*(store.get(k, proto) for k in keys))
        return {k: json.loads(d.to_bytes()) for k, d in zip(keys, docs, strict=True)
                if d is not None}

    meta: dict[str, dict] = {}
    for key, doc in sync(read_all()).items():
        path = key[: -len("zarr.json")]  # "" or "a/b/"
        attrs = doc.get("attributes") or {}
        if doc.get("node_type") == "group":
            meta[f"{path}.zgroup"] = {"zarr_format": 2}
            meta[f"{path}.zattrs"] = attrs
        else:
            grid = doc["chunk_grid"]["configuration"]["chunk_shape"]
            meta[f"{path}.zarray"] = {"zarr_format": 2, "shape": doc["shape"], "chunks": grid,
                                      "dtype": doc["data_type"]}
            meta[f"{path}.zattrs"] = {"_ARRAY_DIMENSIONS": doc.get("dimension_names") or [],
                                      **{k: v for k, v in attrs.items() if k != "_FillValue"}}
    return meta


def history(store: str | Path, access: Access | None = None) -> list[dict]:
    """The commits of ``main``, newest first: snapshot id, time, message, what changed."""
    opened = open_repo(store, access, authorize=False)
    return [{"id": s.id, "written_at": s.written_at.isoformat(), "message": s.message,
             "metadata": json.loads(json.dumps(s.metadata, default=str))}
            for s in opened.repo.ancestry(branch=BRANCH)]
