"""SearchQuery: what a user asks the archive for, checked, in asf_search's terms, and saved.

The query is a typed value: every input is checked here (area, dates, direction, production)
with a one-line error naming the option, and resolved to absolute values (UTC times, a WKT in
longitude/latitude), so that the query saved in a store repeats the same search later.

Any other asf_search search keyword (``frameCoverage``, ``mainBandPolarization``,
``rangeBandwidth``, ``absoluteOrbit``, ...) passes to asf_search as it is, checked by asf_search's
own validators (:data:`asf_search.ASFSearchOptions.validator_map.validator_map`) and kept in
:attr:`SearchQuery.asf`; see :func:`asf_keywords` for what is refused and why.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import shlex
from collections.abc import Iterable, Mapping
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

# asf_search's keyword names that gcov-index maps to its own fields (a seed script's call ports
# as it is: ``search(intersectsWith=..., flightDirection=...)``)
ASF_NAMES = {"intersectsWith": "aoi", "flightDirection": "direction", "relativeOrbit": "track",
             "productionConfiguration": "production", "maxResults": "max_results",
             "shortName": "collection", "dataMaturity": "maturity",
             # asf_search's ``polarization`` filters on the POLARIZATION attribute of other
             # missions' records; NISAR's records carry FREQUENCY_A_POLARIZATION_CONCAT, which is
             # asf_search's ``mainBandPolarization``: gcov-index reads one as the other
             "polarization": "mainBandPolarization"}
# our own fields under asf_search's names, for "given twice" and "use --track" messages
OWN = {"aoi": "--aoi", "start": "--start", "end": "--end", "direction": "--direction",
       "track": "--track", "frame": "--frame", "production": "--production",
       "collection": "--collection", "max_results": "--max-results", "maturity": "--maturity"}
# the NISAR keywords with a CLI option of their own (the rest: --asf KEY=VALUE)
ASF_ALIASES = {"mainBandPolarization": "--polarization",
               "sideBandPolarization": "--side-band-polarization",
               "frameCoverage": "--frame-coverage", "rangeBandwidth": "--range-bandwidth",
               "jointObservation": "--joint-observation"}
# asf_search keywords that gcov-index sets itself, or that would undo what it relies on
REFUSED = {
    "dataset": "gcov-index searches the NISAR dataset itself",
    "platform": "gcov-index searches NISAR itself",
    "processingLevel": "gcov-index searches GCOV products only",
    "collections": "gcov-index picks the GCOV collections itself (use --collection SHORT_NAME)",
    "cmr_keywords": "raw CMR parameters could undo the GCOV filters; use asf_search keywords",
    "host": "set the CMR host with --cmr-host, $GCOV_INDEX_CMR_HOST or "
            "search(endpoints=Endpoints(cmr_host=...))",
    "session": "pass search(session=...) in Python",
    "provider": "a setting of asf_search, not a filter",
    "collectionAlias": "a setting of asf_search, not a filter",
    **{k: "give the area with --aoi (WKT, minx,miny,maxx,maxy or a GeoJSON file)"
       for k in ("bbox", "point", "circle", "linestring")},
}
# NISAR's frequency A/B polarizations as its CMR records name them (ASF's keyword docs), and
# the codes of granule names that stand for one of them
NISAR_POLARIZATIONS = ("HH", "VV", "HH+HV", "HH+VV", "VV+VH", "HH+HV+VH+VV", "LH+LV", "RH+RV")
_POL_CODES = {"SH": "HH", "SV": "VV", "DH": "HH+HV", "DV": "VV+VH", "QP": "HH+HV+VH+VV"}
_TRUE, _FALSE = ("TRUE", "T", "YES", "Y", "1"), ("FALSE", "F", "NO", "N", "0")


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
    # any other asf_search keyword, checked by asf_search's validators: sorted (name, value)
    # pairs, lists as tuples (e.g. (("frameCoverage", "FULL"), ("rangeBandwidth", ("20+5",))))
    asf: tuple[tuple[str, object], ...] = ()

    @classmethod
    def from_options(cls, *, aoi: str | None = None, start=None, end=None,
                     direction: str | None = None, track: int | str | None = None,
                     frame: int | str | None = None,
                     production: str | list[str] | tuple[str, ...] | None = None,
                     collection: str | None = None,
                     max_results: int | str | None = None,
                     maturity: str | list[str] | tuple[str, ...] | None = None,
                     asf: Mapping[str, object] | Iterable[tuple[str, object]] | None = None,
                     ) -> SearchQuery:
        """Check every input; raise BadInputError naming the option at the first bad one.
        ``asf`` holds any other asf_search keywords (see :func:`asf_keywords`)."""
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
            asf=asf_keywords(asf or {}),
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
        for key, value in self.asf:
            opts[key] = list(value) if isinstance(value, tuple) else value  # ranges stay tuples
        return opts

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("start", "end"):
            if d[k] is not None:
                d[k] = iso_utc(d[k])
        d["production"] = list(self.production)
        d["maturity"] = list(self.maturity) if self.maturity else None
        d["asf"] = {k: asf_text(k, v) for k, v in self.asf}  # as the CLI gives them
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SearchQuery:
        return cls.from_options(**{k: d.get(k) for k in (
            "aoi", "start", "end", "direction", "track", "frame", "production", "collection",
            "max_results", "maturity", "asf")})

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
        for key, value in self.asf:
            text = asf_text(key, value)
            parts += ([ASF_ALIASES[key], shlex.quote(text)] if key in ASF_ALIASES
                      else ["--asf", shlex.quote(f"{key}={text}")])
        return " ".join(parts)

    def describe(self) -> str:
        """A one-line summary for messages."""
        return self.cli_args() or "(no filters)"

    def summary(self, n: int = 160) -> str:
        """:meth:`describe`, short: the area by its bounds (``~`` when it is not that box),
        cut to ``n`` characters."""
        text = self.describe()
        if self.aoi:
            from shapely import wkt
            from shapely.geometry import box

            geom = wkt.loads(self.aoi)
            bounds = ",".join(f"{v:g}" for v in geom.bounds)
            exact = geom.equals(box(*geom.bounds))
            text = text.replace(shlex.quote(self.aoi), ("" if exact else "~") + bounds, 1)
        return text if len(text) <= n else text[: n - 1] + "…"


# Python names of the keywords with a CLI option of their own (``frame_coverage="full"``)
SNAKE_NAMES = {"polarization": "mainBandPolarization",
               "main_band_polarization": "mainBandPolarization",
               "side_band_polarization": "sideBandPolarization",
               "frame_coverage": "frameCoverage", "range_bandwidth": "rangeBandwidth",
               "joint_observation": "jointObservation"}


def asf_keywords(given: Mapping[str, object] | Iterable[tuple[str, object]]
                 ) -> tuple[tuple[str, object], ...]:
    """asf_search keywords that gcov-index does not map, checked: sorted ``(name, value)`` pairs,
    hashable (lists as tuples), for :attr:`SearchQuery.asf`.

    A name must be one of asf_search's search keywords (its ``validator_map``); a value is
    checked by asf_search's validator of that keyword. A string is read as the CLI gives it: a
    comma-separated list for a list keyword, ``A..B`` for a range. Where asf_search's check is
    too lax to catch a typo, gcov-index checks more: ``jointObservation`` is true or false
    (asf_search's ``bool`` makes the string ``"false"`` true), ``frameCoverage`` is FULL or
    PARTIAL (asf_search accepts any string, then fails with a KeyError while searching),
    ``mainBandPolarization``/``sideBandPolarization`` are NISAR's (``HH``, ``HH+HV``, ...; a
    granule name's ``DH``, ``SH``, ... and ``HHHV`` are read as those). Refused, in one line
    naming the keyword: an unknown name, a bad value, asf_search's name of a gcov-index option
    (use the option), and the keywords gcov-index sets itself or that would break it
    (``REFUSED``: dataset, platform, processingLevel, host, session, ...).
    """
    items = list(given.items()) if isinstance(given, Mapping) else list(given)
    if not items:
        return ()
    from asf_search.ASFSearchOptions.validator_map import validate, validator_map

    out: dict[str, object] = {}
    names: dict[str, str] = {}  # keyword -> the name it was given as
    for name, value in items:
        if not isinstance(name, str):
            raise BadInputError(f"asf_search keyword {name!r}: not a name")
        key = SNAKE_NAMES.get(name, ASF_NAMES.get(name, name))
        label = f"asf_search keyword {name}"
        if key in OWN:
            raise BadInputError(f"{label}: gcov-index maps it; use {OWN[key]} (or {key}= in "
                                "Python)")
        if key in REFUSED:
            raise BadInputError(f"{label}: not passed ({REFUSED[key]})")
        if key not in validator_map:
            near = difflib.get_close_matches(
                key, [*validator_map, *SNAKE_NAMES, *OWN], n=1, cutoff=0.6) or [
                k for k in validator_map if k.lower() == key.lower()]
            raise BadInputError(f"{label}: not an asf_search search keyword"
                                + (f" (did you mean {near[0]}?)" if near else ""))
        if key in names:
            raise BadInputError(f"{label}: the same keyword as {names[key]} (give one of them)")
        names[key] = name
        if value is None:
            continue
        label = f"{ASF_ALIASES.get(key, 'asf_search keyword ' + key)} {_short(str(value))}"
        try:
            value = _asf_value(key, value, validator_map[key])
            value = validate(key, value)
        except BadInputError as e:
            raise BadInputError(f"{label}: {e}") from None
        except (ValueError, TypeError, KeyError) as e:
            raise BadInputError(f"{label}: {first_line(e)}") from None
        out[key] = _frozen(value)
    return tuple(sorted(out.items()))


def _asf_value(key: str, value, validator):
    """A keyword's value as asf_search's validator takes it (a CLI string split into a list or
    ranges), with gcov-index's checks where asf_search's are too lax."""
    from asf_search.ASFSearchOptions import validators as v

    lists = (v.parse_string_list, v.parse_int_list, v.parse_int_or_range_list,
             v.parse_float_or_range_list, v.parse_float_list)
    ranges = (v.parse_int_or_range_list, v.parse_float_or_range_list)
    if isinstance(value, str) and validator in lists:
        items = [i.strip() for i in value.split(",")]
        if not all(items):
            raise BadInputError("an empty item in the list")
        value = [tuple(i.split("..", 1)) if validator in ranges and ".." in i else i
                 for i in items]
    if validator is bool:
        value = _boolean(value)
    if key == "frameCoverage":
        word = str(value).strip().upper()
        if word not in ("F", "FULL", "P", "PARTIAL"):
            raise BadInputError("use full or partial")
        value = "FULL" if word[0] == "F" else "PARTIAL"
    if key in ("mainBandPolarization", "sideBandPolarization"):
        value = [_polarization(p) for p in ([value] if isinstance(value, str) else value)]
    return value


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().upper()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise BadInputError("use true or false")


def _polarization(value) -> str:
    text = str(value).strip().upper().replace(" ", "")
    text = _POL_CODES.get(text, text)
    if "+" not in text and len(text) > 2 and len(text) % 2 == 0:  # HHHV -> HH+HV
        text = "+".join(text[i:i + 2] for i in range(0, len(text), 2))
    if text not in NISAR_POLARIZATIONS:
        raise BadInputError(f"use {', '.join(NISAR_POLARIZATIONS)} (NISAR's; comma-separated "
                            "for several)")
    return text


def _frozen(value):
    """Lists as tuples, so that a query is hashable."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def asf_text(key: str, value) -> str:
    """A kept keyword's value as the CLI gives it (``--asf KEY=TEXT``): read back by
    :func:`asf_keywords` to the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, tuple):
        return ",".join(f"{v[0]}..{v[1]}" if isinstance(v, tuple) else asf_text(key, v)
                        for v in value)
    return str(value)


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
