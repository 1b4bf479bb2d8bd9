"""Stores anywhere: built to a team's bucket (``--out s3://...``), opened in place from
``s3://`` and ``https://``, with the same values as the store on disk; the team's bucket is
reached with the standard AWS credentials, never Earthdata's, and gets no Earthdata token."""

from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest

from gcov_index import build, info, open_store, subset
from gcov_index.cli import main
from gcov_index.errors import AccessError, BadInputError
from tests.support.services import ADMIN_KEY, LocalArchive

GRID = "science/LSAR/GCOV/grids/frequencyA"
BOX = {"yCoordinates": slice(300, 340), "xCoordinates": slice(300, 340)}
TEAM = "team-stores"


def series(tree) -> np.ndarray:
    return tree[GRID]["HHHH"].isel(BOX).mean(["yCoordinates", "xCoordinates"]).values


@pytest.fixture(scope="module")
def place(stack, tmp_path_factory):
    """A local archive (moto) holding the granules, and a bucket of the team's beside it."""
    with LocalArchive(tmp_path_factory.mktemp("archive")) as a:
        urls = [a.add(p)[0] for p in stack["paths"]]
        a.s3.admin_client().create_bucket(
            Bucket=TEAM, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        yield {"archive": a, "urls": urls, "dir": tmp_path_factory.mktemp("local")}


@pytest.fixture
def team(place, monkeypatch):
    """The team's credentials from the standard AWS chain (environment variables here)."""
    a = place["archive"]
    for k, v in a.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ADMIN_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "admin")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", a.s3.url)
    return place


def _objects(a, prefix=""):
    out = a.s3.admin_client().list_objects_v2(Bucket=TEAM, Prefix=prefix)
    return sorted(o["Key"] for o in out.get("Contents", []))


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_a_store_in_a_bucket_opens_in_place_with_the_local_values(team, fmt):
    a = team["archive"]
    access = a.access()
    local = build(team["urls"], team["dir"] / f"s.{fmt}", access=access, cache=False).store
    url = f"s3://{TEAM}/stacks/s.{fmt}"
    built = build(team["urls"], url, access=access, cache=False)
    assert str(built.store) == url
    expected = series(open_store(local, access=access))
    np.testing.assert_array_equal(series(open_store(url, access=access)), expected)
    one = open_store(url, group=GRID, access=access)
    assert one["HHHH"].shape[0] == 3
    assert [g["granuleId"] for g in info(url).granules] == [
        g["granuleId"] for g in info(local).granules]
    x, y = one["xCoordinates"].values, one["yCoordinates"].values
    box = (x[300], y[339], x[339], y[300])
    from gcov_index.read.subset import Box

    b = Box.parse(box, crs="EPSG:32611")
    np.testing.assert_allclose(subset(url, b, access=access)["frequencyA_HHHH"].values,
                               subset(local, b, access=access)["frequencyA_HHHH"].values)
    if fmt == "parquet":  # a version prefix and the pointer, written last
        keys = _objects(a, "stacks/")
        assert "stacks/s.parquet" in keys
        assert any(k.startswith("stacks/.s.parquet.v1/") for k in keys)


def test_a_parquet_store_rebuilt_in_a_bucket_keeps_one_previous_version(team):
    a = team["archive"]
    access = a.access()
    url = f"s3://{TEAM}/again/s.parquet"
    for _ in range(3):  # (scanned once: the versions are what is tested)
        build(team["urls"], url, access=access, cache=True)
    versions = {k.split("/")[1] for k in _objects(a, "again/") if "/." in k}
    assert versions == {".s.parquet.v2", ".s.parquet.v3"}
    assert series(open_store(url, access=access)).shape == (3,)


def test_a_key_that_is_not_a_store_is_never_overwritten(team, capsys):
    a = team["archive"]
    client = a.s3.admin_client()
    client.put_object(Bucket=TEAM, Key="notes/s.json", Body=b'{"hello": 1}')
    client.put_object(Bucket=TEAM, Key="notes/s.parquet", Body=b"not a pointer")
    for key in ("notes/s.json", "notes/s.parquet"):
        rc = main(["build", *team["urls"], "--out", f"s3://{TEAM}/{key}", "--no-cache"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and "not a gcov-index store" in err[0], err
    assert client.get_object(Bucket=TEAM, Key="notes/s.json")["Body"].read() == b'{"hello": 1}'
    assert _objects(a, "notes/") == ["notes/s.json", "notes/s.parquet"]


def test_a_bad_store_url_is_one_clear_line(team):
    access = team["archive"].access()
    with pytest.raises(AccessError, match=r"s3://team-stores/nothing/here.json: no such store"):
        open_store(f"s3://{TEAM}/nothing/here.json", access=access)
    with pytest.raises(BadInputError, match="not an S3 bucket name"):
        open_store("s3://No_Such/x.json", access=access)
    with pytest.raises(BadInputError, match="unknown store format"):
        open_store(f"s3://{TEAM}/x.zarr", access=access)
    with pytest.raises(BadInputError, match="https is read only"):
        build(team["urls"], "https://example.org/s.json", access=access, cache=False)


class _Files(http.server.SimpleHTTPRequestHandler):
    seen: list

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append(dict(self.headers))
        super().do_GET()


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_a_store_served_over_https_opens_without_the_token(team, tmp_path, fmt):
    """A store on a host that is not the archive's gets no Earthdata token, and opens."""
    import shutil

    a = team["archive"]
    access = a.access()
    local = build(team["urls"], team["dir"] / f"h.{fmt}", access=access, cache=False).store
    site = tmp_path / "site"
    site.mkdir()
    if fmt == "json":
        shutil.copy(local, site / "h.json")
    else:
        shutil.copytree(local.resolve(), site / "h.parquet")  # a plain folder copy
    seen: list = []
    handler = functools.partial(type("H", (_Files,), {"seen": seen}), directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.2:{server.server_address[1]}/h.{fmt}"
        np.testing.assert_array_equal(series(open_store(url, access=access)),
                                      series(open_store(local, access=access)))
        assert seen and not any("Authorization" in h for h in seen)
    finally:
        server.shutdown()


def test_the_commands_take_store_urls(team, capsys):
    url = f"s3://{TEAM}/cli/s.json"
    assert main(["build", *team["urls"], "--out", url, "--no-cache", "--quiet"]) == 0
    assert f"wrote {url}" in capsys.readouterr().out
    assert main(["info", url]) == 0
    out = capsys.readouterr().out
    assert f"store       {url}" in out and "3 granules" in out
    assert main(["info", f"s3://{TEAM}/cli/none.parquet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such store" in err[0], err
    rc = main(["build", *team["urls"], "--out", "https://example.org/s.json", "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "https is read only" in err[0], err
