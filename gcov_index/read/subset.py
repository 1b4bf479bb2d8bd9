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
from .open import open_store

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
           access: Access | None = None) -> xr.Dataset:
    """The time series of ``stat`` over ``bbox`` for each grid layer in ``variables``
    (``frequencyA/HHHH`` by default), as a Dataset on ``time`` with ``granuleId``."""
    box = bbox if isinstance(bbox, Box) else Box.parse(bbox)
    if stat not in STATS:
        raise BadInputError(f"--stat {stat!r}: use one of {', '.join(STATS)}")
    access = access or Access.from_env()
    layers = _layer_names(variables)
    freqs = list(dict.fromkeys(freq for freq, _ in layers))
    # One open: one version of the store (a Parquet store's link resolved once and that version
    # pinned, a JSON store parsed once), checked against its integrity record; the grid group
    # of the one frequency asked for, or all grids at once.
    with opened(store) as handle:
        group = f"{GRIDS}/{freqs[0]}" if len(freqs) == 1 else GRIDS
        tree = (open_store(handle, group=group, protocol=protocol, access=access)
                if f"{group}/.zgroup" in handle.meta else None)
        if tree is None:
            grids = {}
        else:
            grids = {freqs[0]: tree} if len(freqs) == 1 else dict(tree.children)
        clipped: dict[str, xr.DataArray] = {}
        for freq, name in layers:
            if freq not in grids:
                raise BadInputError(f"{store}: no grid {freq!r} (variables: "
                                    f"{', '.join(_available(handle, protocol, access))})")
            ds = grids[freq].dataset
            if name not in ds.data_vars or ds[name].ndim != 3:
                raise BadInputError(f"{store}: no grid layer {freq}/{name} (variables: "
                                    f"{', '.join(_available(handle, protocol, access))})")
            clipped[f"{freq}/{name}"] = _clip(ds[name], box, stat, db)  # checks, reads nothing
        with ThreadPoolExecutor(max_workers=len(clipped)) as pool:  # layers read together too
            values = list(pool.map(lambda item: _read(store, *item), clipped.items()))
        granule_ids = grids[freqs[0]].dataset["granuleId"].values.astype(str)
    out = {key: _statistic(v, da, stat, db) for (key, da), v in zip(clipped.items(), values,
                                                                   strict=True)}
    result = xr.Dataset({k.replace("/", "_"): v for k, v in out.items()},
                        coords={"granuleId": ("time", granule_ids)})
    for key, da in zip(out, result.data_vars.values(), strict=True):
        da.attrs["layer"] = key
    result.attrs.update({"store": str(store), "bbox": str(box), "statistic": stat,
                         "units": "dB" if db else "linear power (gamma0)",
                         "source": "gcov-index subset"})
    return result


def _available(handle, protocol, access) -> list[str]:
    tree = open_store(handle, group=GRIDS, protocol=protocol, access=access)
    return [f"{f}/{v}" for f, node in tree.children.items()
            for v, da in node.dataset.data_vars.items() if da.ndim == 3]


def _clip(da: xr.DataArray, box: Box, stat: str, db: bool) -> xr.DataArray:
    """The layer clipped to the box, still lazy; the box and statistic checked."""
    from rioxarray.exceptions import NoDataInBounds, OneDimensionalRaster

    layer = f"{da.name}"
    try:
        clipped = da.rio.clip_box(box.minx, box.miny, box.maxx, box.maxy, crs=box.crs,
                                  auto_expand=True)
    except (NoDataInBounds, OneDimensionalRaster):
        left, bottom, right, top = da.rio.transform_bounds("EPSG:4326")
        raise BadInputError(f"--bbox {box}: outside the grid of {layer} (grid bounds in "
                            f"EPSG:4326: {left:.4f} {bottom:.4f} {right:.4f} {top:.4f})") from None
    if clipped.dtype.kind == "c" and (db or stat in ("median", "min", "max")):
        raise BadInputError(f"{layer} is complex: use --stat mean or count, without --db")
    return clipped


def _read(store, key: str, clipped: xr.DataArray) -> np.ndarray:
    try:
        return clipped.values  # every chunk the box touches, all time steps, read at once
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
    """A pandas DataFrame: time, granuleId, one column per layer (named ``frequencyA/HHHH``)."""
    df = series.to_dataframe()
    df = df.rename(columns={k: v.attrs.get("layer", k) for k, v in series.data_vars.items()})
    return df[["granuleId", *[c for c in df.columns if c != "granuleId"]]]


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
