"""Open a store as an ``xarray.DataTree``, chunks read from local files, S3 (temporary
credentials that renew) or HTTPS (bearer token, to trusted hosts only); granule URLs rewritten
s3 <-> https at read time, so the store itself never holds a token or a key, and a store
naming another host never receives one."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import rioxarray  # noqa: F401  (registers the .rio accessor: CRS from grid_mapping)
import xarray as xr
import zarr

from ..errors import BadInputError
from ..io.access import Access, family
from ..store import icechunk as icechunk_store
from ..store.layout import StoreHandle, open_handle, reference_filesystem


def _local_fs():
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
    from fsspec.implementations.local import LocalFileSystem

    return AsyncFileSystemWrapper(LocalFileSystem(), asynchronous=True)


def protocol_rewriter(access: Access, protocol: str, store, urls: list[str]):
    """The s3 -> https (or https -> s3) rewrite, checked on every granule URL of the store."""
    rewrite = access.to_https if protocol == "https" else access.to_s3
    for url in urls:
        if family(url) not in (protocol, "file") and family(rewrite(url)) != protocol:
            where = f"under {access.https_base}" if protocol == "s3" else "an s3:// URL"
            raise BadInputError(f"{store}: cannot read {url} over {protocol} (it is not {where}; "
                                "set GCOV_INDEX_HTTPS_BASE)")
    return rewrite


READ_CONCURRENCY = 256  # chunk reads in flight at once, by default
CONCURRENCY_ENV = "GCOV_INDEX_READ_CONCURRENCY"


def read_concurrency(concurrency: int | None = None) -> int:
    """How many chunk reads go out at once: ``concurrency``, else ``$GCOV_INDEX_READ_CONCURRENCY``,
    else 256. A time series over N granules reads its N chunks per layer in one wave when N is
    at most this (1000 granules: set 1000 or more for one round trip)."""
    if concurrency is None:
        text = os.environ.get(CONCURRENCY_ENV, "").strip()
        if text:
            try:
                concurrency = int(text)
            except ValueError:
                raise BadInputError(f"{CONCURRENCY_ENV}={text!r}: give a whole number of chunk "
                                    "reads, e.g. 256") from None
            what = f"{CONCURRENCY_ENV}={text}"
        else:
            concurrency = READ_CONCURRENCY
            what = ""
    else:
        what = f"concurrency={concurrency}"
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise BadInputError(f"{what or concurrency}: give at least 1 chunk read at a time")
    return concurrency


def _read_concurrency(concurrency: int | None = None) -> None:
    """zarr reads at most ``async.concurrency`` chunks at once (10 by default): a box over 50
    granules then takes 5 round trips. Set it to :func:`read_concurrency` so that one does."""
    n = read_concurrency(concurrency)
    if zarr.config.get("async.concurrency") != n:
        zarr.config.set({"async.concurrency": n})


def zarr_store(store: str | Path | StoreHandle, *, protocol: str | None = None,
               access: Access | None = None, concurrency: int | None = None):
    """A read-only zarr store over the references, with the remote file systems it needs.

    ``protocol`` ("s3" or "https") reads every granule that way, whatever URLs the store
    holds: they are rewritten at read time (``Access.chunk_filesystem``). ``store`` may be a
    :class:`~gcov_index.store.layout.StoreHandle` already opened: one version, read once.
    """
    if protocol not in (None, "s3", "https"):
        raise BadInputError(f"protocol {protocol!r}: use s3 or https")
    access = access or Access.from_env()
    handle = open_handle(store, access=access)  # resolved, read and checked once; pinned
    urls = handle.urls
    if handle.fmt == "icechunk":
        return icechunk_session(handle, protocol=protocol, access=access,
                                concurrency=concurrency).store
    rewrite = protocol_rewriter(access, protocol, store, urls) if protocol else None
    # Every remote URL the references name, whatever their scheme and host, is read through
    # the Access's router: S3 with the temporary credentials at the configured endpoint, the
    # token only to a trusted host, any other host without credentials (io/access.py). Local
    # files are read only for a store of local granules.
    remote = access.chunk_filesystem(rewrite, only=protocol)
    filesystems = {scheme: remote for scheme in ("s3", "https", "http")}
    if any(urlparse(url).scheme in ("file", "") for url in urls):
        filesystems["file"] = _local_fs()
    fs = reference_filesystem(handle, filesystems)
    _read_concurrency(concurrency)
    return zarr.storage.FsspecStore(fs, read_only=True, path="")


def store_kind(store) -> str:
    """Which opener reads ``store``: ``kerchunk`` (a JSON or Parquet reference store, a path or
    an s3:// or https:// URL)."""
    return "kerchunk"


def icechunk_session(handle: StoreHandle, *, protocol: str | None = None,
                     access: Access | None = None, concurrency: int | None = None):
    """A read-only Icechunk session of the snapshot ``handle`` opened, its virtual chunk
    containers authorized for ``access``: refreshable Earthdata S3 credentials, the token as a
    header only for HTTPS hosts that may get it. Chunks are read where the store names them."""
    access = access or Access.from_env()
    built = {family(u) for u in handle.urls} - {"file"}
    if protocol is not None and built - {protocol}:
        raise BadInputError(f"{handle}: an Icechunk store is read where its references point "
                            f"({', '.join(sorted(built))}); protocol={protocol!r} cannot rewrite "
                            "them (build it with --protocol " + protocol + ")")
    opened = handle.fo
    if not (opened.authorized and getattr(handle, "access", None) is access):  # opened for another reader
        opened = icechunk_store.open_repo(handle.name, access,
                                          snapshot_id=opened.session.snapshot_id, meta=False)
    _read_concurrency(concurrency)
    return opened.session


def open_store(store: str | Path | StoreHandle, *, group: str | None = None,
               stack: str | None = None, protocol: str | None = None,
               access: Access | None = None, chunks=None, concurrency: int | None = None,
               **open_kwargs) -> xr.DataTree:
    """The store as an ``xarray.DataTree``: the whole tree, or the subtree at ``group``
    (e.g. ``science/LSAR/GCOV/grids/frequencyA``, faster to open). A store of several stacks
    holds each under a root group named after it: ``stack="T172A_F008"`` opens that one
    (``group`` is then inside it). ``protocol`` "s3" or "https" reads the chunks that way
    whatever the store was built from (default: as built). No request goes to a granule
    until values are read.

    ``store`` is a path or the URL of a store published in a bucket (``s3://BUCKET/KEY``,
    credentials from the standard AWS chain: ``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``,
    ``AWS_ENDPOINT_URL``) or behind ``https://`` (read only). ``concurrency``: chunk reads in
    flight at once (:func:`read_concurrency`: ``$GCOV_INDEX_READ_CONCURRENCY``, else 256)."""
    opener = OPENERS[store_kind(store)]
    return opener(store, group=group, stack=stack, protocol=protocol, access=access,
                  chunks=chunks, concurrency=concurrency, **open_kwargs)


def _open_kerchunk(store, *, group, stack, protocol, access, chunks, concurrency=None,
                   **open_kwargs):
    access = access or Access.from_env()
    # checked against its integrity record now: the metadata and the references of the
    # arrays opened; any other refs file of a Parquet store is checked when it is read
    handle = open_handle(store, access=access, verify=False)
    if stack is not None:
        base = handle.stack(stack)[0]["group"]
        group = "/".join(p for p in (base, (group or "").strip("/")) if p) or None
    if handle is not store:
        try:
            handle.verify(None if group is None else [group])
        except BaseException:
            handle.close()
            raise
    zs = zarr_store(handle, protocol=protocol, access=access, concurrency=concurrency)
    # Metadata from the consolidated .zmetadata (one key, every node parsed), except for one
    # group of a Parquet store, whose own few keys are cheaper. Without it, listing a group of
    # a JSON store makes fsspec build a directory of every reference (0.2 s for 5 granules).
    consolidated = (group is None or handle.fmt == "json") and handle.fmt != "icechunk"
    try:
        return xr.open_datatree(zs, engine="zarr", consolidated=consolidated,
                                zarr_format=3 if handle.fmt == "icechunk" else 2,
                                chunks=chunks, group=group, **open_kwargs)
    except (KeyError, FileNotFoundError, icechunk_store.not_found_errors()) as e:
        if group is None:
            raise
        stacks = [x["id"] for x in handle.stacks if x["group"]]
        hint = (f"; it holds {len(stacks)} stacks ({', '.join(stacks)}): pass stack= or "
                f"a group under one" if stacks else "")
        raise BadInputError(f"{store}: no group {group!r} ({e}){hint}") from None


OPENERS = {"kerchunk": _open_kerchunk}  # store_kind -> the function that opens that kind
