"""``--out NAME.icechunk``: an Icechunk repository of the same tree as the Parquet store, one
commit per build naming the granules added and replaced, read by ``open_store`` and by plain
``xr.open_zarr`` on an Icechunk session; local and ``s3://``; a build killed (``kill -9``) in
the middle of its commit leaves the previous snapshot the head, readable and unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import icechunk
import numpy as np
import pytest
import requests
import xarray as xr

from gcov_index.errors import BadInputError
from gcov_index.read.info import store_info
from gcov_index.read.open import open_store
from gcov_index.read.subset import subset
from gcov_index.read.validate import validate
from gcov_index.store import icechunk as ic
from gcov_index.store.build import build
from tests.support.services import BUCKET

GRID = "science/LSAR/GCOV/grids/frequencyA"
ROOT = Path(__file__).resolve().parents[1]


def _values_equal(a: xr.DataTree, b: xr.DataTree) -> int:
    """Every variable of every group of ``a`` equals ``b``'s (values and dtype); how many."""
    n = 0
    for node in a.subtree:
        path = node.path.lstrip("/")
        other = b[path] if path else b
        for name, var in node.dataset.variables.items():
            x, y = var.values, other.dataset[name].values
            assert x.dtype == y.dtype, (path, name)
            assert np.array_equal(x, y, equal_nan=x.dtype.kind in "fcmM"), (path, name)
            n += 1
    return n


@pytest.fixture(scope="module")
def urls(archive, stack):
    return [archive.s3_url(p.name) for p in stack["paths"]]


@pytest.fixture(scope="module")
def stores(archive, stack, urls, tmp_path_factory):
    d = tmp_path_factory.mktemp("icechunk")
    access = archive.access()
    build(urls, d / "stack.parquet", access=access, cache_dir=d / "cache")
    result = build(urls, d / "stack.icechunk", access=access, cache_dir=d / "cache")
    return {"dir": d, "access": access, "parquet": d / "stack.parquet",
            "icechunk": d / "stack.icechunk", "result": result}


def test_icechunk_values_equal_the_parquet_store(stores):
    access = stores["access"]
    parquet = open_store(stores["parquet"], access=access)
    iced = open_store(stores["icechunk"], access=access)
    assert _values_equal(parquet, iced) > 500  # every array of the tree
    assert iced.attrs["gcov_index"]["granules"] == parquet.attrs["gcov_index"]["granules"]
    hh = iced[GRID]["HHHH"]
    assert hh.dims == ("time", "yCoordinates", "xCoordinates") and hh.rio.crs is not None
    group = open_store(stores["icechunk"], group=GRID, access=access)
    assert group["HHHH"].equals(parquet[GRID]["HHHH"])


def _nisar_credentials():
    """What a plain-icechunk user writes: temporary Earthdata S3 credentials (picklable)."""
    url = os.environ["GCOV_INDEX_S3CREDENTIALS_URL"]
    c = requests.get(url, headers={"Authorization": f"Bearer {os.environ['EARTHDATA_TOKEN']}"},
                     timeout=30).json()
    return icechunk.S3StaticCredentials(
        access_key_id=c["accessKeyId"], secret_access_key=c["secretAccessKey"],
        session_token=c["sessionToken"],
        expires_after=datetime.fromisoformat(c["expiration"]) - timedelta(minutes=5))


def test_plain_xarray_open_zarr_on_the_session_store(stores, archive_env):
    """No gcov-index: icechunk's own API, the S3 container authorized with refreshable
    credentials, then plain ``xr.open_zarr`` on the session's store."""
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage(str(stores["icechunk"])),
        authorize_virtual_chunk_access=icechunk.containers_credentials({
            f"s3://{BUCKET}/": icechunk.s3_refreshable_credentials(_nisar_credentials)}))
    session = repo.readonly_session(branch="main")
    ds = xr.open_zarr(session.store, group=GRID, consolidated=False)
    parquet = open_store(stores["parquet"], group=GRID, access=stores["access"])
    for name in ("HHHH", "HVHV", "mask", "numberOfLooks", "xCoordinates"):
        np.testing.assert_array_equal(ds[name].values, parquet[name].values)
    assert list(ds.time.values) == list(parquet.time.values)


def test_no_credential_is_written_into_the_repository(stores, archive):
    secrets = [archive.token]
    creds = stores["access"].credentials.get()
    secrets += [creds.secret_access_key, creds.session_token]
    for path in stores["icechunk"].rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), path


def test_info_and_subset_read_it(stores):
    info = store_info(stores["icechunk"])
    assert [s["id"] for s in info.stacks] == ["T172A_F008"] and len(info.granules) == 3
    assert info.grids["A"]["variables"] and info.integrity.startswith("Icechunk snapshot ")
    with pytest.raises(BadInputError, match="validate does not check Icechunk stores yet"):
        validate(stores["icechunk"], access=stores["access"])
    rows = subset(stores["icechunk"], (-118.1, 36.95, -118.05, 37.0), access=stores["access"])
    parquet = subset(stores["parquet"], (-118.1, 36.95, -118.05, 37.0), access=stores["access"])
    np.testing.assert_array_equal(rows["frequencyA_HHHH"].values,
                                  parquet["frequencyA_HHHH"].values)


def test_each_build_is_one_commit_naming_what_it_added_and_replaced(archive, stack, urls,
                                                                    tmp_path):
    access = archive.access()
    out = tmp_path / "h.icechunk"
    old = archive.s3_url(stack["old"].name)  # an older release of the first acquisition
    build([old, urls[1]], out, access=access, cache_dir=tmp_path / "cache")
    first = ic.history(out)
    build(urls, out, access=access, cache_dir=tmp_path / "cache")
    commits = ic.history(out)
    assert len(commits) == 3 and commits[1:] == first  # history kept, newest first
    ids = [Path(u).stem for u in urls]
    message = commits[0]["message"]
    assert message.startswith("gcov-index update: 1 added, 1 replaced (3 granules)"), message
    assert f"added {ids[2]}" in message
    assert f"replaced {Path(old).stem} by {ids[0]}" in message
    assert commits[0]["metadata"]["gcov_index"]["added"] == [ids[2]]
    assert first[0]["message"].startswith("gcov-index build: 2 granules")
    tree = open_store(out, access=access)
    assert [g["granuleId"] for g in tree.attrs["gcov_index"]["granules"]] == ids
    # the first snapshot is still there, as it was
    repo = ic.open_repo(out, access, snapshot_id=first[0]["id"])
    assert len(repo.meta[".zattrs"]["gcov_index"]["granules"]) == 2


def test_s3_output_to_the_local_s3_and_reopened(archive, urls, stores, tmp_path):
    access = archive.access()
    out = f"s3://{BUCKET}/stores/{tmp_path.name}/stack.icechunk"
    build(urls, out, access=access, cache_dir=stores["dir"] / "cache")
    build(urls[:2] + urls[2:], out, access=access, cache_dir=stores["dir"] / "cache")
    assert len(ic.history(out, access)) == 3
    iced = open_store(out, group=GRID, access=access)
    parquet = open_store(stores["parquet"], group=GRID, access=access)
    np.testing.assert_array_equal(iced["HHHH"].values, parquet["HHHH"].values)


def test_what_is_not_a_repository_is_refused_untouched(archive, urls, tmp_path):
    access = archive.access()
    folder = tmp_path / "other.icechunk"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    a_file = tmp_path / "file.icechunk"
    a_file.write_text("mine")
    for out in (folder, a_file):
        with pytest.raises(BadInputError, match="not an Icechunk repository"):
            build(urls, out, access=access, cache=False)
    assert (folder / "notes.txt").read_text() == "mine" and a_file.read_text() == "mine"
    env = {**os.environ, **archive.env, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "gcov_index", "build", *urls, "--out", str(folder),
                        "--no-cache"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "not an Icechunk repository" in r.stderr


KILLED_BUILD = textwrap.dedent("""
    import sys, pathlib
    import icechunk.session
    real = icechunk.session.Session.commit

    def commit(self, *args, **kwargs):  # the build is committing now: say so, then commit
        pathlib.Path(sys.argv[1]).write_text("committing")
        return real(self, *args, **kwargs)

    icechunk.session.Session.commit = commit
    from gcov_index.cli import main
    sys.exit(main(["build", *sys.argv[3:], "--out", sys.argv[2], "--no-cache"]))
""")


def _objects(archive, prefix: str) -> set[str]:
    client = archive.s3.admin_client()
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    return keys


def test_kill_9_during_a_commit_leaves_the_previous_snapshot(archive, urls, tmp_path):
    """The repository on the local S3, every request 0.3 s late: a commit writes its manifests,
    snapshot and transaction log before it moves the branch, so a kill 0.5 s into it falls
    among those writes (objects written, the branch not moved). The previous snapshot stays
    the head, whole; the build run again commits."""
    access = archive.access()
    prefix = f"stores/{tmp_path.name}/killed.icechunk"
    out = f"s3://{BUCKET}/{prefix}"
    build(urls[:2], out, access=access, cache_dir=tmp_path / "cache")
    before = ic.history(out, access)
    values = open_store(out, group=GRID, access=access)["HHHH"].values
    objects = _objects(archive, prefix)
    marker = tmp_path / "marker"
    env = {**os.environ, **archive.env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(marker), out, *urls],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        archive.s3.latency = 0.3  # from the commit on
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "no commit"
        time.sleep(0.5)
        assert proc.poll() is None, "the commit ended before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        archive.s3.latency = 0.0
    assert proc.returncode == -signal.SIGKILL
    assert _objects(archive, prefix) - objects, "killed before the commit wrote anything"
    assert ic.history(out, access) == before  # the branch did not move
    again = open_store(out, group=GRID, access=access)["HHHH"].values
    np.testing.assert_array_equal(again, values)
    assert again.shape[0] == 2
    build(urls, out, access=access, cache_dir=tmp_path / "cache")  # run again: it completes
    after = ic.history(out, access)
    assert len(after) == len(before) + 1 and after[1:] == before
    assert after[0]["message"].startswith("gcov-index update: 1 added, 0 replaced")
    assert open_store(out, group=GRID, access=access)["HHHH"].shape[0] == 3


def test_https_store_reads_with_the_token_sent_to_the_endpoint_only(archive, stack, stores,
                                                                    tmp_path):
    """Built from https URLs: the HTTPS container gets the bearer token in the reader's own
    config (never in the repository); the endpoint's redirects to pre-signed URLs on another
    host are followed without it (2 requests a chunk: Icechunk's HTTP store follows them)."""
    access = archive.access()
    urls = [archive.https_url(p.name) for p in stack["paths"]]
    out = tmp_path / "https.icechunk"
    build(urls, out, access=access, cache=False)
    for path in out.rglob("*"):
        assert not (path.is_file() and archive.token.encode() in path.read_bytes()), path
    signed = urlparse(archive.signed.url).netloc
    seen = archive.hosts[signed].total
    hh = open_store(out, group=GRID, access=access)["HHHH"].values
    parquet = open_store(stores["parquet"], group=GRID, access=access)["HHHH"].values
    np.testing.assert_array_equal(hh, parquet)
    assert archive.hosts[signed].total > seen  # read at the pre-signed URLs
    assert not archive.hosts[signed].with_authorization()
