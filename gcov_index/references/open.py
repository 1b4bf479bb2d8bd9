"""Open a store as an ``xarray.DataTree``, chunks read from local files, S3 (temporary
credentials that renew) or HTTPS (bearer token); granule URLs rewritten s3 <-> https at open
time, so the store itself never holds a token or a key."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import rioxarray  # noqa: F401  (registers the .rio accessor: CRS from grid_mapping)
import xarray as xr
import zarr

from ..errors import BadInputError
from .access import Access
from .store import metadata, open_refs, reference_filesystem, store_attrs


def _family(url: str) -> str:
    """``s3``, ``file``, or ``https`` for both http and https URLs."""
    scheme = urlparse(url).scheme
    return "https" if scheme == "http" else scheme


def _local_fs():
    from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper
    from fsspec.implementations.local import LocalFileSystem

    return AsyncFileSystemWrapper(LocalFileSystem(), asynchronous=True)


def zarr_store(store: str | Path, *, protocol: str | None = None, access: Access | None = None):
    """A read-only zarr store over the references, with the remote file systems it needs."""
    if protocol not in (None, "s3", "https"):
        raise BadInputError(f"protocol {protocol!r}: use s3 or https")
    fo = open_refs(store)  # a JSON store is parsed once, here
    urls = [g["url"] for g in store_attrs(store, metadata(store, fo))["granules"]]
    overrides = None
    access = access or Access.from_options()
    if protocol is not None and any(_family(u) not in (protocol, "file") for u in urls):
        if not isinstance(fo, dict):
            raise BadInputError(f"{store}: switching protocol at open time needs a JSON store")
        rewrite = access.to_https if protocol == "https" else access.to_s3
        overrides = {f"u{i}": rewrite(u) for i, u in enumerate(urls)}
        urls = list(overrides.values())
    filesystems = {}
    for scheme in {urlparse(u).scheme for u in urls}:
        filesystems[scheme] = _local_fs() if scheme == "file" else access.remote_filesystem(scheme)
    fs = reference_filesystem(fo, filesystems, template_overrides=overrides)
    return zarr.storage.FsspecStore(fs, read_only=True, path="")


def open_store(store: str | Path, *, protocol: str | None = None, access: Access | None = None,
               chunks=None, **open_kwargs) -> xr.DataTree:
    """The whole store as an ``xarray.DataTree``; ``protocol`` "s3" or "https" reads the chunks
    that way whatever the store was built from (default: as built)."""
    zs = zarr_store(store, protocol=protocol, access=access)
    return xr.open_datatree(zs, engine="zarr", consolidated=False, zarr_format=2, chunks=chunks,
                            **open_kwargs)
