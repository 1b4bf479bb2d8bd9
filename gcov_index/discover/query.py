"""SearchQuery: what a user asks the archive for, checked, in asf_search's terms, and saved.

The query is a typed value: every input is checked here (area, dates, direction, production)
with a one-line error naming the option, and resolved to absolute values (UTC times, a WKT in
longitude/latitude), so that the query saved in a store repeats the same search later.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time
from pathlib import Path

from .._time import iso_utc, utc
from ..errors import BadInputError, first_line
from .select import parse_maturity

DIRECTIONS = {"A": "ASCENDING", "ASC": "ASCENDING", "ASCENDING": "ASCENDING",
              "D": "DESCENDING", "DESC": "DESCENDING", "DESCENDING": "DESCENDING"}
PRODUCTIONS = ("PR", "UR")
_BBOX = re.compile(r"^\s*(-?[\d.]+(?:e-?\d+)?\s*,\s*){3}-?[\d.]+(?:e-?\d+)?\s*$", re.I)
# a WKT geometry starts with its type: POLYGON ((...)), MULTIPOLYGON Z (...), POINT EMPTY, ...
_WKT = re.compile(r"^\s*(SRID=\d+;\s*)?[A-Z]+(\s+(Z|M|ZM))?\s*(\(|EMPTY\b)", re.I)


def _is_file(text: str) -> bool:
    """``Path(text)`` is a file or directory; False for what cannot be a file name (too long,
    a NUL)."""
    try:
        return Path(text).expanduser().exists()
    except (OSError, ValueError):
        return False


def parse_aoi(text: str) -> str:
    """An area of interest as WKT, ``minx,miny,maxx,maxy`` (degrees) or a GeoJSON file path;
    returns the WKT of the area in longitude/latitude."""
    from shapely import wkt
    from shapely.errors import ShapelyError
    from shapely.geometry import box

    text = text.strip()
    if not text:
        raise BadInputError("--aoi: empty area of interest")
    if _BBOX.match(text):
        try:
            minx, miny, maxx, maxy = (float(v) for v in text.split(","))
        except ValueError:
            raise BadInputError(f"--aoi {text}: a bbox is four numbers, minx,miny,maxx,maxy") \
                from None
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
            raise BadInputError(f"--aoi {text}: a bbox is four finite numbers")
        if not (minx < maxx and miny < maxy):
            raise BadInputError(f"--aoi {text}: a bbox is minx,miny,maxx,maxy with min < max")
        geom = box(minx, miny, maxx, maxy)
    elif not _WKT.match(text) and (text.lower().endswith((".geojson", ".json"))
                                   or _is_file(text)):
        geom = _geojson(text)
    else:
        try:
            geom = wkt.loads(text)
        except (ShapelyError, ValueError) as e:
            raise BadInputError(f"--aoi {_short(text)}: not WKT, a minx,miny,maxx,maxy bbox "
                                f"or a GeoJSON file ({str(e).splitlines()[0]})") from None
    if geom.is_empty:
        raise BadInputError(f"--aoi {_short(text)}: the area is empty")
    if not geom.is_valid:
        raise BadInputError(f"--aoi {_short(text)}: the geometry is not valid "
                            "(self-intersecting or unclosed)")
    minx, miny, maxx, maxy = geom.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise BadInputError(f"--aoi {_short(text)}: coordinates must be longitude, latitude "
                            f"in degrees (bounds {minx:g},{miny:g},{maxx:g},{maxy:g})")
    return geom.wkt


def _geojson(name: str):
    """The union of the geometries in a GeoJSON file (a geometry, Feature or collection)."""
    from shapely.errors import ShapelyError
    from shapely.geometry import shape
    from shapely.ops import unary_union

    path = Path(name).expanduser()
    try:
        if path.is_dir():
            raise BadInputError(f"--aoi {name}: is a directory, not a GeoJSON file")
        doc = json.loads(path.read_bytes().decode())
    except OSError as e:
        raise BadInputError(f"--aoi {name}: cannot read the GeoJSON file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise BadInputError(f"--aoi {name}: not GeoJSON (not UTF-8 text)") from None
    except ValueError as e:
        raise BadInputError(f"--aoi {name}: not GeoJSON ({first_line(e)})") from None
    if not isinstance(doc, dict):
        raise BadInputError(f"--aoi {name}: not GeoJSON (a JSON {type(doc).__name__}, not an "
                            "object)")
    try:
        kind = doc.get("type")
        geoms = ([f.get("geometry") for f in doc.get("features") or []]
                 if kind == "FeatureCollection" else
                 [doc.get("geometry")] if kind == "Feature" else [doc])
        geom = unary_union([shape(g) for g in geoms if g])
    except (ShapelyError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise BadInputError(f"--aoi {name}: not a GeoJSON geometry ({first_line(e)})") from None
    if geom.is_empty:
        raise BadInputError(f"--aoi {name}: the GeoJSON holds no geometry")
    return geom


def _short(text: str, n: int = 60, whole: int = 200) -> str:
    """The input quoted: whole up to ``whole`` characters (a file name), else cut to ``n``."""
    return repr(text if len(text) <= whole else text[: n - 3] + "...")


def parse_time(text: str | datetime | None, option: str, *, end: bool = False) -> datetime | None:
    """An ISO 8601 date or time, UTC unless it says otherwise. A date alone given as the end
    means the end of that day, so ``--end 2026-01-15`` includes acquisitions of the 15th."""
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        t = text
    else:
        try:
            t = datetime.fromisoformat(text.strip())
        except ValueError:
            raise BadInputError(f"{option} {text!r}: not a date or time "
                                "(use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)") from None
        if end and re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", text.strip()):
            t = datetime.combine(t.date(), time.max)
    try:
        return utc(t)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise BadInputError(f"{option} {text!s}: out of the range of dates") from None


@dataclass(frozen=True)
class SearchQuery:
    """A NISAR L2 GCOV search. Field names follow the CLI; ``asf_options`` gives asf_search's."""

    aoi: str | None = None  # WKT, longitude/latitude
    start: datetime | None = None
    end: datetime | None = None
    direction: str | None = None  # "ASCENDING" or "DESCENDING"
    track: int | None = None  # relative orbit
    frame: int | None = None
    production: tuple[str, ...] = PRODUCTIONS  # "PR", "UR" or both
    collection: str | None = None  # CMR short name, e.g. NISAR_L2_GCOV_BETA_V1
    max_results: int | None = None
    maturity: tuple[str, ...] | None = None  # BETA, PROVISIONAL, VALIDATED [dataMaturity]

    @classmethod
    def from_options(cls, *, aoi: str | None = None, start=None, end=None,
                     direction: str | None = None, track: int | str | None = None,
                     frame: int | str | None = None,
                     production: str | list[str] | tuple[str, ...] | None = None,
                     collection: str | None = None,
                     max_results: int | str | None = None,
                     maturity: str | list[str] | tuple[str, ...] | None = None) -> SearchQuery:
        """Check every input; raise BadInputError naming the option at the first bad one."""
        area = parse_aoi(aoi) if aoi is not None else None
        t0 = parse_time(start, "--start")
        t1 = parse_time(end, "--end", end=True)
        if t0 and t1 and t1 < t0:
            raise BadInputError(f"--end {t1:%Y-%m-%dT%H:%M:%SZ} is before --start "
                                f"{t0:%Y-%m-%dT%H:%M:%SZ}")
        if t0 and t0 > datetime.now(UTC):
            raise BadInputError(f"--start {t0:%Y-%m-%dT%H:%M:%SZ} is in the future")
        if direction is not None:
            key = direction.strip().upper()
            if key not in DIRECTIONS:
                raise BadInputError(f"--direction {direction!r}: use ascending or descending")
            direction = DIRECTIONS[key]
        prods = _productions(production)
        return cls(
            aoi=area,
            start=t0, end=t1, direction=direction,
            track=_positive_int(track, "--track", 1, 173),
            frame=_positive_int(frame, "--frame", 1, 176),
            production=prods, collection=collection or None,
            max_results=_positive_int(max_results, "--max-results", 1, None),
            maturity=parse_maturity(maturity),
        )

    def asf_options(self) -> dict:
        """Keyword arguments for ``asf_search.search``."""
        opts: dict = {"dataset": "NISAR", "processingLevel": "GCOV"}
        if self.collection:
            opts = {"shortName": self.collection, "processingLevel": "GCOV"}
        if self.aoi:
            opts["intersectsWith"] = self.aoi
        if self.start:
            opts["start"] = self.start
        if self.end:
            opts["end"] = self.end
        if self.direction:
            opts["flightDirection"] = self.direction
        if self.track is not None:
            opts["relativeOrbit"] = self.track
        if self.frame is not None:
            opts["frame"] = self.frame
        opts["productionConfiguration"] = list(self.production)
        if self.max_results:
            opts["maxResults"] = self.max_results
        if self.maturity:
            opts["dataMaturity"] = list(self.maturity)
        return opts

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("start", "end"):
            if d[k] is not None:
                d[k] = iso_utc(d[k])
        d["production"] = list(self.production)
        d["maturity"] = list(self.maturity) if self.maturity else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SearchQuery:
        return cls.from_options(**{k: d.get(k) for k in (
            "aoi", "start", "end", "direction", "track", "frame", "production", "collection",
            "max_results", "maturity")})

    def cli_args(self) -> str:
        """The options that repeat this search on the command line."""
        parts = []
        for name, value in (("--aoi", self.aoi), ("--start", self.start), ("--end", self.end),
                            ("--direction", self.direction and self.direction.lower()),
                            ("--track", self.track), ("--frame", self.frame),
                            ("--collection", self.collection),
                            ("--max-results", self.max_results)):
            if value is None:
                continue
            if isinstance(value, datetime):
                value = iso_utc(value)
            parts += [name, shlex.quote(str(value))]
        if set(self.production) != set(PRODUCTIONS):
            parts += ["--production", ",".join(self.production)]
        if self.maturity:
            parts += ["--maturity", ",".join(self.maturity)]
        return " ".join(parts)

    def describe(self) -> str:
        """A one-line summary for messages."""
        return self.cli_args() or "(no filters)"


def _productions(value) -> tuple[str, ...]:
    if value is None or value == "" or value == []:
        return PRODUCTIONS
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        p = item.strip().upper()
        if p in ("BOTH", "ALL"):
            out += PRODUCTIONS
        elif p in PRODUCTIONS:
            out.append(p)
        else:
            raise BadInputError(f"--production {item!r}: use PR, UR or both")
    return tuple(p for p in PRODUCTIONS if p in out)


def _positive_int(value, option: str, low: int, high: int | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadInputError(f"{option} {value!r}: not a whole number") from None
    if n < low or (high is not None and n > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise BadInputError(f"{option} {n}: out of range ({bound})")
    return n
