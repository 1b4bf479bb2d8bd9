"""A 1000-granule store (tests/support/bigstore.py: three real scans under 1000 names) opens,
holds every granule in time order, and reads each granule's own values; its time series over
the 1000 granules is one wave of chunk reads. (How fast: benchmarks/, not here.)"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from gcov_index import info, open_store, subset
from gcov_index.errors import BadInputError
from gcov_index.read.subset import Box
from tests.support.bigstore import acquisition, base_spec, make_big_store
from tests.support.services import LocalArchive

N = 1000
GRID = "science/LSAR/GCOV/grids/frequencyA"
ROWS, COLS = slice(300, 340), slice(300, 340)  # inside one 512 x 512 chunk


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    store = make_big_store(root, n=N, fmt="parquet", k=3)
    with LocalArchive(root / "archive", s3_backend="files") as a:
        yield {"store": store, "archive": a, "root": root}


def test_a_1000_granule_store_holds_every_granule_in_time_order(big):
    tree = open_store(big["store"], group=GRID, access=big["archive"].access())
    hh = tree["HHHH"]
    assert hh.shape[0] == N and hh.dims[0] == "time"
    times = tree["time"].values
    assert (np.diff(times) > np.timedelta64(0)).all()
    base = base_spec()
    want = [acquisition(base, i).filename.removesuffix(".h5") for i in range(N)]
    assert list(tree["granuleId"].values.astype(str)) == want
    st = info(big["store"])
    assert len(st.granules) == N and st.n_chunk_refs > N


def test_each_granule_reads_its_own_values_and_the_series_is_one_wave(big):
    a = big["archive"]
    access = a.access()
    whole = open_store(big["store"], access=access)  # the whole tree opens too
    assert "identification" in whole["science/LSAR"].children
    hh = whole[GRID]["HHHH"]
    real = big["root"] / "archive" / "_real"
    expected = {}
    for j in range(3):
        with h5py.File(real / base_spec().repeat(j).filename) as f:
            expected[j] = f[f"{GRID}/HHHH"][ROWS, COLS]
    for i in (0, 1, 2, 500, 998, 999):
        np.testing.assert_array_equal(hh.isel(time=i, yCoordinates=ROWS,
                                              xCoordinates=COLS).values, expected[i % 3])

    x, y = hh["xCoordinates"].values, hh["yCoordinates"].values
    box = Box.parse((x[COLS][0], y[ROWS][-1], x[COLS][-1], y[ROWS][0]),
                    crs=f"EPSG:{base_spec().epsg}")
    a.s3.stats.reset()
    rows = subset(big["store"], box, access=access, concurrency=N)
    assert rows.sizes["time"] == N
    means = {j: np.nanmean(expected[j]) for j in range(3)}
    np.testing.assert_allclose(rows["frequencyA_HHHH"].values,
                               [means[i % 3] for i in range(N)], rtol=1e-5)
    assert a.s3.stats.requests["GET"] == N  # one chunk per granule, nothing else


def test_a_bad_concurrency_is_one_line(big, monkeypatch):
    with pytest.raises(BadInputError, match="at least 1"):
        subset(big["store"], (0, 0, 1, 1), concurrency=0)
    monkeypatch.setenv("GCOV_INDEX_READ_CONCURRENCY", "many")
    with pytest.raises(BadInputError, match="GCOV_INDEX_READ_CONCURRENCY='many'"):
        subset(big["store"], (0, 0, 1, 1))


def test_build_says_when_a_json_store_is_too_big_for_json():
    from types import SimpleNamespace

    from gcov_index.store.build import JSON_NOTE_REFS, _notes

    big_tree = SimpleNamespace(n_refs=JSON_NOTE_REFS + 1)
    (note,) = _notes("team/stack.json", big_tree)
    assert "team/stack.parquet" in note and str(JSON_NOTE_REFS + 1) in note
    assert _notes("team/stack.parquet", big_tree) == []
    assert _notes("team/stack.json", SimpleNamespace(n_refs=JSON_NOTE_REFS)) == []
