"""Keep the ``.h5`` data granules and, of each acquisition, only its preferred release."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import BadInputError
from ..granule import Granule, file_name, is_data_granule, other_product
from ..product import MATURITIES


@dataclass
class Selection:
    selected: list[Granule]  # one per acquisition, sorted by start time
    superseded: list[tuple[Granule, Granule]] = field(default_factory=list)  # (old, kept)
    skipped: list[str] = field(default_factory=list)  # QA_STATS, browse and other files
    # .h5 files whose names are off the convention: granules once their identification is read
    unnamed: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """Warnings about the selected granules (unusual names), one line each."""
        return [n for g in self.selected for n in g.notes]

    @property
    def maturities(self) -> dict[str, int]:
        """How many selected granules of each maturity."""
        out: dict[str, int] = {}
        for g in self.selected:
            out[g.maturity] = out.get(g.maturity, 0) + 1
        return out


def parse_maturity(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """``--maturity`` (asf_search's ``dataMaturity``): one or more of BETA, PROVISIONAL,
    VALIDATED (any case, comma-separated), or None for any."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(dict.fromkeys(i.strip().upper() for i in items if i.strip()))
    bad = [i for i in out if i not in MATURITIES[1:]]
    if bad or not out:
        raise BadInputError(f"--maturity {value if isinstance(value, str) else ','.join(items)}: "
                            f"use {', '.join(MATURITIES[1:])} (comma-separated for several)")
    return out


def select_latest(inputs: Iterable[str | Granule], maturity: Iterable[str] | str | None = None
                  ) -> Selection:
    """The preferred release per acquisition: the most mature (VALIDATED, PROVISIONAL, BETA),
    then PR over UR, then the highest CRID, then the counter.

    Files that are not data granules (``*_QA_STATS.h5``, browse images, ...) are skipped and
    listed; a NISAR granule of another product (GSLC, GUNW, ...) is an error; an ``.h5`` whose
    name is off the convention is listed in ``unnamed``, to be identified by its contents.
    ``maturity`` (e.g. ``PROVISIONAL``) refuses a kept release of another maturity.
    """
    wanted = parse_maturity(maturity)
    granules: list[Granule] = []
    skipped: list[str] = []
    unnamed: list[str] = []
    for item in inputs:
        if isinstance(item, Granule):
            granules.append(item)
            continue
        name = file_name(item)
        if is_data_granule(item):
            granules.append(Granule.parse(item))
        elif other_product(item):
            raise BadInputError(f"{item}: a NISAR {other_product(item)} granule, not GCOV")
        elif name.lower().endswith(".h5") and not name.startswith("NISAR_"):
            unnamed.append(item)
        else:
            skipped.append(item)
    best: dict[tuple, Granule] = {}
    superseded: list[tuple[Granule, Granule]] = []
    for g in granules:
        key = g.acquisition_key
        kept = best.get(key)
        if kept is None:
            best[key] = g
        elif g.release_rank > kept.release_rank:
            superseded.append((kept, g))
            best[key] = g
        elif g.release_rank == kept.release_rank and g.url != kept.url:
            raise BadInputError(f"{g.url}: the same release is also given as {kept.url}")
        elif g.url != kept.url:
            superseded.append((g, kept))
    # re-point superseded pairs at the final winner
    superseded = [(old, best[old.acquisition_key]) for old, _ in superseded]
    selected = sorted(best.values(), key=lambda g: g.start)
    if wanted:
        for g in selected:
            if g.maturity not in wanted:
                raise BadInputError(f"{g.url or g.filename}: a {g.maturity} release, and "
                                    f"--maturity {','.join(wanted)} forbids mixing it in")
    return Selection(selected=selected, superseded=sorted(superseded, key=lambda p: p[0].start),
                     skipped=skipped, unnamed=unnamed)
