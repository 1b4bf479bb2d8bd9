"""Search through asf_search itself, its CMR requests answered over HTTPS by the local CMR
stand-in from NISAR UMM-G records; build from a search; bad search input."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from gcov_index import SearchQuery, build, search
from gcov_index.cli import main
from gcov_index.errors import BadInputError, NoResultsError, SearchError
from gcov_index.store.layout import open_refs, store_attrs
from tests.support.cmr import (
    PRIVATE_BUCKET,
    SEED,
    SEED_AOI,
    SEED_ARGS,
    SEED_END,
    SEED_START,
    CMRService,
    publish_seed,
)
from tests.support.services import BUCKET, LocalArchive


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """A local archive holding the seed's granules, and CMR answering with their records
    (plus 300 far-away ones, so that a broad search needs two pages)."""
    root = tmp_path_factory.mktemp("seed")
    with LocalArchive(root / "archive") as archive:
        fx, records = publish_seed(archive, root / "granules", filler=300)
        with CMRService(records) as cmr:
            yield {"archive": archive, "cmr": cmr, "fx": fx}


@pytest.fixture
def env(seed, monkeypatch):
    for k, v in seed["archive"].env.items() | seed["cmr"].env.items():
        monkeypatch.setenv(k, v)
    seed["cmr"].log.clear()
    yield seed
    seed["cmr"]._faults.clear()


def attributes(request: dict) -> set[str]:
    return {v for k, v in request["params"] if k == "attribute[]"}


def test_seed_query_keeps_the_latest_releases_in_time_order(env):
    fx, archive = env["fx"], env["archive"]
    result = search(**SEED)
    assert [g.granule_id for g in result.granules] == [s.granule.stem for s in fx.latest]
    assert [g.start for g in result.granules] == sorted(g.start for g in result.granules)
    assert {(o.granule_id, k.granule_id) for o, k in result.superseded} == {
        (fx.superseded[0].granule.stem, fx.latest[1].granule.stem),  # counter 001 < 002
        (fx.superseded[1].granule.stem, fx.latest[3].granule.stem),  # CRID X05007 < X05009
    }
    assert result.n_found == 7
    # one CMR request, asking what the seed asked, in CMR's terms
    (request,) = env["cmr"].log
    assert {"string,ASCENDING_DESCENDING,ASCENDING", "string,PRODUCTION_PIPELINE,PR",
            "string,PRODUCT_TYPE,GCOV"} <= attributes(request)
    params = dict(request["params"])
    assert params["bounding_box"] == "40.83,13.24,40.87,13.28"
    assert params["temporal"].startswith("2025-11-15T00:00:00Z,2026-01-15T23:59:59")
    # typed values, from the record (not only from the name)
    g = result.granules[0]
    name = g.granule.filename
    assert g.https_url == archive.https_url(name)
    assert g.s3_url == archive.s3_url(name) and PRIVATE_BUCKET not in g.s3_url
    assert g.size == (archive.root / archive.key(name)).stat().st_size
    assert (g.track, g.frame, g.direction, g.production, g.crid) == (172, 8, "ASCENDING", "PR",
                                                                    "X05009")
    assert g.stop > g.start and g.concept_id.startswith("G") and g.collection
    # the record listing its QA_STATS companion first still gives the data granule
    assert all(u.endswith(".h5") and "QA_STATS" not in u for u in result.urls)
    assert result.companions == 2 * 7  # one QA_STATS and one browse image per record


def test_pr_and_ur_are_two_cmr_queries_and_pr_outranks_ur(env):
    fx = env["fx"]
    result = search(aoi=SEED_AOI, start=SEED_START, end=SEED_END, direction="ascending")
    pipelines = [a for r in env["cmr"].log for a in attributes(r) if "PRODUCTION_PIPELINE" in a]
    assert sorted(pipelines) == ["string,PRODUCTION_PIPELINE,PR", "string,PRODUCTION_PIPELINE,UR"]
    assert [g.granule_id for g in result.granules] == [s.granule.stem for s in fx.latest]
    ur = next(s for s in fx.others if s.processing_type == "UR" and s.start == fx.latest[0].start)
    assert (ur.granule.stem, fx.latest[0].granule.stem) in {
        (o.granule_id, k.granule_id) for o, k in result.superseded}


def test_a_broad_search_follows_cmr_search_after_pages(env):
    result = search(start=SEED_START, end=SEED_END, direction="ascending", production="PR")
    log = env["cmr"].log
    assert len(log) == 2 and log[0]["search_after"] is None and log[1]["search_after"]
    assert json.loads(log[1]["search_after"])  # CMR's opaque sort values of the last item
    ids = [g.granule_id for g in result.granules]
    assert len(ids) == len(set(ids)) == 5 + 300 + 1  # seed, filler, the frame elsewhere
    assert len(result.frames) > 1


def test_protocol_decides_the_urls(env):
    s3 = search(**SEED, protocol="s3")
    assert all(u.startswith(f"s3://{BUCKET}/") for u in s3.urls)
    https = search(**SEED, protocol="https")
    assert all(u.startswith(env["archive"].earthdata.url) for u in https.urls)


def test_build_from_search_equals_build_from_the_selected_urls(env, tmp_path):
    result = search(**SEED, protocol="s3")
    a = build(result, tmp_path / "from-search.json", cache=False)
    b = build(result.urls, tmp_path / "from-urls.json", cache=False)
    ra, rb = open_refs(a.store)["refs"], open_refs(b.store)["refs"]
    za, zb = json.loads(ra.pop(".zattrs")), json.loads(rb.pop(".zattrs"))
    ma, mb = (json.loads(r.pop(".zmetadata"))["metadata"] for r in (ra, rb))
    assert ma.pop(".zattrs") == za and mb.pop(".zattrs") == zb and ma == mb
    assert ra == rb  # every array, chunk reference and inlined value
    ga, gb = za.pop("gcov_index"), zb.pop("gcov_index")
    assert za == zb
    saved = ga.pop("search")
    ga.pop("created"), gb.pop("created")
    ga.pop("changes"), gb.pop("changes")  # when each build wrote it
    ia, ib = ga.pop("integrity"), gb.pop("integrity")  # its metadata digest covers the search
    assert ia["arrays"] == ib["arrays"]  # the same references
    assert ga == gb
    # the saved search: what was asked, what was found and kept, and how to repeat it
    assert SearchQuery.from_dict(saved["query"]) == result.query
    assert saved["selected"] == [g.granule_id for g in result.granules]
    assert len(saved["found"]) == 7 and len(saved["superseded"]) == 2
    assert saved["command"].startswith("gcov-index build --aoi ")
    assert saved["cmr_host"] == env["cmr"].host and saved["protocol"] == "s3"
    assert "token" not in json.dumps(saved).lower()


def test_cli_search_table_json_csv(env, capsys):
    assert main(["search", *SEED_ARGS]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 1 + 5 + 2 and "5 granules" in table[-2] and "2 superseded" in table[-2]
    assert table[-1] == "passes: 172A/008: 5 full, 0 partial"
    assert main(["search", *SEED_ARGS, "--show-superseded"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert sum("superseded by" in line for line in table) == 2
    assert main(["search", *SEED_ARGS, "--format", "json", "--protocol", "s3"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in doc["granules"]] == ["selected"] * 5
    assert all(r["url"].startswith("s3://") for r in doc["granules"])
    assert doc["search"]["query"]["direction"] == "ASCENDING"
    assert main(["search", *SEED_ARGS, "--format", "csv", "--show-superseded"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["status"] for r in rows] == ["selected"] * 5 + ["superseded"] * 2
    assert {r["track"] for r in rows} == {"172"}


def test_cli_bbox_and_geojson_areas(env, capsys, tmp_path):
    bbox = "40.83,13.24,40.87,13.28"  # the seed's area as minx,miny,maxx,maxy
    assert main(["search", "--aoi", bbox, "--start", SEED_START, "--end", SEED_END,
                 "--direction", "A", "--production", "PR", "--format", "json"]) == 0
    by_bbox = json.loads(capsys.readouterr().out)
    geojson = tmp_path / "aoi.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[
            [40.83, 13.24], [40.87, 13.24], [40.87, 13.28], [40.83, 13.28],
            [40.83, 13.24]]]}}]}))
    assert main(["search", "--aoi", str(geojson), "--start", SEED_START, "--end", SEED_END,
                 "--direction", "A", "--production", "PR", "--format", "json"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert [r["granuleId"] for r in by_bbox["granules"]] == [
        r["granuleId"] for r in by_file["granules"]] and len(by_file["granules"]) == 5
    # a bbox starting with '-' is still read as the value of --aoi (far from the seed: nothing)
    fails(capsys, ["search", "--aoi", "-118.08,36.96,-118.02,37.0", "--start", SEED_START], 5,
          "no GCOV granules match")


def test_cli_build_from_search_and_dry_run(env, capsys, tmp_path):
    out = tmp_path / "series.parquet"
    assert main(["build", *SEED_ARGS, "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "would write" in text and text.count("superseded by") == 2 and not out.exists()
    assert main(["build", *SEED_ARGS, "--protocol", "s3", "--out", str(out), "--quiet",
                 "--no-cache"]) == 0
    assert "5 granules" in capsys.readouterr().out
    attrs = store_attrs(out)
    assert len(attrs["granules"]) == 5 and attrs["search"]["protocol"] == "s3"
    assert all(g["url"].startswith("s3://") for g in attrs["granules"])
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "7 found, 5 kept" in info and "repeat    gcov-index build --aoi" in info


# ---------------------------------------------------------------------------------------
# bad input: one line, exit != 0


def fails(capsys, args, code: int, expect: str) -> str:
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == code and len(err) == 1, err
    assert err[0].startswith("gcov-index: error: ") and expect in err[0], err[0]
    return err[0]


@pytest.mark.parametrize("args, expect", [
    (["--aoi", "POLYGON((-118 36, -117 36, -117"], "not WKT, a minx,miny,maxx,maxy bbox"),
    (["--aoi", "-117,36,-118,37"], "min < max"),
    (["--aoi", "-118,36,-117"], "--aoi"),
    (["--aoi", "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))"], "not valid"),
    (["--aoi", "POLYGON((200 0, 201 0, 201 1, 200 0))"], "longitude, latitude"),
    (["--aoi", "missing.geojson"], "cannot read the GeoJSON file"),
    (["--aoi", "1.2.3,36,-117,37"], "a bbox is four numbers"),
    (["--start", "2026-01-15", "--end", "2025-11-15"], "is before --start"),
    (["--start", "last tuesday"], "--start 'last tuesday': not a date"),
    (["--direction", "north"], "--direction 'north': use ascending or descending"),
    (["--production", "XX"], "--production 'XX': use PR, UR or both"),
    (["--track", "400"], "--track 400: out of range"),
    (["--frame", "eight"], "--frame 'eight': not a whole number"),
])
def test_bad_search_input(env, capsys, args, expect):
    fails(capsys, ["search", *args], 2, expect)
    assert env["cmr"].log == []  # refused before asking CMR


def test_empty_result_has_its_own_exit_code_and_a_hint(env, capsys):
    line = fails(capsys, ["search", "--aoi", "10,10,11,11", "--start", SEED_START], 5,
                 "no GCOV granules match")
    assert "hint:" in line


def test_build_refuses_granules_and_a_search_together_or_nothing(env, capsys, tmp_path):
    out = str(tmp_path / "s.json")
    fails(capsys, ["build", "x.h5", "--aoi", SEED_AOI, "--out", out], 2, "not both")
    fails(capsys, ["build", "--out", out], 2, "nothing to index")
    # a search over several frames is not refused: build indexes each as its own stack
    assert main(["build", "--start", SEED_START, "--end", SEED_END, "--out", out,
                 "--dry-run"]) == 0
    assert "would write" in capsys.readouterr().out


def test_cmr_errors_are_retried_then_reported(env, capsys):
    cmr = env["cmr"]
    cmr.fail(1, status=500)  # asf_search retries a 5xx: this search still succeeds
    assert len(search(**SEED).granules) == 5
    cmr.fail(3, status=500)
    fails(capsys, ["search", *SEED_ARGS], 3, "HTTP 500")
    cmr.fail(1, status=504, content_type="text/html")  # a gateway page: retried here
    assert len(search(**SEED, backoff=0.1).granules) == 5
    cmr.fail(3, status=504, content_type="text/html")
    with pytest.raises(SearchError, match=r"after 3 tries.*not CMR's JSON"):
        search(**SEED, backoff=0.1)


def test_cmr_timeouts_are_retried_then_reported(env):
    cmr = env["cmr"]
    cmr.fail(1, status=0, delay=1.5)  # stalls once, then answers
    assert len(search(**SEED, timeout=0.5, backoff=0.1).granules) == 5
    cmr.fail(3, status=0, delay=1.5)
    t0 = time.perf_counter()
    with pytest.raises(SearchError, match=r"after 3 tries: timed out after 0.5 s") as e:
        search(**SEED, timeout=0.5, backoff=0.1)
    assert e.value.exit_code == 3 and time.perf_counter() - t0 < 10


def test_unreachable_cmr(env, monkeypatch):
    monkeypatch.setenv("GCOV_INDEX_CMR_HOST", "127.0.0.1:9")  # nothing listens there
    with pytest.raises(SearchError, match="connection failed"):
        search(**SEED, backoff=0.05)


def test_query_values_are_checked_in_python_too():
    with pytest.raises(BadInputError, match="--end"):
        SearchQuery.from_options(start="2026-01-02", end="2026-01-01")
    q = SearchQuery.from_options(aoi="40.83,13.24,40.87,13.28", end="2026-01-15")
    assert q.end.hour == 23 and q.aoi.startswith("POLYGON")
    assert SearchQuery.from_dict(q.to_dict()) == q
    assert NoResultsError.exit_code == 5


def test_asf_search_names_are_accepted(env, capsys):
    """A seed script's asf_search keywords port as they are, in Python and on the CLI."""
    ours = search(**SEED)
    theirs = search(intersectsWith=SEED_AOI, start=SEED_START, end=SEED_END,
                    flightDirection="ASCENDING", productionConfiguration="PR")
    assert [g.granule_id for g in theirs.granules] == [g.granule_id for g in ours.granules]
    assert main(["search", "--intersects-with", "40.83,13.24,40.87,13.28", "--start",
                 SEED_START, "--end", SEED_END, "--flight-direction", "ASCENDING",
                 "--production-configuration", "PR", "--relative-orbit", "172",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["granules"]
    assert [r["granuleId"] for r in rows] == [g.granule_id for g in ours.granules]
