"""Tiny hand-made GranuleManifests for the unit lane: the shape of a GCOV granule (identification,
one grid with a virtual layer, orbit and attitude), no HDF5 file behind them."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from gcov_index.granule import Granule
from gcov_index.index.manifest import ArrayManifest, GranuleManifest
from gcov_index.index.merge import PROVENANCE, merge
from gcov_index.index.tree import VirtualArray, VirtualTree
from gcov_index.io.fingerprint import Fingerprint
from gcov_index.product import GRIDS, IDENT

GRID = f"{GRIDS}/frequencyA"
META = "science/LSAR/GCOV/metadata"
ORBIT = f"{META}/orbit"
ATT = f"{META}/attitude"
PROC = f"{META}/processingInformation"
BASE = datetime(2025, 11, 22, 2, 46, 18)
PROV_COORDS = " ".join(PROVENANCE)
FILTERS = [{"id": "shuffle", "elementsize": 4}]
COMPRESSOR = {"id": "zlib", "level": 4}


def name_of(t: int, crid: str = "X05009", start: datetime | None = None) -> str:
    s = start or BASE + timedelta(days=12 * t)
    e = s + timedelta(seconds=34)
    return (f"NISAR_L2_PR_GCOV_{5 + t:03d}_172_A_008_2005_DHDH_A_{s:%Y%m%dT%H%M%S}"
            f"_{e:%Y%m%dT%H%M%S}_{crid}_N_F_J_001.h5")


def arr(path: str, data, dims=None, attrs=None, **kw) -> ArrayManifest:
    """A materialised array."""
    data = np.asarray(data)
    dims = (None,) * data.ndim if dims is None else tuple(dims)
    return ArrayManifest(path=path, shape=data.shape, dtype=data.dtype.str, dims=dims,
                         attrs=dict(attrs or {}), data=data, **kw)


def layer(t: int, shape=(6, 4), chunks=(2, 2), inline=("0.0",), attrs=None,
          path=f"{GRID}/HHHH") -> ArrayManifest:
    """A virtual grid layer: chunk refs into granule t, and some inlined chunks."""
    keys = [f"{i}.{j}" for i in range(-(-shape[0] // chunks[0]))
            for j in range(-(-shape[1] // chunks[1]))]
    refs = {k: (4096 * (t + 1) + 100 * n, 40 + n) for n, k in enumerate(keys) if k not in inline}
    return ArrayManifest(
        path=path, shape=tuple(shape), dtype="<f4", dims=("yCoordinates", "xCoordinates"),
        attrs={"grid_mapping": "projection", "units": "1", "mean_value": 0.5 + t}
        if attrs is None else attrs,
        fill_value="NaN", chunks=tuple(chunks), filters=FILTERS, compressor=COMPRESSOR,
        refs=refs, inline={k: f"inline {t} {k}".encode() for k in inline})


def manifest(t: int, *, crid: str = "X05009", start: datetime | None = None,
             n_orbit: int = 5, epsg: int = 32611, x=None, y=None, hhhh=None,
             extra: dict[str, ArrayManifest | None] | None = None) -> GranuleManifest:
    """A small GCOV manifest for time step t. ``extra`` adds or replaces arrays by path (None
    removes one)."""
    start = start or BASE + timedelta(days=12 * t)
    name = name_of(t, crid, start)
    url = f"file:///x/{name}"
    x = np.arange(4, dtype="<f8") * 20 + 500000.0 if x is None else np.asarray(x)
    y = 4000000.0 - np.arange(6, dtype="<f8") * 20 if y is None else np.asarray(y)
    ident = {
        "granuleId": np.array(name.removesuffix(".h5").encode()),
        "compositeReleaseId": np.array(crid.encode()),
        "trackNumber": np.array(172, dtype="<u4"),
        "frameNumber": np.array(8, dtype="<u2"),
        "absoluteOrbitNumber": np.array(1000 + t, dtype="<u4"),
        "orbitPassDirection": np.array(b"Ascending"),
        "zeroDopplerStartTime": np.array(f"{start:%Y-%m-%dT%H:%M:%S}.000000000".encode()),
        "listOfFrequencies": np.array([b"A"], dtype="S1"),
    }
    arrays = [arr(f"{IDENT}/{k}", v) for k, v in ident.items()]
    arrays += [
        arr(f"{GRID}/xCoordinates", x, ("xCoordinates",), {"units": "m"}, is_scale=True),
        arr(f"{GRID}/yCoordinates", y, ("yCoordinates",), {"units": "m"}, is_scale=True),
        arr(f"{GRID}/projection", np.array(epsg, dtype="<u4"), (), {"epsg_code": epsg}),
        arr(f"{GRID}/xCoordinateSpacing", np.array(20.0), ()),
        arr(f"{GRID}/yCoordinateSpacing", np.array(-20.0), ()),
        hhhh if hhhh is not None else layer(t),
        arr(f"{ORBIT}/time", np.arange(n_orbit, dtype="<f8") * 10 + t, ("time",),
            {"units": "seconds"}, is_scale=True),
        arr(f"{ORBIT}/position", np.full((n_orbit, 3), float(t)), ("time", None), {"units": "m"}),
        arr(f"{ATT}/time", np.arange(94, dtype="<f8"), ("time",), is_scale=True),
        arr(f"{ATT}/quaternions", np.zeros((94, 4)), (None, None)),
        arr(f"{ATT}/eulerAngles", np.zeros((94, 3)), (None, None)),
    ]
    by_path = {a.path: a for a in arrays}
    for path, a in (extra or {}).items():
        if a is None:
            by_path.pop(path, None)
        else:
            by_path[path] = a
    groups = {g: {} for g in ("science", "science/LSAR", IDENT, "science/LSAR/GCOV", GRIDS,
                              META, ORBIT, ATT)}
    groups[GRID] = {"description": "frequency A", "processed": f"run {t}"}
    return GranuleManifest(
        granule=Granule.parse(url), url=url,
        fingerprint=Fingerprint(size=10_000 + t, etag=f"etag-{t}", mtime="2025-12-01T00:00:00"),
        start_time=np.datetime64(start, "ns"),
        root_attrs={"Conventions": "CF-1.7", "history": f"made {t}"},
        groups=groups, arrays=by_path)


def stack(n: int = 3, **changes) -> VirtualTree:
    return merge([manifest(t, **changes) for t in range(n)])


def values(a: VirtualArray) -> np.ndarray:
    """The values of a merged array whose chunks are all inlined bytes."""
    if len(a.chunks) == len(a.shape) and a.shape and a.chunks[0] == 1:  # stacked: one per step
        steps = [np.frombuffer(a.chunks_ref[".".join([str(t)] + ["0"] * (len(a.shape) - 1))],
                               dtype=a.dtype).reshape(a.chunks[1:]) for t in range(a.shape[0])]
        return np.stack(steps)
    (raw,) = a.chunks_ref.values()
    return np.frombuffer(raw, dtype=a.dtype).reshape(a.shape)
