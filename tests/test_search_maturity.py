"""Releases of different maturity in the archive, searched through asf_search itself: BETA (X
CRIDs, collection NISAR_L2_GCOV_BETA_V1) and PROVISIONAL (P CRIDs, ..._PROVISIONAL_V1) products
of the same acquisitions; full and partial frames of one track and frame."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gcov_index import search
from gcov_index.cli import main
from tests.support.cmr import CMRService, granule_record
from tests.support.granules import GranuleSpec

BASE = GranuleSpec()
BETA = [BASE.repeat(i) for i in range(3)]
# acquisitions 0 and 1 released again as PROVISIONAL, with a lower CRID number than BETA's
PROVISIONAL = [replace(s, crid="P05006") for s in BETA[:2]]
PARTIAL = replace(BASE.repeat(3), coverage="P", crid="P05006")
WHERE = {"track": 172, "frame": 8, "direction": "ascending"}


@pytest.fixture(scope="module")
def cmr():
    specs = [*BETA, *PROVISIONAL, PARTIAL]
    records = [granule_record(s, number=i) for i, s in enumerate(specs)]
    with CMRService(records) as service:
        yield service


def _search(cmr, **kw):
    return search(**WHERE, **kw, endpoints=_endpoints(cmr), session=cmr.session())


def _endpoints(cmr):
    from gcov_index.io.endpoints import PROD

    return PROD.with_(cmr_host=cmr.host)


def test_maturity_ranks_first_and_each_collection_says_its_maturity(cmr):
    found = _search(cmr)
    assert [g.granule.crid for g in found.granules] == ["P05006", "P05006", "X05009", "P05006"]
    assert [g.granule.maturity for g in found.granules] == ["PROVISIONAL", "PROVISIONAL", "BETA",
                                                            "PROVISIONAL"]
    assert {o.granule.crid for o, _ in found.superseded} == {"X05009"}
    assert found.granules[0].collection == "NISAR_L2_GCOV_PROVISIONAL_V1"
    assert found.granules[-1].granule.coverage == "P"  # a partial frame, kept beside the full


def test_data_maturity_goes_to_asf_search(cmr):
    """asf_search turns ``dataMaturity`` into the maturity's collections (shortName)."""
    cmr.log.clear()
    found = _search(cmr, maturity="PROVISIONAL")
    assert {g.granule.maturity for g in found.granules} == {"PROVISIONAL"}
    assert len(found.granules) == 3
    names = {v for r in cmr.log for k, v in r["params"] if k == "shortName"}
    assert "NISAR_L2_GCOV_PROVISIONAL_V1" in names and "NISAR_L2_GCOV_BETA_V1" not in names
    # asf_search's own keyword is taken too
    again = _search(cmr, dataMaturity="BETA")
    assert {g.granule.crid for g in again.granules} == {"X05009"}
    assert "--maturity PROVISIONAL" in found.record()["command"]


def test_cli_maturity_option(cmr, capsys, monkeypatch):
    for k, v in cmr.env.items():
        monkeypatch.setenv(k, v)
    assert main(["search", "--track", "172", "--frame", "8", "--data-maturity", "beta",
                 "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(rows) == 3 and all(",X05009," in r and ",BETA," in r for r in rows)
    assert main(["search", "--track", "172", "--maturity", "GAMMA"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--maturity GAMMA: use BETA, PROVISIONAL, VALIDATED" in err[0]
