"""Scan one granule into a GranuleManifest: every dataset of the HDF5 tree, none silently lost.

VirtualiZarr's ``HDFParser`` (behind the adapter in ``virtual.py``) reads the chunk index (v1
B-tree) and maps the HDF5 filters to codecs. One h5py pass over the same cached reader then mends what the parsers get wrong for
this product. The reader (``io.access.FrugalReader``, issue 11) caches 64 KiB blocks, not 4 MiB
pages: a full-size granule's metadata is ~1.6 MB spread over ~9 pages (37.7 MB as pages, ~2 MB
as blocks); it reads ahead on sequential misses and prefetches, in its first round, the blocks a
scan of the previous granule of the same track, frame, mode and polarisations used (``shared/gcov-product.md``, "Known traps"):

1. complex ``_FillValue`` (trap 1): read from the attribute and stored as zarr's complex fill;
2. phony dimensions (trap 2): axes without a dimension scale are left unnamed here and named
   per group at merge time, one ``phony_dim_N`` per distinct length (h5netcdf's rule);
3. parent-group scales (trap 3): a dimension is named after its scale's basename;
3b. layers on their own grid: an axis whose attached scale has another length than the axis
   (an ``inputDataExceptionMask`` on a finer grid than its group's ``x|yCoordinates``, which the
   product attaches anyway) is left unnamed, so the merge gives it a phony dimension of its own
   length instead of a name that clashes with the group's scale and stops xarray opening the
   group ("conflicting sizes for dimension 'yCoordinates'");
4. strings (trap 4): fixed- and variable-length string datasets are read and inlined;
5. per-chunk filter masks (trap 5): a chunk stored with a filter skipped is read through HDF5
   and re-encoded with the array's full codec pipeline, then inlined;
6. small contiguous datasets (trap 6): read once here from the cached blocks, stored inline,
   so opening the store never goes back to the granule for them (one-chunk tables too, up to
   ``INLINE_LIMIT``; larger ones stay references).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NoReturn

import h5py
import numcodecs
import numpy as np

from ..errors import AccessError, BadInputError, GcovIndexError, NotGcovError, first_line
from ..granule import Granule, collection_in, file_name
from ..io.access import (
    Access,
    canonical_url,
    known_layout,
    open_frugal_reader,
    read_failure,
    remember_layout,
    remote_error,
)
from ..io.fingerprint import Fingerprint, fingerprint_of
from ..product import GCOV_ROOT, GRIDS, IDENT, START_TIME
from .manifest import ArrayManifest, GranuleManifest, json_value
from .virtual import ChunkedArray, parse_hdf5

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HIDDEN_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid",
                "_Netcdf4Coordinates", "_nc3_strict", "_NCProperties", "_FillValue"}


def attrs_of(obj: h5py.HLObject) -> dict:
    out = {}
    for name in obj.attrs:
        if name in HIDDEN_ATTRS:
            continue
        try:
            value = obj.attrs[name]
            out[name] = "" if isinstance(value, h5py.Empty) else json_value(value)
        except (OSError, TypeError):  # a type h5py cannot read: keep its name, say so
            out[name] = "<unreadable attribute>"
    return out


def fill_value_of(ds: h5py.Dataset, dtype: np.dtype) -> Any:
    """The CF fill (``_FillValue`` attribute) in zarr v2 JSON form, or None."""
    if "_FillValue" not in ds.attrs or dtype.kind in "SUO":
        return None
    raw = np.asarray(ds.attrs["_FillValue"])
    if raw.dtype.names:
        raw = raw.view(np.complex64 if raw.dtype.itemsize == 8 else np.complex128)
    return json_value(raw.astype(dtype).reshape(-1)[0])


# ---------------------------------------------------------------------------------------


def _dims(ds: h5py.Dataset, name: str, scales: dict) -> tuple[str | None, ...]:
    """Each axis's dimension: its attached scale's basename when the scale is as long as the
    axis; else None (a phony dimension, named at merge time). ``name``: the dataset's path;
    ``scales``: scale object -> basename, filled as met (h5py's ``.name`` asks libhdf5 to
    search for a path: 0.3 s of a full-size scan when asked for every axis)."""
    dims: list[str | None] = []
    scale = h5py.h5ds.is_scale(ds.id)
    for axis in range(ds.ndim):
        attached = ds.dims[axis]
        if len(attached) >= 1:
            first = attached[0]
            same_length = first.ndim == 1 and first.shape[0] == ds.shape[axis]
            if same_length and first.id not in scales:
                scales[first.id] = first.name.rsplit("/", 1)[-1]
            dims.append(scales[first.id] if same_length else None)
        elif scale and axis == 0:
            dims.append(name.rsplit("/", 1)[-1])
        else:
            dims.append(None)
    return tuple(dims)


INLINE_LIMIT = 64 * 1024  # bytes: a one-chunk table larger than this stays a reference


def _is_materialised(ds: h5py.Dataset, name: str) -> bool:
    """Read now and inline: contiguous datasets, strings, and small one-chunk tables outside
    the grids. Grid layers, multi-chunk arrays and larger tables (the calibration and timing
    tables of a full-size granule are 0.5-1.2 MB each: inlined, a one-granule JSON store was
    22 MB) stay references, read when asked for."""
    if ds.chunks is None or ds.dtype.kind in "SOU" or ds.shape == ():
        return True
    whole = tuple(ds.chunks) == tuple(ds.shape)
    small = ds.size * ds.dtype.itemsize <= INLINE_LIMIT
    return whole and small and "/GCOV/grids/" not in f"/{name}"


def _referenced_groups(f: h5py.File) -> dict[str, set[str]]:
    """Each group that holds datasets kept by reference -> its other members (to leave out):
    VirtualiZarr parses those datasets only (parsing the whole spec tree took ~0.75 s a
    granule, most of it on scalars and strings read here anyway)."""
    members: dict[str, set[str]] = {}
    wanted: dict[str, set[str]] = {}

    def visit(name: str, obj) -> None:
        group, _, base = name.rpartition("/")
        members.setdefault(group, set()).add(base)
        if isinstance(obj, h5py.Dataset) and not _is_materialised(obj, name):
            wanted.setdefault(group, set()).add(base)

    f.visititems(visit)
    return {group: members[group] - names for group, names in wanted.items()}


def _materialise(ds: h5py.Dataset) -> np.ndarray:
    data = ds[()]
    if ds.dtype.kind == "O":  # variable-length strings: fixed-length UTF-8 bytes
        items = np.asarray(ds.asstr()[()], dtype=object)
        enc = [s.encode() for s in items.reshape(-1)]
        width = max((len(e) for e in enc), default=1) or 1
        data = np.array(enc, dtype=f"S{width}").reshape(items.shape)
    return np.asarray(data)


def _reencoded(ds: h5py.Dataset, offset: tuple[int, ...], filters, compressor) -> bytes:
    """One chunk as HDF5 decodes it (honouring its filter mask), encoded with every codec."""
    region = tuple(slice(o, min(o + c, n)) for o, c, n in zip(offset, ds.chunks, ds.shape,
                                                                strict=True))
    block = np.zeros(ds.chunks, dtype=ds.dtype)
    values = ds[region]
    block[tuple(slice(0, v) for v in values.shape)] = values
    buf: Any = np.ascontiguousarray(block).tobytes()
    for cfg in [*filters, compressor] if compressor else filters:
        buf = numcodecs.get_codec(dict(cfg)).encode(buf)
    return bytes(buf)


def _array(ds: h5py.Dataset, vz: ChunkedArray | None, path: str, scales: dict) -> ArrayManifest:
    """``path``: the dataset's path (no leading slash); ``scales``: see :func:`_dims`."""
    dims = _dims(ds, path, scales)
    is_scale = h5py.h5ds.is_scale(ds.id)
    if _is_materialised(ds, path) or vz is None:
        data = _materialise(ds)
        return ArrayManifest(path=path, shape=tuple(data.shape), dtype=data.dtype.str, dims=dims,
                             attrs=attrs_of(ds), fill_value=fill_value_of(ds, data.dtype),
                             is_scale=is_scale, data=data)
    dtype, filters, compressor, refs = vz.dtype, vz.filters, vz.compressor, dict(vz.refs)
    inline = {}
    masks: list = []
    ds.id.chunk_iter(masks.append)
    for info in masks:
        if info.filter_mask:
            key = ".".join(str(o // c) for o, c in zip(info.chunk_offset, ds.chunks, strict=True))
            refs.pop(key, None)
            inline[key] = _reencoded(ds, info.chunk_offset, filters, compressor)
    return ArrayManifest(path=path, shape=tuple(ds.shape), dtype=dtype.str, dims=dims,
                         attrs=attrs_of(ds), fill_value=fill_value_of(ds, dtype),
                         is_scale=is_scale, chunks=tuple(ds.chunks), filters=filters,
                         compressor=compressor, refs=refs, inline=inline)


def scan(url: str, access: Access | None = None,
         fp: Fingerprint | None = None) -> GranuleManifest:
    """Scan one granule (local path, s3:// or https:// URL) into a GranuleManifest."""
    access = access or Access.from_env()
    granule = _granule_of(url)  # None: a name off the convention, read from identification
    url = canonical_url(url)
    store, path = access.object_store(url)
    fingerprint = fp or fingerprint_of(store, path, url)
    # blocks a scan of a granule of the same layout used are fetched in the first round: the
    # same track, frame, mode and polarisations (and size, when the same: then it is exact)
    layout = _layout_key(granule)
    sized = (layout, fingerprint.size)
    reader = open_frugal_reader(store, path, url, hint=known_layout(sized, layout),
                                size=None if fp else fingerprint.size)
    try:
        head = reader.read(8)
        reader.seek(0)
    except Exception as e:
        raise read_failure(url, e, reader) or AccessError(f"{url}: cannot read "
                                                          f"({first_line(e)})") from None
    if head != HDF5_SIGNATURE:
        raise NotGcovError(f"{url}: not an HDF5 file")
    try:
        with h5py.File(reader, "r") as f:
            _check_gcov(f, url)  # another product is refused before any parsing
            groups = _referenced_groups(f)
        virtual = parse_hdf5(reader, url, store, groups=groups)
        with h5py.File(reader, "r") as f:
            if granule is None:
                granule = _identified(f, url)
            manifest = _read_tree(f, url, replace(granule, url=url), fingerprint, virtual)
        if reader.failure is not None:  # a failed read some step took for a bad value
            raise remote_error(url, reader.failure)
        remember_layout(sized, reader.used)
        if layout is not None:
            remember_layout(layout, reader.used)
        return manifest
    except GcovIndexError:
        raise
    except Exception as e:
        # a request that failed on the way (refused, missing, unreachable after the retries)
        # is not a malformed file, whatever h5py or the parser made of it: exit 3 or 4, not 2
        failed = read_failure(url, e, reader)
        if failed is not None:
            raise failed from None
        _malformed(url, e, fingerprint)


def _malformed(url: str, e: Exception, fingerprint: Fingerprint) -> NoReturn:
    """The bytes arrived and are not a readable GCOV granule: one line, exit 2."""
    if isinstance(e, OSError):
        text = str(e)
        if "truncated" in text or "eof" in text.lower():
            raise NotGcovError(f"{url}: truncated HDF5 file ({fingerprint.size} bytes)") from None
        raise NotGcovError(f"{url}: unreadable HDF5 file ({first_line(text)})") from None
    raise NotGcovError(f"{url}: cannot be scanned ({type(e).__name__}: {first_line(e)})") from None


def _layout_key(granule: Granule | None) -> tuple | None:
    """What granules whose metadata sits at the same offsets have in common (a guess)."""
    if granule is None:
        return None
    return (granule.track, granule.direction, granule.frame, granule.mode,
            granule.polarizations, granule.coverage)


def _granule_of(url: str) -> Granule | None:
    """The granule its name says; None for an ``.h5`` name off the convention (a NISAR name of
    another product, GSLC or GUNW, is refused by ``Granule.parse``)."""
    try:
        return Granule.parse(url)
    except BadInputError:
        name = file_name(url)
        if name.startswith("NISAR_") or not name.lower().endswith(".h5"):
            raise
        return None


def _product_type(f: h5py.File) -> str:
    try:
        value = f[f"{IDENT}/productType"][()]
    except (KeyError, OSError, TypeError):
        return ""
    return (value.decode() if isinstance(value, bytes) else str(value)).strip()


def _identified(f: h5py.File, url: str) -> Granule:
    """The fields of a granule named off the convention, from its ``identification`` group."""
    _check_gcov(f, url)
    ident: dict = {}
    for name, obj in f[IDENT].items():
        if isinstance(obj, h5py.Dataset) and obj.size <= 64:
            ident[name] = obj[()] if obj.shape == () else list(obj[()])
    ident["polarizations"] = {
        freq[-1]: [p.decode() if isinstance(p, bytes) else str(p) for p in grp["listOfPolarizations"][()]]
        for freq, grp in (f[GRIDS].items() if GRIDS in f else ()) if "listOfPolarizations" in grp}
    # the name it was released under, when identification/granuleId holds one: the same
    # acquisition key as a copy of it under its own name, so one release per acquisition is kept
    gid = ident.get("granuleId", b"")
    gid = (gid.decode() if isinstance(gid, bytes) else str(gid)).strip()
    try:
        named = Granule.parse(gid + ".h5") if gid else None
    except BadInputError:
        named = None
    if named is not None:
        return replace(named, url=url, name=file_name(url).removesuffix(".h5"),
                       collection=collection_in(url))
    return Granule.from_identification(url, ident)


def _check_gcov(f: h5py.File, url: str) -> None:
    kind = _product_type(f)
    if kind and kind.upper() != "GCOV":
        raise NotGcovError(f"{url}: a NISAR {kind} granule, not GCOV")
    if GCOV_ROOT not in f or START_TIME not in f:
        raise NotGcovError(f"{url}: an HDF5 file but not a NISAR L2 GCOV granule "
                           f"(no /{GCOV_ROOT} or /{START_TIME})")


def _read_tree(f: h5py.File, url: str, granule: Granule, fingerprint: Fingerprint,
               virtual: dict) -> GranuleManifest:
    _check_gcov(f, url)
    start = f[START_TIME][()]
    start = start.decode() if isinstance(start, bytes) else str(start)
    try:
        start_time = np.datetime64(start.strip().rstrip("Z"), "ns")
    except ValueError:
        raise NotGcovError(f"{url}: identification/zeroDopplerStartTime {start!r} is not a time") from None
    groups: dict[str, dict] = {"": attrs_of(f)}
    arrays: dict[str, ArrayManifest] = {}
    scales: dict = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group):
            groups[name] = attrs_of(obj)
        elif isinstance(obj, h5py.Dataset):
            arrays[name] = _array(obj, virtual.get(name), name, scales)
        # committed datatypes (/complex64) are types, not data: nothing to reference

    f.visititems(visit)
    return GranuleManifest(granule=granule, url=url, fingerprint=fingerprint,
                           start_time=start_time, root_attrs=groups.pop(""), groups=groups,
                           arrays=arrays)
