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
    with pytest.raises(BadInputError, match=r"GCOV granule name|polarization|not GCOV"):
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


def test_h5_off_the_convention_is_identified_by_its_contents():
    sel = select_latest(["/data/random.h5", url(NAME)])
    assert sel.unnamed == ["/data/random.h5"]
    assert [g.filename for g in sel.selected] == [NAME]


@pytest.mark.parametrize("product", ["GSLC", "GUNW", "RSLC"])
def test_other_nisar_products_are_refused_in_one_line(product):
    name = NAME.replace("GCOV", product).replace("L2_", "L1_" if product == "RSLC" else "L2_")
    with pytest.raises(BadInputError, match=rf"{name}: a NISAR L\d {product} granule, not GCOV"):
        select_latest([url(NAME), url(name)])


REAL_NAMES = [
    # ASF's public sample (ALOS-1 data in NISAR format): frame 219, its last fields F_N_J
    "NISAR_L2_PR_GCOV_001_005_A_219_4020_SHNA_A_20081012T060910_20081012T060926_P01101_F_N_J_001.h5",
    "NISAR_L2_PR_GCOV_005_172_A_008_4005_DHDH_A_20251122T024618_20251122T024652_X05010_N_P_J_001.h5",
    "NISAR_L2_PR_GCOV_013_172_D_008_7700_QPDH_A_20260601T024618_20260601T024652_P05023_N_F_J_002.h5",
    "NISAR_L2_UR_GCOV_002_064_D_120_4020_DVDV_A_20260101T101010_20260101T101044_T00406_N_F_J_001.h5",
]


@pytest.mark.parametrize("name", REAL_NAMES)
def test_every_real_name_pattern_parses_and_round_trips(name):
    g = Granule.parse(url(name))
    assert g.filename == name
    assert g.coverage in "FP" and g.accuracy == "N"


def test_sample_fields_and_notes():
    g = Granule.parse(REAL_NAMES[0])
    assert (g.frame, g.mode, g.polarizations, g.crid, g.coverage) == (219, "4020", "SHNA",
                                                                    "P01101", "F")
    assert g.frequencies == ("A",)  # NA: no frequency B, whatever the mode says
    assert g.notes and "frame 219 is outside" in g.notes[0]
    assert Granule.parse(REAL_NAMES[3]).maturity == "TEST"
    assert select_latest([REAL_NAMES[0]]).notes == list(g.notes)


def test_maturity_from_collection_then_crid_letter():
    beta = Granule.parse(url(NAME))
    assert beta.maturity == "BETA" and beta.collection == "NISAR_L2_GCOV_BETA_V1"
    prov = NAME.replace("X05009", "P05006")
    assert Granule.parse(prov).maturity == "PROVISIONAL"  # a bare name: the CRID letter
    validated = f"https://h/NISAR/NISAR_L2_GCOV_VALIDATED_V1/x/{prov}"
    assert Granule.parse(validated).maturity == "VALIDATED"


def test_maturity_ranks_before_the_crid_number():
    """X05010 (BETA) has the higher number; P05006 (PROVISIONAL) is the release to keep."""
    beta = NAME.replace("X05009", "X05010")
    prov = NAME.replace("X05009", "P05006")
    sel = select_latest([beta, prov])
    assert [g.crid for g in sel.selected] == ["P05006"]
    assert [(o.crid, k.crid) for o, k in sel.superseded] == [("X05010", "P05006")]


def test_maturity_filter_refuses_a_mixed_stack():
    other = NAME.replace("20251122T024618_20251122T024652", "20251204T024619_20251204T024653"
                         ).replace("_005_172", "_006_172").replace("X05009", "P05023")
    sel = select_latest([NAME, other])
    assert sel.maturities == {"BETA": 1, "PROVISIONAL": 1}
    with pytest.raises(BadInputError, match=r"a BETA release, and --maturity PROVISIONAL"):
        select_latest([NAME, other], maturity="provisional")
    assert len(select_latest([NAME, other], maturity="BETA,PROVISIONAL").selected) == 2
    with pytest.raises(BadInputError, match=r"--maturity GAMMA: use BETA, PROVISIONAL"):
        select_latest([NAME], maturity="GAMMA")
