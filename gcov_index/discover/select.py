"""Keep the ``.h5`` data granules and, of each acquisition, only its latest release."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import BadInputError
from ..granule import Granule, file_name, is_data_granule


@dataclass
class Selection:
    selected: list[Granule]  # one per acquisition, sorted by start time
    superseded: list[tuple[Granule, Granule]] = field(default_factory=list)  # (old, kept)
    skipped: list[str] = field(default_factory=list)  # QA_STATS, browse and other files


def select_latest(inputs: Iterable[str | Granule]) -> Selection:
    """Latest release per acquisition: PR over UR, then the highest CRID, then the counter.

    Files that are not data granules (``*_QA_STATS.h5``, browse images, ...) are skipped and
    listed; an ``.h5`` whose name is not a GCOV granule name is an error.
    """
    granules: list[Granule] = []
    skipped: list[str] = []
    for item in inputs:
        if isinstance(item, Granule):
            granules.append(item)
            continue
        name = file_name(item)
        if is_data_granule(item):
            granules.append(Granule.parse(item))
        elif name.lower().endswith(".h5") and not name.startswith("NISAR_"):
            raise BadInputError(f"{item}: not a NISAR L2 GCOV granule name")
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
    return Selection(selected=selected, superseded=sorted(superseded, key=lambda p: p[0].start),
                     skipped=skipped)
