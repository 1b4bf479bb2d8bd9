"""subset: a bounding box in any CRS -> a time series of a statistic per grid layer.

The box is clipped with rioxarray (``rio.clip_box``, the CRS read from the store's
``projection`` through CF ``grid_mapping``), so only the chunks the box touches are read, all
time steps at once. Statistics skip NaN (the product's fill). ``db`` gives
``10 log10(statistic)`` of the linear values, the usual way to quote backscatter.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import BadInputError, ValidationError, first_line
from ..io.access import Access, read_failure
from ..product import GRIDS
from ..store.layout import opened
from ..store.write import atomic_file
from .open import open_store, read_concurrency

ROW_COORDS = ("granuleId", "stack", "track", "frame", "direction", "maturity")
STATS = {"mean": np.nanmean, "median": np.nanmedian, "min": np.nanmin, "max": np.nanmax,
         "count": None}


@dataclass(frozen=True)
class Box:
    minx: float
    miny: float
    maxx: float
    maxy: float
    crs: str = "EPSG:4326"

    @classmethod
    def parse(cls, values, crs: str = "EPSG:4326") -> Box:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            minx, miny, maxx, maxy = (float(v) for v in values)
        except (TypeError, ValueError):
            raise BadInputError(f"--bbox {' '.join(map(str, values))}: give four numbers, "
                                "MINX MINY MAXX MAXY") from None
        if not (minx < maxx and miny < maxy):
            raise BadInputError(f"--bbox {minx:g} {miny:g} {maxx:g} {maxy:g}: MINX < MAXX and "
                                "MINY < MAXY are needed")
        try:
            CRS.from_user_input(crs)
        except CRSError:
            raise BadInputError(f"--crs {crs!r}: not a known CRS (use e.g. EPSG:4326 or "
                                "EPSG:32611)") from None
        return cls(minx, miny, maxx, maxy, crs)

    def __str__(self) -> str:
        return f"{self.minx:g} {self.miny:g} {self.maxx:g} {self.maxy:g} ({self.crs})"


def _layer_names(variables) -> list[tuple[str, str]]:
    out = []
    for v in variables or ["frequencyA/HHHH"]:
        freq, _, name = v.strip("/").rpartition("/")
        out.append((freq or "frequencyA", name))
    return out


def subset(store: str | Path, bbox: Box | tuple, *, variables: list[str] | None = None,
           stat: str = "mean", db: bool = False, protocol: str | None = None,
           access: Access | None = None, stack: str | None = None,
           concurrency: int | None = None) -> xr.Dataset:
    """The time series of ``stat`` over ``bbox`` for each grid layer in ``variables``
    (``frequencyA/HHHH`` by default), as a Dataset on ``time``.

    Every stack of the store that the box touches gives its rows (an area seen from an
    ascending and a descending pass gives both), in time order; each row names its
    ``granuleId``, ``stack``, ``track``, ``frame`` and ``direction``. ``stack`` reads one.

    The chunks the box touches, over every granule, are requested in one concurrent wave,
    bounded only by ``concurrency`` (chunk reads in flight at once; default
    ``$GCOV_INDEX_READ_CONCURRENCY``, else 256): at 1000 granules, set it to 1000 or more for
    a single round trip (or leave 256: four)."""
    box = bbox if isinstance(bbox, Box) else Box.parse(bbox)
    if stat not in STATS:
        raise BadInputError(f"--stat {stat!r}: use one of {', '.join(STATS)}")
    access = access or Access.from_env()
    read_concurrency(concurrency)  # a bad value is refused before anything is read
    layers = _layer_names(variables)
    freqs = list(dict.fromkeys(freq for freq, _ in layers))
    # One open: one version of the store (a Parquet store's link resolved once and that version
    # pinned, a JSON store parsed once), checked against its integrity record; per stack, the
    # grid group of the one frequency asked for, or all grids at once.
    with opened(store, access=access) as handle:  # every part checked, as info does
        jobs: list[tuple[dict, str, xr.DataArray]] = []
        outside: list[str] = []
        found: set[str] = set()
        grids_seen: set[str] = set()
        stacks = handle.stack(stack)
        for st in stacks:
            grids = _grids(handle, st["group"], freqs, protocol, access, concurrency)
            grids_seen |= set(grids)
            for freq, name in layers:
                ds = grids[freq].dataset if freq in grids else None
                if ds is None or name not in ds.data_vars or ds[name].ndim != 3:
                    continue  # not in this stack (a mode without frequency B)
                found.add(f"{freq}/{name}")
                clipped = _clip(ds[name], box, stat, db)  # checks, reads nothing
                if isinstance(clipped, str):
                    outside.append(f"{st['id']}: {clipped}" if len(stacks) > 1 else clipped)
                    continue
                jobs.append((st, f"{freq}/{name}", clipped))
        for freq, name in layers:
            if f"{freq}/{name}" not in found:
                what = f"grid {freq!r}" if freq not in grids_seen else f"grid layer {freq}/{name}"
                raise BadInputError(f"{store}: no {what} (variables: "
                                    f"{', '.join(_available(handle, protocol, access))})")
        if not jobs:
            raise BadInputError(f"--bbox {box}: outside the grid of {'; '.join(outside)}")
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:  # every layer and stack at once
            values = list(pool.map(lambda job: _read(store, job[1], job[2]), jobs))
        # the coordinates too are read while this version of the store is held open
        parts: dict[str, dict] = {}
        for (st, key, da), v in zip(jobs, values, strict=True):
            part = parts.setdefault(st["id"], {
                "stack": st, "layers": {}, "time": da["time"].values,
                "ids": da["granuleId"].values.astype(str) if "granuleId" in da.coords else None})
            part["layers"][key] = _statistic(v, da, stat, db)
    result = xr.concat([_rows(p) for p in parts.values()], dim="time", join="outer",
                       data_vars="all", coords="different", compat="equals",
                       combine_attrs="drop_conflicts")
    result = result.sortby("time")
    for key in dict.fromkeys(k for _, k, _ in jobs):
        result[key.replace("/", "_")].attrs["layer"] = key
    result.attrs.update({"store": str(store), "bbox": str(box), "statistic": stat,
                         "units": "dB" if db else "linear power (gamma0)",
                         "source": "gcov-index subset"})
    return result


def _grids(handle, group: str, freqs: list[str], protocol, access, concurrency=None
           ) -> dict[str, xr.DataTree]:
    """Frequency -> its grid group, of one stack (the one frequency asked for, or all)."""
    prefix = f"{group}/" if group else ""
    path = f"{prefix}{GRIDS}/{freqs[0]}" if len(freqs) == 1 else f"{prefix}{GRIDS}"
    if f"{path}/.zgroup" not in handle.meta:
        return {}
    tree = open_store(handle, group=path, protocol=protocol, access=access,
                      concurrency=concurrency)
    return {freqs[0]: tree} if len(freqs) == 1 else dict(tree.children)


def _rows(part: dict) -> xr.Dataset:
    """One stack's rows: a variable per layer, the stack named on every row."""
    st, n = part["stack"], len(part["time"])
    first = next(iter(st["members"]), (0, {}))[1]
    gid = first.get("granuleId", "")
    track = st.get("track", _name_field(gid, 5))
    frame = st.get("frame", _name_field(gid, 7))
    direction = st.get("direction", _name_field(gid, 6))
    ds = xr.Dataset({k.replace("/", "_"): v for k, v in part["layers"].items()})
    coords = {"stack": ("time", [st["id"]] * n), "track": ("time", [int(track or 0)] * n),
              "frame": ("time", [int(frame or 0)] * n),
              "direction": ("time", [str(direction or "")] * n)}
    if part["ids"] is not None:
        coords["granuleId"] = ("time", part["ids"])
        maturity = {g.get("granuleId"): g.get("maturity", "") for _, g in st["members"]}
        coords["maturity"] = ("time", [maturity.get(i, "") for i in part["ids"]])
    return ds.assign_coords(coords)


def _name_field(granule_id: str, i: int) -> str:
    parts = granule_id.split("_")
    return parts[i] if len(parts) > i else ""


def _available(handle, protocol, access) -> list[str]:
    out: list[str] = []
    for st in handle.stacks:
        prefix = f"{st['group']}/" if st["group"] else ""
        tree = open_store(handle, group=f"{prefix}{GRIDS}", protocol=protocol, access=access)
        out += [f"{f}/{v}" for f, node in tree.children.items()
                for v, da in node.dataset.data_vars.items() if da.ndim == 3]
    return list(dict.fromkeys(out))


def _clip(da: xr.DataArray, box: Box, stat: str, db: bool) -> xr.DataArray | str:
    """The layer clipped to the box, still lazy, the box and statistic checked; or, when the
    box is outside this grid, why (the grid's bounds)."""
    from rioxarray.exceptions import NoDataInBounds, OneDimensionalRaster

    layer = f"{da.name}"
    try:
        clipped = da.rio.clip_box(box.minx, box.miny, box.maxx, box.maxy, crs=box.crs,
                                  auto_expand=True)
    except (NoDataInBounds, OneDimensionalRaster):
        left, bottom, right, top = da.rio.transform_bounds("EPSG:4326")
        return (f"{layer} (grid bounds in EPSG:4326: {left:.4f} {bottom:.4f} {right:.4f} "
                f"{top:.4f})")
    if clipped.dtype.kind == "c" and (db or stat in ("median", "min", "max")):
        raise BadInputError(f"{layer} is complex: use --stat mean or count, without --db")
    return clipped


def _read(store, key: str, clipped: xr.DataArray) -> np.ndarray:
    try:
        return clipped.values  # every chunk the box touches, all time steps, read at once
    except ValidationError:  # a refs file of the store found altered as it was read
        raise
    except Exception as e:
        failed = read_failure(f"{store}: reading {key}", e)  # refused, missing, unreachable
        if failed is not None:
            raise failed from None
        # the bytes arrived and do not decode: the store (or a source) is not what it says
        raise ValidationError(f"{store}: reading {key}: a chunk does not decode "
                              f"({type(e).__name__}: {first_line(e)}); run gcov-index "
                              "validate") from None


def _statistic(values: np.ndarray, da: xr.DataArray, stat: str, db: bool) -> xr.DataArray:
    flat = values.reshape(values.shape[0], -1)
    if stat == "count":
        series = np.sum(~np.isnan(flat), axis=1).astype("int64")
    else:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN step gives NaN
            series = STATS[stat](flat, axis=1)
        if db:
            with np.errstate(divide="ignore", invalid="ignore"):
                series = 10 * np.log10(series)
    out = xr.DataArray(series, dims=["time"], coords={"time": da["time"].values})
    out.attrs["n_pixels"] = int(flat.shape[1])
    return out


def to_frame(series: xr.Dataset):
    """A pandas DataFrame: time, granuleId, stack, track, frame, direction, one column per
    layer (named ``frequencyA/HHHH``)."""
    df = series.to_dataframe()
    df = df.rename(columns={k: v.attrs.get("layer", k) for k, v in series.data_vars.items()})
    first = [c for c in ROW_COORDS if c in df.columns]
    return df[[*first, *[c for c in df.columns if c not in first]]]


def check_outputs(out: str | Path | None = None, plot: str | Path | None = None) -> None:
    """Refuse output names we cannot write before any chunk is read."""
    if out is not None and Path(out).suffix.lower() not in (".csv", ".nc"):
        raise BadInputError(f"--out {out}: name it FILE.csv or FILE.nc")
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise BadInputError(f"--plot {plot}: name it FILE.png")


def write_series(series: xr.Dataset, out: str | Path) -> Path:
    """Write the series as CSV (``.csv``) or NetCDF (``.nc``), atomically."""
    check_outputs(out=out)
    out = Path(out)
    with atomic_file(out) as tmp:
        if out.suffix.lower() == ".csv":
            to_frame(series).to_csv(tmp, date_format="%Y-%m-%dT%H:%M:%S.%f")
        else:
            series.to_netcdf(tmp, engine="h5netcdf")
    return out


def plot_series(series: xr.Dataset, out: str | Path) -> Path:
    """A PNG: time on x, the statistic on y, one line per layer; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_outputs(plot=out)
    out = Path(out)
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for da in series.data_vars.values():
        ax.plot(series["time"].values, da.values, marker="o", label=da.attrs.get("layer", da.name))
    unit = series.attrs.get("units", "")
    ax.set_xlabel("acquisition time (UTC)")
    ax.set_ylabel(f"{series.attrs.get('statistic', '')} ({unit})")
    ax.set_title(f"{Path(series.attrs.get('store', '')).name}: bbox {series.attrs.get('bbox', '')}",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    try:
        with atomic_file(out, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return out
