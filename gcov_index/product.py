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
