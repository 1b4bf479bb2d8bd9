"""A 1000-granule store (tests/support/bigstore.py): open one grid group, open the whole tree,
and a time series over the 1000 granules at 20 ms per request, each measured in a fresh process
(the libraries imported first: the open alone is timed), with its peak RSS.

    python -m benchmarks.big_store [--n 1000] [--size small|full] [--work DIR]

Targets (issue 11): one grid group <= 0.05 s, the whole tree <= 0.1 s, <= 300 MB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

GRID = "science/LSAR/GCOV/grids/frequencyA"
ROOT = Path(__file__).resolve().parent.parent

OPEN = """
import json, resource, sys, time
import gcov_index.read.open as o
from gcov_index.io.access import Access
store, group = sys.argv[1], sys.argv[2] or None
access = Access()
t = time.perf_counter()
tree = o.open_store(store, group=group, access=access)
first = time.perf_counter() - t
t = time.perf_counter()
o.open_store(store, group=group, access=access)
again = time.perf_counter() - t
print(json.dumps({"first": first, "again": again,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SERIES = """
import json, resource, sys, time
import numpy as np
import gcov_index.read.subset as s
from tests.support.services import LocalArchive
from pathlib import Path
store, root, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
with LocalArchive(root / "archive", s3_backend="files", latency=0.02) as a:
    access = a.access()
    access.credentials.get()
    box = s.Box.parse((406000, 4094000, 406400, 4094400), crs="EPSG:32611")
    t = time.perf_counter()
    rows = s.subset(store, box, access=access, concurrency=n)
    took = time.perf_counter() - t
    print(json.dumps({"series_s": took, "rows": int(rows.sizes["time"]),
                      "gets": a.s3.stats.requests.get("GET", 0),
                      "max_in_flight": a.s3.stats.max_in_flight,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str, *args: str, src: Path = ROOT) -> dict:
    env = os.environ | {"PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", default="small", choices=["small", "full"])
    p.add_argument("--formats", default="parquet,json")
    p.add_argument("--work", default=None)
    p.add_argument("--code", default=str(ROOT), help="the gcov-index checkout to measure "
                   "(e.g. the main branch's, for a before/after)")
    p.add_argument("--no-series", action="store_true")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from tests.support.bigstore import big_manifests, make_big_store

    work = Path(args.work or tempfile.mkdtemp(prefix="gcov-index-big-"))
    ms = None
    results = {"n": args.n, "size": args.size}
    for fmt in args.formats.split(","):
        store = work / f"big-{args.n}-{args.size}.{fmt}"
        if not os.path.lexists(store):
            ms = ms or big_manifests(work, args.n, 3, args.size)
            make_big_store(work, args.n, fmt, size=args.size, manifests=ms)
        src = Path(args.code)
        r = {"group": run(OPEN, str(store), GRID, src=src),
             "tree": run(OPEN, str(store), "", src=src)}
        if fmt == "parquet" and not args.no_series:
            r["series"] = run(SERIES, str(store), str(work), str(args.n))
        results[fmt] = r
        print(fmt, json.dumps(r), flush=True)
    if Path(args.code) == ROOT:
        (Path(__file__).parent / "big_store.json").write_text(json.dumps(results, indent=1)
                                                              + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
