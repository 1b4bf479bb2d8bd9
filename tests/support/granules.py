"""Synthetic NISAR L2 GCOV granules that follow the product specification.

The tree is the one of a product specification version (``GranuleSpec.spec_version``, default
the newest derived): every dataset of its table in ``specs/gcov_<version>.json`` (facts derived
from isce-framework/nisarqa's XMLs, see ``specs/README.md``), with the specification's kinds,
widths, string lengths, named shapes resolved from the spec's parameters, its attributes
(``units="1"``, ``_FillValue``, ``valid_min``, ``grid_mapping``, ``long_name``, the statistics
and projection parameters the product computes, ``description``) and its dimension scales
(``CLASS``/``DIMENSION_LIST`` in the spec). What a mode leaves out is left out: frequencyB
without a second band (``SHNA``, mode ``xx00``), covariance terms and per-polarization groups
of polarizations the granule does not have, off-diagonal (complex) terms unless quad-pol.
Where the specification is silent (encoding, sizes), the facts of ``shared/gcov-product.md``
hold, and the rest is a parameter:

- 4 MiB paged file space written by h5py's default libver (so a version-1 B-tree chunk index);
- grid layers in 512x512 shuffle+deflate 1 chunks with partial edge chunks, every chunk
  written; the mask deflate 9 without shuffle; radarGrid cubes in 1x512x512 chunks; geocoded
  calibration and processing LUTs (each group with its own ``projection`` and
  ``x|yCoordinates``) as one deflate 9 chunk; coordinates, scalars and strings contiguous;
- complex data as the committed ``/complex64`` compound {r, i} with a (NaN, NaN) ``_FillValue``
  (trap 1), even on dual-pol calibration LUTs;
- orbit and attitude without dimension scales (trap 2: ``quaternions [N,4]`` beside
  ``eulerAngles [N,3]``), as the specification has them;
- one small chunk of ``numberOfLooks`` and ``mask`` stored with its deflate filter skipped
  (per-chunk filter mask, trap 5), with real payloads;
- ``parent_scales=True`` adds trap 3 (older products: LUTs using their parent group's scales).

Spec errors and choices (checked by ``tests/test_generator.py``): ``radarGrid/yCoordinates`` is
``radarCubeWidth`` in the XMLs; it is written with the cubes' length (``radarCubeLength``), as a
scale of their y axis must be. ``processingInformation/parameters/x|yCoordinates`` of 1.4.0 are
not scales, as its spec says (1.6.0 makes them scales).

Options beyond the name: ``exception_mask`` ("auto": ``grids/frequency*/inputDataExceptionMask``
and ``identification/hasInputDataException`` when the spec has them; None: absent; "same": on
the group's grid; "finer": on a grid twice as fine as the group's scales, which are attached
anyway, as reported of provisional products), ``partial`` (where a ``coverage="P"`` granule's
grid lies in its frame: by default the same size shifted 40 % along track, so its grid differs
from the full frame's; ``shape`` given alone stays the granule's grid), ``mode`` (postings and
``full_size(mode)``: 2005 16704 x 17064, 4005 34776 x 35280), ``product_type`` (a GSLC- or
GUNW-looking file for bad-input tests), ``spec_version`` newer than any derived (the newest
tree, that version recorded), and ``extra`` (path -> value written last, None deletes).

``payload="real"`` writes real values through HDF5's filters (tests: small grids). ``"thin"``
writes every chunk of a layer with one pre-encoded payload via ``write_direct_chunk``: the chunk
layout (count, offsets, index, metadata pages) is real and full size, the bytes are few, and a
full-size granule is written in seconds. ``"sized"`` is ``"thin"`` with real-size payloads:
each chunk of a layer is one of a few pre-encoded blocks of speckle-like values (float layers
keep 12 mantissa bits, as the product's compress), ~0.4-0.6 MB a 512 x 512 float chunk after
shuffle + deflate, so a full-size granule is ~2-3 GB and its metadata pages lie between real
amounts of data (benchmarks: thin payloads flatter every ratio).
"""

from __future__ import annotations

import functools
import math
import shutil
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np

from gcov_index.granule import Granule
from gcov_index.product import POLARIZATIONS, maturity_of, version_tuple
from tests.support.specs.derive import load

PAGE = 4 * 1024 * 1024
CHUNK = 512
COMPLEX = np.dtype([("r", "<f4"), ("i", "<f4")])
NAN_COMPLEX = np.array((np.nan, np.nan), dtype=COMPLEX)
HEIGHTS = np.arange(-1000.0, 9001.0, 500.0)  # 21 heights, as the real radarGrid cubes

SPECS = Path(__file__).parent / "specs"
SPEC_VERSIONS = ("1.4.0", "1.6.0")  # derived tables in specs/
NEWEST_SPEC = max(SPEC_VERSIONS, key=version_tuple)

# frequency posting (m) by range bandwidth (MHz) of the mode: 20 MHz -> 20 m and 40 MHz -> 10 m
# follow from the real sizes (17640 x 17820 and 34776 x 35280 over one frame), 5 MHz -> 80 m
# from frequencyB being 1/4 of A in mode 2005; 77 MHz -> 5 m is unverified
SPACING = {"05": 80.0, "20": 20.0, "40": 10.0, "77": 5.0}
FULL_SIZE = {"2005": (16704, 17064), "4005": (34776, 35280)}  # the seed granule; a real 4005

# the spec's shape a written dataset differs from on purpose (see the docstring)
SHAPE_FIXES = {"GCOV/metadata/radarGrid/yCoordinates": "radarCubeLength"}
POLS = ("HH", "HV", "VH", "VV", "RH", "RV", "LH", "LV")


def _term_scale(term: str) -> float:
    """Backscatter level of a covariance term relative to HHHH: cross-pol ~7 dB below
    co-pol, VV a little below HH, off-diagonal terms in between."""
    a, b = term[:2], term[2:]
    if a != b:
        return 0.3
    return {"HH": 1.0, "VV": 0.8, "RH": 0.9, "RV": 0.7}.get(a, 0.2)


def covariance_terms(code: str) -> list[str]:
    """Covariance terms written for a polarization code: diagonal for dual, full for quad."""
    pols = list(POLARIZATIONS.get(code, ()))
    if code in ("QP", "QD"):
        pols = ["HH", "HV", "VV"]  # GCOV symmetrises HV/VH
        return [a + b for i, a in enumerate(pols) for b in pols[i:]]
    return [p + p for p in pols]


def tree_version(version: str) -> str:
    """The derived table a granule of ``version`` follows: its own, or the newest for a
    version newer than any derived."""
    if version in SPEC_VERSIONS:
        return version
    if version_tuple(version) > version_tuple(NEWEST_SPEC):
        return NEWEST_SPEC
    raise ValueError(f"no derived table for specification {version} (derived: "
                     f"{', '.join(SPEC_VERSIONS)}); add one with specs/derive.py")


@functools.cache
def spec_table(version: str) -> dict:
    """The derived table of ``version`` (see :func:`tree_version`): shapes, datasets, ..."""
    return load(SPECS / f"gcov_{tree_version(version)}.json")


def mode_shape(mode: str) -> tuple[int, int]:
    """The full-frame frequencyA grid of a mode: 2005 the seed granule's 16704 x 17064, 4005
    a real 34776 x 35280, others scaled by their posting from 2005's frame."""
    if mode in FULL_SIZE:
        return FULL_SIZE[mode]
    spacing = SPACING.get(mode[:2], 20.0)
    if spacing == 10.0:
        return FULL_SIZE["4005"]
    ny, nx = FULL_SIZE["2005"]
    return (round(ny * 20.0 / spacing), round(nx * 20.0 / spacing))


@dataclass(frozen=True)
class GranuleSpec:
    """What to generate. Defaults give a small dual-pol DHDH frame in UTM zone 11N that
    follows the newest derived specification."""

    cycle: int = 5
    track: int = 172
    direction: str = "A"
    frame: int = 8
    mode: str = "2005"
    polarizations: str = "DHDH"
    start: datetime = datetime(2025, 11, 22, 2, 46, 18, 123456, tzinfo=UTC)
    duration_s: int = 34
    processing_type: str = "PR"
    crid: str = "X05009"
    counter: int = 1
    coverage: str = "F"
    shape: tuple[int, int] = (700, 600)  # the full frame's frequencyA grid (ny, nx)
    epsg: int = 32611
    origin: tuple[float, float] = (399960.0, 4100040.0)  # the frame's upper-left corner (x, y)
    orbit_samples: int = 60  # varies per granule in the real product
    payload: str = "real"  # "real", "thin" or "sized" (thin layout, real-size chunk payloads)
    seed: int = 0
    extra: dict = field(default_factory=dict)  # path -> value written last (None: deleted)
    spec_version: str = NEWEST_SPEC
    product_type: str = "GCOV"  # "GSLC", "GUNW": another product's look, for bad input
    exception_mask: str | None = "auto"  # "auto", None, "same" or "finer" (see the module)
    partial: tuple[int, int, int, int] | None = None  # "P": (row, col, rows, cols), see window
    spacing: float | None = None  # frequencyA posting (m); None: from the mode's bandwidth
    radar_spacing: float = 500.0  # radarGrid cubes' posting: ~700 x 725 at full size
    calibration_spacing: float = 1000.0  # geocoded LUTs' posting: ~354 x 357 at full size
    source_doppler_shape: tuple[int, int] = (21, 31)  # sourceData Doppler LUT (time, range)
    attitude_samples: int = 94
    parent_scales: bool = False  # trap 3: NESZ LUTs use their parent group's scales

    @property
    def granule(self) -> Granule:
        end = self.start + timedelta(seconds=self.duration_s)
        return Granule(
            processing_type=self.processing_type, cycle=self.cycle, track=self.track,
            direction=self.direction, frame=self.frame, mode=self.mode,
            polarizations=self.polarizations,
            start=self.start.replace(microsecond=0), end=end.replace(microsecond=0),
            crid=self.crid, accuracy="N", coverage=self.coverage, location="J",
            counter=self.counter,
        )

    @property
    def filename(self) -> str:
        """The file's name: the granule's, with the product type of a non-GCOV look."""
        name = self.granule.filename
        return name if self.product_type == "GCOV" else name.replace("_GCOV_", f"_{self.product_type}_")

    def repeat(self, cycles: int, **changes) -> GranuleSpec:
        """The same frame ``cycles`` 12-day repeats later (a new acquisition)."""
        return replace(
            self, cycle=self.cycle + cycles,
            start=self.start + timedelta(days=12 * cycles, seconds=cycles % 3),
            orbit_samples=self.orbit_samples + cycles % 4, seed=self.seed + cycles, **changes,
        )

    # -- what the spec and the mode make of it -------------------------------------------
    @property
    def frequencies(self) -> tuple[str, ...]:
        return self.granule.frequencies

    def code(self, freq: str) -> str:
        return self.polarizations[:2] if freq == "A" else self.polarizations[2:]

    def pols(self, freq: str) -> tuple[str, ...]:
        return tuple(POLARIZATIONS.get(self.code(freq), ()))

    def terms(self, freq: str) -> list[str]:
        return covariance_terms(self.code(freq))

    def posting(self, freq: str) -> float:
        if freq == "A":
            return self.spacing or SPACING.get(self.mode[:2], 20.0)
        return SPACING.get(self.mode[2:], 80.0)

    @property
    def window(self) -> tuple[int, int, int, int]:
        """(row, col, rows, cols) of the granule's frequencyA grid within the frame's (``shape``
        at ``origin``): all of it for "F"; for "P" ``partial``, by default a grid of the same
        size shifted along track by 40 % of its rows (another extent: the frame's last 60 %
        and beyond; pass ``partial`` for a smaller part of the frame)."""
        ny, nx = self.shape
        if self.coverage != "P":
            return (0, 0, ny, nx)
        if self.partial is not None:
            return self.partial
        return (ny * 2 // 5, 0, ny, nx)

    def grid_shape(self, freq: str = "A") -> tuple[int, int]:
        _, _, rows, cols = self.window
        if freq == "A":
            return (rows, cols)
        ratio = self.posting("A") / self.posting(freq)
        return (max(1, int(rows * ratio)), max(1, int(cols * ratio)))

    @property
    def grid_origin(self) -> tuple[float, float]:
        """Upper-left corner of the granule's grids (the frame's, shifted for a partial one)."""
        row, col, _, _ = self.window
        x0, y0 = self.origin
        d = self.posting("A")
        return (x0 + col * d, y0 - row * d)

    @property
    def extent(self) -> tuple[float, float]:
        """(height, width) in metres of the granule's grid."""
        ny, nx = self.grid_shape("A")
        d = self.posting("A")
        return (ny * d, nx * d)

    def lut_shape(self, spacing: float, margin: int = 2) -> tuple[int, int]:
        h, w = self.extent
        return (math.ceil(h / spacing) + margin, math.ceil(w / spacing) + margin)

    @property
    def mask_kind(self) -> str | None:
        """The inputDataExceptionMask written: None, "same" or "finer"."""
        if self.exception_mask != "auto":
            return self.exception_mask
        has = "science/LSAR/GCOV/grids/frequencyA/inputDataExceptionMask" in spec_table(
            self.spec_version)["datasets"]
        return "same" if has else None

    def sizes(self) -> dict[str, int]:
        """Every named dimension of the specification, resolved for this granule."""
        cube = self.lut_shape(self.radar_spacing, margin=1)
        cal = self.lut_shape(self.calibration_spacing)
        out = {
            "numberOfObservations": 1, "numberOfFrequencies": len(self.frequencies),
            "radarCubeHeight": len(HEIGHTS), "radarCubeLength": cube[0], "radarCubeWidth": cube[1],
            "dopplerCentroidLength": cal[0], "dopplerCentroidWidth": cal[1],
            "calibrationLength": cal[0], "calibrationWidth": cal[1],
            "sourceDataDopplerCentroidTimeLength": self.source_doppler_shape[0],
            "sourceDataDopplerCentroidSlantRangeWidth": self.source_doppler_shape[1],
            "orbitListLength": self.orbit_samples, "attitudeListLength": self.attitude_samples,
            "numberOfInputL1Files": 1, "numberOfInputOrbitFiles": 1, "numberOfInputTecFiles": 1,
            "numberOfInputConfigFiles": 1,
        }
        for f in ("A", "B"):
            ny, nx = self.grid_shape(f)
            out |= {f"numberOfFrequency{f}Polarizations": len(self.pols(f)),
                    f"numberOfSourceDataFrequency{f}Polarizations": len(self.pols(f)),
                    f"numberOfFrequency{f}CovarianceTerms": len(self.terms(f)),
                    f"frequency{f}Length": ny, f"frequency{f}Width": nx}
        return out

    def spec_shape(self, path: str, sizes: dict | None = None) -> tuple[int, ...]:
        """The shape the specification gives ``path`` (relative to ``science/LSAR``, or full)
        for this granule, with :data:`SHAPE_FIXES` applied; a complex axis is the dtype's."""
        rel = path.removeprefix("science/LSAR/")
        table = spec_table(self.spec_version)
        named = SHAPE_FIXES.get(rel) or self.spec_datasets()[f"science/LSAR/{rel}"]["shape"]
        sizes = sizes or self.sizes()
        return tuple(d if isinstance(d, int) else sizes[d] for d in table["shapes"][named]
                     if d != "complex")

    def omitted(self, path: str) -> bool:
        """True for a dataset of the spec that this granule's mode leaves out."""
        parts = path.removeprefix("science/LSAR/").split("/")
        name = parts[-1]
        freq = next((p[-1] for p in parts if p in ("frequencyA", "frequencyB")), None)
        if freq and freq not in self.frequencies:
            return True
        if name in ("inputDataExceptionMask", "hasInputDataException"):
            return self.mask_kind is None
        if freq is None:
            return False
        if "grids" in parts and len(name) == 4 and name[:2] in POLS and name[2:] in POLS:
            return name not in self.terms(freq)
        return any(p in POLS and p not in self.pols(freq) for p in parts[parts.index(f"frequency{freq}") + 1:])

    def spec_datasets(self) -> dict[str, dict]:
        """The specification's datasets (path -> facts), with the exception mask of the
        newest specification added when asked for on a version that lacks it."""
        table = spec_table(self.spec_version)["datasets"]
        if self.mask_kind is None or any(p.endswith("inputDataExceptionMask") for p in table):
            return table
        newest = spec_table(NEWEST_SPEC)["datasets"]
        return table | {p: d for p, d in newest.items()
                        if p.endswith(("inputDataExceptionMask", "hasInputDataException"))}

    def expected_datasets(self) -> list[str]:
        """Paths (no leading slash, in the product type's tree) of every dataset the
        specification has and this granule's mode keeps."""
        root = f"science/LSAR/{self.product_type}/"
        return [p.replace("science/LSAR/GCOV/", root)
                for p in self.spec_datasets() if not self.omitted(p)]


def full_size(mode: str = "2005", **changes) -> GranuleSpec:
    """A full frame of ``mode`` (2005: the seed granule's 16704 x 17064; 4005: 34776 x 35280),
    thin payloads."""
    return replace(GranuleSpec(mode=mode, shape=mode_shape(mode), payload="thin"), **changes)


# ----------------------------------------------------------------------------------------
# small helpers


def _s(text: str) -> np.bytes_:
    """A fixed-length byte string, as the real product stores string datasets."""
    return np.bytes_(text.encode())


def _str_list(items: list[str]) -> np.ndarray:
    width = max((len(i) for i in items), default=1) or 1
    return np.array([i.encode() for i in items], dtype=f"S{width}")


def product_time(t: datetime) -> str:
    """The product's form of a time (identification/zeroDopplerStartTime): nanoseconds."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000"  # 29 characters, nanoseconds


def _shuffle_deflate(data: np.ndarray, level: int = 1) -> bytes:
    """Encode one chunk as HDF5's shuffle then deflate filters do."""
    raw = np.ascontiguousarray(data)
    size = raw.dtype.itemsize
    shuffled = raw.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else raw.tobytes()
    return zlib.compress(shuffled, level)


SIZED_VARIANTS = 4  # distinct real-size payloads per layer ("sized")


@functools.cache
def _sized_blocks(chunks: tuple[int, ...], dtype: str, seed: int) -> list[np.ndarray]:
    """Chunk values that compress like the product's: speckle (gamma-distributed backscatter)
    with the low 11 mantissa bits zeroed for floats, noise over a few classes for integers."""
    rng = np.random.default_rng([seed, *chunks, len(dtype)])
    out = []
    for _ in range(SIZED_VARIANTS):
        if dtype == "complex":
            v = np.empty(chunks, dtype=COMPLEX)
            v["r"] = _truncated(rng.normal(0, 0.05, chunks))
            v["i"] = _truncated(rng.normal(0, 0.05, chunks))
        elif np.dtype(dtype).kind == "f":
            v = _truncated(rng.gamma(4.0, 0.05 / 4.0, chunks)).astype(dtype)
        else:
            info = np.iinfo(np.dtype(dtype))
            v = rng.integers(0, min(info.max, 7), chunks, endpoint=True).astype(dtype)
        out.append(v)
    return out


def _truncated(values: np.ndarray) -> np.ndarray:
    bits = values.astype(np.float32).view(np.uint32) & np.uint32(0xFFFFF800)
    return bits.view(np.float32)


@functools.cache
def _to_lonlat(epsg: int):
    from pyproj import Transformer

    return Transformer.from_crs(epsg, 4326, always_xy=True)


@functools.cache
def _projection_attrs(epsg: int) -> dict:
    """The ``projection`` dataset's attributes for an EPSG code (UTM or polar stereographic)."""
    if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
        zone, south = epsg % 100, epsg > 32700
        wkt = (
            f'PROJCS["WGS 84 / UTM zone {zone}{"S" if south else "N"}",GEOGCS["WGS 84",'
            'DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
            'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
            'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,'
            'AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]],'
            'PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],'
            f'PARAMETER["central_meridian",{6 * zone - 183}],PARAMETER["scale_factor",0.9996],'
            f'PARAMETER["false_easting",500000],PARAMETER["false_northing",{10000000 if south else 0}],'
            'UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["Easting",EAST],'
            f'AXIS["Northing",NORTH],AUTHORITY["EPSG","{epsg}"]]'
        )
        params = {
            "grid_mapping_name": "universal_transverse_mercator",
            "utm_zone_number": np.int64(zone),
            "false_easting": 500000.0, "false_northing": 10000000.0 if south else 0.0,
            "latitude_of_projection_origin": 0.0,
            "longitude_of_projection_origin": float(6 * zone - 183),
            "longitude_of_central_meridian": float(6 * zone - 183),
            "scale_factor_at_central_meridian": 0.9996,
        }
    else:
        from pyproj import CRS

        crs = CRS.from_epsg(epsg)
        wkt = crs.to_wkt("WKT1_GDAL")
        params = {"grid_mapping_name": "polar_stereographic"}
        params |= {k: v for k, v in crs.to_cf().items() if isinstance(v, float)}
    return {
        "epsg_code": np.int64(epsg),
        "spatial_ref": np.bytes_(wkt.encode()),  # fixed-length bytes, as real
        "ellipsoid": "WGS84", "semi_major_axis": 6378137.0,
        "inverse_flattening": 298.257223563, **params,
    }


def _stats(values, complex_: bool) -> dict:
    """The statistics attributes the product computes over a layer (float64)."""
    v = np.asarray(values)
    if v.dtype.names:
        v = v["r"] + 1j * v["i"].astype(np.float64)
    parts = {"": v} if not complex_ else {"_real": v.real, "_imag": v.imag}
    out = {}
    for suffix, x in parts.items():
        x = x.astype(np.float64)
        x = x[~np.isnan(x)] if x.size else x
        stats = (x.min(), x.mean(), x.max(), x.std(ddof=1) if x.size > 1 else 0.0) if x.size \
            else (np.nan,) * 4
        if suffix:
            part = suffix[1:]
            names = (f"min_{part}_value", f"mean_{part}_value", f"max_{part}_value",
                     f"sample_stddev_{part}")
        else:
            names = ("min_value", "mean_value", "max_value", "sample_stddev")
        out |= {n: np.float64(s) for n, s in zip(names, stats, strict=True)}
    if complex_:  # plain statistics of a complex LUT (spec 1.4.0's crosstalk): of the real part
        out |= {n: out[n.replace("_value", "_real_value") if "value" in n else n + "_real"]
                for n in ("min_value", "mean_value", "max_value", "sample_stddev")}
    return out


# ----------------------------------------------------------------------------------------
# the tree


class _Writer:
    def __init__(self, f: h5py.File, spec: GranuleSpec):
        self.f = f
        self.spec = spec
        self.table = spec_table(spec.spec_version)
        self.rng = np.random.default_rng(spec.seed)
        self.g = spec.granule
        self.root = f"science/LSAR/{spec.product_type}"
        self.complex_type = None
        self.sizes = spec.sizes()
        self.to_attach: list[tuple[h5py.Dataset, str]] = []
        self.groups: dict[str, h5py.Group] = {}

    # -- generic ---------------------------------------------------------------------------
    def path(self, spec_path: str) -> str:
        return spec_path.replace("science/LSAR/GCOV/", self.root + "/")

    def dtype(self, d: dict):
        kind, width = d["kind"], d.get("width", 64)
        if kind == "complex":
            return self.complex_type if width == 32 else np.dtype([("r", "<f8"), ("i", "<f8")])
        if kind == "real":
            return np.dtype(f"<f{width // 8}")
        if kind == "integer":
            return np.dtype(f"{'<i' if d.get('signed') else '<u'}{width // 8}")
        return None  # strings: from the value

    def write(self) -> None:
        f, s = self.f, self.spec
        for k, v in self.table["root_attrs"].items():
            if k == "title":
                v = v.replace("GCOV", s.product_type)
            f.attrs[k] = np.bytes_(v.encode())
        f["complex64"] = COMPLEX  # the committed (named) datatype at root
        self.complex_type = f["complex64"]
        for spec_path, d in s.spec_datasets().items():
            if s.omitted(spec_path):
                continue
            self.dataset(spec_path, d)
        for ds, rel in self.to_attach:
            self.attach(ds, rel)
        if s.parent_scales:
            self.trap_parent_scales()
        if s.payload == "real":
            grid = f[f"{self.root}/grids/frequencyA"]
            self._skip_filters(grid["numberOfLooks"], np.float32(1.0))
            self._skip_filters(grid["mask"], np.uint8(1))
        for path, value in s.extra.items():
            if path in f:
                del f[path]
            if value is not None:
                f[path] = value

    def dataset(self, spec_path: str, d: dict) -> None:
        rel = spec_path.removeprefix("science/LSAR/")
        parts = rel.split("/")
        name = parts[-1]
        gpath = self.path(spec_path).rsplit("/", 1)[0]
        group = self.groups.get(gpath)
        if group is None:
            group = self.groups[gpath] = self.f.require_group(gpath)
        shape = self.spec.spec_shape(spec_path, self.sizes)
        if "/grids/frequency" in spec_path and len(shape) == 2:
            ds = self.grid_layer(group, name, parts[-2][-1], d, shape)
        elif "/radarGrid/" in spec_path and len(shape) >= 2:
            ds = self.cube(group, name, d, shape)
        else:
            value = self.value(rel, name, d, shape)
            dtype = self.dtype(d)
            if dtype is not None and not isinstance(value, np.ndarray | np.generic):
                value = np.asarray(value, dtype=dtype)
            if len(shape) == 2 and not rel.startswith(("GCOV/metadata/orbit", "GCOV/metadata/attitude")):
                # geocoded LUTs: one chunk, deflate 9
                ds = group.create_dataset(name, data=value, dtype=dtype, chunks=shape,
                                          compression="gzip", compression_opts=9)
            else:
                ds = group.create_dataset(name, data=value, dtype=dtype)
            self.attrs(ds, d, rel, value if d["kind"] in ("real", "complex") else None)
        if d.get("scale"):
            ds.make_scale(name)
        if d.get("dims"):
            self.to_attach.append((ds, rel))

    def attach(self, ds: h5py.Dataset, rel: str) -> None:
        """The group's own scales, by axis from the last: x, y, height (the spec's rule)."""
        group = ds.parent
        names = ["xCoordinates", "yCoordinates", "heightAboveEllipsoid"]
        for k, axis in enumerate(reversed(range(ds.ndim))):
            if k < len(names) and (scale := group.get(names[k])) is not None:
                ds.dims[axis].attach_scale(scale)

    def attrs(self, ds: h5py.Dataset, d: dict, rel: str, values=None) -> None:
        s = self.spec
        for k, v in d.get("attrs", {}).items():
            if k == "_FillValue":
                ds.attrs[k] = self.fill(ds, v)
            elif k in ("valid_min", "valid_max"):
                kind = ds.dtype.kind
                ds.attrs[k] = np.array(v, dtype=ds.dtype if kind in "fiu" else np.float64)
            elif k == "units" and "YYYY" in v:
                ds.attrs[k] = np.bytes_(f"seconds since {s.start:%Y-%m-%dT00:00:00}".encode())
            elif k == "epsg":
                ds.attrs[k] = np.int64(v)
            else:
                ds.attrs[k] = v  # variable-length strings (trap 4)
        stats = None
        for k in d.get("names", ()):
            if "value" in k or "stddev" in k:
                if stats is None:
                    stats = _stats(values, ds.dtype.kind == "c") if values is not None else {}
                ds.attrs[k] = stats.get(k, np.float64(np.nan))
            else:
                ds.attrs[k] = self.computed(k, ds, rel, values)
        if d.get("description"):
            ds.attrs["description"] = d["description"]

    def fill(self, ds: h5py.Dataset, text: str):
        if "j" in text:
            return NAN_COMPLEX
        if ds.dtype.kind == "f":
            return np.array(np.nan, dtype=ds.dtype)
        return np.array(int(text), dtype=ds.dtype)

    def computed(self, name: str, ds: h5py.Dataset, rel: str, values):
        s = self.spec
        if name in _projection_attrs(s.epsg):
            return _projection_attrs(s.epsg)[name]
        if name in ("utm_zone_number", "longitude_of_central_meridian",
                    "scale_factor_at_central_meridian", "longitude_of_projection_origin"):
            return np.float64(np.nan)  # a polar stereographic projection has none
        if "value" in name or "stddev" in name:
            if values is None:
                return np.float64(np.nan)
            return _stats(values, ds.dtype.kind == "c")[name]
        if name.startswith("isReceiveOnlyChannel"):
            return "False"
        if name.startswith(("rslc_valid_pixel_fraction_", "raw_valid_pulse_fraction_")):
            freq = next(p for p in rel.split("/") if p.startswith("frequency"))[-1]
            return np.float64(0.98 if name[-2:].upper() in s.pols(freq) else np.nan)
        if name == "epsg":
            return np.int64(s.epsg)
        if name == "frameCoveragePercentage":  # the part of the frame the grid overlaps
            row, col, rows, cols = s.window
            inside = (max(0, min(row + rows, s.shape[0]) - max(row, 0))
                      * max(0, min(col + cols, s.shape[1]) - max(col, 0)))
            return np.float64(100.0 * inside / (s.shape[0] * s.shape[1]))
        if name == "thresholdPercentage":
            return np.float64(75.0)
        raise KeyError(f"no value for attribute {name!r} of {rel}")

    # -- values of the small datasets -------------------------------------------------------
    def value(self, rel: str, name: str, d: dict, shape: tuple[int, ...]):
        s = self.spec
        parts = rel.split("/")
        group = "/".join(parts[:-1])
        freq = next((p[-1] for p in parts if p in ("frequencyA", "frequencyB")), "A")
        if name == "projection":
            return np.uint32(s.epsg)
        if name in ("xCoordinates", "yCoordinates"):
            return self.coordinates(group, name, shape[0])
        if name == "heightAboveEllipsoid":
            return HEIGHTS[: shape[0]]
        if group == "identification" or rel == "GCOV/identification/staticLayersDataAccess":
            return self.identification(name, d, shape)
        if d["kind"] == "string":
            text = self.text(rel, name, freq)
            return _str_list(text) if shape else _s(text)
        if d["kind"] == "complex":
            return self.complex_lut(shape, rel)
        if group.endswith(("orbit", "attitude")) or "sourceData/processingInformation/parameters" in group:
            return self.track_values(group, name, shape)
        if len(shape) == 2:  # geocoded LUTs
            yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
            base = {"noiseEquivalentBackscatter": -28.0, "referenceTerrainHeight": 350.0,
                    "dopplerCentroid": 12.0, "azimuthIonosphere": 1e-4,
                    "slantRangeIonosphere": 0.5}
            key = next((k for k in base if k in rel), "")
            v = base.get(key, 1.0) + 0.01 * xx - 0.02 * yy + 0.001 * s.seed
            v[-1, -2:] = np.nan  # the LUT's corner is no-data
            return v
        scalars = {
            "commonDelay": 0.0, "faradayRotation": 0.0, "rfiLikelihood": 0.01,
            "differentialDelay": 0.0, "differentialPhase": 0.0,
            "scaleFactor": 1.0 + 0.01 * s.seed, "scaleFactorSlope": 0.0,
            "numberOfRangeLooks": 4, "numberOfAzimuthLooks": 2 if freq == "A" else 8,
            "minRtcAreaNormalizationFactorInDB": -30.0, "geogridUpsampling": 1.0,
            "minBlockSize": 4_000_000, "maxBlockSize": 256_000_000,
            "convergenceThreshold": 1e-8, "maxNumberOfIterations": 50, "deltaRange": 1e-8,
            "zeroDopplerTimeSpacing": 0.00065, "numberOfAzimuthLines": 52000,
            "numberOfRangeSamples": 12000 if freq == "A" else 3000,
            "sceneCenterAlongTrackResolution": 7.0, "rangeResolution": 7.5,
            "sceneCenterAlongTrackSpacing": 4.3, "sceneCenterGroundRangeSpacing": 10.5,
            "acquiredRangeBandwidth": float(int(s.mode[:2] if freq == "A" else s.mode[2:]) * 1e6),
            "processedRangeBandwidth": float(int(s.mode[:2] if freq == "A" else s.mode[2:]) * 1e6),
            "processedAzimuthBandwidth": 1100.0, "centerFrequency": 1.2575e9,
            "slantRangeStart": 850000.0, "slantRangeSpacing": 6.9 if freq == "A" else 27.6,
            "nearRangeIncidenceAngle": 33.0, "farRangeIncidenceAngle": 47.0,
            "numberOfSubSwaths": 2, "xCoordinateSpacing": s.posting(freq),
            "yCoordinateSpacing": -s.posting(freq), "x": 0.0, "y": 0.0,
        }
        if name in scalars:
            return scalars[name]
        raise KeyError(f"no value for {rel}")

    def coordinates(self, group: str, name: str, n: int) -> np.ndarray:
        """Pixel centres from the granule's upper-left corner, y decreasing."""
        s = self.spec
        if group.endswith("radarGrid"):
            d = s.radar_spacing
        elif "/grids/" in group:
            d = s.posting(group[-1])
        else:
            d = s.calibration_spacing
        x0, y0 = s.grid_origin
        if name == "xCoordinates":
            return x0 + d / 2 + d * np.arange(n)
        return y0 - d / 2 - d * np.arange(n)

    def identification(self, name: str, d: dict, shape):
        s, g = self.spec, self.g
        start = s.start
        end = start + timedelta(seconds=s.duration_s, microseconds=500000)
        if name in ("absoluteOrbitNumber", "trackNumber", "frameNumber", "diagnosticModeFlag",
                    "hasInputDataException"):
            return {"absoluteOrbitNumber": 1000 + 173 * s.cycle + s.track,
                    "trackNumber": s.track, "frameNumber": s.frame, "diagnosticModeFlag": 0,
                    "hasInputDataException": 2}[name]
        x0, y0 = s.grid_origin
        h, w = s.extent
        corners = [(x0, y0 - h), (x0 + w, y0 - h), (x0 + w, y0), (x0, y0), (x0, y0 - h)]
        ll = [_to_lonlat(s.epsg).transform(x, y) for x, y in corners]
        collection = f"NISAR_L2_{s.product_type}_{maturity_of(s.crid)}_V1"
        text = {
            "missionId": "NISAR", "processingCenter": "JPL", "productType": s.product_type,
            "granuleId": g.stem if s.product_type == "GCOV" else Path(s.filename).stem,
            "productDoi": f"10.5067/{collection}",
            "productVersion": f"{int(s.crid[1:3])}.{int(s.crid[3])}.{int(s.crid[4:])}",
            "productSpecificationVersion": s.spec_version,
            "lookDirection": "Left",
            "orbitPassDirection": "Ascending" if s.direction == "A" else "Descending",
            "zeroDopplerStartTime": product_time(start),
            "zeroDopplerEndTime": product_time(end),
            "isUrgentObservation": "True" if s.processing_type == "UR" else "False",
            "productLevel": "L2", "isGeocoded": "True",
            "boundingPolygon": "POLYGON ((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in ll) + "))",
            "processingDateTime": (start + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S"),
            "radarBand": "L", "platformName": "NISAR", "instrumentName": "L-SAR",
            "processingType": "Nominal" if s.processing_type == "PR" else "Urgent",
            "isDithered": "False", "isMixedMode": "False",
            "isFullFrame": "True" if s.coverage == "F" else "False",
            "compositeReleaseId": s.crid, "isJointObservation": "False",
            "staticLayersDataAccess": f"https://doi.org/10.5067/NISAR/L2_STATIC_{s.track:03d}_{s.frame:03d}",
        }
        lists = {
            "plannedDatatakeId": [f"{s.cycle:03d}{s.track:03d}{s.frame:03d}0001"],
            "plannedObservationId": [f"{s.cycle:03d}{s.track:03d}{s.frame:03d}0001001"],
            "listOfObservationModes": [f"{s.polarizations[:2]}{s.mode[:2]}"],
            "listOfFrequencies": list(g.frequencies),
        }
        if name in lists:
            return _str_list(lists[name][: shape[0]])
        return _s(text[name])

    def text(self, rel: str, name: str, freq: str) -> list[str] | str:
        s, g = self.spec, self.g
        if name == "listOfPolarizations":
            return list(s.pols(freq))
        if name == "listOfCovarianceTerms":
            return s.terms(freq)
        if name.endswith("Applied") or name.startswith("is"):
            full = s.code("A") in ("QP", "QD")
            return {"isFullCovariance": str(full),
                    "polarimetricSymmetrizationApplied": str(full),
                    "isSourceDataUpsampled": "False"}.get(name, "True")
        rslc = g.stem.replace("L2", "L1").replace("_GCOV_", "_RSLC_")
        values = {
            "l1SlcGranules": [rslc + ".h5"],
            "orbitFiles": [f"NISAR_ANC_L_PR_FOE_{s.start:%Y%m%dT%H%M%S}.xml"],
            "tecFiles": [f"NISAR_ANC_L_PR_TEC_{s.start:%Y%m%d}.json"],
            "configFiles": ["gcov_runconfig.yaml"],
            "demSource": "Copernicus GLO-30", "softwareVersion": "0.25.4",
            "demInterpolation": "biquintic", "geocoding": "area_projection",
            "radiometricTerrainCorrection": "bilinear_distribution",
            "polarimetricSymmetrization": "average of HV and VH",
            "radiometricTerrainCorrectionAlgorithmReference": "Gustavo H. X. Shiroma et al., 2022",
            "geocodingAlgorithmReference": "Gustavo H. X. Shiroma et al., 2022",
            "inputBackscatterNormalizationConvention": "beta0",
            "outputBackscatterNormalizationConvention": "gamma0",
            "outputBackscatterExpressionConvention": "backscatter coefficient",
            "memoryMode": "auto", "runConfigurationContents": "runconfig:\n  name: gcov\n",
            "orbitType": "FOE", "interpMethod": "Hermite", "attitudeType": "FRP",
            "boundingBox": "POLYGON ((...))",
            "outputBackscatterDecibelConversionFormula": "backscatter_dB = 10*log10(backscatter_linear)",
            "ceosAnalysisReadyDataProductType": "Normalised Radar Backscatter",
            "ceosAnalysisReadyDataDocumentIdentifier": "https://ceos.org/ard/files/PFS/NRB/v5.5/CARD4L-PFS_NRB_v5.5.pdf",
            "productDoi": "10.5067/NISAR/L1_RSLC", "productVersion": "0.1.0",
            "lookDirection": "Left", "productLevel": "L1", "productGeometry": "Slant range",
            "processingDateTime": (s.start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            "processingCenter": "JPL", "productType": "RSLC", "granuleId": rslc,
            "zeroDopplerStartTime": product_time(s.start - timedelta(seconds=2)),
            "zeroDopplerEndTime": product_time(s.start + timedelta(seconds=s.duration_s + 2)),
        }
        if name == "boundingBox":
            x0, y0 = s.grid_origin
            h, w = s.extent
            return (f"POLYGON (({x0} {y0 - h}, {x0 + w} {y0 - h}, {x0 + w} {y0}, {x0} {y0}, "
                    f"{x0} {y0 - h}))")
        if name in values:
            return values[name]
        if rel.startswith("GCOV/metadata/sourceData/processingInformation/algorithms"):
            return "nominal"
        raise KeyError(f"no value for {rel}")

    def complex_lut(self, shape, rel: str) -> np.ndarray:
        k = sum(map(ord, rel)) % 7
        v = np.empty(shape, dtype=COMPLEX)
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
        v["r"] = 0.001 * (k + 1) + 1e-5 * xx
        v["i"] = -0.0005 * (k + 1) + 1e-6 * yy
        v[-1, -3:] = NAN_COMPLEX  # the tail is no-data: the complex fill
        return v

    def track_values(self, group: str, name: str, shape) -> np.ndarray:
        s = self.spec
        n = shape[0] if shape else 1
        if group.endswith("orbit"):
            return {"time": np.arange(n, dtype=np.float64) * 10.0 + 9700.0,
                    "position": 7.0e6 + np.arange(n * 3).reshape(n, 3) * 1.5,
                    "velocity": 7.5e3 - np.arange(n * 3).reshape(n, 3) * 0.01}[name]
        if group.endswith("attitude"):
            return {"time": np.arange(n, dtype=np.float64) + 9700.0,
                    "quaternions": np.linspace(-1, 1, n * 4).reshape(n, 4),
                    "eulerAngles": np.linspace(-0.1, 0.1, n * 3).reshape(n, 3)}[name]
        nt, nr = s.source_doppler_shape
        return {"zeroDopplerTime": np.linspace(9780.0, 9780.0 + s.duration_s, nt),
                "slantRange": np.linspace(850000.0, 880000.0, nr),
                "referenceTerrainHeight": np.full(nt, 350.0, dtype=np.float32),
                "dopplerCentroid": np.outer(np.linspace(0, 1, nt), np.linspace(10, 20, nr))}[name]

    # -- chunked layers ----------------------------------------------------------------------
    def layer(self, group, name, dtype, shape, *, values=None, deflate=1, shuffle=True,
              chunks=None) -> h5py.Dataset:
        """A chunked 2-D or 3-D layer written as the product writes it."""
        chunks = tuple(min(c, n) for c, n in zip(chunks or (CHUNK,) * len(shape), shape, strict=True))
        ds = group.create_dataset(
            name, shape=shape, dtype=dtype, chunks=chunks, shuffle=shuffle, compression="gzip",
            compression_opts=deflate,
        )
        if self.spec.payload in ("thin", "sized"):
            self._thin(ds, values, shuffle, deflate)
        else:
            ds[...] = values
        return ds

    def _thin(self, ds: h5py.Dataset, values, shuffle: bool, deflate: int) -> None:
        """Every chunk written from pre-encoded payloads: ``"thin"``, the first chunk's first
        valid value everywhere (so a granule's layer is one value, and values still differ
        between granules and layers); ``"sized"``, one of ``SIZED_VARIANTS`` real-size blocks
        in turn (:func:`_sized_blocks`)."""
        if self.spec.payload == "sized":
            blocks = _sized_blocks(ds.chunks, ds.dtype.str if not ds.dtype.names else "complex",
                                   self.spec.seed)
        else:
            block = np.asarray(values)[tuple(slice(0, c) for c in ds.chunks)]
            flat = block.ravel()
            valid = flat[~np.isnan(flat)] if flat.dtype.kind in "fc" else flat
            if flat.dtype.names:
                valid = flat[~np.isnan(flat["r"])]
            blocks = [np.full(ds.chunks, valid[0] if valid.size else 0, dtype=ds.dtype)]
        payloads = [(_shuffle_deflate(b, deflate) if shuffle
                     else zlib.compress(np.ascontiguousarray(b).tobytes(), deflate))
                    for b in blocks]
        grid = [range(0, n, c) for n, c in zip(ds.shape, ds.chunks, strict=True)]
        offsets = np.stack(np.meshgrid(*grid, indexing="ij"), -1).reshape(-1, ds.ndim)
        for i, offset in enumerate(offsets):
            ds.id.write_direct_chunk(tuple(int(o) for o in offset), payloads[i % len(payloads)])

    def grid_layer(self, group, name: str, freq: str, d: dict, shape) -> h5py.Dataset:
        s = self.spec
        if name == "inputDataExceptionMask" and s.mask_kind == "finer":
            shape = (2 * shape[0], 2 * shape[1])  # a finer grid than the group's scales
        # thin payloads need values for the first chunk only
        vshape = tuple(min(CHUNK, n) for n in shape) if s.payload in ("thin", "sized") else tuple(shape)
        ny, nx = vshape
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
        # a swath footprint: NaN outside, as real frames have no-data corners
        outside = (xx + yy * 0.3) < min(nx, ny) * 0.08
        dtype = self.dtype(d)
        deflate, shuffle = 1, True
        if name == "mask":
            deflate, shuffle = 9, False
            values = np.where(outside, 255, 1 + (xx > nx / 2)).astype(np.uint8)
            values[: max(1, ny // 50), :] = 0
        elif name == "inputDataExceptionMask":
            bits = sum({"HH": 256, "HV": 512, "VH": 1024, "VV": 2048, "LH": 4096, "LV": 8192,
                        "RH": 16384, "RV": 32768}[p] for p in s.pols(freq))
            values = np.full(vshape, bits, dtype=np.uint16)
            values[ny // 3 : ny // 3 + max(1, ny // 40), :] |= 2  # a sample slip
            values[outside] = 65535
        elif name == "numberOfLooks":
            values = np.where(outside, np.nan, 8 + (xx % 7)).astype(np.float32)
        elif name == "rtcGammaToSigmaFactor":
            values = np.where(outside, np.nan, 0.7 + yy / (4 * ny)).astype(np.float32)
        else:  # a covariance term
            terms = s.terms(freq)
            base = 0.02 + 0.01 * s.seed
            noise = self.rng.gamma(4.0, 0.25, size=vshape).astype(np.float32)
            v = (base * _term_scale(name) * (1 + 0.3 * np.sin(xx / 37.0) * np.cos(yy / 53.0))
                 * noise * (1 + 0.01 * terms.index(name))).astype(np.float32)
            v[outside] = np.nan
            if d["kind"] == "complex":
                values = np.empty(vshape, dtype=COMPLEX)
                values["r"], values["i"] = v * 0.1, v * -0.05
            else:
                values = v
        ds = self.layer(group, name, dtype, shape, values=values, deflate=deflate,
                        shuffle=shuffle)
        self.attrs(ds, d, f"GCOV/grids/frequency{freq}/{name}", values)
        return ds

    def cube(self, group, name: str, d: dict, shape) -> h5py.Dataset:
        s = self.spec
        base = {"slantRange": 850000.0, "zeroDopplerAzimuthTime": 9780.0, "incidenceAngle": 37.0,
                "elevationAngle": 33.0, "losUnitVectorX": 0.6, "losUnitVectorY": -0.1,
                "alongTrackUnitVectorX": 0.1, "alongTrackUnitVectorY": 0.9,
                "groundTrackVelocity": 7000.0}.get(name, 1.0)
        step = 1e-4 if name.endswith(("VectorX", "VectorY")) else 0.5
        vshape = tuple(min(c, n) for c, n in zip((1, CHUNK, CHUNK)[-len(shape):], shape, strict=True)) \
            if s.payload in ("thin", "sized") else shape
        idx = np.indices(vshape, dtype=np.float64)
        values = base + step * (idx[-1] + 0.2 * idx[-2] + (0.02 * idx[0] if len(shape) == 3 else 0))
        values = (values * (1 + 0.001 * s.seed)).astype(self.dtype(d))
        chunks = (1, CHUNK, CHUNK) if len(shape) == 3 else (CHUNK, CHUNK)
        ds = self.layer(group, name, self.dtype(d), shape, values=values, chunks=chunks)
        self.attrs(ds, d, f"GCOV/metadata/radarGrid/{name}", values)
        return ds

    # -- traps -------------------------------------------------------------------------------
    def trap_parent_scales(self) -> None:
        """Trap 3 (older products): the NESZ LUTs use scales of their parent group."""
        for freq in self.spec.frequencies:
            parent = self.f[f"{self.root}/metadata/calibrationInformation/frequency{freq}"]
            nesz = parent["noiseEquivalentBackscatter"]
            for axis, name in ((0, "yCoordinates"), (1, "xCoordinates")):
                scale = parent.create_dataset(name, data=nesz[name][()])
                scale.make_scale(name)
                for pol in self.spec.pols(freq):
                    if pol in nesz:
                        nesz[pol].dims[axis].detach_scale(nesz[name])
                        nesz[pol].dims[axis].attach_scale(scale)

    def _skip_filters(self, ds: h5py.Dataset, value) -> None:
        """Rewrite the last (partial, corner) chunk with deflate skipped: filter mask bit set.

        HDF5 itself does this when an optional filter fails on a chunk; a reference that
        applies the whole codec pipeline to such a chunk decodes garbage.
        """
        offset = tuple((n - 1) // c * c for n, c in zip(ds.shape, ds.chunks, strict=True))
        current = ds[tuple(slice(o, o + c) for o, c in zip(offset, ds.chunks, strict=True))]
        block = np.zeros(ds.chunks, dtype=ds.dtype)
        block[tuple(slice(0, n) for n in current.shape)] = np.where(
            np.isnan(current) if current.dtype.kind == "f" else current == 255, current, value)
        raw = np.ascontiguousarray(block)
        n_filters = ds.id.get_create_plist().get_nfilters()
        if n_filters == 2:  # shuffle applied, deflate (filter 1) skipped
            size = raw.dtype.itemsize
            payload = raw.view(np.uint8).reshape(-1, size).T.tobytes()
            ds.id.write_direct_chunk(offset, payload, filter_mask=0b10)
        else:  # deflate only (mask): stored raw
            ds.id.write_direct_chunk(offset, raw.tobytes(), filter_mask=0b1)


def write_granule(directory: str | Path, spec: GranuleSpec | None = None,
                  filename: str | None = None) -> Path:
    """Write one synthetic granule into ``directory`` under its real file name (or
    ``filename``)."""
    spec = spec or GranuleSpec()
    path = Path(directory) / (filename or spec.filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    made = _made.get(repr(spec))
    if made is not None and made.exists():  # the same spec written before: its bytes again
        shutil.copyfile(made, path)
        return path
    with h5py.File(path, "w", fs_strategy="page", fs_page_size=PAGE) as f:
        _Writer(f, spec).write()
    if path.stat().st_size <= _KEEP_UP_TO:
        _made[repr(spec)] = _keep(path)
    return path


# A spec's granule is deterministic (its values come from spec.seed): the test session writes
# the same specs again and again (a stack per test file), ~0.4 s each for the whole
# specification tree; the bytes are kept once per process and copied (a test may alter its copy).
_made: dict[str, Path] = {}  # repr(spec) -> the bytes written for it
_KEEP_UP_TO = 32 * 1024 * 1024


@functools.cache
def _keep_dir() -> Path:
    import atexit
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="gcov-index-granules-"))
    atexit.register(shutil.rmtree, d, True)
    return d


def forget_kept() -> None:
    """Delete the kept bytes now (a process that ends with ``os._exit``, as the test processes
    do, runs no ``atexit`` function: each left ~400 MB in the temporary folder)."""
    if _keep_dir.cache_info().currsize:
        shutil.rmtree(_keep_dir(), ignore_errors=True)
        _keep_dir.cache_clear()
        _made.clear()


def _keep(path: Path) -> Path:
    kept = _keep_dir() / f"{len(_made)}.h5"
    shutil.copyfile(path, kept)
    return kept


def make_stack(directory: Path, n: int = 3) -> tuple[list[Path], Path, Path]:
    """``n`` repeat acquisitions of one frame, one 12-day cycle apart; an older release of
    the first (CRID X05007); and a copy of the first as its ``_QA_STATS.h5`` companion."""
    base = GranuleSpec()
    paths = [write_granule(directory, base.repeat(i)) for i in range(n)]
    old = write_granule(directory, replace(base, crid="X05007", seed=99))
    qa = Path(directory) / paths[0].name.replace(".h5", "_QA_STATS.h5")
    shutil.copy(paths[0], qa)
    return paths, old, qa
