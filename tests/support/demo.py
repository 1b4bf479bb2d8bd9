"""`make demo` (python -m tests.support.demo): the main job, offline, on an embedded default.

Serves the seed's search fixture from a local archive (five acquisitions, two of them released
twice, as small synthetic granules) behind a local CMR, S3 API and temporary Earthdata
credentials; searches it with asf_search as a user would (area, dates, ascending, PR), builds a
store from the latest releases' s3:// URLs, opens it and prints a subset time series.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gcov_index.discover.search import search
from gcov_index.read.info import store_info
from gcov_index.read.open import open_store
from gcov_index.store.build import build

from .cmr import SEED_AOI, SEED_END, SEED_START, CMRService, publish_seed
from .services import LocalArchive


def run(out: Path | None = None, echo=print) -> Path:
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="gcov-index-demo-"))
    out = Path(out) if out else Path("gcov-index-demo.json")
    try:
        with LocalArchive(work / "archive") as archive:
            _, records = publish_seed(archive, work / "granules")
            with CMRService(records) as cmr:
                # the archive's endpoints, passed explicitly: nothing is read from the environment
                endpoints = archive.endpoints.with_(cmr_host=cmr.host)
                access = archive.access(endpoints)
                echo(f"local archive: CMR at {cmr.url}, S3 API at {archive.s3.url}, "
                     f"s3credentials at {endpoints.s3_credentials_url}")
                echo(f"search: --aoi '{SEED_AOI}' --start {SEED_START} --end {SEED_END} "
                     "--direction ascending --production PR --protocol s3")
                found = search(aoi=SEED_AOI, start=SEED_START, end=SEED_END,
                               direction="ascending", production="PR", protocol="s3",
                               endpoints=endpoints, session=cmr.session())
                echo(found.text(show_superseded=True).rstrip())
                result = build(found, out, access=access, cache_dir=work / "cache")
                echo(f"built {result.store}: {len(result.selection.selected)} granules, "
                     f"{result.tree.n_refs} chunk references")
                echo(store_info(out).text())
                archive.s3.stats.reset()
                tree = open_store(out, access=access)
                grid = tree["science/LSAR/GCOV/grids/frequencyA"]
                subset = grid["HHHH"].isel(yCoordinates=slice(300, 340), xCoordinates=slice(300, 340))
                series = subset.mean(["yCoordinates", "xCoordinates"]).values
                echo(f"HHHH mean over a 40 x 40 pixel box ({archive.s3.stats.total} S3 requests):")
                for t, gid, v in zip(grid["time"].values, grid["granuleId"].values, series,
                                     strict=True):
                    echo(f"  {str(t)[:19]}  {10 * np.log10(v):6.2f} dB  {gid[-28:]}")
        echo(f"demo done in {time.perf_counter() - t0:.1f} s; the store is {out}")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # `make demo`
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
