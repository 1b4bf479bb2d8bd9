"""Trust on the network (issue 9, items 1 and 4).

1. Credentials go only where they belong: a sniffer ("another host": a loopback address and
   port that no endpoint names) records every request; stores and ``build`` arguments that
   point at it, read by ``build``, ``open_store``, ``subset`` and ``validate`` over https and s3,
   never bring it the Earthdata token or an S3 key, also not through a redirect.
2. Faults are retried and classified: a proxy in front of the local S3 gateway and the HTTPS
   stand-in answers a seeded fraction of requests with 503 SlowDown, resets before and in the
   middle of a body, truncated bodies and stalls. At 5 % every build and subset succeeds with
   the results of a clean run; at 20 % (one retry only) nothing wrong is ever written or
   printed, and what fails is exit 3 with one line. No abort at exit after an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gcov_index import Access, build, open_store
from gcov_index.cli import main
from gcov_index.errors import AuthError, BadInputError, GcovIndexError
from gcov_index.io.access import remote_error
from gcov_index.read.subset import Box, subset
from gcov_index.read.validate import validate
from gcov_index.store.layout import metadata, open_refs, store_attrs
from tests.support.faults import FaultProxy, Redirector, Sniffer

GRID = "science/LSAR/GCOV/grids/frequencyA"
BOX = (-118.08, 36.96, -118.06, 36.98)
BBOX = [str(v) for v in BOX]
LAYERS = ["frequencyA/HHHH", "frequencyB/HVHV"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sniffer(stack):
    """Another host (127.0.0.2), serving the stack's granules to anyone, as a public mirror
    would: reads without credentials succeed there."""
    with Sniffer(files={p.name: p for p in stack["paths"]}) as s:
        yield s


def secrets_of(access: Access) -> list[str]:
    creds = access.credentials.get()
    return [access.token, creds.access_key_id, creds.secret_access_key, creds.session_token]


def assert_no_credentials(sniffer: Sniffer, *secrets: str) -> None:
    assert sniffer.seen, "the sniffer was never asked: the test did not reach it"
    assert sniffer.with_credentials() == []
    assert sniffer.carrying(*secrets) == []


def values(series) -> list[np.ndarray]:
    return [series[k.replace("/", "_")].values for k in LAYERS]


# ---------------------------------------------------------------------------------------
# 1. the token stays home


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_a_store_naming_another_host_is_read_without_credentials(stores, archive, stack,
                                                                 sniffer, tmp_path, fmt):
    """build, open_store, subset and validate of a store whose granules are on another host:
    the reads go there without the token, and give the archive's values."""
    access = stores["access"]
    urls = [f"{sniffer.url}/NISAR/{archive.key(p.name)}" for p in stack["paths"]]
    store = build(urls, tmp_path / f"elsewhere.{fmt}", access=access, cache=False).store
    expected = values(subset(stores["https.json"], Box.parse(BOX), variables=LAYERS,
                             access=access))
    for protocol in (None, "https"):
        got = values(subset(store, Box.parse(BOX), variables=LAYERS, protocol=protocol,
                            access=access))
        np.testing.assert_array_equal(got, expected)
    hh = open_store(store, access=access)[GRID]["HHHH"].isel(yCoordinates=slice(0, 4)).values
    assert hh.shape[0] == 3
    report = validate(store, sample=3, access=access)
    assert report.ok and report.chunks_checked > 0, report.text()
    with pytest.raises(BadInputError, match=r"cannot read .* over s3"):
        validate(store, protocol="s3", access=access)
    assert_no_credentials(sniffer, *secrets_of(access))


def test_the_cli_never_sends_the_token_to_another_host(archive, archive_env, stack, sniffer,
                                                       tmp_path, capsys):
    urls = [f"{sniffer.url}/NISAR/{archive.key(p.name)}" for p in stack["paths"]]
    out = tmp_path / "elsewhere.json"
    assert main(["build", *urls, "--out", str(out), "--quiet", "--no-cache"]) == 0
    for protocol in ([], ["--protocol", "https"]):
        assert main(["subset", str(out), "--bbox", *BBOX, *protocol]) == 0
    assert main(["validate", str(out), "--sample", "2"]) == 0
    assert main(["info", str(out)]) == 0
    capsys.readouterr()
    assert_no_credentials(sniffer, archive.token)


def _pointing_at(store: Path, old: str, new: str, out: Path, everywhere: bool) -> Path:
    """``store`` with its URL templates (and, ``everywhere``, its recorded granule URLs too)
    moved from ``old`` to ``new``: a store as someone else could hand it over."""
    refs = json.loads(store.read_text())
    if everywhere:
        refs = json.loads(store.read_text().replace(old, new))
    else:
        refs["templates"] = {k: v.replace(old, new) for k, v in refs["templates"].items()}
    out.write_text(json.dumps(refs))
    return out


@pytest.mark.parametrize("name", ["s3.json", "https.json"])
@pytest.mark.parametrize("everywhere", [False, True])
def test_a_store_moved_to_another_host_gets_no_credentials(stores, archive, sniffer, tmp_path,
                                                           name, everywhere):
    """An s3 or https store whose templates (and granule list) were rewritten to name the
    sniffer: whatever each verb makes of it over s3, https or as built, the sniffer sees no
    token and no S3 key (when a read fails, it is one line)."""
    from tests.support.services import BUCKET

    access = stores["access"]
    old = f"s3://{BUCKET}" if name == "s3.json" else archive.earthdata.url
    new = f"{sniffer.url}/{BUCKET}" if name == "s3.json" else sniffer.url
    store = _pointing_at(stores[name], old, new, tmp_path / f"moved-{name}", everywhere)
    before = len(sniffer.seen)
    refused_as_altered = []  # a store that checks its own integrity may refuse it outright
    for protocol in (None, "s3", "https"):
        for verb in (
                lambda p: subset(store, Box.parse(BOX), variables=LAYERS, protocol=p,
                                 access=access),
                lambda p: validate(store, sample=2, protocol=p, access=access)):
            try:
                verb(protocol)
                refused_as_altered.append(False)
            except GcovIndexError as e:
                assert "\n" not in str(e)
                refused_as_altered.append(isinstance(e, BadInputError))
        try:  # the plain API: xarray raises what the reader raised
            assert open_store(store, protocol=protocol, access=access)[GRID]["HHHH"].isel(
                yCoordinates=slice(0, 4)).values.shape[0] == 3
        except BadInputError:
            pass
        except Exception as e:
            assert isinstance(remote_error("read", e), GcovIndexError)
    assert len(sniffer.seen) > before or all(refused_as_altered)  # it was asked, or nothing was
    assert sniffer.with_credentials() == [] and sniffer.carrying(*secrets_of(access)) == []


def test_a_host_that_refuses_without_the_token_is_named_and_can_be_trusted(
        archive, archive_env, stack, tmp_path, capsys, monkeypatch):
    """A host that wants a token is refused it, with one line saying why and how to trust
    it; trusted with GCOV_INDEX_TRUSTED_HOSTS, it gets the token (which is also the proof
    that the sniffer sees a token when one is sent)."""
    files = {p.name: p for p in stack["paths"]}
    with Sniffer(host="127.0.0.3", files=files, require_token=True) as wants_token:
        urls = [f"{wants_token.url}/NISAR/{archive.key(p.name)}" for p in stack["paths"]]
        out = tmp_path / "s.json"
        rc = main(["build", *urls, "--out", str(out), "--quiet", "--no-cache"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 4 and len(err) == 1, err
        host = wants_token.url.split("//")[1]
        assert "the Earthdata token was not sent" in err[0] and host in err[0], err[0]
        assert "GCOV_INDEX_TRUSTED_HOSTS" in err[0] and archive.token not in err[0]
        assert wants_token.seen and wants_token.with_credentials() == []
        assert not out.exists()

        monkeypatch.setenv("GCOV_INDEX_TRUSTED_HOSTS", f"data.example.org, {host}")
        assert main(["build", *urls, "--out", str(out), "--quiet", "--no-cache"]) == 0
        assert wants_token.carrying(archive.token)


@pytest.mark.parametrize("status", [303, 307])
def test_a_redirect_to_another_host_does_not_carry_the_token(stores, archive, stack, sniffer,
                                                             tmp_path, status):
    """The real HTTPS endpoint answers with a redirect to a pre-signed URL on another host:
    obstore follows it without the Authorization header (reqwest drops it across hosts)."""
    with Redirector(sniffer.url, status) as r:
        access = Access(endpoints=archive.endpoints.with_(https_base=f"{r.url}/NISAR"),
                        token=archive.token)
        urls = [f"{r.url}/NISAR/{archive.key(p.name)}" for p in stack["paths"]]
        before = len(sniffer.seen)
        store = build(urls, tmp_path / "redirected.json", access=access, cache=False).store
        expected = values(subset(stores["https.json"], Box.parse(BOX), variables=LAYERS,
                                 access=stores["access"]))
        np.testing.assert_array_equal(values(subset(store, Box.parse(BOX), variables=LAYERS,
                                                    access=access)), expected)
        np.testing.assert_array_equal(values(subset(stores["s3.json"], Box.parse(BOX),
                                                    variables=LAYERS, protocol="https",
                                                    access=access)), expected)
        assert r.seen and all(s.headers.get("authorization") == f"Bearer {archive.token}"
                              for s in r.seen)  # the configured host gets it, and only it
        assert len(sniffer.seen) > before
        assert_no_credentials(sniffer, archive.token)


def test_a_redirecting_credentials_endpoint_is_not_followed(archive, stack, sniffer, tmp_path):
    with Redirector(f"{sniffer.url}/login", 302) as r:
        access = Access(endpoints=archive.endpoints.with_(
            s3_credentials_url=f"{r.url}/s3credentials"), token=archive.token)
        before = len(sniffer.seen)
        with pytest.raises(AuthError, match=r"redirected to 127\.0\.0\.2 \(HTTP 302, not followed"):
            build([archive.s3_url(stack["paths"][0].name)], tmp_path / "s.json", access=access,
                  cache=False)
        assert len(r.seen) == 1 and len(sniffer.seen) == before


# ---------------------------------------------------------------------------------------
# 2. faults are retried and classified

FAST_RETRIES = {  # quick to give up on a stall, short waits: a test of seconds
    "GCOV_INDEX_RETRY_BACKOFF": "0.02", "GCOV_INDEX_RETRY_MAX_BACKOFF": "0.2",
    "GCOV_INDEX_STALL_TIMEOUT": "0.3", "GCOV_INDEX_TIMEOUT": "5",
    "GCOV_INDEX_CONNECT_TIMEOUT": "2"}


def _proxied_env(archive, s3: FaultProxy, https: FaultProxy) -> dict[str, str]:
    return archive.env | FAST_RETRIES | {"AWS_ENDPOINT_URL": s3.url,
                                         "GCOV_INDEX_HTTPS_BASE": f"{https.url}/NISAR"}


@pytest.fixture(scope="module")
def proxies(archive):
    """The archive behind two fault-injecting proxies (S3 and HTTPS)."""
    with FaultProxy(archive.s3.url, seed=11, stall=1.0) as s3, \
            FaultProxy(archive.earthdata.url, seed=12, stall=1.0) as https:
        yield s3, https


@pytest.fixture(scope="module")
def clean(proxies, stores, archive, stack, tmp_path_factory):
    """The plan of builds and subsets run once without faults, through the proxies: what
    every faulty run must make (its folder ``dir``, its results ``got``)."""
    s3, https = proxies
    d = tmp_path_factory.mktemp("clean")
    steps = _plan(archive, stack, https, stores["s3.parquet"])
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _proxied_env(archive, s3, https).items():
            mp.setenv(k, v)
        got = _run(steps, d, None)
    assert all(rc == 0 for rc, _, _ in got.values()), got
    return {"dir": d, "steps": steps, "got": got, "attempts": [p.attempts() for p in proxies]}


@pytest.fixture
def faulty(clean, proxies, archive, monkeypatch):
    """The proxies as the clean run left them (each test meets the same faults whichever
    ran first), for the CLI."""
    s3, https = proxies
    for p, attempts in zip(proxies, clean["attempts"], strict=True):
        p.reset(attempts)
    for k, v in _proxied_env(archive, s3, https).items():
        monkeypatch.setenv(k, v)
    return s3, https


BOXES = [["--bbox", *BBOX, "--var", LAYERS[0], "--var", LAYERS[1]],
         ["--bbox", "404000", "4093000", "406500", "4096000", "--crs", "EPSG:32611",
          "--var", "frequencyA/HVHV", "--stat", "median"]]


def _plan(archive, stack, https_proxy, parquet: Path) -> list[tuple[str, list[str]]]:
    """Builds from s3 and from https URLs, and subsets of them and of a Parquet store, over s3
    and https, for two boxes: about 100 requests (a build of three granules sends 15, a
    subset 6)."""
    s3_urls = [archive.s3_url(p.name) for p in stack["paths"]]
    https_urls = [f"{https_proxy.url}/NISAR/{archive.key(p.name)}" for p in stack["paths"]]
    steps = [("s3.json", ["build", *s3_urls, "--quiet", "--no-cache"]),
             ("https.json", ["build", *https_urls, "--quiet", "--no-cache"])]
    for store in ("{dir}/s3.json", "{dir}/https.json", str(parquet)):
        for protocol in ("s3", "https"):
            for i, box in enumerate(BOXES):
                steps.append((f"{Path(store).name}-{protocol}-{i}.csv",
                              ["subset", store, *box, "--protocol", protocol]))
    return steps


def _run(steps, d: Path, capsys) -> dict[str, tuple[int, list[str], object]]:
    """Each step: (exit code, stderr lines, what it made: a store's content or a CSV);
    printed output read from ``capsys``, or (None) caught here."""
    results = {}
    for name, args in steps:
        args = [a.replace("{dir}", str(d)) for a in args]
        if args[0] == "build":
            args += ["--out", str(d / name)]
        if capsys is None:
            with contextlib.redirect_stdout(io.StringIO()) as o, \
                    contextlib.redirect_stderr(io.StringIO()) as e:
                rc = main(args)
            out, err = o.getvalue(), e.getvalue()
        else:
            rc = main(args)
            out, err = capsys.readouterr()
        made = _content(d / name) if args[0] == "build" else out
        results[name] = (rc, err.strip().splitlines(), made)
    return results


def _content(store: Path):
    """What a (JSON) store holds, read as gcov-index reads it: every reference and array
    metadata, the URL templates, the granules with their fingerprints; not when it was
    written."""
    fo = open_refs(store)
    meta = metadata(store, fo)
    attrs = store_attrs(store, meta)
    refs = {k: v for k, v in fo["refs"].items() if k not in (".zattrs", ".zmetadata")}
    arrays = {k: v for k, v in meta.items() if k != ".zattrs"}
    return refs, fo.get("templates"), arrays, attrs["granules"], attrs["n_chunk_refs"]


def test_at_5_percent_every_build_and_subset_succeeds_as_a_clean_run(clean, faulty, tmp_path,
                                                                     capsys, monkeypatch):
    s3, https = faulty
    steps, clean = clean["steps"], clean["got"]
    s3.rate = https.rate = 0.05
    monkeypatch.setenv("GCOV_INDEX_RETRIES", "5")
    for run in range(2):
        d = tmp_path / f"faulty{run}"
        d.mkdir()
        got = _run(steps, d, capsys)
        for name, (rc, err, made) in got.items():
            assert rc == 0 and err == [], (name, err)
            assert made == clean[name][2], name
    injected = s3.counts + https.counts
    injected.pop("passed")
    assert sum(injected.values()) >= 5 and len(injected) >= 3, injected
    # validate under the same faults: every chunk compared, nothing reported
    for store in ("s3.json", "https.json"):
        assert main(["validate", str(tmp_path / "faulty0" / store), "--sample", "3"]) == 0
    capsys.readouterr()


def test_at_20_percent_nothing_wrong_and_every_failure_is_exit_3(clean, faulty, tmp_path,
                                                                 capsys, monkeypatch):
    """One retry only, so that some requests still fail: those runs end with exit 3 and one
    line naming the source, and leave the earlier store as it was; every run that succeeds
    made exactly what the clean run made."""
    s3, https = faulty
    steps, clean_dir, clean = clean["steps"], clean["dir"], clean["got"]
    s3.rate = https.rate = 0.20
    monkeypatch.setenv("GCOV_INDEX_RETRIES", "1")
    failed = 0
    for run in range(2):
        d = tmp_path / f"faulty{run}"
        d.mkdir()
        for name, _ in steps:  # the earlier (clean) outputs are there: they must survive
            src = clean_dir / name
            if src.is_dir():
                shutil.copytree(src, d / name)
            elif src.exists():
                (d / name).write_bytes(src.read_bytes())
        for name, (rc, err, made) in _run(steps, d, capsys).items():
            if rc == 0:
                assert err == [] and made == clean[name][2], name
                continue
            failed += 1
            assert rc == 3 and len(err) == 1, (name, rc, err)
            assert err[0].startswith("gcov-index: error: ") and "unreachable" in err[0], err[0]
            if name.endswith((".json", ".parquet")):
                assert _content(d / name) == clean[name][2]  # the earlier store, untouched
    assert failed >= 2  # the failure path was taken
    # validate under the same faults: a source it cannot read is "not checked" (exit 3) with
    # one line, never "does not match its sources" (exit 6)
    codes = []
    for _ in range(3):
        for store in ("s3.json", "https.json"):
            rc = main(["validate", str(clean_dir / store), "--sample", "3"])
            err = capsys.readouterr().err.strip().splitlines()
            codes.append(rc)
            assert rc in (0, 3), (store, rc, err)
            assert err == [] if rc == 0 else len(err) == 1, err


# ---------------------------------------------------------------------------------------
# no abort at exit


def _cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | env | {"PYTHONPATH": str(ROOT), "GCOV_INDEX_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "gcov_index", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("protocol", ["s3", "https"])
def test_subset_with_a_rejected_token_exits_4_cleanly(stores, archive, tmp_path, protocol):
    """Was SIGABRT (exit 134) in 4 of 5 runs over S3: a chunk read still in flight when the
    interpreter shut down. Three runs, each: exit 4, one line, nothing else."""
    env = archive.env | {"EARTHDATA_TOKEN": "edl-expired-or-revoked"}
    for _ in range(3):
        p = _cli(["subset", str(stores["s3.json"]), "--bbox", *BBOX, "--protocol", protocol],
                 env, tmp_path)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 4 and len(lines) == 1, (p.returncode, p.stderr[-3000:])
        assert "rejected" in lines[0] or "refused" in lines[0]


def test_a_failed_subset_under_faults_exits_3_cleanly(stores, archive, tmp_path):
    with FaultProxy(archive.s3.url, rate=1.0, seed=1, faults=("reset-mid-body", "slowdown")) \
            as proxy:
        env = archive.env | FAST_RETRIES | {"AWS_ENDPOINT_URL": proxy.url,
                                            "GCOV_INDEX_RETRIES": "1"}
        p = _cli(["subset", str(stores["s3.parquet"]), "--bbox", *BBOX], env, tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 3 and len(lines) == 1, (p.returncode, p.stderr[-3000:])
    assert "unreachable" in lines[0] and p.stdout == ""
