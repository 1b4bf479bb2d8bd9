"""subset: a bounding box in any CRS -> a time series of a statistic per grid layer.

The box is clipped with rioxarray (``rio.clip_box``, the CRS read from the store's
``projection`` through CF ``grid_mapping``), so only the chunks the box touches are read, all
time steps at once. Statistics skip NaN (the product's fill). ``db`` gives
``10 log10(statistic)`` of the linear values, the usual way to quote backscatter.

The series is a CF-1.10 Dataset (and NetCDF file): every statistic has ``units``,
``long_name`` and ``cell_methods``, and names in ``ancillary_variables`` its per-step count of
valid pixels and the 25th/75th percentiles of the pixel values in the box; ``time`` is a CF time
axis; each step names its granule, CRID, track, frame, direction and maturity (auxiliary
coordinates); the global attributes say what made it (``history``: the gcov-index version and
the request) and where the data come from (the product's ``institution`` and reference).
"""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import BadInputError, ValidationError, first_line
from ..io.access import Access, read_failure
from ..product import GRIDS
from ..store.layout import opened
from ..store.write import atomic_file
from .open import open_store, read_concurrency

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

ROW_COORDS = ("granuleId", "stack", "track", "frame", "direction", "maturity", "crid")
STATS = {"mean": np.nanmean, "median": np.nanmedian, "min": np.nanmin, "max": np.nanmax,
         "count": None}
# the CF-1.10 cell method of each statistic over the box (Appendix E); a count has none
CELL_METHODS = {"mean": "area: mean", "median": "area: median", "min": "area: minimum",
                "max": "area: maximum"}
# per layer, beside its statistic: the variable name's suffix and the CSV column's
VALID, LOW, HIGH = "valid_pixels", "p25", "p75"
CONVENTIONS = "CF-1.10"
# CF's nearest standard name for backscatter, and why a gamma-naught layer does not take it
NEAREST_NAME = "surface_backwards_scattering_coefficient_of_radar_wave"
NO_STANDARD_NAME = (
    f"no CF standard name: the nearest, {NEAREST_NAME}, is the backscatter coefficient "
    "normalised by the ground area (sigma-naught) and integrated over all wavelengths; GCOV "
    "holds radiometrically terrain-corrected gamma-naught (normalised by the area "
    "perpendicular to the look direction) at L-band")
DB_COMMENT = ("decibels: 10 log10 of the {stat} of the linear values; units \"1\" because dB is "
              "not a UDUNITS unit (the quantity is the logarithm of a dimensionless ratio)")


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


def subset(store: str | Path, bbox: Box | Sequence[float], *,
           variables: Sequence[str] | None = None, stat: str = "mean", db: bool = False,
           protocol: str | None = None, access: Access | None = None,
           stack: str | None = None, concurrency: int | None = None) -> xr.Dataset:
    """The time series of a statistic over a box, for each grid layer asked for.

    Every stack of the store that the box touches gives its rows (an area seen from an
    ascending and a descending pass gives both), in time order. The chunks the box touches, over
    every granule, are requested in one concurrent wave.

    Args:
        store: a gcov-index store: a local path, ``s3://`` or ``https://`` URL (JSON, Parquet
            or Icechunk).
        bbox: a :class:`Box`, or four numbers ``(minx, miny, maxx, maxy)`` in EPSG:4326
            (longitude, latitude); a :class:`Box` carries any CRS pyproj knows.
        variables: grid layers as ``frequencyA/HHHH`` (the default, alone); a bare ``HVHV``
            means ``frequencyA/HVHV``.
        stat: ``mean``, ``median``, ``min``, ``max`` (of the non-NaN pixels in the box) or
            ``count`` (of them).
        db: give ``10 log10`` of the statistic (and of the percentiles) of the linear values.
        protocol: ``s3`` or ``https``: read the chunks that way whatever the store holds.
        access: credentials and endpoints (default :meth:`Access.from_env`).
        stack: read only the stack with this id (``gcov-index info`` lists them).
        concurrency: chunk reads in flight at once (default ``$GCOV_INDEX_READ_CONCURRENCY``,
            else 256); at 1000 granules, 1000 or more gives a single round trip.

    Returns:
        A CF-1.10 Dataset on ``time`` (the zero-Doppler start of each granule). Per layer
        ``frequencyA/HHHH``: the statistic ``frequencyA_HHHH`` (attribute ``layer``), its
        ancillary variables ``frequencyA_HHHH_valid_pixels`` (non-NaN pixels in the box per
        step) and, except for ``count`` and complex layers, ``frequencyA_HHHH_p25`` /
        ``frequencyA_HHHH_p75`` (25th and 75th percentiles of the pixel values in the box).
        Auxiliary coordinates on ``time``: ``granuleId``, ``stack``, ``track``, ``frame``,
        ``direction``, ``maturity``, ``crid``. Global attributes: ``Conventions``, ``title``,
        ``institution``, ``source``, ``history`` (the gcov-index version and the request),
        ``references``, ``store``, ``bbox``, ``statistic``.

    Raises:
        BadInputError: a bad box, CRS, statistic, layer or stack; a box outside every stack's
            grid; a complex layer with a statistic other than mean or count, or with ``db``.
        AccessError: a source or the store cannot be read (AuthError: a credential refused).
        ValidationError: the store does not match its integrity record, or a chunk does not
            decode.
    """
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
        product: dict = {}  # the product's global attributes (title, institution, ...)
        for st in stacks:
            product = product or _product_attrs(handle, st["group"])
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
                "ids": _coord(da, "granuleId"), "crids": _coord(da, "compositeReleaseId")})
            part["layers"][key] = _statistic(v, da, stat, db)
    result = xr.concat([_rows(p) for p in parts.values()], dim="time", join="outer",
                       data_vars="all", coords="different", compat="equals",
                       combine_attrs="drop_conflicts")
    result = result.sortby("time")
    described = {key: da.attrs for _, key, da in jobs}
    request = {"store": store, "box": box, "variables": list(described), "stat": stat, "db": db,
               "protocol": protocol, "stack": stack}
    return _describe(result, described, request, product)


def _coord(da: xr.DataArray, name: str) -> np.ndarray | None:
    return da[name].values.astype(str) if name in da.coords else None


def _product_attrs(handle, group: str) -> dict:
    """The product's global attributes (``title``, ``institution``, ``reference_document``,
    ``mission_name``) as the store keeps them: at its root, or at a stack's root group."""
    for key in (f"{group}/.zattrs" if group else None, ".zattrs"):
        attrs = handle.meta.get(key) if key else None
        if isinstance(attrs, dict) and any(k in attrs for k in ("title", "institution")):
            return {k: v for k, v in attrs.items() if isinstance(v, str)}
    return {}


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
    """One stack's rows: per layer its statistic and ancillary variables, the stack named on
    every row."""
    st, n = part["stack"], len(part["time"])
    first = next(iter(st["members"]), (0, {}))[1]
    gid = first.get("granuleId", "")
    track = st.get("track", _name_field(gid, 5))
    frame = st.get("frame", _name_field(gid, 7))
    direction = st.get("direction", _name_field(gid, 6))
    ds = xr.Dataset({f"{_var(k)}{suffix}": v for k, found in part["layers"].items()
                     for suffix, v in found.items()})
    coords = {"stack": ("time", [st["id"]] * n), "track": ("time", [int(track or 0)] * n),
              "frame": ("time", [int(frame or 0)] * n),
              "direction": ("time", [str(direction or "")] * n)}
    if part["ids"] is not None:
        coords["granuleId"] = ("time", part["ids"])
        maturity = {g.get("granuleId"): g.get("maturity", "") for _, g in st["members"]}
        coords["maturity"] = ("time", [maturity.get(i, "") for i in part["ids"]])
        crids = part["crids"]
        if crids is None:  # a store without the provenance coordinate: the name's CRID field
            crids = [_name_field(i, 13) for i in part["ids"]]
        coords["crid"] = ("time", np.asarray(crids, dtype=str))
    return ds.assign_coords(coords)


def _var(layer: str) -> str:
    """``frequencyA/HHHH`` -> the variable name ``frequencyA_HHHH``."""
    return layer.replace("/", "_")


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


def _statistic(values: np.ndarray, da: xr.DataArray, stat: str, db: bool
               ) -> dict[str, xr.DataArray]:
    """Per time step: the statistic (key ``""``), the number of valid (non-NaN) pixels in the
    box, and, for real layers and every statistic but ``count``, the 25th and 75th
    percentiles of the pixel values (in dB too with ``db``)."""
    flat = values.reshape(values.shape[0], -1)
    valid = np.sum(~np.isnan(flat), axis=1).astype("int32")
    spread: tuple[np.ndarray, np.ndarray] | None = None
    if stat == "count":
        series = valid.astype("int64")
    else:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN step gives NaN
            series = STATS[stat](flat, axis=1)
            if flat.dtype.kind != "c":
                low, high = np.nanpercentile(flat, [25, 75], axis=1).astype(flat.dtype)
                spread = (low, high)
        if db:
            with np.errstate(divide="ignore", invalid="ignore"):
                series = 10 * np.log10(series)
                if spread is not None:
                    spread = (10 * np.log10(spread[0]), 10 * np.log10(spread[1]))
    time = {"time": da["time"].values}
    out = {"": xr.DataArray(series, dims=["time"], coords=time),
           f"_{VALID}": xr.DataArray(valid, dims=["time"], coords=time)}
    if spread is not None:
        out[f"_{LOW}"] = xr.DataArray(spread[0], dims=["time"], coords=time)
        out[f"_{HIGH}"] = xr.DataArray(spread[1], dims=["time"], coords=time)
    out[""].attrs["n_pixels"] = int(flat.shape[1])
    return out


def _describe(series: xr.Dataset, layers: dict[str, dict], request: dict, product: dict
              ) -> xr.Dataset:
    """The CF-1.10 attributes and encodings of the series: what each variable is, the time
    axis, the provenance coordinates, and what made the whole (``history``)."""
    stat, db = request["stat"], request["db"]
    stat_word = "number of valid pixels" if stat == "count" else stat
    for key, attrs in layers.items():
        name, freq = _var(key), key.partition("/")[0]
        what = attrs.get("long_name") or f"GCOV layer {key}"
        what = f"{what[:1].lower()}{what[1:]} ({freq})"
        v = series[name]
        anc = [f"{name}_{s}" for s in (VALID, LOW, HIGH) if f"{name}_{s}" in series]
        v.attrs["layer"] = key
        if anc:
            v.attrs["ancillary_variables"] = " ".join(anc)
        if stat == "count":
            v.attrs.update({"long_name": f"number of valid (non-NaN) pixels in the box of {what}",
                            "units": "1", "standard_name": "number_of_observations"})
        else:
            # a backscatter (diagonal) term is linear power, dimensionless; another layer
            # (numberOfLooks, ...) keeps the product's units
            units = "1" if db else str(attrs.get("units") or "1")
            layer = key.rpartition("/")[2]
            backscatter = len(layer) == 4 and layer[:2] == layer[2:]
            v.attrs.update({"long_name": f"{stat} over the box of {what}"
                            + (", in dB" if db else ""), "units": units,
                            "cell_methods": CELL_METHODS[stat]})
            v.attrs["comment"] = (DB_COMMENT.format(stat=stat) + "; " if db else "") + (
                NO_STANDARD_NAME if backscatter else "no CF standard name for this GCOV layer")
        if f"{name}_{VALID}" in series:
            series[f"{name}_{VALID}"].attrs.update({
                "long_name": f"number of valid (non-NaN) pixels in the box of {what}",
                "units": "1", "standard_name": "number_of_observations"})
        for suffix, pct in ((LOW, 25), (HIGH, 75)):
            if f"{name}_{suffix}" in series:
                series[f"{name}_{suffix}"].attrs.update({
                    "long_name": f"{pct}th percentile of the pixel values in the box of {what}"
                                 + (", in dB" if db else ""), "units": v.attrs["units"],
                    "comment": "CF cell_methods has no percentile method; "
                               + (DB_COMMENT.format(stat=f"{pct}th percentile") if db
                                  else "in the units of the layer")})
    series["time"].attrs.update({"standard_name": "time", "axis": "T",
                                 "long_name": "zero-Doppler start time of the granule (UTC)"})
    exact = bool(np.all(series["time"].values.astype("datetime64[us]")
                        == series["time"].values))
    series["time"].encoding.update({"units": "microseconds since 1970-01-01 00:00:00",
                                    "calendar": "standard",
                                    "dtype": "int64" if exact else "float64"})
    for name, long_name in (
            ("granuleId", "granule id (file name stem) of the NISAR L2 GCOV product"),
            ("stack", "gcov-index stack id (track, direction, frame, grid)"),
            ("track", "relative orbit (track) number"), ("frame", "frame number"),
            ("direction", "orbit pass direction (A ascending, D descending)"),
            ("maturity", "data maturity of the release (BETA, PROVISIONAL, VALIDATED, TEST)"),
            ("crid", "composite release id (CRID) of the granule")):
        if name in series.coords:
            series[name].attrs["long_name"] = long_name
            if series[name].dtype.kind in "UO":
                series[name].encoding["dtype"] = str  # netCDF-4 string: CF label variables
    box, store = request["box"], _public(str(request["store"]))
    mission = product.get("mission_name", "NISAR")
    series.attrs.clear()
    series.attrs.update({
        "Conventions": CONVENTIONS,
        "title": f"{mission} L2 GCOV {', '.join(layers)}: {stat_word} over a box "
                 f"({box}), time series" + (" in dB" if db else ""),
        "institution": product.get("institution", "NASA JPL"),
        "source": f"{product.get('title', 'NISAR L2 GCOV Product')} ({mission} L-band SAR, "
                  "geocoded polarimetric covariance, radiometrically terrain-corrected "
                  "gamma-naught), read from the gcov-index store "
                  f"{store} (granules: granuleId)",
        "history": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} gcov-index {__version__}: "
                   + _command(request, store),
        "references": product.get("reference_document", "NISAR L2 GCOV product specification"),
        "store": store, "bbox": str(box), "statistic": stat,
    })
    return series


def _public(url: str) -> str:
    """A store's name fit for a file: an URL without its query (a signed URL's signature)."""
    return url.split("?", 1)[0] if "://" in url else url


def _command(request: dict, store: str) -> str:
    """The command that makes the same series again."""
    box = request["box"]
    words = ["gcov-index", "subset", store, "--bbox", *(format(v, ".15g") for v in
             (box.minx, box.miny, box.maxx, box.maxy)), "--crs", box.crs]
    for layer in request["variables"]:
        words += ["--var", layer]
    words += ["--stat", request["stat"]] + (["--db"] if request["db"] else [])
    for option in ("protocol", "stack"):
        if request[option]:
            words += [f"--{option}", str(request[option])]
    return shlex.join(words)


def statistic_names(series: xr.Dataset) -> list[str]:
    """The statistic variables of a series (``frequencyA_HHHH``, ...), not their ancillary
    variables."""
    return [k for k, v in series.data_vars.items() if "layer" in v.attrs]


def to_frame(series: xr.Dataset) -> pd.DataFrame:
    """The series as a pandas DataFrame indexed by ``time``.

    Columns: ``granuleId, stack, track, frame, direction, maturity, crid``; one per layer,
    named after it (``frequencyA/HHHH``); then per layer its ancillary variables, named
    ``frequencyA/HHHH:valid_pixels``, ``frequencyA/HHHH:p25``, ``frequencyA/HHHH:p75``.

    Args:
        series: what :func:`subset` returns.

    Returns:
        One row per time step.
    """
    df = series.to_dataframe()
    names = {}
    for k in statistic_names(series):
        layer = series[k].attrs["layer"]
        names[k] = layer
        for anc in series[k].attrs.get("ancillary_variables", "").split():
            names[anc] = f"{layer}:{anc.removeprefix(f'{k}_')}"
    df = df.rename(columns=names)
    first = [c for c in ROW_COORDS if c in df.columns]
    stats = [names[k] for k in statistic_names(series)]
    return df[[*first, *stats, *[c for c in df.columns if c not in (*first, *stats)]]]


def check_outputs(out: str | Path | None = None, plot: str | Path | None = None) -> None:
    """Refuse output names we cannot write before any chunk is read."""
    if out is not None and Path(out).suffix.lower() not in (".csv", ".nc"):
        raise BadInputError(f"--out {out}: name it FILE.csv or FILE.nc")
    if plot is not None and Path(plot).suffix.lower() != ".png":
        raise BadInputError(f"--plot {plot}: name it FILE.png")


def write_series(series: xr.Dataset, out: str | Path) -> Path:
    """Write a series as CSV or CF-1.10 NetCDF-4, atomically.

    Args:
        series: what :func:`subset` returns.
        out: ``FILE.csv`` (the columns of :func:`to_frame`, times as ISO 8601 UTC with
            microseconds) or ``FILE.nc`` (NetCDF-4 through h5netcdf: the Dataset with its CF
            attributes; strings as netCDF-4 strings, ``time`` as integer microseconds since
            1970-01-01 UTC). An earlier file at ``out`` is replaced only once the new one is
            whole.

    Returns:
        ``out`` as a Path.

    Raises:
        BadInputError: ``out`` is named neither ``.csv`` nor ``.nc``.
    """
    check_outputs(out=out)
    out = Path(out)
    with atomic_file(out) as tmp:
        if out.suffix.lower() == ".csv":
            to_frame(series).to_csv(tmp, date_format="%Y-%m-%dT%H:%M:%S.%f")
        else:
            series.to_netcdf(tmp, engine="h5netcdf")
    return out


def figure_series(series: xr.Dataset) -> Figure:
    """The figure :func:`plot_series` saves (for a notebook, or to draw more on it)."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    counts = ax.twinx()  # the valid-pixel counts, on the right
    t = series["time"].values
    units = set()
    for i, k in enumerate(statistic_names(series)):
        da, layer, color = series[k], series[k].attrs["layer"], f"C{i}"
        ax.plot(t, da.values, marker="o", color=color, zorder=3,
                label=f"{layer}: {series.attrs.get('statistic', '')} of the box")
        if f"{k}_{LOW}" in series:
            ax.fill_between(t, series[f"{k}_{LOW}"].values, series[f"{k}_{HIGH}"].values,
                            color=color, alpha=0.2, linewidth=0,
                            label=f"{layer}: 25-75 % of the pixel values")
        if f"{k}_{VALID}" in series:
            counts.plot(t, series[f"{k}_{VALID}"].values, color=color, linestyle=":",
                        marker="s", markersize=3,
                        label=f"{layer}: valid pixels in the box (right axis)")
        units.add("dB" if "in dB" in da.attrs.get("long_name", "") else
                  "pixels" if series.attrs.get("statistic") == "count" else
                  "linear power" if NEAREST_NAME in da.attrs.get("comment", "") else
                  f"units {da.attrs.get('units', '1')}")
    ax.set_xlabel("acquisition time (UTC)")
    ax.set_ylabel(f"{series.attrs.get('statistic', '')} ({', '.join(sorted(units))})")
    counts.set_ylabel("valid pixels in the box")
    counts.set_ylim(bottom=0)
    ax.set_zorder(counts.get_zorder() + 1)  # the series drawn over the counts
    ax.patch.set_visible(False)
    ax.set_title(f"{Path(series.attrs.get('store', '')).name}: bbox {series.attrs.get('bbox', '')}",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    handles = [h for a in (ax, counts) for h in a.get_legend_handles_labels()[0]]
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    # below the axes, so it hides no point
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=2 if len(handles) > 3 else 1, frameon=False)
    fig.tight_layout()
    return fig


def plot_series(series: xr.Dataset, out: str | Path) -> Path:
    """Draw a series to a PNG, atomically.

    Time on x; per layer the statistic (a line with a marker per step), the spread of the
    pixel values in the box (a band from the 25th to the 75th percentile; none for ``count``
    or a complex layer) and the number of valid pixels per step (dotted, right axis); a
    legend says which is which.

    Args:
        series: what :func:`subset` returns.
        out: ``FILE.png``; an earlier file there is replaced only once the new one is whole.

    Returns:
        ``out`` as a Path.

    Raises:
        BadInputError: ``out`` is not named ``.png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_outputs(plot=out)
    out = Path(out)
    fig = figure_series(series)
    try:
        with atomic_file(out, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return out
