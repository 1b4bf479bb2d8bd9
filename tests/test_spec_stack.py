"""Granules of two specification versions, with and without an input-data exception mask, and
with one on a finer grid than its group's scales, stacked into one store: every dataset reads
back as h5py reads it from its source, and every group opens."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest

from gcov_index.read.open import open_store
from gcov_index.store.build import build
from tests.support.granules import NEWEST_SPEC, GranuleSpec, write_granule
from tests.test_end_to_end import check_every_dataset, count_datasets

GRID = "science/LSAR/GCOV/grids/frequencyA"
IDENT = "science/LSAR/identification"
SHAPE = (600, 540)  # one grid and mode per store; edge chunks partial


def _build(paths, out, cache):
    """A store of ``paths``: one stack (one grid, one mode), scanned once for both formats."""
    result = build([str(p) for p in paths], out, cache_dir=cache)
    assert [s["granules"] for s in result.stacks] == [len(paths)], result.stacks
    return result.store


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict:
    """2 granules of spec 1.4.0 (no exception mask) and 2 of the newest, one with the mask
    and one without."""
    d = tmp_path_factory.mktemp("spec-stack")
    base = GranuleSpec(shape=SHAPE)
    specs = [replace(base.repeat(0), spec_version="1.4.0"),
             replace(base.repeat(1), spec_version="1.4.0"),
             base.repeat(2), replace(base.repeat(3), exception_mask=None)]
    paths = [write_granule(d / "g", s) for s in specs]
    stores = {fmt: _build(paths, d / f"versions.{fmt}", d / "cache") for fmt in ("json", "parquet")}
    return {"paths": paths, "specs": specs, "stores": stores}


@pytest.fixture(scope="module")
def finer(tmp_path_factory) -> dict:
    """A 1.4.0 granule (no mask), then a QPDH and a DHDH granule of the newest spec whose
    exception masks lie on a grid twice as fine as their group's scales."""
    d = tmp_path_factory.mktemp("finer-stack")
    base = GranuleSpec(shape=SHAPE)
    specs = [replace(base.repeat(0), spec_version="1.4.0"),
             replace(base.repeat(1), polarizations="QPDH", exception_mask="finer"),
             replace(base.repeat(2), exception_mask="finer")]
    paths = [write_granule(d / "g", s) for s in specs]
    return {"paths": paths, "store": _build(paths, d / "finer.json", d / "cache")}


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_two_spec_versions_stack_and_read_back(versions, fmt):
    paths = versions["paths"]
    tree = open_store(versions["stores"][fmt], mask_and_scale=False)
    assert check_every_dataset(tree, paths) == count_datasets(paths)
    ident = tree[IDENT].dataset
    assert list(ident["productSpecificationVersion"].values.astype(str)) == [
        "1.4.0", "1.4.0", NEWEST_SPEC, NEWEST_SPEC]
    mask = tree[GRID].dataset["inputDataExceptionMask"]
    assert mask.dims == ("time", "yCoordinates", "xCoordinates")
    values = mask.values
    assert (values[[0, 1, 3]] == 65535).all()  # absent: the fill
    with h5py.File(paths[2]) as f:
        np.testing.assert_array_equal(values[2], f[GRID + "/inputDataExceptionMask"][()])
    # the dataset that moved between versions is in both places, fill where it is not
    moved = tree["science/LSAR/GCOV/identification"].dataset["staticLayersDataAccess"].values
    assert [bool(v) for v in moved] == [True, True, False, False]


def test_a_layer_on_its_own_grid_opens(finer):
    store, paths = finer["store"], finer["paths"]
    tree = open_store(store)  # the whole tree: xarray refused it before (conflicting sizes)
    grid = open_store(store, group=GRID).dataset
    with h5py.File(paths[1]) as f:
        ny, nx = f[GRID + "/HHHH"].shape
        expected = [f[GRID + "/inputDataExceptionMask"][()]]
    with h5py.File(paths[2]) as f:
        expected.append(f[GRID + "/inputDataExceptionMask"][()])
    mask = grid["inputDataExceptionMask"]
    assert mask.shape == (3, 2 * ny, 2 * nx)
    assert not {"yCoordinates", "xCoordinates"} & set(mask.dims)  # its own (phony) dims
    assert grid["HHHH"].dims == ("time", "yCoordinates", "xCoordinates")
    raw = open_store(store, group=GRID, mask_and_scale=False).dataset
    got = raw["inputDataExceptionMask"].values
    assert (got[0] == 65535).all()
    np.testing.assert_array_equal(got[1], expected[0])
    np.testing.assert_array_equal(got[2], expected[1])
    assert np.isnan(mask.values[0]).all()  # decoded: the fill is NaN
    # the quad-pol granule's complex terms stack beside the dual-pol ones (fill there)
    hhhv = grid["HHHV"].values
    assert np.isnan(hhhv[[0, 2]]).all() and np.iscomplexobj(hhhv)
    for node in tree.subtree:  # every group opened
        assert node.dataset is not None
    assert check_every_dataset(open_store(store, mask_and_scale=False), paths) == \
        count_datasets(paths)
