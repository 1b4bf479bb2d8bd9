"""validate: is a store still true to its sources, and whole?

Four checks:

1. **The store is whole**: its metadata, every array's chunk references (count and digest) and,
   for Parquet, every refs file, against the integrity record written with it.
2. **Source unchanged**: each object's size, ETag and modification time now, against the
   fingerprint recorded when it was scanned (size only when reading over the other protocol,
   whose server reports its own ETag).
3. **Every reference**: each source's chunk index is read again (the scan's reader: metadata
   pages only, plus the few chunks the scan re-encodes) and every chunk reference of its time
   step must name the same offset and length (and every inlined chunk the same bytes); no
   reference of the store may point into the granule where the source has no chunk.
4. **Sampled chunks, bit for bit**: for ``sample`` chunk references of each granule (a seeded
   random pick over its grid layers and cubes), the region read through the store (zarr over the
   references) and the same region read straight from the source HDF5 (h5py) must have the same
   bytes.

Only a proven difference is a failure (exit 6); a source that cannot be read now (network,
refused request) is reported as unreachable (exit 3, or 4 for a refused login), never as a
mismatch.
"""

from __future__ import annotations

import base64
import itertools
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..discover.display import html_table
from ..errors import (
    AccessError,
    AuthError,
    BadInputError,
    GcovIndexError,
    ValidationError,
    first_line,
)
from ..index.manifest import GranuleManifest
from ..index.scan import scan
from ..io.access import Access, open_reader, read_failure, remote_error
from ..io.fingerprint import Fingerprint, fingerprint
from ..store.layout import StoreHandle, array_paths, opened
from .open import protocol_rewriter, zarr_store

STACK_DIMS = ("time", "zeroDopplerStartTime")
STORE = "the store itself"  # the "granule" of a finding about the store's own integrity


@dataclass
class Finding:
    """One problem with one granule (or :data:`STORE`, the store itself)."""

    granule: str  # granuleId (or STORE)
    what: str


@dataclass
class ValidationReport:
    """What :func:`validate` found: a short ``repr``, a table in a notebook, ``text()`` for
    the CLI."""

    store: str
    granules: int
    chunks_checked: int = 0
    refs_checked: int = 0
    integrity: str = "whole"
    findings: list[Finding] = field(default_factory=list)  # proven differences
    unreachable: list[Finding] = field(default_factory=list)  # could not be checked now

    @property
    def ok(self) -> bool:
        """Every check passed: no difference found, every source reached."""
        return not self.findings and not self.unreachable

    def _verdict(self) -> str:
        if self.findings:
            return (f"FAILED: {len(self.findings)} problem(s) in {len(self.bad_granules)} "
                    "granule(s)")
        if self.unreachable:
            return f"NOT CHECKED: {len(self.unreachable)} source(s) unreachable"
        return "ok"

    def __repr__(self) -> str:
        return (f"ValidationReport({self.store}: {self._verdict()}; {self.granules} granules, "
                f"{self.refs_checked} references and {self.chunks_checked} chunks compared)")

    def _repr_html_(self) -> str:
        rows = ([{"granule": f.granule, "result": "differs", "what": f.what}
                 for f in self.findings]
                + [{"granule": f.granule, "result": "not checked", "what": f.what}
                   for f in self.unreachable])
        return html_table(
            f"gcov-index validate: {self.store}",
            [("verdict", self._verdict()), ("granules", self.granules),
             ("compared", f"{self.refs_checked} chunk references, {self.chunks_checked} "
                          "sampled chunks"), ("integrity record", self.integrity)],
            ("granule", "result", "what"), rows)

    @property
    def bad_granules(self) -> list[str]:
        return sorted({f.granule for f in self.findings})

    def text(self) -> str:
        lines = [f"{self.store}: {self.granules} granules, {self.refs_checked} chunk references "
                 f"and {self.chunks_checked} sampled chunks compared with the sources",
                 f"  integrity record: {self.integrity}"]
        lines += [f"  {f.granule}: {f.what}" for f in self.findings]
        lines += [f"  {f.granule}: not checked: {f.what}" for f in self.unreachable]
        if self.findings:
            lines.append(f"FAILED: {len(self.findings)} problem(s) in {len(self.bad_granules)} "
                         "granule(s)" + (" (and the store itself)" if STORE in self.bad_granules
                                         else ""))
        elif self.unreachable:
            lines.append(f"NOT CHECKED: {len(self.unreachable)} source(s) unreachable")
        else:
            lines.append("ok: the store matches its sources")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`ValidationError` (exit 6) for a proven difference, else
        :class:`AccessError` (exit 3) for a source not reached; nothing when ``ok``."""
        if self.findings:
            names = [g for g in self.bad_granules if g != STORE]
            damaged = next((f.what for f in self.findings if f.granule == STORE), None)
            parts = ([", ".join(names)] if names else []) + (
                [f"the store itself is damaged ({damaged})"] if damaged else [])
            raise ValidationError(f"{self.store}: does not match its sources: "
                                  + "; ".join(parts))
        if self.unreachable:
            names = sorted({f.granule for f in self.unreachable})
            raise AccessError(f"{self.store}: {len(names)} source(s) could not be checked: "
                              f"{', '.join(names)} ({self.unreachable[0].what})")


def validate(store: str | Path, *, sample: int = 4, seed: int = 0, protocol: str | None = None,
             access: Access | None = None) -> ValidationReport:
    """Check that a store is whole and still true to its sources.

    Four checks (the module's docstring has the detail): the store against its own integrity
    record; each source's size, ETag and modification time against the fingerprint taken when
    it was scanned; every chunk reference against the source's chunk index, read again; and
    ``sample`` chunks per granule read through the store and straight from the source HDF5,
    byte for byte.

    Parameters
    ----------
    store
        A JSON or Parquet store: a path, or an ``s3://`` or ``https://`` URL (Icechunk stores
        are refused: Icechunk checks its own snapshots).
    sample
        Chunks compared per granule (0: fingerprints and references only).
    seed
        Which chunks are sampled (the same seed picks the same chunks).
    protocol
        ``"s3"`` or ``"https"``: read the sources that way whatever URLs the store holds
        (default: as the store says).
    access
        Credentials and endpoints (default :meth:`Access.from_env`).

    Returns
    -------
    ValidationReport
        Every proven difference (``findings``) and every source that could not be reached now
        (``unreachable``), by granule; ``ok`` when there are none. In a notebook it shows as a
        table; :meth:`ValidationReport.raise_if_failed` turns it into the CLI's errors.

    Raises
    ------
    BadInputError
        A negative ``sample``, an Icechunk store, a store that is not gcov-index's.
    """
    if sample < 0:
        raise BadInputError(f"--sample {sample}: give 0 (fingerprints only) or more chunks")
    if str(store).rstrip("/").lower().endswith(".icechunk"):
        raise BadInputError(f"{store}: validate does not check Icechunk stores yet (info and "
                            "subset read them; Icechunk checks its own snapshots)")
    access = access or Access.from_env()
    with opened(store, verify=False) as handle:  # one version; damage is reported below
        granules = handle.attrs["granules"]
        rewrite = (protocol_rewriter(access, protocol, store, [g["url"] for g in granules])
                   if protocol else None)
        report = ValidationReport(str(store), len(granules))
        _integrity(handle, granules, report)
        reachable = _fingerprints(granules, rewrite, access, report)
        _references(handle, granules, reachable, access, report)
        try:
            _sampled(handle, granules, reachable, sample, seed, protocol, access, report)
        except ValidationError as e:  # a refs file found missing or altered as it was read
            if not any(f.granule == STORE for f in report.findings):
                report.findings.append(Finding(STORE, first_line(e)))
    return report


# -- 1. the store is whole ------------------------------------------------------------------------
def _integrity(handle: StoreHandle, granules: list[dict], report: ValidationReport) -> None:
    if handle.record is None:
        report.integrity = "not recorded (written by an older gcov-index: build it again)"
    problems = handle.problems(deep=True)
    if problems:
        report.integrity = f"DAMAGED ({len(problems)} problem(s))"
    report.findings += [Finding(STORE, p) for p in problems]  # URL templates included


# -- 2. source unchanged --------------------------------------------------------------------------
def _gone(error: GcovIndexError) -> bool:
    """A source that is certainly not there any more (404, no such file), as opposed to one
    that could not be reached: io.access classifies it (``kind``)."""
    return getattr(error, "kind", None) == "missing"


def _fingerprints(granules, rewrite, access: Access, report: ValidationReport) -> dict:
    """granule URL -> (URL read now, Fingerprint now) for every source reached and unchanged
    or changed; unreachable and changed sources are reported."""
    reachable = {}
    with ThreadPoolExecutor(max_workers=8) as pool:  # HEADs overlap; no h5py here
        for g, url, now in pool.map(lambda g: _fingerprint(g, rewrite, access), granules):
            if isinstance(now, AuthError):  # the user's login, not the store, is at fault
                raise now
            if isinstance(now, GcovIndexError):
                if _gone(now):  # the store points at a source that is not there: a mismatch
                    report.findings.append(Finding(g["granuleId"], f"source gone ({now})"))
                else:  # not reachable now: not checked, not a mismatch
                    report.unreachable.append(Finding(g["granuleId"], f"source unreachable "
                                                                      f"({now})"))
                continue
            keys = ("size",) if url != g["url"] else ("size", "etag", "mtime")
            try:
                then = Fingerprint.from_dict(g["fingerprint"])
            except (KeyError, TypeError, ValueError):
                report.findings.append(Finding(g["granuleId"], "no fingerprint in the store"))
                continue
            changed = then.changes(now, keys)
            if changed:
                report.findings.append(Finding(g["granuleId"], "source changed since indexing ("
                                               + "; ".join(changed) + ")"))
                continue  # its references and bytes would only say the same
            reachable[g["url"]] = (url, now)
    return reachable


def _fingerprint(g: dict, rewrite, access: Access):
    url = rewrite(g["url"]) if rewrite else g["url"]
    try:
        return g, url, fingerprint(url, access)
    except GcovIndexError as e:
        return g, url, e


# -- 3. every reference against the source's chunk index ------------------------------------------
def _references(handle: StoreHandle, granules, reachable: dict, access: Access,
                report: ValidationReport) -> None:
    meta = handle.meta
    store_refs: dict[str, object] = {}
    for path in array_paths(meta):
        store_refs.update(handle.array_refs(path))
    by_token: dict[str, list[str]] = {}
    for key, v in store_refs.items():
        if isinstance(v, list) and v and isinstance(v[0], str):
            by_token.setdefault(v[0], []).append(key)
    todo = [(t, g) for t, g in enumerate(granules) if g["url"] in reachable]
    place = _places(handle)

    def rescan(item):
        t, g = item
        url, fp = reachable[g["url"]]
        try:
            return t, g, scan(url, access, fp)
        except AuthError:
            raise
        except GcovIndexError as e:  # unchanged source that cannot be read now
            return t, g, e
        except Exception as e:
            return t, g, remote_error(url, e)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for t, g, m in pool.map(rescan, todo):
            if isinstance(m, GcovIndexError):
                target = report.findings if _gone(m) else report.unreachable
                target.append(Finding(g["granuleId"], f"chunk index not read ({m})"))
                continue
            expected = _expected_refs(m, t, meta, *place.get(t, ("", t, 0)))
            report.refs_checked += len(expected)
            wrong = [k for k, v in expected.items() if store_refs.get(k) != v]
            extra = [k for k in by_token.get(f"{{{{u{t}}}}}", []) if k not in expected]
            if wrong or extra:
                first = (wrong or extra)[0]
                got, want = store_refs.get(first), expected.get(first)
                report.findings.append(Finding(g["granuleId"], (
                    f"{len(wrong) + len(extra)} of {len(expected)} chunk references differ "
                    f"from the source's chunk index (first: {first}: store {_short(got)}, "
                    f"source {_short(want)})")))


def _places(handle: StoreHandle) -> dict[int, tuple[str, int, int]]:
    """Granule ``{{uT}}`` -> (its stack's group prefix, its time step in the stack, the
    stack's first granule)."""
    out = {}
    for st in handle.stacks:
        members = [i for i, _ in st["members"]]
        prefix = f"{st['group']}/" if st["group"] else ""
        for step, i in enumerate(members):
            out[i] = (prefix, step, members[0])
    return out


def _expected_refs(m: GranuleManifest, t: int, meta: dict, prefix: str = "", step: int | None = None,
                   first: int = 0) -> dict[str, object]:
    """What the store must hold for granule ``t`` (time step ``step`` of the stack under
    ``prefix``), as a JSON store writes it."""
    step = t if step is None else step
    out: dict[str, object] = {}
    for name, a in m.arrays.items():
        if not a.virtual:
            continue  # values read at scan time and inlined: not references
        path = prefix + name
        z = meta.get(f"{path}/.zarray")
        stacked = z is None or len(z["shape"]) == len(a.shape) + 1
        token = f"{{{{u{t if stacked else first}}}}}"  # an array stored once: the stack's first

        def key(k: str, path=path, stacked=stacked) -> str:
            if not stacked:
                return f"{path}/{k}"
            return f"{path}/{step}.{k}" if k else f"{path}/{step}"

        for k, (offset, length) in a.refs.items():
            out[key(k)] = [token, offset, length]
        for k, b in a.inline.items():
            out[key(k)] = "base64:" + base64.b64encode(b).decode()
    return out


def _short(v) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        return f"{len(v)}-character inline chunk" if v.startswith("base64:") else v[:40]
    return str(v)


# -- 4. sampled chunks, bit for bit ---------------------------------------------------------------
def _sampled(handle: StoreHandle, granules, reachable: dict, sample: int, seed: int,
             protocol: str | None, access: Access, report: ValidationReport) -> None:
    if not sample or not reachable:
        return
    by_url = {g["url"]: g for g in granules}
    zs = zarr_store(handle, protocol=protocol, access=access)
    picked: dict[str, list[str]] = {}
    places = _places(handle)
    prefix_of = {g["url"]: places.get(t, ("",))[0] for t, g in enumerate(granules)}
    for key, url in _sample(handle.meta, zs.fs.references, list(by_url), sample, seed, places):
        if url in reachable:
            picked.setdefault(url, []).append(key)
    for url, keys in picked.items():  # each source opened once for all its sampled chunks
        report.chunks_checked += len(keys)
        gid = by_url[url]["granuleId"]
        for key, problem, proven in _compare_granule(zs, handle.meta, keys, reachable[url][0],
                                                     access, prefix_of.get(url, "")):
            (report.findings if proven else report.unreachable).append(Finding(gid, f"{key}: "
                                                                               f"{problem}"))


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


def _sample(meta: dict, refs, urls: list[str], sample: int, seed: int,
            places: dict[int, tuple[str, int, int]]):
    """``sample`` (key, granule URL) pairs per granule, drawn without replacement among the
    chunks held by reference (a sample as large as the store checks every chunk)."""
    rng = random.Random(seed)
    arrays = _stacked_arrays(meta)
    for t, _ in enumerate(urls):
        prefix, step, _first = places.get(t, ("", t, 0))
        candidates = [(path, pos) for path, z in arrays if path.startswith(prefix)
                      for pos in itertools.product(
            *(range(math.ceil(n / c)) for n, c in zip(z["shape"][1:], z["chunks"][1:],
                                                      strict=True)))]
        rng.shuffle(candidates)
        picked = 0
        for path, pos in candidates:
            if picked >= sample:
                break
            key = f"{path}/{'.'.join(map(str, (step, *pos)))}"
            try:
                ref = refs[key]
            except KeyError:
                continue
            if isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str):
                picked += 1
                yield key, urls[t] if ref[0] not in urls else ref[0]


def _region(z: dict, idx: list[int]) -> tuple[slice, ...]:
    return tuple(slice(i * c, min((i + 1) * c, n))
                 for i, c, n in zip(idx, z["chunks"][1:], z["shape"][1:], strict=True))


def _compare_granule(zs, meta: dict, keys: list[str], url: str, access: Access,
                     prefix: str = ""):
    """(key, problem, proven) for each sampled chunk of one granule whose store read and
    source read differ, or could not be made; the source HDF5 is opened once."""
    import h5py

    reader = None
    try:
        obj, name = access.object_store(url)
        reader = open_reader(obj, name, url)
        with h5py.File(reader, "r") as f:
            for key in keys:
                problem = _compare(zs, meta, key, f, url, reader, prefix)
                if problem:
                    yield key, *problem
    except AuthError:
        raise
    except Exception as e:  # an unchanged source that cannot be read now
        failed = read_failure(url, e, reader) or remote_error(url, e)
        if isinstance(failed, AuthError):
            raise failed from None
        yield keys[0], f"reading the source failed ({failed})", False


def _compare(zs, meta: dict, key: str, f, url: str, reader, prefix: str = ""
             ) -> tuple[str, bool] | None:
    """(problem, proven) when the chunk read through the store and the region read from the
    source differ or could not both be read; proven only when bytes arrived and differ."""
    import zarr

    path, _, chunk = key.rpartition("/")
    idx = [int(i) for i in chunk.split(".")]
    region = _region(meta[f"{path}/.zarray"], idx[1:])
    try:
        got = zarr.open_array(zs, path=path, mode="r", zarr_format=2)[(idx[0], *region)]
    except Exception as e:
        err = read_failure(url, e)  # a read that failed on the way: refused, missing, lost
        if isinstance(err, AuthError):
            raise err from None
        if err is not None:
            return f"reading through the store failed ({err})", False
        return f"reading through the store failed ({type(e).__name__}: {first_line(e)})", True
    try:
        src = np.ascontiguousarray(f[path.removeprefix(prefix)][region])
    except KeyError as e:  # a dataset gone from a source whose fingerprint did not change
        return f"not in the source ({first_line(e)})", True
    except Exception as e:
        failed = read_failure(url, e, reader) or remote_error(url, e)
        if isinstance(failed, AuthError):
            raise failed from None
        return f"reading the source failed ({failed})", False
    got = np.ascontiguousarray(got)
    if src.dtype.names and got.dtype.kind == "c":  # {r, i} compound, exposed as complex
        src = src.view(got.dtype).reshape(got.shape)
    if src.shape != got.shape or src.tobytes() != got.tobytes():
        diff = int(np.sum(src.view(np.uint8) != got.view(np.uint8))) if src.shape == got.shape \
            and src.nbytes == got.nbytes else -1
        return ("differs from the source" + (f" ({diff} of {src.nbytes} bytes)" if diff >= 0
                                              else f" (shape {got.shape} vs {src.shape})")), True
    return None
