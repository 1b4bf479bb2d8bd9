"""Bad input, as a hostile user types it, across every subcommand: one table.

For each case: the documented exit code (2 bad input, 3 unreachable, 4 refused), exactly one line
on stderr starting ``gcov-index: error:`` that names the input, no traceback, nothing on stdout,
and nothing written or altered: every file of the test's directory and of the stores given is
the same before and after. No case needs a server: the archive's addresses point at a closed
port on loopback, so a case that wrongly went on would fail fast (exit 3) rather than pass.

Then what must work where the bad cases fail: local paths with a space, non-ASCII, ``%``, ``#``
or ``?`` (build, info, subset, validate), a WKT area longer than a file name; and Ctrl-C at any
moment (exit 130, one line), in the process and in a real process sent SIGINT.
"""

from __future__ import annotations

import importlib.abc
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gcov_index import build
from gcov_index.cli import main
from gcov_index.discover.query import SearchQuery

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gcov_index"
NOWHERE = "127.0.0.1:9"  # nothing listens: a case that reaches the network fails at once

# areas of interest longer than a file name may be (255 bytes): WKT, not files
RING = [(-118.08 + 0.002 * i, 36.96) for i in range(30)] + [(-118.02, 37.0), (-118.08, 37.0)]
LONG_WKT = "POLYGON ((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in [*RING, RING[0]]) + "))"
LONG_WKT_FAR = LONG_WKT.replace("-118.", "-218.")
LONG_WKT_BROKEN = LONG_WKT[:-2]
BOWTIE = [(0, 0), *((0.01 * i, 1) for i in range(1, 30)), (1, 0), (0, 1), (0, 0)]
LONG_WKT_BOWTIE = "POLYGON ((" + ", ".join(f"{x:.6f} {y:.6f}" for x, y in BOWTIE) + "))"
assert min(len(LONG_WKT), len(LONG_WKT_FAR), len(LONG_WKT_BROKEN), len(LONG_WKT_BOWTIE)) > 255
LONG = "x" * 300  # a file name longer than any file system allows
BBOX = ["-118.08", "36.96", "-118.06", "36.98"]
WEIRD = ["a b", "ü ñ 日本", "100%", "%41%20", "h#q", "a?b", "semi;colon", "quote'd"]


@dataclass(frozen=True)
class Case:
    id: str
    code: int
    argv: tuple[str, ...]
    expect: tuple[str, ...]  # each in the line, after {placeholders} are filled
    env: dict = field(default_factory=dict)


def case(id: str, code: int, argv, *expect: str, env: dict | None = None) -> Case:
    return Case(id, code, tuple(argv), expect, env or {})


def subset(*argv: str) -> list[str]:
    return ["subset", "{s}", "--bbox", *BBOX, *argv]


G = "{g}"
GSLC_NAME = ("NISAR_L2_PR_GSLC_005_172_A_008_2005_DHDH_A_20251122T024618_20251122T024652_X05009"
             "_N_F_J_001.h5")

CASES = [
    # ---- the command line itself ----------------------------------------------------------
    case("cli-nothing", 2, [], "give a command: search, build, subset, validate, info"),
    case("cli-unknown-command", 2, ["frobnicate"], "'frobnicate'"),
    case("cli-command-case", 2, ["Build"], "'Build'"),
    case("cli-empty-command", 2, [""], "invalid choice: ''"),
    case("cli-unknown-option", 2, ["--versoin"], "--versoin"),
    case("cli-short-option", 2, ["-x", "info", "{s}"], "-x"),
    case("cli-version-with-value", 2, ["--version=2"], "--version", "'2'"),
    case("cli-help-with-value", 2, ["--help=yes"], "--help", "'yes'"),
    case("cli-sub-help-with-value", 2, ["info", "--help=x"], "--help", "'x'"),
    case("cli-version-after-command", 2, ["build", G, "--out", "{t}/s.json", "--version"],
         "--version"),
    case("cli-option-of-another-command", 2, ["info", "{s}", "--bbox", *BBOX], "--bbox"),
    case("cli-search-positional", 2, ["search", "extra"], "extra"),
    case("cli-info-unknown-option", 2, ["info", "{s}", "--verbosity"], "--verbosity"),
    case("cli-verbose-and-quiet", 2, ["info", "{s}", "-v", "--quiet"], "--quiet"),
    # ---- search: every value checked before CMR is asked -----------------------------------
    case("search-aoi-missing-value", 2, ["search", "--aoi"], "--aoi", "empty"),
    case("search-aoi-empty", 2, ["search", "--aoi", ""], "--aoi", "empty"),
    case("search-aoi-blank", 2, ["search", "--aoi", "   "], "--aoi", "empty"),
    case("search-aoi-broken-wkt", 2, ["search", "--aoi", "POLYGON((-118 36, -117 36, -117"],
         "--aoi 'POLYGON((-118 36, -117 36, -117'", "not WKT"),
    case("search-aoi-long-wkt-far", 2, ["search", "--aoi", LONG_WKT_FAR], LONG_WKT_FAR[:50],
         "longitude, latitude"),
    case("search-aoi-long-wkt-broken", 2, ["search", "--aoi", LONG_WKT_BROKEN],
         LONG_WKT_BROKEN[:50], "not WKT"),
    case("search-aoi-long-wkt-bowtie", 2, ["search", "--aoi", LONG_WKT_BOWTIE],
         LONG_WKT_BOWTIE[:50], "not valid"),
    case("search-aoi-long-word", 2, ["search", "--aoi", LONG], "--aoi 'xxxx", "not WKT"),
    case("search-aoi-long-geojson-name", 2, ["search", "--aoi", f"{{t}}/{LONG}.geojson"],
         "{t}/xxxx", "cannot read the GeoJSON file", "too long"),
    case("search-aoi-bbox-order", 2, ["search", "--aoi", "-117,36,-118,37"], "-117,36,-118,37",
         "min < max"),
    case("search-aoi-bbox-three", 2, ["search", "--aoi", "-118,36,-117"], "-118,36,-117"),
    case("search-aoi-bbox-five", 2, ["search", "--aoi", "-118,36,-117,37,5"], "-118,36,-117,37,5"),
    case("search-aoi-bbox-dots", 2, ["search", "--aoi", "1.2.3,36,-117,37"], "1.2.3,36,-117,37",
         "four numbers"),
    case("search-aoi-bbox-huge", 2, ["search", "--aoi", "1e999,36,2,37"], "1e999,36,2,37",
         "finite"),
    case("search-aoi-bbox-lat", 2, ["search", "--aoi", "-118.08,95,-118.06,96"],
         "-118.08,95,-118.06,96", "longitude, latitude"),
    case("search-aoi-bbox-lon", 2, ["search", "--aoi", "200,36,201,37"], "200,36,201,37",
         "longitude, latitude"),
    case("search-aoi-bbox-nan", 2, ["search", "--aoi", "nan,nan,nan,nan"], "nan,nan,nan,nan"),
    case("search-aoi-bbox-inf", 2, ["search", "--aoi", "-inf,36,-117,37"], "-inf,36,-117,37"),
    case("search-aoi-semicolons", 2, ["search", "--aoi", "-118;36;-117;37"], "-118;36;-117;37"),
    case("search-aoi-bowtie", 2, ["search", "--aoi", "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))"],
         "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", "not valid"),
    case("search-aoi-empty-wkt", 2, ["search", "--aoi", "POLYGON EMPTY"], "POLYGON EMPTY",
         "empty"),
    case("search-aoi-missing-geojson", 2, ["search", "--aoi", "{t}/nope.geojson"],
         "{t}/nope.geojson", "No such file"),
    case("search-aoi-missing-weird-geojson", 2, ["search", "--aoi", "{t}/a b/ü 100%.geojson"],
         "{t}/a b/ü 100%.geojson", "No such file"),
    case("search-aoi-directory", 2, ["search", "--aoi", "{t}/dir"], "{t}/dir",
         "is a directory"),
    case("search-aoi-directory-geojson", 2, ["search", "--aoi", "{t}/d.geojson"],
         "{t}/d.geojson", "directory"),
    case("search-aoi-not-json", 2, ["search", "--aoi", "{t}/geo/bad.geojson"],
         "{t}/geo/bad.geojson", "not GeoJSON"),
    case("search-aoi-json-list", 2, ["search", "--aoi", "{t}/geo/list.geojson"],
         "{t}/geo/list.geojson", "not GeoJSON"),
    case("search-aoi-json-null", 2, ["search", "--aoi", "{t}/geo/null.geojson"],
         "{t}/geo/null.geojson", "not GeoJSON"),
    case("search-aoi-no-features", 2, ["search", "--aoi", "{t}/geo/emptyfc.geojson"],
         "{t}/geo/emptyfc.geojson", "no geometry"),
    case("search-aoi-null-geometry", 2, ["search", "--aoi", "{t}/geo/nogeom.geojson"],
         "{t}/geo/nogeom.geojson", "no geometry"),
    case("search-aoi-geojson-far", 2, ["search", "--aoi", "{t}/geo/far.geojson"],
         "{t}/geo/far.geojson", "longitude, latitude"),
    case("search-aoi-geojson-latin1", 2, ["search", "--aoi", "{t}/geo/latin1.geojson"],
         "{t}/geo/latin1.geojson", "not UTF-8"),
    case("search-aoi-geojson-string-coordinates", 2,
         ["search", "--aoi", "{t}/geo/strcoords.geojson"], "{t}/geo/strcoords.geojson"),
    case("search-aoi-geojson-features-number", 2,
         ["search", "--aoi", "{t}/geo/featuresnum.geojson"], "{t}/geo/featuresnum.geojson"),
    case("search-aoi-geojson-features-strings", 2,
         ["search", "--aoi", "{t}/geo/featuresstr.geojson"], "{t}/geo/featuresstr.geojson"),
    case("search-aoi-geojson-bowtie", 2, ["search", "--aoi", "{t}/geo/selfx.geojson"],
         "{t}/geo/selfx.geojson", "not valid"),
    case("search-start-words", 2, ["search", "--start", "last tuesday"], "--start 'last tuesday'"),
    case("search-start-month-13", 2, ["search", "--start", "2025-13-01"], "--start '2025-13-01'"),
    case("search-start-day-first", 2, ["search", "--start", "15/11/2025"], "--start '15/11/2025'"),
    case("search-start-hour-25", 2, ["search", "--start", "2025-11-15T25:00"],
         "--start '2025-11-15T25:00'"),
    case("search-start-bad-zone", 2, ["search", "--start", "2025-11-15T00:00+25:00"],
         "--start '2025-11-15T00:00+25:00'"),
    case("search-start-before-year-1", 2, ["search", "--start", "0001-01-01T00:00:00+01:00"],
         "--start 0001-01-01T00:00:00+01:00", "out of the range"),
    case("search-end-after-year-9999", 2, ["search", "--end", "9999-12-31T23:59:59-01:00"],
         "--end 9999-12-31T23:59:59-01:00", "out of the range"),
    case("search-end-words", 2, ["search", "--end", "yesterday"], "--end 'yesterday'"),
    case("search-end-before-start", 2, ["search", "--start", "2026-01-15", "--end", "2025-11-15"],
         "--end 2025-11-15", "is before --start"),
    case("search-same-day-reversed", 2,
         ["search", "--start", "2025-11-15T12:00", "--end", "2025-11-15T06:00"], "--end",
         "before --start"),
    case("search-start-future", 2, ["search", "--start", "2999-01-01"], "--start 2999-01-01",
         "future"),
    case("search-start-missing-value", 2, ["search", "--start"], "--start"),
    case("search-direction-north", 2, ["search", "--direction", "north"], "--direction 'north'"),
    case("search-direction-empty", 2, ["search", "--direction", ""], "--direction ''"),
    case("search-track-zero", 2, ["search", "--track", "0"], "--track 0", "out of range"),
    case("search-track-174", 2, ["search", "--track", "174"], "--track 174", "out of range"),
    case("search-track-negative", 2, ["search", "--track", "-1"], "--track -1", "out of range"),
    case("search-track-word", 2, ["search", "--track", "x"], "--track 'x'", "whole number"),
    case("search-track-decimal", 2, ["search", "--track", "1.5"], "--track '1.5'"),
    case("search-frame-zero", 2, ["search", "--frame", "0"], "--frame 0"),
    case("search-frame-177", 2, ["search", "--frame", "177"], "--frame 177"),
    case("search-frame-word", 2, ["search", "--frame", "eight"], "--frame 'eight'"),
    case("search-production-xx", 2, ["search", "--production", "XX"], "--production 'XX'"),
    case("search-production-list", 2, ["search", "--production", "PR,XX"], "--production 'XX'"),
    case("search-max-results-zero", 2, ["search", "--max-results", "0"], "--max-results 0"),
    case("search-max-results-negative", 2, ["search", "--max-results", "-5"], "--max-results -5"),
    case("search-max-results-word", 2, ["search", "--max-results", "lots"],
         "--max-results 'lots'"),
    case("search-format-xml", 2, ["search", "--format", "xml"], "--format", "'xml'"),
    case("search-protocol-ftp", 2, ["search", "--protocol", "ftp"], "--protocol", "'ftp'"),
    case("search-asf-name-track", 2, ["search", "--relative-orbit", "999"], "--track 999"),
    case("search-asf-name-direction", 2, ["search", "--flight-direction", "up"],
         "--direction 'up'"),
    # ---- build: outputs, cache, lists and granules, all before any scan --------------------
    case("build-no-out", 2, ["build", G], "--out"),
    case("build-out-no-value", 2, ["build", G, "--out"], "--out"),
    case("build-nothing", 2, ["build", "--out", "{t}/s.json"], "nothing to index"),
    case("build-granules-and-search", 2, ["build", G, "--aoi", "-118,36,-117,37", "--out",
                                          "{t}/s.json"], "not both"),
    case("build-out-zarr", 2, ["build", G, "--out", "{t}/s.zarr"], "{t}/s.zarr",
         "unknown store format '.zarr'"),
    case("build-out-no-suffix", 2, ["build", G, "--out", "{t}/store"], "{t}/store",
         "unknown store format"),
    case("build-out-empty", 2, ["build", G, "--out", ""], "--out ''"),
    case("build-out-under-a-file", 2, ["build", G, "--out", "{t}/file.txt/s.json"],
         "--out {t}/file.txt/s.json", "{t}/file.txt is not a directory"),
    case("build-out-deep-under-a-file", 2, ["build", G, "--out", "{t}/file.txt/a/b/s.json"],
         "--out {t}/file.txt/a/b/s.json", "not a directory"),
    case("build-out-proc", 2, ["build", G, "--out", "/proc/s.json"], "--out /proc/s.json",
         "cannot write in /proc"),
    case("build-out-proc-deep", 2, ["build", G, "--out", "/proc/self/new/s.json"],
         "--out /proc/self/new/s.json", "cannot write"),
    case("build-out-proc-parquet", 2, ["build", G, "--out", "/proc/s.parquet"],
         "--out /proc/s.parquet", "cannot write"),
    case("build-out-sys", 2, ["build", G, "--out", "/sys/s.json"], "--out /sys/s.json",
         "cannot write"),
    case("build-out-is-a-directory", 2, ["build", G, "--out", "{t}/d.json"], "--out {t}/d.json",
         "is a directory"),
    case("build-out-parquet-is-a-file", 2, ["build", G, "--out", "{t}/f.parquet"],
         "--out {t}/f.parquet", "is a file"),
    case("build-out-long-name", 2, ["build", G, "--out", f"{{t}}/{LONG}.json"], "--out {t}/xxx",
         "file name too long"),
    case("build-out-long-parquet", 2, ["build", G, "--out", f"{{t}}/{LONG}.parquet"],
         "--out {t}/xxx", "file name too long"),
    case("build-dry-run-out-proc", 2, ["build", G, "--dry-run", "--out", "/proc/s.json"],
         "--out /proc/s.json"),
    case("build-cache-dir-a-file", 2, ["build", G, "--out", "{t}/s.json", "--cache-dir",
                                       "{t}/file.txt"], "--cache-dir {t}/file.txt",
         "not a directory"),
    case("build-cache-dir-under-a-file", 2, ["build", G, "--out", "{t}/s.json", "--cache-dir",
                                             "{t}/file.txt/cache"],
         "--cache-dir {t}/file.txt/cache", "not a directory"),
    case("build-cache-dir-proc", 2, ["build", G, "--out", "{t}/s.json", "--cache-dir",
                                     "/proc/cache"], "--cache-dir /proc/cache", "cannot write"),
    case("build-cache-env-a-file", 2, ["build", G, "--out", "{t}/s.json"],
         "$GCOV_INDEX_CACHE {t}/file.txt", "not a directory",
         env={"GCOV_INDEX_CACHE": "{t}/file.txt"}),
    case("build-cache-env-proc", 2, ["build", G, "--out", "{t}/s.json"],
         "$GCOV_INDEX_CACHE /proc/cache", env={"GCOV_INDEX_CACHE": "/proc/cache"}),
    case("build-workers-zero", 2, ["build", G, "--out", "{t}/s.json", "--workers", "0"],
         "--workers", "0"),
    case("build-workers-negative", 2, ["build", G, "--out", "{t}/s.json", "--workers", "-3"],
         "--workers", "-3"),
    case("build-workers-word", 2, ["build", G, "--out", "{t}/s.json", "--workers", "two"],
         "--workers", "'two'"),
    case("build-workers-decimal", 2, ["build", G, "--out", "{t}/s.json", "--workers", "1.5"],
         "--workers", "'1.5'"),
    case("build-protocol-ftp", 2, ["build", G, "--out", "{t}/s.json", "--protocol", "ftp"],
         "--protocol", "'ftp'"),
    case("build-list-missing", 2, ["build", "@{t}/lists/nope.txt", "--out", "{t}/s.json"],
         "@{t}/lists/nope.txt", "cannot read the list", "No such file"),
    case("build-list-weird-missing", 2, ["build", "@{t}/a b/ü%.txt", "--out", "{t}/s.json"],
         "@{t}/a b/ü%.txt", "No such file"),
    case("build-list-at-alone", 2, ["build", "@", "--out", "{t}/s.json"], "@:"),
    case("build-list-directory", 2, ["build", "@{t}/dir", "--out", "{t}/s.json"], "@{t}/dir",
         "directory"),
    case("build-list-empty", 2, ["build", "@{t}/lists/empty.txt", "--out", "{t}/s.json"],
         "@{t}/lists/empty.txt", "empty"),
    case("build-list-blank", 2, ["build", "@{t}/lists/blank.txt", "--out", "{t}/s.json"],
         "@{t}/lists/blank.txt", "empty"),
    case("build-list-latin1", 2, ["build", "@{t}/lists/latin1.txt", "--out", "{t}/s.json"],
         "@{t}/lists/latin1.txt", "not UTF-8"),
    case("build-list-binary", 2, ["build", "@{t}/lists/binary.txt", "--out", "{t}/s.json"],
         "@{t}/lists/binary.txt"),
    case("build-list-nul", 2, ["build", "@{t}/lists/nul.txt", "--out", "{t}/s.json"],
         "@{t}/lists/nul.txt", "NUL"),
    case("build-list-junk", 2, ["build", "@{t}/lists/junk.txt", "--out", "{t}/s.json"],
         "@{t}/lists/junk.txt", "no GCOV data granule", "hello"),
    case("build-list-only-qa", 2, ["build", "@{t}/lists/qa.txt", "--out", "{t}/s.json"],
         "@{t}/lists/qa.txt", "no GCOV data granule", "QA_STATS"),
    case("build-list-missing-granule", 3, ["build", "@{t}/lists/missing.txt", "--out",
                                           "{t}/s.json"],
         "{t}/nowhere/{gname} (line 1 of @{t}/lists/missing.txt): no such file"),
    case("build-list-ftp", 2, ["build", "@{t}/lists/ftp.txt", "--out", "{t}/s.json"],
         "ftp://host/{gname}", "@{t}/lists/ftp.txt", "unsupported URL scheme 'ftp'"),
    case("build-list-and-junk-args", 2, ["build", "@{t}/lists/junk.txt", "{t}/file.txt", "--out",
                                         "{t}/s.json"], "@{t}/lists/junk.txt", "{t}/file.txt"),
    case("build-a-text-file", 2, ["build", "{t}/file.txt", "--out", "{t}/s.json"],
         "{t}/file.txt", "no GCOV data granule"),
    case("build-a-directory", 2, ["build", "{t}/dir", "--out", "{t}/s.json"], "{t}/dir",
         "no GCOV data granule"),
    case("build-only-qa", 2, ["build", "{qa}", "--out", "{t}/s.json"], "QA_STATS",
         "no GCOV data granule"),
    case("build-dash", 2, ["build", "-", "--out", "{t}/s.json"], "no GCOV data granule", " -"),
    # an .h5 named off the convention is read for what it is: missing, text, or another product
    case("build-off-convention-missing", 3, ["build", "{t}/x.h5", "--out", "{t}/s.json"],
         "{t}/x.h5", "no such file"),
    case("build-off-convention-not-hdf5", 2, ["build", "{t}/text.h5", "--out", "{t}/s.json"],
         "{t}/text.h5", "not an HDF5 file"),
    case("build-other-product-name", 2, ["build", "{t}/" + GSLC_NAME, "--out", "{t}/s.json"],
         GSLC_NAME, "a NISAR L2 GSLC granule, not GCOV"),
    case("build-bad-polarization", 2,
         ["build", "{t}/NISAR_L2_PR_GCOV_005_172_A_008_2005_XXHH_A_20251122T024618_"
          "20251122T024652_X05009_N_F_J_001.h5", "--out", "{t}/s.json"], "XXHH",
         "unknown polarization code 'XX'"),
    case("build-bad-date-in-name", 2,
         ["build", "{t}/NISAR_L2_PR_GCOV_005_172_A_008_2005_DHDH_A_20251332T024618_"
          "20251332T024652_X05009_N_F_J_001.h5", "--out", "{t}/s.json"], "20251332T024618",
         "not a valid date"),
    case("build-missing-granule", 3, ["build", "{t}/nowhere/{gname}", "--out", "{t}/s.json"],
         "{t}/nowhere/{gname}: no such file"),
    case("build-missing-space", 3, ["build", "{t}/a b/{gname}", "--out", "{t}/s.json"],
         "{t}/a b/{gname}: no such file"),
    case("build-missing-unicode", 3, ["build", "{t}/ü ñ 日本/{gname}", "--out", "{t}/s.json"],
         "{t}/ü ñ 日本/{gname}: no such file"),
    case("build-missing-percent", 3, ["build", "{t}/100%/{gname}", "--out", "{t}/s.json"],
         "{t}/100%/{gname}: no such file"),
    case("build-missing-percent-escape", 3, ["build", "{t}/a%20b/{gname}", "--out", "{t}/s.json"],
         "{t}/a%20b/{gname}: no such file"),
    case("build-missing-hash", 3, ["build", "{t}/h#q/{gname}", "--out", "{t}/s.json"],
         "{t}/h#q/{gname}: no such file"),
    case("build-missing-file-uri", 3, ["build", "file://{t}/a b/{gname}", "--out", "{t}/s.json"],
         "file://{t}/a b/{gname}: no such file"),
    case("build-missing-under-a-file", 3, ["build", "{t}/file.txt/{gname}", "--out",
                                           "{t}/s.json"], "{t}/file.txt/{gname}: no such file"),
    case("build-granule-long-dir", 2, ["build", f"{{t}}/{LONG}/{{gname}}", "--out", "{t}/s.json"],
         "{t}/xxx", "too long"),
    case("build-granule-is-a-directory", 2, ["build", "{t}/dirg/{gname}", "--out", "{t}/s.json"],
         "{t}/dirg/{gname}: is a directory"),
    case("build-not-hdf5", 2, ["build", "{t}/fake/{gname}", "--out", "{t}/s.json"],
         "{t}/fake/{gname}", "not an HDF5 file"),
    case("build-empty-granule", 2, ["build", "{t}/empty/{gname}", "--out", "{t}/s.json"],
         "{t}/empty/{gname}"),
    case("build-same-release-twice", 2, ["build", G, "{t}/copy/{gname}", "--out", "{t}/s.json"],
         "{t}/copy/{gname}", "same release"),
    case("build-ftp-url", 2, ["build", "ftp://host/{gname}", "--out", "{t}/s.json"],
         "ftp://host/{gname}", "unsupported URL scheme"),
    case("build-s3-bare", 2, ["build", "s3://", "--out", "{t}/s.json"], "s3://",
         "no GCOV data granule"),
    case("build-token-file-missing", 4, ["build", G, "--out", "{t}/s.json", "--token-file",
                                         "{t}/nope"], "{t}/nope", "cannot read the token file"),
    case("build-token-file-directory", 4, ["build", G, "--out", "{t}/s.json", "--token-file",
                                           "{t}/dir"], "{t}/dir", "cannot read the token file"),
    case("build-token-file-empty", 4, ["build", G, "--out", "{t}/s.json", "--token-file",
                                       "{t}/tokens/empty"], "{t}/tokens/empty", "empty"),
    case("build-token-file-binary", 4, ["build", G, "--out", "{t}/s.json", "--token-file",
                                        "{t}/tokens/latin1"], "{t}/tokens/latin1", "not text"),
    case("build-search-bad-aoi", 2, ["build", "--aoi", "nonsense", "--out", "{t}/s.json"],
         "--aoi 'nonsense'"),
    case("build-search-bad-dates", 2, ["build", "--start", "2026-01-15", "--end", "2025-11-15",
                                       "--out", "{t}/s.json"], "--end 2025-11-15"),
    case("build-search-bad-track", 2, ["build", "--track", "400", "--out", "{t}/s.json"],
         "--track 400"),
    case("build-search-bad-out-first", 2, ["build", "--track", "172", "--out", "{t}/file.txt/x.json"],
         "--out {t}/file.txt/x.json"),
    # ---- subset: the box, the layers, the outputs, before any chunk is read ----------------
    case("subset-no-bbox", 2, ["subset", "{s}"], "--bbox"),
    case("subset-no-store", 2, ["subset", "--bbox", *BBOX], "store"),
    case("subset-bbox-empty", 2, ["subset", "{s}", "--bbox"], "--bbox"),
    case("subset-bbox-three", 2, ["subset", "{s}", "--bbox", "1", "2", "3"], "--bbox '1 2 3'",
         "four numbers"),
    case("subset-bbox-three-then-option", 2, ["subset", "{s}", "--bbox", "1", "2", "3", "--db"],
         "--bbox '1 2 3'"),
    case("subset-bbox-five", 2, ["subset", "{s}", "--bbox", *BBOX, "5"], "5"),
    case("subset-bbox-words", 2, ["subset", "{s}", "--bbox", "a", "b", "c", "d"],
         "--bbox 'a b c d'"),
    case("subset-bbox-minus-inf", 2, ["subset", "{s}", "--bbox", "-inf", "36.96", "-118.06",
                                      "36.98"], "--bbox -inf 36.96 -118.06 36.98", "finite"),
    case("subset-bbox-inf", 2, ["subset", "{s}", "--bbox", "-118.08", "36.96", "inf", "36.98"],
         "inf", "finite"),
    case("subset-bbox-nan", 2, ["subset", "{s}", "--bbox", "nan", "36.96", "-118.06", "36.98"],
         "nan", "finite"),
    case("subset-bbox-1e999", 2, ["subset", "{s}", "--bbox", "-118.08", "36.96", "1e999",
                                  "36.98"], "1e999", "finite"),
    case("subset-bbox-minus-1e999", 2, ["subset", "{s}", "--bbox", "-1e999", "36.96", "-118.06",
                                        "36.98"], "-1e999", "finite"),
    case("subset-bbox-order", 2, ["subset", "{s}", "--bbox", "-118.06", "36.96", "-118.08",
                                  "36.98"], "--bbox -118.06 36.96 -118.08 36.98", "MINX < MAXX"),
    case("subset-bbox-zero-area", 2, ["subset", "{s}", "--bbox", "-118.08", "36.96", "-118.08",
                                      "36.98"], "--bbox", "MINX < MAXX"),
    case("subset-bbox-lat-95", 2, ["subset", "{s}", "--bbox", "-118.08", "95", "-118.06", "96"],
         "-118.08 95 -118.06 96", "not a place on Earth"),
    case("subset-bbox-lat-minus-95", 2, ["subset", "{s}", "--bbox", "-118.08", "-96", "-118.06",
                                         "-95"], "-118.08 -96 -118.06 -95", "not a place on Earth"),
    case("subset-bbox-lon-200", 2, ["subset", "{s}", "--bbox", "200", "36", "201", "37"],
         "200 36 201 37", "not a place on Earth"),
    case("subset-bbox-utm-numbers-as-degrees", 2,
         ["subset", "{s}", "--bbox", "404000", "4093000", "406500", "4096000"],
         "404000 4093000 406500 4096000", "not a place on Earth"),
    case("subset-bbox-nad83-lat-95", 2,
         ["subset", "{s}", "--bbox", "-118.08", "95", "-118.06", "96", "--crs", "EPSG:4269"],
         "--bbox -118.08 95 -118.06 96 (--crs EPSG:4269)", "not a place on Earth"),
    case("subset-bbox-outside-grid", 2, ["subset", "{s}", "--bbox", "10", "10", "11", "11"],
         "--bbox 10 10 11 11", "outside the grid"),
    case("subset-bbox-commas-then-words", 2, ["subset", "{s}", "--bbox", "1,2,x,4"],
         "--bbox '1 2 x 4'"),
    case("subset-crs-unknown", 2, subset("--crs", "EPSG:99999"), "--crs 'EPSG:99999'"),
    case("subset-crs-word", 2, subset("--crs", "wgs84ish"), "--crs 'wgs84ish'"),
    case("subset-crs-empty", 2, subset("--crs", ""), "--crs ''"),
    case("subset-var-no-frequency", 2, subset("--var", "frequencyZ/HHHH"), "frequencyZ"),
    case("subset-var-no-layer", 2, subset("--var", "frequencyA/XXXX"), "frequencyA/XXXX"),
    case("subset-var-empty", 2, subset("--var", ""), "--var ''"),
    case("subset-var-slash", 2, subset("--var", "/"), "--var '/'"),
    case("subset-var-2d", 2, subset("--var", "frequencyA/projection"), "frequencyA/projection"),
    case("subset-stat-average", 2, subset("--stat", "average"), "--stat", "'average'"),
    case("subset-stat-upper", 2, subset("--stat", "MEAN"), "--stat", "'MEAN'"),
    case("subset-protocol-ftp", 2, subset("--protocol", "ftp"), "--protocol", "'ftp'"),
    case("subset-out-txt", 2, subset("--out", "{t}/s.txt"), "--out {t}/s.txt", "FILE.csv"),
    case("subset-out-empty", 2, subset("--out", ""), "--out"),
    case("subset-plot-jpg", 2, subset("--plot", "{t}/p.jpg"), "--plot {t}/p.jpg", "FILE.png"),
    case("subset-out-under-a-file", 2, subset("--out", "{t}/file.txt/s.csv"),
         "--out {t}/file.txt/s.csv", "not a directory"),
    case("subset-out-proc", 2, subset("--out", "/proc/s.csv"), "--out /proc/s.csv",
         "cannot write"),
    case("subset-out-proc-nc", 2, subset("--out", "/proc/s.nc"), "--out /proc/s.nc"),
    case("subset-out-is-a-directory", 2, subset("--out", "{t}/d.csv"), "--out {t}/d.csv",
         "is a directory"),
    case("subset-out-long-name", 2, subset("--out", f"{{t}}/{LONG}.csv"), "--out {t}/xxx",
         "too long"),
    case("subset-plot-proc-csv-on-stdout", 2, subset("--plot", "/proc/p.png"),
         "--plot /proc/p.png", "cannot write"),
    case("subset-plot-under-a-file", 2, subset("--plot", "{t}/file.txt/p.png"),
         "--plot {t}/file.txt/p.png"),
    case("subset-plot-is-a-directory", 2, subset("--plot", "{t}/d.png"), "--plot {t}/d.png",
         "is a directory"),
    case("subset-out-ok-plot-proc", 2, subset("--out", "{t}/s.csv", "--plot", "/proc/p.png"),
         "--plot /proc/p.png"),
    case("subset-missing-store", 3, ["subset", "{t}/nope.json", "--bbox", *BBOX],
         "{t}/nope.json: no such store"),
    case("subset-missing-weird-store", 3, ["subset", "{t}/a b/ü 100%.json", "--bbox", *BBOX],
         "{t}/a b/ü 100%.json: no such store"),
    case("subset-store-txt", 2, ["subset", "{t}/file.txt", "--bbox", *BBOX], "{t}/file.txt",
         "unknown store format"),
    case("subset-store-dir-json", 2, ["subset", "{t}/d.json", "--bbox", *BBOX], "{t}/d.json",
         "is a directory"),
    case("subset-store-json-list", 2, ["subset", "{t}/list.json", "--bbox", *BBOX],
         "{t}/list.json", "not a kerchunk JSON reference store"),
    case("subset-store-json-null", 2, ["subset", "{t}/null.json", "--bbox", *BBOX],
         "{t}/null.json", "not a kerchunk JSON reference store"),
    case("subset-store-truncated", 2, ["subset", "{t}/truncated.json", "--bbox", *BBOX],
         "{t}/truncated.json", "not a kerchunk JSON reference store"),
    case("subset-store-not-gcov-index", 2, ["subset", "{t}/kerchunk.json", "--bbox", *BBOX],
         "{t}/kerchunk.json", "not a gcov-index store"),
    case("subset-store-parquet-file", 2, ["subset", "{t}/f.parquet", "--bbox", *BBOX],
         "{t}/f.parquet", "is a file"),
    case("subset-store-parquet-empty", 2, ["subset", "{t}/empty.parquet", "--bbox", *BBOX],
         "{t}/empty.parquet", "not a kerchunk Parquet reference store"),
    case("subset-store-long-name", 2, ["subset", f"{{t}}/{LONG}.json", "--bbox", *BBOX],
         "{t}/xxx", "too long"),
    # ---- validate --------------------------------------------------------------------------
    case("validate-no-store", 2, ["validate"], "store"),
    case("validate-two-stores", 2, ["validate", "{s}", "{p}"], "unrecognized arguments"),
    case("validate-sample-negative", 2, ["validate", "{s}", "--sample", "-1"], "--sample", "-1"),
    case("validate-sample-word", 2, ["validate", "{s}", "--sample", "four"], "--sample",
         "'four'"),
    case("validate-sample-decimal", 2, ["validate", "{s}", "--sample", "2.5"], "--sample",
         "'2.5'"),
    case("validate-seed-word", 2, ["validate", "{s}", "--seed", "x"], "--seed", "'x'"),
    case("validate-seed-negative", 2, ["validate", "{s}", "--seed", "-1"], "--seed", "-1"),
    case("validate-protocol-ftp", 2, ["validate", "{s}", "--protocol", "ftp"], "--protocol",
         "'ftp'"),
    case("validate-missing-store", 3, ["validate", "{t}/nope.parquet"],
         "{t}/nope.parquet: no such store"),
    case("validate-missing-weird-store", 3, ["validate", "{t}/h#q/a?b.json"],
         "{t}/h#q/a?b.json: no such store"),
    case("validate-store-txt", 2, ["validate", "{t}/file.txt"], "{t}/file.txt",
         "unknown store format"),
    case("validate-store-dir-json", 2, ["validate", "{t}/d.json"], "{t}/d.json", "directory"),
    case("validate-store-json-list", 2, ["validate", "{t}/list.json"], "{t}/list.json"),
    case("validate-store-json-null", 2, ["validate", "{t}/null.json"], "{t}/null.json"),
    case("validate-store-truncated", 2, ["validate", "{t}/truncated.json"], "{t}/truncated.json"),
    case("validate-store-refs-list", 2, ["validate", "{t}/refs-list.json"], "{t}/refs-list.json"),
    case("validate-store-not-gcov-index", 2, ["validate", "{t}/kerchunk.json"],
         "{t}/kerchunk.json", "not a gcov-index store"),
    case("validate-store-parquet-file", 2, ["validate", "{t}/f.parquet"], "{t}/f.parquet"),
    case("validate-store-parquet-garbage", 2, ["validate", "{t}/badmeta.parquet"],
         "{t}/badmeta.parquet", "not a kerchunk Parquet reference store"),
    case("validate-token-file-missing", 4, ["validate", "{s}", "--token-file", "{t}/nope"],
         "{t}/nope"),
    # ---- info ------------------------------------------------------------------------------
    case("info-no-store", 2, ["info"], "store"),
    case("info-empty-name", 2, ["info", ""], "store ''"),
    case("info-missing", 3, ["info", "{t}/nope.json"], "{t}/nope.json: no such store"),
    case("info-missing-space", 3, ["info", "{t}/my store.json"], "{t}/my store.json: no such store"),
    case("info-missing-unicode", 3, ["info", "{t}/ü ñ 日本.parquet"],
         "{t}/ü ñ 日本.parquet: no such store"),
    case("info-missing-percent", 3, ["info", "{t}/100%.json"], "{t}/100%.json: no such store"),
    case("info-missing-under-a-file", 3, ["info", "{t}/file.txt/s.json"],
         "{t}/file.txt/s.json: no such store"),
    case("info-long-name", 2, ["info", f"{{t}}/{LONG}.json"], "{t}/xxx", "too long"),
    case("info-a-directory", 2, ["info", "{t}/dir"], "{t}/dir", "unknown store format"),
    case("info-a-directory-slash", 2, ["info", "{t}/dir/"], "{t}/dir/", "unknown store format"),
    case("info-a-directory-named-json", 2, ["info", "{t}/d.json"], "{t}/d.json", "directory"),
    case("info-a-text-file", 2, ["info", "{t}/file.txt"], "{t}/file.txt", "unknown store format"),
    case("info-json-list", 2, ["info", "{t}/list.json"], "{t}/list.json",
         "not a kerchunk JSON reference store"),
    case("info-json-null", 2, ["info", "{t}/null.json"], "{t}/null.json",
         "not a kerchunk JSON reference store"),
    case("info-json-string", 2, ["info", "{t}/str.json"], "{t}/str.json"),
    case("info-json-number", 2, ["info", "{t}/num.json"], "{t}/num.json"),
    case("info-json-true", 2, ["info", "{t}/true.json"], "{t}/true.json"),
    case("info-json-empty", 2, ["info", "{t}/empty.json"], "{t}/empty.json"),
    case("info-json-whitespace", 2, ["info", "{t}/ws.json"], "{t}/ws.json"),
    case("info-json-truncated", 2, ["info", "{t}/truncated.json"], "{t}/truncated.json"),
    case("info-json-empty-object", 2, ["info", "{t}/obj.json"], "{t}/obj.json",
         "not a kerchunk JSON reference store"),
    case("info-json-refs-list", 2, ["info", "{t}/refs-list.json"], "{t}/refs-list.json"),
    case("info-json-refs-string", 2, ["info", "{t}/refs-str.json"], "{t}/refs-str.json"),
    case("info-json-not-gcov-index", 2, ["info", "{t}/kerchunk.json"], "{t}/kerchunk.json",
         "not a gcov-index store"),
    case("info-json-latin1", 2, ["info", "{t}/latin1.json"], "{t}/latin1.json"),
    case("info-json-binary", 2, ["info", "{t}/binary.json"], "{t}/binary.json"),
    case("info-parquet-a-file", 2, ["info", "{t}/f.parquet"], "{t}/f.parquet", "is a file"),
    case("info-parquet-empty-dir", 2, ["info", "{t}/empty.parquet"], "{t}/empty.parquet"),
    case("info-parquet-garbage-metadata", 2, ["info", "{t}/badmeta.parquet"],
         "{t}/badmeta.parquet"),
    case("info-two-stores", 2, ["info", "{s}", "{p}"], "unrecognized arguments"),
]


def test_the_table_is_large_and_covers_every_command():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(CASES) >= 150
    by_command = {cmd: sum(c.id.startswith(cmd + "-") for c in CASES)
                  for cmd in ("cli", "search", "build", "subset", "validate", "info")}
    assert all(n >= 10 for n in by_command.values()), by_command


# ---------------------------------------------------------------------------------------------
# the world each case runs in


@pytest.fixture(scope="module")
def local_stores(stack, tmp_path_factory):
    """A JSON and a Parquet store of the stack's granules, read from local files."""
    d = tmp_path_factory.mktemp("table-stores")
    paths = [str(p) for p in stack["paths"]]
    return {fmt: build(paths, d / f"s.{fmt}", cache=False).store for fmt in ("json", "parquet")}


def make_world(t: Path, stack: dict, store: Path) -> None:
    gname = stack["paths"][0].name

    def put(rel: str, content: str | bytes) -> None:
        p = t / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        p.write_bytes(content)

    put("file.txt", "just some text\n")
    put("text.h5", "just some text, named like HDF5\n")
    put("dir/inner.txt", "x")
    for d in ("d.json", "d.csv", "d.png", "d.geojson", "empty.parquet", f"dirg/{gname}"):
        (t / d).mkdir(parents=True)
    put("f.parquet", "not a store")
    put("badmeta.parquet/.zmetadata", "garbage")
    stores = {"list": "[]", "null": "null", "str": '"store"', "num": "42", "true": "true",
              "empty": "", "ws": "   \n", "obj": "{}", "refs-list": '{"version": 1, "refs": []}',
              "refs-str": '{"version": 1, "refs": "x"}',
              "kerchunk": '{"version": 1, "refs": {".zgroup": "{\\"zarr_format\\": 2}"}}'}
    for name, text in stores.items():
        put(f"{name}.json", text)
    put("truncated.json", store.read_bytes()[:2000])
    put("latin1.json", b'{"version": 1, "refs": {"caf\xe9": 1}}')
    put("binary.json", bytes(range(256)))
    put("lists/empty.txt", "")
    put("lists/blank.txt", "\n   \n\t\n")
    put("lists/latin1.txt", b"caf\xe9.h5\n")
    put("lists/binary.txt", bytes(range(256)))
    put("lists/nul.txt", "a\x00b\n")
    put("lists/junk.txt", "hello\nworld\n")
    put("lists/qa.txt", f"{stack['qa']}\n")
    put("lists/missing.txt", f"{t}/nowhere/{gname}\n")
    put("lists/ftp.txt", f"ftp://host/{gname}\n")
    put("geo/bad.geojson", "not json")
    put("geo/list.geojson", "[]")
    put("geo/null.geojson", "null")
    put("geo/emptyfc.geojson", '{"type": "FeatureCollection", "features": []}')
    put("geo/nogeom.geojson", '{"type": "Feature", "geometry": null, "properties": {}}')
    put("geo/far.geojson", '{"type": "Polygon", "coordinates": '
        '[[[-118, 95], [-117, 95], [-117, 96], [-118, 95]]]}')
    put("geo/latin1.geojson", b'{"type": "caf\xe9"}')
    put("geo/strcoords.geojson", '{"type": "Polygon", "coordinates": "abc"}')
    put("geo/featuresnum.geojson", '{"type": "FeatureCollection", "features": 5}')
    put("geo/featuresstr.geojson", '{"type": "FeatureCollection", "features": ["a"]}')
    put("geo/selfx.geojson", '{"type": "Polygon", "coordinates": '
        '[[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}')
    put("tokens/empty", "")
    put("tokens/latin1", b"\xff\xfe")
    put(f"fake/{gname}", b"<html>not a granule</html>" * 100)
    put(f"empty/{gname}", b"")
    (t / "copy").mkdir()
    os.link(stack["paths"][0], t / "copy" / gname)


def snapshot(*roots: Path) -> dict:
    """Every file and directory under ``roots``: small files by content, large ones by size
    and modification time."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            st = p.lstat()
            if p.is_dir():
                out[str(p)] = "dir"
            elif st.st_size > 1 << 20:
                out[str(p)] = (st.st_size, st.st_mtime_ns)
            else:
                out[str(p)] = p.read_bytes()
    return out


@pytest.fixture
def offline(monkeypatch):
    """Every address of the archive on a closed port of loopback; no credentials around."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GCOV_INDEX_CMR_HOST", NOWHERE)
    monkeypatch.setenv("GCOV_INDEX_S3CREDENTIALS_URL", f"http://{NOWHERE}/s3credentials")
    monkeypatch.setenv("GCOV_INDEX_HTTPS_BASE", f"http://{NOWHERE}/NISAR")
    monkeypatch.setenv("GCOV_INDEX_EDL_URL", f"http://{NOWHERE}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{NOWHERE}")
    monkeypatch.delenv(DEBUG, raising=False)


DEBUG = "GCOV_INDEX_DEBUG"


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path, stack, local_stores, offline, monkeypatch, capsys):
    t = tmp_path / "world"
    make_world(t, stack, local_stores["json"])
    fill = {"t": str(t), "g": str(stack["paths"][0]), "gname": stack["paths"][0].name,
            "qa": str(stack["qa"]), "s": str(local_stores["json"]),
            "p": str(local_stores["parquet"])}
    for k, v in c.env.items():
        monkeypatch.setenv(k, v.format(**fill))
    watched = (tmp_path, local_stores["json"].parent, stack["dir"])
    before = snapshot(*watched)
    rc = main([a.format(**fill) for a in c.argv])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("gcov-index: error: "), line
    assert (rc, "Traceback" in err) == (c.code, False), line
    for e in c.expect:
        assert e.format(**fill) in line, line
    assert out == ""
    assert snapshot(*watched) == before


# ---------------------------------------------------------------------------------------------
# what must work where the cases above fail


def test_weird_local_paths_work_everywhere(stack, tmp_path, offline, capsys):
    """Granules, lists, stores and outputs in folders whose names hold a space, non-ASCII,
    '%', '#', '?', ';' and a quote: build, info, subset and validate all work (JSON and
    Parquet), and the store names the granules' paths as they are."""
    folder = tmp_path / " ".join(WEIRD)
    folder.mkdir()
    granules = []
    for p in stack["paths"]:
        os.link(p, folder / p.name)
        granules.append(str(folder / p.name))
    listing = folder / "granules ü%.txt"
    listing.write_text("\n".join(granules[1:]) + "\n")
    for fmt in ("json", "parquet"):
        store = folder / f"store ü%20#.{fmt}"
        assert main(["build", granules[0], f"@{listing}", "--out", str(store), "--quiet",
                     "--no-cache"]) == 0, capsys.readouterr().err
        assert "3 granules" in capsys.readouterr().out
        assert main(["info", str(store)]) == 0
        assert "3 granules" in capsys.readouterr().out
        csv = folder / f"series ü%.{fmt}.csv"
        png = folder / f"plot #1 {fmt}.png"
        assert main(["subset", str(store), "--bbox", *BBOX, "--out", str(csv), "--plot",
                     str(png)]) == 0, capsys.readouterr().err
        assert len(csv.read_text().splitlines()) == 4 and png.stat().st_size > 1000
        assert main(["validate", str(store), "--sample", "1"]) == 0, capsys.readouterr()
        assert "ok: the store matches its sources" in capsys.readouterr().out
    from gcov_index.store.layout import store_attrs

    urls = [g["url"] for g in store_attrs(folder / "store ü%20#.json")["granules"]]
    assert urls == [f"file://{g}" for g in granules]


def test_a_wkt_area_longer_than_a_file_name_is_wkt():
    q = SearchQuery.from_options(aoi=LONG_WKT)
    assert len(LONG_WKT) > 255 and q.aoi.startswith("POLYGON") and "-118.08" in q.aoi


def test_a_bbox_given_with_commas_or_negative_infinity_reaches_our_check(local_stores,
                                                                        offline, capsys):
    store = str(local_stores["json"])
    assert main(["subset", store, "--bbox", ",".join(BBOX)]) == 0
    by_commas = capsys.readouterr().out
    assert main(["subset", store, "--bbox", *BBOX]) == 0
    assert capsys.readouterr().out == by_commas and len(by_commas.splitlines()) == 4


def test_debug_shows_the_traceback(offline, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(DEBUG, "1")
    assert main(["info", str(tmp_path / "nope.json")]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("gcov-index: error: ")


def test_an_unexpected_error_is_one_line_naming_the_input(local_stores, offline, capsys,
                                                         monkeypatch):
    import gcov_index.read.info as info

    def broken(store):
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(info, "store_info", broken)
    assert main(["info", str(local_stores["json"])]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("gcov-index: error: info ") and str(local_stores["json"]) in line
    assert "unexpected RuntimeError: a bug" in line and DEBUG in line


def test_library_noise_does_not_reach_stderr(local_stores, offline, capsys, monkeypatch):
    """Warnings, log records and "Exception ignored" reports of libraries, met while a command
    runs, stay off stderr: the one line is all."""
    import logging
    import warnings

    import gcov_index.read.info as info

    class Leaky:
        def __del__(self):
            raise ValueError("ignored in __del__")

    def noisy(store):
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        logging.getLogger("asyncio").error("Task was destroyed but it is pending!")
        Leaky()  # collected at once: "Exception ignored in ..."
        raise RuntimeError("the real failure")

    monkeypatch.setattr(info, "store_info", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        assert main(["info", str(local_stores["json"])]) == 1
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_closed_stdout_is_not_an_error(local_stores, offline, capsys, monkeypatch):
    import gcov_index.read.info as info

    class Gone:
        def text(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(info, "store_info", lambda store: Gone())
    assert main(["info", str(local_stores["json"])]) == 141
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------
# Ctrl-C at any moment: exit 130, one line, nothing written


class Interrupt(importlib.abc.MetaPathFinder):
    """Raises KeyboardInterrupt when ``name`` is imported: a Ctrl-C during the imports."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path, target=None):
        if fullname == self.name:
            raise KeyboardInterrupt
        return None


@pytest.mark.parametrize("where", ["parse", "import-subset", "import-xarray", "check-store",
                                   "read", "write-csv", "csv-to-stdout", "wrapped"])
def test_ctrl_c_anywhere_in_the_process(where, local_stores, offline, tmp_path, capsys,
                                        monkeypatch):
    import gcov_index.cli as cli

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "parse":
        monkeypatch.setattr(cli, "_glue_values", interrupt)
    elif where in ("import-subset", "import-xarray"):
        name = "gcov_index.read.subset" if where == "import-subset" else "xarray"
        for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, m)
        monkeypatch.setattr(sys, "meta_path", [Interrupt(name), *sys.meta_path])
        if where == "import-xarray":
            for m in [m for m in sys.modules if m.startswith("gcov_index.read")]:
                monkeypatch.delitem(sys.modules, m)
    elif where == "check-store":
        monkeypatch.setattr(cli, "_check_store", interrupt)
    else:
        import gcov_index.read.subset as sub

        if where == "read":
            monkeypatch.setattr(sub, "_read", interrupt)
        elif where == "write-csv":
            monkeypatch.setattr(sub, "atomic_file", interrupt)
        elif where == "csv-to-stdout":
            monkeypatch.setattr(sub, "to_frame", interrupt)
        else:
            def wrapped(*args, **kwargs):
                try:
                    raise KeyboardInterrupt
                except KeyboardInterrupt as e:
                    raise RuntimeError("a library caught it and raised its own") from e

            monkeypatch.setattr(sub, "_read", wrapped)
    before = snapshot(tmp_path, local_stores["json"].parent)
    out = [] if where == "csv-to-stdout" else ["--out", str(tmp_path / "s.csv")]
    rc = main(["subset", str(local_stores["json"]), "--bbox", *BBOX, *out])
    err = capsys.readouterr().err.splitlines()
    assert rc == 130 and err == ["gcov-index: error: interrupted; nothing was written"]
    assert snapshot(tmp_path, local_stores["json"].parent) == before


def test_ctrl_c_after_one_output_says_which(local_stores, offline, tmp_path, capsys,
                                            monkeypatch):
    import gcov_index.read.subset as sub

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sub, "plot_series", interrupt)
    csv, png = tmp_path / "s.csv", tmp_path / "s.png"
    rc = main(["subset", str(local_stores["json"]), "--bbox", *BBOX, "--out", str(csv),
               "--plot", str(png)])
    assert rc == 130 and capsys.readouterr().err.splitlines() == [
        f"gcov-index: error: interrupted after writing {csv}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv"]


def _run_gcov_index(*argv: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), GCOV_INDEX_CMR_HOST=NOWHERE)
    env.pop(DEBUG, None)
    return subprocess.Popen([sys.executable, "-m", "gcov_index", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_sigint_while_blocked_reading_a_list(tmp_path):
    """A real Ctrl-C in a real process, at a moment we know: blocked reading an @list that is
    a FIFO no one writes to."""
    fifo = tmp_path / "granules.txt"
    os.mkfifo(fifo)
    proc = _run_gcov_index("build", f"@{fifo}", "--out", str(tmp_path / "s.json"), cwd=tmp_path)
    opened = threading.Event()

    def open_writer():  # returns once the process has opened the FIFO for reading
        with open(fifo, "w"):
            opened.set()
            proc.wait()

    threading.Thread(target=open_writer, daemon=True).start()
    assert opened.wait(60)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out == ""
    assert err.splitlines() == ["gcov-index: error: interrupted; nothing was written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["granules.txt"]


def test_sigint_during_the_imports_and_at_start_up(local_stores, tmp_path):
    """SIGINT while the heavy libraries load (numpy mapped, the command not yet started), and
    right after the process starts: one line and 130 once gcov-index's entry runs. Before
    that, Python's own start-up (site, .pth files) and the package's few statements (no
    import but ``_version``) may end with Python's report; no frame of the command is in it."""
    store = str(local_stores["json"])
    proc = _run_gcov_index("subset", store, "--bbox", *BBOX, "--out", str(tmp_path / "s.csv"),
                           cwd=tmp_path)
    while proc.poll() is None and not _loaded(proc.pid, "numpy"):
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (130, "")
    assert err.splitlines() == ["gcov-index: error: interrupted; nothing was written"]
    for delay in (0.0, 0.01, 0.02, 0.04, 0.08):
        proc = _run_gcov_index("subset", store, "--bbox", *BBOX, "--out",
                               str(tmp_path / "s.csv"), cwd=tmp_path)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        ours = [f for f in re.findall(r'File "([^"]+)"', err) if f.startswith(str(PACKAGE))]
        assert set(ours) <= {str(PACKAGE / "__init__.py"), str(PACKAGE / "_version.py")}, err
        if "gcov-index" in err:
            assert proc.returncode == 130 and err.splitlines() == [
                "gcov-index: error: interrupted; nothing was written"]
    assert not (tmp_path / "s.csv").exists()


# ---------------------------------------------------------------------------------------------
# refusals met on the wire: one line, the right code, in a real process too


def test_a_redirecting_credentials_endpoint_is_named(stack, tmp_path, offline, capsys,
                                                     monkeypatch):
    """An s3credentials endpoint that answers with a redirect (to a login page) is a token not
    accepted, said so, naming where it sent us: not "the token was rejected (HTTP 302)"."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "https://urs.example.org/oauth/authorize?client=x")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/s3credentials"
        monkeypatch.setenv("GCOV_INDEX_S3CREDENTIALS_URL", endpoint)
        monkeypatch.setenv("EARTHDATA_TOKEN", "a-token")
        name = stack["paths"][0].name
        url = f"s3://sds-n-cumulus-prod-nisar-products/C/{name.removesuffix('.h5')}/{name}"
        assert main(["build", url, "--out", str(tmp_path / "s.json"), "--no-cache"]) == 4
    finally:
        server.shutdown()
        server.server_close()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"gcov-index: error: {endpoint}: redirected to urs.example.org")
    assert "a-token" not in line and not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("store, protocol", [("s3.json", "s3"), ("s3.json", "https")])
def test_a_rejected_token_is_one_line_in_a_real_process(stores, archive, tmp_path, store,
                                                        protocol):
    """The rejected token, read over S3 and over HTTPS: exit 4 and one line, in a process of
    its own (no asyncio reports of abandoned reads, no runtime aborting at exit)."""
    env = {**os.environ, **archive.env, "PYTHONPATH": str(REPO), "EARTHDATA_TOKEN": "not-a-token",
           "GCOV_INDEX_CACHE": str(tmp_path / "cache")}
    env.pop(DEBUG, None)
    proc = subprocess.run([sys.executable, "-m", "gcov_index", "subset", str(stores[store]),
                           "--bbox", *BBOX, "--protocol", protocol], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (4, ""), proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"gcov-index: error: {stores[store]}: ") and "not-a-token" not in line


def test_a_search_build_refuses_an_out_that_is_not_a_store_before_asking_cmr(tmp_path, capsys,
                                                                            monkeypatch):
    """A user's JSON at --out is refused before the search (CMR here would be unreachable)."""
    monkeypatch.setenv("GCOV_INDEX_CMR_HOST", "127.0.0.1:9")
    mine = tmp_path / "mine.json"
    mine.write_text('{"a": 1}')
    rc = main(["build", "--aoi", "-118,36,-117,37", "--out", str(mine)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not a gcov-index store" in err[0], err
    assert mine.read_text() == '{"a": 1}'
