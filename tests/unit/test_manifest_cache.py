"""GranuleManifest's JSON form, json_value, and the on-disk ManifestCache (no HDF5 file)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gcov_index.index.cache import ManifestCache, checksum, default_cache_dir
from gcov_index.index.manifest import MANIFEST_VERSION, ArrayManifest, GranuleManifest, json_value
from gcov_index.io.fingerprint import Fingerprint
from tests.unit.manifests import GRID, IDENT, ORBIT, arr, layer, manifest


def rich_manifest() -> GranuleManifest:
    """A manifest with every kind of array the cache must keep."""
    m = manifest(0)
    compound = arr(f"{GRID}/complexFill", np.array([1 + 2j, np.nan + 0j], dtype="<c8"),
                   fill_value=["NaN", "NaN"])
    for a in (compound,
              arr(f"{ORBIT}/velocity", np.array([[1.5, np.nan, -np.inf]])),
              arr(f"{IDENT}/boundingPolygon", np.array(b"POLYGON ((0 0, 1 1))")),
              arr(f"{IDENT}/diagnosticModeFlag", np.array([0, 1, 2], dtype="<i8")),
              layer(0, inline=("0.0", "2.1"), path=f"{GRID}/HVHV")):
        m.arrays[a.path] = a
    return m


def assert_same_manifest(a: GranuleManifest, b: GranuleManifest) -> None:
    assert a.granule == b.granule and a.granule.url == b.granule.url == a.url
    assert (a.url, a.fingerprint, a.start_time) == (b.url, b.fingerprint, b.start_time)
    assert isinstance(b.fingerprint, Fingerprint)
    assert b.start_time.dtype == np.dtype("datetime64[ns]")
    assert (a.root_attrs, a.groups) == (b.root_attrs, b.groups)
    assert list(a.arrays) == list(b.arrays)
    for path, x in a.arrays.items():
        y = b.arrays[path]
        for f in dataclasses.fields(ArrayManifest):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if f.name == "data" and u is not None:
                assert v.dtype == u.dtype and v.shape == u.shape, path
                assert np.array_equal(u, v, equal_nan=u.dtype.kind in "fc"), path
            else:
                assert u == v and type(u) is type(v), (path, f.name, u, v)


# -- to_json / from_json ---------------------------------------------------------------------
def test_round_trip_through_json_text_keeps_every_field():
    m = rich_manifest()
    back = GranuleManifest.from_json(json.loads(json.dumps(m.to_json())))
    assert_same_manifest(m, back)


def test_round_trip_keeps_refs_as_tuples_and_inline_as_bytes():
    m = rich_manifest()
    back = GranuleManifest.from_json(json.loads(json.dumps(m.to_json())))
    hv = back.arrays[f"{GRID}/HVHV"]
    assert hv.refs == m.arrays[f"{GRID}/HVHV"].refs and len(hv.refs) == 4
    assert all(isinstance(v, tuple) for v in hv.refs.values())
    assert hv.inline == {"0.0": b"inline 0 0.0", "2.1": b"inline 0 2.1"}
    assert (hv.chunks, hv.dims) == ((2, 2), ("yCoordinates", "xCoordinates"))
    assert back.arrays[f"{ORBIT}/position"].dims == ("time", None)


def test_json_form_names_the_granule_and_its_source():
    d = rich_manifest().to_json()
    assert d["version"] == MANIFEST_VERSION
    assert d["granule"] == manifest(0).granule.filename
    assert d["fingerprint"] == {"size": 10_000, "etag": "etag-0", "mtime": "2025-12-01T00:00:00"}
    assert d["start_time"] == "2025-11-22T02:46:18.000000000"


@pytest.mark.parametrize("version", [None, 0, MANIFEST_VERSION + 1, "1"])
def test_a_wrong_version_is_refused(version):
    d = manifest(0).to_json()
    d["version"] = version
    with pytest.raises(ValueError, match="manifest version"):
        GranuleManifest.from_json(d)


# -- json_value ------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    (b"abc", "abc"),
    (b"\xff", "\ufffd"),
    (np.float32(1.5), 1.5),
    (np.int64(7), 7),
    (np.uint16(3), 3),
    (np.bool_(True), True),
    (float("nan"), "NaN"),
    (float("inf"), "Infinity"),
    (float("-inf"), "-Infinity"),
    (np.float64("nan"), "NaN"),
    (1 + 2j, [1.0, 2.0]),
    (np.complex64(complex(3, float("nan"))), [3.0, "NaN"]),
    (np.array(5), 5),
    (np.array(b"abc"), "abc"),
    (np.array([2.5]), 2.5),
    (np.array([b"x"]), ["x"]),
    (np.array([1, 2]), [1, 2]),
    (np.array([b"a", b"bc"]), ["a", "bc"]),
    (np.array([1.0, np.inf]), [1.0, "Infinity"]),
    (np.array([], dtype="<f4"), []),
    ("text", "text"),
    (None, None),
])
def test_json_value(value, expected):
    got = json_value(value)
    assert got == expected and type(got) is type(expected)
    json.dumps(got, allow_nan=False)


@pytest.mark.parametrize("field", ["<f4", "<f8"])
def test_json_value_of_compound_complex(field):
    dtype = np.dtype([("r", field), ("i", field)])
    assert json_value(np.array([(1, 2), (3, 4)], dtype=dtype)) == [[1.0, 2.0], [3.0, 4.0]]
    assert json_value(np.array((5, float("nan")), dtype=dtype)) == [5.0, "NaN"]
    assert json_value(np.array([(1, 2)], dtype=dtype)[0]) == [1.0, 2.0]  # a np.void


def test_json_value_of_a_1d_complex_array_is_plain_json():
    out = json_value(np.array([1 + 1j, complex(np.nan, 0)], dtype="<c16"))
    assert out == [[1.0, 1.0], ["NaN", 0.0]]
    assert json.loads(json.dumps(out, allow_nan=False)) == out


# -- ManifestCache ---------------------------------------------------------------------------
def test_put_then_get_returns_an_equal_manifest(tmp_path):
    cache, m = ManifestCache(tmp_path / "c"), rich_manifest()
    cache.put(m)
    got = cache.get(m.url, m.fingerprint)
    assert got is not None
    assert_same_manifest(m, got)
    assert [p.name for p in (tmp_path / "c").iterdir()] == [cache.path(m.url, m.fingerprint).name]


@pytest.mark.parametrize("change", [{"size": 10_001}, {"etag": "etag-9"}, {"etag": None},
                                    {"mtime": "2025-12-02T00:00:00"}])
def test_a_changed_fingerprint_misses(tmp_path, change):
    cache, m = ManifestCache(tmp_path), manifest(0)
    cache.put(m)
    assert cache.get(m.url, dataclasses.replace(m.fingerprint, **change)) is None
    assert cache.get(m.url, m.fingerprint) is not None


def test_another_url_misses(tmp_path):
    cache, m = ManifestCache(tmp_path), manifest(0)
    cache.put(m)
    assert cache.get(m.url.replace("/x/", "/y/"), m.fingerprint) is None


def test_a_missing_directory_is_a_miss(tmp_path):
    m = manifest(0)
    assert ManifestCache(tmp_path / "absent").get(m.url, m.fingerprint) is None


def test_no_directory_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache, m = ManifestCache(None), manifest(0)
    cache.put(m)
    assert cache.get(m.url, m.fingerprint) is None
    assert list(tmp_path.iterdir()) == []


# mtime=0: the same bytes in every process (pytest-xdist workers must collect the same ids)
@pytest.mark.parametrize("content", [b"garbage", gzip.compress(b"{not json", mtime=0),
                                     gzip.compress(b'{"version": 1}', mtime=0),
                                     gzip.compress(b'{"version": 99, "arrays": []}', mtime=0)],
                         ids=["garbage", "gzip-not-json", "old-version", "future-version"])
def test_a_damaged_entry_is_a_miss_and_is_deleted(tmp_path, content):
    cache, m = ManifestCache(tmp_path), manifest(0)
    path = cache.path(m.url, m.fingerprint)
    path.write_bytes(content)
    assert cache.get(m.url, m.fingerprint) is None
    assert not path.exists()


def test_put_leaves_no_temporary_file(tmp_path):
    cache = ManifestCache(tmp_path)
    for t in range(2):
        cache.put(manifest(t))
    assert sorted(p.suffixes for p in tmp_path.iterdir()) == [[".json", ".gz"]] * 2


def test_cache_entries_hold_the_url_and_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHDATA_TOKEN", "tok-SECRET-123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-SECRET-456")
    cache, m = ManifestCache(tmp_path), rich_manifest()
    cache.put(m)
    (path,) = tmp_path.iterdir()
    text = gzip.decompress(path.read_bytes()).decode()
    assert "SECRET" not in text
    d = json.loads(text)
    assert set(d) == {"version", "url", "granule", "fingerprint", "start_time", "root_attrs",
                      "groups", "arrays", "sha256"}
    assert d["url"] == m.url and "?" not in d["url"]
    assert set(d["fingerprint"]) == {"size", "etag", "mtime"}
    lowered = text.lower()
    for word in ("token", "password", "secret", "authorization", "bearer", "credential"):
        assert word not in lowered, word


# -- default_cache_dir -----------------------------------------------------------------------
def test_default_cache_dir_honours_gcov_index_cache_first(monkeypatch, tmp_path):
    monkeypatch.setenv("GCOV_INDEX_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "mine"


def test_default_cache_dir_then_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GCOV_INDEX_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "gcov-index"


def test_default_cache_dir_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("GCOV_INDEX_CACHE", "")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == Path(tmp_path) / ".cache" / "gcov-index"


def test_json_value_makes_nested_arrays_plain():
    assert json_value(np.array([[1.0, np.nan]])) == [[1.0, "NaN"]]
    assert json_value(np.array([[1 + 1j], [2 + 0j]])) == [[[1.0, 1.0]], [[2.0, 0.0]]]
    json.dumps(json_value(np.array([[1 + 1j]])), allow_nan=False)


def test_from_json_leaves_its_input_as_it_was():
    d = rich_manifest().to_json()
    before = json.dumps(d, sort_keys=True)
    GranuleManifest.from_json(d)
    GranuleManifest.from_json(d)  # twice: nothing was popped
    assert json.dumps(d, sort_keys=True) == before


# -- a bad entry is rescanned, never trusted ---------------------------------------------------
def _rewrite(path: Path, change) -> None:
    d = json.loads(gzip.decompress(path.read_bytes()))
    change(d)
    path.write_bytes(gzip.compress(json.dumps(d).encode()))


def test_an_entry_carries_a_checksum_of_its_contents(tmp_path):
    cache, m = ManifestCache(tmp_path), manifest(0)
    cache.put(m)
    d = json.loads(gzip.decompress(cache.path(m.url, m.fingerprint).read_bytes()))
    assert d["sha256"] == checksum(d) and len(d["sha256"]) == 64
    assert d["url"] == m.url and d["fingerprint"] == m.fingerprint.to_dict()


def _point_at_another_chunk(d):  # HHHH chunk 0.1 pointing where 1.0 is: well-formed, wrong
    (a,) = [a for a in d["arrays"] if a["path"].endswith("/HHHH")]
    a["refs"]["0.1"] = a["refs"]["1.0"]


@pytest.mark.parametrize("change", [
    _point_at_another_chunk,
    lambda d: d.__setitem__("sha256", "0" * 64),
    lambda d: d.pop("sha256"),
    lambda d: d.__setitem__("start_time", "2030-01-01T00:00:00"),
])
def test_an_altered_entry_is_a_miss_and_is_deleted(tmp_path, change):
    cache, m = ManifestCache(tmp_path), manifest(0)
    cache.put(m)
    path = cache.path(m.url, m.fingerprint)
    _rewrite(path, change)
    assert cache.get(m.url, m.fingerprint) is None
    assert not path.exists()


def test_an_entry_of_another_source_is_a_miss(tmp_path):
    """An entry copied under another granule's key: its checksum holds, its URL and
    fingerprint do not."""
    cache, a, b = ManifestCache(tmp_path), manifest(0), manifest(1)
    cache.put(a)
    shutil.copy(cache.path(a.url, a.fingerprint), cache.path(b.url, b.fingerprint))
    assert cache.get(b.url, b.fingerprint) is None
    assert cache.get(a.url, a.fingerprint) is not None


def test_a_folder_where_an_entry_goes_is_a_miss_and_is_replaced(tmp_path):
    cache, m = ManifestCache(tmp_path), manifest(0)
    path = cache.path(m.url, m.fingerprint)
    (path / "inside").mkdir(parents=True)
    assert cache.get(m.url, m.fingerprint) is None
    assert not path.exists()
    path.mkdir()
    cache.put(m)
    assert path.is_file() and cache.get(m.url, m.fingerprint) is not None


def test_a_cache_that_cannot_be_written_only_means_scanning_again(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache, m = ManifestCache(blocker), manifest(0)
    cache.put(m)  # no error
    assert cache.get(m.url, m.fingerprint) is None
    assert blocker.read_text() == "not a folder"
