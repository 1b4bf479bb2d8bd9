"""A stand-in for CMR's granule search, over HTTPS on loopback, answering from NISAR records.

asf_search talks to ``https://{host}/search/granules.umm_json``; :class:`CMRService` answers
there with a certificate from a throw-away CA (``trustme``), so asf_search runs unchanged: it
POSTs the form CMR takes (``shortName``, ``attribute[]``, ``bounding_box`` / ``polygon``,
``temporal``, ``page_size``, ``sort_key[]``, ``provider``), follows ``CMR-Search-After`` pages
and parses UMM-G records. The service filters its records by those parameters as CMR does
(``attribute[]`` on any additional attribute, which is how asf_search asks for NISAR's
``frameCoverage``, ``mainBandPolarization``, ``rangeBandwidth``, ...; ``orbit_number`` for
``absoluteOrbit``, ``updated_since`` for ``processingDate``), refuses parameters it does not
know (400, as CMR), and can be told to fail or stall (:meth:`CMRService.fail`).

:func:`granule_record` writes a record in the shape of a real NISAR L2 GCOV UMM-G record:
CRID in ``DataGranule.Identifiers``; track, frame, direction, product type and production in
``AdditionalAttributes``; in ``RelatedUrls`` the https and s3 links of the granule, of its
``_QA_STATS.h5`` companion and of its browse image, the s3credentials endpoint, and an s3 copy
in a bucket users cannot read. :func:`seed_records` is the fixture of the seed workflow.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

from gcov_index.granule import Granule
from gcov_index.product import POLARIZATIONS, maturity_of

from .granules import GranuleSpec
from .services import BUCKET, TLSFront, _Quiet

COLLECTION_CONCEPT = "C3622214170-ASF"
BROWSE_BUCKET = "sds-n-cumulus-prod-nisar-browse"
PRIVATE_BUCKET = "sds-n-cumulus-prod-nisar-private"
HTTPS_BASE = "https://nisar.asf.earthdatacloud.nasa.gov/NISAR"
GCOV_SIZE = 1_712_318_464  # a full-size granule, for records whose file is not served

# what the seed searched: a small area on track 172 frame 8, ascending, PR, a season. The real
# frame 172A/008 lies over Afar (about 40-43 E, 11-14 N); the seed's box is near 40.85 E,
# 13.26 N, in UTM zone 37N. The fixture's small frame (700 x 600 pixels at 20 m: 12 km east by
# 14 km north) is placed there, centred on that point: it covers 40.794-40.906 E,
# 13.196-13.324 N. GranuleSpec's own defaults (UTM 11N) are left to the other tests.
SEED_EPSG = 32637
SEED_ORIGIN = (694440.0, 1473640.0)  # upper-left corner (x, y), metres, EPSG:32637
SEED_SPEC = GranuleSpec(epsg=SEED_EPSG, origin=SEED_ORIGIN)
SEED_AOI = "POLYGON ((40.83 13.24, 40.87 13.24, 40.87 13.28, 40.83 13.28, 40.83 13.24))"
SEED_START = "2025-11-15"
SEED_END = "2026-01-15"
# the seed's search, as gi.search keywords and as command-line options
SEED = {"aoi": SEED_AOI, "start": SEED_START, "end": SEED_END, "direction": "ascending",
        "production": "PR"}
SEED_ARGS = ["--aoi", SEED_AOI, "--start", SEED_START, "--end", SEED_END,
             "--direction", "ascending", "--production", "PR"]


# ---------------------------------------------------------------------------------------
# records


def footprint(spec: GranuleSpec) -> list[tuple[float, float]]:
    """The grid's outline in longitude/latitude, counter-clockwise, closed."""
    from pyproj import Transformer

    ny, nx = spec.shape
    x0, y0 = spec.origin
    x1, y1 = x0 + 20.0 * nx, y0 - 20.0 * ny
    to_ll = Transformer.from_crs(spec.epsg, 4326, always_xy=True)
    corners = [(x0, y1), (x1, y1), (x1, y0), (x0, y0), (x0, y1)]
    return [tuple(round(v, 6) for v in to_ll.transform(x, y)) for x, y in corners]


def cmr_time(t: datetime) -> str:
    """CMR's form of a time: milliseconds and a Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _attr(name: str, *values) -> dict:
    return {"Name": name, "Values": [str(v) for v in values]}




def granule_record(spec: GranuleSpec, *, https_base: str = HTTPS_BASE, size: int | None = None,
                   collection: str | None = None, number: int = 1, qa_first: bool = False,
                   product_type: str = "GCOV", footprint_ll: list | None = None) -> dict:
    """One UMM-G record (``{"meta", "umm"}``) for the granule ``spec`` names.

    ``https_base`` is where the https links point (NISAR's, or a local file server's);
    ``qa_first`` lists the QA_STATS companion before the granule, the trap that makes
    asf_search's ``url`` property a QA file.
    """
    g: Granule = spec.granule
    # the collection of the release's maturity: X CRIDs BETA, P PROVISIONAL (as the archive)
    collection = collection or f"NISAR_L2_GCOV_{maturity_of(spec.crid)}_V1"
    stem = g.stem if product_type == "GCOV" else g.stem.replace("_GCOV_", f"_{product_type}_")
    name, qa, png = f"{stem}.h5", f"{stem}_QA_STATS.h5", f"{stem}.png"
    key = f"{collection}/{stem}"
    https = f"{https_base.rstrip('/')}/{key}"
    credentials = https_base.rstrip("/").removesuffix("/NISAR") + "/s3credentials"
    data_links = [
        {"URL": f"{https}/{name}", "Type": "GET DATA", "Format": "HDF5",
         "Description": f"Download {name}"},
    ]
    qa_links = [
        {"URL": f"{https}/{qa}", "Type": "GET DATA", "Format": "HDF5",
         "Description": f"Download {qa}"},
    ]
    related = (qa_links + data_links) if qa_first else (data_links + qa_links)
    related += [
        {"URL": f"{https_base.rstrip('/')}-public/{key}/{png}",
         "Type": "GET RELATED VISUALIZATION", "Subtype": "DIRECT DOWNLOAD", "MimeType": "image/png"},
        {"URL": f"s3://{BUCKET}/{key}/{name}", "Type": "GET DATA VIA DIRECT ACCESS",
         "Description": "This link provides direct download access via S3 to the granule"},
        {"URL": f"s3://{BUCKET}/{key}/{qa}", "Type": "GET DATA VIA DIRECT ACCESS",
         "Description": "This link provides direct download access via S3 to the granule"},
        {"URL": f"s3://{BROWSE_BUCKET}/{key}/{png}", "Type": "GET RELATED VISUALIZATION",
         "Description": "This link provides direct download access via S3 to the browse image"},
        {"URL": f"s3://{PRIVATE_BUCKET}/{key}/{name}", "Type": "GET DATA VIA DIRECT ACCESS",
         "Description": "Archive copy (not readable with user credentials)"},
        {"URL": credentials, "Type": "VIEW RELATED INFORMATION",
         "Description": "api endpoint to retrieve temporary credentials valid for same-region "
                        "direct s3 access"},
    ]
    pts = footprint_ll or footprint(spec)
    lon = sum(p[0] for p in pts[:-1]) / (len(pts) - 1)
    lat = sum(p[1] for p in pts[:-1]) / (len(pts) - 1)
    produced = g.start + timedelta(days=2)
    a, b = g.polarizations[:2], g.polarizations[2:]
    attrs = [
        _attr("TRACK_NUMBER", g.track), _attr("FRAME_NUMBER", g.frame),
        _attr("ASCENDING_DESCENDING", "ASCENDING" if g.direction == "A" else "DESCENDING"),
        _attr("PRODUCT_TYPE", product_type), _attr("PRODUCTION_PIPELINE", g.processing_type),
        _attr("FULL_FRAME", "TRUE" if g.coverage == "F" else "FALSE"),
        _attr("CYCLE_NUMBER", g.cycle), _attr("ORBIT_TYPE", "NOE"),
        _attr("FREQUENCY_A_POLARIZATION", *POLARIZATIONS[a]),
        _attr("FREQUENCY_B_POLARIZATION", *POLARIZATIONS[b]),
        # as CMR holds them (asf_search's mainBandPolarization, sideBandPolarization and
        # rangeBandwidth ask for these values): HH+HV; 20+5 for mode 2005, 40 for 4000
        _attr("FREQUENCY_A_POLARIZATION_CONCAT", "+".join(POLARIZATIONS[a])),
        *([_attr("FREQUENCY_B_POLARIZATION_CONCAT", "+".join(POLARIZATIONS[b]))]
          if POLARIZATIONS[b] else []),
        _attr("RANGE_BANDWIDTH_CONCAT", f"{int(g.mode[:2])}" + (
            f"+{int(g.mode[2:])}" if int(g.mode[2:]) else "")),
        _attr("JOINT_OBSERVATION", "FALSE"), _attr("PROCESSING_TYPE", "L2"),
        _attr("CENTER_LAT", round(lat, 6)), _attr("CENTER_LON", round(lon, 6)),
        _attr("ASF_PLATFORM", "NISAR"),
    ]
    sizes = [{"Name": name, "SizeInBytes": int(size or GCOV_SIZE), "Format": "HDF5"},
             {"Name": qa, "SizeInBytes": 48_112, "Format": "HDF5"},
             {"Name": png, "SizeInBytes": 901_223, "Format": "PNG"}]
    return {
        "meta": {
            "concept-type": "granule", "concept-id": f"G{3_700_000_000 + number}-ASF",
            "revision-id": 1, "native-id": stem, "collection-concept-id": COLLECTION_CONCEPT,
            "provider-id": "ASF", "format": "application/vnd.nasa.cmr.umm+json",
            "revision-date": cmr_time(produced + timedelta(hours=3)),
        },
        "umm": {
            "GranuleUR": stem,
            "CollectionReference": {"ShortName": collection, "Version": "1"},
            "TemporalExtent": {"RangeDateTime": {"BeginningDateTime": cmr_time(g.start),
                                                 "EndingDateTime": cmr_time(g.end)}},
            "SpatialExtent": {"HorizontalSpatialDomain": {"Geometry": {"GPolygons": [
                {"Boundary": {"Points": [{"Longitude": x, "Latitude": y} for x, y in pts]}}]}}},
            "OrbitCalculatedSpatialDomains": [{"OrbitNumber": 1000 + 173 * g.cycle + g.track}],
            "AdditionalAttributes": attrs,
            "DataGranule": {
                "DayNightFlag": "Unspecified", "ProductionDateTime": cmr_time(produced),
                "Identifiers": [{"IdentifierType": "ProducerGranuleId", "Identifier": stem},
                                {"IdentifierType": "CRID", "Identifier": g.crid}],
                "ArchiveAndDistributionInformation": sizes,
            },
            "PGEVersionClass": {"PGEName": f"L2_{product_type}",
                                "PGEVersion": f"{int(g.crid[1:3])}.{int(g.crid[3:5])}.{g.crid[5]}"},
            "Platforms": [{"ShortName": "NISAR", "Instruments": [{"ShortName": "L-SAR"}]}],
            "RelatedUrls": related,
            "MetadataSpecification": {"URL": "https://cdn.earthdata.nasa.gov/umm/granule/v1.6.6",
                                      "Name": "UMM-G", "Version": "1.6.6"},
        },
    }


@dataclass(frozen=True)
class SeedFixture:
    """The seed's search over the fixture: the specs it must keep and the ones superseded."""

    latest: list[GranuleSpec]  # the 5 latest releases, in time order
    superseded: list[GranuleSpec]  # the 2 older releases the seed's search also returns
    others: list[GranuleSpec]  # UR products, a descending pass, other dates, other places

    @property
    def descending(self) -> GranuleSpec:
        """The descending pass over the same place (track 77 frame 175): left out by the
        seed's ascending search, found by one without ``--direction`` (a second stack)."""
        return next(s for s in self.others if s.direction == "D")


def seed_fixture(base: GranuleSpec | None = None) -> SeedFixture:
    """What the seed searched (track 172 frame 8 ascending, PR, 2025-11-15..2026-01-15, over
    Afar: ``SEED_SPEC``): 7 results, 5 acquisitions, two of them released twice (a higher CRID,
    a higher counter). ``others`` holds what the search must leave out; the descending pass
    over the same place is ``descending``."""
    base = base or SEED_SPEC
    latest = [base.repeat(i) for i in range(5)]
    latest[1] = replace(latest[1], counter=2)
    superseded = [replace(latest[1], counter=1, seed=101),
                  replace(latest[3], crid="X05007", seed=103)]
    others = [
        replace(latest[0], processing_type="UR", crid="X05010", seed=201),  # UR of a PR acq.
        replace(base.repeat(5), processing_type="UR"),  # UR only, after --end
        base.repeat(-1),  # before --start
        replace(base.repeat(2), track=77, direction="D", frame=175, seed=302,
                start=base.repeat(2).start + timedelta(hours=12)),  # descending, same place
        replace(base.repeat(3), track=20, frame=40, origin=(599960.0, 4500040.0)),  # elsewhere
    ]
    return SeedFixture(latest=latest, superseded=superseded, others=others)


def filler_specs(n: int, base: GranuleSpec | None = None) -> list[GranuleSpec]:
    """``n`` ascending PR acquisitions on other tracks, far from the seed's area (pages)."""
    base = base or GranuleSpec()
    return [replace(base.repeat(i % 5), track=1 + i % 150, frame=100 + i // 150,
                    origin=(300000.0 + 1000.0 * (i % 50), 5200000.0), epsg=32633)
            for i in range(n)]


def seed_records(https_base: str = HTTPS_BASE, sizes: dict[str, int] | None = None,
                 filler: int = 0) -> list[dict]:
    """The seed fixture as CMR records (plus ``filler`` far-away ones to need pages)."""
    fx = seed_fixture()
    specs = [*fx.latest, *fx.superseded, *fx.others, *filler_specs(filler)]
    sizes = sizes or {}
    records = [granule_record(s, https_base=https_base, size=sizes.get(s.granule.filename),
                              number=i, qa_first=(i == 2)) for i, s in enumerate(specs)]
    # a GSLC of the same pass: another product type the GCOV search must not return
    records.append(granule_record(fx.latest[0], https_base=https_base, number=len(records),
                                  product_type="GSLC", collection="NISAR_L2_GSLC_BETA_V1"))
    return records


# ---------------------------------------------------------------------------------------
# the service


class _Record:
    """A record with the values CMR filters and sorts on, read once."""

    def __init__(self, doc: dict):
        from shapely.geometry import Polygon

        self.doc = doc
        umm = doc["umm"]
        self.short_name = umm["CollectionReference"]["ShortName"]
        self.provider = doc["meta"]["provider-id"]
        self.ur = umm["GranuleUR"]
        rng = umm["TemporalExtent"]["RangeDateTime"]
        self.start = datetime.fromisoformat(rng["BeginningDateTime"])
        self.end = datetime.fromisoformat(rng["EndingDateTime"])
        self.attrs = {a["Name"]: a["Values"] for a in umm.get("AdditionalAttributes", [])}
        pts = umm["SpatialExtent"]["HorizontalSpatialDomain"]["Geometry"]["GPolygons"][0][
            "Boundary"]["Points"]
        self.shape = Polygon([(p["Longitude"], p["Latitude"]) for p in pts])
        self.orbits = [o["OrbitNumber"] for o in umm.get("OrbitCalculatedSpatialDomains", [])]
        self.revised = datetime.fromisoformat(doc["meta"]["revision-date"])

    @property
    def sort_key(self) -> list:
        return [-int(self.end.timestamp() * 1000), self.ur]


class CMRError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_KNOWN = {"shortName", "attribute[]", "bounding_box", "polygon", "point", "temporal",
          "page_size", "sort_key[]", "provider", "options[temporal][and]",
          "options[platform][ignore_case]", "readable_granule_name[]", "granule_ur[]",
          "orbit_number", "updated_since"}


def _filter(records: list[_Record], params: list[tuple[str, str]]) -> list[_Record]:
    from shapely.geometry import Point, Polygon, box

    for key, _ in params:
        if key not in _KNOWN:
            raise CMRError(400, f"Parameter [{key}] was not recognized.")
    out = records
    names = {v for k, v in params if k == "shortName"}
    if names:
        out = [r for r in out if r.short_name in names]
    providers = {v for k, v in params if k == "provider"}
    if providers:
        out = [r for r in out if r.provider in providers]
    urs = {v for k, v in params if k in ("granule_ur[]", "readable_granule_name[]")}
    if urs:
        out = [r for r in out if r.ur in urs]
    for key, value in params:
        if key == "attribute[]":
            out = [r for r in out if _attribute_match(r, value)]
        elif key == "temporal":
            lo, hi = [*value.split(","), "", ""][:2]
            t0 = datetime.fromisoformat(lo) if lo else None
            t1 = datetime.fromisoformat(hi) if hi else None
            if t0 and t1 and t1 < t0:
                raise CMRError(400, f"temporal range [{value}] is invalid: end before start")
            out = [r for r in out if (t0 is None or r.end >= t0) and (t1 is None or r.start <= t1)]
        elif key == "orbit_number":  # asf_search's absoluteOrbit: N, or MIN,MAX
            try:
                lo, hi = (int(v) for v in (value.split(",") * 2)[:2])
            except ValueError:
                raise CMRError(400, f"Orbit number [{value}] is invalid") from None
            out = [r for r in out if any(lo <= o <= hi for o in r.orbits)]
        elif key == "updated_since":  # asf_search's processingDate
            try:
                since = datetime.fromisoformat(value)
            except ValueError:
                raise CMRError(400, f"updated_since [{value}] is not a valid datetime") from None
            out = [r for r in out if r.revised >= since]
        elif key in ("bounding_box", "polygon", "point"):
            try:
                v = [float(x) for x in value.split(",")]
                area = (box(*v) if key == "bounding_box" else Point(*v) if key == "point"
                        else Polygon(list(zip(v[::2], v[1::2], strict=True))))
            except (ValueError, TypeError) as e:
                raise CMRError(400, f"[{value}] is not a valid {key}: {e}") from None
            out = [r for r in out if r.shape.intersects(area)]
    return out


def _attribute_match(r: _Record, spec: str) -> bool:
    kind, name, *values = spec.split(",")
    have = r.attrs.get(name)
    if have is None:
        return False
    if len(values) == 1:
        want = values[0]
        if kind in ("int", "float"):
            return any(float(h) == float(want) for h in have)
        return any(h.upper() == want.upper() for h in have)
    lo, hi = values[:2]  # a range: "int,NAME,min,max", either end may be empty
    return any((lo == "" or float(h) >= float(lo)) and (hi == "" or float(h) <= float(hi))
               for h in have)


class _CMRHandler(_Quiet):
    def do_POST(self) -> None:
        svc: CMRService = self.server.owner
        body = self._body().decode()
        params = parse_qsl(body, keep_blank_values=True)
        after = self.headers.get("CMR-Search-After")
        svc.log.append({"path": self.path, "params": params, "search_after": after})
        if svc.latency:
            time.sleep(svc.latency)
        fault = svc._next_fault()
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status:
                return self._reply(fault.status, fault.body.encode(), content_type=fault.type)
        if not self.path.startswith("/search/granules.umm_json"):
            return self._json(404, {"errors": [f"{self.path} is not a search route"]})
        try:
            hits, page, next_after = svc.page(params, after)
        except CMRError as e:
            return self._json(e.status, {"errors": [str(e)]})
        headers = {"CMR-Hits": str(hits), "CMR-Took": "12",
                   "CMR-Request-Id": secrets.token_hex(16)}
        if next_after:
            headers["CMR-Search-After"] = next_after
        self._json(200, {"hits": hits, "took": 12, "items": [r.doc for r in page]}, headers)

    do_GET = do_POST

    def _json(self, status: int, doc: dict, headers: dict | None = None) -> None:
        self._reply(status, json.dumps(doc).encode(), headers,
                    content_type="application/vnd.nasa.cmr.umm_results+json; version=1.6.6")


@dataclass
class Fault:
    status: int = 0
    body: str = ""
    type: str = "application/json"
    delay: float = 0.0


class CMRService:
    """CMR's granule search over HTTPS on loopback. ``env`` points asf_search (through
    gcov-index) at it: ``GCOV_INDEX_CMR_HOST`` and ``REQUESTS_CA_BUNDLE`` for its CA."""

    def __init__(self, records: list[dict] | None = None, latency: float = 0.0,
                 max_page_size: int = 2000):
        self.records = [_Record(r) for r in records or []]
        self.latency = latency
        self.max_page_size = max_page_size
        self.log: list[dict] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._tls = TLSFront(_CMRHandler, self)
        self.url, self.host, self.ca_file = self._tls.url, self._tls.host, self._tls.ca_file

    @property
    def env(self) -> dict[str, str]:
        """What a process (the CLI) sets to search here: the host and the CA to trust."""
        return {"GCOV_INDEX_CMR_HOST": self.host, "REQUESTS_CA_BUNDLE": str(self.ca_file)}

    def session(self):
        """An ``asf_search.ASFSession`` that trusts this server's certificate (in-process
        callers pass it to ``search`` instead of setting ``REQUESTS_CA_BUNDLE``)."""
        import asf_search

        session = asf_search.ASFSession()
        session.verify = str(self.ca_file)
        session.trust_env = False  # else requests prefers $REQUESTS_CA_BUNDLE to `verify`
        return session

    def fail(self, times: int = 1, *, status: int = 500, body: str | None = None,
             content_type: str = "application/json", delay: float = 0.0) -> None:
        """The next ``times`` requests fail: an HTTP ``status`` (500: CMR's JSON error; 504 with
        ``content_type="text/html"``: a gateway page), or stall ``delay`` s first (status 0 then
        answers normally after the delay)."""
        if body is None:
            body = (json.dumps({"errors": ["An Internal Error has occurred."]})
                    if content_type == "application/json" else
                    "<html><body><h1>504 Gateway Time-out</h1></body></html>")
        with self._lock:
            self._faults.extend(Fault(status, body, content_type, delay) for _ in range(times))

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def page(self, params: list[tuple[str, str]], after: str | None):
        """(hits, this page's records, the CMR-Search-After value for the next page)."""
        matched = sorted(_filter(self.records, params), key=lambda r: r.sort_key)
        sizes = [v for k, v in params if k == "page_size"]
        size = min(int(sizes[-1]) if sizes else 10, self.max_page_size)
        start = 0
        if after:
            try:
                last = json.loads(after)
            except ValueError:
                raise CMRError(400, f"CMR-Search-After header [{after}] is invalid") from None
            start = next((i for i, r in enumerate(matched) if r.sort_key > last), len(matched))
        page = matched[start:start + size]
        return len(matched), page, json.dumps(page[-1].sort_key) if page else None

    def stop(self) -> None:
        self._tls.stop()

    def __enter__(self) -> CMRService:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def publish_seed(archive, directory: Path, filler: int = 0) -> tuple[SeedFixture, list[dict]]:
    """Write the seed fixture's granules (latest and superseded releases, and the descending
    pass over the same place), put them in the local ``archive`` (a
    :class:`~tests.support.services.LocalArchive`), and return the fixture with its CMR
    records, whose https links point at the archive's file server."""
    from .granules import write_granule

    fx = seed_fixture()
    sizes = {}
    Path(directory).mkdir(parents=True, exist_ok=True)
    for spec in [*fx.latest, *fx.superseded, fx.descending]:
        path = write_granule(directory, spec)
        archive.add(path)
        sizes[path.name] = path.stat().st_size
    records = seed_records(https_base=f"{archive.earthdata.url}/NISAR", sizes=sizes,
                           filler=filler)
    return fx, records
