"""The synthetic granules have the real product's properties (shared/gcov-product.md) and follow
the product specification tables derived in tests/support/specs/."""

from __future__ import annotations

import time
from dataclasses import replace

import h5py
import numpy as np
import pytest

from gcov_index.granule import Granule
from tests.support.granules import (
    NEWEST_SPEC,
    PAGE,
    POLS,
    SHAPE_FIXES,
    SPEC_VERSIONS,
    GranuleSpec,
    full_size,
    mode_shape,
    product_time,
    spec_table,
    write_granule,
)

GRID = "science/LSAR/GCOV/grids/frequencyA"
SMALL = (300, 260)

# Datasets written that are not in the specification's <nodes>: none. (The committed datatype
# /complex64 is a type, not a dataset; trap 3's parent-group scales are an option, off by
# default, checked in test_parent_group_scales_on_request.)
NOT_IN_SPEC: set[str] = set()

# what each generated granule is, beside its spec version (module fixture below)
CASES = {
    "dhdh-1.4.0": GranuleSpec(shape=SMALL, spec_version="1.4.0"),
    "dhdh-newest": GranuleSpec(shape=SMALL, seed=1, counter=2),
    "qpdh-finer-provisional": GranuleSpec(shape=SMALL, polarizations="QPDH", mode="4005",
                                          crid="P05023", exception_mask="finer", seed=2),
    "shna-partial-newer-test": GranuleSpec(shape=SMALL, polarizations="SHNA", mode="4020",
                                           coverage="P", spec_version="9.0.0", crid="T00406"),
    "dvdv-nomask-1.4.0": GranuleSpec(shape=SMALL, polarizations="DVDV", spec_version="1.4.0",
                                     exception_mask=None, seed=3),
    "dhdh-nomask-newest": GranuleSpec(shape=SMALL, exception_mask=None, seed=4, counter=3),
    "gslc-look": GranuleSpec(shape=SMALL, product_type="GSLC", seed=5),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("generator")
    out = {k: (spec, write_granule(d, spec)) for k, spec in CASES.items()}
    assert len({p for _, p in out.values()}) == len(CASES)  # one file each
    return out


def _datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
    out: dict[str, h5py.Dataset] = {}
    f.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out


# ---------------------------------------------------------------------------------------
# file level and encoding


def test_file_level(stack):
    with h5py.File(stack["paths"][0]) as f:
        fcpl = f.id.get_create_plist()
        strategy, _persist, _threshold = fcpl.get_file_space_strategy()
        assert strategy == h5py.h5f.FSPACE_STRATEGY_PAGE
        assert fcpl.get_file_space_page_size() == PAGE
        assert f.libver[0] == "earliest"  # h5py default libver: v1 B-tree chunk index
        assert f.attrs["title"] == b"NISAR L2 GCOV Product"
        assert f.attrs["Conventions"] == b"CF-1.7"
        assert isinstance(f["complex64"], h5py.Datatype)
        ident = f["science/LSAR/identification"]
        assert len(ident) >= 30
        assert ident["granuleId"][()].decode() == stack["paths"][0].stem
        assert ident["granuleId"].dtype.kind == "S"
        assert len(ident["zeroDopplerStartTime"][()]) == 29
        assert len(ident["processingDateTime"][()]) == 19
        assert ident["diagnosticModeFlag"].dtype == np.uint8
        assert ident["productSpecificationVersion"][()].decode() == NEWEST_SPEC
        for name in ("plannedDatatakeId", "plannedObservationId", "listOfObservationModes"):
            assert ident[name].dtype.kind == "S" and ident[name].ndim == 1


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
        assert hh.attrs["_FillValue"].dtype == np.float32 and hh.attrs["units"] == "1"
        assert g["mask"].compression_opts == 9 and not g["mask"].shuffle
        assert g["mask"].attrs["_FillValue"] == 255
        assert g["projection"][()] == 32611
        assert g["projection"].attrs["spatial_ref"].startswith(b"PROJCS")
        assert h5py.h5ds.is_scale(g["xCoordinates"].id)
        assert np.all(np.diff(g["yCoordinates"][:]) < 0)
        masks = []
        g["numberOfLooks"].id.chunk_iter(masks.append)
        assert any(c.filter_mask for c in masks) and any(not c.filter_mask for c in masks)
        cube = f["science/LSAR/GCOV/metadata/radarGrid/slantRange"]
        assert cube.chunks[0] == 1 and cube.ndim == 3 and len(cube.dims[0]) == 1
        lut = f["science/LSAR/GCOV/metadata/calibrationInformation/crosstalk/txHorizontalCrosspol"]
        assert lut.chunks == lut.shape and lut.compression_opts == 9  # one chunk, deflate 9
        assert lut.dims[1][0].name.endswith("crosstalk/xCoordinates")  # its own scales


def test_traps_present(stack):
    with h5py.File(stack["paths"][0]) as f:
        ct = f["science/LSAR/GCOV/metadata/calibrationInformation/crosstalk/txHorizontalCrosspol"]
        assert ct.id.get_type().get_class() == h5py.h5t.COMPOUND  # {r, i}: complex in HDF5
        assert ct.id.get_type().committed()  # the /complex64 named type
        fill = ct.attrs.get_id("_FillValue")
        assert fill.get_type().get_class() == h5py.h5t.COMPOUND
        assert np.isnan(ct.attrs["_FillValue"].real) and np.isnan(ct.attrs["_FillValue"].imag)
        att = f["science/LSAR/GCOV/metadata/attitude"]
        assert att["quaternions"].shape[1] != att["eulerAngles"].shape[1]
        assert len(att["quaternions"].dims[0]) == 0  # no dimension scale: phony dims
        assert len(f["science/LSAR/GCOV/metadata/orbit/position"].dims[0]) == 0  # the spec's
        # a string attribute of variable length beside fixed-length ones (trap 4)
        x = f[GRID + "/xCoordinates"]
        assert h5py.check_string_dtype(x.attrs.get_id("standard_name").dtype).length is None
        proj = f[GRID + "/projection"]
        assert h5py.check_string_dtype(proj.attrs.get_id("spatial_ref").dtype).length


def test_parent_group_scales_on_request(tmp_path):
    """Trap 3 (older products) as an option: NESZ LUTs use their parent group's scales."""
    p = write_granule(tmp_path, GranuleSpec(shape=(100, 90), parent_scales=True))
    with h5py.File(p) as f:
        nesz = f["science/LSAR/GCOV/metadata/calibrationInformation/frequencyA/"
                 "noiseEquivalentBackscatter/HH"]
        assert nesz.dims[1][0].name.endswith("calibrationInformation/frequencyA/xCoordinates")


# ---------------------------------------------------------------------------------------
# the specification


def _kind_ok(ds: h5py.Dataset, d: dict) -> bool:
    kind, width = d["kind"], d.get("width")
    t = ds.id.get_type()
    if kind == "complex":
        return t.get_class() == h5py.h5t.COMPOUND and ds.dtype == np.dtype(f"c{width // 4}")
    if kind == "string":
        return ds.dtype.kind == "S" and (not d.get("length") or ds.dtype.itemsize == d["length"])
    if kind == "real":
        return ds.dtype == np.dtype(f"<f{width // 8}")
    return ds.dtype == np.dtype(f"{'<i' if d.get('signed') else '<u'}{width // 8}")


def _omission_reason(spec: GranuleSpec, path: str) -> str:
    """Why the mode leaves a spec dataset out (every omission must have one)."""
    parts = path.split("/")
    name = parts[-1]
    if "frequencyB" in parts and "B" not in spec.frequencies:
        return "no frequencyB"
    if name in ("inputDataExceptionMask", "hasInputDataException"):
        return "no exception mask"
    freq = next(p[-1] for p in parts if p in ("frequencyA", "frequencyB"))
    if "grids" in parts:
        assert name not in spec.terms(freq)
        return "covariance term of another mode"
    pol = next(p for p in parts[parts.index(f"frequency{freq}") + 1:] if p in POLS)
    assert pol not in spec.pols(freq)
    return "polarization of another mode"


@pytest.mark.parametrize("case", list(CASES))
def test_every_spec_dataset_as_specified(written, case):
    spec, path = written[case]
    table = spec_table(spec.spec_version)
    root = f"science/LSAR/{spec.product_type}/"
    with h5py.File(path) as f:
        got = _datasets(f)
        expected = {p.replace("science/LSAR/GCOV/", root): p for p in spec.spec_datasets()
                    if not spec.omitted(p)}
        assert set(got) - set(expected) == NOT_IN_SPEC, "datasets the spec lacks"
        assert set(expected) - set(got) == set(), "spec datasets missing"
        for p in spec.spec_datasets():
            if spec.omitted(p):
                assert _omission_reason(spec, p)
        for written_path, spec_path in expected.items():
            ds, d = got[written_path], spec.spec_datasets()[spec_path]
            assert _kind_ok(ds, d), (written_path, ds.dtype, d)
            shape = spec.spec_shape(spec_path)
            if not (spec_path.endswith("inputDataExceptionMask") and spec.mask_kind == "finer"):
                assert ds.shape == shape, (written_path, ds.shape, shape)
            attrs = set(ds.attrs)
            assert set(d.get("attrs", {})) | set(d.get("names", ())) <= attrs, written_path
            for k, v in d.get("attrs", {}).items():
                if k == "units" and "YYYY" not in v:
                    assert ds.attrs[k] == v, (written_path, k)
                elif k == "units":
                    assert ds.attrs[k].decode().startswith("seconds since 20")
                elif k == "_FillValue":
                    fill = ds.attrs[k]
                    assert (np.isnan(fill) if "nan" in v else fill == int(v)), written_path
                    if ds.dtype.kind in "fiu":
                        assert fill.dtype == ds.dtype, written_path
            if d.get("dims"):
                assert all(len(ds.dims[i]) == 1 for i in range(ds.ndim)), written_path
            else:
                assert "DIMENSION_LIST" not in attrs, written_path
            assert bool(d.get("scale")) == h5py.h5ds.is_scale(ds.id), written_path
        assert set(f.attrs) >= set(table["root_attrs"])


def test_spec_errors_the_generator_mends():
    """The XMLs give radarGrid/yCoordinates the cubes' width; a scale of the y axis has their
    length, which is what is written (SHAPE_FIXES)."""
    for v in SPEC_VERSIONS:
        d = spec_table(v)["datasets"]
        assert d["science/LSAR/GCOV/metadata/radarGrid/yCoordinates"]["shape"] == "radarCubeWidth"
    assert SHAPE_FIXES == {"GCOV/metadata/radarGrid/yCoordinates": "radarCubeLength"}


def test_the_derived_tables():
    t14, t16 = spec_table("1.4.0")["datasets"], spec_table("1.6.0")["datasets"]
    assert (len(t14), len(t16)) == (347, 350)
    assert set(t16) - set(t14) == {
        "science/LSAR/GCOV/grids/frequencyA/inputDataExceptionMask",
        "science/LSAR/GCOV/grids/frequencyB/inputDataExceptionMask",
        "science/LSAR/identification/hasInputDataException",
        "science/LSAR/identification/staticLayersDataAccess"}
    assert set(t14) - set(t16) == {"science/LSAR/GCOV/identification/staticLayersDataAccess"}
    assert t16["science/LSAR/identification/diagnosticModeFlag"]["width"] == 8
    assert t16[GRID + "/HHHV"]["kind"] == "complex"
    assert t16[GRID + "/numberOfLooks"]["attrs"]["units"] == "1"
    assert t16[GRID + "/inputDataExceptionMask"]["attrs"]["_FillValue"] == "65535"


# ---------------------------------------------------------------------------------------
# modes, coverage, releases


def test_modes(written):
    _, shna = written["shna-partial-newer-test"]
    _, quad = written["qpdh-finer-provisional"]
    _, dvdv = written["dvdv-nomask-1.4.0"]
    with h5py.File(shna) as f:
        assert "science/LSAR/GCOV/grids/frequencyB" not in f
        assert not [n for n in _datasets(f) if "frequencyB" in n]
        assert [x.decode() for x in f["science/LSAR/identification/listOfFrequencies"]] == ["A"]
        assert set(f[GRID]["listOfCovarianceTerms"].asstr()[()]) == {"HHHH"}
    with h5py.File(quad) as f:
        g = f[GRID]
        assert {"HHHH", "HVHV", "VVVV", "HHHV", "HHVV", "HVVV"} <= set(g)
        assert g["HHHV"].id.get_type().get_class() == h5py.h5t.COMPOUND
        assert np.isnan(g["HHHV"].attrs["_FillValue"]).all()
        b = f["science/LSAR/GCOV/grids/frequencyB"]
        assert {"HHHH", "HVHV"} <= set(b) and "HHHV" not in b
        assert "VV" in f["science/LSAR/GCOV/metadata/calibrationInformation/frequencyA"]
        assert f["science/LSAR/GCOV/metadata/processingInformation/parameters/"
                 "isFullCovariance"][()] == b"True"
    with h5py.File(dvdv) as f:
        assert {"VVVV", "VHVH"} <= set(f[GRID]) and "HHHH" not in f[GRID]
        assert "inputDataExceptionMask" not in f[GRID]


def test_partial_frame_grid_differs(written, tmp_path):
    spec, partial = written["shna-partial-newer-test"]
    full = write_granule(tmp_path, replace(spec, coverage="F"))
    with h5py.File(partial) as p, h5py.File(full) as f:
        yp, yf = p[GRID + "/yCoordinates"][:], f[GRID + "/yCoordinates"][:]
        assert yp[0] < yf[0] and yp[-1] < yf[-1]  # another extent, further south
        xf = f[GRID + "/xCoordinates"][:]
        np.testing.assert_array_equal(p[GRID + "/xCoordinates"][:], xf)
        assert p["science/LSAR/identification/isFullFrame"][()] == b"False"
        assert f["science/LSAR/identification/isFullFrame"][()] == b"True"
        cover = p["science/LSAR/identification/isFullFrame"].attrs["frameCoveragePercentage"]
        assert 0 < cover < 75
    smaller = write_granule(tmp_path, replace(spec, partial=(0, 100, 200, 160), counter=2))
    with h5py.File(smaller) as s:
        assert s[GRID + "/HHHH"].shape == (200, 160)
        assert s[GRID + "/xCoordinates"][0] == xf[100]
    # an explicit grid is the granule's grid (what tests/test_stacks.py relies on)
    assert replace(spec, shape=(400, 600)).grid_shape() == (400, 600)


def test_exception_masks(written):
    _, finer = written["qpdh-finer-provisional"]
    _, same = written["dhdh-newest"]
    _, none = written["dhdh-nomask-newest"]
    with h5py.File(finer) as f:
        m = f[GRID + "/inputDataExceptionMask"]
        ny, nx = f[GRID + "/HHHH"].shape
        assert m.shape == (2 * ny, 2 * nx) and m.dtype == np.uint16
        # the group's scales attached anyway, of another length (what made xarray fail)
        assert [len(m.dims[i][0]) for i in range(2)] == [ny, nx]
        assert f["science/LSAR/identification/hasInputDataException"].dtype == np.uint8
    with h5py.File(same) as f:
        m = f[GRID + "/inputDataExceptionMask"]
        assert m.shape == f[GRID + "/HHHH"].shape and m.attrs["_FillValue"] == 65535
        assert f["science/LSAR/identification/hasInputDataException"][()] == 2
    with h5py.File(none) as f:
        assert "inputDataExceptionMask" not in f[GRID]
        assert "hasInputDataException" not in f["science/LSAR/identification"]


@pytest.mark.parametrize("case", ["dhdh-1.4.0", "qpdh-finer-provisional",
                                  "shna-partial-newer-test"])
def test_identification_matches_the_name(written, case):
    spec, path = written[case]
    g = Granule.parse(path.name)
    maturity = {"X": "BETA", "P": "PROVISIONAL", "T": "TEST"}[spec.crid[0]]
    with h5py.File(path) as f:
        ident = f["science/LSAR/identification"]

        def text(n):
            return ident[n][()].decode()

        assert text("granuleId") == path.stem
        assert text("compositeReleaseId") == g.crid == spec.crid
        assert ident["trackNumber"][()] == g.track and ident["frameNumber"][()] == g.frame
        assert text("orbitPassDirection")[0] == g.direction
        assert text("zeroDopplerStartTime") == product_time(spec.start)
        assert text("zeroDopplerStartTime")[:19] == g.start.strftime("%Y-%m-%dT%H:%M:%S")
        assert text("isFullFrame") == str(g.coverage == "F")
        assert text("productSpecificationVersion") == spec.spec_version
        assert text("productDoi").endswith(f"NISAR_L2_GCOV_{maturity}_V1")
        assert [x.decode() for x in ident["listOfFrequencies"]] == list(g.frequencies)
        assert ident["boundingPolygon"].attrs["epsg"] == 4326
        assert text("boundingPolygon").startswith("POLYGON ((-118.")  # lon/lat, zone 11N


def test_newer_spec_version_writes_the_newest_tree(written):
    spec, path = written["shna-partial-newer-test"]
    assert spec.spec_version == "9.0.0"
    with h5py.File(path) as f:
        assert f["science/LSAR/identification/productSpecificationVersion"][()] == b"9.0.0"
        assert "hasInputDataException" in f["science/LSAR/identification"]  # 1.6.0's tree


def test_another_product_look(written):
    _, path = written["gslc-look"]
    assert "_GSLC_" in path.name
    with h5py.File(path) as f:
        assert f["science/LSAR/identification/productType"][()] == b"GSLC"
        assert "science/LSAR/GCOV" not in f and "science/LSAR/GSLC/grids/frequencyA/HHHH" in f
        assert f.attrs["title"] == b"NISAR L2 GSLC Product"


# ---------------------------------------------------------------------------------------
# full size


def test_full_size_4005_thin_is_fast(tmp_path):
    assert full_size().shape == mode_shape("2005") == (16704, 17064)  # the seed's (benchmarks)
    t = time.perf_counter()
    p = write_granule(tmp_path, full_size(mode="4005"))
    took = time.perf_counter() - t
    size = p.stat().st_size
    with h5py.File(p) as f:
        hh = f[GRID + "/HHHH"]
        assert hh.shape == (34776, 35280) and hh.id.get_num_chunks() == 68 * 69
        assert f[GRID + "/inputDataExceptionMask"].id.get_num_chunks() == 68 * 69
        assert f["science/LSAR/GCOV/grids/frequencyB/HHHH"].shape == (4347, 4410)  # 80 m
        cal = f["science/LSAR/GCOV/metadata/calibrationInformation/crosstalk/txHorizontalCrosspol"]
        assert 340 <= cal.shape[0] <= 360 and 340 <= cal.shape[1] <= 360  # ~354 x 357
        assert f["science/LSAR/GCOV/metadata/radarGrid/slantRange"].shape[0] == 21
    print(f"\n4005 full-size thin granule: {took:.1f} s, {size / 1e6:.0f} MB")
    assert took < 120, took  # seconds, not minutes (generous: this is not a benchmark)
