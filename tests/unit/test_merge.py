"""merge(): the stacking rules of the README ("What the store holds, and the merge rules"),
checked on tiny hand-made manifests (no HDF5 file, no h5py, no server)."""

from __future__ import annotations

import numpy as np
import pytest

from gcov_index.errors import BadInputError, GridMismatchError
from gcov_index.index.manifest import ArrayManifest
from gcov_index.index.merge import PROVENANCE, TIME_ATTRS, merge
from gcov_index.index.tree import VirtualArray
from gcov_index.product import IDENT
from tests.unit.manifests import (
    ATT,
    COMPRESSOR,
    FILTERS,
    GRID,
    ORBIT,
    PROC,
    PROV_COORDS,
    arr,
    layer,
    manifest,
    name_of,
    stack,
    values,
)


# -- time and order --------------------------------------------------------------------------
def test_granules_are_sorted_by_start_time():
    ms = [manifest(2), manifest(0), manifest(1)]
    tree = merge(ms)
    assert tree.urls == [manifest(t).url for t in range(3)]
    times = values(tree.arrays[f"{IDENT}/time"])
    expected = np.array([m.start_time for m in sorted(ms, key=lambda m: m.start_time)])
    assert np.array_equal(times, expected.astype("<i8"))
    ids = values(tree.arrays[f"{IDENT}/granuleId"])
    assert [i.decode() for i in ids] == [name_of(t).removesuffix(".h5") for t in range(3)]


def test_time_coordinate_is_ns_since_epoch_with_cf_attrs():
    time = stack()
    t = time.arrays[f"{IDENT}/time"]
    assert t.dtype == "<i8" and t.dims == ["time"] and t.shape == (3,)
    assert t.attrs == TIME_ATTRS


def test_two_granules_with_the_same_start_are_refused():
    a, b = manifest(0), manifest(0, crid="X05010")
    with pytest.raises(BadInputError, match="two granules start at") as e:
        merge([a, b])
    assert a.granule.filename in str(e.value) and b.granule.filename in str(e.value)


def test_nothing_to_merge_is_refused():
    with pytest.raises(BadInputError, match="no granules"):
        merge([])


# -- grid check ------------------------------------------------------------------------------
def test_different_epsg_is_refused_naming_both_granules():
    a, b = manifest(0), manifest(1, epsg=32612)
    with pytest.raises(GridMismatchError) as e:
        merge([b, a])
    msg = str(e.value)
    assert a.granule.filename in msg and b.granule.filename in msg
    assert "frequencyA EPSG: EPSG 32611 vs 32612" in msg


def test_different_x_coordinates_are_refused():
    a, b = manifest(0), manifest(1, x=np.arange(4, dtype="<f8") * 20 + 500020.0)
    with pytest.raises(GridMismatchError) as e:
        merge([a, b])
    msg = str(e.value)
    assert a.granule.filename in msg and b.granule.filename in msg
    assert "frequencyA x coordinates: different values" in msg


def test_different_grid_shapes_are_refused():
    a, b = manifest(0), manifest(1, y=4000000.0 - np.arange(7, dtype="<f8") * 20,
                                 hhhh=layer(1, shape=(7, 4)))
    with pytest.raises(GridMismatchError) as e:
        merge([a, b])
    msg = str(e.value)
    assert a.granule.filename in msg and b.granule.filename in msg
    assert "frequencyA y coordinates: 6 vs 7 values" in msg


def test_a_third_granule_that_differs_is_named_against_the_first():
    ms = [manifest(0), manifest(1), manifest(2, epsg=3031)]
    with pytest.raises(GridMismatchError) as e:
        merge(ms)
    assert ms[0].granule.filename in str(e.value) and ms[2].granule.filename in str(e.value)
    assert ms[1].granule.filename not in str(e.value)


@pytest.mark.parametrize("change", [{"chunks": (3, 2)}, {"shape": (6, 6)}])
def test_a_layer_whose_layout_differs_is_refused(change):
    a, b = manifest(0), manifest(1, hhhh=layer(1, **change))
    with pytest.raises(GridMismatchError, match="HHHH: shape, chunks or encoding differ"):
        merge([a, b])


def test_a_layer_whose_codec_differs_is_refused():
    other = layer(1)
    other.compressor = {"id": "zlib", "level": 9}
    with pytest.raises(GridMismatchError, match="encoding differ"):
        merge([manifest(0), manifest(1, hhhh=other)])


# -- stored once, or stacked along time ------------------------------------------------------
def test_scales_and_grid_constants_are_stored_once():
    tree = stack()
    for name, shape, dims in [("xCoordinates", (4,), ["xCoordinates"]),
                              ("yCoordinates", (6,), ["yCoordinates"]),
                              ("projection", (), []), ("xCoordinateSpacing", (), []),
                              ("yCoordinateSpacing", (), [])]:
        a = tree.arrays[f"{GRID}/{name}"]
        assert (a.shape, a.dims) == (shape, dims), name
    assert np.array_equal(values(tree.arrays[f"{GRID}/xCoordinates"]),
                          np.arange(4) * 20 + 500000.0)
    assert int(values(tree.arrays[f"{GRID}/projection"])) == 32611
    att_time = tree.arrays[f"{ATT}/time"]
    assert (att_time.shape, att_time.dims) == ((94,), ["time"])


def test_a_grid_constant_that_varies_is_stacked():
    tree = merge([manifest(t, extra={f"{GRID}/xCoordinateSpacing": arr(
        f"{GRID}/xCoordinateSpacing", np.array(20.0 + t), ())}) for t in range(3)])
    a = tree.arrays[f"{GRID}/xCoordinateSpacing"]
    assert (a.shape, a.dims) == ((3,), ["time"])
    assert values(a).tolist() == [20.0, 21.0, 22.0]


def test_everything_else_gets_a_leading_time_dimension():
    tree = stack()
    hhhh = tree.arrays[f"{GRID}/HHHH"]
    assert hhhh.shape == (3, 6, 4) and hhhh.chunks == (1, 2, 2)
    assert hhhh.dims == ["time", "yCoordinates", "xCoordinates"]
    assert (hhhh.filters, hhhh.compressor, hhhh.fill_value) == (FILTERS, COMPRESSOR, "NaN")
    track = tree.arrays[f"{IDENT}/trackNumber"]
    assert (track.shape, track.chunks, track.dims) == ((3,), (1,), ["time"])
    assert values(track).tolist() == [172, 172, 172]
    orbit = tree.arrays[f"{IDENT}/absoluteOrbitNumber"]
    assert values(orbit).tolist() == [1000, 1001, 1002]


def test_groups_with_their_own_time_stack_along_zero_doppler_start_time():
    tree = stack()
    assert tree.arrays[f"{ORBIT}/position"].dims[0] == "zeroDopplerStartTime"
    assert tree.arrays[f"{ATT}/quaternions"].dims[0] == "zeroDopplerStartTime"
    zdst = tree.arrays[f"{ORBIT}/zeroDopplerStartTime"]
    assert zdst.dims == ["zeroDopplerStartTime"] and zdst.attrs == TIME_ATTRS
    assert np.array_equal(values(zdst), values(tree.arrays[f"{IDENT}/time"]))
    assert f"{ORBIT}/time" in tree.arrays  # the group's own time is kept, not replaced


def test_an_identical_orbit_time_scale_is_stored_once_and_names_its_dimension():
    tree = stack()  # same length, different values in each granule: stacked
    assert tree.arrays[f"{ORBIT}/time"].shape == (3, 5)
    same = merge([manifest(t, extra={f"{ORBIT}/time": arr(
        f"{ORBIT}/time", np.arange(5.0), ("time",), is_scale=True)}) for t in range(3)])
    assert same.arrays[f"{ORBIT}/time"].shape == (5,)
    assert same.arrays[f"{ORBIT}/time"].dims == ["time"]
    assert same.arrays[f"{ORBIT}/position"].dims == ["zeroDopplerStartTime", "time",
                                                     "phony_dim_0"]


def test_a_scale_that_varies_is_stacked_and_its_dimension_becomes_phony():
    tree = merge([manifest(t, n_orbit=n) for t, n in enumerate((5, 7, 6))])
    time = tree.arrays[f"{ORBIT}/time"]
    position = tree.arrays[f"{ORBIT}/position"]
    assert time.dims == ["zeroDopplerStartTime", "phony_dim_0"] and time.shape == (3, 7)
    assert position.dims == ["zeroDopplerStartTime", "phony_dim_0", "phony_dim_1"]


def test_a_virtual_array_stored_once_references_the_first_granule():
    scale = ArrayManifest(path=f"{PROC}/slantRange", shape=(8,), dtype="<f8",
                          dims=("slantRange",), attrs={}, is_scale=True, chunks=(4,),
                          refs={"0": (100, 32), "1": (132, 32)})
    tree = merge([manifest(t, extra={scale.path: scale}) for t in range(3)])
    a = tree.arrays[scale.path]
    assert a.shape == (8,) and a.dims == ["slantRange"]
    assert a.chunks_ref == {"0": (0, 100, 32), "1": (0, 132, 32)}


# -- chunk references ------------------------------------------------------------------------
def test_virtual_refs_are_keyed_by_time_step_and_point_at_their_granule():
    ms = [manifest(t) for t in range(3)]
    tree = merge(ms)
    refs = tree.arrays[f"{GRID}/HHHH"].chunks_ref
    assert len(refs) == 3 * 6
    for t, m in enumerate(ms):
        src = m.arrays[f"{GRID}/HHHH"]
        for k, (offset, length) in src.refs.items():
            assert refs[f"{t}.{k}"] == (t, offset, length)
        assert refs[f"{t}.0.0"] == f"inline {t} 0.0".encode()


def test_tree_counts_references_and_bytes():
    ms = [manifest(t) for t in range(3)]
    tree = merge(ms)
    src = [r for m in ms for a in m.arrays.values() for r in a.refs.values()]
    assert tree.n_refs == len(src) == 15
    assert tree.n_bytes_referenced == sum(n for _, n in src)


def test_a_layer_missing_from_one_granule_has_no_chunks_there():
    ms = [manifest(0), manifest(1, extra={f"{GRID}/HHHH": None}), manifest(2)]
    a = merge(ms).arrays[f"{GRID}/HHHH"]
    assert a.shape == (3, 6, 4)
    assert {k.split(".")[0] for k in a.chunks_ref} == {"0", "2"}


# -- padding ---------------------------------------------------------------------------------
def test_varying_float_lengths_are_padded_with_nan():
    tree = merge([manifest(t, n_orbit=n) for t, n in enumerate((5, 7, 6))])
    a = tree.arrays[f"{ORBIT}/position"]
    assert a.shape == (3, 7, 3) and a.chunks == (1, 7, 3)
    assert a.fill_value == "NaN"
    assert "gcov_index_padding" in a.attrs and a.attrs["units"] == "m"
    v = values(a)
    for t, n in enumerate((5, 7, 6)):
        assert (v[t, :n] == t).all() and np.isnan(v[t, n:]).all()


def test_equal_lengths_are_not_padded():
    a = stack().arrays[f"{ORBIT}/position"]
    assert a.shape == (3, 5, 3) and "gcov_index_padding" not in a.attrs
    assert a.fill_value is None


def test_varying_int_and_string_lengths_are_padded_with_zero_and_empty():
    def extra(t):
        n = (2, 4, 3)[t]
        return {f"{PROC}/counts": arr(f"{PROC}/counts", np.arange(1, n + 1, dtype="<i4")),
                f"{PROC}/inputs": arr(f"{PROC}/inputs", np.array([b"in%d" % i for i in range(n)]))}

    tree = merge([manifest(t, extra=extra(t)) for t in range(3)])
    counts, inputs = tree.arrays[f"{PROC}/counts"], tree.arrays[f"{PROC}/inputs"]
    assert values(counts).tolist() == [[1, 2, 0, 0], [1, 2, 3, 4], [1, 2, 3, 0]]
    assert values(inputs).tolist() == [[b"in0", b"in1", b"", b""],
                                       [b"in0", b"in1", b"in2", b"in3"],
                                       [b"in0", b"in1", b"in2", b""]]
    assert "gcov_index_padding" in counts.attrs and "gcov_index_padding" in inputs.attrs
    assert counts.fill_value is None


def test_padding_uses_the_fill_value_when_there_is_one():
    def mask(t):
        m = arr(f"{PROC}/mask", np.ones(2 + t, dtype="u1"), fill_value=255)
        return {m.path: m}

    a = merge([manifest(t, extra=mask(t)) for t in range(2)]).arrays[f"{PROC}/mask"]
    assert a.fill_value == 255
    assert values(a).tolist() == [[1, 1, 255], [1, 1, 1]]


def test_a_dataset_missing_from_one_granule_is_padded():
    def extra(t):
        return {} if t == 1 else {f"{PROC}/rfi": arr(f"{PROC}/rfi", np.full(3, t + 1.0))}

    a = merge([manifest(t, extra=extra(t)) for t in range(3)]).arrays[f"{PROC}/rfi"]
    assert a.shape == (3, 3) and a.fill_value == "NaN"
    v = values(a)
    assert v[0].tolist() == [1.0] * 3 and v[2].tolist() == [3.0] * 3
    assert np.isnan(v[1]).all()


# -- phony dimensions ------------------------------------------------------------------------
def test_phony_dims_are_per_group_one_per_distinct_length():
    tree = stack()
    q, e = tree.arrays[f"{ATT}/quaternions"], tree.arrays[f"{ATT}/eulerAngles"]
    # in sorted order of the group's arrays: eulerAngles [94, 3] names 94 and 3 first
    assert e.dims == ["zeroDopplerStartTime", "phony_dim_0", "phony_dim_1"]
    assert q.dims == ["zeroDopplerStartTime", "phony_dim_0", "phony_dim_2"]
    assert q.shape == (3, 94, 4) and e.shape == (3, 94, 3)


def test_phony_dim_numbering_starts_again_in_each_group():
    tree = stack()
    assert tree.arrays[f"{ORBIT}/position"].dims == ["zeroDopplerStartTime", "phony_dim_0",
                                                     "phony_dim_1"]
    assert tree.arrays[f"{IDENT}/listOfFrequencies"].dims == ["time", "phony_dim_0"]


# -- attributes ------------------------------------------------------------------------------
def test_attributes_that_differ_become_per_time_step_lists():
    tree = merge([manifest(2), manifest(0), manifest(1)])
    attrs = tree.arrays[f"{GRID}/HHHH"].attrs
    assert attrs["mean_value"] == [0.5, 1.5, 2.5]
    assert attrs["units"] == "1" and attrs["grid_mapping"] == "projection"
    assert tree.groups[GRID] == {"description": "frequency A",
                                 "processed": ["run 0", "run 1", "run 2"]}
    assert tree.groups[""] == {"Conventions": "CF-1.7", "history": ["made 0", "made 1", "made 2"]}
    assert tree.groups[ORBIT] == {}


def test_an_attribute_missing_from_one_granule_becomes_a_list_with_none():
    layers = [layer(t, attrs={"units": "1"} | ({"note": "x"} if t == 1 else {}))
              for t in range(3)]
    attrs = merge([manifest(t, hhhh=h) for t, h in enumerate(layers)]).arrays[f"{GRID}/HHHH"].attrs
    assert attrs["note"] == [None, "x", None] and attrs["units"] == "1"


# -- strings ---------------------------------------------------------------------------------
def test_s1_string_arrays_are_widened_to_s2():
    tree = stack()
    a = tree.arrays[f"{IDENT}/listOfFrequencies"]
    assert a.dtype == "|S2" and a.shape == (3, 1)
    assert values(a).tolist() == [[b"A"]] * 3
    pols = arr(f"{PROC}/polarization", np.array([b"H", b"V"]), ("polarization",),
               is_scale=True)
    once = merge([manifest(t, extra={pols.path: pols}) for t in range(2)]).arrays[pols.path]
    assert once.dtype == "|S2" and once.shape == (2,) and values(once).tolist() == [b"H", b"V"]


def test_string_arrays_get_utf8_encoding():
    tree = stack()
    assert tree.arrays[f"{IDENT}/granuleId"].attrs["_Encoding"] == "utf-8"
    assert tree.arrays[f"{IDENT}/listOfFrequencies"].attrs["_Encoding"] == "utf-8"
    assert "_Encoding" not in tree.arrays[f"{IDENT}/trackNumber"].attrs
    assert "_Encoding" not in tree.arrays[f"{GRID}/HHHH"].attrs


def test_virtual_array_sets_encoding_only_for_byte_strings_and_keeps_a_given_one():
    assert VirtualArray((2,), (2,), "|S4", ["x"], {}).attrs == {"_Encoding": "utf-8"}
    given = VirtualArray((2,), (2,), "|S4", ["x"], {"_Encoding": "ascii"})
    assert given.attrs == {"_Encoding": "ascii"}
    assert VirtualArray((2,), (2,), "<f4", ["x"], {}).attrs == {}


# -- provenance ------------------------------------------------------------------------------
def test_stacked_groups_carry_time_and_provenance_coordinates():
    tree = stack()
    for group, dim in [(GRID, "time"), (ORBIT, "zeroDopplerStartTime"),
                       (ATT, "zeroDopplerStartTime")]:
        assert tree.arrays[f"{group}/{dim}"].dims == [dim]
        for name in PROVENANCE:
            a = tree.arrays[f"{group}/{name}"]
            assert a.dims == [dim] and a.shape == (3,), (group, name)
            assert a.chunks_ref == tree.arrays[f"{IDENT}/{name}"].chunks_ref
    assert values(tree.arrays[f"{ORBIT}/absoluteOrbitNumber"]).tolist() == [1000, 1001, 1002]
    assert values(tree.arrays[f"{GRID}/granuleId"])[1].decode() == name_of(1)[:-3]


def test_identification_keeps_its_own_values_and_gets_only_time():
    tree = stack()
    assert tree.arrays[f"{IDENT}/granuleId"].attrs.get("coordinates") is None
    assert tree.arrays[f"{IDENT}/time"].dims == ["time"]
    assert tree.arrays[f"{IDENT}/zeroDopplerStartTime"].dims == ["time"]
    added = {p.rsplit("/", 1)[1] for p in tree.arrays if p.startswith(IDENT + "/")}
    assert added == {p.rsplit("/", 1)[1] for p in manifest(0).arrays
                     if p.startswith(IDENT + "/")} | {"time"}


def test_stacked_arrays_list_provenance_and_grid_mapping_in_coordinates():
    tree = stack()
    assert tree.arrays[f"{GRID}/HHHH"].attrs["coordinates"] == f"{PROV_COORDS} projection"
    assert tree.arrays[f"{ORBIT}/position"].attrs["coordinates"] == PROV_COORDS
    assert tree.arrays[f"{ATT}/quaternions"].attrs["coordinates"] == PROV_COORDS
    for name in ("time", "granuleId", "xCoordinates", "projection"):
        assert "coordinates" not in tree.arrays[f"{GRID}/{name}"].attrs, name


def test_grid_mapping_is_listed_only_when_the_group_has_it():
    h = layer(0, attrs={"grid_mapping": "nowhere"})
    tree = merge([manifest(0, hhhh=h), manifest(1, hhhh=layer(1, attrs=dict(h.attrs)))])
    assert tree.arrays[f"{GRID}/HHHH"].attrs["coordinates"] == PROV_COORDS


def test_groups_with_nothing_stacked_get_no_time_coordinates():
    scale = arr(f"{PROC}/slantRange", np.arange(3.0), ("slantRange",), is_scale=True)
    tree = merge([manifest(t, extra={scale.path: scale}) for t in range(2)])
    assert not [p for p in tree.arrays if p.startswith(PROC + "/") and p != scale.path]


def test_a_one_character_string_stacked_along_time_keeps_its_time_axis():
    """``identification/radarBand = "L"``: an ``|S1`` per granule would stack to an ``|S1``
    array, which xarray joins into one string and so loses ``time``."""
    import xarray as xr

    band = f"{IDENT}/radarBand"
    ms = [manifest(t, extra={band: arr(band, np.array(b"L"))}) for t in range(3)]
    a = merge(ms).arrays[band]
    assert a.dtype == "|S2" and a.shape == (3,)
    decoded = xr.conventions.decode_cf_variable(
        "radarBand", xr.Variable(a.dims, values(a), attrs=a.attrs))
    assert decoded.dims == (a.dims[0],) and list(decoded.values) == ["L"] * 3
