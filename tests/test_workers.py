"""Scans in worker processes, threads and on a Dask cluster give the same store, byte for
byte; what a worker is sent holds no secret, and each worker fetches its own credentials."""

from __future__ import annotations

import os
import pickle

import pytest
from distributed import Client, LocalCluster

from gcov_index.cli import main
from gcov_index.errors import NotGcovError
from gcov_index.index.workers import AccessSpec, scan_task
from gcov_index.io.access import Access
from gcov_index.io.fingerprint import fingerprint
from gcov_index.store.build import build
from tests.support.services import free_port

EPOCH = "1767225600"  # 2026-01-01: the provenance's "created", the same for every build


@pytest.fixture(autouse=True)
def _default_pool(monkeypatch):
    """The library's default here: worker processes (the suite's conftest picks threads)."""
    monkeypatch.delenv("GCOV_INDEX_POOL", raising=False)


@pytest.fixture(scope="module")
def client(archive):
    """Two worker processes, started with the archive's environment (their token source)."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in archive.env.items():
            mp.setenv(k, v)
        cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                               dashboard_address=None, host="127.0.0.1")
    with cluster, Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture
def urls(archive, stack):
    return [archive.s3_url(p.name) for p in [*stack["paths"], stack["old"], stack["qa"]]]


def _build(urls, out, **kw) -> bytes:
    build(urls, out, access=Access.from_env(), cache=False, **kw)
    return out.read_bytes()


def test_what_a_worker_is_sent_holds_no_secret(archive, archive_env, urls):
    access = Access.from_env()
    creds = access.credentials.get()
    args = pickle.dumps((urls[0], AccessSpec.of(access), fingerprint(urls[0], access)))
    for secret in (archive.token, creds.access_key_id if hasattr(creds, "access_key_id")
                   else None, *vars(creds).values()):
        if isinstance(secret, str) and len(secret) > 8:
            assert secret.encode() not in args
    assert b"EARTHDATA_TOKEN" in args  # where the worker finds it, not what it is
    with pytest.raises(TypeError):  # an Access, with its token and credentials, never pickles
        pickle.dumps(access)


def test_a_token_in_memory_only_is_never_sent(archive, archive_env, urls, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    access = archive.access()  # token given in memory: a process pool scans in threads
    assert access.token_source is None
    monkeypatch.delenv("EARTHDATA_TOKEN")  # nowhere a worker could find it
    build(urls, tmp_path / "a.json", access=access, cache=False)
    build(urls, tmp_path / "b.json", access=access, cache=False, pool="thread")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_process_thread_and_dask_builds_are_the_same_bytes(archive, archive_env, urls, client,
                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    threads = _build(urls, tmp_path / "t.json", pool="thread", workers=2)
    processes = _build(urls, tmp_path / "p.json", workers=2)
    stats = archive.earthdata.stats
    before = stats.requests["CREDENTIALS"]
    dask = _build(urls, tmp_path / "d.json", client=client)
    assert threads == processes == dask
    assert b'"created": "2026-01-01T00:00:00+00:00"' in dask or b"2026-01-01T00:00:00" in dask
    # the parent's own fetch (fingerprints), and one per worker that scanned: each its own
    assert 2 <= stats.requests["CREDENTIALS"] - before <= 3
    parquet = [tmp_path / "p.parquet", tmp_path / "d.parquet"]
    build(urls, parquet[0], access=Access.from_env(), cache=False)
    build(urls, parquet[1], access=Access.from_env(), cache=False, client=client)
    files = [{p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file()}
             for d in parquet]
    assert files[0] == files[1]


def test_a_worker_can_scan_with_only_its_spec(archive, archive_env, urls, client):
    access = Access.from_env()
    spec, fp = AccessSpec.of(access), fingerprint(urls[0], access)
    m = client.submit(scan_task, urls[0], spec, fp).result()
    assert m.url == urls[0] and m.fingerprint == fp


def _bad(tmp_path, stack):
    p = tmp_path / stack["paths"][0].name
    p.write_bytes(b"<html>not a granule</html>" * 100)
    return p


def test_a_bad_granule_on_a_worker_is_the_same_one_line(tmp_path, stack, client, capsys):
    p = _bad(tmp_path, stack)
    lines = {}
    for how, extra in (("local", []), ("threads", ["--threads"]),
                       ("dask", ["--dask", client.scheduler.address])):
        out = tmp_path / f"{how}.json"
        rc = main(["build", str(p), str(stack["paths"][1]), "--out", str(out), "--quiet",
                   "--no-cache", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert not out.exists()
        lines[how] = err[0]
    assert len(set(lines.values())) == 1
    assert lines["dask"] == f"gcov-index: error: {p.as_uri()}: not an HDF5 file"
    with pytest.raises(NotGcovError):
        build([str(p)], tmp_path / "api.json", cache=False, client=client)


def test_an_unreachable_scheduler_is_one_line(tmp_path, stack, capsys, monkeypatch):
    monkeypatch.setenv("GCOV_INDEX_DASK_TIMEOUT", "1")  # (10 s by default)
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "s.json"
    rc = main(["build", str(stack["paths"][0]), "--out", str(out), "--quiet", "--dask", address])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3 and len(err) == 1, err
    assert err[0].startswith(f"gcov-index: error: --dask {address}: cannot reach the scheduler")
    assert not out.exists()


def test_workers_default_to_the_cores(tmp_path, stack, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    paths = [str(p) for p in stack["paths"]]
    a = build(paths, tmp_path / "a.json", access=Access(), cache=False)
    b = build(paths, tmp_path / "b.json", access=Access(), cache=False, workers=1,
              pool="thread")
    assert a.scanned == b.scanned == len(stack["paths"])
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert os.cpu_count()


def test_progress_bars_for_scan_merge_and_write(tmp_path, stack, capsys):
    paths = [str(p) for p in stack["paths"]]
    build(paths, tmp_path / "s.parquet", access=Access(), cache=False, progress=True)
    err = capsys.readouterr().err
    for stage in ("scan", "merge", "write"):
        assert f"{stage}: 100%" in err, err
    build(paths, tmp_path / "q.parquet", access=Access(), cache=False)
    assert capsys.readouterr().err == ""
