"""The ``gcov-index`` command: a thin shell over the Python API.

Every failure ends with exactly one line on stderr, ``gcov-index: error: ...``, naming the input,
and the exit code of :mod:`gcov_index.errors` (usage errors too: argparse's usage text is left
out). Inputs are checked before any work starts: a store to read, an output to write (its
directory writable, its name not too long), the cache directory, the granules and lists given.
Anything unexpected is one line as well (exit 1); ``GCOV_INDEX_DEBUG=1`` prints the traceback
and lets libraries' warnings and logs through.

Logging: every command takes ``-v`` (the ``gcov_index`` logger at INFO: what the command is
doing), ``-vv`` (DEBUG: each request, retry and credential fetch) and ``--quiet`` (ERROR; no
progress bar); by default WARNING. Records go to stderr as ``gcov-index: LEVEL: ...``, through
one handler that passes only the ``gcov_index`` loggers' records (every logger's with
``GCOV_INDEX_DEBUG``). The error of a failed command is never a log record: it is the one
``gcov-index: error:`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import stat
import sys
from pathlib import Path

from ._log import redacting
from ._version import __version__
from .errors import AccessError, AuthError, BadInputError, GcovIndexError, first_line

COMMANDS = ("search", "build", "subset", "validate", "info")
COMMAND_METAVAR = "{" + ",".join(COMMANDS) + "}"
DEBUG_ENV = "GCOV_INDEX_DEBUG"
# writers put temporary and lock files beside an output, named after it with a few more
# characters; an output name longer than the file system's limit minus these is refused early
NAME_MARGIN = 40
DASK_TIMEOUT = 10.0  # seconds to reach a --dask scheduler ($GCOV_INDEX_DASK_TIMEOUT)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (a BadInputError), not the usage text."""

    def error(self, message: str):
        if message.startswith(f"the following arguments are required: {COMMAND_METAVAR}"):
            message = f"give a command: {', '.join(COMMANDS)}"
        raise BadInputError(f"{message} (see '{self.prog} --help')")


def _log_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("logging (to stderr)").add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="what the command is doing; -vv: each request, retry and credential "
                   "fetch (secrets redacted)")
    g.add_argument("-q", "--quiet", action="store_true",
                   help="errors only (and no progress bar)")


def _access_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--s3-endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--token-file", help="file holding the Earthdata Login token "
                   "(default: $EARTHDATA_TOKEN, else ~/.netrc)")
    p.add_argument("--s3-credentials-url", help="temporary S3 credentials endpoint "
                   "(default: NISAR's s3credentials)")


def _search_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search (asf_search's names in brackets, also accepted in "
                             "kebab case, e.g. --flight-direction)")
    g.add_argument("--aoi", "--intersects-with", help="area of interest: WKT, "
                   "minx,miny,maxx,maxy in degrees, or a GeoJSON file [intersectsWith]")
    g.add_argument("--start", help="acquired at or after, ISO 8601 date or time, UTC [start]")
    g.add_argument("--end", help="acquired at or before; a date alone includes that day [end]")
    g.add_argument("--direction", "--flight-direction",
                   help="ascending or descending [flightDirection]")
    g.add_argument("--track", "--relative-orbit",
                   help="track, the relative orbit 1-173 [relativeOrbit]")
    g.add_argument("--frame", help="frame number 1-176 [frame]")
    g.add_argument("--production", "--production-configuration",
                   help="PR, UR or both (default both) [productionConfiguration]")
    g.add_argument("--collection", "--short-name", help="CMR collection short name, e.g. "
                   "NISAR_L2_GCOV_BETA_V1 (default: every NISAR GCOV collection) [shortName]")
    g.add_argument("--max-results", help="at most this many CMR records [maxResults]")
    g.add_argument("--maturity", "--data-maturity", help="BETA, PROVISIONAL or VALIDATED "
                   "(comma-separated for several); with granules given, refuses others "
                   "[dataMaturity]")
    g.add_argument("--polarization", "--main-band-polarization",
                   help="frequency A polarization: HH, VV, HH+HV, VV+VH, HH+HV+VH+VV, ... (a "
                   "name's DH, SH, ... too; comma-separated for several) [mainBandPolarization]")
    g.add_argument("--side-band-polarization", help="frequency B polarization, as "
                   "--polarization [sideBandPolarization]")
    g.add_argument("--frame-coverage", help="full or partial frames [frameCoverage]")
    g.add_argument("--range-bandwidth", help="MHz, frequency A+B: 20+5, 40+5, 40, 77, ... "
                   "(comma-separated for several) [rangeBandwidth]")
    g.add_argument("--joint-observation", help="true or false: joint L- and S-band "
                   "acquisitions [jointObservation]")
    g.add_argument("--asf", action="append", metavar="KEY=VALUE", help="any other asf_search "
                   "search keyword, checked by asf_search (e.g. absoluteOrbit=100..200); a list "
                   "comma-separated, a range A..B; repeat for more")
    g.add_argument("--protocol", default="https", choices=("https", "s3"),
                   help="which URL of each granule is indexed (https)")
    g.add_argument("--cmr-host", help="CMR host (default: $GCOV_INDEX_CMR_HOST, else NASA's)")


_SEARCH_FIELDS = ("aoi", "start", "end", "direction", "track", "frame", "production",
                  "collection", "max_results")


_ASF_OPTIONS = {"polarization": "mainBandPolarization",
                "side_band_polarization": "sideBandPolarization",
                "frame_coverage": "frameCoverage", "range_bandwidth": "rangeBandwidth",
                "joint_observation": "jointObservation"}


def _has_search(args) -> bool:
    return any(getattr(args, k) is not None for k in (*_SEARCH_FIELDS, *_ASF_OPTIONS, "asf"))


def _asf_keywords(args) -> dict[str, str]:
    """The asf_search keywords given by their options and by ``--asf KEY=VALUE`` (a list
    keyword repeated: its values joined), checked later by SearchQuery."""
    from .discover.query import ASF_ALIASES

    out: dict[str, str] = {}
    for dest, key in _ASF_OPTIONS.items():
        if getattr(args, dest) is not None:
            out[key] = getattr(args, dest)
    for item in args.asf or []:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise BadInputError(f"--asf {item!r}: give KEY=VALUE, an asf_search keyword and "
                                "its value (e.g. --asf absoluteOrbit=100..200)")
        if key in out:
            option = ASF_ALIASES.get(key)
            if option and getattr(args, option[2:].replace("-", "_"), None) is not None:
                raise BadInputError(f"--asf {key}: the same as {option} (give one of them)")
            out[key] += "," + value  # a list keyword repeated; asf_search checks the rest
        else:
            out[key] = value
    return out


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not a whole number") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"{n}: must be {low} or more")
        return n

    parse.__name__ = "whole number"
    return parse


def _search(args):
    from .discover.query import SearchQuery
    from .discover.search import search
    from .io.endpoints import Endpoints

    query = SearchQuery.from_options(**{k: getattr(args, k) for k in _SEARCH_FIELDS},
                                     maturity=args.maturity, asf=_asf_keywords(args))
    return search(query, protocol=args.protocol,
                  endpoints=Endpoints.from_env(cmr_host=args.cmr_host))


def _access(args):
    from .io.access import Access

    if args.token_file:  # a binary file is not a token (find_token reports the rest)
        try:
            Path(args.token_file).expanduser().read_bytes().decode()
        except UnicodeDecodeError:
            raise AuthError(f"{args.token_file}: the token file is not text (not UTF-8)") \
                from None
        except (OSError, ValueError):
            pass
    return Access.from_env(token_file=args.token_file, s3_endpoint=args.s3_endpoint,
                           s3_credentials_url=args.s3_credentials_url)


# ---------------------------------------------------------------------------------------------
# inputs and outputs, checked before any work starts


def _read_inputs(items: list[str]) -> tuple[list[str], dict[str, str]]:
    """The granules given, ``@FILE`` lists read (one path or URL a line); and where each
    listed one came from (``line 3 of @list.txt``), for messages."""
    out: list[str] = []
    origin: dict[str, str] = {}
    for item in items:
        if not item.startswith("@"):
            out.append(item)
            continue
        name = item[1:]
        if not name:
            raise BadInputError("@: give a file after @ (a list of granules, one a line)")
        try:
            data = Path(name).expanduser().read_bytes()
        except OSError as e:
            raise BadInputError(f"{item}: cannot read the list ({e.strerror})") from None
        except ValueError as e:  # a NUL in the name
            raise BadInputError(f"{item!r}: cannot read the list ({e})") from None
        try:
            text = data.decode()
        except UnicodeDecodeError as e:
            raise BadInputError(f"{item}: the list is not UTF-8 text (byte {data[e.start]:#04x} "
                                f"at offset {e.start})") from None
        if "\0" in text:
            raise BadInputError(f"{item}: the list is not text (it holds NUL bytes)")
        lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]
        if not lines:
            raise BadInputError(f"{item}: the list is empty (one granule path or URL a line)")
        for n, ln in lines:
            out.append(ln)
            origin.setdefault(ln, f"line {n} of {item}")
    return out, origin


def _check_granules(inputs: list[str], origin: dict[str, str]) -> None:
    """Each input a path or an s3/http(s) URL, each local granule a readable file, and at least
    one GCOV data granule among them (what build would scan), or one line naming them."""
    from .discover.select import select_latest

    def label(item: str) -> str:
        return f"{item} ({origin[item]})" if item in origin else item

    for item in inputs:
        scheme, sep, _ = item.partition("://")
        if sep and scheme.lower() not in ("file", "s3", "http", "https"):
            raise BadInputError(f"{label(item)}: unsupported URL scheme {scheme!r} (use a path, "
                                "s3:// or https://)")
    selection = select_latest(inputs)  # names checked: another product's name is refused
    # the local granules build would read are files there (named off the convention too:
    # build reads what they are from their identification group)
    for url in [g.url for g in selection.selected] + selection.unnamed:
        if "://" not in url or url.startswith("file://"):
            _check_local_file(url, label(url))
    if not selection.selected and not selection.unnamed:
        listed = [i for i in inputs if i in origin]
        lists = ", ".join(sorted({origin[i].split(" of ", 1)[1] for i in listed}))
        where = (f"the {len(inputs)} inputs" if not listed else
                 f"{lists} ({len(inputs)} lines)" if len(listed) == len(inputs) else
                 f"the {len(inputs)} inputs ({lists} and arguments)")
        shown = ", ".join(inputs[:3]) + (", ..." if len(inputs) > 3 else "")
        raise BadInputError(f"no GCOV data granule among {where}: {shown} (a data granule is "
                            "NISAR_L2_..._GCOV_....h5; QA_STATS and browse files are skipped)")


def _check_local_file(item: str, label: str) -> None:
    path = Path(item.removeprefix("file://")).expanduser()
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise AccessError(f"{label}: no such file") from None
    except OSError as e:
        raise BadInputError(f"{label}: cannot read it ({e.strerror})") from None
    except ValueError as e:
        raise BadInputError(f"{label!r}: not a path ({e})") from None
    if stat.S_ISDIR(mode):
        raise BadInputError(f"{label}: is a directory, not a granule")
    if not stat.S_ISREG(mode):
        raise BadInputError(f"{label}: not a regular file")


def _check_store(store: str) -> None:
    """A store to read: named .json or .parquet, there, and of the right kind (a JSON store is
    a file, a Parquet store a directory); what is inside is checked when it is opened."""
    from .store.layout import store_format

    if not store.strip():
        raise BadInputError(f"store {store!r}: give the path of a NAME.json or NAME.parquet store")
    fmt = store_format(store)
    if store.lower().startswith(("s3://", "https://", "http://")):
        return  # a store in a bucket or behind https: checked when it is opened
    try:
        mode = Path(store).expanduser().stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        if Path(store).expanduser().is_symlink():  # a Parquet link without its version folder:
            return  # the store layer says which version is missing and what to do
        raise AccessError(f"{store}: no such store") from None
    except OSError as e:
        raise BadInputError(f"{store}: cannot read the store ({e.strerror})") from None
    except ValueError as e:
        raise BadInputError(f"{store!r}: not a path ({e})") from None
    if fmt == "json" and stat.S_ISDIR(mode):
        raise BadInputError(f"{store}: is a directory, not a JSON store")
    if fmt == "json" and not stat.S_ISREG(mode):
        raise BadInputError(f"{store}: not a regular file")
    if fmt == "icechunk" and not stat.S_ISDIR(mode):
        raise BadInputError(f"{store}: is a file, not an Icechunk repository (a directory)")
    if fmt == "parquet" and not stat.S_ISDIR(mode):
        raise BadInputError(f"{store}: is a file, not a Parquet store (a directory)")


def _existing_ancestor(path: Path) -> Path:
    for p in (path, *path.parents):
        try:
            if p.exists() or p.is_symlink():
                return p
        except OSError:
            continue
    return Path(".")


def _check_writable_dir(option: str, directory: Path, what: str) -> None:
    """``directory`` (or the nearest existing one above it, where it would be made) is a
    directory that accepts a new file: a probe file is made there and removed at once."""
    import tempfile

    base = _existing_ancestor(directory)
    if not base.is_dir():
        raise BadInputError(f"{option} {what}: {base} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gcov-index-probe.", dir=base)
    except OSError as e:
        raise BadInputError(f"{option} {what}: cannot write in {base} ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def _check_output(option: str, out: str, *, directory: bool = False) -> None:
    """An output we will write: a name not too long, not an existing thing of the other kind
    (a directory for a file, a file for a Parquet directory), in a writable directory."""
    if not out.strip():
        raise BadInputError(f"{option} {out!r}: give a file name")
    path = Path(out.rstrip("/")).expanduser()
    name = os.fsencode(path.name)
    try:
        limit = os.pathconf(_existing_ancestor(path.parent), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(name) > limit - NAME_MARGIN:
        shown = path.parent / f"{path.name[:20]}...{path.suffix}"
        raise BadInputError(f"{option} {shown}: file name too long ({len(name)} bytes; at most "
                            f"{limit - NAME_MARGIN} here)")
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as e:
        raise BadInputError(f"{option} {out}: cannot write it ({e.strerror})") from None
    except ValueError as e:
        raise BadInputError(f"{option} {out!r}: not a path ({e})") from None
    if mode is not None and stat.S_ISDIR(mode) and not directory:
        raise BadInputError(f"{option} {out}: is a directory")
    if mode is not None and not stat.S_ISDIR(mode) and directory:
        raise BadInputError(f"{option} {out}: is a file, not a Parquet store (a directory)")
    _check_writable_dir(option, path.parent, out)


def _check_cache_dir(given: str | None) -> None:
    from .index.cache import default_cache_dir

    directory = Path(given).expanduser() if given else default_cache_dir()
    option = "--cache-dir" if given else "the cache directory"
    if not given and os.environ.get("GCOV_INDEX_CACHE"):
        option = "$GCOV_INDEX_CACHE"
    try:
        is_dir, exists = directory.is_dir(), directory.exists()
    except OSError as e:
        raise BadInputError(f"{option} {directory}: cannot use it ({e.strerror})") from None
    if exists and not is_dir:
        raise BadInputError(f"{option} {directory}: not a directory")
    _check_writable_dir(option, directory if exists else directory.parent, str(directory))


def cmd_search(args) -> int:
    print(_search(args).text(args.format, args.show_superseded), end="")
    return 0


def cmd_build(args) -> int:
    from .store.build import build
    from .store.layout import store_format
    from .store.write import check_out

    if args.update is not None:
        return _update(args)
    if args.out is None:
        raise BadInputError("build: --out is required (NAME.json or NAME.parquet), or "
                            "--update STORE")
    if args.granules and _has_search(args):
        raise BadInputError("give granules or a search (--aoi, --start, ...), not both")
    if not args.granules and not _has_search(args):
        raise BadInputError("nothing to index: give granules, @FILE, or a search "
                            "(--aoi, --start, --end, ...)")
    # a bad --out or cache fails before the search and the scan
    if not args.out.strip():
        raise BadInputError("--out '': give the store's name, NAME.json or NAME.parquet")
    if store_format(args.out) == "icechunk":  # a folder or an s3:// prefix: the store layer
        if not args.out.startswith("s3://"):  # checks it (s3://: when the build claims it)
            check_out(Path(args.out).expanduser(), "icechunk")
    elif not args.out.lower().startswith(("s3://", "https://", "http://")):  # remote: at claim
        _check_output("--out", args.out, directory=store_format(args.out) == "parquet")
        check_out(Path(args.out).expanduser(), store_format(args.out))  # only a store replaced
    if not args.no_cache and not args.dry_run:
        _check_cache_dir(args.cache_dir)
    if args.granules:
        inputs, origin = _read_inputs(args.granules)
        _check_granules(inputs, origin)
    else:
        inputs = _search(args)
    if args.dry_run:
        print(_dry_run(inputs, args.out, args.maturity), end="")
        return 0
    access = _access(args)
    with _dask_client(args.dask) as client:
        result = build(inputs, args.out, access=access,
                       cache=not args.no_cache, cache_dir=args.cache_dir,
                       workers=args.workers, pool="thread" if args.threads else None,
                       client=client, progress=_progress(args),
                       maturity=args.maturity, replace=args.replace)
    sel = result.selection
    if result.unchanged:
        print(f"{result.store}: nothing new, left as it was ({result.kept} granules kept)")
        return 0
    print(f"wrote {result.store}: {len(sel.selected)} granules, {result.tree.n_refs} chunk "
          f"references ({result.scanned} scanned, {result.cached} from the cache)")
    if result.kept or result.replaced:  # an existing store: what changed
        _print_changes(result)
    if len(result.stacks) > 1:
        for st in result.stacks:
            print(f"  stack {st['id']}: {st['granules']} granules, track {st['track']}"
                  f"{st['direction']} frame {st['frame']}, {st['coverage']} frame, group "
                  f"{st['group']}/")
    for w in result.warnings:
        print(f"gcov-index: warning: {w}", file=sys.stderr)
    for n in getattr(result, "notes", []):
        print(f"gcov-index: note: {n}", file=sys.stderr)
    superseded = [(o.granule, k.granule) for o, k in getattr(inputs, "superseded", [])]
    for old, new in superseded + sel.superseded:
        print(f"  superseded {old.stem} (by {new.crid} {new.counter:03d})")
    for s in sel.skipped:
        print(f"  skipped {s} (not a data granule)")
    return 0


def _print_changes(result) -> None:
    print(f"  {len(result.added)} added, {len(result.replaced)} replaced, {result.kept} kept")
    for g in result.added:
        print(f"  added {g}")
    for r in result.replaced:
        print(f"  replaced {r['granuleId']} (by {r['by']})")


def _update(args) -> int:
    """``build --update STORE``: the store's saved search again, what is new added."""
    from .store.build import build
    from .store.update import saved_search

    if args.granules or _has_search(args) or args.replace:
        raise BadInputError("--update repeats the store's saved search: give no granules, "
                            "search options or --replace")
    if args.out is not None and Path(args.out).expanduser() != Path(args.update).expanduser():
        raise BadInputError(f"--update {args.update} writes that store: drop --out {args.out}")
    _check_store(args.update)
    if not args.no_cache and not args.dry_run:
        _check_cache_dir(args.cache_dir)
    found = saved_search(Path(args.update).expanduser(), cmr_host=args.cmr_host)
    if args.dry_run:
        print(found.text("table", show_superseded=True) + f"would update {args.update}")
        return 0
    access = _access(args)
    with _dask_client(args.dask) as client:
        result = build(found, Path(args.update).expanduser(), access=access,
                       cache=not args.no_cache, cache_dir=args.cache_dir, workers=args.workers,
                       pool="thread" if args.threads else None, client=client,
                       progress=_progress(args), maturity=args.maturity)
    if result.unchanged:
        print(f"{args.update}: up to date, nothing new ({result.kept} granules kept)")
        return 0
    print(f"updated {result.store}: {len(result.selection.selected)} granules, "
          f"{result.tree.n_refs} chunk references ({result.scanned} scanned, "
          f"{result.cached} from the cache)")
    _print_changes(result)
    for w in result.warnings:
        print(f"gcov-index: warning: {w}", file=sys.stderr)
    return 0


def _dry_run(inputs, out: str, maturity: str | None = None) -> str:
    from .discover.search import SearchResult
    from .discover.select import select_latest

    if isinstance(inputs, SearchResult):
        return inputs.text("table", show_superseded=True) + f"would write {out}\n"
    sel = select_latest(inputs, maturity)
    lines = [f"  {g.start:%Y-%m-%dT%H:%M:%S}  {g.url}" for g in sel.selected]
    lines += [f"  superseded {old.url} (by {new.crid} {new.counter:03d})"
              for old, new in sel.superseded]
    lines += [f"  skipped {s} (not a data granule)" for s in sel.skipped]
    lines.append(f"would write {out}: {len(sel.selected)} granules")
    return "\n".join(lines) + "\n"


def cmd_subset(args) -> int:
    from .read.subset import (
        Box,
        check_outputs,
        plot_series,
        subset,
        to_frame,
        write_series,
    )

    box = Box.parse(_bbox(args.bbox), args.crs)
    _check_on_earth(box, args.bbox)
    for v in args.var or []:
        if not v.strip("/ "):
            raise BadInputError(f"--var {v!r}: give a grid layer, e.g. frequencyA/HHHH")
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path is not None:
            _check_output(option, path)
    check_outputs(args.out, args.plot)
    _check_store(args.store)
    series = subset(args.store, box, variables=args.var, stat=args.stat, db=args.db,
                    protocol=args.protocol, access=_access(args), stack=args.stack)
    # files first, stdout last: a failed write leaves no half-answer on stdout
    stop_if_interrupted()
    lines = []
    if args.out:
        args.written.append(str(write_series(series, args.out)))
        lines.append(f"wrote {args.out}: {series.sizes['time']} time steps")
    if args.plot:
        args.written.append(str(plot_series(series, args.plot)))
        lines.append(f"wrote {args.plot}")
    if not args.out:
        print(to_frame(series).to_csv(date_format="%Y-%m-%dT%H:%M:%S.%f"), end="")
    for line in lines:
        print(line)
    return 0


_NUMBER = re.compile(r"[\s,]+")


def _bbox(text: str) -> tuple[float, float, float, float]:
    """``MINX MINY MAXX MAXY`` (spaces or commas): four finite numbers, min < max."""
    import math

    parts = [p for p in _NUMBER.split(text.strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise BadInputError(f"--bbox {text!r}: give four numbers, MINX MINY MAXX MAXY")
    if not all(math.isfinite(v) for v in values):
        raise BadInputError(f"--bbox {text}: the numbers must be finite")
    minx, miny, maxx, maxy = values
    if not (minx < maxx and miny < maxy):
        raise BadInputError(f"--bbox {text}: MINX < MAXX and MINY < MAXY are needed")
    return minx, miny, maxx, maxy


def _check_on_earth(box, text: str) -> None:
    """The box in its CRS must be a place on Earth (longitude -180..180, latitude -90..90
    once in EPSG:4326): a projected box of lat/lon numbers, or a latitude of 95, is refused
    here rather than met as NaN inside the clip."""
    import math

    from pyproj import CRS, Transformer

    crs = CRS.from_user_input(box.crs)
    if crs.is_geographic:
        lon0, lat0, lon1, lat1 = box.minx, box.miny, box.maxx, box.maxy
    else:
        try:
            t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
            lon0, lat0, lon1, lat1 = t.transform_bounds(box.minx, box.miny, box.maxx, box.maxy)
        except Exception:
            lon0 = lat0 = lon1 = lat1 = math.inf
    ok = all(math.isfinite(v) for v in (lon0, lat0, lon1, lat1))
    if not ok or lon0 < -180 or lon1 > 180 or lat0 < -90 or lat1 > 90:
        where = (f"longitude {lon0:g}..{lon1:g}, latitude {lat0:g}..{lat1:g}" if ok else
                 "no place on Earth")
        raise BadInputError(f"--bbox {text} (--crs {box.crs}): not a place on Earth ({where}; "
                            "longitude must be -180..180 and latitude -90..90)")


def cmd_validate(args) -> int:
    _check_store(args.store)
    from .read.validate import validate

    report = validate(args.store, sample=args.sample, seed=args.seed, protocol=args.protocol,
                      access=_access(args))
    print(report.text())
    report.raise_if_failed()
    return 0


def cmd_info(args) -> int:
    _check_store(args.store)
    from .read.info import store_info

    print(store_info(args.store).text())
    return 0


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gcov-index", description="Index NISAR L2 GCOV granules "
                                "into one time-stacked virtual Zarr store.")
    p.add_argument("--version", action="version", version=f"gcov-index {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar=COMMAND_METAVAR)
    b = sub.add_parser("build", help="scan granules and write one reference store")
    b.add_argument("granules", nargs="*", metavar="GRANULE",
                   help="paths, s3:// or https:// URLs, or @FILE listing them; or search "
                   "with the options below")
    b.add_argument("--out", help="NAME.json or NAME.parquet (required unless --update); an "
                   "existing store gets the new acquisitions only")
    b.add_argument("--update", metavar="STORE", help="repeat STORE's saved search and add "
                   "what is new to it (newer releases replace older ones)")
    b.add_argument("--replace", action="store_true", help="an existing --out holds exactly "
                   "the granules given afterwards (default: what is new is added to it)")
    b.add_argument("--dry-run", action="store_true", help="list what would be indexed, and stop")
    b.add_argument("--workers", type=_int_at_least(1), default=None,
                   help="granules scanned at once (default: the cores)")
    b.add_argument("--threads", action="store_true",
                   help="scan in threads, not worker processes")
    b.add_argument("--dask", metavar="ADDRESS",
                   help="scan on a Dask cluster, its scheduler's address (tcp://HOST:8786); "
                   "each worker reads the token and fetches S3 credentials itself")
    b.add_argument("--cache-dir", help="manifest cache (default ~/.cache/gcov-index)")
    b.add_argument("--no-cache", action="store_true", help="scan again, cache nothing")
    _log_options(b)
    _access_options(b)
    _search_options(b)
    b.set_defaults(func=cmd_build)
    s = sub.add_parser("search", help="find GCOV granules with asf_search; latest releases only")
    _search_options(s)
    s.add_argument("--format", default="table", choices=("table", "json", "csv"))
    s.add_argument("--show-superseded", action="store_true",
                   help="also list the older releases that were left out")
    _log_options(s)
    s.set_defaults(func=cmd_search)
    t = sub.add_parser("subset", help="time series of a statistic over a bounding box")
    t.add_argument("store")
    t.add_argument("--bbox", required=True, metavar="MINX MINY MAXX MAXY",
                   help="four numbers, in the CRS of --crs (commas also work)")
    t.add_argument("--crs", default="EPSG:4326", help="CRS of the bbox (EPSG:4326)")
    t.add_argument("--var", action="append", help="grid layer, e.g. frequencyA/HHHH (the "
                   "default); repeat for more")
    t.add_argument("--stat", default="mean", choices=("mean", "median", "min", "max", "count"))
    t.add_argument("--db", action="store_true", help="10 log10 of the statistic")
    t.add_argument("--out", help="FILE.csv or FILE.nc (default: CSV on stdout)")
    t.add_argument("--plot", help="FILE.png: per layer the statistic, its 25-75 %% band and "
                   "the valid-pixel count")
    t.add_argument("--protocol", choices=("s3", "https"),
                   help="read chunks over S3 or HTTPS whatever the store holds")
    t.add_argument("--stack", help="read one stack of a store of several (ids: gcov-index "
                   "info STORE); default: every stack the box touches")
    _log_options(t)
    _access_options(t)
    t.set_defaults(func=cmd_subset)
    v = sub.add_parser("validate", help="compare sampled chunks with the sources, bit for "
                       "bit, and check that no source changed")
    v.add_argument("store")
    v.add_argument("--sample", type=_int_at_least(0), default=4,
                   help="chunks checked per granule (4)")
    v.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="which chunks are sampled (0)")
    v.add_argument("--protocol", choices=("s3", "https"),
                   help="read chunks and sources over S3 or HTTPS whatever the store holds")
    _log_options(v)
    _access_options(v)
    v.set_defaults(func=cmd_validate)
    i = sub.add_parser("info", help="what a store holds")
    i.add_argument("store")
    _log_options(i)
    i.set_defaults(func=cmd_info)
    return p


def _glue_values(argv: list[str]) -> list[str]:
    """Values that argparse would take for options: ``--aoi -118,36,-117,37`` is glued as
    ``--aoi=-118,...``, and ``--bbox -inf 36 -117 37`` as ``--bbox=-inf 36 -117 37`` (the
    tokens after --bbox up to four numbers, spaces or commas between them)."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a in ("--aoi", "--intersects-with"):
            a = f"--aoi={argv[i] if i < len(argv) else ''}"
            i += 1
        elif a == "--bbox":
            values: list[str] = []
            while i < len(argv) and len(values) < 4 and not argv[i].startswith("--"):
                values += [v for v in _NUMBER.split(argv[i].strip()) if v] or [argv[i]]
                i += 1
            a = "--bbox=" + " ".join(values)
        out.append(a)
    return out


def _interrupted(e: BaseException) -> bool:
    """A Ctrl-C, also when a library wrapped it in its own exception (or lost its trace: an
    import interrupted half-way fails later with another error)."""
    if _SIGINT.received:
        return True
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, KeyboardInterrupt):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


class _Format(logging.Formatter):
    """``gcov-index: info: ...``; at DEBUG with the time since start and the logger's name."""

    def __init__(self, detailed: bool):
        super().__init__()
        self.detailed = detailed

    def formatMessage(self, record: logging.LogRecord) -> str:
        where = f"[{record.relativeCreated / 1000:.3f} s {record.name}] " if self.detailed else ""
        return f"gcov-index: {record.levelname.lower()}: {where}{record.message}"


class _Quiet:
    """Only our lines on stderr: libraries' warnings and log records (asyncio's "Task was
    destroyed", "Future exception was never retrieved") and "Exception ignored in" reports are
    dropped while a command runs, unless GCOV_INDEX_DEBUG is set; the ``gcov_index`` loggers'
    records are printed at the level the flags choose (:meth:`level`; WARNING until then).

    One stderr handler on the root logger, which every record reaches that no library's own
    handler took (so Python's last-resort printer is never used), passes the gcov_index
    records only, redacted (:func:`gcov_index._log.redact`); a library that prints through
    handlers of its own (distributed does) is muted where it is loaded
    (:func:`_mute_own_handlers`)."""

    muted: list[logging.Handler] | None = None  # while a command runs without GCOV_INDEX_DEBUG

    def __init__(self, debug: bool):
        self.debug = debug

    def __enter__(self):
        import warnings

        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        self._logger = logging.getLogger("gcov_index")
        self._level = self._logger.level
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(_Format(False))
        self.handler.addFilter(redacting)  # every record printed, libraries' too
        if not self.debug:
            self.handler.addFilter(_ours)
            warnings.simplefilter("ignore")
            self._hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
            _Quiet.muted = []
            _mute_own_handlers()
        logging.root.addHandler(self.handler)
        self.level(0)
        return self

    def level(self, verbosity: int) -> None:
        """-1 (--quiet): errors only; 0: warnings; 1 (-v): info; 2 or more (-vv): debug."""
        level = LEVELS[max(-1, min(2, verbosity))]
        self._logger.setLevel(level)
        self.handler.setFormatter(_Format(level <= logging.DEBUG))

    def __exit__(self, *exc):
        logging.root.removeHandler(self.handler)
        self._logger.setLevel(self._level)
        if not self.debug:
            for muted in _Quiet.muted or []:
                muted.removeFilter(_nothing)
            _Quiet.muted = None
            sys.unraisablehook = self._hook
        self._warnings.__exit__(*exc)
        return False


def _ours(record: logging.LogRecord | logging.Logger) -> bool:
    return record.name == "gcov_index" or record.name.startswith("gcov_index.")


def _nothing(record: logging.LogRecord) -> bool:
    return False


def _mute_own_handlers() -> None:
    """While a command runs without GCOV_INDEX_DEBUG: the handlers other libraries put on
    their loggers pass nothing (their child loggers' records included), until the end."""
    if _Quiet.muted is None:
        return
    for lg in list(logging.root.manager.loggerDict.values()):
        if not isinstance(lg, logging.Logger) or _ours(lg):
            continue
        for h in lg.handlers:
            if not isinstance(h, logging.NullHandler) and _nothing not in h.filters:
                h.addFilter(_nothing)
                _Quiet.muted.append(h)


def _progress(args) -> bool:
    """build's progress bar: on a terminal, without --quiet; -v and -vv say it in lines."""
    return not args.quiet and not args.verbose and _tty(sys.stderr)


def _dask_timeout() -> float:
    text = os.environ.get("GCOV_INDEX_DASK_TIMEOUT", "").strip()
    if not text:
        return DASK_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BadInputError(f"GCOV_INDEX_DASK_TIMEOUT={text!r}: give a number of seconds > 0")
    return value


@contextlib.contextmanager
def _dask_client(address: str | None):
    """A ``dask.distributed.Client`` of the scheduler at ``address``, or None."""
    if not address:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise BadInputError("--dask: dask.distributed is not installed "
                            "(pip install 'gcov-index[distributed]')") from None
    _mute_own_handlers()  # distributed prints through its own handlers
    try:
        client = Client(address, timeout=_dask_timeout(), set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise AccessError(f"--dask {address}: cannot reach the scheduler ({first_line(e)})") \
            from None
    try:
        yield client
    finally:
        client.close()


def _tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _say(message: str) -> None:
    """The one line; on a terminal it replaces what a progress bar left on the line."""
    clear = "\r\033[K" if _tty(sys.stderr) else ""
    print(f"{clear}gcov-index: error: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code; every failure is one line on stderr."""
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    args = None
    with _Quiet(debug) as quiet:
        try:
            handler = signal.getsignal(signal.SIGINT)
            if getattr(handler, "gcov_index_startup", False):  # run() set it: ours from here
                _SIGINT.received = False
                signal.signal(signal.SIGINT, _on_sigint)
            argv = sys.argv[1:] if argv is None else argv
            if argv and argv[0].startswith("-") and argv[0] != "-h" \
                    and not argv[0].startswith(("--help", "--version")):
                raise BadInputError(f"unknown option {argv[0]}: give a command first, one of "
                                    f"{', '.join(COMMANDS)} (see 'gcov-index --help')")
            try:
                args = parser().parse_args(_glue_values(argv))
            except SystemExit as e:  # --help, --version: printed, done
                return e.code if isinstance(e.code, int) else 0
            quiet.level(-1 if args.quiet else args.verbose)
            args.written = []  # outputs complete so far, for the line of an interruption
            code = args.func(args)
            stop_if_interrupted()  # a Ctrl-C that a library swallowed still ends the command
            return code
        except KeyboardInterrupt:
            _say(_interruption(args))
            return 130
        except BrokenPipeError:  # the reader of stdout went away (| head): nothing to say
            _stdout_to_devnull()
            return 141
        except Exception as e:
            if _interrupted(e):  # a Ctrl-C that a library turned into another error
                _say(_interruption(args))
                return 130
            if debug:
                import traceback

                traceback.print_exc()
            if isinstance(e, GcovIndexError):
                _say(e)
                return e.exit_code
            return _unexpected(e, args)


class _SIGINT:
    received = False


def _on_sigint(signum, frame):
    """Ctrl-C: remembered, then raised. A library may swallow the KeyboardInterrupt (a bare
    ``except:`` around an optional import, say); the command checks the flag before it writes
    anything, and main checks it at the end, so a Ctrl-C is never lost."""
    _SIGINT.received = True
    raise KeyboardInterrupt


def stop_if_interrupted() -> None:
    if _SIGINT.received:
        raise KeyboardInterrupt


def _interruption(args) -> str:
    written = getattr(args, "written", None)
    return (f"interrupted after writing {', '.join(written)}" if written else
            "interrupted; nothing was written")


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _unexpected(e: Exception, args) -> int:
    """One line for what no check foresaw: a file we could not read or write is bad input
    (2), a lost connection unreachable (3), anything else a bug (1)."""
    subject = next((getattr(args, k) for k in ("store", "out") if getattr(args, k, None)), None)
    where = f"{args.command} {subject}: " if subject else ""
    if isinstance(e, (ConnectionError, TimeoutError)):
        _say(f"{where}unreachable ({type(e).__name__}: {first_line(e)})")
        return 3
    if isinstance(e, OSError) and e.filename is not None:
        _say(f"{where}{e.filename}: {e.strerror or first_line(e)}")
        return 2
    _say(f"{where}unexpected {type(e).__name__}: {first_line(e)} (a bug; {DEBUG_ENV}=1 "
         "shows the traceback)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
