"""search: a SearchQuery -> NISAR L2 GCOV granules through asf_search, latest releases only.

asf_search sends the query to CMR (``POST /search/granules.umm_json``, following
``CMR-Search-After`` pages, one sub-query per production type) and parses each UMM-G record
into a ``NISARProduct``. A record lists several files: the ``.h5`` data granule, its
``_QA_STATS.h5`` companion, browse images, and ``s3://`` copies of each, some of them in buckets
a user cannot read. This module keeps one data granule per record (its https URL and its s3 URL
in the public products bucket), then keeps the latest release of each acquisition
(:func:`~gcov_index.discover.select.select_latest`).

Where asf_search falls short: it retries CMR 5xx answers but not timeouts, lost connections or
the HTML error pages a gateway returns (it fails decoding them as JSON); those are retried here.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlparse

from .._log import logger
from .._time import iso_utc, utc
from ..errors import BadInputError, NoResultsError, SearchError, first_line
from ..granule import Granule, file_name, is_data_granule
from ..io.endpoints import PROD, Endpoints
from .display import dataframe, html_table, span
from .query import ASF_NAMES, OWN, SearchQuery
from .select import select_latest

PROTOCOLS = ("https", "s3")
log = logger(__name__)


@dataclass(frozen=True)
class FoundGranule:
    """One data granule as the archive lists it."""

    granule: Granule  # every field of its name
    https_url: str
    s3_url: str | None  # in the public products bucket; None if the record has none
    size: int | None  # bytes
    start: datetime
    stop: datetime
    track: int | None
    frame: int | None
    direction: str | None  # ASCENDING / DESCENDING
    production: str | None  # PR / UR
    crid: str | None
    collection: str | None
    concept_id: str | None
    # the record's footprint, a GeoJSON geometry in longitude/latitude (asf_search's geometry
    # of the product), or None; not part of equality
    footprint: dict | None = field(default=None, compare=False, repr=False)

    @property
    def granule_id(self) -> str:
        return self.granule.stem

    def url(self, protocol: str = "https") -> str:
        if protocol == "s3":
            if not self.s3_url:
                raise BadInputError(f"{self.granule_id}: the archive lists no s3:// URL in "
                                    "the public bucket; use --protocol https")
            return self.s3_url
        return self.https_url

    def row(self) -> dict:
        """Plain values, for JSON and CSV."""
        return {
            "granuleId": self.granule_id, "start": iso_utc(self.start, "seconds"),
            "stop": iso_utc(self.stop, "seconds"),
            "track": self.track, "frame": self.frame, "direction": self.direction,
            "production": self.production, "crid": self.crid, "counter": self.granule.counter,
            "maturity": self.granule.maturity,
            "size": self.size, "https_url": self.https_url, "s3_url": self.s3_url,
            "collection": self.collection, "concept_id": self.concept_id,
        }

    @staticmethod
    def columns() -> list[str]:
        """The keys of :meth:`row`, in order."""
        return ["granuleId", "start", "stop", "track", "frame", "direction", "production",
                "crid", "counter", "maturity", "size", "https_url", "s3_url", "collection",
                "concept_id"]


@dataclass
class SearchResult:
    query: SearchQuery
    protocol: str
    granules: list[FoundGranule]  # the latest release of each acquisition, in time order
    superseded: list[tuple[FoundGranule, FoundGranule]]  # (older release, the one kept)
    companions: int  # QA_STATS, browse and other files listed beside the data granules
    host: str
    searched_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def urls(self) -> list[str]:
        return [g.url(self.protocol) for g in self.granules]

    @property
    def frames(self) -> list[str]:
        """The distinct passes found, as ``track+direction/frame`` (e.g. ``172A/008``)."""
        return sorted({self.frame_of(g) for g in self.granules})

    @property
    def n_found(self) -> int:
        return len(self.granules) + len(self.superseded)

    def record(self) -> dict:
        """The saved search: what was asked, where, when, and what was found and kept."""
        return {
            "query": self.query.to_dict(),
            "command": f"gcov-index build {self.query.cli_args()} --protocol {self.protocol}"
                       + ("" if self.host == PROD.cmr_host else f" --cmr-host {self.host}"),
            "cmr_host": self.host,
            "searched_at": iso_utc(self.searched_at, "seconds"),
            "protocol": self.protocol,
            "found": [g.granule_id for g in self.granules] + [o.granule_id for o, _ in
                                                              self.superseded],
            "selected": [g.granule_id for g in self.granules],
            "superseded": [{"granuleId": o.granule_id, "by": k.granule_id}
                           for o, k in self.superseded],
        }

    # -- presentation -------------------------------------------------------------------------
    def __repr__(self) -> str:
        times = span(g.start.isoformat() for g in self.granules)
        return (f"SearchResult({len(self.granules)} granules, {len(self.superseded)} superseded"
                f"{', ' + times if times else ''}; passes {', '.join(self.frames) or 'none'}; "
                f"{self.query.summary(120)}; {self.host})")

    def _rows(self, superseded: bool) -> list[dict]:
        rows = [g.row() | {"status": "selected", "superseded_by": None} for g in self.granules]
        if superseded:
            rows += [o.row() | {"status": "superseded", "superseded_by": k.granule_id}
                     for o, k in self.superseded]
        return rows

    def _repr_html_(self) -> str:
        rows = self._rows(True)
        for r in rows:
            r["url"] = r["s3_url"] if self.protocol == "s3" else r["https_url"]
            r["GB"] = f"{r['size'] / 1e9:.2f}" if r["size"] else None
        return html_table(
            f"gcov-index search: {len(self.granules)} granules, {len(self.superseded)} "
            "superseded",
            [("query", self.query.describe()), ("CMR", self.host),
             ("searched at", self.searched_at.isoformat(timespec="seconds")),
             ("found", f"{self.n_found} GCOV granules ({self.companions} QA_STATS, browse and "
                       "other files left out)"),
             ("passes", "; ".join(self.passes())), ("protocol", self.protocol)],
            ["granuleId", "start", "track", "frame", "direction", "production", "crid",
             "counter", "maturity", "GB", "status", "superseded_by", "url"], rows)

    def to_dataframe(self, superseded: bool = False):
        """One row per granule kept (``superseded``: and per older release, ``status`` saying
        which), with the fields of :meth:`FoundGranule.row`; ``start`` and ``stop`` as UTC
        datetimes. Needs pandas."""
        rows = self._rows(superseded)
        columns = [*FoundGranule.columns(), *(("status", "superseded_by") if superseded
                                               else ())]
        return dataframe(rows, columns, times=("start", "stop"))

    def to_geojson(self, superseded: bool = False) -> dict:
        """The granules' footprints as a GeoJSON FeatureCollection (longitude/latitude, from
        the CMR records), each Feature's properties the fields of :meth:`FoundGranule.row`
        (``superseded``: the older releases too, ``status`` saying which). Plain JSON values:
        ``json.dumps`` it, or ``geopandas.GeoDataFrame.from_features(...)``."""
        found = [(g, "selected", None) for g in self.granules]
        if superseded:
            found += [(o, "superseded", k.granule_id) for o, k in self.superseded]
        features = []
        for g, status, by in found:
            props = g.row()
            if superseded:
                props |= {"status": status, "superseded_by": by}
            features.append({"type": "Feature", "id": g.granule_id,
                             "geometry": g.footprint, "properties": props})
        return {"type": "FeatureCollection", "features": features}

    def text(self, fmt: str = "table", show_superseded: bool = False) -> str:
        """The granules as a table, JSON or CSV (``show_superseded`` adds the older releases)."""
        rows = self._rows(show_superseded)
        for r in rows:
            r["url"] = r["s3_url"] if self.protocol == "s3" else r["https_url"]
        if fmt == "json":
            return json.dumps({"search": self.record(), "granules": rows}, indent=1) + "\n"
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            return out.getvalue()
        lines = [f"{'start (UTC)':19}  {'track':>5} {'frame':>5} dir prod {'CRID':6} ctr "
                 f"{'maturity':11} {'GB':>5}  granule"]
        for r in rows:
            mark = f"  superseded by {r['superseded_by'][-28:]}" if r["superseded_by"] else ""
            lines.append(
                f"{r['start'][:19]:19}  {r['track'] or '':>5} {r['frame'] or '':>5} "
                f"{(r['direction'] or '?')[0]:3} {r['production'] or '?':4} {r['crid'] or '':6} "
                f"{r['counter']:03d} {r['maturity']:11} {(r['size'] or 0) / 1e9:5.2f}  "
                f"{r['granuleId']}{mark}")
        lines.append(
            f"{len(self.granules)} granules (the latest release of each acquisition) of "
            f"{self.n_found} found; {len(self.superseded)} superseded"
            + ("" if show_superseded or not self.superseded else " (--show-superseded lists them)")
            + f"; {self.companions} QA_STATS, browse and other files left out; "
            f"--format json or csv gives the {self.protocol} URLs")
        lines.append("passes: " + "; ".join(self.passes()))
        return "\n".join(lines) + "\n"

    def passes(self) -> list[str]:
        """Each track+direction/frame found, with its full and partial frames (a build makes
        at least one stack of each; partial frames usually have grids of their own)."""
        out: dict[str, list[int]] = {}
        for g in self.granules:
            n = out.setdefault(self.frame_of(g), [0, 0])
            n[g.granule.coverage == "P"] += 1
        return [f"{k}: {f} full, {p} partial" for k, (f, p) in sorted(out.items())]

    @staticmethod
    def frame_of(g: FoundGranule) -> str:
        return f"{g.granule.track:03d}{g.granule.direction}/{g.granule.frame:03d}"


def search(query: SearchQuery | None = None, *, protocol: str = "https",
           endpoints: Endpoints | None = None, session=None, timeout: float = 60.0,
           retries: int = 3, backoff: float = 2.0, **criteria) -> SearchResult:
    """Search CMR with asf_search; keep the latest release of each acquisition.

    Give a :class:`SearchQuery` or its fields as keywords: ``aoi`` (WKT, ``minx,miny,maxx,maxy``
    or a GeoJSON file), ``start``, ``end``, ``direction``, ``track``, ``frame``, ``production``
    (``"PR"``, ``"UR"`` or both), ``collection``, ``max_results``, ``maturity`` (``BETA``,
    ``PROVISIONAL``, ``VALIDATED``; or asf_search's names for them: ``intersectsWith``,
    ``flightDirection``, ``dataMaturity``, ...). Any other asf_search search keyword passes to
    asf_search, checked by its validators (``frameCoverage="full"``,
    ``polarization="HH+HV"`` [asf_search's ``mainBandPolarization``], ``rangeBandwidth="20+5"``,
    ``absoluteOrbit="100..200"``, ...; see :func:`~gcov_index.discover.query.asf_keywords`);
    an unknown keyword, a bad value or one that gcov-index sets itself (``dataset``,
    ``processingLevel``, ``host``, ...) raises :class:`BadInputError`. ``protocol`` picks the URL
    each granule is indexed by (``https`` or ``s3``). ``endpoints`` says where CMR is and
    which bucket is the public one (default ``Endpoints.from_env()``: NASA's unless
    ``$GCOV_INDEX_CMR_HOST`` says otherwise); ``session`` is an ``asf_search.ASFSession``.
    Timeouts, lost connections and gateway error pages
    are retried ``retries`` times, ``backoff`` seconds apart, doubling; CMR 5xx answers are
    retried by asf_search itself. Raises
    :class:`SearchError` when CMR fails and :class:`NoResultsError` when nothing matches.
    """
    if query is None:
        query = query_of(criteria)
    elif criteria:
        raise TypeError("give a SearchQuery or search criteria, not both")
    if protocol not in PROTOCOLS:
        raise BadInputError(f"--protocol {protocol!r}: use https or s3")
    endpoints = endpoints or Endpoints.from_env()
    host = endpoints.cmr_host
    products = _run(query, host, session, timeout, retries, backoff)
    found, companions = [], 0
    for p in products:
        g = _found(p, endpoints.s3_bucket)
        companions += _n_files(p) - (1 if g else 0)
        if g is not None:
            found.append(g)
    unique = {g.granule_id: g for g in found}  # one record per granule, even across pages
    if not unique:
        raise NoResultsError(
            f"no GCOV granules match {query.describe()} at {host} ({len(products)} records); "
            "hint: widen the dates or the area, or drop --direction/--track/--frame/--production")
    selection = select_latest([g.granule for g in unique.values()], query.maturity)
    return SearchResult(
        query=query, protocol=protocol,
        granules=[unique[g.stem] for g in selection.selected],
        superseded=[(unique[o.stem], unique[k.stem]) for o, k in selection.superseded],
        companions=companions, host=host,
    )


def query_of(criteria: dict) -> SearchQuery:
    """A :class:`SearchQuery` from ``search``'s keywords: gcov-index's fields under their names
    or asf_search's, any other asf_search keyword passed through (:func:`asf_keywords`)."""
    own: dict = {}
    given: dict[str, str] = {}
    asf: dict = {}
    for name, value in criteria.items():
        key = ASF_NAMES.get(name, name)
        if key not in OWN:
            asf[name] = value
            continue
        if key in own:
            raise BadInputError(f"{name}: the same as {given[key]}= (give one of them)")
        own[key], given[key] = value, name
    return SearchQuery.from_options(**own, asf=asf)


def _run(query: SearchQuery, host: str, session, timeout: float, retries: int, backoff: float):
    import asf_search
    import requests
    from asf_search.constants import INTERNAL
    from asf_search.exceptions import ASFSearch4xxError, ASFSearch5xxError, ASFSearchError

    session = session or asf_search.ASFSession()
    opts = asf_search.ASFSearchOptions(host=host, session=session, **query.asf_options())
    # two module settings of asf_search, for this search only: its timeout (the knob its own
    # timeout message names), and its error reports to ASF (not about other CMR hosts)
    saved = INTERNAL.CMR_TIMEOUT, asf_search.REPORT_ERRORS
    INTERNAL.CMR_TIMEOUT = timeout
    asf_search.REPORT_ERRORS = saved[1] and host == PROD.cmr_host
    log.info("searching CMR at %s: %s", host, query.describe())
    try:
        for attempt in range(1, retries + 1):
            started = time.monotonic()
            log.debug("CMR search at %s (try %d of %d, timeout %g s)", host, attempt, retries,
                      timeout)
            try:
                products = asf_search.search(opts=opts)
                log.info("CMR at %s: %d records in %.2f s", host, len(products),
                         time.monotonic() - started)
                return products
            except ASFSearch4xxError as e:
                raise SearchError(f"CMR at {host} refused the search {query.describe()}: "
                                  f"{first_line(e, 300)}") from None
            except ASFSearch5xxError as e:
                raise SearchError(f"CMR at {host} failed: {first_line(e, 300)} (asf_search tried "
                                  "3 times); try again later") from None
            except (ASFSearchError, requests.RequestException, ValueError) as e:
                # timeouts, lost connections, and non-JSON error pages from a gateway
                if isinstance(e, ASFSearchError) and "Timeout" not in str(e):
                    raise SearchError(f"CMR at {host}: {first_line(e, 300)}") from None
                if attempt == retries:
                    raise SearchError(f"CMR at {host} did not answer the search after "
                                      f"{retries} tries: {_reason(e, timeout)}") from None
                log.debug("CMR at %s, try %d failed after %.2f s: %s; retry in %g s", host,
                          attempt, time.monotonic() - started, _reason(e, timeout),
                          backoff * 2 ** (attempt - 1))
                time.sleep(backoff * 2 ** (attempt - 1))
    finally:
        INTERNAL.CMR_TIMEOUT, asf_search.REPORT_ERRORS = saved
    raise AssertionError("unreachable")


def _reason(e: Exception, timeout: float) -> str:
    import requests

    if "Timeout" in str(e) or isinstance(e, requests.Timeout):
        return f"timed out after {timeout:g} s"
    if isinstance(e, requests.ConnectionError):
        return "connection failed"
    if isinstance(e, ValueError):
        return "the answer was not CMR's JSON (a gateway error page?)"
    return first_line(e, 300)


def _n_files(product) -> int:
    p = product.properties
    urls = [p.get("url") or "", *(p.get("additionalUrls") or []), *(p.get("browse") or [])]
    return len({file_name(u) for u in urls if u})


def _found(product, s3_bucket: str) -> FoundGranule | None:
    """The record's data granule (not QA_STATS or browse), or None if it lists none."""
    p = product.properties
    https = [u for u in [p.get("url"), *p.get("additionalUrls", [])]
             if u and is_data_granule(u) and not u.startswith("s3://")]
    if not https:
        return None
    url = https[0]
    granule = Granule.parse(url)
    s3 = [u for u in p.get("s3Urls", [])
          if file_name(u) == granule.filename and urlparse(u).netloc == s3_bucket]
    sizes = p.get("bytes") or {}
    size = (sizes.get(granule.filename) or {}).get("bytes")
    return FoundGranule(
        granule=granule, https_url=url, s3_url=s3[0] if s3 else None,
        size=int(size) if size is not None else None,
        start=_time(p.get("startTime")) or granule.start,
        stop=_time(p.get("stopTime")) or granule.end,
        track=p.get("pathNumber"), frame=p.get("frameNumber"),
        direction=p.get("flightDirection"), production=p.get("productionConfiguration"),
        crid=p.get("crid"), collection=p.get("collectionName"),
        concept_id=(getattr(product, "meta", None) or {}).get("concept-id"),
        footprint=_geometry(getattr(product, "geometry", None)),
    )


def _geometry(geometry) -> dict | None:
    """asf_search's geometry of a product as plain GeoJSON (lists and floats), or None when the
    record has none."""
    if not isinstance(geometry, dict) or not geometry.get("coordinates"):
        return None

    def plain(c):
        return [plain(v) for v in c] if isinstance(c, list | tuple) else float(c)

    return {"type": str(geometry.get("type", "Polygon")), "coordinates": plain(
        geometry["coordinates"])}


def _time(value) -> datetime | None:
    if not value:
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return utc(t)
