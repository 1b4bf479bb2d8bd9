"""`gcov-index subset`: the time series over a bbox equals what h5py + rioxarray compute from
the source files; CSV, NetCDF and a readable PNG; bad input one line each."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from gcov_index.cli import main
from gcov_index.read.subset import Box, subset

GRID = "science/LSAR/GCOV/grids/frequencyA"
BBOX_LL = (-118.08, 36.96, -118.06, 36.98)  # crosses chunk edges of the 700 x 600 grid
BBOX_UTM = (404000.0, 4093000.0, 406500.0, 4096000.0)


def box_pixels(path, layer: str, box: tuple, crs: str) -> np.ndarray:
    """The pixels of ``layer`` in ``box``, read from the granule with h5py and rioxarray only."""
    freq, name = layer.split("/")
    with h5py.File(path) as f:
        g = f[f"science/LSAR/GCOV/grids/{freq}"]
        da = xr.DataArray(g[name][()], dims=("y", "x"),
                          coords={"y": g["yCoordinates"][()], "x": g["xCoordinates"][()]})
        epsg = int(g["projection"][()])
    return da.rio.write_crs(f"EPSG:{epsg}").rio.clip_box(*box, crs=crs, auto_expand=True).values


def from_source(path, layer: str, box: tuple, crs: str, stat: str, db: bool) -> float:
    """The same number, computed from the granule with h5py and rioxarray only."""
    v = box_pixels(path, layer, box, crs)
    if stat == "count":
        return float(np.sum(~np.isnan(v)))
    out = {"mean": np.nanmean, "median": np.nanmedian, "min": np.nanmin, "max": np.nanmax}[stat](v)
    return float(10 * np.log10(out)) if db else float(out)


@pytest.mark.parametrize("box, crs", [(BBOX_LL, "EPSG:4326"), (BBOX_UTM, "EPSG:32611")])
@pytest.mark.parametrize("stat, db", [("mean", False), ("mean", True), ("median", False),
                                      ("min", True), ("max", False), ("count", False)])
def test_subset_equals_h5py_and_rioxarray(stores, stack, box, crs, stat, db):
    layers = ["frequencyA/HHHH", "frequencyB/HVHV"]
    series = subset(stores["s3.json"], Box.parse(box, crs), variables=layers, stat=stat, db=db,
                    access=stores["access"])
    assert series.sizes["time"] == len(stack["paths"])
    for layer in layers:
        got = series[layer.replace("/", "_")].values
        want = [from_source(p, layer, box, crs, stat, db) for p in stack["paths"]]
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert list(series["granuleId"].values) == [p.stem for p in stack["paths"]]


def test_cli_writes_csv_netcdf_and_a_png(stores, stack, tmp_path, monkeypatch, archive_env):
    store = str(stores["s3.parquet"])
    csv, nc, png = tmp_path / "s.csv", tmp_path / "s.nc", tmp_path / "s.png"
    bbox = [str(v) for v in BBOX_LL]
    assert main(["subset", store, "--bbox", *bbox, "--db", "--var", "frequencyA/HHHH",
                 "--var", "frequencyA/HVHV", "--out", str(csv), "--plot", str(png)]) == 0
    df = pd.read_csv(csv, index_col="time", parse_dates=True)
    # the columns of before, then the CRID and each layer's valid-pixel count and spread
    assert list(df.columns) == ["granuleId", "stack", "track", "frame", "direction", "maturity",
                                "crid", "frequencyA/HHHH", "frequencyA/HVHV",
                                *[f"frequencyA/{v}:{s}" for v in ("HHHH", "HVHV")
                                  for s in ("valid_pixels", "p25", "p75")]]
    assert list(df["crid"]) == [p.stem.split("_")[13] for p in stack["paths"]]
    counts = [from_source(p, "frequencyA/HHHH", BBOX_LL, "EPSG:4326", "count", False)
              for p in stack["paths"]]
    np.testing.assert_array_equal(df["frequencyA/HHHH:valid_pixels"].values, counts)
    want = [from_source(p, "frequencyA/HHHH", BBOX_LL, "EPSG:4326", "mean", True)
            for p in stack["paths"]]
    np.testing.assert_allclose(df["frequencyA/HHHH"].values, want, rtol=1e-6)
    assert main(["subset", store, "--bbox", *bbox, "--stat", "count", "--out", str(nc)]) == 0
    ds = xr.open_dataset(nc)
    assert ds["frequencyA_HHHH"].attrs["layer"] == "frequencyA/HHHH"
    assert ds.attrs["statistic"] == "count" and ds.sizes["time"] == 3
    # a PNG a person can read: a real image of a sensible size, with something drawn in it
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.shape[0] >= 400 and img.shape[1] >= 800
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 20  # lines, text, axes


def test_subset_over_https(stores, archive):
    box = Box.parse(BBOX_LL)
    a = subset(stores["s3.json"], box, access=stores["access"])
    archive.s3.stats.reset()
    b = subset(stores["s3.json"], box, protocol="https", access=stores["access"])
    np.testing.assert_array_equal(a["frequencyA_HHHH"].values, b["frequencyA_HHHH"].values)
    assert archive.s3.stats.total == 0


# ---------------------------------------------------------------------------------------
# bad input


def fails(capsys, args, code, expect):
    rc = main(["subset", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code and len(err) == 1, err
    assert err[0].startswith("gcov-index: error: ") and expect in err[0], err[0]


@pytest.mark.parametrize("extra, expect", [
    (["--bbox", "10", "10", "11", "11"], "outside the grid of HHHH"),
    (["--bbox", "-118.06", "36.96", "-118.08", "36.98"], "MINX < MAXX"),
    (["--bbox", *map(str, BBOX_LL), "--crs", "EPSG:999999"], "--crs 'EPSG:999999': not a known"),
    (["--bbox", *map(str, BBOX_LL), "--var", "frequencyA/VVVV"], "no grid layer frequencyA/VVVV"),
    (["--bbox", *map(str, BBOX_LL), "--var", "frequencyC/HHHH"], "no grid 'frequencyC'"),
    (["--bbox", *map(str, BBOX_LL), "--out", "x.xlsx"], "name it FILE.csv or FILE.nc"),
])
def test_bad_subset_input(stores, archive_env, capsys, extra, expect):
    fails(capsys, [str(stores["s3.json"]), *extra], 2, expect)


def test_not_a_gcov_index_store(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"version": 1, "refs": {".zgroup": '{"zarr_format": 2}'}}))
    fails(capsys, [str(other), "--bbox", *map(str, BBOX_LL)], 2, "not a gcov-index store")


def _local_store(stack, tmp_path):
    """A JSON store of copies of the stack's granules, which the test may then spoil."""
    from gcov_index import build

    copies = []
    for p in stack["paths"]:
        copies.append(tmp_path / p.name)
        copies[-1].write_bytes(p.read_bytes())
    return build([str(c) for c in copies], tmp_path / "s.json", cache=False).store, copies


def test_unreachable_sources(stack, capsys, tmp_path):
    store, copies = _local_store(stack, tmp_path)
    for c in copies:
        c.unlink()
    fails(capsys, [str(store), "--bbox", *map(str, BBOX_LL)], 3, "reading frequencyA/HHHH")


def test_a_chunk_that_does_not_decode_is_not_called_unreachable(stack, capsys, tmp_path):
    """Bytes that arrive and do not decode are the store's (or a source's) fault: exit 6 with
    a hint to validate, not exit 3 'unreachable'."""
    store, copies = _local_store(stack, tmp_path)
    refs = json.loads(store.read_text())["refs"]
    offsets = {v[1] for k, v in refs.items() if k.startswith(f"{GRID}/HHHH/") and
               isinstance(v, list) and v[0] == "{{u0}}"}
    with open(copies[0], "r+b") as f:  # every HHHH chunk of the first granule spoilt
        for offset in offsets:
            f.seek(offset)
            f.write(b"\xff" * 64)
    fails(capsys, [str(store), "--bbox", *map(str, BBOX_LL)], 6, "does not decode")


@pytest.mark.parametrize("protocol", ["s3", "https"])
def test_rejected_token(stores, archive_env, monkeypatch, capsys, protocol):
    monkeypatch.setenv("EARTHDATA_TOKEN", "edl-expired-or-revoked")
    fails(capsys, [str(stores["s3.json"]), "--bbox", *map(str, BBOX_LL), "--protocol", protocol],
          4, "rejected" if protocol == "s3" else "access refused")
