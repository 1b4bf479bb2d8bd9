"""validate: is a store still true to its sources?

Two checks, per granule:

1. **Source unchanged**: the object's size, ETag and modification time now, against the
   fingerprint recorded when it was scanned (size only when reading over the other protocol,
   whose server reports its own ETag).
2. **Sampled chunks, bit for bit**: for ``sample`` chunk references of each granule (a seeded
   random pick over its grid layers and cubes), the region read through the store (zarr over the
   references) and the same region read straight from the source HDF5 (h5py) must have the same
   bytes.
"""

from __future__ import annotations

import itertools
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AuthError, BadInputError, GcovIndexError, ValidationError, first_line
from ..io.access import Access, open_reader, remote_error
from ..io.fingerprint import Fingerprint, fingerprint
from ..store.layout import metadata, open_refs, store_attrs
from .open import protocol_rewriter, zarr_store

STACK_DIMS = ("time", "zeroDopplerStartTime")


@dataclass
class Finding:
    granule: str  # granuleId
    what: str


@dataclass
class ValidationReport:
    store: str
    granules: int
    chunks_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def bad_granules(self) -> list[str]:
        return sorted({f.granule for f in self.findings})

    def text(self) -> str:
        lines = [f"{self.store}: {self.granules} granules, {self.chunks_checked} sampled chunks "
                 "compared with the sources"]
        lines += [f"  {f.granule}: {f.what}" for f in self.findings]
        lines.append("ok: the store matches its sources" if self.ok else
                     f"FAILED: {len(self.findings)} problem(s) in {len(self.bad_granules)} "
                     "granule(s)")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise ValidationError(f"{self.store}: does not match its sources: "
                                  f"{', '.join(self.bad_granules)}")


def validate(store: str | Path, *, sample: int = 4, seed: int = 0, protocol: str | None = None,
             access: Access | None = None) -> ValidationReport:
    """Check every granule's source fingerprint and ``sample`` chunks per granule."""
    if sample < 0:
        raise BadInputError(f"--sample {sample}: give 0 (fingerprints only) or more chunks")
    access = access or Access.from_env()
    fo = open_refs(store)
    meta = metadata(store, fo)
    granules = store_attrs(store, meta)["granules"]
    rewrite = (protocol_rewriter(access, protocol, store, [g["url"] for g in granules])
               if protocol else None)
    report = ValidationReport(str(store), len(granules))
    by_url = {g["url"]: g for g in granules}
    reachable = {}
    with ThreadPoolExecutor(max_workers=8) as pool:  # HEADs overlap; no h5py here
        for g, url, now in pool.map(lambda g: _fingerprint(g, rewrite, access), granules):
            if isinstance(now, AuthError):  # the user's login, not the store, is at fault
                raise now
            if isinstance(now, GcovIndexError):
                report.findings.append(Finding(g["granuleId"], f"source unreachable ({now})"))
                continue
            reachable[g["url"]] = url
            keys = ("size",) if url != g["url"] else ("size", "etag", "mtime")
            changed = Fingerprint.from_dict(g["fingerprint"]).changes(now, keys)
            if changed:
                report.findings.append(Finding(g["granuleId"], "source changed since indexing ("
                                               + "; ".join(changed) + ")"))
    zs = zarr_store(store, protocol=protocol, access=access, fo=fo)
    picked: dict[str, list[str]] = {}
    for key, url in _sample(meta, zs.fs.references, list(by_url), sample, seed):
        if url in by_url and url in reachable:
            picked.setdefault(url, []).append(key)
    for url, keys in picked.items():  # each source opened once for all its sampled chunks
        report.chunks_checked += len(keys)
        for key, problem in _compare_granule(zs, meta, keys, reachable[url], access):
            report.findings.append(Finding(by_url[url]["granuleId"], f"{key}: {problem}"))
    return report


def _fingerprint(g: dict, rewrite, access: Access):
    url = rewrite(g["url"]) if rewrite else g["url"]
    try:
        return g, url, fingerprint(url, access)
    except GcovIndexError as e:
        return g, url, e


def _stacked_arrays(meta: dict) -> list[tuple[str, dict]]:
    out = []
    for k, v in meta.items():
        if not k.endswith("/.zarray"):
            continue
        path = k[: -len("/.zarray")]
        dims = meta.get(f"{path}/.zattrs", {}).get("_ARRAY_DIMENSIONS", [])
        if dims and dims[0] in STACK_DIMS and len(v["shape"]) >= 2:
            out.append((path, v))
    return sorted(out)


def _sample(meta: dict, refs, urls: list[str], sample: int, seed: int):
    """``sample`` (key, granule URL) pairs per granule, drawn without replacement among the
    chunks held by reference (a sample as large as the store checks every chunk)."""
    rng = random.Random(seed)
    arrays = _stacked_arrays(meta)
    for t, _ in enumerate(urls):
        candidates = [(path, pos) for path, z in arrays for pos in itertools.product(
            *(range(math.ceil(n / c)) for n, c in zip(z["shape"][1:], z["chunks"][1:],
                                                      strict=True)))]
        rng.shuffle(candidates)
        picked = 0
        for path, pos in candidates:
            if picked >= sample:
                break
            key = f"{path}/{'.'.join(map(str, (t, *pos)))}"
            try:
                ref = refs[key]
            except KeyError:
                continue
            if isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str):
                picked += 1
                yield key, ref[0]


def _region(z: dict, idx: list[int]) -> tuple[slice, ...]:
    return tuple(slice(i * c, min((i + 1) * c, n))
                 for i, c, n in zip(idx, z["chunks"][1:], z["shape"][1:], strict=True))


def _compare_granule(zs, meta: dict, keys: list[str], url: str, access: Access):
    """(key, problem) for each sampled chunk of one granule whose store read and source read
    differ; the source HDF5 is opened once."""
    import h5py

    try:
        obj, name = access.object_store(url)
        reader = open_reader(obj, name)
        with h5py.File(reader, "r") as f:
            for key in keys:
                problem = _compare(zs, meta, key, f)
                if problem:
                    yield key, problem
    except Exception as e:
        yield keys[0], f"reading the source failed ({remote_error(url, e)})"


def _compare(zs, meta: dict, key: str, f) -> str | None:
    import zarr

    path, _, chunk = key.rpartition("/")
    idx = [int(i) for i in chunk.split(".")]
    region = _region(meta[f"{path}/.zarray"], idx[1:])
    try:
        got = zarr.open_array(zs, path=path, mode="r", zarr_format=2)[(idx[0], *region)]
    except Exception as e:
        return f"reading through the store failed ({type(e).__name__}: {first_line(e)})"
    try:
        src = np.ascontiguousarray(f[path][region])
    except Exception as e:  # a dataset gone or changed shape in a replaced source
        return f"reading the source failed ({type(e).__name__}: {first_line(e)})"
    got = np.ascontiguousarray(got)
    if src.dtype.names and got.dtype.kind == "c":  # {r, i} compound, exposed as complex
        src = src.view(got.dtype).reshape(got.shape)
    if src.shape != got.shape or src.tobytes() != got.tobytes():
        diff = int(np.sum(src.view(np.uint8) != got.view(np.uint8))) if src.shape == got.shape \
            and src.nbytes == got.nbytes else -1
        return ("differs from the source" + (f" ({diff} of {src.nbytes} bytes)" if diff >= 0
                                              else f" (shape {got.shape} vs {src.shape})"))
    return None
