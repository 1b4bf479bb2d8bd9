"""The real archive is not tidy: full and partial frames of one frame, ascending and descending
passes, releases of different maturity, names off the convention. Build indexes all of it as
stacks and refuses nothing for a grid difference; info lists the stacks; subset gives one time
series over them; validate checks them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import timedelta

import h5py
import numpy as np
import pytest

from gcov_index.errors import BadInputError
from gcov_index.read.info import store_info
from gcov_index.read.open import open_store
from gcov_index.read.subset import Box, subset, to_frame
from gcov_index.read.validate import validate
from gcov_index.store.build import build
from tests.support.granules import GranuleSpec, write_granule

GRID = "science/LSAR/GCOV/grids/frequencyA"
BOX = Box(404000, 4093000, 406000, 4095000, "EPSG:32611")  # inside every grid below


def _mean(path, box=BOX) -> float:
    with h5py.File(path) as f:
        x = f[GRID + "/xCoordinates"][()]
        y = f[GRID + "/yCoordinates"][()]
        ix = (x >= box.minx) & (x <= box.maxx)
        iy = (y >= box.miny) & (y <= box.maxy)
        return float(np.nanmean(f[GRID + "/HHHH"][np.flatnonzero(iy)][:, np.flatnonzero(ix)]))


@pytest.fixture(scope="module")
def archive_mix(tmp_path_factory):
    """Two full frames and one partial frame of 172A/008, two descending passes over the same
    area (another track), and a PROVISIONAL re-release of the first full frame."""
    d = tmp_path_factory.mktemp("mix")
    base = GranuleSpec()
    full = [write_granule(d, base.repeat(i)) for i in range(2)]
    partial = write_granule(d, replace(base.repeat(2), coverage="P", shape=(400, 600)))
    desc_base = replace(base, track=64, direction="D", frame=120, origin=(401960.0, 4099040.0),
                        shape=(650, 620), start=base.start + timedelta(hours=13))
    desc = [write_granule(d, desc_base.repeat(i)) for i in range(2)]
    provisional = write_granule(d, replace(base, crid="P05023", seed=7))
    return {"dir": d, "full": full, "partial": partial, "desc": desc, "prov": provisional}


@pytest.fixture(scope="module")
def several(archive_mix, tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    paths = [*archive_mix["full"], archive_mix["partial"], *archive_mix["desc"],
             archive_mix["prov"]]
    return {fmt: build([str(p) for p in paths], d / f"mix.{fmt}", cache=False)
            for fmt in ("json", "parquet")}


def test_no_build_is_refused_for_a_grid_difference(several, archive_mix):
    result = several["json"]
    ids = [s["id"] for s in result.stacks]
    assert ids == ["T064D_F120", "T172A_F008", "T172A_F008_2"]
    by_id = {s["id"]: s for s in result.stacks}
    assert by_id["T172A_F008"]["granules"] == 2 and by_id["T172A_F008"]["coverage"] == "full"
    assert by_id["T172A_F008_2"]["granules"] == 1 and by_id["T172A_F008_2"]["coverage"] == "partial"
    assert by_id["T172A_F008_2"]["grids"]["frequencyA"]["shape"] == [400, 600]
    assert by_id["T064D_F120"]["direction"] == "D"
    # the PROVISIONAL release replaced the BETA one of the same acquisition (maturity first)
    kept = {g.filename for g in result.selection.selected}
    assert archive_mix["prov"].name in kept and archive_mix["full"][0].name not in kept
    assert by_id["T172A_F008"]["maturity"] == {"BETA": 1, "PROVISIONAL": 1}
    assert any("mixes data maturities (1 BETA, 1 PROVISIONAL)" in w for w in result.warnings)
    # every granule is in exactly one stack: none dropped
    assert len(result.tree.urls) == 5 == sum(s["granules"] for s in result.stacks)


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_each_stack_opens_alone_and_every_layer_matches_h5py(several, archive_mix, fmt):
    store = several[fmt].store
    for stack, sources in (("T172A_F008_2", [archive_mix["partial"]]),
                           ("T064D_F120", archive_mix["desc"])):
        ds = open_store(store, stack=stack, group=GRID).dataset
        assert list(ds["granuleId"].values) == [p.stem for p in sources]
        for t, p in enumerate(sources):
            with h5py.File(p) as f:
                np.testing.assert_array_equal(ds["HHHH"].values[t], f[GRID + "/HHHH"][()])
    # the whole tree: one root group per stack
    tree = open_store(store)
    assert sorted(tree.children) == ["T064D_F120", "T172A_F008", "T172A_F008_2"]
    with pytest.raises(BadInputError, match=r"holds 3 stacks .* pass stack="):
        open_store(store, group=GRID)
    with pytest.raises(BadInputError, match="--stack NOPE: no such stack"):
        open_store(store, stack="NOPE")


PLAIN = textwrap.dedent('''
    import json, sys
    import xarray as xr
    ds = xr.open_dataset(sys.argv[1], engine="kerchunk",
                         group="T172A_F008_2/science/LSAR/GCOV/grids/frequencyA")
    print(json.dumps({"shape": list(ds["HHHH"].shape),
                      "imported_gcov_index": any(m.startswith("gcov_index") for m in sys.modules)}))
''')


def test_a_stack_opens_with_plain_xarray(several, tmp_path):
    proc = subprocess.run([sys.executable, "-I", "-c", PLAIN, str(several["json"].store)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"shape": [1, 400, 600], "imported_gcov_index": False}


def test_subset_is_one_series_over_the_stacks(several, archive_mix):
    store = several["parquet"].store
    series = subset(store, BOX)
    df = to_frame(series)
    times = series["time"].values
    assert (np.diff(times.astype("int64")) > 0).all()  # one series, in time order
    rows = {g: (s, int(t), int(f), d) for g, s, t, f, d in zip(
        df["granuleId"], df["stack"], df["track"], df["frame"], df["direction"], strict=True)}
    assert rows[archive_mix["desc"][0].stem] == ("T064D_F120", 64, 120, "D")
    assert rows[archive_mix["partial"].stem] == ("T172A_F008_2", 172, 8, "A")
    assert rows[archive_mix["prov"].stem] == ("T172A_F008", 172, 8, "A")
    assert len(df) == 5  # ascending and descending passes both give their rows
    maturity = dict(zip(df["granuleId"], df["maturity"], strict=True))
    assert maturity[archive_mix["prov"].stem] == "PROVISIONAL"
    assert maturity[archive_mix["desc"][0].stem] == "BETA"
    means = dict(zip(df["granuleId"], df["frequencyA/HHHH"], strict=True))
    for p in [archive_mix["prov"], *archive_mix["desc"], archive_mix["partial"]]:
        assert means[p.stem] == pytest.approx(_mean(p), rel=1e-6)
    one = subset(store, BOX, stack="T064D_F120")
    assert set(one["stack"].values) == {"T064D_F120"} and one.sizes["time"] == 2


def test_info_lists_the_stacks(several):
    info = store_info(several["json"].store)
    text = info.text()
    assert "stacks      3" in text
    assert "stack T172A_F008_2  track 172A frame 8: 1 granules" in text
    assert "partial frame" in text and "group T172A_F008_2/" in text
    assert "WARNING     mixes data maturities (1 BETA, 1 PROVISIONAL)" in text
    assert [s["id"] for s in info.stacks] == ["T064D_F120", "T172A_F008", "T172A_F008_2"]


def test_validate_checks_every_stack(several):
    for fmt in ("json", "parquet"):
        report = validate(several[fmt].store, sample=2)
        assert report.ok, report.text()
        assert report.refs_checked > 0 and report.chunks_checked == 2 * 5


def test_one_stack_keeps_the_products_layout(archive_mix, tmp_path):
    result = build([str(p) for p in archive_mix["desc"]], tmp_path / "one.json", cache=False)
    assert [s["group"] for s in result.stacks] == [""]
    assert "science" in open_store(result.store).children
    assert not any("stacks (grids" in w for w in result.warnings)


def test_maturity_option_refuses_a_mixed_stack_and_writes_nothing(archive_mix, tmp_path):
    out = tmp_path / "p.json"
    with pytest.raises(BadInputError, match=r"a BETA release, and --maturity PROVISIONAL"):
        build([str(archive_mix["prov"]), str(archive_mix["full"][1])], out, cache=False,
              maturity="PROVISIONAL")
    assert not out.exists()
    ok = build([str(archive_mix["prov"])], out, cache=False, maturity="PROVISIONAL")
    assert ok.stacks[0]["maturity"] == {"PROVISIONAL": 1}
    meta = json.loads(out.read_text())
    attrs = json.loads(meta["refs"][".zattrs"])["gcov_index"]
    assert attrs["granules"][0]["maturity"] == "PROVISIONAL"


def test_names_of_the_real_archive(tmp_path):
    """ASF's public sample (frame 219, ``F_N_J``) and a file renamed off the convention both
    index; a frame outside 1-176 is a warning; a spec newer than any known too."""
    d = tmp_path / "g"
    spec = replace(GranuleSpec(), cycle=1, track=5, frame=219, mode="4020",
                   polarizations="SHNA", crid="P01101")
    path = write_granule(d, spec)
    sample = path.with_name(path.name.replace("_N_F_J_", "_F_N_J_"))
    path.rename(sample)
    other = write_granule(d, GranuleSpec().repeat(3))
    renamed = other.with_name("my_copy_of_a_granule.h5")
    other.rename(renamed)
    with h5py.File(renamed, "a") as f:  # a spec version newer than any known
        del f["science/LSAR/identification/productSpecificationVersion"]
        f["science/LSAR/identification/productSpecificationVersion"] = np.bytes_(b"9.0.0")
    result = build([str(sample), str(renamed)], tmp_path / "s.json", cache=False)
    ids = {g["granuleId"] for g in json.loads(json.loads(result.store.read_text())["refs"][
        ".zattrs"])["gcov_index"]["granules"]}
    assert ids == {sample.stem, renamed.stem}
    assert any("frame 219 is outside" in w for w in result.warnings)
    assert any("specification 9.0.0 is newer" in w for w in result.warnings)
    by_track = {s["track"]: s for s in result.stacks}
    assert by_track[172]["frame"] == 8 and by_track[172]["direction"] == "A"  # identification
    assert by_track[5]["frame"] == 219


def test_another_product_is_one_line(tmp_path):
    d = tmp_path / "g"
    path = write_granule(d, GranuleSpec())
    gslc = path.with_name(path.name.replace("_GCOV_", "_GSLC_"))
    shutil.copy(path, gslc)
    with pytest.raises(BadInputError, match=r"a NISAR L2 GSLC granule, not GCOV"):
        build([str(gslc)], tmp_path / "x.json", cache=False)
    assert not (tmp_path / "x.json").exists()


def test_cli_says_stacks_and_warnings_and_refuses_in_one_line(archive_mix, tmp_path, capsys):
    from gcov_index.cli import main

    paths = [str(p) for p in (*archive_mix["full"], archive_mix["partial"], archive_mix["prov"])]
    out = tmp_path / "cli.json"
    assert main(["build", *paths, "--out", str(out), "--no-cache", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "stack T172A_F008_2: 1 granules, track 172A frame 8, partial frame" in captured.out
    warnings = captured.err.strip().splitlines()
    assert all(w.startswith("gcov-index: warning: ") for w in warnings)
    assert any("mixes data maturities" in w for w in warnings)
    assert main(["info", str(out)]) == 0 and "stacks      2" in capsys.readouterr().out
    assert main(["subset", str(out), "--bbox", *map(str, (BOX.minx, BOX.miny, BOX.maxx,
                                                          BOX.maxy)),
                 "--crs", BOX.crs, "--stack", "T172A_F008_2"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 2 and ",T172A_F008_2,172,8,A,BETA," in rows[1]
    # refused: one line, exit 2, nothing written
    before = out.read_bytes()
    assert main(["build", *paths, "--out", str(out), "--no-cache", "--quiet",
                 "--maturity", "PROVISIONAL"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--maturity PROVISIONAL forbids mixing it in" in err[0]
    assert out.read_bytes() == before
    assert main(["subset", str(out), "--bbox", "1", "1", "2", "2", "--stack", "X"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stack X: no such stack" in err[0]


def test_modes_and_masks_of_one_frame_read_back_whole(tmp_path):
    """DHDH, SHNA (no frequency B) and QPDH (complex off-diagonal terms) releases of one frame,
    with and without an inputDataExceptionMask, and one whose mask is on a finer grid: every
    dataset of every source equals h5py's read through the store, stack by stack."""
    from tests.test_end_to_end import check_every_dataset

    base = GranuleSpec()
    specs = [replace(base.repeat(0), exception_mask=None),
             replace(base.repeat(1), polarizations="SHNA", exception_mask="same"),
             replace(base.repeat(2), polarizations="QPDH", exception_mask="same"),
             replace(base.repeat(3), exception_mask="finer")]
    paths = [write_granule(tmp_path / "g", s) for s in specs]
    result = build([str(p) for p in paths], tmp_path / "m.parquet", cache=False)
    by_name = {p.stem: p for p in paths}
    members: dict[str, list] = {}
    info = store_info(result.store)
    for g in info.granules:
        members.setdefault(g["stack"], []).append(by_name[g["granuleId"]])
    assert sum(len(v) for v in members.values()) == 4
    assert len(members) == 2  # the finer mask cannot share a time axis with the others
    checked = 0
    for stack, sources in members.items():
        tree = open_store(result.store, stack=stack, mask_and_scale=False, decode_times=False)
        checked += check_every_dataset(tree, sources)
        grid = tree[GRID].dataset
        assert grid["HHHH"].sizes["time"] == len(sources)
    assert checked > 4 * 200
    quad = open_store(result.store, stack=info.granules[0]["stack"], group=GRID).dataset
    assert quad["HHVV"].dtype.kind == "c"  # complex off-diagonal terms of the QPDH release


def test_another_product_named_off_the_convention_is_one_line(tmp_path, capsys):
    from gcov_index.cli import main

    path = write_granule(tmp_path / "g", replace(GranuleSpec(), product_type="GSLC"))
    odd = path.rename(path.with_name("scene.h5"))
    out = tmp_path / "x.json"
    assert main(["build", str(odd), "--out", str(out), "--no-cache", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scene.h5: a NISAR GSLC granule, not GCOV" in err[0]
    assert not out.exists()


def test_a_release_named_off_the_convention_is_still_one_per_acquisition(tmp_path):
    """Its identification/granuleId names the acquisition: a renamed PROVISIONAL copy of a
    BETA granule's acquisition supersedes it, as under its own name."""
    beta = write_granule(tmp_path / "g", GranuleSpec())
    prov = write_granule(tmp_path / "g", replace(GranuleSpec(), crid="P05023", seed=5))
    renamed = prov.rename(prov.with_name("provisional_copy.h5"))
    result = build([str(beta), str(renamed)], tmp_path / "one.json", cache=False)
    assert [g.filename for g in result.selection.selected] == ["provisional_copy.h5"]
    assert [o.filename for o, _ in result.selection.superseded] == [beta.name]
    assert len(result.stacks) == 1 and result.stacks[0]["granules"] == 1
