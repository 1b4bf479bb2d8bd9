"""Reading a store: s3 <-> https at open time, concurrent chunk reads, credentials that renew
during a long read, and a store that carries no secret."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pytest

from gcov_index import Access, build, open_store
from gcov_index.io.endpoints import Endpoints
from tests.support.granules import GranuleSpec, write_granule
from tests.support.services import LocalArchive

GRID = "science/LSAR/GCOV/grids/frequencyA"
BOX = {"yCoordinates": slice(300, 340), "xCoordinates": slice(300, 340)}  # one chunk


def series(tree) -> np.ndarray:
    return tree[GRID]["HHHH"].isel(BOX).mean(["yCoordinates", "xCoordinates"]).values


@pytest.mark.parametrize("name", ["s3.json", "s3.parquet"])
def test_an_s3_store_reads_over_https_with_the_token(stores, archive, name):
    expected = series(open_store(stores[name], access=stores["access"]))
    access = archive.access()  # a new session: no pre-signed URL known yet
    archive.s3.stats.reset()
    archive.earthdata.stats.reset()
    archive.signed.stats.reset()
    got = series(open_store(stores[name], protocol="https", access=access))
    np.testing.assert_array_equal(got, expected)
    assert archive.s3.stats.total == 0  # nothing from S3
    # one redirect per granule (with the token), then one range GET per granule at the
    # pre-signed URL (without it)
    assert dict(archive.earthdata.stats.requests) == {"GET": 3}
    assert archive.earthdata.stats.redirects == 3
    assert archive.signed.stats.range_gets == 3 and archive.signed.stats.total == 3
    assert archive.signed.stats.with_authorization() == []


def test_an_https_store_reads_from_s3(stores, archive):
    access = stores["access"]
    expected = series(open_store(stores["https.json"], access=access))
    archive.s3.stats.reset()
    got = series(open_store(stores["https.json"], protocol="s3", access=access))
    np.testing.assert_array_equal(got, expected)
    assert archive.s3.stats.requests["GET"] == 3


def test_the_store_holds_no_secret(stores, archive):
    creds = stores["access"].credentials.get()
    for name in ("s3.json", "https.json"):
        text = stores[name].read_text()
        for secret in (archive.token, creds.access_key_id, creds.secret_access_key,
                       creds.session_token):
            assert secret not in text
    parquet = b"".join(p.read_bytes() for p in stores["s3.parquet"].rglob("*") if p.is_file())
    assert archive.token.encode() not in parquet and creds.session_token.encode() not in parquet


def test_a_protocol_that_cannot_be_reached_is_refused(stores):
    from gcov_index.errors import BadInputError

    elsewhere = Access(endpoints=Endpoints(https_base="https://example.org/NISAR"), token="x")
    with pytest.raises(BadInputError, match=r"cannot read .* over s3"):
        open_store(stores["https.json"], protocol="s3", access=elsewhere)


def test_chunk_reads_of_a_subset_are_concurrent(stack, tmp_path):
    """A time series over N granules sends its N chunk reads at once (about one round trip),
    and nothing else: no metadata request at read time. N = 12 is more than zarr's default
    of 10 chunks at once."""
    n = 12
    paths = [write_granule(tmp_path, GranuleSpec().repeat(i)) for i in range(n)]
    with LocalArchive(tmp_path / "archive", latency=0.05) as a:
        urls = [a.add(p)[0] for p in paths]
        access = a.access()
        store = build(urls, tmp_path / "s.json", access=access, cache=False).store
        access.credentials.get()
        a.s3.stats.reset()
        tree = open_store(store, access=access)
        assert a.s3.stats.total == 0  # opening reads the store only
        values = tree[GRID]["HHHH"].isel(yCoordinates=slice(500, 520),
                                          xCoordinates=slice(100, 120)).values  # 2 chunks each
        assert values.shape == (n, 20, 20)
        assert dict(a.s3.stats.requests) == {"GET": 2 * n}
        assert a.s3.stats.max_in_flight >= n  # sent together, not one after another

        # subset of two layers: both layers' chunks are read together as well
        from gcov_index.read.subset import Box, subset

        grid = tree[GRID]
        x, y = grid["xCoordinates"].values, grid["yCoordinates"].values
        box = Box.parse((x[100], y[519], x[119], y[500]), crs="EPSG:32611")
        a.s3.stats.reset()
        series = subset(store, box, variables=["frequencyA/HHHH", "frequencyA/HVHV"],
                        access=access)
        assert series.sizes["time"] == n
        assert dict(a.s3.stats.requests) == {"GET": 2 * 2 * n}
        assert a.s3.stats.max_in_flight >= 2 * n


def test_credentials_renew_during_a_long_read(tmp_path):
    """Credentials live 2 s; a read of many chunks goes on for about 5 s. gcov-index renews
    them before they expire and S3 refuses nothing; the same read with static credentials
    (what s3fs does) is refused with ExpiredToken once they expire."""
    import fsspec

    paths = [write_granule(tmp_path, GranuleSpec().repeat(i)) for i in range(3)]
    with LocalArchive(tmp_path / "archive", lifetime=timedelta(seconds=2), latency=0.02) as a:
        urls = [a.add(p)[0] for p in paths]
        access = a.access()
        store = build(urls, tmp_path / "s.json", access=access, cache=False).store
        static = access.s3fs_options()  # one set of credentials, fetched now
        a.s3.stats.reset()
        fetched = access.credentials.fetches
        layer = open_store(store, access=access)[GRID]["HHHH"]
        t0, reads = time.monotonic(), 0
        while time.monotonic() - t0 < 5:
            i = reads % 2
            assert layer.isel(yCoordinates=slice(512 * i, 512 * i + 10)).values.size  # 2 x 3 chunks
            reads += 1
        assert reads > 10
        assert access.credentials.fetches - fetched >= 2  # renewed while reading
        assert a.s3.stats.refused == {}  # never sent an expired key
        assert a.s3.stats.requests["GET"] == reads * 6

        fs = fsspec.filesystem("s3", **static)
        with pytest.raises(PermissionError, match=r"ExpiredToken|expired"):
            fs.cat_file(urls[0], start=0, end=8)
        assert a.s3.stats.refused["ExpiredToken"] >= 1


PLAIN_HTTPS = """
import json, os, sys
import xarray as xr
store = sys.argv[1]
so = {"remote_protocol": "http",  # the local stand-in of https://nisar.asf.earthdatacloud...
      "remote_options": {"headers": {"Authorization": "Bearer " + os.environ["EARTHDATA_TOKEN"]}}}
ds = xr.open_dataset(store, engine="kerchunk", group="science/LSAR/GCOV/grids/frequencyA",
                     storage_options=so)
box = ds["HHHH"].isel(yCoordinates=slice(300, 340), xCoordinates=slice(300, 340))
print(json.dumps({"mean": [float(v) for v in box.mean(["yCoordinates", "xCoordinates"]).values],
                  "imported_gcov_index": any(m.startswith("gcov_index") for m in sys.modules)}))
"""


def test_plain_xarray_reads_an_https_store_with_a_bearer_token(stores, archive, tmp_path):
    """The README's recipe for collaborators outside us-west-2 without gcov-index. The
    endpoint redirects each read to a pre-signed URL on another host: aiohttp (fsspec's HTTP
    file system) follows it without the Authorization header."""
    import json
    import os
    import subprocess
    import sys

    env = os.environ | archive.env
    archive.earthdata.stats.reset()
    archive.signed.stats.reset()
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN_HTTPS, str(stores["https.json"])],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["imported_gcov_index"]
    granules = archive.earthdata.stats.seen(prefix="/NISAR/")
    assert granules and all(h.authorization and h.status == 303 for h in granules)
    assert archive.signed.stats.range_gets >= 3  # the chunks, at the pre-signed URLs
    assert archive.signed.stats.with_authorization() == []  # the token never went there
    assert archive.signed.stats.refused == {}
    expected = series(open_store(stores["https.json"], access=stores["access"]))
    np.testing.assert_allclose(out["mean"], expected, rtol=1e-6)
