"""Benchmark: scanning full-size granules (issue 11, the frugal scan), per granule.

N synthetic full-size frames (16704 x 17064, mode 2005 DHDH, ``payload="sized"``: real-size
~0.5 MB chunk payloads, 3.1 GB each) served by the local S3 API (``s3_backend="files"``) with a
per-request latency (20 ms). For each granule, counted at the gateway (requests, bytes sent)
and timed:

- ``gcov-index``: ``scan()`` of the whole tree (the frugal 64 KiB-block reader; the first
  granule is read cold, the next ones with the layout learned from the ones before);
- ``gcov-index, 4 MiB pages``: the same scan through the reader it had before (``open_reader``:
  4 MiB pages, 64 cached), for comparison; its manifest is checked equal to the frugal one;
- ``VirtualiZarr, frequencyA``: ``HDFParser(group=frequencyA)`` as the seed benchmark does
  (its own reader, obstore store);
- ``VirtualiZarr, whole tree``: ``HDFParser()`` on the whole file (may fail on this product:
  then the error is reported).

Temporary credentials are fetched before timing. Granules are written under a temporary
folder and deleted after.

    python -m benchmarks.scan [--n 3] [--latency 0.02] [--work DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

GRID = "science/LSAR/GCOV/grids/frequencyA"


def _count(archive, fn) -> dict:
    gc.collect()
    stats = list(archive.hosts.values())
    for st in stats:
        st.reset()
    t0 = time.perf_counter()
    error = None
    value = None
    try:
        value = fn()
    except Exception as e:  # reported, not raised: a library that fails on the product
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "requests": sum(st.total for st in stats),
            "bytes": sum(st.bytes for st in stats), "error": error, "value": value}


def _frugal_scan(url, access):
    """``scan()``, keeping its reader's count of fetch rounds (one concurrent round each)."""
    from gcov_index.index import scan as scan_module

    made = []
    frugal = scan_module.open_frugal_reader

    def spy(*args, **kwargs):
        made.append(frugal(*args, **kwargs))
        return made[-1]

    scan_module.open_frugal_reader = spy
    try:
        manifest = scan_module.scan(url, access)
    finally:
        scan_module.open_frugal_reader = frugal
    manifest.fetch_rounds = made[-1].rounds
    return manifest


def _old_scan(url, access):
    """``scan()`` through the reader it used before issue 11 (4 MiB pages, 64 cached)."""
    from gcov_index.index import scan as scan_module
    from gcov_index.io.access import open_reader

    def old_reader(store, path, url=None, **_):
        reader = open_reader(store, path, url)
        reader.used = set()  # learns nothing
        return reader

    frugal = scan_module.open_frugal_reader
    scan_module.open_frugal_reader = old_reader
    try:
        return scan_module.scan(url, access)
    finally:
        scan_module.open_frugal_reader = frugal


def _same(a, b) -> bool:
    """The same manifest, to the byte of its JSON form (key order included)."""
    return json.dumps(a.to_json()) == json.dumps(b.to_json())


def _virtualizarr(url, access, group: str | None):
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import S3Store
    from virtualizarr.parsers import HDFParser

    bucket = url.split("/")[2]
    store = S3Store(bucket, config={"endpoint": access.endpoints.s3_endpoint,
                                    "region": access.endpoints.region},
                    client_options={"allow_http": True}, credential_provider=access.credentials)
    registry = ObjectStoreRegistry({f"s3://{bucket}": store})
    return HDFParser(group=group)(url, registry=registry)


def measure_scan(n: int = 3, latency: float = 0.02, work: str | Path | None = None,
                 old: bool = True, virtualizarr: bool = True, whole_tree: bool = True) -> dict:
    """Per granule: seconds, requests and bytes of each way of scanning (see the module doc).
    Returns ``{"latency_s", "granule_bytes", "rows": {what: [per granule {seconds, requests,
    bytes, error}]}, "same_manifest": bool | None}``."""
    from gcov_index.io import access as access_module
    from tests.support.granules import full_size, write_granule
    from tests.support.services import LocalArchive

    own = work is None
    root = Path(tempfile.mkdtemp(prefix="gcov-scan-bench-")) if own else Path(work)
    rows: dict[str, list[dict]] = {}
    same = None
    sizes = []
    access_module._LAYOUTS.clear()  # the first granule is read cold
    try:
        with LocalArchive(root / "archive", latency=latency, s3_backend="files") as archive:
            access = archive.access()
            access.credentials.get()
            for i in range(n):
                folder = root / f"g{i}"
                path = write_granule(folder, full_size(payload="sized").repeat(i))
                sizes.append(path.stat().st_size)
                url = archive.add(path)[0]
                print(f"[{i + 1}/{n}] {path.name} ({sizes[-1] / 1e9:.2f} GB)", file=sys.stderr)
                new = _count(archive, lambda u=url: _frugal_scan(u, access))
                rows.setdefault("gcov-index scan, whole tree (64 KiB blocks)", []).append(new)
                if old:
                    before = _count(archive, lambda u=url: _old_scan(u, access))
                    rows.setdefault("gcov-index scan, whole tree (4 MiB pages, before)",
                                    []).append(before)
                    ok = before["error"] is None and new["error"] is None and (
                        _same(before["value"], new["value"]))
                    same = ok if same is None else same and ok
                if virtualizarr:
                    rows.setdefault("VirtualiZarr HDFParser, frequencyA", []).append(
                        _count(archive, lambda u=url: _virtualizarr(u, access, GRID)))
                if whole_tree:
                    rows.setdefault("VirtualiZarr HDFParser, whole tree", []).append(
                        _count(archive, lambda u=url: _virtualizarr(u, access, None)))
                new["rounds"] = getattr(new["value"], "fetch_rounds", None)
                for r in rows.values():
                    r[-1].pop("value", None)
                shutil.rmtree(folder, ignore_errors=True)
                archive_copy = root / "archive"
                for f in archive_copy.rglob(path.name):  # the archive's copy, if it made one
                    if f.is_file():
                        f.unlink()
    finally:
        if own:
            shutil.rmtree(root, ignore_errors=True)
    return {"latency_s": latency, "granule_bytes": sizes, "rows": rows, "same_manifest": same}


def table(result: dict) -> str:
    out = [f"Scan per full-size granule (sized payloads), {result['latency_s'] * 1000:g} ms per "
           "request; granule 1 cold (rounds: the frugal reader's fetch rounds)",
           "", "| what | granule | seconds | requests | bytes | rounds |",
           "|---|---:|---:|---:|---:|---:|"]
    for what, per in result["rows"].items():
        for i, r in enumerate(per, 1):
            if r["error"]:
                out.append(f"| {what} | {i} | failed: {r['error']} | {r['requests']} | "
                           f"{r['bytes'] / 1e6:.2f} MB | |")
            else:
                out.append(f"| {what} | {i} | {r['seconds']:.3f} | {r['requests']} | "
                           f"{r['bytes'] / 1e6:.2f} MB | {r.get('rounds') or ''} |")
    if result["same_manifest"] is not None:
        out.append("")
        out.append(f"Same manifest from both gcov-index readers: {result['same_manifest']}")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--work", help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--no-old", action="store_true", help="skip the 4 MiB-page scan")
    p.add_argument("--no-whole-tree", action="store_true",
                   help="skip VirtualiZarr on the whole tree")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    result = measure_scan(args.n, args.latency, args.work, old=not args.no_old,
                          whole_tree=not args.no_whole_tree)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
