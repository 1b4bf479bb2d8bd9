from datetime import UTC, datetime

import pytest

from gcov_index.discover.select import select_latest
from gcov_index.errors import BadInputError
from gcov_index.granule import Granule, is_data_granule

NAME = "NISAR_L2_PR_GCOV_005_172_A_008_2005_DHDH_A_20251122T024618_20251122T024652_X05009_N_F_J_001.h5"
BASE = "s3://sds-n-cumulus-prod-nisar-products/NISAR_L2_GCOV_BETA_V1"


def url(name: str) -> str:
    stem = name.removesuffix(".h5")
    return f"{BASE}/{stem}/{name}"


def test_parse_every_field():
    g = Granule.parse(url(NAME))
    assert (g.processing_type, g.cycle, g.track, g.direction, g.frame) == ("PR", 5, 172, "A", 8)
    assert (g.mode, g.polarizations, g.crid, g.accuracy, g.coverage, g.location, g.counter) == (
        "2005", "DHDH", "X05009", "N", "F", "J", 1)
    assert g.start == datetime(2025, 11, 22, 2, 46, 18, tzinfo=UTC)
    assert g.end == datetime(2025, 11, 22, 2, 46, 52, tzinfo=UTC)
    assert g.frequencies == ("A", "B")
    assert g.filename == NAME
    assert g.url == url(NAME)


@pytest.mark.parametrize("bad", ["foo.h5", NAME.replace("GCOV", "GSLC"),
                                 NAME.replace("_A_008", "_X_008"),
                                 NAME.replace("DHDH", "ZZDH")])
def test_parse_rejects(bad):
    with pytest.raises(BadInputError, match=r"GCOV granule name|polarization"):
        Granule.parse(bad)


def test_data_granules_only():
    assert is_data_granule(url(NAME))
    assert not is_data_granule(url(NAME.replace(".h5", "_QA_STATS.h5")))
    assert not is_data_granule(url(NAME.replace(".h5", ".png")))
    assert not is_data_granule(url(NAME.replace(".h5", "_BROWSE.kml")))


def test_latest_release_wins():
    newer_crid = NAME.replace("X05009", "X05010")
    newer_counter = NAME.replace("_001.h5", "_002.h5")
    ur = NAME.replace("_PR_", "_UR_").replace("X05009", "X05011")
    other = NAME.replace("20251122T024618_20251122T024652", "20251204T024619_20251204T024653"
                         ).replace("_005_172", "_006_172")
    inputs = [url(n) for n in (NAME, newer_counter, newer_crid, ur, other)]
    inputs.append(url(NAME.replace(".h5", "_QA_STATS.h5")))
    sel = select_latest(inputs)
    assert [g.filename for g in sel.selected] == [newer_crid, other]
    superseded = {old.filename for old, _ in sel.superseded}
    assert superseded == {NAME, newer_counter, ur}
    assert all(new.filename == newer_crid for _, new in sel.superseded)
    assert sel.skipped == [url(NAME.replace(".h5", "_QA_STATS.h5"))]


def test_counter_breaks_crid_tie_and_pr_outranks_ur():
    a = url(NAME)
    b = url(NAME.replace("_001.h5", "_002.h5"))
    assert [g.counter for g in select_latest([b, a]).selected] == [2]
    ur = url(NAME.replace("_PR_", "_UR_").replace("X05009", "X06000"))
    assert select_latest([ur, a]).selected[0].processing_type == "PR"


def test_unknown_h5_name_is_an_error():
    with pytest.raises(BadInputError, match=r"random\.h5: not a NISAR L2 GCOV granule name"):
        select_latest(["/data/random.h5"])
