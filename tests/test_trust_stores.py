"""Stores are whole or absent (issue 9): a build killed at any step leaves the old store or the
new one, readable, and the next build leaves nothing behind; readers see one version while
builds replace the store; a store with a part missing or altered is refused; ``--out`` never
replaces what is not a gcov-index store; two builds of one ``--out``: one is refused; validate
compares every reference with the sources' chunk indexes; a bad cache entry is rescanned.

Everything runs on the session's local synthetic granules (no server needed).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcov_index import Access, build
from gcov_index.cli import main
from gcov_index.errors import AccessError, ValidationError
from gcov_index.index.cache import ManifestCache, checksum
from gcov_index.io.access import canonical_url
from gcov_index.io.fingerprint import fingerprint
from gcov_index.product import GRIDS
from gcov_index.read.info import store_info
from gcov_index.read.open import open_store
from gcov_index.read.subset import Box, subset
from gcov_index.store.kerchunk import consolidated, with_integrity
from gcov_index.store.layout import INTEGRITY, STORE_ATTR, open_handle
from gcov_index.store.write import write_store

ROOT = Path(__file__).resolve().parents[1]
HHHH = f"{GRIDS}/frequencyA/HHHH"
HVHV = f"{GRIDS}/frequencyA/HVHV"
BOX = Box.parse((-118.08, 36.96, -118.06, 36.98))


@pytest.fixture(scope="module")
def local(stack, tmp_path_factory):
    """The stack's three granules, two overlapping sets of them (A: 0 1, B: 1 2), the HHHH
    box mean of each granule, and a manifest cache already holding all three."""
    d = tmp_path_factory.mktemp("trust")
    paths = [str(p) for p in stack["paths"]]
    cache = d / "cache"
    whole = build(paths, d / "whole.json", access=Access(), cache_dir=cache).store
    series = subset(whole, BOX, access=Access())
    expected = dict(zip(series["granuleId"].values.tolist(),
                        series["frequencyA_HHHH"].values.tolist(), strict=True))
    ids = list(expected)
    return {"paths": paths, "A": paths[:2], "B": paths[1:], "ids_A": ids[:2], "ids_B": ids[1:],
            "expected": expected, "cache": cache, "dir": d}


def read_back(store, local) -> list[str]:
    """Open and read the store as users do; the granule ids it holds. Fails on any error or
    on values that are not those of the granules it names."""
    series = subset(store, BOX, access=Access())
    ids = series["granuleId"].values.tolist()
    want = [local["expected"][g] for g in ids]
    np.testing.assert_array_equal(series["frequencyA_HHHH"].values, want)
    info = store_info(store)
    assert [g["granuleId"] for g in info.granules] == ids
    return ids


def listing(folder: Path) -> dict[str, bytes | str]:
    """Every path under ``folder`` (links not followed) with its bytes or link target."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = Path(root, name)
            rel = str(p.relative_to(folder))
            out[rel] = (f"-> {os.readlink(p)}" if p.is_symlink() else
                        "<dir>" if p.is_dir() else p.read_bytes())
    return out


def one_line(capsys, rc: int, code: int, expect: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code and len(err) == 1, (rc, err)
    assert err[0].startswith("gcov-index: error: ") and expect in err[0], err[0]
    return err[0]


# ---------------------------------------------------------------------------------------------
# kill -9 at every step of a build


SERVER = textwrap.dedent('''
    """Forks one writer per request (a pruned tree written to --out with every file-system
    step counted) and SIGKILLs it at step ``kill_at``; answers how it ended."""
    import json, os, pickle, shutil, signal, sys, traceback
    import kerchunk.df  # noqa: F401  (pandas, fastparquet, zarr: loaded once, before forking)
    from gcov_index.store import write

    STEPS = ("replace", "rename", "symlink", "unlink", "rmdir", "mkdir", "fsync", "pwrite")

    def run(tree, out, kill_at, log):
        with open(tree, "rb") as f:
            tree = pickle.load(f)
        steps, inside = [], []

        def wrap(owner, name):
            real = getattr(owner, name)

            def step(*args, **kwargs):
                # the calls inside rmtree are one kind: a (renamed) folder being deleted
                steps.append("rmtree:" + name if any(inside) else name)
                if len(steps) == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                inside.append(name == "rmtree")
                try:
                    return real(*args, **kwargs)
                finally:
                    inside.pop()
            setattr(owner, name, step)

        for name in STEPS:
            wrap(os, name)
        wrap(shutil, "rmtree")
        wrap(json, "dump")
        wrap(write, "_exchange")
        write.write_store(tree, out)
        with open(log, "w") as f:
            f.write("\\n".join(steps))

    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                run(**json.loads(line))
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
                          "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}),
              flush=True)
''')


class Killer:
    """A process that has imported the writer once and forks a fresh writer per request."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)

    def write(self, tree: Path, out: Path, kill_at: int, log: Path) -> dict:
        self.proc.stdin.write(json.dumps({"tree": str(tree), "out": str(out),
                                          "kill_at": kill_at, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def killer():
    k = Killer()
    yield k
    k.close()


@pytest.fixture(scope="module")
def trees(local):
    """Sets A and B as trees pruned to frequencyA (the write steps are those of the whole
    tree; there are fewer files to write), pickled for the killed writers."""
    out = {}
    for name in ("A", "B"):
        tree = build(local[name], local["dir"] / f"t{name}.json", access=Access(),
                     cache_dir=local["cache"]).tree
        keep = f"{GRIDS}/frequencyA"
        tree.arrays = {p: a for p, a in tree.arrays.items() if p.startswith(keep + "/")}
        tree.groups = {g: a for g, a in tree.groups.items()
                       if keep.startswith(g) or g.startswith(keep)}
        path = local["dir"] / f"tree{name}.pkl"
        path.write_bytes(pickle.dumps(tree))
        out[name] = (tree, path)
    return out


def kill_points(steps: list[str]) -> list[int]:
    """Every step (1-based) that starts or ends a run of the same kind of call: each rename,
    link, removal, lock write and JSON write, and both ends of the bulk runs (the folders and
    fsyncs of a Parquet version being written, the removals inside a folder being deleted)."""
    kinds = [s.split(":")[0] for s in steps]
    return [i + 1 for i, k in enumerate(kinds)
            if i == 0 or kinds[i - 1] != k or i + 1 == len(kinds) or kinds[i + 1] != k]


def make_legacy(out: Path, tree) -> None:
    """A Parquet store as gcov-index wrote it before versions: a real folder at ``out``."""
    for p in out.parent.iterdir():
        if p.name == out.name or p.name.startswith(f".{out.name}."):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    staging = out.with_name("staging.parquet")
    write_store(tree, staging)
    shutil.copytree(staging, out)  # follows the link: a plain folder
    for p in list(out.parent.iterdir()):
        if "staging" in p.name:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


@pytest.mark.parametrize("fmt, legacy", [("json", False), ("parquet", False),
                                         ("parquet", True)],
                         ids=["json", "parquet", "parquet-from-a-real-folder"])
def test_a_build_killed_at_any_step_leaves_a_whole_store(killer, trees, local, tmp_path, fmt,
                                                         legacy):
    (tree_a, _), (_, pickled_b) = trees["A"], trees["B"]
    d = tmp_path / "out"
    d.mkdir()
    out = d / f"s.{fmt}"
    log = tmp_path / "steps"

    def reset():
        if legacy:
            make_legacy(out, tree_a)
        else:
            write_store(tree_a, out)
            write_store(tree_a, out)  # a previous version too, as in use

    reset()
    done = killer.write(pickled_b, out, 10**9, log)  # a whole run, counting its steps
    assert done == {"signal": 0, "code": 0}
    steps = log.read_text().split()
    assert read_back(out, local) == local["ids_B"]
    points = kill_points(steps)
    seen = {}
    for k in points:
        reset()
        assert killer.write(pickled_b, out, k, log)["signal"] == signal.SIGKILL, k
        ids = read_back(out, local)  # the old store or the new one, whole and readable
        assert ids in (local["ids_A"], local["ids_B"]), (k, ids)
        seen[k] = "new" if ids == local["ids_B"] else "old"
        write_store(tree_a, out)  # the next build cleans what the killed one left
        names = sorted(listing(d))
        versions = [n for n in names if n.startswith(f".{out.name}.v") and "/" not in n]
        top = [n for n in names if "/" not in n and n not in versions]
        assert top == [out.name], (k, steps[k - 1], names)  # no .tmp, no .lock, no .old
        assert len(versions) == (2 if fmt == "parquet" else 0), (k, names)
        assert read_back(out, local) == local["ids_A"]
    # the switch is one step: old before it, new from it on
    order = [seen[k] for k in points]
    assert order == sorted(order, key=["old", "new"].index), dict(zip(points, steps, strict=False))
    assert "old" in order and "new" in order
    print(f"{fmt}{' (from a real folder)' if legacy else ''}: {len(steps)} steps, killed at "
          f"{len(points)}: " + " ".join(f"{k}:{steps[k - 1]}:{seen[k]}" for k in points))


# ---------------------------------------------------------------------------------------------
# readers during rebuilds


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_readers_see_one_version_while_builds_replace_the_store(local, trees, tmp_path, fmt):
    """Builds of A and B in turn into one --out (JSON: whole builds; Parquet: the pruned trees
    written, so that there are more swaps in the time), while two threads run subset and one
    runs info on it: no error, and every result is one version's (ids and values agree)."""
    out = tmp_path / f"s.{fmt}"
    sets = [local["A"], local["B"]]
    rounds = 6 if fmt == "json" else 10

    def one_build(i):
        if fmt == "json":
            build(sets[i % 2], out, access=Access(), cache_dir=local["cache"], replace=True)
        else:
            write_store(trees["AB"[i % 2]][0], out)

    one_build(0)
    cond = threading.Condition()
    state = {"built": 0, "read_after": 0, "stop": False}
    reads, errors, mixed = {"subset": 0, "info": 0}, [], []

    def builder():
        try:
            for i in range(1, rounds + 1):
                one_build(i)
                with cond:
                    state["built"] = i
                    cond.notify_all()
                    # a read that began after this build must complete before the next one
                    assert cond.wait_for(lambda i=i: state["read_after"] >= i or errors, 300)
        except BaseException as e:
            errors.append(f"build: {type(e).__name__}: {e}")
        finally:
            with cond:
                state["stop"] = True
                cond.notify_all()

    def reader(kind):
        done: dict[int, int] = {}
        while not state["stop"]:
            epoch = state["built"]
            if done.get(epoch, 0) >= 3:  # a few reads per version: the builder gets the GIL too
                with cond:
                    cond.wait_for(lambda e=epoch: state["built"] != e or state["stop"], 300)
                continue
            done[epoch] = done.get(epoch, 0) + 1
            try:
                if kind == "subset":
                    series = subset(out, BOX, access=Access())
                    ids = series["granuleId"].values.tolist()
                    values = series["frequencyA_HHHH"].values.tolist()
                    if ids not in (local["ids_A"], local["ids_B"]) or \
                            values != [local["expected"][g] for g in ids]:
                        mixed.append((ids, values))
                else:
                    ids = [g["granuleId"] for g in store_info(out).granules]
                    if ids not in (local["ids_A"], local["ids_B"]):
                        mixed.append(ids)
            except BaseException as e:
                errors.append(f"{kind}: {type(e).__name__}: {e}")
                return
            with cond:
                reads[kind] += 1
                if kind == "subset":
                    state["read_after"] = max(state["read_after"], epoch)
                    cond.notify_all()

    threads = [threading.Thread(target=builder)] + [
        threading.Thread(target=reader, args=(k,)) for k in ("subset", "subset", "info")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert errors == [] and mixed == []
    assert reads["subset"] >= rounds and reads["info"] >= 1
    print(f"{fmt}: {rounds} rebuilds, {reads['subset']} subsets and {reads['info']} infos "
          f"during them: 0 errors, 0 mixed")
    one_build(0)  # now that no reader holds a version, only the last two remain
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([out.name] + ([f".{out.name}.v{rounds + 1}",
                                          f".{out.name}.v{rounds + 2}"]
                                         if fmt == "parquet" else []))


def test_a_reader_keeps_its_version_while_builds_go_on(trees, local, tmp_path):
    """A version a reader holds is not deleted by later builds; once it lets go, the next
    build removes it."""
    out = tmp_path / "s.parquet"
    write_store(trees["A"][0], out)
    held = open_handle(out)
    tree = open_store(held, group=f"{GRIDS}/frequencyA", access=Access())
    for s in ("B", "A", "B"):
        write_store(trees[s][0], out)
    assert held.path.exists() and read_back(out, local) == local["ids_B"]
    assert tree["granuleId"].values.tolist() == local["ids_A"]
    assert np.isfinite(tree["HHHH"][:, 300, 300].values).all()  # read from the held version
    held.close()
    del tree
    write_store(trees["A"][0], out)
    assert not held.path.exists()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".s.parquet.v")]) == 2


# ---------------------------------------------------------------------------------------------
# a store with a part missing or altered is refused


@pytest.fixture(scope="module")
def built(local, tmp_path_factory):
    d = tmp_path_factory.mktemp("built")
    for fmt in ("json", "parquet"):
        build(local["paths"], d / f"s.{fmt}", access=Access(), cache_dir=local["cache"])
    return d


def fresh(built: Path, fmt: str, tmp_path: Path) -> Path:
    """A copy of a built store (link and version copied as they are)."""
    d = tmp_path / "copy"
    shutil.copytree(built, d, symlinks=True)
    return d / f"s.{fmt}"


def _parquet_file(store: Path, array: str) -> Path:
    return store / array / "refs.0.parq"


def _json_edit(store: Path, edit) -> None:
    doc = json.loads(store.read_text())
    edit(doc["refs"])
    store.write_text(json.dumps(doc))


def _zmetadata_edit(store: Path) -> None:
    zm = store / ".zmetadata"
    met = json.loads(zm.read_text())
    met["metadata"][f"{HHHH}/.zattrs"]["units"] = "furlongs"
    zm.write_text(json.dumps(met))


def _set(refs, key, value):
    refs[key] = value


def _swap_templates(store: Path) -> None:
    doc = json.loads(store.read_text())
    t = doc["templates"]
    t["u0"], t["u1"] = t["u1"], t["u0"]
    store.write_text(json.dumps(doc))


DAMAGE = {
    "parquet: HHHH refs file deleted": (
        "parquet", lambda s: _parquet_file(s, HHHH).unlink(), f"{HHHH}/refs.0.parq: missing"),
    "parquet: HHHH refs file replaced by HVHV's": (
        "parquet", lambda s: shutil.copy(_parquet_file(s, HVHV), _parquet_file(s, HHHH)),
        f"{HHHH}/refs.0.parq: altered"),
    "parquet: a refs file cut short": (
        "parquet", lambda s: _parquet_file(s, HVHV).write_bytes(
            _parquet_file(s, HVHV).read_bytes()[:100]), f"{HVHV}/refs.0.parq: altered"),
    "parquet: .zmetadata edited": ("parquet", _zmetadata_edit, "metadata"),
    "parquet: the version folder gone": (
        "parquet", lambda s: shutil.rmtree(s.resolve()), "which is missing"),
    "json: an offset changed": (
        "json", lambda s: _json_edit(s, lambda r: r[f"{HHHH}/1.0.1"].__setitem__(1, 12345)),
        f"{HHHH}: chunk references altered"),
    "json: a chunk key deleted": (
        "json", lambda s: _json_edit(s, lambda r: r.pop(f"{HHHH}/1.0.1")),
        f"{HHHH}: 11 chunk references, 12 recorded"),
    "json: a per-array .zattrs edited": (
        "json", lambda s: _json_edit(s, lambda r: _set(r, f"{HHHH}/.zattrs", "{}")),
        "per-array metadata differ"),
    "json: two URL templates swapped": ("json", _swap_templates, "template u0: chunks read from"),
}


VALIDATE_TOO = {"parquet: HHHH refs file deleted", "parquet: the version folder gone",
                "json: an offset changed", "json: two URL templates swapped"}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_store_is_refused(built, tmp_path, capsys, case):
    fmt, damage, what = DAMAGE[case]
    store = fresh(built, fmt, tmp_path)
    damage(store)
    bbox = [str(v) for v in (BOX.minx, BOX.miny, BOX.maxx, BOX.maxy)]
    line = one_line(capsys, main(["subset", str(store), "--bbox", *bbox]), 6, what)
    assert "damaged store" in line and str(store) in line
    one_line(capsys, main(["info", str(store)]), 6, what)
    with pytest.raises(ValidationError, match="damaged store"):
        open_store(store, access=Access())
    if case not in VALIDATE_TOO:  # validate reads every source again: three cases suffice
        return
    rc = main(["validate", str(store), "--sample", "1"])
    line = one_line(capsys, rc, 6, "damaged")
    if "folder gone" not in case:
        assert "does not match its sources: " in line and "the store itself is damaged" in line


def test_an_older_store_without_a_record_still_opens(built, local, tmp_path, capsys):
    store = fresh(built, "json", tmp_path)

    def strip(refs):
        for key in (".zattrs",):
            attrs = json.loads(refs[key])
            del attrs[STORE_ATTR][INTEGRITY]
            refs[key] = json.dumps(attrs)
        zm = json.loads(refs[".zmetadata"])
        del zm["metadata"][".zattrs"][STORE_ATTR][INTEGRITY]
        refs[".zmetadata"] = json.dumps(zm)

    _json_edit(store, strip)
    assert read_back(store, local) == list(local["expected"])
    assert main(["info", str(store)]) == 0
    assert "integrity   not recorded" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# --out never replaces what is not a gcov-index store


def _pandas_parquet(p: Path):
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet(p)


def _folder_of_files(p: Path):
    p.mkdir()
    (p / "notes.txt").write_text("mine")
    (p / "sub").mkdir()
    (p / "sub" / "data.bin").write_bytes(b"\0\1")


def _foreign_kerchunk_parquet(p: Path):
    p.mkdir()
    (p / ".zmetadata").write_text(json.dumps({"metadata": {".zgroup": {"zarr_format": 2}},
                                              "record_size": 10}))


def _link_elsewhere(p: Path):
    target = p.parent / "elsewhere"
    _folder_of_files(target)
    p.symlink_to(target)


NOT_STORES = {
    "a user's JSON": ("x.json", lambda p: p.write_text('{"mine": [1, 2, 3]}')),
    "another tool's kerchunk JSON": ("x.json", lambda p: p.write_text(json.dumps(
        {"version": 1, "refs": {".zgroup": '{"zarr_format": 2}'}}))),
    "an empty file": ("x.json", lambda p: p.write_bytes(b"")),
    "a folder named .json": ("x.json", _folder_of_files),
    "a pandas Parquet file": ("x.parquet", _pandas_parquet),
    "a folder of files": ("x.parquet", _folder_of_files),
    "another tool's kerchunk Parquet": ("x.parquet", _foreign_kerchunk_parquet),
    "a link to a folder of files": ("x.parquet", _link_elsewhere),
    "a link to a user's file": ("x.json", lambda p: (
        p.parent.joinpath("mine.json").write_text("{}"), p.symlink_to("mine.json"))),
}


@pytest.mark.parametrize("case", list(NOT_STORES))
def test_out_never_replaces_what_is_not_a_store(local, tmp_path, capsys, case):
    name, make = NOT_STORES[case]
    out = tmp_path / name
    make(out)
    before = listing(tmp_path)
    rc = main(["build", local["paths"][0], "--out", str(out), "--quiet", "--no-cache"])
    # the CLI refuses the wrong kind of entry before the store layer looks inside
    kind = {"a folder named .json": "is a directory",
            "a pandas Parquet file": "is a file, not a Parquet store"}
    one_line(capsys, rc, 2, f"--out {out}: {kind.get(case, 'not a gcov-index store')}")
    assert listing(tmp_path) == before  # untouched, and no lock or temporary left


# ---------------------------------------------------------------------------------------------
# two builds of one --out


def test_a_second_build_of_the_same_out_is_refused(local, tmp_path, capsys, monkeypatch):
    import gcov_index.store.build as build_mod

    out = tmp_path / "s.parquet"
    started, release = threading.Event(), threading.Event()
    real = build_mod.scan_all

    def slow_scan(*args, **kwargs):
        started.set()
        assert release.wait(120)
        return real(*args, **kwargs)

    monkeypatch.setattr(build_mod, "scan_all", slow_scan)
    result = {}
    first = threading.Thread(target=lambda: result.update(r=build(
        local["A"], out, access=Access(), cache_dir=local["cache"])))
    first.start()
    assert started.wait(120)
    try:
        # another process ...
        proc = subprocess.run([sys.executable, "-m", "gcov_index", "build", *local["B"],
                               "--out", str(out), "--quiet", "--no-cache"], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                              text=True, timeout=300)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1, proc.stderr
        assert f"--out {out}: another gcov-index build is writing it (pid {os.getpid()})" \
            in err[0]
        # ... and another build in this one
        rc = main(["build", *local["B"], "--out", str(out), "--quiet", "--no-cache"])
        one_line(capsys, rc, 2, "another gcov-index build is writing it")
    finally:
        release.set()
        first.join(300)
    assert result["r"].store == out
    assert read_back(out, local) == local["ids_A"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".s.parquet.v1", "s.parquet"]


# ---------------------------------------------------------------------------------------------
# sharing a Parquet store; a store written before versions


def test_a_parquet_store_copied_with_cp_rL_is_a_whole_store(built, local, tmp_path, capsys):
    copy = tmp_path / "shared" / "s.parquet"
    copy.parent.mkdir()
    subprocess.run(["cp", "-rL", str(built / "s.parquet"), str(copy)], check=True)
    assert copy.is_dir() and not copy.is_symlink()
    assert read_back(copy, local) == list(local["expected"])
    moved = tmp_path / "moved.parquet"  # the link alone, without its version: one line
    os.symlink(os.readlink(built / "s.parquet"), moved)
    one_line(capsys, main(["info", str(moved)]), 6, "cp -rL")


def test_a_store_written_before_versions_is_swapped_in_one_step(trees, local, tmp_path):
    out = tmp_path / "s.parquet"
    make_legacy(out, trees["A"][0])
    old_files = listing(out)
    reading = open_store(out, group=f"{GRIDS}/frequencyA", access=Access())  # a reader on it
    write_store(trees["B"][0], out)
    assert out.is_symlink() and read_back(out, local) == local["ids_B"]
    previous = tmp_path / ".s.parquet.v1"  # the old folder, kept as the previous version
    assert listing(previous) == old_files and os.readlink(out) == ".s.parquet.v2"
    # the reader goes on reading the folder it opened, moved aside (Linux: by its descriptor)
    assert reading["granuleId"].values.tolist() == local["ids_A"]
    hhhh = reading["HHHH"].sel(yCoordinates=slice(None, None, 50),
                               xCoordinates=slice(None, None, 50)).values  # lazy refs: now
    assert hhhh.shape[0] == 2 and np.isfinite(hhhh).any()
    assert np.array_equal(hhhh, open_store(previous, group=f"{GRIDS}/frequencyA",
                                           access=Access())["HHHH"].sel(
        yCoordinates=slice(None, None, 50), xCoordinates=slice(None, None, 50)).values,
        equal_nan=True)


# ---------------------------------------------------------------------------------------------
# validate compares every reference with the source's chunk index


def _reintegrate(store: Path, edit) -> None:
    """Edit a JSON store's refs and write a matching integrity record, as a build from a wrong
    manifest would have: the store is whole, only wrong."""
    doc = json.loads(store.read_text())
    refs = doc["refs"]
    edit(refs)
    attrs = json.loads(refs[".zattrs"])
    attrs[STORE_ATTR].pop(INTEGRITY)
    refs[".zattrs"] = json.dumps(attrs)
    refs.pop(".zmetadata")
    store.write_text(json.dumps(consolidated(with_integrity(doc))))


def test_validate_finds_a_wrong_reference_that_a_sample_misses(built, local, tmp_path, capsys):
    store = fresh(built, "json", tmp_path)

    def point_hhhh_at_hvhv(refs):
        refs[f"{HHHH}/1.0.0"] = refs[f"{HVHV}/1.0.0"]  # same codec and shape: reads fine

    _reintegrate(store, point_hhhh_at_hvhv)
    assert open_handle(store).problems() == []  # whole, so it opens
    rc = main(["validate", str(store), "--sample", "0"])
    out, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert rc == 6 and len(err) == 1 and "does not match its sources" in err[0], err
    ids = list(local["expected"])
    assert ids[1] in err[0] and ids[0] not in err[0] and ids[2] not in err[0]
    assert f"{ids[1]}: 1 of " in out and f"(first: {HHHH}/1.0.0: store" in out


def test_validate_checks_every_reference_of_a_good_store(built, capsys):
    for fmt in ("json", "parquet"):
        assert main(["validate", str(built / f"s.{fmt}"), "--sample", "0"]) == 0
        out = capsys.readouterr().out
        assert "integrity record: whole" in out and "ok: the store matches" in out
        assert "0 chunk references" not in out


def test_validate_says_unreachable_not_mismatch(built, tmp_path, capsys, monkeypatch):
    import gcov_index.read.validate as validate_mod

    def unreachable(url, *args, **kwargs):
        raise AccessError(f"{url}: unreachable (connection reset by peer)")

    monkeypatch.setattr(validate_mod, "scan", unreachable)
    line = one_line(capsys, main(["validate", str(built / "s.json")]), 3,
                    "3 source(s) could not be checked")
    assert "connection reset" in line
    monkeypatch.setattr(validate_mod, "fingerprint", unreachable)
    one_line(capsys, main(["validate", str(built / "s.parquet")]), 3, "could not be checked")


# ---------------------------------------------------------------------------------------------
# the manifest cache: a bad entry is rescanned, never trusted


def test_a_bad_cache_entry_is_rescanned(local, tmp_path, capsys):
    cache = tmp_path / "cache"
    paths = local["paths"]
    build(paths, tmp_path / "s.json", access=Access(), cache_dir=cache)
    url = canonical_url(paths[1])
    entry = ManifestCache(cache).path(url, fingerprint(url, Access()))

    def poison(fix_checksum: bool):
        d = json.loads(gzip.decompress(entry.read_bytes()))
        arrays = {a["path"]: a for a in d["arrays"]}
        arrays[HHHH]["refs"]["0.0"] = arrays[HVHV]["refs"]["0.0"]
        if fix_checksum:
            d["sha256"] = checksum(d)
        entry.write_bytes(gzip.compress(json.dumps(d).encode()))

    poison(fix_checksum=False)  # altered: the checksum says so, the granule is scanned again
    r = build(paths, tmp_path / "s.json", access=Access(), cache_dir=cache, replace=True)
    assert r.cached == 2 and r.scanned == 1
    assert main(["validate", str(r.store), "--sample", "0"]) == 0
    capsys.readouterr()
    entry.unlink()
    entry.mkdir()  # a folder where the entry goes
    r = build(paths, tmp_path / "s.json", access=Access(), cache_dir=cache, replace=True)
    assert r.scanned == 1 and entry.is_file()
    poison(fix_checksum=True)  # a cache that lies consistently: validate still finds it
    r = build(paths, tmp_path / "s.json", access=Access(), cache_dir=cache, replace=True)
    assert r.cached == 3
    line = one_line(capsys, main(["validate", str(r.store), "--sample", "0"]), 6,
                    "does not match its sources")
    assert Path(paths[1]).stem in line and Path(paths[0]).stem not in line


def test_the_store_file_digests_hold_no_secret_and_name_every_refs_file(built):
    store = built / "s.parquet"
    record = open_handle(store).record
    files = sorted(str(p.relative_to(store.resolve())) for p in store.resolve().rglob("*.parq"))
    assert sorted(record["files"]) == files
    assert record["arrays"][HHHH][0] == 12  # 3 granules x 2 x 2 chunks
    digest = hashlib.sha256((store.resolve() / files[0]).read_bytes()).hexdigest()
    assert record["files"][files[0]][1] == digest[:32]
