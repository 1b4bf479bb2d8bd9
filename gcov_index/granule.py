"""Granule: the typed value of a NISAR L2 GCOV granule name, plus where it lives.

``NISAR_L2_PR_GCOV_005_172_A_008_2005_DHDH_A_20251122T024618_20251122T024652_X05009_N_F_J_001.h5``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import urlparse

from .errors import BadInputError
from .product import POLARIZATIONS

_NAME = re.compile(
    r"^NISAR_L2_(?P<processing>PR|UR)_GCOV"
    r"_(?P<cycle>\d{3})_(?P<track>\d{3})_(?P<direction>[AD])_(?P<frame>\d{3})"
    r"_(?P<mode>\d{4})_(?P<polarizations>[A-Z]{4})_A"
    r"_(?P<start>\d{8}T\d{6})_(?P<end>\d{8}T\d{6})"
    r"_(?P<crid>[A-Z]\d{5})_(?P<accuracy>[A-Z])_(?P<coverage>[FP])_(?P<location>[A-Z])"
    r"_(?P<counter>\d{3})$"
)

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


@dataclass(frozen=True, order=False)
class Granule:
    """Every field of a GCOV granule name, typed, and the URL it was found at."""

    processing_type: str  # "PR" production or "UR" urgent response
    cycle: int
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

    @classmethod
    def parse(cls, url_or_name: str) -> Granule:
        """Parse a granule file name, path or URL; raise BadInputError naming it otherwise."""
        stem = _stem(url_or_name)
        m = _NAME.match(stem)
        if not m:
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
        return cls(
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
            accuracy=g["accuracy"],
            coverage=g["coverage"],
            location=g["location"],
            counter=int(g["counter"]),
            url=url_or_name,
        )

    @property
    def stem(self) -> str:
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
        """Frequencies present: "A" always, "B" when its bandwidth is not "00"."""
        return ("A",) if self.mode[2:] == "00" else ("A", "B")

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
        """Higher is newer: PR outranks UR, then the highest CRID release, then the counter."""
        return (
            self.processing_type == "PR",
            int(self.crid[1:]),
            self.crid[0],
            self.counter,
        )


def is_data_granule(url_or_name: str) -> bool:
    """True for a GCOV ``.h5`` data granule; False for QA_STATS, browse images and the rest."""
    if not file_name(url_or_name).lower().endswith(".h5"):  # a URL's query left out
        return False
    return _NAME.match(_stem(url_or_name)) is not None
