"""Synthetic NISAR L2 GCOV granules with the properties of the real product.

See ``shared/gcov-product.md``: 4 MiB paged file space written by h5py's default libver (so a
version-1 B-tree chunk index), the identification group of fixed-length strings and scalars,
frequencyA/B grids of 512x512 shuffle+deflate chunks with partial edge chunks, a mask with
deflate 9 only, ``projection`` with its real attributes, dimension scales, radarGrid cubes,
calibration tables with a complex (NaN, NaN) ``_FillValue``, processing information, orbit and
attitude (no dimension scales, so phony dimensions collide), the committed ``/complex64``
datatype, and one small chunk stored with its deflate filter skipped (per-chunk filter mask).

``payload="real"`` writes real values through HDF5's filters (tests: small grids). ``"thin"``
writes every chunk of a layer with one pre-encoded payload via ``write_direct_chunk``: the chunk
layout (count, offsets, index, metadata pages) is real and full size, the bytes are few, and a
16704 x 17064 granule is written in seconds (benchmarks).
"""

from __future__ import annotations

import shutil
import zlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h5py
import numpy as np

from gcov_index.granule import Granule
from gcov_index.product import POLARIZATIONS

PAGE = 4 * 1024 * 1024
CHUNK = 512
COMPLEX = np.dtype([("r", "<f4"), ("i", "<f4")])
NAN_COMPLEX = np.array((np.nan, np.nan), dtype=COMPLEX)
HEIGHTS = np.arange(-1000.0, 9001.0, 500.0)  # 21 heights, as the real radarGrid cubes



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


@dataclass(frozen=True)
class GranuleSpec:
    """What to generate. Defaults give a small dual-pol DHDH frame in UTM zone 11N."""

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
    shape: tuple[int, int] = (700, 600)  # frequencyA (ny, nx); frequencyB is 1/4 of each side
    epsg: int = 32611
    origin: tuple[float, float] = (399960.0, 4100040.0)  # upper-left corner (x, y), metres
    orbit_samples: int = 60  # varies per granule in the real product
    payload: str = "real"  # "real" or "thin"
    seed: int = 0
    extra: dict = field(default_factory=dict)

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

    def repeat(self, cycles: int, **changes) -> GranuleSpec:
        """The same frame ``cycles`` 12-day repeats later (a new acquisition)."""
        return replace(
            self, cycle=self.cycle + cycles,
            start=self.start + timedelta(days=12 * cycles, seconds=cycles % 3),
            orbit_samples=self.orbit_samples + cycles % 4, seed=self.seed + cycles, **changes,
        )


def full_size(**changes) -> GranuleSpec:
    """A full frame the size of the seed granule (16704 x 17064), thin payloads."""
    return replace(GranuleSpec(shape=(16704, 17064), payload="thin"), **changes)


# ----------------------------------------------------------------------------------------
# small helpers


def _s(text: str) -> np.bytes_:
    """A fixed-length byte string, as the real product stores string datasets."""
    return np.bytes_(text.encode())


def _str_list(items: list[str]) -> np.ndarray:
    width = max(len(i) for i in items)
    return np.array([i.encode() for i in items], dtype=f"S{width}")


def product_time(t: datetime) -> str:
    """The product's form of a time (identification/zeroDopplerStartTime): nanoseconds."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000"  # 29 characters, nanoseconds


def _scalar(group: h5py.Group, name: str, value, dtype=None, **attrs) -> h5py.Dataset:
    ds = group.create_dataset(name, data=np.array(value, dtype=dtype) if dtype else value)
    for k, v in attrs.items():
        ds.attrs[k] = v
    return ds


def _describe(ds: h5py.Dataset, long_name: str, units: str = "", description: str = "") -> None:
    ds.attrs["long_name"] = long_name
    ds.attrs["units"] = units or "unitless"
    ds.attrs["description"] = description or long_name


def _shuffle_deflate(data: np.ndarray, level: int = 1) -> bytes:
    """Encode one chunk as HDF5's shuffle then deflate filters do."""
    raw = np.ascontiguousarray(data)
    size = raw.dtype.itemsize
    shuffled = raw.view(np.uint8).reshape(-1, size).T.tobytes() if size > 1 else raw.tobytes()
    return zlib.compress(shuffled, level)


# ----------------------------------------------------------------------------------------
# the tree


class _Writer:
    def __init__(self, f: h5py.File, spec: GranuleSpec):
        self.f = f
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.g = spec.granule
        self.complex_type = None

    # -- identification -------------------------------------------------------------------
    def identification(self) -> None:
        s, g = self.spec, self.g
        ident = self.f.require_group("science/LSAR/identification")
        start = s.start
        end = start + timedelta(seconds=s.duration_s, microseconds=500000)
        x0, y0 = s.origin
        poly = (
            f"POLYGON (({x0} {y0}, {x0 + 20 * s.shape[1]} {y0}, "
            f"{x0 + 20 * s.shape[1]} {y0 - 20 * s.shape[0]}, {x0} {y0 - 20 * s.shape[0]}, {x0} {y0}))"
        )
        scalars = {
            "absoluteOrbitNumber": np.uint32(1000 + 173 * s.cycle + s.track),
            "trackNumber": np.uint32(s.track),
            "frameNumber": np.uint16(s.frame),
            "diagnosticModeFlag": np.uint32(0),
            "cycleNumber": np.uint16(s.cycle),
            "plannedDatatakeId": np.uint32(7000 + s.cycle),
            "plannedObservationId": np.uint32(9000 + s.cycle),
        }
        for name, value in scalars.items():
            _scalar(ident, name, value)
        strings = {
            "granuleId": g.stem,
            "compositeReleaseId": s.crid,
            "zeroDopplerStartTime": product_time(start),
            "zeroDopplerEndTime": product_time(end),
            "processingDateTime": product_time(start + timedelta(days=2)),
            "boundingPolygon": poly,
            "orbitPassDirection": "Ascending" if s.direction == "A" else "Descending",
            "lookDirection": "Left",
            "productType": "GCOV",
            "productLevel": "L2",
            "productVersion": "1.0.0",
            "productSpecificationVersion": "1.3.0",
            "processingType": "Nominal" if s.processing_type == "PR" else "Urgent",
            "processingCenter": "JPL",
            "missionId": "NISAR",
            "instrumentName": "L-SAR",
            "platformName": "NISAR",
            "radarBand": "L",
            "productDoi": "10.5067/NISAR/L2_GCOV_BETA_V1",
            "granuleIdRslc": g.stem.replace("L2", "L1").replace("GCOV", "RSLC"),
            "isDithered": "False",
            "isGeocoded": "True",
            "isMixedMode": "False",
            "isUrgentObservation": "True" if s.processing_type == "UR" else "False",
            "isFullFrame": "True" if s.coverage == "F" else "False",
            "isJointObservation": "False",
            "isAuxiliary": "False",
            "isNominalFrame": "True",
            "staticLayersDataAccess": "(NOT SPECIFIED)",
            "trackFrameInputCount": "1",
        }
        for name, text in strings.items():
            _scalar(ident, name, _s(text))
        ident.create_dataset("listOfFrequencies", data=_str_list(list(g.frequencies)))

    # -- grids ----------------------------------------------------------------------------
    def projection(self, group: h5py.Group) -> h5py.Dataset:
        epsg = self.spec.epsg
        proj = _scalar(group, "projection", np.uint32(epsg))
        if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
            zone = epsg % 100
            south = epsg > 32700
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
            attrs = {
                "grid_mapping_name": "universal_transverse_mercator",
                "utm_zone_number": np.int64(zone),
                "false_easting": 500000.0,
                "false_northing": 10000000.0 if south else 0.0,
                "latitude_of_projection_origin": 0.0,
                "longitude_of_central_meridian": float(6 * zone - 183),
                "scale_factor_at_central_meridian": 0.9996,
            }
        else:
            from pyproj import CRS

            crs = CRS.from_epsg(epsg)
            wkt = crs.to_wkt("WKT1_GDAL")
            attrs = {"grid_mapping_name": "polar_stereographic"}
            attrs.update({k: v for k, v in crs.to_cf().items() if isinstance(v, float)})
        proj.attrs["epsg_code"] = np.int64(epsg)
        proj.attrs["spatial_ref"] = np.bytes_(wkt.encode())  # fixed-length bytes, as real
        proj.attrs["ellipsoid"] = "WGS84"
        proj.attrs["semi_major_axis"] = 6378137.0
        proj.attrs["inverse_flattening"] = 298.257223563
        for k, v in attrs.items():
            proj.attrs[k] = v
        return proj

    def coordinates(self, group: h5py.Group, shape, spacing: float, origin) -> tuple:
        ny, nx = shape
        x0, y0 = origin
        x = x0 + spacing / 2 + spacing * np.arange(nx)
        y = y0 - spacing / 2 - spacing * np.arange(ny)  # pixel centres, y decreasing
        xs = group.create_dataset("xCoordinates", data=x)
        ys = group.create_dataset("yCoordinates", data=y)
        for ds, axis, std in ((xs, "x", "projection_x_coordinate"), (ys, "y", "projection_y_coordinate")):
            ds.attrs["standard_name"] = std  # variable-length string attribute
            ds.attrs["units"] = "meters"
            ds.attrs["long_name"] = f"Coordinate along {axis}-direction"
            ds.attrs["description"] = f"CF compliant dimension associated with the {axis} coordinate"
            ds.make_scale(ds.name.rsplit("/", 1)[1])
        return xs, ys

    def layer(self, group, name, dtype, shape, *, fill, deflate=1, shuffle=True, values=None,
              attrs=None, scales=None, chunks=None):
        """A chunked 2-D or 3-D layer written as the product writes it."""
        chunks = tuple(min(c, n) for c, n in zip(chunks or (CHUNK,) * len(shape), shape, strict=True))
        ds = group.create_dataset(
            name, shape=shape, dtype=dtype, chunks=chunks, shuffle=shuffle, compression="gzip",
            compression_opts=deflate,
        )
        if self.spec.payload == "thin":
            self._thin(ds, values, shuffle, deflate)
        else:
            ds[...] = values() if callable(values) else values
        if fill is not None:
            ds.attrs["_FillValue"] = fill
        for k, v in (attrs or {}).items():
            ds.attrs[k] = v
        for dim, scale in enumerate(scales or ()):
            ds.dims[dim].attach_scale(scale)
        return ds

    def _thin(self, ds: h5py.Dataset, values, shuffle: bool, deflate: int) -> None:
        """Every chunk written, one pre-encoded payload of a few hundred bytes: the first
        chunk's first valid value everywhere (so a granule's layer is one value, and values
        still differ between granules and layers)."""
        block = (values() if callable(values) else values)[tuple(slice(0, c) for c in ds.chunks)]
        flat = np.asarray(block).ravel()
        valid = flat[~np.isnan(flat)] if flat.dtype.kind in "fc" else flat
        full = np.full(ds.chunks, valid[0] if valid.size else 0, dtype=ds.dtype)
        raw = np.ascontiguousarray(full)
        payload = (_shuffle_deflate(raw, deflate) if shuffle
                   else zlib.compress(raw.tobytes(), deflate))
        grid = [range(0, n, c) for n, c in zip(ds.shape, ds.chunks, strict=True)]
        for offset in np.stack(np.meshgrid(*grid, indexing="ij"), -1).reshape(-1, ds.ndim):
            ds.id.write_direct_chunk(tuple(int(o) for o in offset), payload)

    def grids(self, freq: str, code: str, shape, spacing: float) -> None:
        s = self.spec
        grp = self.f.require_group(f"science/LSAR/GCOV/grids/frequency{freq}")
        xs, ys = self.coordinates(grp, shape, spacing, s.origin)
        _scalar(grp, "xCoordinateSpacing", float(spacing))
        _scalar(grp, "yCoordinateSpacing", float(-spacing))
        _scalar(grp, "numberOfSubSwaths", np.uint8(2))
        self.projection(grp)
        pols = POLARIZATIONS[code]
        terms = covariance_terms(code)
        grp.create_dataset("listOfPolarizations", data=_str_list(pols))
        grp.create_dataset("listOfCovarianceTerms", data=_str_list(terms))
        # thin payloads need values for the first chunk only
        vshape = tuple(min(CHUNK, n) for n in shape) if s.payload == "thin" else tuple(shape)
        ny, nx = vshape
        yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
        # a swath footprint: NaN outside, as real frames have no-data corners
        outside = (xx + yy * 0.3) < min(nx, ny) * 0.08
        base = 0.02 + 0.01 * self.spec.seed
        for i, term in enumerate(terms):
            diagonal = term[:2] == term[2:]

            def values(i=i, diagonal=diagonal):
                noise = self.rng.gamma(4.0, 0.25, size=vshape).astype(np.float32)
                v = (base * _term_scale(terms[i]) * (1 + 0.3 * np.sin(xx / 37.0)
                                                     * np.cos(yy / 53.0)) * noise)
                v = v.astype(np.float32)
                v[outside] = np.nan
                if diagonal:
                    return v
                c = np.empty(vshape, dtype=COMPLEX)
                c["r"], c["i"] = v * 0.1, v * -0.05
                c["r"][outside] = c["i"][outside] = np.nan
                return c

            self.layer(
                grp, term, np.float32 if diagonal else self.complex_type, shape,
                fill=np.float32(np.nan) if diagonal else NAN_COMPLEX, values=values,
                attrs=self._layer_attrs(f"Radiometric terrain corrected {term} backscatter "
                                        "as gamma naught", "unitless"),
                scales=(ys, xs),
            )
        looks = self.layer(
            grp, "numberOfLooks", np.float32, shape, fill=np.float32(np.nan),
            values=lambda: np.where(outside, np.nan, 8 + (xx % 7)).astype(np.float32),
            attrs=self._layer_attrs("Number of looks", "unitless"), scales=(ys, xs),
        )
        self.layer(
            grp, "rtcGammaToSigmaFactor", np.float32, shape, fill=np.float32(np.nan),
            values=lambda: np.where(outside, np.nan, 0.7 + yy / (4 * ny)).astype(np.float32),
            attrs=self._layer_attrs("RTC area normalization factor gamma0 to sigma0", "unitless"),
            scales=(ys, xs),
        )
        mask_values = np.where(outside, 255, 1 + (xx > nx / 2)).astype(np.uint8)
        mask_values[: max(1, ny // 50), :] = 0
        mask = self.layer(
            grp, "mask", np.uint8, shape, fill=np.uint8(255), deflate=9, shuffle=False,
            values=mask_values,
            attrs={"grid_mapping": "projection", "long_name": "Mask layer",
                   "description": "0 invalid, 1..N sub-swath, 255 outside the swath",
                   "valid_min": np.uint8(0), "valid_max": np.uint8(2)},
            scales=(ys, xs),
        )
        if s.payload == "real" and freq == "A":
            self._skip_filters(looks, np.float32(1.0))
            self._skip_filters(mask, np.uint8(1))

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

    def _layer_attrs(self, long_name: str, units: str) -> dict:
        return {
            "grid_mapping": "projection", "long_name": long_name, "units": units,
            "description": long_name, "valid_min": 0.0,
            "min_value": 0.0, "mean_value": 0.05, "max_value": 2.0, "sample_stddev": 0.04,
        }

    # -- metadata -------------------------------------------------------------------------
    def radar_grid(self) -> None:
        s = self.spec
        ny, nx = max(4, s.shape[0] // 24), max(4, s.shape[1] // 24)
        grp = self.f.require_group("science/LSAR/GCOV/metadata/radarGrid")
        xs, ys = self.coordinates(grp, (ny, nx), 500.0, s.origin)
        h = grp.create_dataset("heightAboveEllipsoid", data=HEIGHTS)
        h.attrs["units"] = "meters"
        h.make_scale("heightAboveEllipsoid")
        self.projection(grp)
        cubes = {
            "slantRange": ("meters", 850000.0), "zeroDopplerAzimuthTime": ("seconds", 9780.0),
            "incidenceAngle": ("degrees", 37.0), "elevationAngle": ("degrees", 33.0),
            "losUnitVectorX": ("unitless", 0.6), "losUnitVectorY": ("unitless", -0.1),
            "alongTrackUnitVectorX": ("unitless", 0.1), "alongTrackUnitVectorY": ("unitless", 0.9),
            "groundTrackVelocity": ("meters per second", 7000.0),
        }
        shape = (len(HEIGHTS), ny, nx)
        zz, yy, xx = np.mgrid[0 : shape[0], 0:ny, 0:nx]
        for i, (name, (units, base)) in enumerate(cubes.items()):
            values = (base + (xx * 0.5 + yy * 0.1 + zz * 0.01 + i) * (1 + 0.01 * s.seed))
            self.layer(grp, name, np.float64, shape, fill=None,
                       values=values.astype(np.float64),
                       attrs={"units": units, "long_name": name, "description": name},
                       scales=(h, ys, xs), chunks=(1, CHUNK, CHUNK))

    def calibration(self) -> None:
        base = "science/LSAR/GCOV/metadata/calibrationInformation"
        n = 60
        slant = 850000.0 + 100.0 * np.arange(n)
        ct = self.f.require_group(f"{base}/crosstalk")
        sr = ct.create_dataset("slantRange", data=slant)
        sr.attrs["units"] = "meters"
        sr.make_scale("slantRange")
        for i, name in enumerate(["txHorizontal", "txVertical", "rxHorizontal", "rxVertical"]):
            v = np.empty(n, dtype=COMPLEX)
            v["r"] = 0.001 * (i + 1) + 1e-5 * np.arange(n)
            v["i"] = -0.0005 * (i + 1)
            v[-3:] = NAN_COMPLEX  # the tail is no-data
            ds = ct.create_dataset(name, data=v, dtype=self.complex_type, chunks=(n,),
                                   compression="gzip", compression_opts=9)
            ds.attrs["_FillValue"] = NAN_COMPLEX  # trap 1: complex fill value
            _describe(ds, f"Crosstalk {name}")
            ds.dims[0].attach_scale(sr)
        for freq in self.g.frequencies:
            for pol in POLARIZATIONS[self.spec.polarizations[:2] if freq == "A" else self.spec.polarizations[2:]]:
                grp = self.f.require_group(f"{base}/frequency{freq}/{pol}")
                _scalar(grp, "commonDelay", 0.0, units="meters")
                _scalar(grp, "faradayRotation", 0.0, units="radians")
                _scalar(grp, "scaleFactor", 1.0 + 0.01 * self.spec.seed)
                _scalar(grp, "scaleFactorSlope", 0.0)
                parent = self.f[f"{base}/frequency{freq}"]
                if "slantRange" not in parent:
                    # the LUTs in noiseEquivalentBackscatter/ use these parent-group scales (trap 3)
                    psr = parent.create_dataset("slantRange", data=slant)
                    psr.make_scale("slantRange")
                    pt = parent.create_dataset("zeroDopplerTime", data=np.linspace(0, 34, 5))
                    pt.make_scale("zeroDopplerTime")
                nesz = parent.require_group("noiseEquivalentBackscatter")
                lut = np.linspace(-30, -25, n, dtype=np.float32)[None, :].repeat(5, 0)
                ds = nesz.create_dataset(pol, data=lut, chunks=lut.shape, compression="gzip",
                                         compression_opts=9)
                _describe(ds, f"Noise equivalent backscatter {pol}", "dB")
                ds.dims[0].attach_scale(parent["zeroDopplerTime"])
                ds.dims[1].attach_scale(parent["slantRange"])

    def processing(self) -> None:
        base = self.f.require_group("science/LSAR/GCOV/metadata/processingInformation")
        algo = base.require_group("algorithms")
        for name, text in {
            "geocoding": "area_projection", "radiometricTerrainCorrection": "bilinear_distribution",
            "softwareVersion": "0.25.4", "demInterpolation": "biquintic",
            "isce3Version": "0.25.4", "covarianceMatrixEstimation": "multilook",
        }.items():
            _scalar(algo, name, _s(text))
        inputs = base.require_group("inputs")
        inputs.create_dataset("l1SlcGranules", data=_str_list([self.g.stem.replace("GCOV", "RSLC")]))
        _scalar(inputs, "demSource", _s("Copernicus GLO-30"))
        inputs.create_dataset("orbitFiles", data=_str_list([f"NISAR_ANC_L_PR_FOE_{self.spec.cycle:03d}.xml"]))
        _scalar(inputs, "configFiles", _s("gcov_runconfig.yaml"))
        params = base.require_group("parameters")
        _scalar(params, "isFullCovariance", _s("False" if self.spec.polarizations[:2] != "QP" else "True"))
        _scalar(params, "polarimetricSymmetrizationApplied", _s("True"))
        _scalar(params, "minRtcAreaNormalizationFactorInDB", -30.0)
        _scalar(params, "geocodingAlgorithmAreaProjectionRangeBlockSize", np.uint32(1000))
        timing = base.require_group("timingCorrections")
        rng = np.linspace(850000, 880000, 11)
        sr = timing.create_dataset("slantRange", data=rng)
        sr.make_scale("slantRange")
        az = timing.create_dataset("zeroDopplerAzimuthTime", data=np.linspace(0, 34, 9))
        az.make_scale("zeroDopplerAzimuthTime")
        for name in ("slantRangeSolidEarthTides", "azimuthSolidEarthTides"):
            lut = (np.outer(np.arange(9), np.arange(11)) * 1e-4).astype(np.float64)
            ds = timing.create_dataset(name, data=lut, chunks=lut.shape, compression="gzip",
                                       compression_opts=9)
            _describe(ds, name, "meters")
            ds.dims[0].attach_scale(az)
            ds.dims[1].attach_scale(sr)

    def orbit_attitude(self) -> None:
        s = self.spec
        orbit = self.f.require_group("science/LSAR/GCOV/metadata/orbit")
        n = s.orbit_samples  # varies per granule
        t = orbit.create_dataset("time", data=np.arange(n, dtype=np.float64) * 10.0 + 9700.0)
        t.attrs["units"] = np.bytes_(f"seconds since {s.start:%Y-%m-%d} 00:00:00".encode())
        t.make_scale("time")
        pos = orbit.create_dataset("position", data=7.0e6 + np.arange(n * 3).reshape(n, 3) * 1.5)
        vel = orbit.create_dataset("velocity", data=7.5e3 - np.arange(n * 3).reshape(n, 3) * 0.01)
        for ds, units in ((pos, "meters"), (vel, "meters per second")):
            ds.attrs["units"] = units
            ds.dims[0].attach_scale(t)
        _scalar(orbit, "orbitType", _s("FOE"))
        _scalar(orbit, "interpMethod", _s("Hermite"))
        att = self.f.require_group("science/LSAR/GCOV/metadata/attitude")
        att.create_dataset("time", data=np.arange(94, dtype=np.float64) + 9700.0)
        # no dimension scales: phony_dim names collide ([94,4] vs [94,3], trap 2)
        att.create_dataset("quaternions", data=np.linspace(-1, 1, 94 * 4).reshape(94, 4))
        att.create_dataset("eulerAngles", data=np.linspace(-0.1, 0.1, 94 * 3).reshape(94, 3))
        _scalar(att, "attitudeType", _s("FRP"))

    def source_data(self) -> None:
        src = self.f.require_group("science/LSAR/GCOV/metadata/sourceData")
        _scalar(src, "productLevel", _s("L1"))
        _scalar(src, "lookDirection", _s("Left"))
        _scalar(src, "numberOfAzimuthLines", np.uint64(40000))
        ceos = self.f.require_group("science/LSAR/GCOV/metadata/ceosAnalysisReadyData")
        _scalar(ceos, "staticLayersDataAccess", _s("(NOT SPECIFIED)"))
        _scalar(ceos, "geometricAccuracy", _s("unverified"))

    def write(self) -> None:
        f, s = self.f, self.spec
        f.attrs["Conventions"] = np.bytes_(b"CF-1.7")
        f.attrs["mission_name"] = np.bytes_(b"NISAR")
        f.attrs["title"] = np.bytes_(b"NISAR L2 GCOV Product")
        f.attrs["institution"] = np.bytes_(b"NASA JPL")
        f.attrs["reference_document"] = np.bytes_(b"D-102274 NISAR NASA SDS Product Specification")
        f["complex64"] = COMPLEX  # the committed (named) datatype at root
        self.complex_type = f["complex64"]
        self.identification()
        ny, nx = s.shape
        self.grids("A", s.polarizations[:2], (ny, nx), 20.0)
        if "B" in self.g.frequencies:
            self.grids("B", s.polarizations[2:], (max(1, ny // 4), max(1, nx // 4)), 80.0)
        self.radar_grid()
        self.calibration()
        self.processing()
        self.orbit_attitude()
        self.source_data()


def write_granule(directory: str | Path, spec: GranuleSpec | None = None) -> Path:
    """Write one synthetic GCOV granule into ``directory`` under its real file name."""
    spec = spec or GranuleSpec()
    path = Path(directory) / spec.granule.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", fs_strategy="page", fs_page_size=PAGE) as f:
        _Writer(f, spec).write()
    return path


def make_stack(directory: Path, n: int = 3) -> tuple[list[Path], Path, Path]:
    """``n`` repeat acquisitions of one frame, one 12-day cycle apart; an older release of
    the first (CRID X05007); and a copy of the first as its ``_QA_STATS.h5`` companion."""
    base = GranuleSpec()
    paths = [write_granule(directory, base.repeat(i)) for i in range(n)]
    old = write_granule(directory, replace(base, crid="X05007", seed=99))
    qa = Path(directory) / paths[0].name.replace(".h5", "_QA_STATS.h5")
    shutil.copy(paths[0], qa)
    return paths, old, qa
