"""`subset --out FILE.nc` writes CF-1.10: checked by ``cf_problems`` below (the CF rules the
file relies on, written out here: the cfchecker package needs the udunits2 C library), on a
file written from a real store through the CLI, read back with h5netcdf and, when installed,
netCDF4; and the plot shows the spread and the valid-pixel counts, with a legend."""

from __future__ import annotations

import importlib.util
import re

import h5py
import numpy as np
import rioxarray  # noqa: F401
import xarray as xr

import gcov_index
from gcov_index.cli import main
from gcov_index.read.subset import Box, figure_series, subset
from tests.test_subset import BBOX_LL, box_pixels, from_source

# real CF standard names (CF standard name table) that a subset may carry
STANDARD_NAMES = {"time", "number_of_observations", "latitude", "longitude",
                  "projection_x_coordinate", "projection_y_coordinate",
                  "surface_backwards_scattering_coefficient_of_radar_wave"}
# CF-1.10 Appendix E
CELL_METHODS = {"point", "sum", "maximum", "maximum_absolute_value", "median", "mid_range",
                "minimum", "minimum_absolute_value", "mean", "mean_absolute_value",
                "mean_of_upper_decile", "mode", "range", "root_mean_square",
                "standard_deviation", "sum_of_squares", "variance"}
CALENDARS = {"standard", "gregorian", "proleptic_gregorian", "julian", "noleap", "365_day",
             "all_leap", "366_day", "360_day", "none"}
# the units of "UNIT since DATE" that cftime accepts (cftime.num2date)
CFTIME_UNITS = {"days", "hours", "minutes", "seconds", "milliseconds", "microseconds"}
GLOBALS = ("title", "institution", "source", "history", "references")
ENGINES = ["h5netcdf"] + (["netCDF4"] if importlib.util.find_spec("netCDF4") else [])


def read_raw(path, engine: str) -> tuple[dict, dict]:
    """(global attributes, {variable: (dims, dtype, attributes)}) as a netCDF library sees
    the file, with no CF decoding."""
    if engine == "h5netcdf":
        import h5netcdf

        with h5netcdf.File(path, "r") as f:
            return dict(f.attrs), {k: (v.dimensions, v.dtype, dict(v.attrs))
                                   for k, v in f.variables.items()}
    import netCDF4

    with netCDF4.Dataset(path) as f:
        f.set_auto_mask(False)
        return ({a: f.getncattr(a) for a in f.ncattrs()},
                {k: (v.dimensions, v.dtype, {a: v.getncattr(a) for a in v.ncattrs()})
                 for k, v in f.variables.items()})


def _attr_type_ok(value) -> bool:
    """CF attribute values: a string, or numbers (a scalar or a 1-D array)."""
    if isinstance(value, str):
        return True
    if isinstance(value, bool | np.bool_):
        return False
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    return isinstance(value, np.ndarray) and value.ndim <= 1 and value.dtype.kind in "iuf"


def cf_problems(path, engine: str = "h5netcdf") -> list[str]:
    """What in the file breaks the CF-1.10 rules a gcov-index subset relies on; [] if none."""
    from xarray.coding.times import decode_cf_datetime

    glob, variables = read_raw(path, engine)
    out = []
    if glob.get("Conventions") != "CF-1.10":
        out.append(f"Conventions = {glob.get('Conventions')!r}")
    out += [f"global {a} missing or not a string" for a in GLOBALS
            if not (isinstance(glob.get(a), str) and glob[a].strip())]
    out += [f"global {a}: type {type(v).__name__}" for a, v in glob.items()
            if not a.startswith("_") and not _attr_type_ok(v)]
    dims = {d for dd, _, _ in variables.values() for d in dd}
    aux = {c for _, _, a in variables.values() for c in str(a.get("coordinates", "")).split()}
    for name, (vdims, dtype, attrs) in variables.items():
        where = f"{name}:"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            out.append(f"{where} not a CF name")
        for a, v in attrs.items():
            if a == "_FillValue":
                if np.asarray(v).dtype != dtype:
                    out.append(f"{where} _FillValue of type {np.asarray(v).dtype}, not {dtype}")
            elif not a.startswith("_") and not _attr_type_ok(v):
                out.append(f"{where} {a} of type {type(v).__name__}")
        is_string = h5py.check_string_dtype(dtype) is not None or dtype is str
        if is_string and len(vdims) > 1:
            out.append(f"{where} a netCDF-4 string variable of {len(vdims)} dimensions")
        sn = str(attrs.get("standard_name", "")).split()
        if sn and sn[0] not in STANDARD_NAMES:
            out.append(f"{where} standard_name {sn[0]!r} not a known CF name")
        for ref in ("ancillary_variables", "coordinates"):
            for other in str(attrs.get(ref, "")).split():
                if other not in variables:
                    out.append(f"{where} {ref} names {other!r}, no such variable")
                elif not set(variables[other][0]) <= set(vdims):
                    out.append(f"{where} {ref} {other!r} has dimensions outside {vdims}")
        if "cell_methods" in attrs:
            pairs = re.findall(r"([\w ]+?):\s*(\w+)", attrs["cell_methods"])
            if not pairs or any(m not in CELL_METHODS for _, m in pairs):
                out.append(f"{where} cell_methods {attrs['cell_methods']!r}")
        if name in dims:  # a coordinate variable
            continue
        if name in aux:  # an auxiliary coordinate or label: described, no axis
            if "long_name" not in attrs:
                out.append(f"{where} auxiliary coordinate without long_name")
            if "axis" in attrs:
                out.append(f"{where} axis on an auxiliary coordinate")
            continue
        out += [f"{where} no {a}" for a in ("units", "long_name")
                if not isinstance(attrs.get(a), str)]
    if "time" not in variables:
        return [*out, "no time variable"]
    _, tdtype, t = variables["time"]
    if t.get("standard_name") != "time" or t.get("axis") != "T" or "long_name" not in t:
        out.append(f"time: standard_name/axis/long_name {t}")
    unit, _, since = str(t.get("units", "")).partition(" since ")
    if unit not in CFTIME_UNITS or not since:
        out.append(f"time: units {t.get('units')!r} not UNIT since DATE for cftime")
    if t.get("calendar", "standard") not in CALENDARS:
        out.append(f"time: calendar {t.get('calendar')!r}")
    try:  # decoded as cftime does it, when installed; xarray's decoder (pandas) else
        if importlib.util.find_spec("cftime"):
            import cftime

            cftime.num2date([0], t["units"], t.get("calendar", "standard"))
        decode_cf_datetime(np.zeros(1, tdtype), t["units"], t.get("calendar", "standard"))
    except Exception as e:
        out.append(f"time: units {t.get('units')!r} do not decode: {e}")
    return out


def test_the_cli_writes_cf_netcdf(stores, stack, archive_env, tmp_path):
    nc = tmp_path / "series.nc"
    layers = ["frequencyA/HHHH", "frequencyB/HVHV"]
    assert main(["subset", str(stores["s3.parquet"]), "--bbox", *map(str, BBOX_LL), "--db",
                 *[w for v in layers for w in ("--var", v)], "--out", str(nc)]) == 0
    for engine in ENGINES:
        assert cf_problems(nc, engine) == [], engine
    ds = xr.open_dataset(nc, engine="h5netcdf")
    # what each variable is, and the numbers behind it, from the source files
    for layer in layers:
        name = layer.replace("/", "_")
        v = ds[name]
        assert v.attrs["units"] == "1" and "in dB" in v.attrs["long_name"]
        assert v.attrs["cell_methods"] == "area: mean" and "standard_name" not in v.attrs
        assert "10 log10" in v.attrs["comment"] and "gamma-naught" in v.attrs["comment"]
        assert v.attrs["ancillary_variables"].split() == [
            f"{name}_valid_pixels", f"{name}_p25", f"{name}_p75"]
        want = [from_source(p, layer, BBOX_LL, "EPSG:4326", "count", False)
                for p in stack["paths"]]
        np.testing.assert_array_equal(ds[f"{name}_valid_pixels"].values, want)
        assert ds[f"{name}_valid_pixels"].attrs["standard_name"] == "number_of_observations"
        for pct in (25, 75):
            want = [10 * np.log10(_percentile(p, layer, pct)) for p in stack["paths"]]
            np.testing.assert_allclose(ds[f"{name}_p{pct}"].values, want, rtol=1e-5)
    # each step names its source; the file says what made it
    names = [p.stem for p in stack["paths"]]
    assert list(ds["granuleId"].values) == names
    assert list(ds["crid"].values) == [n.split("_")[13] for n in names]
    assert set(ds["track"].values) == {172} and set(ds["direction"].values) == {"A"}
    assert ds["time"].encoding["units"].startswith("microseconds since 1970-01-01")
    history = ds.attrs["history"]
    assert f"gcov-index {gcov_index.__version__}" in history
    assert (f"subset {stores['s3.parquet']} --bbox -118.08 36.96 -118.06 36.98 --crs EPSG:4326 "
            "--var frequencyA/HHHH --var frequencyB/HVHV --stat mean --db") in history
    assert ds.attrs["institution"] == "NASA JPL" and "D-102274" in ds.attrs["references"]


def _percentile(path, layer: str, pct: float) -> float:
    """The percentile of the pixel values in the box, from the granule (h5py + rioxarray)."""
    return float(np.nanpercentile(box_pixels(path, layer, BBOX_LL, "EPSG:4326"), pct))


def test_the_checker_finds_what_is_not_cf(tmp_path):
    """cf_problems is not vacuous: each rule it checks, broken once, is reported."""
    t = np.array(["2025-11-22T02:46:18"], dtype="datetime64[ns]")
    bad = xr.Dataset({"a-b": ("time", [1.0], {"long_name": "x", "standard_name": "gamma0",
                                              "ancillary_variables": "n",
                                              "cell_methods": "area: average",
                                              "flag": ["a", "b"]}),
                      "c": ("time", [1.0], {"units": "1"})},
                     coords={"time": ("time", t, {"axis": "T"}),
                             "g": ("time", ["x"], {"axis": "X"})},
                     attrs={"Conventions": "CF-1.7", "title": "t"})
    bad["time"].encoding.update(units="nanoseconds since 1970-01-01")
    path = tmp_path / "bad.nc"
    bad.to_netcdf(path, engine="h5netcdf")
    text = "\n".join(cf_problems(path))
    for expect in ["Conventions = 'CF-1.7'", "global history missing", "a-b: not a CF name",
                   "a-b: flag of type", "standard_name 'gamma0' not a known CF name",
                   "ancillary_variables names 'n'", "cell_methods 'area: average'",
                   "a-b: no units", "c: no long_name", "g: auxiliary coordinate without "
                   "long_name", "g: axis on an auxiliary coordinate", "time: standard_name",
                   "not UNIT since DATE for cftime"]:
        assert expect in text, (expect, text)


def test_the_series_and_its_plot(stores, archive_env):
    """gi.subset's Dataset carries the same CF description before any file is written; the
    plot draws, per layer, the statistic, the 25-75 % band and the valid-pixel counts on a
    second axis, each named in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = subset(stores["s3.json"], Box.parse(BBOX_LL), variables=["frequencyA/HHHH"],
                    access=stores["access"])
    assert series.attrs["Conventions"] == "CF-1.10" and series.attrs["statistic"] == "mean"
    hh = series["frequencyA_HHHH"]
    assert hh.attrs["units"] == "1" and "in dB" not in hh.attrs["long_name"]
    assert series["time"].attrs == {"standard_name": "time", "axis": "T",
                                    "long_name": "zero-Doppler start time of the granule (UTC)"}
    assert (series["frequencyA_HHHH_p25"] <= hh).all() and (hh <= series["frequencyA_HHHH_p75"]
                                                           ).all()
    fig = figure_series(series)
    try:
        ax, counts = fig.axes
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["frequencyA/HHHH: mean of the box",
                          "frequencyA/HHHH: 25-75 % of the pixel values",
                          "frequencyA/HHHH: valid pixels in the box (right axis)"]
        band = ax.collections[0].get_paths()[0].vertices[:, 1]
        np.testing.assert_allclose([band.min(), band.max()],
                                   [series["frequencyA_HHHH_p25"].min(),
                                    series["frequencyA_HHHH_p75"].max()], rtol=1e-6)
        np.testing.assert_array_equal(counts.lines[0].get_ydata(),
                                      series["frequencyA_HHHH_valid_pixels"].values)
        assert counts.get_ylabel() == "valid pixels in the box"
    finally:
        plt.close(fig)


def test_times_with_nanoseconds_keep_a_unit_cftime_knows(tmp_path):
    """A granule time with sub-microsecond digits: microseconds as floats (cftime has no
    nanoseconds), not xarray's default ``nanoseconds since``."""
    from gcov_index.read.subset import _describe

    t = np.array(["2025-11-22T02:46:18.123456789"], dtype="datetime64[ns]")
    series = xr.Dataset({"frequencyA_HHHH": ("time", np.float32([0.1]))}, coords={"time": t})
    request = {"store": "s.json", "box": Box.parse(BBOX_LL), "variables": ["frequencyA/HHHH"],
               "stat": "mean", "db": False, "protocol": None, "stack": None}
    series = _describe(series, {"frequencyA/HHHH": {}}, request, {})
    path = tmp_path / "ns.nc"
    series.to_netcdf(path, engine="h5netcdf")
    assert cf_problems(path) == []
    with xr.open_dataset(path, engine="h5netcdf") as back:
        assert back["time"].encoding["units"].startswith("microseconds since")
        assert abs(int(back["time"].values[0] - t[0])) < 1000  # within 1 us
