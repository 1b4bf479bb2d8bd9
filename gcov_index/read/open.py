"""Open a store as an ``xarray.DataTree``, chunks read from local files, S3 (temporary
credentials that renew) or HTTPS (bearer token); granule URLs rewritten s3 <-> https at open
time, so the store itself never holds a token or a key."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import rioxarray  # noqa: F401  (registers the .rio accessor: CRS from grid_mapping)
import xarray as xr
import zarr
from fsspec.asyn import AsyncFileSystem

from ..errors import BadInputError
from ..io.access import Access
from ..store.layout import StoreHandle, open_handle, reference_filesystem


def _family(url: str) -> str:
    """``s3``, ``file``, or ``https`` for both http and https URLs."""
    scheme = urlparse(url).scheme
    return "https" if scheme == "http" else scheme


def _local_fs():
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
    from fsspec.implementations.local import LocalFileSystem

    return AsyncFileSystemWrapper(LocalFileSystem(), asynchronous=True)


class RewritingFileSystem(AsyncFileSystem):
    """Reads ``s3://`` references over HTTPS (or ``https://`` ones from S3): each URL the
    reference file system asks for is rewritten, then read by ``target``. The store is not
    changed, so the same shared file serves users in and out of us-west-2."""

    def __init__(self, target: AsyncFileSystem, rewrite, protocol: str):
        super().__init__(asynchronous=True)
        self.target = target
        self.rewrite = rewrite
        self.protocol = protocol

    async def _cat_file(self, path, start=None, end=None, **kwargs):
        return await self.target._cat_file(self.rewrite(path), start=start, end=end, **kwargs)

    async def _cat_ranges(self, paths, starts, ends, **kwargs):
        return await self.target._cat_ranges([self.rewrite(p) for p in paths], starts, ends,
                                             **kwargs)

    async def _info(self, path, **kwargs):
        return await self.target._info(self.rewrite(path), **kwargs)


def protocol_rewriter(access: Access, protocol: str, store, urls: list[str]):
    """The s3 -> https (or https -> s3) rewrite, checked on every granule URL of the store."""
    rewrite = access.to_https if protocol == "https" else access.to_s3
    for url in urls:
        if _family(url) not in (protocol, "file") and _family(rewrite(url)) != protocol:
            where = f"under {access.https_base}" if protocol == "s3" else "an s3:// URL"
            raise BadInputError(f"{store}: cannot read {url} over {protocol} (it is not {where}; "
                                "set GCOV_INDEX_HTTPS_BASE)")
    return rewrite


READ_CONCURRENCY = 64


def _read_concurrency() -> None:
    """zarr reads at most ``async.concurrency`` chunks at once (10 by default): a box over 50
    granules then takes 5 round trips. Raise it (never lower it) so that one does."""
    if (zarr.config.get("async.concurrency") or 0) < READ_CONCURRENCY:
        zarr.config.set({"async.concurrency": READ_CONCURRENCY})


def zarr_store(store: str | Path | StoreHandle, *, protocol: str | None = None,
               access: Access | None = None):
    """A read-only zarr store over the references, with the remote file systems it needs.

    ``protocol`` ("s3" or "https") reads every granule that way, whatever URLs the store
    holds: they are rewritten at read time (:class:`RewritingFileSystem`). ``store`` may be a
    :class:`~gcov_index.store.layout.StoreHandle` already opened: one version, read once.
    """
    if protocol not in (None, "s3", "https"):
        raise BadInputError(f"protocol {protocol!r}: use s3 or https")
    handle = open_handle(store)  # resolved, read and checked once; its version stays pinned
    urls = handle.urls
    access = access or Access.from_env()
    filesystems = {}
    rewrite = protocol_rewriter(access, protocol, store, urls) if protocol else None
    for url in urls:
        scheme = urlparse(url).scheme
        if scheme in filesystems:
            continue
        if scheme == "file":
            filesystems[scheme] = _local_fs()
        elif rewrite is not None and _family(url) != protocol:
            target = urlparse(rewrite(url)).scheme
            filesystems[scheme] = RewritingFileSystem(access.remote_filesystem(target), rewrite,
                                                      scheme)
        else:
            filesystems[scheme] = access.remote_filesystem(scheme)
    fs = reference_filesystem(handle, filesystems)
    _read_concurrency()
    return zarr.storage.FsspecStore(fs, read_only=True, path="")


def open_store(store: str | Path | StoreHandle, *, group: str | None = None,
               protocol: str | None = None, access: Access | None = None, chunks=None,
               **open_kwargs) -> xr.DataTree:
    """The store as an ``xarray.DataTree``: the whole product tree, or the subtree at ``group``
    (e.g. ``science/LSAR/GCOV/grids/frequencyA``, faster to open). ``protocol`` "s3" or "https"
    reads the chunks that way whatever the store was built from (default: as built). No
    request goes to a granule until values are read."""
    handle = open_handle(store)
    zs = zarr_store(handle, protocol=protocol, access=access)
    # Metadata from the consolidated .zmetadata (one key, every node parsed), except for one
    # group of a Parquet store, whose own few keys are cheaper. Without it, listing a group of
    # a JSON store makes fsspec build a directory of every reference (0.2 s for 5 granules).
    consolidated = group is None or handle.fmt == "json"
    try:
        return xr.open_datatree(zs, engine="zarr", consolidated=consolidated, zarr_format=2,
                                chunks=chunks, group=group, **open_kwargs)
    except (KeyError, FileNotFoundError) as e:
        if group is None:
            raise
        raise BadInputError(f"{store}: no group {group!r} ({e})") from None
