"""Shared fixtures: one synthetic stack and one local archive per test session.

Two lanes: ``tests/unit`` runs on hand-made values in seconds (``pytest -m "not services"``);
every other test is marked ``services`` here: it starts local servers (S3, credentials, HTTPS,
CMR), writes HDF5 granules or runs the CLI in subprocesses. ``make test`` runs both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from gcov_index.io.access import Access
from tests.support.granules import forget_kept, make_stack
from tests.support.services import LocalArchive

UNIT = Path(__file__).parent / "unit"


_EXIT: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _EXIT.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    """End the test process as soon as pytest is done with it. The session leaves many obstore
    stores (Rust, with tokio threads and Python credential callbacks) alive; one of those
    threads calling into the interpreter while it finalizes crashed the process at exit after
    '730 passed' (a segfault, once in CI's run). The summary is printed and every fixture torn
    down by now; the CLI ends its process the same way (gcov_index/__main__.py). Under
    pytest-xdist (``make test``) a worker gets here after it has sent the controller its
    results, which then takes its end as expected."""
    if _EXIT:
        forget_kept()  # os._exit runs no atexit function
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT[-1])


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if UNIT not in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.services)



@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> dict:
    """Three acquisitions, an older release of the first, and a QA_STATS companion."""
    d = tmp_path_factory.mktemp("granules")
    paths, old, qa = make_stack(d)
    return {"paths": paths, "old": old, "qa": qa, "dir": d}


@pytest.fixture(scope="session")
def archive(stack, tmp_path_factory):
    with LocalArchive(tmp_path_factory.mktemp("archive")) as a:
        for p in [*stack["paths"], stack["old"], stack["qa"]]:
            a.add(p)
        yield a


@pytest.fixture
def archive_env(archive, monkeypatch):
    for k, v in archive.env.items():
        monkeypatch.setenv(k, v)
    return archive.env


@pytest.fixture
def access(archive_env) -> Access:
    return Access.from_env()


@pytest.fixture(scope="session", autouse=True)
def _no_fsync():
    """fsync makes a write durable against a power cut, which no test makes; the crash the
    tests make (kill -9, an error half-way) loses nothing the page cache holds. So the test
    processes skip it (~0.4 s of each Parquet build here: an fsync per refs file). The builds
    the tests kill run in interpreters of their own, with it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "fsync", lambda fd: None)
        yield


@pytest.fixture(autouse=True)
def _no_user_config(monkeypatch, tmp_path):
    """Tests never read the developer's token, netrc or cache."""
    for name in ("EARTHDATA_TOKEN", "EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("GCOV_INDEX_CACHE", str(tmp_path / "cache"))
    # builds scan in threads here (a process pool spawns interpreters that import the scan's
    # libraries: ~2 s a build on 2 cores); tests/test_workers.py tests the process pool
    monkeypatch.setenv("GCOV_INDEX_POOL", "thread")


@pytest.fixture(scope="session")
def stores(archive, stack, tmp_path_factory):
    """JSON and Parquet stores of the stack's three granules built from s3:// URLs, and a
    JSON store built from https:// URLs, with the Access that built them."""
    from gcov_index import build

    d = tmp_path_factory.mktemp("stores-s3")
    access = archive.access()
    s3 = [archive.s3_url(p.name) for p in stack["paths"]]
    https = [archive.https_url(p.name) for p in stack["paths"]]
    out = {f"s3.{fmt}": build(s3, d / f"s3.{fmt}", access=access, cache=False).store
           for fmt in ("json", "parquet")}
    out["https.json"] = build(https, d / "https.json", access=access, cache=False).store
    return {"access": access, **out}
