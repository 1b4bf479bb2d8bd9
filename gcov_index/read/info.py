"""What a store holds: time range, granules, grids, CRS, variables, chunk and byte counts.

Read from the store alone (metadata and inlined values); no request goes to a granule. The
store is opened once and checked against its integrity record: a damaged store is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..discover.display import dataframe, html_table, shorten
from ..product import GRIDS
from ..store.layout import opened


@dataclass
class StoreInfo:
    """What a store holds (:func:`store_info`)."""

    store: str
    granules: list[dict]
    superseded: list[dict]
    grids: dict[str, dict]  # frequency -> {"shape", "epsg", "variables"} (of the first stack)
    n_chunk_refs: int
    n_bytes_referenced: int
    extra: dict
    integrity: str = "not recorded (written by an older gcov-index: build it again to record it)"
    stacks: list[dict] = field(default_factory=list)  # id, group, granules, grids, time range...

    @property
    def time_range(self) -> tuple[str, str]:
        """The first and last time step (ISO 8601), over every stack."""
        times = [g["time"] for g in self.granules]
        return min(times), max(times)

    _COLUMNS = ("time", "granuleId", "stack", "maturity", "url")

    def __repr__(self) -> str:
        t0, t1 = self.time_range if self.granules else ("", "")
        return (f"StoreInfo({self.store}: {len(self.granules)} granules, "
                f"{max(1, len(self.stacks))} stack{'s' if len(self.stacks) > 1 else ''}, "
                f"{t0[:19]} .. {t1[:19]}, {self.n_chunk_refs} chunk references)")

    def to_dataframe(self):
        """The store's granules, one row each in time order (time, granuleId, stack, maturity,
        url), ``time`` as UTC datetimes. Needs pandas."""
        rows = sorted(({c: g.get(c) for c in self._COLUMNS} for g in self.granules),
                      key=lambda r: str(r["time"]))
        return dataframe(rows, self._COLUMNS, times=("time",))

    def _repr_html_(self) -> str:
        t0, t1 = self.time_range if self.granules else ("", "")
        found = self.extra.get("search") or {}
        summary = [("time", f"{t0[:19]} .. {t1[:19]} ({len(self.granules)} granules)"),
                   *[("stack", _stack_line(st).removeprefix("stack ")) for st in self.stacks
                     if len(self.stacks) > 1 or st.get("id")],
                   ("references", f"{self.n_chunk_refs} chunks, "
                                  f"{self.n_bytes_referenced / 1e6:.1f} MB in the granules"),
                   ("integrity", self.integrity)]
        if found:
            summary.append(("search", shorten(f"{found.get('cmr_host')} at "
                                              f"{found.get('searched_at')}: "
                                              f"{found.get('command')}", 300)))
        rows = sorted(({c: g.get(c) for c in self._COLUMNS} for g in self.granules),
                      key=lambda r: str(r["time"]))
        return html_table(f"gcov-index store: {self.store}", summary, self._COLUMNS, rows)

    def text(self) -> str:
        """What ``gcov-index info`` prints."""
        t0, t1 = self.time_range
        lines = [f"store       {self.store}",
                 f"time        {t0} .. {t1} ({len(self.granules)} granules)"]
        several = len(self.stacks) > 1
        if several:
            lines.append(f"stacks      {len(self.stacks)} (each a root group; open one with "
                         "--stack ID or group=ID/...)")
        for st in self.stacks:
            if several or st.get("id"):
                lines.append(_stack_line(st))
            for f, g in st.get("grid_layers", {}).items():
                lines.append(f"{'  ' if several else ''}grid {f}      {g['shape'][0]} x "
                             f"{g['shape'][1]} (y, x), EPSG:{g['epsg']}, "
                             f"variables: {', '.join(g['variables'])}")
            mixed = st.get("maturity") or {}
            if len(mixed) > 1:
                lines.append(f"{'  ' if several else ''}WARNING     mixes data maturities "
                             f"({', '.join(f'{n} {k}' for k, n in sorted(mixed.items()))})")
        lines.append(f"references  {self.n_chunk_refs} chunks, "
                     f"{self.n_bytes_referenced / 1e6:.1f} MB in the granules")
        lines.append(f"integrity   {self.integrity}")
        for g in self.granules:
            lines.append(f"  {g['time'][:19]}  {g['granuleId']}"
                         + (f"  [{g['stack']}]" if several and g.get("stack") else ""))
        found = self.extra.get("search")
        for s in self.superseded + (found or {}).get("superseded", []):
            lines.append(f"  superseded  {s['granuleId']} (by {s['by']})")
        if found:
            lines.append(f"search      {found['cmr_host']} at {found['searched_at']}: "
                         f"{len(found['found'])} found, {len(found['selected'])} kept")
            lines.append(f"  repeat    {found['command']} --out NEW.json")
        return "\n".join(lines)


def _stack_line(st: dict) -> str:
    t0, t1 = (st.get("time_range") or ["?", "?"])[:2]
    mats = "/".join(sorted(st.get("maturity") or {})) or "?"
    return (f"stack {st['id']}  track {st.get('track')}{st.get('direction', '')} frame "
            f"{st.get('frame')}: {st.get('granules')} granules, {str(t0)[:19]} .. "
            f"{str(t1)[:19]}, {st.get('coverage', '?')} frame, {mats}"
            + (f", group {st['group']}/" if st.get("group") else ", at the root"))


def _grids(meta: dict, prefix: str) -> dict[str, dict]:
    grids = {}
    base = f"{prefix}{GRIDS}/frequency"
    depth = f"{prefix}{GRIDS}".count("/") + 3
    for key in sorted(meta):
        parts = key.split("/")
        if not key.startswith(base) or len(parts) != depth or parts[-1] != ".zgroup":
            continue
        path = "/".join(parts[:-1])
        layers, shape = [], None
        for k, v in sorted(meta.items()):
            if k.startswith(path + "/") and k.count("/") == path.count("/") + 2 \
                    and k.endswith("/.zarray") and len(v["shape"]) == 3:
                layers.append(k.split("/")[-2])
                shape = shape or v["shape"][1:]
        epsg = meta.get(f"{path}/projection/.zattrs", {}).get("epsg_code")
        grids[path.rsplit("frequency", 1)[-1]] = {"shape": shape, "epsg": epsg, "variables": layers}
    return grids


def store_info(store: str | Path) -> StoreInfo:
    """What a store holds, read from the store alone (no request goes to a granule).

    Parameters
    ----------
    store
        A JSON, Parquet or Icechunk store: a path, or an ``s3://`` or ``https://`` URL.

    Returns
    -------
    StoreInfo
        Its granules (time, granuleId, stack, maturity, url), stacks (track, direction,
        frame, grids, time range, maturities), releases superseded, grids of the first stack,
        chunk and byte counts, the integrity record checked, and ``extra`` (the saved search,
        warnings, changes, ...). ``text()`` is what ``gcov-index info`` prints; in a notebook
        it shows as a table; ``to_dataframe()`` lists the granules.

    Raises
    ------
    BadInputError
        Not a gcov-index store (exit 2).
    ValidationError
        A store damaged against its integrity record (exit 6).
    AccessError
        A store that is missing or cannot be reached (exit 3).
    """
    with opened(store) as handle:  # one version, checked: a damaged store is refused
        meta, attrs, record, stacks = handle.meta, handle.attrs, handle.record, handle.stacks
    described = []
    for st in stacks:
        prefix = f"{st['group']}/" if st["group"] else ""
        described.append({k: v for k, v in st.items() if k != "members"}
                         | {"grid_layers": _grids(meta, prefix)})
    known = {"granules", "superseded", "n_chunk_refs", "n_bytes_referenced", "integrity", "stacks"}
    info = StoreInfo(store=str(store), granules=attrs["granules"],
                     superseded=attrs.get("superseded") or [],
                     grids=described[0]["grid_layers"] if described else {},
                     n_chunk_refs=attrs.get("n_chunk_refs", 0),
                     n_bytes_referenced=attrs.get("n_bytes_referenced", 0),
                     extra={k: v for k, v in attrs.items() if k not in known},
                     stacks=described)
    if handle.fmt == "icechunk":
        info.integrity = (f"Icechunk snapshot {handle.fo.session.snapshot_id} of main "
                          "(Icechunk's own checks; no kerchunk integrity record)")
    if record is not None:
        arrays = record.get("arrays", {})
        files = f", {len(record['files'])} refs files" if "files" in record else ""
        info.integrity = (f"whole: {len(arrays)} arrays, "
                          f"{sum(n for n, _ in arrays.values())} chunk keys{files} as recorded")
    return info
