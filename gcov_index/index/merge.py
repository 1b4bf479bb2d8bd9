"""Merge per-granule manifests along ``time`` into one virtual tree (zarr v2 / kerchunk refs).

The rules (also in the README):

- ``time`` is ``identification/zeroDopplerStartTime`` as datetime64[ns]; granules are sorted by
  it, and two granules with the same start are refused.
- Grid check: every ``grids/frequency*`` group must have the same ``projection`` (EPSG),
  ``xCoordinates`` and ``yCoordinates`` in every granule; otherwise the build is refused with a
  message naming the two granules that differ.
- Stored once (no ``time``): dimension scales and the grids' ``projection`` /
  ``x|yCoordinateSpacing``, when identical in every granule that has them (a granule of a
  mode without frequency B has none of B's).
- Every other dataset gets a leading stacking dimension, ``time`` (``zeroDopplerStartTime``
  in a group that has its own dataset named ``time``: orbit, attitude). Chunked arrays stay
  virtual; materialised ones (strings, scalars, small tables) are inlined per time step.
- An array whose length varies by granule (orbit) is padded to the longest with its fill value
  (NaN for floats, 0 for integers, empty for strings). A dimension scale that varies by granule
  is stacked like data; the dimension it named becomes a phony dimension.
- Axes without a dimension scale are named per group ``phony_dim_N``, one per distinct length
  in the order they appear (h5netcdf's rule), so ``quaternions [94,4]`` and ``eulerAngles
  [94,3]`` no longer collide.
- A layer on its own grid (an axis longer or shorter than the scale it names, such as an
  ``inputDataExceptionMask`` on a finer grid than its group's ``x|yCoordinates``) gets a phony
  dimension of its own length too: the scan leaves such an axis unnamed, and the merge checks
  the name against the scale's length again (a manifest made elsewhere), so the group opens.
- Attributes that differ between granules (statistics such as ``mean_value``) become lists,
  one value per time step.
- Each stacked group carries ``time`` and the provenance coordinates ``granuleId``,
  ``compositeReleaseId``, ``trackNumber``, ``frameNumber``, ``absoluteOrbitNumber``,
  ``orbitPassDirection`` so every time step names its source.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..errors import BadInputError, GridMismatchError
from ..product import GRIDS, IDENT
from .manifest import ArrayManifest, GranuleManifest, json_value
from .tree import VirtualArray, VirtualTree

PROVENANCE = ("granuleId", "compositeReleaseId", "trackNumber", "frameNumber",
              "absoluteOrbitNumber", "orbitPassDirection")
GRID_ONCE = ("projection", "xCoordinateSpacing", "yCoordinateSpacing")
TIME_ATTRS = {"units": "nanoseconds since 1970-01-01", "calendar": "proleptic_gregorian",
              "standard_name": "time", "long_name": "zero-Doppler start time of the granule"}


def _same(a: ArrayManifest, b: ArrayManifest) -> bool:
    if a.data is None or b.data is None:
        return a.refs == b.refs and a.shape == b.shape
    return a.data.shape == b.data.shape and a.data.dtype == b.data.dtype and bool(
        np.array_equal(a.data, b.data, equal_nan=a.data.dtype.kind in "fc"))


def _check_grids(ms: list[GranuleManifest]) -> None:
    first = ms[0]
    freqs = sorted({p.rsplit("/", 1)[0] for p in first.arrays if p.startswith(GRIDS + "/")})
    for m in ms[1:]:
        for grp in freqs:
            for name in ("projection", "xCoordinates", "yCoordinates"):
                a, b = first.arrays.get(f"{grp}/{name}"), m.arrays.get(f"{grp}/{name}")
                if a is None or b is None:
                    continue  # a frequency absent from one granule: its layers are fill there
                if not _same(a, b):
                    what = {"projection": "EPSG", "xCoordinates": "x coordinates",
                            "yCoordinates": "y coordinates"}[name]
                    detail = (f"EPSG {int(a.data)} vs {int(b.data)}" if name == "projection"
                              else f"{a.shape[0]} vs {b.shape[0]} values" if a.shape != b.shape
                              else "different values")
                    raise GridMismatchError(
                        f"grids differ, cannot stack: {first.granule.filename} and "
                        f"{m.granule.filename} ({grp.rsplit('/', 1)[1]} {what}: {detail})")


def _merge_attrs(values: list[dict]) -> dict:
    out: dict = {}
    for attrs in values:
        for k, v in attrs.items():
            if k not in out:
                out[k] = v
    for k in out:
        per = [a.get(k) for a in values]
        if any(p != per[0] for p in per):
            out[k] = per
    return out


def _stacked_key(t: int, key: str) -> str:
    """Chunk key ``key`` of one granule at time step ``t`` (a scalar's key is empty)."""
    return f"{t}.{key}" if key else str(t)


def _widen_chars(data: np.ndarray) -> np.ndarray:
    """``|S1`` arrays would be read by xarray as netCDF character arrays (last axis joined into
    one string); ``|S2`` holds the same strings and is read as a list of them. Scalars too: a
    one-character string stacked along time (``identification/radarBand``) is an ``|S1`` array."""
    return data.astype("S2") if data.dtype == np.dtype("S1") else data


def _pad_value(dtype: np.dtype, fill: Any):
    if fill is not None:
        if isinstance(fill, list):
            return complex(float(fill[0]), float(fill[1]))
        return float(fill) if isinstance(fill, str) else fill
    return {"f": np.nan, "c": complex(np.nan, np.nan), "S": b""}.get(dtype.kind, 0)


class _Merger:
    def __init__(self, ms: list[GranuleManifest]):
        self.ms = ms
        self.T = len(ms)
        self.arrays: dict[str, VirtualArray] = {}
        self.varying_scales: dict[str, set[str]] = {}  # group -> scales stacked as data

    def versions(self, path: str) -> list[ArrayManifest | None]:
        return [m.arrays.get(path) for m in self.ms]

    @staticmethod
    def stack_dim(names: set[str]) -> str:
        return "zeroDopplerStartTime" if "time" in names else "time"

    def run(self, paths: list[str]) -> None:
        by_group: dict[str, list[str]] = {}
        for p in paths:
            by_group.setdefault(p.rsplit("/", 1)[0], []).append(p)
        # decide which scales are shared (identical) and which vary
        once: set[str] = set()
        for p in paths:
            vs = [v for v in self.versions(p) if v is not None]
            first = vs[0]
            grid_once = p.startswith(GRIDS + "/") and first.name in GRID_ONCE
            # identical wherever present: a frequency's scales, absent from a granule of another
            # mode (SHNA has no frequencyB), are still coordinates, not stacked data (stacked,
            # a child's xCoordinates would be hidden by an inherited one in a DataTree)
            if (first.is_scale or grid_once) and all(_same(first, v) for v in vs):
                once.add(p)
            elif first.is_scale:
                self.varying_scales.setdefault(first.group, set()).add(first.name)
        for group, gpaths in by_group.items():
            names = {p.rsplit("/", 1)[1] for p in gpaths}
            stack = self.stack_dim(names)
            phony: dict[int, str] = {}
            stacked_any = False
            for p in sorted(gpaths):
                vs = self.versions(p)
                first = next(v for v in vs if v is not None)
                if p in once:
                    source = next(t for t, v in enumerate(vs) if v is not None)
                    self.arrays[p] = self.once(first, self.dims(first, phony, group), source)
                else:
                    stacked_any = True
                    self.arrays[p] = self.stacked(p, vs, first, stack, phony, group)
            if stacked_any:
                self.add_time_coordinates(group, stack, names)

    def dims(self, a: ArrayManifest, phony: dict[int, str], group: str, shape=None) -> list[str]:
        shape = shape or a.shape
        out = []
        for axis, d in enumerate(a.dims):
            if d is not None and not self._varies(group, d) and \
                    self._scale_length(group, d) in (None, a.shape[axis]):
                out.append(d)
                continue
            n = shape[axis]
            if n not in phony:
                phony[n] = f"phony_dim_{len(phony)}"
            out.append(phony[n])
        return out

    def _scale_length(self, group: str, dim: str) -> int | None:
        """The length of the scale ``dim`` names, seen from ``group`` (its own or a parent
        group's, nearest first), or None when no granule has one."""
        g = group
        while True:
            for v in self.versions(f"{g}/{dim}" if g else dim):
                if v is not None and len(v.shape) == 1:
                    return v.shape[0]
            if not g:
                return None
            g = g.rsplit("/", 1)[0] if "/" in g else ""

    def _varies(self, group: str, dim: str) -> bool:
        # a scale of this group or of a parent group that is stacked as data
        return any(dim in names and (group == g or group.startswith(g + "/"))
                   for g, names in self.varying_scales.items())

    def once(self, a: ArrayManifest, dims: list[str], source: int = 0) -> VirtualArray:
        """``a`` stored once, its references into granule ``source`` (the first that has it)."""
        if a.data is not None:
            data = _widen_chars(a.data)
            chunk_shape = data.shape or ()
            key = ".".join("0" for _ in data.shape) or "0"
            return VirtualArray(shape=data.shape, chunks=chunk_shape, dtype=data.dtype.str,
                                dims=dims, attrs=a.attrs, fill_value=a.fill_value,
                                chunks_ref={key: np.ascontiguousarray(data).tobytes()})
        refs = {k: (source, o, n) for k, (o, n) in a.refs.items()} | dict(a.inline)
        return VirtualArray(shape=a.shape, chunks=a.chunks, dtype=a.dtype, dims=dims,
                            attrs=a.attrs, fill_value=a.fill_value, filters=a.filters,
                            compressor=a.compressor, chunks_ref=refs)

    def stacked(self, path, vs, first: ArrayManifest, stack: str, phony, group) -> VirtualArray:
        present = [v for v in vs if v is not None]
        attrs = _merge_attrs([v.attrs for v in present])
        if first.virtual:
            layout = {(v.shape, v.chunks, v.dtype, str(v.filters), str(v.compressor)) for v in present}
            if len(layout) > 1 or not all(v.virtual for v in present):
                names = [m.granule.filename for m, v in zip(self.ms, vs, strict=True) if v is not None]
                raise GridMismatchError(
                    f"{path}: shape, chunks or encoding differ between granules, cannot stack "
                    f"({names[0]} vs {names[-1]})")
            refs: dict = {}
            for t, v in enumerate(vs):
                if v is None:
                    continue
                for k, (o, n) in v.refs.items():
                    refs[_stacked_key(t, k)] = (t, o, n)
                for k, b in v.inline.items():
                    refs[_stacked_key(t, k)] = b
            return VirtualArray(shape=(self.T, *first.shape), chunks=(1, *first.chunks),
                                dtype=first.dtype, dims=[stack, *self.dims(first, phony, group)],
                                attrs=attrs, fill_value=first.fill_value, filters=first.filters,
                                compressor=first.compressor, chunks_ref=refs)
        return self.stacked_values(vs, first, stack, phony, group, attrs)

    def stacked_values(self, vs, first, stack, phony, group, attrs) -> VirtualArray:
        datas = [_widen_chars(v.data) if v is not None else None for v in vs]
        present = [d for d in datas if d is not None]
        dtype = np.result_type(*[d.dtype for d in present])
        ndim = max(d.ndim for d in present)
        shape = tuple(max(d.shape[i] for d in present if d.ndim == ndim) for i in range(ndim))
        varies = any(d.shape != shape for d in present)
        padded = varies or len(present) < self.T
        fill = first.fill_value
        pad = _pad_value(dtype, fill)
        if padded and fill is None and dtype.kind in "fc":
            fill = json_value(np.asarray(pad, dtype=dtype).reshape(-1)[0])
        out = {}
        for t, d in enumerate(datas):
            block = np.full(shape, pad, dtype=dtype)
            if d is not None:
                block[tuple(slice(0, n) for n in d.shape)] = d
            out[_stacked_key(t, ".".join(["0"] * ndim))] = np.ascontiguousarray(block).tobytes()
        if varies:
            attrs = attrs | {"gcov_index_padding": "length varies by granule: padded to the "
                             "longest with the fill value"}
        return VirtualArray(shape=(self.T, *shape), chunks=(1, *shape), dtype=dtype.str,
                            dims=[stack, *self.dims(first, phony, group, shape)], attrs=attrs,
                            fill_value=fill, chunks_ref=out)

    def add_time_coordinates(self, group: str, stack: str, names: set[str]) -> None:
        times = np.array([m.start_time for m in self.ms], dtype="datetime64[ns]").astype("<i8")
        coords = []
        if stack not in names:
            self.arrays[f"{group}/{stack}"] = VirtualArray(
                shape=(self.T,), chunks=(self.T,), dtype="<i8", dims=[stack], attrs=dict(TIME_ATTRS),
                chunks_ref={"0": times.tobytes()})
        for name in PROVENANCE:
            if group == IDENT:
                break  # they are the group's own data there
            src = self.arrays.get(f"{IDENT}/{name}")
            if src is None or name in names:
                continue
            self.arrays[f"{group}/{name}"] = VirtualArray(
                shape=src.shape, chunks=src.chunks, dtype=src.dtype, dims=[stack],
                attrs={"long_name": f"identification/{name} of the granule of each time step"},
                fill_value=src.fill_value, chunks_ref=dict(src.chunks_ref))
            coords.append(name)
        for path, a in self.arrays.items():
            if path.rsplit("/", 1)[0] != group or a.dims[:1] != [stack] or path.endswith("/" + stack):
                continue
            if path.rsplit("/", 1)[1] in coords:
                continue
            extra = list(coords)
            if a.attrs.get("grid_mapping") and f"{group}/{a.attrs['grid_mapping']}" in self.arrays:
                extra.append(a.attrs["grid_mapping"])
            if extra:
                a.attrs = a.attrs | {"coordinates": " ".join(extra)}


def merge(manifests: list[GranuleManifest]) -> VirtualTree:
    """Stack per-granule manifests along time into one VirtualTree."""
    if not manifests:
        raise BadInputError("nothing to merge: no granules")
    ms = sorted(manifests, key=lambda m: m.start_time)
    for a, b in itertools.pairwise(ms):
        if a.start_time == b.start_time:
            raise BadInputError(f"two granules start at {a.start_time}: {a.granule.filename} and "
                                f"{b.granule.filename}; keep one release per acquisition")
    _check_grids(ms)
    paths: list[str] = []
    seen: set[str] = set()
    for m in ms:
        for p in m.arrays:
            if p not in seen:
                seen.add(p)
                paths.append(p)
    # identification first, so its values are there for the provenance coordinates
    paths.sort(key=lambda p: (not p.startswith(IDENT + "/"),))
    merger = _Merger(ms)
    merger.run(paths)
    group_paths = sorted({g for m in ms for g in m.groups})
    groups = {"": _merge_attrs([m.root_attrs for m in ms])}
    for g in group_paths:
        groups[g] = _merge_attrs([m.groups.get(g, {}) for m in ms])
    arrays = dict(sorted(merger.arrays.items()))
    return VirtualTree(urls=[m.url for m in ms], groups=groups, arrays=arrays)

