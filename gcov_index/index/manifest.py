"""GranuleManifest: what one scan of one granule yields, and its plain-JSON form (the cache
file holds it).

An array is either *virtual* (chunk references into the granule: key -> (offset, length), plus
the few chunks that had to be re-encoded and inlined) or *materialised* (its values, read once at
scan time: strings, scalars, contiguous arrays and single-chunk tables outside the grids).
"""

from __future__ import annotations

import base64
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ..granule import Granule
from ..io.fingerprint import Fingerprint

# 2: an axis whose attached scale has another length is unnamed (scan.py, "layers on their
# own grid"); 3: one-chunk tables over 64 KiB stay references (scan.INLINE_LIMIT); entries
# of older versions are scanned again
MANIFEST_VERSION = 3



def json_value(v: Any) -> Any:
    """An HDF5 attribute value as plain JSON (strings decoded, complex as [re, im])."""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.ndarray):
        if v.dtype.names:  # compound {r, i}
            v = v.view(np.complex64) if v.dtype.itemsize == 8 else v.view(np.complex128)
        if v.ndim == 0 or (v.size == 1 and v.dtype.kind not in "SUO"):
            return json_value(v.reshape(-1)[0]) if v.size else None
        return json_value(v.tolist())
    if isinstance(v, (list, tuple)):  # nested: every element made plain too
        return [json_value(x) for x in v]
    if isinstance(v, np.void) and v.dtype.names:
        return json_value(np.array(v))
    if isinstance(v, (complex, np.complexfloating)):
        return [json_value(float(v.real)), json_value(float(v.imag))]
    if isinstance(v, np.generic):
        return json_value(v.item())
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


@dataclass
class ArrayManifest:
    path: str  # inside the tree, no leading slash
    shape: tuple[int, ...]
    dtype: str  # numpy dtype string: "<f4", "<c8", "|u1", "|S91", ...
    dims: tuple[str | None, ...]  # a dimension-scale name, or None (a phony dimension)
    attrs: dict
    fill_value: object = None  # the CF fill (_FillValue), JSON-encoded as zarr v2 does
    is_scale: bool = False
    chunks: tuple[int, ...] | None = None  # None: materialised
    filters: list[dict] | None = None  # numcodecs configs applied before the compressor
    compressor: dict | None = None
    refs: dict[str, tuple[int, int]] = field(default_factory=dict)  # "i.j" -> (offset, length)
    inline: dict[str, bytes] = field(default_factory=dict)  # re-encoded chunks
    data: np.ndarray | None = None

    @property
    def virtual(self) -> bool:
        return self.chunks is not None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def group(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""


@dataclass
class GranuleManifest:
    granule: Granule
    url: str  # where the chunk references point
    fingerprint: Fingerprint  # of the source when it was scanned
    start_time: np.datetime64  # identification/zeroDopplerStartTime, ns precision
    root_attrs: dict
    groups: dict[str, dict]  # group path -> attrs ("" is the root)
    arrays: dict[str, ArrayManifest]

    # -- cache form --------------------------------------------------------------------------
    def to_json(self) -> dict:
        arrays = []
        for a in self.arrays.values():
            d = asdict(a)
            d["refs"] = {k: list(v) for k, v in a.refs.items()}
            d["inline"] = {k: base64.b64encode(v).decode() for k, v in a.inline.items()}
            d["data"] = None if a.data is None else {
                "dtype": a.data.dtype.str, "shape": list(a.data.shape),
                "b64": base64.b64encode(np.ascontiguousarray(a.data).tobytes()).decode()}
            arrays.append(d)
        return {
            "version": MANIFEST_VERSION, "url": self.url, "granule": self.granule.filename,
            "fingerprint": self.fingerprint.to_dict(), "start_time": str(self.start_time),
            "root_attrs": self.root_attrs, "groups": self.groups, "arrays": arrays,
        }

    @classmethod
    def from_json(cls, d: dict) -> GranuleManifest:
        if d.get("version") != MANIFEST_VERSION:
            raise ValueError("manifest version")
        arrays = {}
        for a in d["arrays"]:
            data = a.get("data")
            arr = ArrayManifest(**{k: v for k, v in a.items() if k != "data"})
            arr.shape = tuple(arr.shape)
            arr.dims = tuple(arr.dims)
            arr.chunks = None if arr.chunks is None else tuple(arr.chunks)
            arr.refs = {k: (v[0], v[1]) for k, v in arr.refs.items()}
            arr.inline = {k: base64.b64decode(v) for k, v in arr.inline.items()}
            if data is not None:
                arr.data = np.frombuffer(base64.b64decode(data["b64"]),
                                         dtype=data["dtype"]).reshape(data["shape"])
            arrays[arr.path] = arr
        return cls(
            granule=replace(Granule.parse(d["granule"]), url=d["url"]),
            url=d["url"], fingerprint=Fingerprint.from_dict(d["fingerprint"]),
            start_time=np.datetime64(d["start_time"], "ns"), root_attrs=d["root_attrs"],
            groups=d["groups"], arrays=arrays,
        )
