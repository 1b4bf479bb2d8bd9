"""Modes on hand-made trees: stores, their Parquet versions, the build's lock and every output
written through ``atomic_file`` get what a plain ``open(path, "w")`` / ``mkdir`` gives under the
umask (0o666 / 0o777 less it), so a group folder (umask 002, setgid) shares them; a store made
private before is rewritten and reads as the new one."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gcov_index.store.layout import open_handle
from gcov_index.store.write import atomic_file, claim, write_store
from tests.support.modes import mode, umask
from tests.unit.test_store_integrity import store_tree


def tree_modes(top: Path) -> dict[str, int]:
    """Every file and folder under ``top`` with its mode bits."""
    return {str(Path(root, n).relative_to(top)): mode(Path(root, n))
            for root, dirs, files in os.walk(top) for n in dirs + files}


@pytest.fixture
def group(tmp_path) -> Path:
    """A group folder: setgid, open to all, so only the umask decides."""
    g = tmp_path / "group"
    g.mkdir()
    g.chmod(0o2777)
    return g


@pytest.mark.parametrize("mask", [0o002, 0o022])
def test_stores_written_and_rewritten_get_the_umask_mode(group, mask, monkeypatch):
    file_mode, dir_mode = 0o666 & ~mask, 0o777 & ~mask | stat.S_ISGID
    json_store, parquet_store = group / "s.json", group / "s.parquet"
    with umask(0o077):  # made private first (a user whose umask is 077) ...
        for out in (json_store, parquet_store):
            write_store(store_tree(2), out)
    assert mode(json_store) == 0o600
    with umask(mask):  # ... then rewritten under the group's umask
        for out in (json_store, parquet_store):
            write_store(store_tree(3), out)
        with claim(group / "held.parquet"):
            assert mode(group / ".held.parquet.lock") == file_mode
    assert mode(json_store) == file_mode
    version = Path(os.path.realpath(parquet_store))
    assert version.name == ".s.parquet.v2" and mode(version) == dir_mode
    inside = tree_modes(version)
    assert ".zmetadata" in inside and any(k.endswith("refs.0.parq") for k in inside)
    for name, m in inside.items():
        assert m == (dir_mode if (version / name).is_dir() else file_mode), (name, oct(m))
    for out in (json_store, parquet_store):  # the new store, whole
        h = open_handle(out)
        assert h.problems() == [] and len(h.meta[".zattrs"]["gcov_index"]["granules"]) == 3


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_outputs_get_the_umask_mode_not_mkstemps(group, mask):
    """subset's .csv, .nc and .png go through ``atomic_file``; so does the folder it makes."""
    out = group / "new" / "series.nc"
    with umask(mask):
        with atomic_file(out) as tmp:
            assert mode(tmp) == 0o666 & ~mask  # the temporary file already has its final mode
            tmp.write_bytes(b"series")
        with pytest.raises(RuntimeError), atomic_file(out) as tmp:  # a failed write ...
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert out.read_bytes() == b"series"  # ... leaves the earlier output as it was
    assert mode(out) == 0o666 & ~mask
    assert mode(out.parent) == 0o777 & ~mask | stat.S_ISGID
    assert sorted(p.name for p in out.parent.iterdir()) == ["series.nc"]


def test_a_lock_left_by_another_user_is_still_taken(group, monkeypatch):
    """A killed build of another user (or of an older gcov-index, 0o644) may leave a lock we
    cannot write: flock needs no write access, so it is opened read-only and still excludes
    a second build."""
    from gcov_index.errors import BadInputError

    lock = group / ".s.json.lock"
    lock.write_text("123\n")
    lock.chmod(0o444)
    real_open = os.open

    def as_another_user(path, flags, *args):  # tests run as root, who may write anything
        if Path(path) == lock and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", as_another_user)
    with claim(group / "s.json"):
        with pytest.raises(BadInputError, match="another gcov-index build is writing it"):
            with claim(group / "s.json"):
                pass
    assert not lock.exists()  # removed as a build's lock is when it ends
