"""The model: a time-stacked virtual tree of zarr v2 groups and arrays, built by merge.

It holds no I/O and never writes itself: the store writers (``gcov_index.store``) take it, as
VirtualiZarr's writers take a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class VirtualArray:
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    dims: list[str]
    attrs: dict
    fill_value: Any = None
    filters: list[dict] | None = None
    compressor: dict | None = None
    # chunk key -> (url index, offset, length) or encoded bytes
    chunks_ref: dict[str, tuple[int, int, int] | bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype.startswith("|S") and "_Encoding" not in self.attrs:
            self.attrs = self.attrs | {"_Encoding": "utf-8"}


@dataclass
class VirtualTree:
    """The merged, time-stacked tree: groups and arrays by path, and the granule URLs."""

    urls: list[str]
    groups: dict[str, dict]  # path -> attrs ("" is the root)
    arrays: dict[str, VirtualArray]

    def _refs(self):
        return (v for a in self.arrays.values() for v in a.chunks_ref.values() if isinstance(v, tuple))

    @property
    def n_refs(self) -> int:
        return sum(1 for _ in self._refs())

    @property
    def n_bytes_referenced(self) -> int:
        return sum(length for _, _, length in self._refs())
