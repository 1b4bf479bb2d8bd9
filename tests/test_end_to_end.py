"""Build JSON and Parquet stores from S3 (temporary credentials), open them both ways, and
check every dataset of the tree against h5py's read of the source granule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from gcov_index.read.open import open_store
from gcov_index.store.build import build

GRID = "science/LSAR/GCOV/grids/frequencyA"
STACK_DIMS = ("time", "zeroDopplerStartTime")


@pytest.fixture(scope="module")
def built(archive, stack, tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    access = archive.access()
    urls = [archive.s3_url(p.name) for p in [*stack["paths"], stack["old"], stack["qa"]]]
    out = {}
    for fmt in ("json", "parquet"):
        result = build(urls, d / f"stack.{fmt}", access=access, cache_dir=d / "cache")
        out[fmt] = result
    return {"access": access, "results": out, "paths": stack["paths"], "urls": urls}


def _as_comparable(src: np.ndarray, got: np.ndarray):
    if src.dtype.kind == "S":
        return np.char.decode(src, "utf-8").astype(str), np.asarray(got).astype(str)
    return src, got


def _datasets(path) -> list[str]:
    names: list[str] = []
    with h5py.File(path) as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return names


def count_datasets(paths) -> int:
    """Datasets in the source granules, all of them (what check_every_dataset compares)."""
    return sum(len(_datasets(p)) for p in paths)


def _is_fill(values: np.ndarray, fill) -> bool:
    """All of ``values`` is the store's fill: NaN, the array's fill value, empty strings, 0."""
    v = np.asarray(values)
    if v.dtype.kind in "fc":
        return bool(np.all(np.isnan(v)) or (fill is not None and np.all(v == fill)))
    if v.dtype.kind in "SUO":
        return all(str(x) in ("", "b''") for x in v.reshape(-1))
    return bool(np.all(v == (0 if fill is None else fill)))


def check_every_dataset(tree, paths) -> int:
    """Every dataset of every source granule, read through the store, equals h5py's read; a
    dataset that some granules of the stack lack is fill at their time steps. Returns the
    number of datasets compared (sources' datasets, not counting the fill checks)."""
    checked = 0
    every = {n: None for p in paths for n in _datasets(p)}  # union, in first-seen order
    files = [h5py.File(p) for p in paths]  # the stack is in time order
    try:
        for name in every:
            group, var = name.rsplit("/", 1)
            da = tree[group].dataset[var]
            values = da.values  # read once, every time step
            stacked = bool(da.dims[:1]) and da.dims[0] in STACK_DIMS and da.dims[0] != var
            for t, f in enumerate(files):
                got = values
                if name not in f:  # absent in this granule: fill at its time step, or
                    if not stacked:  # a scale stored once (identical where present)
                        continue
                    fill = da.attrs.get("_FillValue", da.encoding.get("_FillValue"))
                    assert _is_fill(got[t], fill), (name, t)
                    continue
                src = np.asarray(f[name][()])
                if stacked:
                    got = np.asarray(got[t])
                region = tuple(slice(0, n) for n in src.shape)
                rest = np.ones(got.shape, bool)
                rest[region] = False
                inside = got[region] if got.shape != src.shape else got
                a, b = _as_comparable(src, inside)
                assert a.shape == b.shape, name
                assert a.dtype.kind == b.dtype.kind or a.dtype.kind in "SU", (name, a.dtype, b.dtype)
                assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), name
                if rest.any():  # padded to the longest granule: the rest is fill
                    pad = got[rest]
                    assert (np.all(np.isnan(pad)) if pad.dtype.kind in "fc"
                            else np.all(pad == pad.flat[0])), name
                checked += 1
    finally:
        for f in files:
            f.close()
    return checked


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_every_dataset_through_open_store(built, fmt):
    result = built["results"][fmt]
    tree = open_store(result.store, access=built["access"], mask_and_scale=False)
    n_datasets = check_every_dataset(tree, built["paths"])
    assert n_datasets == count_datasets(built["paths"])

    grid = open_store(result.store, access=built["access"])[GRID].dataset
    expected_times = []
    for p in built["paths"]:
        with h5py.File(p) as f:
            expected_times.append(np.datetime64(
                f["science/LSAR/identification/zeroDopplerStartTime"][()].decode(), "ns"))
    assert list(grid["time"].values) == expected_times
    assert list(grid["granuleId"].values) == [p.stem for p in built["paths"]]
    assert set(grid["compositeReleaseId"].values) == {"X05009"}  # the X05007 release is gone
    assert list(grid["trackNumber"].values) == [172] * 3
    assert list(grid["orbitPassDirection"].values) == ["Ascending"] * 3
    assert grid["HHHH"].dims == ("time", "yCoordinates", "xCoordinates")
    assert grid["HHHH"].rio.crs.to_epsg() == 32611
    assert np.isnan(grid["mask"].values).any()  # 255 is the CF fill, decoded to NaN


def test_selection_recorded(built):
    result = built["results"]["json"]
    assert [old.crid for old, _ in result.selection.superseded] == ["X05007"]
    assert result.selection.skipped[0].endswith("_QA_STATS.h5")
    refs = json.loads(result.store.read_text())
    text = json.dumps(refs)
    assert built["access"].token not in text  # no secret in the store
    assert "sessionToken" not in text and "ASIA" not in text
    assert all(u.startswith("s3://") for u in refs["templates"].values())


def test_clip_box_in_lonlat(built):
    from pyproj import Transformer

    grid = open_store(built["results"]["json"].store, access=built["access"])[GRID].dataset
    x = grid["xCoordinates"].values
    y = grid["yCoordinates"].values
    to_ll = Transformer.from_crs(32611, 4326, always_xy=True)
    lon0, lat0 = to_ll.transform(x[100], y[400])
    lon1, lat1 = to_ll.transform(x[140], y[360])
    clipped = grid["HHHH"].rio.clip_box(lon0, lat0, lon1, lat1, crs="EPSG:4326")
    assert clipped.sizes["time"] == 3
    assert 30 <= clipped.sizes["xCoordinates"] <= 50 and 30 <= clipped.sizes["yCoordinates"] <= 50


PLAIN = textwrap.dedent('''
    import json, os, sys
    import requests
    import xarray as xr
    import rioxarray  # noqa: F401  (the .rio accessor)

    store, fmt = sys.argv[1], sys.argv[2]
    # temporary S3 credentials, as any Earthdata user gets them
    creds = requests.get(os.environ["GCOV_INDEX_S3CREDENTIALS_URL"],
                         headers={"Authorization": "Bearer " + os.environ["EARTHDATA_TOKEN"]}).json()
    storage_options = {
        "remote_protocol": "s3",
        "remote_options": {"key": creds["accessKeyId"], "secret": creds["secretAccessKey"],
                           "token": creds["sessionToken"],
                           "endpoint_url": os.environ["AWS_ENDPOINT_URL"],
                           "client_kwargs": {"region_name": "us-west-2"}},
    }
    ds = xr.open_dataset(store, engine="kerchunk", group="science/LSAR/GCOV/grids/frequencyA",
                         storage_options=storage_options)
    box = ds["HHHH"].isel(yCoordinates=slice(600, 700), xCoordinates=slice(500, 600))
    dt = xr.open_datatree("reference://", engine="zarr", zarr_format=2,
                          backend_kwargs={"consolidated": False,
                                          "storage_options": {"fo": store, **storage_options}})
    orbit = dt["science/LSAR/GCOV/metadata/orbit"]
    print(json.dumps({
        "mean": [float(v) for v in box.mean(["yCoordinates", "xCoordinates"]).values],
        "epsg": ds["HHHH"].rio.crs.to_epsg(),
        "granules": [str(g) for g in ds["granuleId"].values],
        "position0": float(orbit["position"].values[0, 0, 0]),
        "imported_gcov_index": any(m.startswith("gcov_index") for m in sys.modules),
    }))
''')


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_plain_xarray_without_gcov_index(built, archive, fmt, tmp_path):
    store = built["results"][fmt].store
    env = {k: v for k, v in os.environ.items() if not k.startswith("GCOV_INDEX_CACHE")}
    env |= archive.env
    # run from an empty folder with -I: gcov_index is neither on the path nor importable by name
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN, str(store), fmt], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["imported_gcov_index"]
    assert out["epsg"] == 32611
    assert out["granules"] == [p.stem for p in built["paths"]]
    expected = []
    for p in built["paths"]:
        with h5py.File(p) as f:
            expected.append(float(np.nanmean(f[GRID + "/HHHH"][600:700, 500:600])))
            if p == built["paths"][0]:
                pos0 = float(f["science/LSAR/GCOV/metadata/orbit/position"][0, 0])
    np.testing.assert_allclose(out["mean"], expected, rtol=1e-6)
    assert out["position0"] == pos0
