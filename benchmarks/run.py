"""Benchmarks: a time series over a small box from N full-size GCOV granules, three ways.

Each granule is a synthetic full-size frame (16704 x 17064, 512 x 512 chunks, the real chunk
layout and metadata, thin payloads) served by the local S3 API (moto in its own process behind
the credential-checking gateway) with a per-request latency (20 ms). In one run, for N = 5 and
N = 50:

(a) **seed**: the seed workflow; for each granule, open the frequencyA group with h5netcdf over
    s3fs (its defaults), then the box mean; one granule after the other.
(b) **virtualizarr**: VirtualiZarr's HDFParser on the frequencyA group of each granule, concat
    along time, ``.vz.to_kerchunk(format="parquet")``; read with plain
    ``xr.open_dataset(engine="kerchunk")`` over s3fs.
(c) **gcov-index**: ``build`` (whole product tree, JSON and Parquet); ``open_store(group=...)``;
    the box mean over all time steps; and ``subset()`` end to end with a bbox in EPSG:4326.

Every phase is counted at the gateway (requests by method, bytes sent). Reads are timed as the
median of ``--repeat`` runs (requests and bytes from the last run). Temporary credentials are
fetched before timing, for every method.

    python -m benchmarks.run [--sizes 5,50] [--latency 0.02] [--repeat 5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

GRID = "science/LSAR/GCOV/grids/frequencyA"
BOX = {"yCoordinates": slice(8000, 8040), "xCoordinates": slice(8000, 8040)}  # in one chunk


class Meter:
    """Wall time, requests and bytes at the gateway for one phase."""

    def __init__(self, archive):
        self.archive = archive

    def __call__(self, fn, repeat: int = 1):
        times = []
        for _ in range(repeat):
            gc.collect()  # garbage of the phase before (a build) is not this phase's cost
            self.archive.s3.stats.reset()
            t0 = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - t0)
        st = self.archive.s3.stats
        return value, {"seconds": statistics.median(times), "first_seconds": times[0],
                       "requests": st.total,
                       "by_method": dict(st.requests), "bytes": st.bytes,
                       "max_in_flight": st.max_in_flight, "runs": repeat}


def make_granules(directory: Path, n: int) -> list[Path]:
    from tests.support.granules import full_size, write_granule

    directory.mkdir(parents=True, exist_ok=True)
    have = sorted(directory.glob("NISAR_*.h5"))
    for i in range(len(have), n):
        write_granule(directory, full_size().repeat(i))
    return sorted(directory.glob("NISAR_*.h5"))[:n]


def seed_workflow(urls, access) -> list[float]:
    """(a) What the seed does: h5netcdf over s3fs, one granule after the other."""
    import s3fs
    import xarray as xr

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **access.s3fs_options())
    out = []
    for url in urls:
        with fs.open(url) as f:
            ds = xr.open_dataset(f, engine="h5netcdf", group=GRID, phony_dims="access")
            out.append(float(ds["HHHH"].isel(BOX).mean()))
    return out


def virtualizarr_index(urls, access, times, out: Path) -> Path:
    """(b) VirtualiZarr + kerchunk Parquet: the field's way to build references."""
    import xarray as xr
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import S3Store
    from virtualizarr import open_virtual_dataset
    from virtualizarr.parsers import HDFParser

    bucket = urls[0].split("/")[2]
    store = S3Store(bucket, config={"endpoint": access.endpoints.s3_endpoint, "region": access.endpoints.region},
                    client_options={"allow_http": True}, credential_provider=access.credentials)
    registry = ObjectStoreRegistry({f"s3://{bucket}": store})
    parts = [open_virtual_dataset(u, registry=registry, parser=HDFParser(group=GRID))
             .expand_dims(time=[t]) for u, t in zip(urls, times, strict=True)]
    combined = xr.concat(parts, dim="time", coords="minimal", compat="override",
                         combine_attrs="override")
    shutil.rmtree(out, ignore_errors=True)
    combined.vz.to_kerchunk(str(out), format="parquet")
    return out


def virtualizarr_open(store: Path, access):
    import xarray as xr

    return xr.open_dataset(str(store), engine="kerchunk", storage_options={
        "remote_protocol": "s3", "remote_options": access.s3fs_options()})


def start_times(paths) -> list[np.datetime64]:
    import h5py

    out = []
    for p in paths:
        with h5py.File(p) as f:
            t = f["science/LSAR/identification/zeroDopplerStartTime"][()].decode()
            out.append(np.datetime64(t[:29], "ns"))
    return out


def run_size(n: int, work: Path, latency: float, repeat: int) -> dict:
    from gcov_index import build, open_store
    from gcov_index.read.subset import Box, subset
    from tests.support.services import LocalArchive

    t0 = time.perf_counter()
    paths = make_granules(work / "granules", n)
    made = time.perf_counter() - t0
    res: dict = {"granules": n, "granule_bytes": sum(p.stat().st_size for p in paths),
                 "generate_seconds": round(made, 1)}
    with LocalArchive(work / f"archive-{n}", latency=latency, s3_backend="files") as archive:
        urls = [archive.add(p)[0] for p in paths]
        access = archive.access()
        access.credentials.get()
        meter = Meter(archive)
        print(f"[{n}] {n} granules ready ({made:.0f} s); seed workflow ...", file=sys.stderr)

        values_a, res["a_seed_series"] = meter(lambda: seed_workflow(urls, access))

        print(f"[{n}] VirtualiZarr + kerchunk Parquet ...", file=sys.stderr)
        times = start_times(paths)
        vz_store, res["b_virtualizarr_index"] = meter(
            lambda: virtualizarr_index(urls, access, times, work / f"vz-{n}.parquet"))
        res["b_virtualizarr_index"]["store_bytes"] = _size(vz_store)
        _, res["b_virtualizarr_open"] = meter(lambda: virtualizarr_open(vz_store, access), repeat)
        ds = virtualizarr_open(vz_store, access)
        values_b, res["b_virtualizarr_series"] = meter(
            lambda: ds["HHHH"].isel(BOX).mean(["yCoordinates", "xCoordinates"]).values, repeat)

        print(f"[{n}] gcov-index ...", file=sys.stderr)
        for fmt in ("parquet", "json"):
            store = work / f"gcov-{n}.{fmt}"
            _, res[f"c_build_{fmt}"] = meter(lambda s=store: build(
                urls, s, access=access, cache=False, workers=4))
            res[f"c_build_{fmt}"]["store_bytes"] = _size(store)
            _, res[f"c_open_{fmt}"] = meter(
                lambda s=store: open_store(s, group=GRID, access=access), repeat)
            grid = open_store(store, group=GRID, access=access)
            values_c, res[f"c_series_{fmt}"] = meter(
                lambda g=grid: g["HHHH"].isel(BOX).mean(["yCoordinates", "xCoordinates"]).values,
                repeat)
        _, res["c_open_tree_parquet"] = meter(
            lambda: open_store(work / f"gcov-{n}.parquet", access=access), repeat)
        x = grid["xCoordinates"].values[[8000, 8039]]
        y = grid["yCoordinates"].values[[8039, 8000]]
        box = Box.parse((x[0], y[0], x[1], y[1]), crs="EPSG:32611")
        _, res["c_subset_call_parquet"] = meter(
            lambda: subset(work / f"gcov-{n}.parquet", box, access=access), repeat)

        res["same_values"] = bool(np.allclose(values_a, values_b) and np.allclose(values_a,
                                                                                  values_c))
        res["chunks_touched"] = n
    shutil.rmtree(work / f"archive-{n}", ignore_errors=True)
    return res


def _size(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file())


def ratios(r: dict) -> dict:
    a, c = r["a_seed_series"], r["c_series_parquet"]
    b = r["b_virtualizarr_series"]
    return {
        "seed_over_gcov_time": a["seconds"] / (c["seconds"] + r["c_open_parquet"]["seconds"]),
        "seed_over_gcov_requests": a["requests"] / max(1, c["requests"]),
        "seed_over_gcov_bytes": a["bytes"] / max(1, c["bytes"]),
        "virtualizarr_over_gcov_series_time": b["seconds"] / c["seconds"],
        "virtualizarr_over_gcov_index_time": r["b_virtualizarr_index"]["seconds"]
        / r["c_build_parquet"]["seconds"],
    }


def markdown(results: list[dict], latency: float) -> str:
    rows = [("(a) seed: h5netcdf over s3fs, per granule", "a_seed_series"),
            ("(b) VirtualiZarr: index (HDFParser + to_kerchunk parquet)", "b_virtualizarr_index"),
            ("(b) VirtualiZarr: open (engine=kerchunk)", "b_virtualizarr_open"),
            ("(b) VirtualiZarr: box mean, all times", "b_virtualizarr_series"),
            ("(c) gcov-index: build, Parquet (whole tree)", "c_build_parquet"),
            ("(c) gcov-index: build, JSON (whole tree)", "c_build_json"),
            ("(c) gcov-index: open grid group, Parquet", "c_open_parquet"),
            ("(c) gcov-index: open grid group, JSON", "c_open_json"),
            ("(c) gcov-index: open whole tree, Parquet", "c_open_tree_parquet"),
            ("(c) gcov-index: box mean, all times, Parquet", "c_series_parquet"),
            ("(c) gcov-index: box mean, all times, JSON", "c_series_json"),
            ("(c) gcov-index: `subset()` end to end (open + clip + read), Parquet",
             "c_subset_call_parquet")]
    out = []
    for r in results:
        n = r["granules"]
        out.append(f"\n### {n} granules (16704 x 17064), {latency * 1000:g} ms per request\n")
        out.append("| what | seconds (median) | first run | requests | bytes | in flight "
                   "| store size |")
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for label, key in rows:
            m = r[key]
            req = ", ".join(f"{k} {v}" for k, v in sorted(m["by_method"].items())) or "0"
            size = f"{m['store_bytes'] / 1e6:.1f} MB" if "store_bytes" in m else ""
            first = f"{m['first_seconds']:.3f}" if m["runs"] > 1 else ""
            out.append(f"| {label} | {m['seconds']:.3f} | {first} | {m['requests']} ({req}) | "
                       f"{_bytes(m['bytes'])} | {m['max_in_flight']} | {size} |")
        q = ratios(r)
        out.append("")
        out.append(f"Chunks touched by the box: {r['chunks_touched']} (one per granule). Same "
                   f"values from all three: {r['same_values']}. Ratios (this run): seed / "
                   f"gcov-index (open + series) time **{q['seed_over_gcov_time']:.0f}x**, "
                   f"requests **{q['seed_over_gcov_requests']:.1f}x**, bytes "
                   f"**{q['seed_over_gcov_bytes']:.0f}x**; VirtualiZarr / gcov-index series "
                   f"time {q['virtualizarr_over_gcov_series_time']:.1f}x, index time "
                   f"{q['virtualizarr_over_gcov_index_time']:.2f}x (VirtualiZarr indexes one "
                   "group, gcov-index the whole tree).")
    return "\n".join(out)


def _bytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="5,50")
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gcov-bench-"))
    try:
        results = [run_size(int(n), work, args.latency, args.repeat)
                   for n in args.sizes.split(",")]
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    doc = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                      f"{platform.python_version()}",
           "latency_s": args.latency, "results": results}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(markdown(results, args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
