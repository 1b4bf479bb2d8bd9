"""Build time of N granules with threads, worker processes and a Dask LocalCluster, and the
start-up cost of a process pool under spawn and forkserver.

    PYTHONPATH=. python -m benchmarks.workers [N] [--full]   (N=8 small, or --full: 5 full-size thin)
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gcov_index.io.access import Access
from gcov_index.store.build import build
from tests.support.granules import GranuleSpec, full_size, write_granule


def _noop() -> int:
    import gcov_index.index.workers  # noqa: F401  what a scan worker imports first

    return os.getpid()


def startup(method: str, n: int = 2) -> float:
    t = time.perf_counter()
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context(method)) as ex:
        list(ex.map(lambda_free, range(n)))
    return time.perf_counter() - t


def lambda_free(_):
    return _noop()


def main() -> None:
    full = "--full" in sys.argv
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else (5 if full else 8)
    base = full_size(payload="thin") if full else GranuleSpec()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        paths = [str(write_granule(d, base.repeat(i))) for i in range(n)]
        for method in ("spawn", "forkserver"):
            print(f"pool start-up ({method}, 2 workers): {startup(method):.2f} s")
        from distributed import Client, LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                               dashboard_address=None)
        client = Client(cluster)
        print(f"LocalCluster start-up (2 workers): {time.perf_counter() - t:.2f} s")
        runs = {"thread": {"pool": "thread"}, "process": {"pool": "process"},
                "dask": {"client": client}}
        for name, kw in runs.items():
            t = time.perf_counter()
            build(paths, d / f"{name}.json", access=Access(), cache=False, **kw)
            print(f"{n} {'full-size thin' if full else 'small'} granules, {name}: "
                  f"{time.perf_counter() - t:.2f} s")
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
