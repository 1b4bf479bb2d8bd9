"""What gcov-index relies on of the NISAR L2 GCOV product (``shared/gcov-product.md``): the
paths of its tree and the meaning of the polarization codes of its names."""

from __future__ import annotations

IDENT = "science/LSAR/identification"
START_TIME = f"{IDENT}/zeroDopplerStartTime"
GCOV_ROOT = "science/LSAR/GCOV"
GRIDS = f"{GCOV_ROOT}/grids"

# polarization code of a granule name (one per frequency) -> polarizations held in it
POLARIZATIONS: dict[str, tuple[str, ...]] = {
    "SH": ("HH",), "SV": ("VV",), "DH": ("HH", "HV"), "DV": ("VV", "VH"),
    "CL": ("RH", "RV"), "CR": ("RH", "RV"), "QP": ("HH", "HV", "VH", "VV"),
    "QD": ("HH", "HV", "VH", "VV"), "NA": (),
}

# data maturity, least to most mature (asf_search's ``dataMaturity`` values, plus TEST for
# T CRIDs); the CRID letter says it when the collection is not known
MATURITIES = ("TEST", "BETA", "PROVISIONAL", "VALIDATED")
CRID_MATURITY = {"X": "BETA", "P": "PROVISIONAL", "T": "TEST"}


def maturity_of(crid: str, collection: str = "") -> str:
    """The maturity of a release: the collection's word (``NISAR_L2_GCOV_BETA_V1``) when known,
    else the CRID letter's."""
    for word in MATURITIES:
        if f"_{word}_" in f"_{collection.upper()}_":
            return word
    return CRID_MATURITY.get(crid[:1].upper(), "TEST")


# product specification versions known (isce-framework/nisarqa product_specs); a newer one is
# indexed as found, with a warning
SPEC_VERSIONS = ("1.1.0", "1.1.2", "1.2.0", "1.2.1", "1.3.0", "1.4.0", "1.6.0")


def version_tuple(text: str) -> tuple[int, ...]:
    """``"1.4.0"`` -> ``(1, 4, 0)``; parts that are not numbers count as 0."""
    return tuple(int(p) if p.isdigit() else 0 for p in text.strip().split("."))
