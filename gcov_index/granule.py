"""Granule: the typed value of a NISAR L2 GCOV granule name, plus where it lives.

``NISAR_L2_PR_GCOV_005_172_A_008_2005_DHDH_A_20251122T024618_20251122T024652_X05009_N_F_J_001.h5``

Every name pattern seen in the real archive parses (``shared/gcov-product.md``): modes 2005,
4005, 4020, 7700; SHNA, QPDH, DVDV; CRIDs X (BETA), P (PROVISIONAL), T (test); ASF's public
sample with its last fields in another order (``..._P01101_F_N_J_001``) and a frame outside
1-176 (a note, not a refusal). A file whose name does not follow the convention is still a
granule: :meth:`Granule.from_identification` takes its fields from ``identification``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import urlparse

from .errors import BadInputError
from .product import MATURITIES, POLARIZATIONS, maturity_of

_NISAR = re.compile(r"^NISAR_(?P<band>[LS])(?P<level>\d)_(?P<processing>[A-Z]{2})_(?P<product>[A-Z]{4})_")
_NAME = re.compile(
    r"^NISAR_L2_(?P<processing>PR|UR)_GCOV"
    r"_(?P<cycle>\d{3})_(?P<track>\d{3})_(?P<direction>[AD])_(?P<frame>\d{3})"
    r"_(?P<mode>\d{4})_(?P<polarizations>[A-Z]{4})_A"
    r"_(?P<start>\d{8}T\d{6})_(?P<end>\d{8}T\d{6})"
    r"_(?P<crid>[A-Z]\d{5})_(?P<f1>[A-Z])_(?P<f2>[A-Z])_(?P<location>[A-Z])"
    r"_(?P<counter>\d{3})$"
)
COVERAGES = frozenset("FP")
FRAMES = range(1, 177)  # NISAR frames per track

POLARIZATION_CODES = frozenset(POLARIZATIONS)


def file_name(url_or_path: str) -> str:
    """The file name at the end of a path or URL (query and host left out)."""
    local = url_or_path.startswith("file://") or "://" not in url_or_path  # '#', '?' are names
    path = url_or_path.removeprefix("file://") if local else urlparse(url_or_path).path
    return PurePosixPath(path.replace("\\", "/")).name


def _stem(url_or_path: str) -> str:
    return file_name(url_or_path).removesuffix(".h5")


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def other_product(url_or_name: str) -> str | None:
    """The product type of a NISAR name that is not GCOV (``GSLC``, ``GUNW``, ...), else None."""
    m = _NISAR.match(_stem(url_or_name))
    if m and m["product"] != "GCOV" and not _stem(url_or_name).endswith("_QA_STATS"):
        return f"L{m['level']} {m['product']}" if m["band"] == "L" else m["product"]
    return None


def polarization_code(pols: list[str] | tuple[str, ...]) -> str:
    """The two-letter code of a frequency's polarizations (``["HH", "HV"]`` -> ``DH``)."""
    wanted = set(pols)
    for code, held in POLARIZATIONS.items():
        if set(held) == wanted:
            return code
    return "NA"


@dataclass(frozen=True, order=False)
class Granule:
    """Every field of a GCOV granule name, typed, and the URL it was found at."""

    processing_type: str  # "PR" production or "UR" urgent response
    cycle: int  # 0 when unknown (a name off the convention)
    track: int
    direction: str  # "A" ascending, "D" descending
    frame: int
    mode: str  # "2005": freq A range bandwidth 20 MHz, freq B 05 MHz ("00" = absent)
    polarizations: str  # freq A then freq B, e.g. "DHDH"
    start: datetime
    end: datetime
    crid: str  # composite release id, e.g. "X05009"
    accuracy: str
    coverage: str  # "F" full frame, "P" partial
    location: str
    counter: int
    url: str = field(default="", compare=False)
    name: str = field(default="", compare=False)  # the file stem as found, when it differs
    collection: str = field(default="", compare=False)  # e.g. NISAR_L2_GCOV_BETA_V1, if known

    @classmethod
    def parse(cls, url_or_name: str) -> Granule:
        """Parse a granule file name, path or URL; raise BadInputError naming it otherwise."""
        stem = _stem(url_or_name)
        m = _NAME.match(stem)
        if not m:
            other = other_product(url_or_name)
            if other:
                raise BadInputError(f"{url_or_name}: a NISAR {other} granule, not GCOV")
            raise BadInputError(f"{url_or_name}: not a NISAR L2 GCOV granule name")
        g = m.groupdict()
        pols = g["polarizations"]
        for code in (pols[:2], pols[2:]):
            if code not in POLARIZATION_CODES:
                raise BadInputError(f"{url_or_name}: unknown polarization code {code!r}")
        try:
            start, end = _time(g["start"]), _time(g["end"])
        except ValueError:
            raise BadInputError(f"{url_or_name}: start or end time is not a valid date") from None
        # accuracy, coverage, location; ASF's sample has coverage first (..._F_N_J_001)
        accuracy, coverage = g["f1"], g["f2"]
        if coverage not in COVERAGES:
            if accuracy not in COVERAGES:
                raise BadInputError(f"{url_or_name}: no frame coverage (F or P) before the "
                                    "processing location")
            accuracy, coverage = coverage, accuracy
        granule = cls(
            processing_type=g["processing"],
            cycle=int(g["cycle"]),
            track=int(g["track"]),
            direction=g["direction"],
            frame=int(g["frame"]),
            mode=g["mode"],
            polarizations=pols,
            start=start,
            end=end,
            crid=g["crid"],
            accuracy=accuracy,
            coverage=coverage,
            location=g["location"],
            counter=int(g["counter"]),
            url=url_or_name,
            collection=collection_in(url_or_name),
        )
        return granule if granule.stem == stem else replace(granule, name=stem)

    @classmethod
    def from_identification(cls, url: str, ident: dict) -> Granule:
        """A granule whose file name is off the convention, its fields read from the file's
        ``identification`` group (``ident``: dataset name -> value, strings decoded)."""

        def text(key: str, default: str = "") -> str:
            v = ident.get(key, default)
            return v.decode() if isinstance(v, bytes) else str(v)

        def when(key: str) -> datetime:
            t = text(key)[:19]
            try:
                return datetime.strptime(t, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
            except ValueError:
                raise BadInputError(f"{url}: identification/{key} {t!r} is not a time") from None

        freqs = [f.decode() if isinstance(f, bytes) else str(f)
                 for f in ident.get("listOfFrequencies", ["A"])]
        pols = ident.get("polarizations", {})  # frequency -> its listOfPolarizations
        codes = "".join(polarization_code(pols.get(f, ())) if f in freqs else "NA"
                        for f in ("A", "B"))
        crid = text("compositeReleaseId", "X00000").strip() or "X00000"
        return cls(
            processing_type="UR" if text("processingType").lower().startswith("urg") else "PR",
            cycle=0, track=int(ident.get("trackNumber", 0)),
            direction="D" if text("orbitPassDirection").upper().startswith("D") else "A",
            frame=int(ident.get("frameNumber", 0)),
            mode="",  # the bandwidths are not in identification
            polarizations=codes, start=when("zeroDopplerStartTime"),
            end=when("zeroDopplerEndTime"), crid=crid if re.fullmatch(r"[A-Z]\d{5}", crid)
            else "X00000", accuracy="N",
            coverage="P" if text("isFullFrame").lower() == "false" else "F",
            location="J", counter=1, url=url, name=_stem(url), collection=collection_in(url),
        )

    @property
    def stem(self) -> str:
        if self.name:
            return self.name
        return (
            f"NISAR_L2_{self.processing_type}_GCOV_{self.cycle:03d}_{self.track:03d}"
            f"_{self.direction}_{self.frame:03d}_{self.mode}_{self.polarizations}_A"
            f"_{self.start:%Y%m%dT%H%M%S}_{self.end:%Y%m%dT%H%M%S}_{self.crid}"
            f"_{self.accuracy}_{self.coverage}_{self.location}_{self.counter:03d}"
        )

    @property
    def filename(self) -> str:
        return self.stem + ".h5"

    @property
    def frequencies(self) -> tuple[str, ...]:
        """Frequencies present: "A" always, "B" when it has polarizations (not ``NA``) and a
        bandwidth (not "00"; the mode of a name off the convention is unknown)."""
        if self.polarizations[2:] == "NA" or self.mode[2:] == "00":
            return ("A",)
        return ("A", "B")

    @property
    def maturity(self) -> str:
        """BETA, PROVISIONAL, VALIDATED or TEST: from the collection when the URL names one
        (``NISAR_L2_GCOV_BETA_V1``), else from the CRID letter (X BETA, P PROVISIONAL, T TEST)."""
        return maturity_of(self.crid, self.collection)

    @property
    def notes(self) -> tuple[str, ...]:
        """What is unusual about this name, said as a warning (never a refusal)."""
        out = []
        if self.frame not in FRAMES:
            out.append(f"{self.filename}: frame {self.frame} is outside NISAR's frames 1-176 "
                       "(indexed as named)")
        return tuple(out)

    @property
    def acquisition_key(self) -> tuple:
        """What identifies one acquisition across releases: the name before the CRID, with
        the processing type left out so that a PR and a UR product of it are compared."""
        return (
            self.cycle, self.track, self.direction, self.frame, self.mode,
            self.polarizations, self.start, self.end,
        )

    @property
    def release_rank(self) -> tuple:
        """Higher is preferred: the more mature release (VALIDATED, PROVISIONAL, BETA, then
        test), then PR over UR, then the highest CRID release, then the counter."""
        return (
            MATURITIES.index(self.maturity) if self.maturity in MATURITIES else -1,
            self.processing_type == "PR",
            int(self.crid[1:]),
            self.crid[0],
            self.counter,
        )


def collection_in(url: str) -> str:
    """The archive collection a URL names (its path's first part), e.g. NISAR_L2_GCOV_BETA_V1."""
    if "://" not in url or url.startswith("file://"):
        return ""
    parts = [p for p in urlparse(url).path.split("/") if p]
    hits = [p for p in parts if p.startswith("NISAR_L2_GCOV_")]
    return hits[0] if hits else ""


def is_data_granule(url_or_name: str) -> bool:
    """True for a GCOV ``.h5`` data granule; False for QA_STATS, browse images and the rest."""
    if not file_name(url_or_name).lower().endswith(".h5"):  # a URL's query left out
        return False
    return _NAME.match(_stem(url_or_name)) is not None
