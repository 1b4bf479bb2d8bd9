"""Incremental builds (issue 11): ``build`` into an existing store adds what is new and scans
nothing twice (the store's granules come back from the store itself, cache or no cache);
``build --update STORE`` repeats the store's saved search; a build killed with SIGKILL while
it writes leaves the earlier store as it was, and the next run completes.

Every scan is counted (``scans``): a granule's URL is scanned once over all the builds.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

import gcov_index.store.build as build_module
import gcov_index.store.update
from gcov_index import build
from gcov_index.cli import main
from gcov_index.index import scan as scan_module
from gcov_index.index import workers as workers_module
from gcov_index.io.access import canonical_url
from gcov_index.read.open import open_store
from gcov_index.store.layout import STORE_ATTR, open_handle, store_attrs
from tests.support.cmr import CMRService, _Record, granule_record
from tests.support.granules import GranuleSpec, write_granule
from tests.support.services import LocalArchive

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ["json", "parquet"]


@pytest.fixture(scope="module")
def granules(tmp_path_factory) -> dict:
    """Four acquisitions of one frame (g0..g3) and an older release of g0 (``old``)."""
    d = tmp_path_factory.mktemp("incremental")
    base = GranuleSpec()
    specs = [base.repeat(i) for i in range(4)]
    old = replace(base, crid="X05007", seed=99)
    return {"g": [str(write_granule(d, s)) for s in specs], "old": str(write_granule(d, old)),
            "specs": specs, "old_spec": old, "dir": d}


@pytest.fixture
def scans(monkeypatch) -> Counter:
    """URL -> how many times it was scanned (every module's binding of ``scan`` counted)."""
    seen: Counter = Counter()
    real = scan_module.scan

    def counted(url, *args, **kwargs):
        seen[canonical_url(url)] += 1
        return real(url, *args, **kwargs)

    for name, mod in list(sys.modules.items()):
        if name.startswith("gcov_index") and getattr(mod, "scan", None) is real:
            monkeypatch.setattr(mod, "scan", counted)
    # scans are counted in this process: the pool's processes would not see the patch, so
    # the builds here scan in threads (a process pool falls back to them for an in-memory spec)
    monkeypatch.setattr(workers_module, "_spec", lambda *a: None)
    return seen


def ids(paths: list[str]) -> list[str]:
    return [Path(p).name.removesuffix(".h5") for p in paths]


def content(store: Path) -> tuple[dict, dict, dict]:
    """(metadata but the root attributes, every array's chunk references and inlined values,
    the root ``gcov_index`` attributes) of a store, as a reader gets them."""
    with open_handle(store) as h:
        # a copy: an opened version's parsed metadata is shared within the process (parsed
        # once per version), and the caller below pops from it
        meta = copy.deepcopy(dict(h.meta))
        root = meta.pop(".zattrs")
        arrays = [k.removesuffix("/.zarray") for k in meta if k.endswith("/.zarray")]
        refs = {a: h.array_refs(a) for a in arrays}
        return meta, refs, root[STORE_ATTR] | {"_others": {k: v for k, v in root.items()
                                                            if k != STORE_ATTR}}


def files(store: Path) -> dict[str, bytes | str]:
    """The bytes a reader of ``store`` reads: the JSON file, or the Parquet link and every file
    of the version it points at."""
    if store.is_file():
        return {"": store.read_bytes()}
    out: dict[str, bytes | str] = {"link": os.readlink(store)}
    real = Path(os.path.realpath(store))
    for p in sorted(real.rglob("*")):
        out[str(p.relative_to(real))] = p.read_bytes() if p.is_file() else "<dir>"
    return out


# ---------------------------------------------------------------------------------------------
# an incremental build equals a fresh build of the same set, and scans only what is new


@pytest.mark.parametrize("fmt", FORMATS)
def test_adding_two_and_superseding_one_equals_a_fresh_build(granules, scans, tmp_path, fmt):
    g, old = granules["g"], granules["old"]
    out = tmp_path / f"series.{fmt}"
    first = build([old, g[1]], out, cache=False)  # the older release of g0, and g1
    assert first.added == ids([old, g[1]]) and first.scanned == 2
    # then: g0 (a newer release of the store's old one), g2 and g3 (new), g1 again (a no-op)
    again = build([g[0], g[2], g[3], g[1]], out, cache=False)
    assert again.scanned == 3 and again.kept == 1 and not again.unchanged
    assert again.added == ids([g[0], g[2], g[3]])
    assert again.replaced == [{"granuleId": ids([old])[0], "by": ids([g[0]])[0]}]
    # nothing was scanned twice, and the store's granules were not scanned again
    assert set(scans) == {canonical_url(p) for p in [old, *g]}
    assert max(scans.values()) == 1

    fresh = build([old, g[1], g[0], g[2], g[3]], tmp_path / f"fresh.{fmt}", cache=False)
    meta_i, refs_i, gi_i = content(out)
    meta_f, refs_f, gi_f = content(fresh.store)
    assert meta_i == meta_f  # every group's and array's metadata but the root attributes
    assert refs_i == refs_f  # every chunk reference and inlined value
    # what must differ: when each was written (created, the changes' times), the changes
    # record (its history), and the integrity record's digest of the metadata, which covers
    # those attributes; the references it records are the same
    for k in ("created", "changes"):
        gi_i.pop(k), gi_f.pop(k)
    rec_i, rec_f = gi_i.pop("integrity"), gi_f.pop("integrity")
    assert rec_i.pop("metadata") != rec_f.pop("metadata")
    assert rec_i == rec_f
    assert gi_i == gi_f  # granules, stacks, superseded, model, counts, format version
    assert [x["granuleId"] for x in gi_i["superseded"]] == ids([old])

    changes = store_attrs(out)["changes"]
    assert [c["added"] for c in changes] == [ids([old, g[1]]), ids([g[0], g[2], g[3]])]
    assert [c["replaced"] for c in changes] == [[], again.replaced]
    assert all(c["time"].endswith("+00:00") for c in changes)
    assert store_attrs(fresh.store)["changes"][0]["added"] == ids(g)  # in time order
    # and it reads as the product's layout with four time steps
    dt = open_store(out)
    assert dt["science/LSAR/GCOV/grids/frequencyA"].sizes["time"] == 4


@pytest.mark.parametrize("fmt", FORMATS)
def test_nothing_new_leaves_the_store_byte_identical(granules, scans, tmp_path, fmt, capsys):
    g = granules["g"]
    out = tmp_path / f"series.{fmt}"
    build(g[:2], out, cache=False)
    before = files(out)
    scans.clear()
    again = build([g[1], g[0]], out, cache=False)
    assert again.unchanged and again.kept == 2 and again.scanned == 0 and not scans
    assert files(out) == before
    assert main(["build", *g[:2], "--out", str(out), "--no-cache", "--quiet"]) == 0
    assert "nothing new, left as it was (2 granules kept)" in capsys.readouterr().out
    assert files(out) == before and not scans


def test_a_store_granule_rewritten_since_is_scanned_again(granules, scans, tmp_path):
    g = granules["g"]
    d = tmp_path / "g"
    d.mkdir()
    copies = [str(write_granule(d, s)) for s in granules["specs"][:2]]
    out = tmp_path / "series.json"
    build(copies, out, cache=False)
    os.utime(copies[1], (1, 1))  # its fingerprint (size, mtime) changes
    scans.clear()
    again = build([copies[1], g[2]], out, cache=False)
    assert sorted(scans) == sorted(canonical_url(p) for p in (copies[1], g[2]))
    assert again.added == ids([g[2]])
    name = ids([copies[1]])[0]
    assert again.replaced == [{"granuleId": name, "by": name}]


def test_replace_makes_the_store_hold_exactly_the_inputs(granules, tmp_path, capsys):
    g = granules["g"]
    out = tmp_path / "series.json"
    build(g[:2], out, cache=False)
    assert main(["build", g[2], "--out", str(out), "--replace", "--no-cache", "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    attrs = store_attrs(out)
    assert [x["granuleId"] for x in attrs["granules"]] == ids(g[2:3])
    assert [c["added"] for c in attrs["changes"]] == [ids(g[2:3])]  # a first build again


def test_a_damaged_store_is_not_added_to(granules, tmp_path, capsys):
    g = granules["g"]
    out = tmp_path / "series.json"
    build(g[:2], out, cache=False)
    doc = json.loads(out.read_text())
    key = next(k for k, v in doc["refs"].items() if isinstance(v, list))
    doc["refs"][key][1] += 1  # an offset edited
    out.write_text(json.dumps(doc))
    before = out.read_bytes()
    assert main(["build", g[2], "--out", str(out), "--no-cache", "--quiet"]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "damaged store" in err[0] and "--replace" in err[0]
    assert out.read_bytes() == before
    assert main(["build", *g[:3], "--out", str(out), "--replace", "--no-cache", "--quiet"]) == 0


def test_a_store_without_the_model_record_is_added_to_by_scanning_it(granules, scans,
                                                                     tmp_path, monkeypatch):
    """A store written before format 3 has no model record: its granules are scanned again
    (the manifest cache helps where it holds them), and the result is the same."""
    g = granules["g"]
    out = tmp_path / "series.json"
    with monkeypatch.context() as m:
        m.setattr(build_module, "model_record", lambda stacks: None)
        build(g[:2], out, cache=False)
    assert store_attrs(out)["model"] is None
    scans.clear()
    again = build([g[2]], out, cache=False)
    assert sorted(scans) == sorted(canonical_url(p) for p in g[:3])
    assert again.added == ids([g[2]]) and again.kept == 2
    assert content(out)[:2] == content(build(g[:3], tmp_path / "fresh.json", cache=False)
                                       .store)[:2]
    scans.clear()
    build([g[3]], out, cache=False)  # now it has the record: only g3 is scanned
    assert list(scans) == [canonical_url(g[3])]


# ---------------------------------------------------------------------------------------------
# build --update STORE: the saved search again


@pytest.fixture
def searched(granules, tmp_path, monkeypatch):
    """A local archive with all five granules; CMR knows g0 and g1 to begin with."""
    with LocalArchive(tmp_path / "archive") as archive:
        for p in [*granules["g"], granules["old"]]:
            archive.add(Path(p))

        def record(spec):
            path = Path(granules["dir"]) / spec.filename
            return granule_record(spec, https_base=f"{archive.earthdata.url}/NISAR",
                                  size=path.stat().st_size)

        with CMRService([record(s) for s in [granules["old_spec"], granules["specs"][1]]]
                        ) as cmr:
            for k, v in archive.env.items() | cmr.env.items():
                monkeypatch.setenv(k, v)
            yield {"cmr": cmr, "record": record}


def test_update_repeats_the_saved_search_and_adds_what_is_new(granules, searched, scans,
                                                              tmp_path, capsys):
    out = tmp_path / "series.parquet"
    assert main(["build", "--track", "172", "--frame", "8", "--protocol", "s3", "--out",
                 str(out), "--no-cache", "--quiet"]) == 0
    assert "2 granules" in capsys.readouterr().out
    # the archive publishes g2 and g3, and a newer release of the old g0
    cmr = searched["cmr"]
    cmr.records += [_Record(searched["record"](s)) for s in granules["specs"][0:4:2]]
    cmr.records.append(_Record(searched["record"](granules["specs"][3])))
    scans.clear()
    assert main(["build", "--update", str(out), "--no-cache", "--quiet"]) == 0
    text = capsys.readouterr().out
    new = ids(granules["g"][0:1] + granules["g"][2:])
    assert text.startswith(f"updated {out}: 4 granules")
    assert "3 added, 1 replaced, 1 kept" in text
    assert all(f"  added {i}" in text for i in new)
    assert f"  replaced {ids([granules['old']])[0]} (by {new[0]})" in text
    assert sorted(Path(u).name.removesuffix(".h5") for u in scans) == sorted(new)
    attrs = store_attrs(out)
    assert [g["granuleId"] for g in attrs["granules"]] == ids(granules["g"])
    assert attrs["search"]["selected"] == ids(granules["g"])  # the search as run now
    assert [c["added"] for c in attrs["changes"]][1] == new
    # nothing new: said, nothing scanned, the store as it was
    before = files(out)
    scans.clear()
    assert main(["build", "--update", str(out), "--no-cache", "--quiet"]) == 0
    assert capsys.readouterr().out == f"{out}: up to date, nothing new (4 granules kept)\n"
    assert not scans and files(out) == before


def test_update_of_a_store_without_a_saved_search_is_one_line(granules, tmp_path, capsys):
    out = tmp_path / "series.json"
    build(granules["g"][:1], out, cache=False)
    before = out.read_bytes()
    assert main(["build", "--update", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--update {out}: the store has no saved search" in err[0]
    assert out.read_bytes() == before
    assert main(["build", "--update", str(out), granules["g"][1]]) == 2
    assert "give no granules" in capsys.readouterr().err
    assert main(["build", granules["g"][1]]) == 2
    assert "--out is required" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# kill -9 while an incremental build writes

KILLED = textwrap.dedent('''
    """The CLI, SIGKILLed at its KILL_AT-th file-system step (an fsync, rename, replace, link,
    unlink or swap) once it writes the store (Claim.write: the scans are over), or with
    KILL_AT=swap at the step that would put the new store in place (os.replace)."""
    import os, shutil, signal, sys
    from gcov_index.store import write

    steps, writing = [], []

    def wrap(owner, name):
        real = getattr(owner, name)

        def step(*args, **kwargs):
            if writing:
                steps.append(name)
                at = os.environ["KILL_AT"]
                if (name == "replace") if at == "swap" else len(steps) == int(at):
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        setattr(owner, name, step)

    real_write = write.Claim.write

    def claim_write(self, tree, *args, **kwargs):
        writing.append(True)
        return real_write(self, tree, *args, **kwargs)
    write.Claim.write = claim_write

    for name in ("fsync", "replace", "rename", "symlink", "unlink"):
        wrap(os, name)
    wrap(shutil, "rmtree")
    wrap(write, "_exchange")
    from gcov_index.cli import main
    sys.exit(main(sys.argv[1:]))
''')


# the first step of the write; the 200th (Parquet: amid its refs files); the swap itself
# (a fresh build killed at every step of either format, the swap included: test_trust_stores)
@pytest.mark.parametrize("fmt, kill_at", [("json", "swap"), ("parquet", "1"),
                                          ("parquet", "200")])
def test_a_killed_incremental_build_leaves_the_store_and_the_rerun_completes(
        granules, tmp_path, fmt, kill_at, scans):
    g = granules["g"]
    out = tmp_path / f"series.{fmt}"
    build(g[:2], out, cache=False)
    before = files(out)
    args = ["build", g[2], g[3], "--out", str(out), "--no-cache", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KILL_AT": kill_at,
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", KILLED, *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == -signal.SIGKILL, run.stderr  # killed mid-write, not finished
    assert files(out) == before  # the earlier store, every byte
    with open_handle(out) as h:
        assert h.problems() == [] and len(h.urls) == 2
    assert open_store(out)["science/LSAR/GCOV/grids/frequencyA"].sizes["time"] == 2
    # the rerun completes (and cleans what the killed build left)
    result = build([g[2], g[3]], out, cache=False)
    assert result.added == ids(g[2:]) and result.kept == 2
    assert [x["granuleId"] for x in store_attrs(out)["granules"]] == ids(g)
    assert open_store(out)["science/LSAR/GCOV/grids/frequencyA"].sizes["time"] == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != out.name and
                  not p.name.startswith(f".{out.name}.v")) == [], "leftovers"


def test_the_changes_record_is_documented():
    doc = gcov_index.store.update.__doc__
    assert '"added"' in doc and '"replaced"' in doc and '"by"' in doc
