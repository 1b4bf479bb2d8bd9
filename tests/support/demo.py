"""`make demo` (python -m tests.support.demo): the main job, offline, on an embedded default.

Serves the seed's search fixture from a local archive (five acquisitions, two of them released
twice, as small synthetic granules) behind a local CMR, S3 API and temporary Earthdata
credentials; searches it with asf_search as a user would (area, dates, ascending, PR), builds a
store from the latest releases' s3:// URLs, opens it and prints a subset time series.

The synthetic frame sits where the real track 172 frame 8 is, over Afar, in UTM zone 37N
(``SEED_SPEC``: 12 km x 14 km around 40.85 E, 13.26 N), so the README's coordinates, which
are the real area's, work against the demo's store as written.
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

from .cmr import SEED_AOI, SEED_END, SEED_SPEC, SEED_START, CMRService, footprint, publish_seed
from .services import LocalArchive

# the README's box (lon/lat): inside the frame, in one 512 x 512 chunk of frequencyA
BOX = (40.84, 13.25, 40.86, 13.27)


def where() -> str:
    """The demo frame's place, in words and degrees."""
    ring = footprint(SEED_SPEC)[:-1]
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    ny, nx = SEED_SPEC.shape
    return (f"track {SEED_SPEC.track} frame {SEED_SPEC.frame} over Afar: {min(lons):.3f}-"
            f"{max(lons):.3f} E, {min(lats):.3f}-{max(lats):.3f} N ({ny} x {nx} pixels (y, x) "
            f"at 20 m, EPSG:{SEED_SPEC.epsg})")


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
                echo(f"the frame: {where()}")
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
                box = grid["HHHH"].rio.clip_box(*BOX, crs="EPSG:4326")
                series = box.mean(["yCoordinates", "xCoordinates"]).values
                ny, nx = box.sizes["yCoordinates"], box.sizes["xCoordinates"]
                echo(f"HHHH mean over {BOX[0]}-{BOX[2]} E, {BOX[1]}-{BOX[3]} N ({ny} x {nx} "
                     f"pixels, {archive.s3.stats.total} S3 requests):")
                for t, gid, v in zip(grid["time"].values, grid["granuleId"].values, series,
                                     strict=True):
                    echo(f"  {str(t)[:19]}  {10 * np.log10(v):6.2f} dB  {gid[-28:]}")
        echo(f"demo done in {time.perf_counter() - t0:.1f} s; the store is {out}")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # `make demo`
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
