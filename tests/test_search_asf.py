"""asf_search keywords that gcov-index does not map pass through to asf_search, end to end: the
local CMR stand-in filters records shaped like the real ones by the CMR parameters asf_search
makes of them (``attribute[]=string,FULL_FRAME,FALSE``, ``orbit_number``, ...), and bad ones are
one line, exit 2, before CMR is asked. No granule is served: a search needs records only."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from datetime import timedelta

import pytest

from gcov_index import SearchQuery, search
from gcov_index.cli import main
from tests.support.cmr import (
    SEED,
    SEED_ARGS,
    CMRService,
    footprint,
    granule_record,
    seed_fixture,
    seed_records,
)


@pytest.fixture(scope="module")
def archive():
    """The seed's records, plus a partial frame and a quad-pol acquisition of the same pass."""
    fx = seed_fixture()
    partial = replace(fx.latest[2], coverage="P", seed=401,
                      start=fx.latest[2].start + timedelta(hours=1))
    quad = replace(fx.latest[4], polarizations="QPDH", mode="4005", seed=402,
                   start=fx.latest[4].start + timedelta(hours=2))
    records = seed_records() + [granule_record(s, number=900 + i)
                                for i, s in enumerate((partial, quad))]
    with CMRService(records) as cmr:
        yield {"cmr": cmr, "fx": fx, "partial": partial, "quad": quad}


@pytest.fixture
def env(archive, monkeypatch):
    for k, v in archive["cmr"].env.items():
        monkeypatch.setenv(k, v)
    archive["cmr"].log.clear()
    return archive


def ids(result) -> list[str]:
    return [g.granule_id for g in result.granules]


def attributes(log: list[dict]) -> set[str]:
    return {v for r in log for k, v in r["params"] if k == "attribute[]"}


def cli_json(capsys, args: list[str]) -> list[str]:
    assert main(["search", *args, "--format", "json"]) == 0
    return [r["granuleId"] for r in json.loads(capsys.readouterr().out)["granules"]]


def test_frame_coverage_and_polarization_narrow_the_search(env, capsys):
    fx, partial, quad = env["fx"], env["partial"].granule.stem, env["quad"].granule.stem
    full = [s.granule.stem for s in fx.latest]
    everything = search(**SEED)
    assert set(ids(everything)) == {*full, partial, quad}
    # Python: asf_search's names and gcov-index's; CMR is asked for the attribute
    env["cmr"].log.clear()
    assert ids(search(**SEED, frameCoverage="partial")) == [partial]
    assert "string,FULL_FRAME,FALSE" in attributes(env["cmr"].log)
    assert set(ids(search(**SEED, frame_coverage="full"))) == {*full, quad}
    env["cmr"].log.clear()
    assert ids(search(**SEED, polarization="HH+HV+VH+VV")) == [quad]
    assert "string,FREQUENCY_A_POLARIZATION_CONCAT,HH+HV+VH+VV" in attributes(env["cmr"].log)
    assert set(ids(search(**SEED, mainBandPolarization="DH"))) == {*full, partial}
    assert ids(search(**SEED, rangeBandwidth="40+5")) == [quad]
    # the CLI: the options and --asf, together (CMR ANDs the attributes)
    assert cli_json(capsys, [*SEED_ARGS, "--frame-coverage", "full", "--polarization",
                             "HH+HV"]) == full
    assert cli_json(capsys, [*SEED_ARGS, "--asf", "frameCoverage=P"]) == [partial]
    orbit = 1000 + 173 * fx.latest[1].cycle + fx.latest[1].track  # the record's orbit number
    assert cli_json(capsys, [*SEED_ARGS, "--asf", f"absoluteOrbit={orbit}"]) == [full[1]]
    assert cli_json(capsys, [*SEED_ARGS, "--asf", f"absoluteOrbit={orbit}..{orbit + 173}",
                             "--joint-observation", "false"]) == [*full[1:3], partial]


def test_the_saved_search_repeats_the_pass_through(env, capsys):
    found = search(**SEED, frameCoverage="full", polarization="hhhv",
                   absoluteOrbit=f"1000..{1000 + 173 * 8 + 172}")
    record = found.record()
    query = SearchQuery.from_dict(json.loads(json.dumps(record["query"])))
    assert query == found.query and hash(query) == hash(found.query)
    assert dict(query.asf) == {"absoluteOrbit": ((1000, 2556),), "frameCoverage": "FULL",
                               "mainBandPolarization": ("HH+HV",)}
    words = shlex.split(record["command"])
    assert words[:2] == ["gcov-index", "build"] and "--frame-coverage" in words
    assert "--asf" in words and "--polarization" in words
    # the command that repeats it (as build --update does from the saved query) finds the same
    args = words[2: words.index("--protocol")]
    assert cli_json(capsys, args) == ids(found) == [s.granule.stem for s in env["fx"].latest[:4]]


def test_footprints_and_table_from_the_records(env):
    """The footprint of each granule comes from its CMR record through asf_search."""
    result = search(**SEED, frameCoverage="full", polarization="HH+HV")
    doc = json.loads(json.dumps(result.to_geojson()))
    spec = env["fx"].latest[0]
    first = doc["features"][0]
    assert first["properties"]["granuleId"] == spec.granule.stem
    assert first["geometry"]["type"] == "Polygon"
    assert [tuple(p) for p in first["geometry"]["coordinates"][0]] == footprint(spec)
    df = result.to_dataframe()
    assert list(df["granuleId"]) == ids(result) and df["start"].is_monotonic_increasing


def fails(capsys, args: list[str], expect: str) -> str:
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("gcov-index: error: ") and expect in err[0], err[0]
    return err[0]


@pytest.mark.parametrize("args, expect", [
    (["--asf", "frameCoverag=full"], "frameCoverag: not an asf_search search keyword (did you "
                                     "mean frameCoverage?)"),
    (["--asf", "beamModes=IW"], "beamModes: not an asf_search search keyword"),
    (["--frame-coverage", "half"], "--frame-coverage 'half': use full or partial"),
    (["--joint-observation", "maybe"], "--joint-observation 'maybe': use true or false"),
    (["--polarization", "HX"], "--polarization 'HX': use HH, VV, HH+HV"),
    (["--asf", "absoluteOrbit=9..1"], "absoluteOrbit '9..1': Invalid int or range"),
    (["--asf", "season=spring"], "season 'spring': Invalid int list"),
    (["--asf", "dataset=SENTINEL-1"], "dataset: not passed (gcov-index searches the NISAR"),
    (["--asf", "processingLevel=GSLC"], "processingLevel: not passed"),
    (["--asf", "host=cmr.uat.earthdata.nasa.gov"], "host: not passed (set the CMR host with "
                                                   "--cmr-host"),
    (["--asf", "relativeOrbit=77"], "relativeOrbit: gcov-index maps it; use --track"),
    (["--asf", "frameCoverage"], "--asf 'frameCoverage': give KEY=VALUE"),
    (["--polarization", "HH", "--asf", "mainBandPolarization=VV"],
     "--asf mainBandPolarization: the same as --polarization"),
])
def test_bad_pass_through_is_one_line_exit_2_before_cmr(env, capsys, args, expect):
    fails(capsys, ["search", *SEED_ARGS, *args], expect)
    assert env["cmr"].log == []


def test_python_refuses_the_same_way(env):
    from gcov_index import BadInputError

    with pytest.raises(BadInputError, match="maxResults: the same as max_results="):
        search(**SEED, max_results=5, maxResults=10)
    with pytest.raises(BadInputError, match="mainBandPolarization: the same keyword as "
                                            "polarization"):
        search(**SEED, polarization="HH", mainBandPolarization="VV")
    with pytest.raises(BadInputError, match="platform: not passed"):
        search(**SEED, platform="SENTINEL-1A")
    assert env["cmr"].log == []
