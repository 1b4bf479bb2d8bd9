"""`gcov-index validate`: sampled chunks through the store vs the source HDF5, bit for bit,
and the sources' fingerprints; fails naming the granule when a source is replaced or a
reference is corrupted."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from gcov_index import Access, build
from gcov_index.cli import main
from gcov_index.read.validate import validate
from tests.support.granules import GranuleSpec, write_granule


@pytest.mark.parametrize("name, protocol", [("s3.json", None), ("s3.parquet", None),
                                            ("s3.json", "https"), ("https.json", None)])
def test_a_good_store_passes(stores, name, protocol):
    report = validate(stores[name], sample=6, protocol=protocol, access=stores["access"])
    assert report.ok, report.text()
    assert report.chunks_checked == 6 * 3


def test_cli_passes_on_a_good_store(stores, archive_env, capsys):
    assert main(["validate", str(stores["s3.parquet"])]) == 0
    assert "ok: the store matches its sources" in capsys.readouterr().out


@pytest.fixture
def local(tmp_path):
    """A store of three local granules, which the test may then damage."""
    paths = [write_granule(tmp_path / "g", GranuleSpec().repeat(i)) for i in range(3)]
    store = build([str(p) for p in paths], tmp_path / "s.json", access=Access(),
                  cache=False).store
    return store, paths


def failing(capsys, args) -> tuple[str, str]:
    rc = main(["validate", *args])
    out, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert rc == 6 and len(err) == 1 and err[0].startswith("gcov-index: error: "), err
    return out, err[0]


def test_fails_naming_a_replaced_source(local, capsys):
    store, paths = local
    replaced = paths[1]
    shutil.copy(write_granule(replaced.parent / "new", replace(GranuleSpec().repeat(1),
                                                                seed=42)), replaced)
    out, err = failing(capsys, [str(store)])
    assert replaced.stem in err and paths[0].stem not in err and paths[2].stem not in err
    assert f"{replaced.stem}: source changed since indexing" in out


def test_fails_naming_the_granule_of_a_corrupted_reference(local, capsys, tmp_path):
    store, paths = local
    refs = json.loads(store.read_text())
    key = "science/LSAR/GCOV/grids/frequencyA/HHHH/2.0.1"  # a chunk of the third granule
    refs["refs"][key][1] += 64  # its offset now points into the middle of another chunk
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(refs))
    out, err = failing(capsys, [str(bad), "--sample", "100000"])  # every chunk
    assert paths[2].stem in err and paths[0].stem not in err and paths[1].stem not in err
    assert f"{key}: reading through the store failed" in out or f"{key}: differs" in out


def test_a_missing_source_is_reported_as_gone(local, capsys):
    """A source the store points at and the disk says is not there: a mismatch (exit 6), said
    as "gone", apart from a source that cannot be reached now (exit 3)."""
    store, paths = local
    paths[0].unlink()
    out, err = failing(capsys, [str(store)])
    assert paths[0].stem in err and "source gone" in out


@pytest.mark.parametrize("protocol", ["s3", "https"])
def test_a_rejected_token_is_an_auth_error_not_a_bad_store(stores, archive_env, monkeypatch,
                                                           capsys, protocol):
    monkeypatch.setenv("EARTHDATA_TOKEN", "edl-expired-or-revoked")
    rc = main(["validate", str(stores["s3.json"]), "--protocol", protocol])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4 and len(err) == 1, err
    assert "refused" in err[0] or "rejected" in err[0], err[0]
