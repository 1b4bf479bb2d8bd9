"""Stacks: the granules that can share one time axis, and the model of a store of several.

A search over an area returns what the archive holds: full and partial frames of one track and
frame (their grids differ), ascending and descending passes, several frames. None of it is
refused. :func:`group_stacks` puts each granule into a *stack*: same track, direction and frame,
and, for every frequency both hold, the same grid (EPSG code and x/y coordinates, exactly).
Arrays held by reference must also agree on shape, chunks and codecs (a layer chunked otherwise
in one release cannot share a time axis). A granule joins the first stack (in time order) that
fits it, or starts a new one, so every granule lands in exactly one stack. Each stack is merged along ``time`` on its own
(:func:`~gcov_index.index.merge.merge`).

:func:`merge_stacks` gives one model for the store: one stack keeps the product's own layout at
the root (plain-xarray snippets see ``science/LSAR/...``); several stacks each get a root group
named after the stack (``T172A_F008/science/LSAR/...``, then ``T172A_F008_2`` for another grid
of that frame), every one of which opens alone with plain xarray.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..product import GRIDS
from .manifest import ArrayManifest, GranuleManifest
from .merge import merge
from .tree import VirtualArray, VirtualTree


def _digest(a: ArrayManifest | None) -> str | None:
    if a is None:
        return None
    if a.data is not None:
        data = np.ascontiguousarray(a.data)
        return f"{data.dtype.str}{data.shape}:" + hashlib.sha256(data.tobytes()).hexdigest()
    # coordinates held by reference (not the product's way): equal only if the refs are
    return f"refs{a.shape}:" + hashlib.sha256(repr(sorted(a.refs.items())).encode()).hexdigest()


def _value(a: ArrayManifest | None):
    if a is None or a.data is None:
        return None
    return np.asarray(a.data)


@dataclass(frozen=True)
class Grid:
    """One frequency's grid: EPSG code, size, bounds (outer edges, in the grid's CRS)."""

    epsg: int | None
    shape: tuple[int, int]  # (ny, nx)
    bounds: tuple[float, float, float, float] | None  # minx, miny, maxx, maxy
    key: tuple  # what must be equal for two granules to stack

    def to_dict(self) -> dict:
        return {"epsg": self.epsg, "shape": list(self.shape),
                "bounds": list(self.bounds) if self.bounds else None}


def grids_of(m: GranuleManifest) -> dict[str, Grid]:
    """Frequency name (``frequencyA``) -> its grid, for every grid group of a granule."""
    out: dict[str, Grid] = {}
    freqs = sorted({p[len(GRIDS) + 1:].split("/", 1)[0] for p in m.arrays
                    if p.startswith(GRIDS + "/frequency")})
    for freq in freqs:
        base = f"{GRIDS}/{freq}"
        proj, xs, ys = (m.arrays.get(f"{base}/{n}") for n in ("projection", "xCoordinates",
                                                              "yCoordinates"))
        p, x, y = _value(proj), _value(xs), _value(ys)
        epsg = int(p) if p is not None and p.size == 1 else None
        shape = (ys.shape[0] if ys else 0, xs.shape[0] if xs else 0)
        bounds = None
        if x is not None and y is not None and x.size and y.size:
            dx = float(x[1] - x[0]) if x.size > 1 else 0.0
            dy = float(y[1] - y[0]) if y.size > 1 else 0.0
            xe = (float(x.min()) - abs(dx) / 2, float(x.max()) + abs(dx) / 2)
            ye = (float(y.min()) - abs(dy) / 2, float(y.max()) + abs(dy) / 2)
            bounds = (xe[0], ye[0], xe[1], ye[1])
        out[freq] = Grid(epsg=epsg, shape=shape, bounds=bounds,
                         key=(_digest(proj), _digest(xs), _digest(ys)))
    return out


def layouts_of(m: GranuleManifest) -> dict[str, tuple]:
    """Path -> (shape, chunks, dtype, codecs) of every array held by reference, ("inline",)
    of every other: arrays stacked along time must agree on these (a table inlined in one
    granule, being under the inline limit there, cannot stack with its reference in another)."""
    return {p: (a.shape, a.chunks, a.dtype, repr(a.filters), repr(a.compressor))
            if a.virtual else ("inline",) for p, a in m.arrays.items()}


@dataclass
class Stack:
    """Granules of one track, direction and frame on identical grids, in time order."""

    track: int
    direction: str
    frame: int
    manifests: list[GranuleManifest] = field(default_factory=list)
    grids: dict[str, Grid] = field(default_factory=dict)
    layouts: dict[str, tuple] = field(default_factory=dict)
    id: str = ""
    group: str = ""  # "" when the store holds this stack alone

    def fits(self, m: GranuleManifest, grids: dict[str, Grid], layouts: dict[str, tuple]
             ) -> bool:
        g = m.granule
        if (g.track, g.direction, g.frame) != (self.track, self.direction, self.frame):
            return False
        if any(o.start_time == m.start_time for o in self.manifests):
            return False  # another product of the same acquisition (another mode): its own
        if not all(self.grids[f].key == grid.key for f, grid in grids.items()
                   if f in self.grids):
            return False
        return all(self.layouts[p] == lay for p, lay in layouts.items() if p in self.layouts)

    def add(self, m: GranuleManifest, grids: dict[str, Grid], layouts: dict[str, tuple]) -> None:
        self.manifests.append(m)
        for f, grid in grids.items():
            self.grids.setdefault(f, grid)
        for p, lay in layouts.items():
            self.layouts.setdefault(p, lay)

    @property
    def base_id(self) -> str:
        return f"T{self.track:03d}{self.direction}_F{self.frame:03d}"

    def describe(self) -> dict:
        """What ``info`` and the store's attributes say of the stack."""
        times = [str(m.start_time) for m in self.manifests]
        coverages = sorted({m.granule.coverage for m in self.manifests})
        maturities: dict[str, int] = {}
        for m in self.manifests:
            maturities[m.granule.maturity] = maturities.get(m.granule.maturity, 0) + 1
        return {
            "id": self.id, "group": self.group, "track": self.track,
            "direction": self.direction, "frame": self.frame,
            "granules": len(self.manifests), "time_range": [min(times), max(times)],
            "coverage": {"F": "full", "P": "partial"}[coverages[0]] if len(coverages) == 1
            else "mixed full and partial",
            "maturity": maturities,
            "grids": {f: g.to_dict() for f, g in sorted(self.grids.items())},
        }

    @property
    def mixed_maturity(self) -> str | None:
        """A warning when the stack mixes maturities (ASF advises against it), else None."""
        mats = self.describe()["maturity"]
        if len(mats) <= 1:
            return None
        counts = ", ".join(f"{n} {k}" for k, n in sorted(mats.items()))
        return (f"stack {self.id or self.base_id} mixes data maturities ({counts}); ASF advises "
                "one maturity per time series (build with --maturity to keep one)")


def group_stacks(manifests: list[GranuleManifest]) -> list[Stack]:
    """Every granule in exactly one stack; stacks ordered by track, direction, frame, then by
    size (the frame's largest stack first); ids ``T172A_F008``, ``T172A_F008_2``, ..."""
    stacks: list[Stack] = []
    for m in sorted(manifests, key=lambda m: m.start_time):
        grids, layouts = grids_of(m), layouts_of(m)
        home = next((s for s in stacks if s.fits(m, grids, layouts)), None)
        if home is None:
            g = m.granule
            home = Stack(track=g.track, direction=g.direction, frame=g.frame)
            stacks.append(home)
        home.add(m, grids, layouts)
    stacks.sort(key=lambda s: (s.track, s.direction, s.frame, -len(s.manifests),
                               s.manifests[0].start_time))
    seen: dict[str, int] = {}
    for s in stacks:
        n = seen[s.base_id] = seen.get(s.base_id, 0) + 1
        s.id = s.base_id if n == 1 else f"{s.base_id}_{n}"
        s.group = s.id if len(stacks) > 1 else ""
    return stacks


def _nested(prefix: str, path: str) -> str:
    return f"{prefix}/{path}" if path else prefix


def merge_stacks(manifests: list[GranuleManifest]) -> tuple[VirtualTree, list[Stack]]:
    """The model of a store: each stack merged along time; one stack at the root, several each
    under its own root group. URL ``i`` of the tree is granule ``i`` of the stacks in order."""
    stacks = group_stacks(manifests)
    if len(stacks) == 1:
        return merge(stacks[0].manifests), stacks
    urls: list[str] = []
    groups: dict[str, dict] = {"": {}}
    arrays: dict[str, VirtualArray] = {}
    for s in stacks:
        tree = merge(s.manifests)
        offset = len(urls)
        urls += tree.urls
        for path, attrs in tree.groups.items():
            groups[_nested(s.group, path)] = attrs
        for path, a in tree.arrays.items():
            a.chunks_ref = {k: (v[0] + offset, v[1], v[2]) if isinstance(v, tuple) else v
                            for k, v in a.chunks_ref.items()}
            arrays[_nested(s.group, path)] = a
    return VirtualTree(urls=urls, groups=groups, arrays=dict(sorted(arrays.items()))), stacks

