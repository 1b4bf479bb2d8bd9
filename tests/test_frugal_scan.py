"""The frugal scan (issue 11): the scan reads a granule through 64 KiB blocks with read-ahead
and a learned layout, and its manifest is the one the 4 MiB-page reader gave, to the byte of
its JSON form, whatever the layout guess; over S3 a full-size granule costs a few MB."""

from __future__ import annotations

import json

import pytest
from obstore.store import LocalStore

from gcov_index import scan
from gcov_index.errors import AccessError
from gcov_index.index import scan as scan_module
from gcov_index.io import access as access_module
from gcov_index.io.access import (
    BLOCK,
    FrugalReader,
    open_frugal_reader,
    open_reader,
    remember_layout,
)
from tests.support.granules import GranuleSpec, full_size, write_granule
from tests.support.services import LocalArchive


@pytest.fixture(autouse=True)
def _no_layouts():
    access_module._LAYOUTS.clear()
    yield
    access_module._LAYOUTS.clear()


def _json(manifest) -> str:
    return json.dumps(manifest.to_json())


def _page_scan(url, access=None):
    """The scan through the reader it had before: 4 MiB pages, 64 cached."""
    def old_reader(store, path, url=None, **_):
        reader = open_reader(store, path, url)
        reader.used = set()
        return reader

    original = scan_module.open_frugal_reader
    scan_module.open_frugal_reader = old_reader
    try:
        return scan_module.scan(url, access)
    finally:
        scan_module.open_frugal_reader = original


def _readers(monkeypatch) -> list[FrugalReader]:
    made: list[FrugalReader] = []

    def spy(*args, **kwargs):
        made.append(open_frugal_reader(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(scan_module, "open_frugal_reader", spy)
    return made


@pytest.fixture(scope="module")
def granules(tmp_path_factory):
    d = tmp_path_factory.mktemp("frugal")
    small = write_granule(d / "small", GranuleSpec())
    full = [write_granule(d / "full", full_size().repeat(i)) for i in range(2)]
    return {"small": small, "full": full}


@pytest.mark.parametrize("which", ["small", "full"])
def test_the_manifest_is_the_page_readers_own(granules, which):
    path = granules[which] if which == "small" else granules[which][0]
    before = _json(_page_scan(str(path)))
    assert _json(scan(str(path))) == before  # cold
    assert _json(scan(str(path))) == before  # with the layout it learned


def test_a_wrong_layout_guess_costs_bytes_never_correctness(granules, monkeypatch):
    small, full = granules["small"], granules["full"][0]
    want = _json(_page_scan(str(full)))
    key = scan_module._layout_key(scan_module._granule_of(full.as_uri()))
    readers = _readers(monkeypatch)
    scan(str(full))
    needed = readers[-1].used
    # blocks it does not need, and a block past the end of the file, guessed for this layout
    access_module._LAYOUTS.clear()
    remember_layout(key, set(sorted(set(range(400)) - needed)[:40]) | {10 ** 9})
    assert _json(scan(str(full))) == want
    assert readers[-1].used == needed
    # another granule's layout (a small one's) taken for the full-size one's
    scan(str(small))
    access_module._LAYOUTS.clear()
    remember_layout(key, readers[-1].used)
    assert _json(scan(str(full))) == want


def test_the_next_granule_of_a_layout_is_read_in_fewer_rounds(granules, monkeypatch):
    readers = _readers(monkeypatch)
    first, second = granules["full"]
    scan(str(first))
    scan(str(second))
    cold, warm = readers
    assert warm.rounds < cold.rounds
    assert access_module.known_layout(scan_module._layout_key(
        scan_module._granule_of(second.as_uri()))) == frozenset(warm.used)


def test_a_full_size_granule_costs_a_few_megabytes_over_s3(granules, tmp_path):
    with LocalArchive(tmp_path / "archive", s3_backend="files") as archive:
        url = archive.add(granules["full"][0])[0]
        access = archive.access()
        access.credentials.get()
        archive.s3.stats.reset()
        frugal = scan(url, access)
        frugal_bytes = archive.s3.stats.bytes
        archive.s3.stats.reset()
        paged = _page_scan(url, access)
        paged_bytes = archive.s3.stats.bytes
    assert _json(frugal) == _json(paged)
    assert frugal_bytes <= 4_000_000 < paged_bytes


def test_the_reader_gives_the_files_bytes(tmp_path):
    data = bytes(range(256)) * (3 * BLOCK // 256 + 77)
    (tmp_path / "f.bin").write_bytes(data)
    reader = open_frugal_reader(LocalStore(str(tmp_path)), "f.bin")
    for start, size in [(0, 8), (BLOCK - 3, 10), (5, 2 * BLOCK + 9), (len(data) - 4, 100),
                        (len(data) + 10, 5), (17, 0)]:
        reader.seek(start)
        assert reader.read(size) == data[start:start + size]
        assert reader.tell() == max(start, min(len(data), start + size))
    reader.seek(BLOCK + 1)
    assert reader.read() == data[BLOCK + 1:]
    assert reader.read(5) == b""


def test_a_short_block_is_a_failed_read_not_a_short_file():
    class Short:
        def head(self, path):
            return {"size": 3 * BLOCK}

        def get_ranges(self, path, starts, lengths):
            return [b"x" * (n - 1) for n in lengths]

    reader = open_frugal_reader(Short(), "g.h5", "s3://b/g.h5")
    with pytest.raises(AccessError, match=r"s3://b/g.h5: unreachable \(short read: "):
        reader.read(8)
    assert reader.failure is not None
