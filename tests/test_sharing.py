"""Stores of local granules shared through a group folder (umask 002, setgid): what a build and
`gcov-index subset` write there is group-readable and -writable, and plain xarray opens the
stores with no gcov-index options (a JSON store with none at all, a Parquet store with the
protocol of its URLs only: fsspec cannot infer it from a Parquet store with groups)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr

from gcov_index.cli import main
from gcov_index.read.open import open_store
from gcov_index.store.build import build
from tests.support.modes import mode, umask

GRID = "science/LSAR/GCOV/grids/frequencyA"
ORBIT = "science/LSAR/GCOV/metadata/orbit"
BBOX = ["-118.08", "36.96", "-118.06", "36.98"]
# what each store needs from a plain-xarray user whose granules are on this machine
PLAIN_OPTIONS = {"json": {}, "parquet": {"remote_protocol": "file"}}


@pytest.fixture(scope="module")
def group(stack, tmp_path_factory) -> dict:
    """JSON, Parquet and Icechunk stores of the stack's granules, a subset's .nc and .png, written
    under umask 002 into a setgid folder open to all (only the umask decides)."""
    top = tmp_path_factory.mktemp("sharing") / "group"
    top.mkdir()
    top.chmod(0o2777)
    stores = {fmt: top / f"stack.{fmt}" for fmt in ("json", "parquet")}
    with umask(0o002):
        for out in [*stores.values(), top / "stack.icechunk"]:
            build([str(p) for p in stack["paths"]], out, cache_dir=top.parent / "cache")
        assert main(["subset", str(stores["parquet"]), "--bbox", *BBOX, "--out",
                     str(top / "series" / "s.nc"), "--plot", str(top / "series" / "s.png")]) == 0
    return {"top": top, **stores}


def test_a_group_shares_what_is_written_under_umask_002(group):
    top = group["top"]
    files = [group["json"], top / "series" / "s.nc", top / "series" / "s.png"]
    assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o664" for f in files}
    version = Path(os.path.realpath(group["parquet"]))
    folders = [version, top / "series", top / "stack.icechunk"]
    for store in (version, top / "stack.icechunk"):  # Icechunk's files: its own, not ours
        for root, dirs, names in os.walk(store):
            folders += [Path(root, d) for d in dirs]
            files += [Path(root, n) for n in names]
    assert any(f.name == ".zmetadata" for f in files)
    assert any("stack.icechunk/manifests" in str(f) for f in files)
    assert {oct(mode(f)) for f in files} == {"0o664"}
    assert {oct(mode(d)) for d in folders} == {"0o2775"}  # the group folder's setgid kept


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_plain_xarray_opens_a_store_of_local_granules(group, fmt):
    store, so = str(group[fmt]), PLAIN_OPTIONS[fmt]
    ds = xr.open_dataset(store, engine="kerchunk", group=GRID, storage_options=so)
    dt = xr.open_datatree("reference://", engine="zarr", zarr_format=2,
                          backend_kwargs={"consolidated": False,
                                          "storage_options": {"fo": store, **so}})
    ours = open_store(store, group=GRID).dataset
    for name in ("HHHH", "HVHV", "mask", "granuleId", "xCoordinates"):
        want = ours[name].values
        assert np.array_equal(ds[name].values, want, equal_nan=want.dtype.kind == "f"), name
        assert np.array_equal(dt[GRID][name].values, want, equal_nan=want.dtype.kind == "f")
    assert np.array_equal(dt[ORBIT]["position"].values,
                          open_store(store, group=ORBIT)["position"].values, equal_nan=True)
    assert ds["HHHH"].rio.crs == ours["HHHH"].rio.crs


def test_why_a_parquet_store_needs_its_remote_protocol(group):
    """Without ``remote_protocol`` fsspec's ReferenceFileSystem walks the references for the
    first URL (``LazyReferenceMapper.values()``), field by field in the order of a set of every
    array *and group* (string hashes: another order in each process), and asks each for its
    ``.zarray``: a group met before the first URL is a KeyError, whatever order a store's files
    or rows are in. When fsspec walks only arrays, this fails: drop ``remote_protocol`` from
    ``PLAIN_OPTIONS`` and the README's "Plain xarray" section."""
    from fsspec.implementations.reference import LazyReferenceMapper

    refs = LazyReferenceMapper(os.path.realpath(group["parquet"]))
    assert "science/LSAR/GCOV/metadata/orbit" in refs.listdir()  # a group, listed as a field
    with pytest.raises(KeyError, match=r"/\.zarray"):
        for _ in refs.values():
            pass


def test_the_upstream_fix_opens_a_parquet_store_with_empty_storage_options(group, tmp_path):
    """``upstream/fsspec-reference-infer-protocol.diff``, the fix offered to fsspec, applied
    (``git apply``) to a copy of the installed ReferenceFileSystem: every field of the store is
    walked without an error, whatever the order, and the store opens with no options at all,
    giving open_store's values."""
    import importlib.util
    import subprocess

    import fsspec.implementations.reference as installed
    from kerchunk.utils import fs_as_store

    root = Path(__file__).resolve().parents[1]
    copy = tmp_path / "fsspec" / "implementations" / "reference.py"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(Path(installed.__file__).read_bytes())
    subprocess.run(["git", "apply", str(root / "upstream/fsspec-reference-infer-protocol.diff")],
                   cwd=tmp_path, check=True, capture_output=True)
    spec = importlib.util.spec_from_file_location("patched_fsspec_reference", copy)
    patched = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(patched)

    store = os.path.realpath(group["parquet"])
    for _ in patched.LazyReferenceMapper(store).values():  # groups included: no KeyError
        pass
    fs = patched.ReferenceFileSystem(store, asynchronous=True,
                                     remote_options={"asynchronous": True})
    ds = xr.open_zarr(fs_as_store(fs), group=GRID, zarr_format=2, consolidated=False)
    want = open_store(store, group=GRID).dataset["HHHH"].values
    assert np.array_equal(ds["HHHH"].values, want, equal_nan=True)
