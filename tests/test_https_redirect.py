"""HTTPS as it really is (issue 10, point 6).

NASA's HTTPS endpoint answers a granule's GET (with the Earthdata bearer token) with a redirect
(303 or 307) to a pre-signed S3 URL on another host, which expires. The local stand-in does the
same (``LocalArchive``: the endpoint on 127.0.0.1, the signed host on 127.0.0.4, each recording
every request it sees). gcov-index resolves each granule's redirect once, reads every range at
the signed URL without the token, renews the URL when it expires or is refused, and reports a
signed URL that stays refused in one line. Counts are per host: the endpoint sees about one
request per granule, the signed host the range GETs, and never an Authorization header.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from email.utils import formatdate

import numpy as np
import pytest
import requests

from gcov_index import build, open_store
from gcov_index.cli import main
from gcov_index.errors import AccessError, AuthError
from gcov_index.io.access import signed_lifetime
from gcov_index.read.subset import Box, subset
from tests.support.granules import GranuleSpec, write_granule
from tests.support.services import LocalArchive

GRID = "science/LSAR/GCOV/grids/frequencyA"
N = 4  # granules
ROWS, COLS = slice(500, 520), slice(100, 120)  # C = 2 chunks of each layer per granule
C = 2


@pytest.fixture(scope="module")
def granules(tmp_path_factory) -> list:
    d = tmp_path_factory.mktemp("granules")
    return [write_granule(d, GranuleSpec().repeat(i)) for i in range(N)]


@pytest.fixture(scope="module")
def site(granules, tmp_path_factory):
    """An archive of N granules (redirecting with 303) and a store built from their https
    URLs."""
    with LocalArchive(tmp_path_factory.mktemp("archive")) as a:
        urls = [a.add(p)[1] for p in granules]
        store = build(urls, tmp_path_factory.mktemp("store") / "https.json",
                      access=a.access(), cache=False).store
        yield {"archive": a, "urls": urls, "store": store}


@pytest.fixture
def archive(site):
    """The module's archive, its counts reset; as it was (303, 1 h, honest) afterwards."""
    a = site["archive"]
    yield _reset(a)
    a.earthdata.redirect = 303
    a.signed.lifetime = timedelta(hours=1)
    a.signed.tamper = False


def _reset(a: LocalArchive) -> LocalArchive:
    for stats in a.hosts.values():
        stats.reset()
    return a


def _values(store, access) -> np.ndarray:
    layer = open_store(store, group=GRID, protocol="https", access=access)["HHHH"]
    return layer.isel(yCoordinates=ROWS, xCoordinates=COLS).values


def _box(store, access) -> Box:
    grid = open_store(store, group=GRID, access=access)
    x, y = grid["xCoordinates"].values, grid["yCoordinates"].values
    return Box.parse((x[COLS.start], y[ROWS.stop - 1], x[COLS.stop - 1], y[ROWS.start]),
                     crs="EPSG:32611")


def _expected(granules) -> np.ndarray:
    import h5py

    out = []
    for p in granules:
        with h5py.File(p) as f:
            out.append(f[f"{GRID}/HHHH"][ROWS, COLS])
    return np.stack(out)


def _redirects(a: LocalArchive) -> list:
    """The endpoint's answers to granule requests."""
    return a.earthdata.stats.seen(prefix="/NISAR/")


# ---------------------------------------------------------------------------------------
# the stand-in behaves like the real endpoint


@pytest.mark.parametrize("status", [303, 307])
def test_the_endpoint_redirects_to_a_url_signed_on_another_host(archive, site, granules,
                                                                status):
    archive.earthdata.redirect = status
    url = site["urls"][0]
    bearer = {"Authorization": f"Bearer {archive.token}"}
    assert requests.get(url, allow_redirects=False).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer nope"},
                        allow_redirects=False).status_code == 401
    r = requests.get(url, headers=bearer, allow_redirects=False)
    assert r.status_code == status
    signed = r.headers["Location"]
    assert signed.startswith(archive.signed.url + "/") and "127.0.0.4" in signed
    assert "X-Amz-Signature=" in signed and "X-Amz-Expires=3600" in signed

    data = granules[0].read_bytes()
    got = requests.get(signed, headers={"Range": "bytes=100-199"})
    assert got.status_code == 206 and got.content == data[100:200]
    head = requests.head(url, headers=bearer, allow_redirects=False)
    assert head.status_code == status
    assert requests.head(head.headers["Location"]).headers["Content-Length"] == str(len(data))
    # S3's refusals: a URL signed for GET is not one for HEAD; a tampered query; a second
    # authentication (the token) along with the signed query
    assert requests.head(signed).status_code == 403
    tampered = requests.get(signed.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200"))
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.text
    assert requests.get(signed, headers=bearer).status_code == 400
    assert archive.signed.stats.refused == {"SignatureDoesNotMatch": 2, "InvalidArgument": 1}
    # requests (as reqwest and aiohttp) follows the redirect without the Authorization header
    followed = requests.get(url, headers=bearer | {"Range": "bytes=0-7"})
    assert followed.status_code == 206 and followed.content == data[:8]

    signed_hits = archive.signed.stats.seen()
    assert [h.authorization for h in signed_hits].count(True) == 1  # the 400 above, only
    assert all(h.authorization for h in _redirects(archive) if h.status == status)
    assert archive.earthdata.stats.redirects == 3


def test_an_expired_signed_url_is_refused(archive, site):
    archive.signed.lifetime = timedelta(seconds=1)
    r = requests.get(site["urls"][0], headers={"Authorization": f"Bearer {archive.token}"},
                     allow_redirects=False)
    time.sleep(2.05)
    refused = requests.get(r.headers["Location"])
    assert refused.status_code == 403 and "Request has expired" in refused.text
    assert archive.signed.stats.refused == {"AccessDenied": 1}


def test_an_endpoint_without_redirects_serves_the_bytes(archive, site, granules):
    archive.earthdata.redirect = None
    r = requests.get(site["urls"][1], headers={"Authorization": f"Bearer {archive.token}",
                                               "Range": "bytes=0-7"}, allow_redirects=False)
    assert r.status_code == 206 and r.content == granules[1].read_bytes()[:8]


# ---------------------------------------------------------------------------------------
# the reader: one redirect per granule, the ranges at the signed URL, never the token there


@pytest.mark.parametrize("status", [303, 307])
def test_a_build_over_https_reads_at_the_signed_urls(archive, granules, tmp_path, status):
    """The scan: per granule, the endpoint sees a HEAD (the fingerprint; obstore follows that
    redirect itself) and one resolve (GET); the signed host a HEAD, a one-byte GET (the size:
    a URL signed for GET refuses a HEAD) and the pages, never the token."""
    archive.earthdata.redirect = status
    urls = [archive.https_url(p.name) for p in granules[:2]]
    result = build(urls, tmp_path / "s.json", access=archive.access(), cache=False)
    assert result.store.exists()
    hits = _redirects(archive)
    assert sorted(h.method for h in hits) == ["GET", "GET", "HEAD", "HEAD"]
    assert all(h.status == status and h.authorization for h in hits)
    signed = archive.signed.stats
    assert len(signed.seen("HEAD", status=200)) == 2
    assert len(signed.seen("GET", status=206)) == signed.range_gets >= 2 * 2
    assert signed.with_authorization() == [] and signed.refused == {}
    np.testing.assert_array_equal(
        _values(result.store, archive.access()), _expected(granules[:2]))


@pytest.mark.parametrize("status", [303, 307])
def test_a_time_series_resolves_each_granule_once(archive, site, granules, status):
    """N granules x C chunks: N redirects (one per granule, with the token) and N x C range
    GETs at the signed host (none with it): N x C + N requests, not 2 x N x C. Read again in the
    same session: no redirect at all."""
    archive.earthdata.redirect = status
    access = archive.access()
    store = site["store"]
    box = _box(store, access)
    _reset(archive)
    np.testing.assert_array_equal(_values(store, access), _expected(granules))
    hits = _redirects(archive)
    assert len(hits) == N and len({h.key for h in hits}) == N
    assert all(h.method == "GET" and h.status == status and h.authorization for h in hits)
    assert archive.signed.stats.range_gets == N * C == archive.signed.stats.total
    assert archive.signed.stats.with_authorization() == []
    assert access.redirects.resolves == N

    _reset(archive)  # subset of two layers, same session: the signed URLs are reused
    series = subset(store, box, variables=["frequencyA/HHHH", "frequencyA/HVHV"],
                    protocol="https", access=access)
    assert series.sizes["time"] == N
    assert archive.earthdata.stats.total == 0
    assert archive.signed.stats.range_gets == 2 * N * C
    assert archive.signed.stats.with_authorization() == []


def test_an_s3_store_read_over_https_resolves_once_per_granule(archive, site, tmp_path):
    """A store built from s3:// URLs, read with protocol="https" (the rewrite at read time)."""
    s3 = build([archive.s3_url(p) for p in _names(site)], tmp_path / "s3.json",
               access=archive.access(), cache=False).store
    access = archive.access()
    expected = _values(site["store"], archive.access())
    _reset(archive)
    np.testing.assert_array_equal(_values(s3, access), expected)
    assert archive.s3.stats.total == 0
    assert archive.earthdata.stats.redirects == N == archive.earthdata.stats.total
    assert archive.signed.stats.range_gets == N * C
    assert archive.signed.stats.with_authorization() == []


def _names(site) -> list[str]:
    return [u.rsplit("/", 1)[1] for u in site["urls"]]


def test_an_endpoint_serving_the_bytes_is_read_as_before(archive, site, granules):
    """No redirect: a one-byte probe (206) tells that the host serves the bytes itself (the
    granules read at once probe together, at most one each), then the chunks are read there
    as before, with the token (a trusted host); the host is not probed again."""
    archive.earthdata.redirect = None
    access = archive.access()
    np.testing.assert_array_equal(_values(site["store"], access), _expected(granules))
    hits = _redirects(archive)
    probes = len([h for h in hits if h.range == "bytes=0-0"])
    assert 1 <= probes <= N and access.redirects.resolves == probes
    assert len(hits) == probes + N * C and all(h.status == 206 and h.authorization for h in hits)
    assert archive.signed.stats.total == 0
    _reset(archive)
    np.testing.assert_array_equal(_values(site["store"], access), _expected(granules))
    assert len(_redirects(archive)) == N * C and access.redirects.resolves == probes


# ---------------------------------------------------------------------------------------
# a signed URL that expires or is refused mid-session


def test_a_signed_url_expiring_mid_session_is_renewed(archive, site, granules):
    """Signed URLs live 2 s: read, wait past their lifetime, read again. The second read
    resolves every granule again before reading (no request goes out with a dead URL)."""
    archive.signed.lifetime = timedelta(seconds=2)
    access = archive.access()
    expected = _expected(granules)
    np.testing.assert_array_equal(_values(site["store"], access), expected)
    assert archive.earthdata.stats.redirects == N
    time.sleep(2.2)
    np.testing.assert_array_equal(_values(site["store"], access), expected)
    assert archive.earthdata.stats.redirects == 2 * N
    assert archive.signed.stats.refused == {}
    assert archive.signed.stats.range_gets == 2 * N * C
    assert archive.signed.stats.with_authorization() == []


def test_a_revoked_signed_url_is_resolved_again_transparently(archive, site, granules):
    """The signed URLs held are refused (the signing key rotated; their expiry unknown to the
    reader): each granule is resolved again once, and the read succeeds."""
    access = archive.access()
    expected = _expected(granules)
    np.testing.assert_array_equal(_values(site["store"], access), expected)
    archive.signed.revoke()
    _reset(archive)
    np.testing.assert_array_equal(_values(site["store"], access), expected)
    assert archive.earthdata.stats.redirects == N  # once per granule, not once per chunk
    refused = archive.signed.stats.refused["SignatureDoesNotMatch"]
    assert N <= refused <= N * C
    assert archive.signed.stats.range_gets == N * C
    assert archive.signed.stats.with_authorization() == []


@pytest.mark.parametrize("how", ["tampered", "expired"])
def test_a_signed_url_that_stays_refused_is_one_line(archive, site, how, capsys, monkeypatch):
    """Every signed URL refused (a bad signature, or expired when issued): resolved again once,
    refused again, then one AuthError naming the granule, never the signed URL's query."""
    if how == "tampered":
        archive.signed.tamper = True
    else:
        archive.signed.lifetime = timedelta(0)
    access = archive.access()
    with pytest.raises(Exception) as e:  # xarray: fsspec's error, from the reader's
        _values(site["store"], access)
    err = _cause(e.value, AuthError)
    line = str(err)
    assert isinstance(err, AccessError) and "\n" not in line
    assert line.startswith(archive.earthdata.url + "/NISAR/") and "access refused" in line
    assert ("SignatureDoesNotMatch" if how == "tampered" else "AccessDenied") in line
    assert "X-Amz" not in line and archive.token not in line
    assert archive.signed.stats.with_authorization() == []

    box = _box(site["store"], archive.access())
    with pytest.raises(AuthError) as e:
        subset(site["store"], box, protocol="https", access=access)
    assert "\n" not in str(e.value) and "X-Amz" not in str(e.value)

    for k, v in archive.env.items():  # the CLI: exit 4, one line
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    rc = main(["subset", str(site["store"]), "--protocol", "https", "--crs", "EPSG:32611",
               "--bbox", *(str(v) for v in (box.minx, box.miny, box.maxx, box.maxy))])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 4 and len(err) == 1, err
    assert "access refused" in err[0] and "X-Amz" not in err[0] and archive.token not in err[0]
    assert archive.signed.stats.with_authorization() == []


def _cause(exc: BaseException, kind: type) -> BaseException | None:
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__ or exc.__context__
    return exc


def test_a_scan_of_a_refused_signed_url_is_one_line(archive, granules, tmp_path):
    archive.signed.tamper = True
    with pytest.raises(AuthError) as e:
        build([archive.https_url(granules[0].name)], tmp_path / "s.json",
              access=archive.access(), cache=False)
    assert "\n" not in str(e.value) and "X-Amz" not in str(e.value)
    assert "access refused" in str(e.value)
    assert not (tmp_path / "s.json").exists()
    assert archive.signed.stats.with_authorization() == []


def test_faults_at_the_signed_host_are_retried_there(archive, site, granules):
    """503s, resets and truncated bodies at the signed host are retried by obstore at the same
    signed URL (not a refusal: no new redirect)."""
    from gcov_index.io.access import Access
    from gcov_index.io.retry import RetryPolicy
    from tests.support.faults import FaultProxy

    with FaultProxy(archive.signed.url, rate=0.3, seed=3,
                    faults=("slowdown", "reset", "truncated")) as proxy:
        archive.signed.base = proxy.url
        try:
            access = Access(endpoints=archive.endpoints, token=archive.token,
                            retry=RetryPolicy(retries=8, backoff=0.01, max_backoff=0.05))
            np.testing.assert_array_equal(_values(site["store"], access), _expected(granules))
        finally:
            archive.signed.base = archive.signed.url
    assert proxy.faults_injected >= 1, proxy.counts
    assert archive.earthdata.stats.redirects == N == access.redirects.resolves
    # a truncated body reached the signed host, then its retry did
    assert N * C <= archive.signed.stats.range_gets <= N * C + proxy.faults_injected
    assert archive.signed.stats.refused == {}
    assert archive.signed.stats.with_authorization() == []


# ---------------------------------------------------------------------------------------
# plain xarray (fsspec's HTTP file system, aiohttp) follows the redirect itself

PLAIN_HTTPS = """
import json, os, sys
import xarray as xr
so = {"remote_protocol": "http",
      "remote_options": {"headers": {"Authorization": "Bearer " + os.environ["EARTHDATA_TOKEN"]}}}
ds = xr.open_dataset(sys.argv[1], engine="kerchunk", group="science/LSAR/GCOV/grids/frequencyA",
                     storage_options=so)
v = ds["HHHH"].isel(yCoordinates=slice(500, 520), xCoordinates=slice(100, 120)).values
print(json.dumps({"values": v.tolist(),
                  "imported_gcov_index": any(m.startswith("gcov_index") for m in sys.modules)}))
"""


def test_plain_xarray_follows_a_307_without_sending_the_token(archive, site, granules,
                                                              tmp_path):
    """(The 303 case: tests/test_read.py.) aiohttp drops Authorization on a redirect to
    another origin: the signed host never sees the token, the endpoint sees it on every
    request (fsspec resolves per read: 2 round trips per chunk)."""
    archive.earthdata.redirect = 307
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN_HTTPS, str(site["store"])],
                          env=os.environ | archive.env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["imported_gcov_index"]
    np.testing.assert_array_equal(np.array(out["values"], dtype=np.float32),
                                  _expected(granules))
    hits = _redirects(archive)
    assert hits and all(h.status == 307 and h.authorization for h in hits)
    assert archive.signed.stats.range_gets >= N * C
    assert archive.signed.stats.with_authorization() == []
    assert archive.signed.stats.refused == {}


# ---------------------------------------------------------------------------------------
# the lifetime a signed URL says it has


@pytest.mark.parametrize("query, left", [
    ("X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-Signature=ab", 3600 - 10 - 1),
    ("x-amz-date=20250101T000000Z&x-amz-expires=60", 60 - 10 - 1),
    ("Expires=1735689700&Signature=x", 1735689700 - 1735689610 - 1),
    ("X-Amz-Signature=ab", None),
    ("", None),
    ("X-Amz-Expires=soon", None),
])
def test_signed_lifetime(query, left):
    date = formatdate(1735689610, usegmt=True)  # 2025-01-01T00:00:10Z, the server's clock
    got = signed_lifetime(f"https://bucket.s3.amazonaws.com/k.h5?{query}", date)
    assert got == left


def test_signed_lifetime_without_a_date_trusts_the_signing_time():
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    left = signed_lifetime(f"https://b/k?X-Amz-Date={now}&X-Amz-Expires=30")
    assert 27.5 <= left <= 29.0
