"""The store layer on hand-made trees (no HDF5, no server): the integrity record and what
opening checks, the Parquet versions behind a link, the lock, and leftovers of killed builds."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path

import pytest

from gcov_index.errors import BadInputError, ValidationError
from gcov_index.store.layout import (
    INTEGRITY,
    STORE_ATTR,
    SortedRefs,
    metadata_digest,
    open_handle,
    open_refs,
)
from gcov_index.store.write import claim, write_store
from tests.unit.manifests import GRID, stack

HHHH = f"{GRID}/HHHH"


def store_tree(n: int = 3):
    """A merged tree with the root attributes a build gives it."""
    tree = stack(n)
    granules = [{"url": u, "granuleId": u.rsplit("/", 1)[1].removesuffix(".h5"),
                 "time": f"2025-11-{22 + t}T02:46:18", "fingerprint": {"size": 1}}
                for t, u in enumerate(tree.urls)]
    tree.groups[""] = tree.groups[""] | {STORE_ATTR: {
        "format_version": 2, "granules": granules, "superseded": [],
        "n_chunk_refs": tree.n_refs, "n_bytes_referenced": tree.n_bytes_referenced}}
    return tree


def edit(store: Path, change) -> None:
    doc = json.loads(store.read_text())
    change(doc["refs"])
    store.write_text(json.dumps(doc))


# -- the record --------------------------------------------------------------------------------
def test_a_store_carries_its_record_and_opens_whole(tmp_path):
    store = write_store(store_tree(), tmp_path / "s.json")
    h = open_handle(store)
    record = h.attrs[INTEGRITY]
    assert record["version"] == 1 and len(record["metadata"]) == 32
    assert record["arrays"][HHHH][0] == 3 * 6  # 3 granules x 3 x 2 chunks
    assert sum(n for n, _ in record["arrays"].values()) == sum(
        1 for k in h.fo["refs"] if k.rsplit("/", 1)[-1][:1] != ".")
    assert h.problems() == []


def test_the_record_holds_however_the_json_is_formatted(tmp_path):
    store = write_store(store_tree(), tmp_path / "s.json")
    doc = json.loads(store.read_text())
    store.write_text(json.dumps(doc, indent=2, sort_keys=True))  # e.g. jq -S, json.tool
    assert open_handle(store).problems() == []


@pytest.mark.parametrize("change, problem", [
    (lambda r: r[f"{HHHH}/1.0.1"].__setitem__(1, 7), f"{HHHH}: chunk references altered"),
    (lambda r: r.pop(f"{HHHH}/1.0.1"), f"{HHHH}: 17 chunk references, 18 recorded"),
    (lambda r: r.__setitem__(f"{HHHH}/9.0.0", ["{{u0}}", 1, 2]), "19 chunk references"),
    (lambda r: r.__setitem__(f"{HHHH}/1.0.1", r[f"{HHHH}/2.0.1"]), "altered"),
    (lambda r: r.__setitem__(f"{GRID}/.zattrs", "{}"), "per-array metadata differ"),
    (lambda r: r.__setitem__(".zmetadata", r[".zmetadata"].replace('"units":"1"',
                                                                   '"units":"2"')),
     "metadata (.zarray / .zattrs / .zgroup) altered"),
])
def test_an_altered_json_store_is_refused(tmp_path, change, problem):
    store = write_store(store_tree(), tmp_path / "s.json")
    edit(store, change)
    with pytest.raises(ValidationError, match="damaged store") as e:
        open_handle(store)
    assert problem in str(e.value) and str(store) in str(e.value)
    assert any(problem in p for p in open_handle(store, verify=False).problems())


def test_swapped_url_templates_are_refused(tmp_path):
    """Template uT must name granule T's recorded URL: swapped, every value would be labelled
    with the wrong granule."""
    store = write_store(store_tree(), tmp_path / "s.json")
    doc = json.loads(store.read_text())
    t = doc["templates"]
    swapped = {**t, "u0": t["u1"], "u1": t["u0"]}
    store.write_text(json.dumps({**doc, "templates": swapped}))
    with pytest.raises(ValidationError, match=r"damaged store: template u0: chunks read from "
                       r".+, not from the indexed granule .+ \(and 1 more\)"):
        open_handle(store)
    assert len(open_handle(store, verify=False).problems()) == 2
    store.write_text(json.dumps({**doc, "templates": dict(reversed(t.items()))}))
    assert open_handle(store).problems() == []  # the same templates in another order: whole
    doc["templates"] = ["s3://x"]
    store.write_text(json.dumps(doc))
    with pytest.raises(ValidationError, match="damaged store: URL templates malformed"):
        open_handle(store)


def test_the_metadata_digest_leaves_the_record_out(tmp_path):
    store = write_store(store_tree(), tmp_path / "s.json")
    meta = open_handle(store).meta
    other = json.loads(json.dumps(meta))
    other[".zattrs"][STORE_ATTR][INTEGRITY] = {"anything": 1}
    assert metadata_digest(other) == metadata_digest(meta)
    other[".zattrs"][STORE_ATTR]["granules"][0]["url"] = "s3://elsewhere/x.h5"
    assert metadata_digest(other) != metadata_digest(meta)


def test_arrays_whose_names_share_a_prefix_are_kept_apart():
    refs = {"g/HH/0": ["{{u0}}", 1, 2], "g/HH.x/0": ["{{u0}}", 3, 4],
            "g/HHHH/0": ["{{u0}}", 5, 6], "g/HH/.zarray": "{}", "g/HH/1": "base64:AA=="}
    s = SortedRefs(refs)
    assert s.chunk_keys("g/HH") == ["g/HH/0", "g/HH/1"]
    assert s.chunk_keys("g/HHHH") == ["g/HHHH/0"]
    assert SortedRefs(dict(reversed(refs.items()))).digests(["g/HH"]) == s.digests(["g/HH"])


def test_a_store_without_a_record_opens_unchecked(tmp_path):
    store = write_store(store_tree(), tmp_path / "s.json")

    def strip(refs):
        attrs = json.loads(refs[".zattrs"])
        del attrs[STORE_ATTR][INTEGRITY]
        refs[".zattrs"] = json.dumps(attrs)
        del refs[".zmetadata"]
        refs[f"{HHHH}/1.0.1"][1] = 7  # unnoticed: nothing to check it against

    edit(store, strip)
    h = open_handle(store)
    assert h.record is None and h.problems() == []


@pytest.mark.parametrize("content, what", [
    (b"[1, 2]", "not a kerchunk JSON reference store"),
    (b"null", "not a kerchunk JSON reference store"),
    (b"\xff\xfe", "not a kerchunk JSON reference store"),
    (b'{"version": 1, "refs": {".zattrs": "{\\"gcov_index\\": {}}"}}', "lists no granules"),
    (b'{"version": 1, "refs": {".zgroup": "{}"}}', "no 'gcov_index' root attribute"),
])
def test_what_is_not_a_store_is_one_line(tmp_path, content, what):
    store = tmp_path / "s.json"
    store.write_bytes(content)
    with pytest.raises(BadInputError, match=what):
        open_handle(store)


def test_a_folder_named_json_is_one_line(tmp_path):
    (tmp_path / "s.json").mkdir()
    with pytest.raises(BadInputError, match="a folder, not a kerchunk JSON"):
        open_handle(tmp_path / "s.json")


# -- Parquet: versions behind a link -------------------------------------------------------------
def test_parquet_versions_behind_a_link(tmp_path):
    out = tmp_path / "s.parquet"
    tree = store_tree()
    for _ in range(3):
        write_store(tree, out)
    assert os.readlink(out) == ".s.parquet.v3"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.parquet.v2", ".s.parquet.v3",
                                                          "s.parquet"]
    h = open_handle(out)
    assert h.path == tmp_path / ".s.parquet.v3" and h.problems(deep=True) == []
    assert len(open_handle(h.path).urls) == 3  # one version, opened by its folder's name
    with pytest.raises(BadInputError, match="one version of a Parquet store"):
        write_store(tree, h.path)
    assert sorted(h.record["files"]) == sorted(
        str(p.relative_to(h.path)) for p in h.path.rglob("refs.*.parq"))
    as_json = open_handle(write_store(tree, tmp_path / "s.json"))
    assert h.array_refs(HHHH) == as_json.array_refs(HHHH)  # the same references, read back
    assert h.record["arrays"] == as_json.record["arrays"]


def test_a_deleted_refs_file_is_refused(tmp_path):
    out = write_store(store_tree(), tmp_path / "s.parquet")
    (out / HHHH / "refs.0.parq").unlink()
    with pytest.raises(ValidationError, match=f"{HHHH}/refs.0.parq: missing"):
        open_handle(out)


# -- the lock and leftovers ----------------------------------------------------------------------
def test_a_second_claim_of_one_out_is_refused(tmp_path):
    out = tmp_path / "s.json"
    with claim(out):
        assert (tmp_path / ".s.json.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(BadInputError, match=rf"--out {out}: another gcov-index build is "
                           rf"writing it \(pid {os.getpid()}\)"), claim(out):
            pass
        with claim(tmp_path / "t.json"):  # another --out: not held
            pass
    assert list(tmp_path.iterdir()) == []
    with claim(out):  # released
        pass


def test_leftovers_of_killed_builds_are_removed_and_nothing_else(tmp_path):
    tree = store_tree()
    leftovers = [".s.json.abcd1234.tmp", ".s.json.k3j_x9zz.tmp", ".s.parquet.0123abcd.tmp",
                 ".s.parquet.link.tmp"]
    kept = [".s.json.backup", ".other.json.abcd1234.tmp", "notes.txt",
            ".s.json.abcd1234.tmp.keep"]
    for name in leftovers[:2] + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / leftovers[2] / "store").mkdir(parents=True)
    (tmp_path / leftovers[3]).symlink_to("nowhere")
    write_store(tree, tmp_path / "s.json")
    write_store(tree, tmp_path / "s.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*kept, "s.json", "s.parquet", ".s.parquet.v1"])


def test_an_older_gcov_index_s_hidden_store_is_put_back_first(tmp_path):
    """gcov-index before versions could be killed between two renames, leaving the store in
    .NAME.parquet.old and nothing at the path: the next build puts it back, then replaces it
    (kept as the previous version)."""
    out = tmp_path / "s.parquet"
    staging = write_store(store_tree(2), tmp_path / "old.parquet")
    os.rename(staging.resolve(), tmp_path / ".s.parquet.old")
    staging.unlink()
    write_store(store_tree(3), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.parquet.v1", ".s.parquet.v2",
                                                          "s.parquet"]
    assert len(open_handle(tmp_path / ".s.parquet.v1").urls) == 2
    assert len(open_handle(out).urls) == 3


def test_a_refused_out_leaves_a_user_s_old_folder_alone(tmp_path):
    """--out a user's folder named NAME.parquet, beside a .NAME.parquet.old of theirs: the
    build is refused and neither is touched."""
    out = tmp_path / "data.parquet"
    out.mkdir()
    (out / "mine.csv").write_text("a,b")
    old = tmp_path / ".data.parquet.old"
    old.mkdir()
    (old / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="not a gcov-index store"):
        write_store(store_tree(), out)
    assert (out / "mine.csv").read_text() == "a,b"
    assert (old / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.parquet.old",
                                                          "data.parquet"]


def test_an_old_folder_that_is_not_a_store_is_kept_beside_a_store(tmp_path):
    out = write_store(store_tree(), tmp_path / "s.parquet")
    old = tmp_path / ".s.parquet.old"
    old.mkdir()
    (old / "notes.txt").write_text("keep me")
    write_store(store_tree(), out)
    assert (old / "notes.txt").read_text() == "keep me"


def test_folders_that_cannot_be_locked_are_read_unpinned_and_never_deleted(tmp_path,
                                                                          monkeypatch):
    """NFS emulates flock with POSIX locks: a folder opened read-only cannot be locked (EBADF).
    A reader then reads unpinned, and a build deletes no old version (it cannot lock one)."""
    real_flock = fcntl.flock

    def flock(fd, op):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    out = tmp_path / "s.parquet"
    for _ in range(3):
        write_store(store_tree(), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".s.parquet.v1", ".s.parquet.v2", ".s.parquet.v3", "s.parquet"]
    with open_handle(out) as h:
        assert h.path == tmp_path / ".s.parquet.v3" and h.problems(deep=True) == []


def edit_record(store: Path, change) -> None:
    """Change the integrity record in a Parquet store's ``.zmetadata``."""
    zm = store / ".zmetadata"
    met = json.loads(zm.read_text())
    change(met["metadata"][".zattrs"][STORE_ATTR][INTEGRITY])
    zm.write_text(json.dumps(met))


@pytest.mark.parametrize("name", ["../../etc/passwd", "/dev/zero", f"{HHHH}/../../x/refs.0.parq",
                                  f"/{HHHH}/refs.0.parq", f"{HHHH}/refs.0.parq/../refs.1.parq",
                                  "elsewhere/refs.0.parq", f"{HHHH}/refs.x.parq", "x"])
def test_the_record_names_only_refs_files_of_its_arrays(tmp_path, name):
    out = write_store(store_tree(), tmp_path / "s.parquet")
    edit_record(out, lambda rec: rec["files"].__setitem__(name, [1, "0" * 32]))
    with pytest.raises(ValidationError, match="damaged store: malformed integrity record;"):
        open_handle(out)


def test_a_refs_file_that_is_not_a_regular_file_in_the_store_is_refused(tmp_path):
    out = write_store(store_tree(), tmp_path / "s.parquet")
    refs = out / HHHH / "refs.0.parq"
    refs.unlink()
    refs.symlink_to("/dev/zero")
    with pytest.raises(ValidationError, match=f"{HHHH}/refs.0.parq: not a regular file"):
        open_handle(out)
    elsewhere = tmp_path / "elsewhere"
    os.rename(out / HHHH, elsewhere)
    (elsewhere / "refs.0.parq").unlink()
    (elsewhere / "refs.0.parq").write_bytes(b"x")
    (out / HHHH).symlink_to(elsewhere)
    with pytest.raises(ValidationError, match=f"{HHHH}/refs.0.parq: not a regular file"):
        open_handle(out)


@pytest.mark.parametrize("key, value", [
    ("arrays", {HHHH: 5}), ("arrays", [HHHH]), ("arrays", {HHHH: [1]}),
    ("arrays", {HHHH: [True, "0" * 32]}), ("arrays", {f"{HHHH}/": [18, "0" * 32]}),
    ("arrays", {"": [0, "0" * 32]}), ("arrays", None), ("files", ["x"]),
    ("files", {f"{HHHH}/refs.0.parq": "x"}), ("files", {f"{HHHH}/refs.0.parq": [None, 1]}),
    ("metadata", 5),
])
@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_a_malformed_record_is_a_damaged_store(tmp_path, fmt, key, value):
    """Whatever shape the record has, the store is refused in one line (exit 6), never with a
    TypeError (exit 1)."""
    out = write_store(store_tree(), tmp_path / f"s.{fmt}")
    if fmt == "parquet":
        edit_record(out, lambda rec: rec.__setitem__(key, value))
    else:
        def change(refs):
            zm = json.loads(refs[".zmetadata"])
            zm["metadata"][".zattrs"][STORE_ATTR][INTEGRITY][key] = value
            refs[".zmetadata"] = json.dumps(zm)
        edit(out, change)
    with pytest.raises(ValidationError, match="damaged store: malformed integrity record;") as e:
        open_handle(out)
    assert e.value.exit_code == 6
    assert open_handle(out, verify=False).problems(deep=True) == ["malformed integrity record"]


def test_open_refs_names_a_folder_that_stays_valid(tmp_path):
    """A plain folder (an older gcov-index's Parquet store) is read through its descriptor by
    a handle; open_refs gives its real path, not /proc/self/fd/N of a closed descriptor."""
    import gc

    out = write_store(store_tree(), tmp_path / "s.parquet")
    version = out.resolve()
    out.unlink()
    os.rename(version, out)
    fo = open_refs(out)
    gc.collect()
    assert fo == str(out) and json.loads((Path(fo) / ".zmetadata").read_text())["metadata"]
    assert open_refs(write_store(store_tree(), tmp_path / "s.json"))["templates"]["u0"]


def test_without_o_directory_or_renameat2_builds_and_reads_still_work(tmp_path, monkeypatch):
    """Where the system has no O_DIRECTORY (not POSIX) no folder is opened: no reader pins, no
    folder fsync; and a C library that cannot be loaded means no renameat2 (two renames)."""
    import ctypes

    from gcov_index.store import layout

    def no_cdll(*args, **kwargs):
        raise TypeError("no C library")

    monkeypatch.setattr(layout, "O_DIRECTORY", 0)
    monkeypatch.setattr(ctypes, "CDLL", no_cdll)
    opened_folders = []
    real_open, o_directory = os.open, os.O_DIRECTORY

    def recording_open(path, flags, *args, **kwargs):
        if flags & o_directory and "dir_fd" not in kwargs:  # not shutil.rmtree's own
            opened_folders.append(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    out = tmp_path / "s.parquet"
    version = write_store(store_tree(), out).resolve()
    out.unlink()
    os.rename(version, out)  # a plain folder, as an older gcov-index wrote it
    for _ in range(3):
        write_store(store_tree(), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.parquet.v3", ".s.parquet.v4",
                                                          "s.parquet"]
    with open_handle(out) as h:
        assert h._fd is None and h.problems(deep=True) == []
    assert opened_folders == []
