"""One mode-4005 granule, the most common mode in real names: 34776 x 35280 per layer (68 x 69
= 4692 chunks a layer), the whole tree of the newest product specification, thin payloads.

Built over S3 (the local API behind the credential-checking gateway, 20 ms a request), as JSON
and Parquet; then one grid group opened, the whole tree opened, and ``subset`` over a small box
(EPSG:4326). Reported: the granule's size and generation time, each step's time, requests and
bytes, the store's reference count and size.

    python -m benchmarks.mode4005 [--latency 0.02] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

from .run import GRID, Meter, _bytes, _size


def run(work: Path, latency: float) -> dict:
    from pyproj import Transformer

    from gcov_index import build, open_store
    from gcov_index.read.subset import Box, subset
    from tests.support.granules import full_size, write_granule
    from tests.support.services import LocalArchive

    t0 = time.perf_counter()
    path = write_granule(work / "granules", full_size(mode="4005"))
    res: dict = {"granule": path.name, "granule_bytes": path.stat().st_size,
                 "generate_seconds": round(time.perf_counter() - t0, 1)}
    with LocalArchive(work / "archive", latency=latency, s3_backend="files") as archive:
        (url, *_) = archive.add(path)
        access = archive.access()
        access.credentials.get()
        meter = Meter(archive)
        for fmt in ("parquet", "json"):
            store = work / f"mode4005.{fmt}"
            result, res[f"build_{fmt}"] = meter(lambda s=store: build(
                [url], s, access=access, cache=False))
            res[f"build_{fmt}"] |= {"store_bytes": _size(store),
                                    "chunk_refs": result.tree.n_refs,
                                    "bytes_referenced": result.tree.n_bytes_referenced}
            _, res[f"open_group_{fmt}"] = meter(lambda s=store: open_store(s, group=GRID,
                                                                           access=access))
            _, res[f"open_tree_{fmt}"] = meter(lambda s=store: open_store(s, access=access))
            grid = open_store(store, group=GRID, access=access).dataset
            res["shape"] = list(grid["HHHH"].shape)
            x, y = grid["xCoordinates"].values, grid["yCoordinates"].values
            to_ll = Transformer.from_crs(int(grid["projection"].attrs["epsg_code"]), 4326,
                                         always_xy=True)
            # a box of ~1 km near the middle of the frame: one to four chunks a layer
            mx, my = len(x) // 2, len(y) // 2
            lon0, lat0 = to_ll.transform(x[mx], y[my + 50])
            lon1, lat1 = to_ll.transform(x[mx + 50], y[my])
            box = Box.parse((lon0, lat0, lon1, lat1))
            series, res[f"subset_{fmt}"] = meter(lambda s=store, b=box: subset(s, b,
                                                                              access=access))
            res[f"subset_{fmt}"]["rows"] = int(series.sizes["time"])
    return res


def markdown(r: dict, latency: float) -> str:
    lines = [f"One mode-4005 granule ({r['shape'][1]} x {r['shape'][2]} per layer, "
             f"{_bytes(r['granule_bytes'])}, generated in {r['generate_seconds']} s), "
             f"{latency * 1000:.0f} ms a request:", "",
             "| step | JSON | Parquet |", "|---|---|---|"]
    for step in ("build", "open_group", "open_tree", "subset"):
        cells = []
        for fmt in ("json", "parquet"):
            m = r[f"{step}_{fmt}"]
            cells.append(f"{m['seconds']:.2f} s, {m['requests']} req, {_bytes(m['bytes'])}")
        lines.append(f"| {step.replace('_', ' ')} | {cells[0]} | {cells[1]} |")
    for fmt in ("json", "parquet"):
        b = r[f"build_{fmt}"]
        lines.append(f"\n{fmt}: {b['chunk_refs']} chunk references, store "
                     f"{_bytes(b['store_bytes'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--latency", type=float, default=0.02)
    p.add_argument("--out", default=str(Path(__file__).with_name("mode4005.json")))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    work = Path(tempfile.mkdtemp(prefix="gcov-bench-4005-"))
    try:
        r = run(work, args.latency)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "latency_s": args.latency,
           "result": r}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(markdown(r, args.latency))
    return 0


if __name__ == "__main__":
    sys.exit(main())
