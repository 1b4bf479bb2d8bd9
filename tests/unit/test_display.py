"""What results show in a notebook, on hand-made values: a short repr, an HTML table with every
value escaped, a DataFrame with datetimes, GeoJSON footprints; and the asf_search keywords a
query keeps (checked by asf_search's validators, saved and read back)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pandas as pd
import pytest

from gcov_index import BadInputError, FoundGranule, Granule, SearchQuery, SearchResult
from gcov_index.discover.select import Selection
from gcov_index.read.info import StoreInfo
from gcov_index.read.validate import Finding, ValidationReport
from gcov_index.store.build import BuildResult

NAMES = [f"NISAR_L2_PR_GCOV_00{c}_172_A_008_2005_DHDH_A_2025{m}T024618_2025{m}T024652_X05009_N_"
         f"F_J_001" for c, m in ((5, "1122"), (6, "1204"), (7, "1216"))]
SCRIPT = "<script>alert('x')</script>"
FOOTPRINT = {"type": "Polygon", "coordinates": [[[40.79, 13.19], [40.91, 13.19], [40.91, 13.32],
                                                 [40.79, 13.32], [40.79, 13.19]]]}


def found(name: str, **changes) -> FoundGranule:
    g = Granule.parse(name)
    url = f"https://nisar.asf.earthdatacloud.nasa.gov/NISAR/NISAR_L2_GCOV_BETA_V1/{name}/{name}.h5"
    return replace(FoundGranule(
        granule=replace(g, url=url), https_url=url, s3_url=None, size=1_712_318_464,
        start=g.start, stop=g.end, track=172, frame=8, direction="ASCENDING",
        production="PR", crid="X05009", collection="NISAR_L2_GCOV_BETA_V1",
        concept_id="G1-ASF", footprint=FOOTPRINT), **changes)


@pytest.fixture
def result() -> SearchResult:
    a, b, c = (found(n) for n in NAMES)
    hostile = replace(c, crid=SCRIPT, https_url=f"https://x/{SCRIPT}.h5",  # a hostile record
                      footprint=None)
    older = replace(found(NAMES[1]), crid="X05007")
    query = SearchQuery.from_options(aoi="40.83,13.24,40.87,13.28", start="2025-11-15",
                                     asf={"frameCoverage": "full"})
    return SearchResult(query=query, protocol="https", granules=[a, b, hostile],
                        superseded=[(older, b)], companions=8, host="cmr.earthdata.nasa.gov",
                        searched_at=datetime(2026, 1, 20, tzinfo=UTC))


def test_search_result_repr_is_one_short_line(result):
    text = repr(result)
    assert "\n" not in text and len(text) < 250, text
    assert text.startswith("SearchResult(3 granules, 1 superseded, 2025-11-22T02:46:18 .. ")
    assert "172A/008" in text and "--frame-coverage FULL" in text
    assert "--aoi 40.83,13.24,40.87,13.28" in text  # the area by its bounds, not its WKT
    assert "https://" not in text  # no granule listing in the repr


def test_search_result_html_escapes_every_value(result):
    page = result._repr_html_()
    assert SCRIPT not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<tr>") == 4 + 1 + 6  # a row per granule (and the older), head, summary
    assert NAMES[0] in page and "superseded" in page and "--frame-coverage FULL" in page
    assert "&lt;script&gt;" in page and "<script" not in page


def test_search_result_to_dataframe(result):
    df = result.to_dataframe()
    assert list(df.columns) == FoundGranule.columns() and len(df) == 3
    assert list(df["granuleId"]) == NAMES
    for c in ("start", "stop"):
        assert isinstance(df[c].dtype, pd.DatetimeTZDtype) and str(df[c].dtype.tz) == "UTC"
    assert df["start"][0] == pd.Timestamp("2025-11-22T02:46:18Z")
    both = result.to_dataframe(superseded=True)
    assert list(both["status"]) == ["selected"] * 3 + ["superseded"]
    assert both["superseded_by"].iloc[-1] == NAMES[1]


def test_search_result_to_geojson(result):
    doc = result.to_geojson()
    assert json.loads(json.dumps(doc)) == doc  # plain JSON values
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 3
    first = doc["features"][0]
    assert first["geometry"] == FOOTPRINT and first["id"] == NAMES[0]
    assert first["properties"] == result.granules[0].row()
    assert doc["features"][2]["geometry"] is None  # a record without a footprint
    assert len(result.to_geojson(superseded=True)["features"]) == 4


def test_build_result(result):
    sel = Selection(selected=[g.granule for g in result.granules])
    tree = SimpleNamespace(n_refs=1234, groups={"": {"gcov_index": {"granules": [
        {"granuleId": n, "stack": "T172A_F008"} for n in NAMES]}}})
    built = BuildResult(store="stack.json", selection=sel, tree=tree, scanned=1, cached=0,
                        stacks=[{"id": "T172A_F008", "granules": 3}],
                        warnings=[f"odd {SCRIPT}"], added=[NAMES[2]],
                        replaced=[{"granuleId": NAMES[1].replace("X05009", "X05007"),
                                   "by": NAMES[1]}], kept=2)
    assert repr(built) == ("BuildResult(stack.json: 3 granules in 1 stack (T172A_F008); 1 added, "
                           "1 replaced, 2 kept; 1 scanned, 0 from the cache; 1 warning)")
    df = built.to_dataframe()
    assert list(df["status"]) == ["kept", "replaced", "added"]
    assert df["replaces"][1].endswith("X05007_N_F_J_001") and pd.isna(df["replaces"][0])
    assert set(df["stack"]) == {"T172A_F008"} and isinstance(df["time"].dtype, pd.DatetimeTZDtype)
    page = built._repr_html_()
    assert "<script" not in page and "odd &lt;script&gt;" in page and page.count(NAMES[0]) == 3  # id, url


def test_store_info_and_validation_report():
    granules = [{"time": f"2025-{m}T02:46:18", "granuleId": n, "stack": "T172A_F008",
                 "maturity": "BETA", "url": f"s3://b/{n}.h5"}
                for n, m in zip(NAMES, ("11-22", "12-04", "12-16"), strict=True)]
    granules[1]["granuleId"] = SCRIPT
    info = StoreInfo(store="stack.json", granules=granules[::-1], superseded=[], grids={},
                     n_chunk_refs=99, n_bytes_referenced=10**6, extra={},
                     stacks=[{"id": "T172A_F008"}])
    assert repr(info) == ("StoreInfo(stack.json: 3 granules, 1 stack, 2025-11-22T02:46:18 .. "
                          "2025-12-16T02:46:18, 99 chunk references)")
    df = info.to_dataframe()
    assert list(df.columns) == ["time", "granuleId", "stack", "maturity", "url"]
    assert df["time"].is_monotonic_increasing and df["granuleId"][0] == NAMES[0]
    assert "<script" not in info._repr_html_()
    report = ValidationReport(store="stack.json", granules=3, chunks_checked=12, refs_checked=40,
                              findings=[Finding(SCRIPT, "chunk 0.0.0 differs")])
    assert repr(report) == ("ValidationReport(stack.json: FAILED: 1 problem(s) in 1 granule(s); "
                            "3 granules, 40 references and 12 chunks compared)")
    page = report._repr_html_()
    assert "<script" not in page and "&lt;script&gt;" in page and "differs" in page
    ok = ValidationReport(store="s.json", granules=1)
    assert "s.json: ok;" in repr(ok) and "<tr>" in ok._repr_html_()


# ---------------------------------------------------------------------------------------
# the asf_search keywords a query keeps


def test_asf_keywords_are_checked_frozen_saved_and_repeated():
    q = SearchQuery.from_options(start="2025-11-15", asf={
        "polarization": "dh,QP", "frameCoverage": "p", "jointObservation": "FALSE",
        "rangeBandwidth": "20+5", "absoluteOrbit": "100..200,300"})
    assert q.asf == (("absoluteOrbit", ((100, 200), 300)), ("frameCoverage", "PARTIAL"),
                     ("jointObservation", False),
                     ("mainBandPolarization", ("HH+HV", "HH+HV+VH+VV")),
                     ("rangeBandwidth", ("20+5",)))
    assert hash(q) == hash(SearchQuery.from_dict(json.loads(json.dumps(q.to_dict()))))
    assert SearchQuery.from_dict(q.to_dict()) == q
    assert q.cli_args() == ("--start 2025-11-15T00:00:00Z --asf absoluteOrbit=100..200,300 "
                            "--frame-coverage PARTIAL --joint-observation false "
                            "--polarization HH+HV,HH+HV+VH+VV --range-bandwidth 20+5")
    opts = q.asf_options()
    assert opts["absoluteOrbit"] == [(100, 200), 300] and opts["jointObservation"] is False
    assert opts["dataset"] == "NISAR" and opts["processingLevel"] == "GCOV"
    # asf_search itself takes them (its ASFSearchOptions validates every keyword again)
    import asf_search

    assert dict(asf_search.ASFSearchOptions(**opts))["mainBandPolarization"] == [
        "HH+HV", "HH+HV+VH+VV"]


@pytest.mark.parametrize("asf, expect", [
    ({"frameCoverag": "full"}, "did you mean frameCoverage?"),
    ({"jointObservation": "nope"}, "use true or false"),
    ({"dataset": "NISAR"}, "dataset: not passed"),
    ({"session": object()}, "session: not passed"),
    ({"maxResults": 3}, "maxResults: gcov-index maps it; use --max-results"),
    ({"season": "x"}, "Invalid int list"),
    ({"polarization": "HV+HH"}, "--polarization 'HV+HH': use HH, VV, HH+HV"),
])
def test_asf_keywords_refused_in_one_line(asf, expect):
    with pytest.raises(BadInputError, match=expect.replace("?", r"\?").replace("+", r"\+")) as e:
        SearchQuery.from_options(asf=asf)
    assert "\n" not in str(e.value)
