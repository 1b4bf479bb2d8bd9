"""The ``gcov-index`` command: a thin shell over the Python API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._version import __version__
from .errors import GcovIndexError


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
    g.add_argument("--protocol", default="https", choices=("https", "s3"),
                   help="which URL of each granule is indexed (https)")
    g.add_argument("--cmr-host", help="CMR host (default: $GCOV_INDEX_CMR_HOST, else NASA's)")


_SEARCH_FIELDS = ("aoi", "start", "end", "direction", "track", "frame", "production",
                  "collection", "max_results")


def _has_search(args) -> bool:
    return any(getattr(args, k) is not None for k in _SEARCH_FIELDS)


def _search(args):
    from .discover.query import SearchQuery
    from .discover.search import search
    from .io.endpoints import Endpoints

    query = SearchQuery.from_options(**{k: getattr(args, k) for k in _SEARCH_FIELDS})
    return search(query, protocol=args.protocol,
                  endpoints=Endpoints.from_env(cmr_host=args.cmr_host))


def _access(args):
    from .io.access import Access

    return Access.from_env(token_file=args.token_file, s3_endpoint=args.s3_endpoint,
                           s3_credentials_url=args.s3_credentials_url)


def _read_inputs(items: list[str]) -> list[str]:
    out = []
    for item in items:
        if item.startswith("@"):  # @list.txt: one granule per line
            try:
                out += [ln.strip() for ln in Path(item[1:]).read_text().splitlines() if ln.strip()]
            except OSError as e:
                from .errors import BadInputError

                raise BadInputError(f"{item[1:]}: cannot read the list ({e.strerror})") from None
        else:
            out.append(item)
    return out


def cmd_search(args) -> int:
    print(_search(args).text(args.format, args.show_superseded), end="")
    return 0


def cmd_build(args) -> int:
    from .errors import BadInputError
    from .store.build import build
    from .store.layout import store_format

    if args.granules and _has_search(args):
        raise BadInputError("give granules or a search (--aoi, --start, ...), not both")
    if not args.granules and not _has_search(args):
        raise BadInputError("nothing to index: give granules, @FILE, or a search "
                            "(--aoi, --start, --end, ...)")
    store_format(args.out)  # a bad --out fails before the search
    inputs = _search(args) if not args.granules else _read_inputs(args.granules)
    if args.dry_run:
        print(_dry_run(inputs, args.out), end="")
        return 0
    result = build(inputs, args.out, access=_access(args),
                   cache=not args.no_cache, cache_dir=args.cache_dir,
                   workers=args.workers, progress=not args.quiet)
    sel = result.selection
    print(f"wrote {result.store}: {len(sel.selected)} granules, {result.tree.n_refs} chunk "
          f"references ({result.scanned} scanned, {result.cached} from the cache)")
    superseded = [(o.granule, k.granule) for o, k in getattr(inputs, "superseded", [])]
    for old, new in superseded + sel.superseded:
        print(f"  superseded {old.stem} (by {new.crid} {new.counter:03d})")
    for s in sel.skipped:
        print(f"  skipped {s} (not a data granule)")
    return 0


def _dry_run(inputs, out: str) -> str:
    from .discover.search import SearchResult
    from .discover.select import select_latest

    if isinstance(inputs, SearchResult):
        problem = inputs.mixed_frames()
        note = f"build would refuse: {problem}\n" if problem else ""
        return inputs.text("table", show_superseded=True) + note + f"would write {out}\n"
    sel = select_latest(inputs)
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

    box = Box.parse(args.bbox, args.crs)
    check_outputs(args.out, args.plot)
    series = subset(args.store, box, variables=args.var, stat=args.stat, db=args.db,
                    protocol=args.protocol, access=_access(args))
    if args.out:
        print(f"wrote {write_series(series, args.out)}: {series.sizes['time']} time steps")
    else:
        print(to_frame(series).to_csv(date_format="%Y-%m-%dT%H:%M:%S.%f"), end="")
    if args.plot:
        print(f"wrote {plot_series(series, args.plot)}")
    return 0


def cmd_validate(args) -> int:
    from .read.validate import validate

    report = validate(args.store, sample=args.sample, seed=args.seed, protocol=args.protocol,
                      access=_access(args))
    print(report.text())
    report.raise_if_failed()
    return 0


def cmd_info(args) -> int:
    from .read.info import store_info

    print(store_info(args.store).text())
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gcov-index", description="Index NISAR L2 GCOV granules "
                                "into one time-stacked virtual Zarr store.")
    p.add_argument("--version", action="version", version=f"gcov-index {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="scan granules and write one reference store")
    b.add_argument("granules", nargs="*", metavar="GRANULE",
                   help="paths, s3:// or https:// URLs, or @FILE listing them; or search "
                   "with the options below")
    b.add_argument("--out", required=True, help="NAME.json or NAME.parquet")
    b.add_argument("--dry-run", action="store_true", help="list what would be indexed, and stop")
    b.add_argument("--workers", type=int, default=4, help="granules scanned at once (4)")
    b.add_argument("--cache-dir", help="manifest cache (default ~/.cache/gcov-index)")
    b.add_argument("--no-cache", action="store_true", help="scan again, cache nothing")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    _access_options(b)
    _search_options(b)
    b.set_defaults(func=cmd_build)
    s = sub.add_parser("search", help="find GCOV granules with asf_search; latest releases only")
    _search_options(s)
    s.add_argument("--format", default="table", choices=("table", "json", "csv"))
    s.add_argument("--show-superseded", action="store_true",
                   help="also list the older releases that were left out")
    s.set_defaults(func=cmd_search)
    t = sub.add_parser("subset", help="time series of a statistic over a bounding box")
    t.add_argument("store")
    t.add_argument("--bbox", nargs=4, required=True, metavar=("MINX", "MINY", "MAXX", "MAXY"))
    t.add_argument("--crs", default="EPSG:4326", help="CRS of the bbox (EPSG:4326)")
    t.add_argument("--var", action="append", help="grid layer, e.g. frequencyA/HHHH (the "
                   "default); repeat for more")
    t.add_argument("--stat", default="mean", choices=("mean", "median", "min", "max", "count"))
    t.add_argument("--db", action="store_true", help="10 log10 of the statistic")
    t.add_argument("--out", help="FILE.csv or FILE.nc (default: CSV on stdout)")
    t.add_argument("--plot", help="FILE.png: the series drawn, one line per variable")
    t.add_argument("--protocol", choices=("s3", "https"),
                   help="read chunks over S3 or HTTPS whatever the store holds")
    _access_options(t)
    t.set_defaults(func=cmd_subset)
    v = sub.add_parser("validate", help="compare sampled chunks with the sources, bit for "
                       "bit, and check that no source changed")
    v.add_argument("store")
    v.add_argument("--sample", type=int, default=4, help="chunks checked per granule (4)")
    v.add_argument("--seed", type=int, default=0, help="which chunks are sampled (0)")
    v.add_argument("--protocol", choices=("s3", "https"),
                   help="read chunks and sources over S3 or HTTPS whatever the store holds")
    _access_options(v)
    v.set_defaults(func=cmd_validate)
    i = sub.add_parser("info", help="what a store holds")
    i.add_argument("store")
    i.set_defaults(func=cmd_info)
    return p


def _glue_values(argv: list[str]) -> list[str]:
    """``--aoi -118,36,-117,37`` would read as an option; glue it as ``--aoi=-118,...``."""
    out, it = [], iter(argv)
    for a in it:
        if a in ("--aoi", "--intersects-with"):
            a = f"--aoi={next(it, '')}"
        out.append(a)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(_glue_values(sys.argv[1:] if argv is None else argv))
    try:
        return args.func(args)
    except GcovIndexError as e:
        print(f"gcov-index: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("gcov-index: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
