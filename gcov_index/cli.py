"""The ``gcov-index`` command: a thin shell over the Python API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import GcovIndexError


def _access_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--s3-endpoint", help="S3 endpoint URL (default: $AWS_ENDPOINT_URL, else AWS)")
    p.add_argument("--token-file", help="file holding the Earthdata Login token "
                   "(default: $EARTHDATA_TOKEN, else ~/.netrc)")
    p.add_argument("--s3-credentials-url", help="temporary S3 credentials endpoint "
                   "(default: NISAR's s3credentials)")


def _access(args):
    from .references.access import Access

    return Access.from_options(token_file=args.token_file, s3_endpoint=args.s3_endpoint,
                               credentials_url=args.s3_credentials_url)


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


def cmd_build(args) -> int:
    from .indexer.build import build

    result = build(_read_inputs(args.granules), args.out, access=_access(args),
                   cache_dir=False if args.no_cache else (Path(args.cache_dir) if args.cache_dir else True),
                   workers=args.workers, progress=not args.quiet)
    sel = result.selection
    print(f"wrote {result.store}: {len(sel.selected)} granules, {result.tree.n_refs} chunk "
          f"references ({result.scanned} scanned, {result.cached} from the cache)")
    for old, new in sel.superseded:
        print(f"  superseded {old.stem} (by {new.crid} {new.counter:03d})")
    for s in sel.skipped:
        print(f"  skipped {s} (not a data granule)")
    return 0


def cmd_info(args) -> int:
    from .references.info import store_info

    print(store_info(args.store).text())
    return 0


def cmd_demo(args) -> int:
    from .testing.demo import run

    run(Path(args.out) if args.out else None)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gcov-index", description="Index NISAR L2 GCOV granules "
                                "into one time-stacked virtual Zarr store.")
    p.add_argument("--version", action="version", version=f"gcov-index {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="scan granules and write one reference store")
    b.add_argument("granules", nargs="+", metavar="GRANULE",
                   help="paths, s3:// or https:// URLs, or @FILE listing them")
    b.add_argument("--out", required=True, help="NAME.json or NAME.parquet")
    b.add_argument("--workers", type=int, default=4, help="granules scanned at once (4)")
    b.add_argument("--cache-dir", help="manifest cache (default ~/.cache/gcov-index)")
    b.add_argument("--no-cache", action="store_true", help="scan again, cache nothing")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    _access_options(b)
    b.set_defaults(func=cmd_build)
    i = sub.add_parser("info", help="what a store holds")
    i.add_argument("store")
    i.set_defaults(func=cmd_info)
    d = sub.add_parser("demo", help="build and read a small synthetic stack, offline")
    d.add_argument("--out", help="where to keep the demo store (gcov-index-demo.json)")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
