"""Bad input: one clear line naming the input, exit != 0, and no store written or altered."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta

import boto3
import botocore.exceptions
import h5py
import pytest

from gcov_index.cli import main
from gcov_index.store.layout import store_attrs
from tests.support.granules import GranuleSpec, write_granule
from tests.support.services import BUCKET

PREVIOUS = (b'{"version": 1, "refs": {".zgroup": "{\\"zarr_format\\": 2}", '
            b'".zattrs": "{\\"gcov_index\\": {}}"}}')  # a store: --out may replace it


@pytest.fixture
def out(tmp_path):
    """An earlier store at the output path: it must survive every failure."""
    p = tmp_path / "store.json"
    p.write_bytes(PREVIOUS)
    return p


def run_fails(args, capsys, out, *, code=None, expect: str) -> str:
    rc = main(["build", *args, "--out", str(out), "--quiet", "--no-cache"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and (code is None or rc == code)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gcov-index: error: ") and expect in lines[0], lines[0]
    assert out.read_bytes() == PREVIOUS
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []
    return lines[0]


def named_like_gcov(tmp_path, stack, content: bytes | None = None):
    p = tmp_path / stack["paths"][0].name
    if content is not None:
        p.write_bytes(content)
    return p


def test_not_hdf5(tmp_path, stack, out, capsys):
    p = named_like_gcov(tmp_path, stack, b"<html>not a granule</html>" * 100)
    run_fails([str(p)], capsys, out, code=2, expect=f"{p.as_uri()}: not an HDF5 file")


def test_hdf5_not_gcov(tmp_path, stack, out, capsys):
    p = named_like_gcov(tmp_path, stack)
    with h5py.File(p, "w") as f:
        f["science/LSAR/RSLC/x"] = [1, 2, 3]
    run_fails([str(p)], capsys, out, code=2, expect="an HDF5 file but not a NISAR L2 GCOV granule")


def test_truncated(tmp_path, stack, out, capsys):
    p = named_like_gcov(tmp_path, stack, stack["paths"][0].read_bytes()[: 6 * 1024 * 1024])
    run_fails([str(p)], capsys, out, code=2, expect="truncated HDF5 file")


def _two_stacks(args, capsys, out) -> list[dict]:
    rc = main(["build", *args, "--out", str(out), "--quiet", "--no-cache"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "2 stacks (grids or passes differ)" in captured.err
    return store_attrs(out)["stacks"]


def test_grids_differ_is_two_stacks_not_a_refusal(tmp_path, stack, out, capsys):
    other = write_granule(tmp_path, GranuleSpec().repeat(5, epsg=32612))
    stacks = _two_stacks([str(stack["paths"][0]), str(other)], capsys, out)
    assert sorted(s["grids"]["frequencyA"]["epsg"] for s in stacks) == [32611, 32612]


def test_grids_differ_in_shape_is_two_stacks(tmp_path, stack, out, capsys):
    other = write_granule(tmp_path, replace(GranuleSpec().repeat(6), shape=(650, 600)))
    stacks = _two_stacks([str(stack["paths"][0]), str(other)], capsys, out)
    assert sorted(s["grids"]["frequencyA"]["shape"][0] for s in stacks) == [650, 700]


def test_missing_file(tmp_path, stack, out, capsys):
    p = tmp_path / "nowhere" / stack["paths"][0].name
    run_fails([str(p)], capsys, out, code=3, expect="no such file")


def test_unreachable_url(archive, archive_env, stack, out, capsys, monkeypatch):
    monkeypatch.setenv("GCOV_INDEX_HTTPS_BASE", "http://127.0.0.1:9/NISAR")
    name = stack["paths"][0].name
    url = f"http://127.0.0.1:9/NISAR/C/{name.removesuffix('.h5')}/{name}"
    run_fails([url], capsys, out, code=3, expect=f"{url}: unreachable")


def test_missing_object(archive, archive_env, stack, out, capsys):
    url = archive.s3_url(stack["paths"][0].name.replace("_001.h5", "_009.h5"))
    run_fails([url], capsys, out, code=3, expect=f"{url}: no such object")


def test_missing_token(archive, archive_env, stack, out, capsys, monkeypatch):
    monkeypatch.delenv("EARTHDATA_TOKEN")
    url = archive.s3_url(stack["paths"][0].name)
    run_fails([url], capsys, out, code=4, expect="no Earthdata token")


def test_rejected_token(archive, archive_env, stack, out, capsys, monkeypatch):
    monkeypatch.setenv("EARTHDATA_TOKEN", "not-a-valid-token")
    url = archive.s3_url(stack["paths"][0].name)
    line = run_fails([url], capsys, out, code=4, expect="the Earthdata token was rejected (HTTP 401)")
    assert "not-a-valid-token" not in line


def test_rejected_token_https(archive, archive_env, stack, out, capsys, monkeypatch):
    monkeypatch.setenv("EARTHDATA_TOKEN", "not-a-valid-token")
    url = archive.https_url(stack["paths"][0].name)
    run_fails([url], capsys, out, code=4, expect="access refused")


def test_token_file_missing(archive, archive_env, stack, out, capsys, tmp_path):
    url = archive.s3_url(stack["paths"][0].name)
    rc = main(["build", url, "--out", str(out), "--token-file", str(tmp_path / "nope")])
    assert rc == 4 and "cannot read the token file" in capsys.readouterr().err
    assert out.read_bytes() == PREVIOUS


def test_bad_out_suffix(stack, tmp_path, capsys):
    rc = main(["build", str(stack["paths"][0]), "--out", str(tmp_path / "store.zarr")])
    assert rc == 2 and "unknown store format '.zarr'" in capsys.readouterr().err


def test_netrc_login_gives_a_token(archive, archive_env, stack, tmp_path, monkeypatch):
    monkeypatch.delenv("EARTHDATA_TOKEN")
    netrc = tmp_path / "netrc"
    host = archive.earthdata.url.split("//")[1].split(":")[0]
    user, password = next(iter(archive.earthdata.users.items()))
    netrc.write_text(f"machine {host} login {user} password {password}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    rc = main(["build", archive.s3_url(stack["paths"][0].name), "--out",
               str(tmp_path / "s.json"), "--quiet", "--no-cache"])
    assert rc == 0


def test_s3_refuses_unknown_and_expired_credentials(archive):
    def client(creds):
        return boto3.client("s3", endpoint_url=archive.s3.url, region_name="us-west-2",
                            aws_access_key_id=creds["accessKeyId"],
                            aws_secret_access_key=creds["secretAccessKey"],
                            aws_session_token=creds["sessionToken"])

    key = archive.key(shutil.os.path.basename(archive.s3_url("x.h5")))
    good = archive.s3.issue(timedelta(minutes=5))
    with pytest.raises(botocore.exceptions.ClientError) as e:  # missing key: S3's own 404
        client(good).get_object(Bucket=BUCKET, Key=key)
    assert e.value.response["Error"]["Code"] in ("NoSuchKey", "404")
    unknown = dict(good, accessKeyId="ASIAUNKNOWN000000000")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client(unknown).list_objects_v2(Bucket=BUCKET)
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    expired = archive.s3.issue(timedelta(seconds=-1))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client(expired).list_objects_v2(Bucket=BUCKET)
    assert e.value.response["Error"]["Code"] == "ExpiredToken"


# ---------------------------------------------------------------------------------------
# interrupted builds (Ctrl-C): exit 130, the earlier store as it was, no temporary left


@pytest.mark.parametrize("where", ["scan", "write-json", "write-parquet"])
def test_an_interrupted_build_leaves_the_earlier_store(stack, tmp_path, capsys, monkeypatch,
                                                       where):
    import gcov_index.index.workers as workers_mod
    import gcov_index.store.layout as store_mod

    inputs = [str(p) for p in stack["paths"]]
    out = tmp_path / ("store.parquet" if where == "write-parquet" else "store.json")
    # one granule in the store: the build adds two, so there is a second scan to interrupt
    assert main(["build", *inputs[:1], "--out", str(out), "--quiet", "--no-cache"]) == 0
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    capsys.readouterr()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "scan":
        real_scan, calls = workers_mod.scan, []

        def scan_then_interrupt(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real_scan(*args, **kwargs)

        monkeypatch.setattr(workers_mod, "scan", scan_then_interrupt)  # in threads: --threads
    elif where == "write-json":
        monkeypatch.setattr(store_mod.json, "dump", interrupt)
    else:
        import kerchunk.df

        monkeypatch.setattr(kerchunk.df, "refs_to_dataframe", interrupt)
    rc = main(["build", *inputs, "--out", str(out), "--quiet", "--no-cache", "--workers", "1",
               "--threads"])
    assert rc == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # same files, same bytes: no partial store, no temporary
