"""The synthetic granules have the real product's properties (shared/gcov-product.md)."""

import h5py
import numpy as np

from tests.support.granules import PAGE, GranuleSpec, write_granule

GRID = "science/LSAR/GCOV/grids/frequencyA"


def test_file_level(stack):
    with h5py.File(stack["paths"][0]) as f:
        fcpl = f.id.get_create_plist()
        strategy, _persist, _threshold = fcpl.get_file_space_strategy()
        assert strategy == h5py.h5f.FSPACE_STRATEGY_PAGE
        assert fcpl.get_file_space_page_size() == PAGE
        assert f.libver[0] == "earliest"  # h5py default libver: v1 B-tree chunk index
        assert f.attrs["title"] == b"NISAR L2 GCOV Product"
        assert isinstance(f["complex64"], h5py.Datatype)
        ident = f["science/LSAR/identification"]
        assert len(ident) >= 30
        assert ident["granuleId"][()].decode() == stack["paths"][0].stem
        assert ident["granuleId"].dtype.kind == "S"
        assert len(ident["zeroDopplerStartTime"][()]) == 29


def test_grids_encoding(stack):
    with h5py.File(stack["paths"][0]) as f:
        g = f[GRID]
        hh = g["HHHH"]
        assert hh.chunks == (512, 512) and hh.shuffle and hh.compression == "gzip"
        assert hh.compression_opts == 1
        ny, nx = hh.shape
        assert ny % 512 and nx % 512  # partial edge chunks
        assert hh.id.get_num_chunks() == -(-ny // 512) * -(-nx // 512)  # every chunk written
        assert np.isnan(hh.attrs["_FillValue"]) and hh.attrs["grid_mapping"] == "projection"
        assert g["mask"].compression_opts == 9 and not g["mask"].shuffle
        assert g["mask"].attrs["_FillValue"] == 255
        assert g["projection"][()] == 32611
        assert g["projection"].attrs["spatial_ref"].startswith(b"PROJCS")
        assert h5py.h5ds.is_scale(g["xCoordinates"].id)
        assert np.all(np.diff(g["yCoordinates"][:]) < 0)
        masks = []
        g["numberOfLooks"].id.chunk_iter(masks.append)
        assert any(c.filter_mask for c in masks) and any(not c.filter_mask for c in masks)


def test_traps_present(stack):
    with h5py.File(stack["paths"][0]) as f:
        ct = f["science/LSAR/GCOV/metadata/calibrationInformation/crosstalk/txHorizontal"]
        fill = ct.attrs.get_id("_FillValue")
        assert fill.get_type().get_class() == h5py.h5t.COMPOUND  # {r, i}: complex in HDF5
        assert np.isnan(ct.attrs["_FillValue"].real) and np.isnan(ct.attrs["_FillValue"].imag)
        att = f["science/LSAR/GCOV/metadata/attitude"]
        assert att["quaternions"].shape[1] != att["eulerAngles"].shape[1]
        assert len(att["quaternions"].dims[0]) == 0  # no dimension scale: phony dims
        nesz = f["science/LSAR/GCOV/metadata/calibrationInformation/frequencyA/noiseEquivalentBackscatter/HH"]
        assert nesz.dims[1][0].name.endswith("calibrationInformation/frequencyA/slantRange")


def test_quad_pol_has_complex_terms(tmp_path):
    p = write_granule(tmp_path, GranuleSpec(polarizations="QPQP", mode="4005", shape=(300, 260)))
    with h5py.File(p) as f:
        g = f[GRID]
        assert {"HHHH", "HVHV", "VVVV", "HHHV", "HHVV", "HVVV"} <= set(g)
        assert g["HHHV"].id.get_type().get_class() == h5py.h5t.COMPOUND


def test_full_size_is_fast(tmp_path):
    import time

    from tests.support.granules import full_size

    t = time.perf_counter()
    p = write_granule(tmp_path, full_size(polarizations="DHDH"))
    took = time.perf_counter() - t
    with h5py.File(p) as f:
        hh = f[GRID + "/HHHH"]
        assert hh.shape == (16704, 17064) and hh.id.get_num_chunks() == 33 * 34
    assert took < 120, took  # seconds, not minutes (generous: this is not a benchmark)
