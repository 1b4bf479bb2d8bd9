"""Fallback copy of branch `anywhere`'s tests/support/bigstore.py, used by benchmarks/run.py
only while that file has not landed (delete this one then).

A store of many granules (1000 by default) made from a few real scans, for the tests and
benchmarks of big stores.

``k`` granules are written and scanned for real; granule ``i`` of the store is real granule
``i % k`` under the name of acquisition ``i`` (a 12-day repeat of the frame): its file is a
symbolic link to the real one, placed where the archive keeps that name, and its manifest is the
real one's with the name, URL, time and identification of acquisition ``i``. So the store is what
a build of ``n`` acquisitions gives (the same arrays, chunk references per granule and
attributes) and its chunks read, through a ``LocalArchive(root, s3_backend="files")``.

    path = make_big_store(root, n=1000, fmt="parquet")         # root/big-1000.parquet
    with LocalArchive(root / "archive", s3_backend="files") as a:
        tree = gi.open_store(path, access=a.access())
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from gcov_index.discover.select import Selection
from gcov_index.granule import Granule
from gcov_index.index.manifest import GranuleManifest
from gcov_index.index.scan import scan
from gcov_index.index.stacks import merge_stacks
from gcov_index.io.access import Access
from gcov_index.io.fingerprint import Fingerprint, fingerprint
from gcov_index.product import IDENT
from gcov_index.store.build import _provenance
from gcov_index.store.write import claim
from tests.support.granules import GranuleSpec, full_size, product_time, write_granule
from tests.support.services import BUCKET, collection_of


def base_spec(size: str = "small", payload: str = "thin") -> GranuleSpec:
    """``small``: the test suite's 700 x 600 frame; ``full``: the seed granule's
    16704 x 17064 (thin or real-size ``sized`` payloads)."""
    return full_size(payload=payload) if size == "full" else GranuleSpec()


def acquisition(base: GranuleSpec, i: int) -> GranuleSpec:
    """Acquisition ``i``: ``i`` 12-day repeats after ``base`` (its cycle number kept to the
    name's three digits)."""
    return dataclasses.replace(base.repeat(i), cycle=1 + (base.cycle + i - 1) % 999)


def archive_key(name: str) -> str:
    stem = name.removesuffix(".h5")
    return f"{collection_of(stem)}/{stem}/{name}"


def _ident(m: GranuleManifest, spec: GranuleSpec) -> GranuleManifest:
    """Manifest ``m`` (a real scan) relabelled as acquisition ``spec``."""
    g = spec.granule
    name = spec.filename
    url = f"s3://{BUCKET}/{archive_key(name)}"
    values = {
        "granuleId": name.removesuffix(".h5").encode(),
        "zeroDopplerStartTime": product_time(spec.start).encode(),
        "zeroDopplerEndTime": product_time(
            spec.start + (g.end - g.start)).encode(),
        "cycleNumber": spec.cycle,
        "absoluteOrbitNumber": 1000 + spec.cycle * 173,
    }
    arrays = dict(m.arrays)
    for key, v in values.items():
        a = arrays.get(f"{IDENT}/{key}")
        if a is None or a.data is None:
            continue
        arrays[a.path] = dataclasses.replace(a, data=np.array(v, dtype=a.data.dtype).reshape(
            a.data.shape))
    start = np.datetime64(spec.start.replace(tzinfo=None), "ns")
    return dataclasses.replace(
        m, granule=Granule.parse(url), url=url, start_time=start, arrays=arrays,
        fingerprint=Fingerprint(size=m.fingerprint.size, etag=f"clone-{spec.cycle}",
                                mtime=m.fingerprint.mtime))


def big_manifests(root: str | Path, n: int = 1000, k: int = 3, size: str = "small",
                  payload: str = "thin") -> list[GranuleManifest]:
    """``n`` manifests from ``k`` real scans; the files under ``root/archive`` (the archive's
    layout, ``k`` real files in ``root/archive/_real``, ``n`` links to them)."""
    root = Path(root)
    real_dir = root / "archive" / "_real"
    base = base_spec(size, payload)
    access = Access()
    scanned = []
    for j in range(k):
        spec = base.repeat(j)
        path = real_dir / spec.filename
        if not path.exists():
            write_granule(real_dir, spec)
        scanned.append(scan(str(path), access, fingerprint(str(path), access)))
    out = []
    for i in range(n):
        spec = acquisition(base, i)
        link = root / "archive" / archive_key(spec.filename)
        if not os.path.lexists(link):
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(real_dir / base.repeat(i % k).filename)
        out.append(_ident(scanned[i % k], spec))
    return out


def make_big_store(root: str | Path, n: int = 1000, fmt: str = "parquet", k: int = 3,
                   size: str = "small", payload: str = "thin",
                   manifests: list[GranuleManifest] | None = None) -> Path:
    """The store of ``n`` acquisitions at ``root/big-N.FMT`` (made once: an existing one is
    returned), its granules under ``root/archive`` for a ``LocalArchive(root / "archive",
    s3_backend="files")``."""
    root = Path(root)
    out = root / f"big-{n}-{size}.{fmt}"
    if os.path.lexists(out):
        return out
    ms = manifests if manifests is not None else big_manifests(root, n, k, size, payload)
    tree, stacks = merge_stacks(ms)
    tree.groups[""] = tree.groups[""] | {"gcov_index": _provenance(
        stacks, Selection(selected=[m.granule for m in ms]), tree, None, [])}
    with claim(out) as c:
        c.write(tree)
    return out
