"""The README's examples run as written, against the demo's archive.

A code block meant to run is marked by an HTML comment on the line before its fence, which a
reader of the rendered README does not see:

    <!-- readme-test: NAME -->
    ```bash            (or ```python)

Every marked block runs, in README order, in one working folder, so a block may use what an
earlier one wrote (``stack.json``, ``both.json``). The archive is the demo's
(:mod:`tests.support.demo`): the seed's granules over Afar in a :class:`LocalArchive`, behind
a :class:`CMRService` answering asf_search, found through the environment a user would set
(``archive.env`` + ``cmr.env``: ``GCOV_INDEX_CMR_HOST``, ``EARTHDATA_TOKEN``,
``AWS_ENDPOINT_URL``, ...). The only stand-in a block does not see in its own text: NASA's
``s3credentials`` address, which the plain-xarray block asks with ``requests``, is answered
by the local one; and ``NETRC`` names a file with a login for the credentials host, the trap
that makes ``requests`` send it instead of the block's token. The files a reader brings are written first: ``aoi.geojson`` (the seed's
area) and ``granules.txt`` (the archive's s3 URLs).

``bash`` blocks: each command (``\\`` continues a line, ``#`` starts a comment) must be
``gcov-index ...``, run in this process through :func:`gcov_index.cli.main`, or ``export
NAME=...`` (``...``: the value is the reader's, set by the archive here). Each must exit 0 and
give what it says: a search lists granules, a build writes its ``--out``, a subset gives a
non-empty series of finite values. ``python`` blocks are executed, each in a fresh namespace,
and their names checked below.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shlex
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = re.compile(r"^<!-- readme-test: (?P<name>[\w-]+) -->\n```(?P<lang>bash|python)\n"
                  r"(?P<code>.*?)^```$", re.M | re.S)
NASA_CREDENTIALS = "https://nisar.asf.earthdatacloud.nasa.gov/s3credentials"


@dataclass
class Block:
    name: str
    lang: str
    code: str
    line: int  # of the fence, 1-based


def readme_blocks(text: str | None = None) -> list[Block]:
    text = README.read_text() if text is None else text
    return [Block(m["name"], m["lang"], m["code"], text.count("\n", 0, m.start()) + 2)
            for m in MARK.finditer(text)]


BLOCKS = readme_blocks()


# ---------------------------------------------------------------------------------------
# running the blocks


@dataclass
class Ran:
    """What one block did: each command (bash) or the namespace it left (python)."""

    commands: list[dict] = field(default_factory=list)  # {"line", "args", "rc", "out", "err"}
    namespace: dict = field(default_factory=dict)
    error: str | None = None  # the first failure, with the traceback or the command's stderr


def bash_commands(code: str) -> list[tuple[str, list[str]]]:
    """(the logical line, its words) for each command of a bash block."""
    out, line = [], ""
    for raw in code.splitlines():
        if raw.rstrip().endswith("\\"):
            line += raw.rstrip()[:-1] + " "
            continue
        line += raw
        words = shlex.split(line, comments=True)
        if words:
            out.append((line.strip(), words))
        line = ""
    return out


def _cli(args: list[str]) -> tuple[int, str, str]:
    from gcov_index.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(args)
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def run_bash(block: Block, setenv) -> Ran:
    ran = Ran()
    for line, words in bash_commands(block.code):
        if words[0] == "export":
            name, _, value = words[1].partition("=")
            if value != "...":  # "...": the reader's value; the archive's is set already
                setenv(name, value)
            continue
        if words[0] != "gcov-index":
            ran.error = f"{line}: not a gcov-index command; the test runs only those"
            return ran
        rc, out, err = _cli(words[1:])
        ran.commands.append({"line": line, "args": words[1:], "rc": rc, "out": out, "err": err})
        problem = (f"exit {rc}" if rc != 0 else
                   "NoDataInBounds" if "NoDataInBounds" in err else
                   "an error on stderr" if "error:" in err else None)
        if problem:
            ran.error = f"{line}: {problem}\n{err[-2000:]}"
            return ran
    return ran


def run_python(block: Block, setenv=None) -> Ran:
    ran = Ran()
    # the block's namespace is a module, as a user's script is: what it defines pickles
    # (Icechunk pickles a refreshable-credentials callback)
    module = types.ModuleType(f"readme_{block.name.replace('-', '_')}")
    sys.modules[module.__name__] = module
    ns: dict = module.__dict__
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, f"README.md:{block.line} ({block.name})", "exec"), ns)
    except Exception:
        ran.error = traceback.format_exc()[-3000:]
    ran.namespace = ns
    return ran


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    """Every marked block run, in order, in one folder, against the demo's archive."""
    import requests

    from tests.support.cmr import SEED_AOI, CMRService, publish_seed
    from tests.support.services import LocalArchive

    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    work.mkdir()
    with LocalArchive(root / "archive") as archive, pytest.MonkeyPatch.context() as mp:
        fx, records = publish_seed(archive, root / "granules")
        with CMRService(records) as cmr:
            for k, v in (archive.env | cmr.env).items():
                mp.setenv(k, v)
            mp.setenv("GCOV_INDEX_CACHE", str(root / "cache"))
            mp.chdir(work)
            local = os.environ["GCOV_INDEX_S3CREDENTIALS_URL"]
            real_request = requests.Session.request

            def request(self, method, url, *args, **kwargs):  # NASA's s3credentials, answered
                if isinstance(url, str) and url.startswith(NASA_CREDENTIALS):  # by the archive's
                    url = local + url[len(NASA_CREDENTIALS):]
                return real_request(self, method, url, *args, **kwargs)

            mp.setattr(requests.Session, "request", request)
            # the trap the plain-xarray blocks must avoid: a ~/.netrc entry for the credentials
            # host, which requests would put in place of an explicit Bearer header (401)
            netrc = root / "netrc"
            netrc.write_text(f"machine {urlparse(local).hostname} login someone password x\n")
            netrc.chmod(0o600)
            mp.setenv("NETRC", str(netrc))
            # what a reader brings: an area file and a list of granules
            ring = SEED_AOI.removeprefix("POLYGON ((").removesuffix("))").split(", ")
            (work / "aoi.geojson").write_text(json.dumps({
                "type": "FeatureCollection", "features": [{
                    "type": "Feature", "properties": {}, "geometry": {
                        "type": "Polygon",
                        "coordinates": [[[float(v) for v in p.split()] for p in ring]]}}]}))
            (work / "granules.txt").write_text("".join(
                archive.s3_url(s.granule.filename) + "\n" for s in [*fx.latest, *fx.superseded]))
            done = {}
            for block in BLOCKS:
                run = run_bash if block.lang == "bash" else run_python
                done[block.name] = run(block, mp.setenv)
            yield {"ran": done, "work": work, "fx": fx}


# ---------------------------------------------------------------------------------------
# what each block must give


def _finite(values) -> bool:
    values = np.asarray(values, dtype=float)
    return values.size > 0 and bool(np.isfinite(values).all())


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def check_command(cmd: dict, work: Path) -> None:
    """What a gcov-index command must give, beyond exit 0."""
    import xarray as xr

    args, out = cmd["args"], cmd["out"]
    verb = args[0]
    opts = dict(zip(args, [*args[1:], None], strict=True))
    if verb == "search":
        assert re.search(r"^\d+ granules? ", out, re.M), out
        assert "NISAR_L2_PR_GCOV_" in out
    elif verb == "build" and "--update" in args:  # the store given, written or left as it was
        assert (work / opts["--update"]).exists(), cmd["line"]
        assert out.startswith(("wrote ", f"{opts['--update']}: up to date")), out
    elif verb == "build" and "--dry-run" not in args:
        assert (work / opts["--out"]).exists(), cmd["line"]
        assert out.startswith("wrote "), out
    elif verb == "info":
        assert out.startswith("store ") and "EPSG:32637" in out, out
    elif verb == "subset":
        layers = args.count("--var") or 1
        target = opts.get("--out")
        if target is None:
            rows = _csv(out)
        elif target.endswith(".csv"):
            rows = _csv((work / target).read_text())
        else:
            with xr.open_dataset(work / target) as ds:  # statistics, not their ancillaries
                stats = [v for v in ds.data_vars.values() if "layer" in v.attrs]
                assert ds.sizes["time"] > 0 and len(stats) == layers
                for v in stats:
                    assert _finite(v.values), v
            rows = None
        if rows is not None:
            assert rows, cmd["line"]
            columns = list(rows[0])
            assert columns[:7] == ["time", "granuleId", "stack", "track", "frame", "direction",
                                   "maturity"]
            values = [c for c in columns if re.fullmatch(r"frequency[AB]/\w+", c)]
            assert len(values) == layers, columns
            assert _finite([[r[c] for c in values] for r in rows]), rows
        if "--plot" in opts:
            assert (work / opts["--plot"]).stat().st_size > 0


def _series(da, n: int) -> bool:
    """``da`` is a series of ``n`` time steps, every value finite."""
    assert da.sizes["time"] == n and _finite(da.values), da
    return True


def _use(ran: Ran, work: Path) -> bool:
    search, from_search, from_list, _ = ran.commands
    return ("superseded by" in search["out"]  # --show-superseded
            and "5 granules" in from_search["out"] and "5 granules" in from_list["out"])


def _python_search(ran: Ran, work: Path) -> bool:
    found, built = ran.namespace["found"], ran.namespace["built"]
    table = ran.namespace["table"]
    return (len(found.granules) == 5 and len(found.superseded) == 2
            and list(table["granuleId"]) == [g.granule_id for g in found.granules]
            # stack.json was built by the "use" block: this build finds nothing new
            and list(built.to_dataframe()["status"]) == ["kept"] * 5
            and {g.granule.maturity for g in found.granules} == {"BETA"}
            and [s["id"] for s in built.stacks] == ["T172A_F008"])


def _python_open(ran: Ran, work: Path) -> bool:
    return (ran.namespace["hh"].rio.crs.to_epsg() == 32637
            and _series(ran.namespace["series"], 5))


def _stacks(ran: Ran, work: Path) -> bool:
    build, info, _, one = ran.commands
    rows = _csv((work / "both.csv").read_text())
    return ("gcov-index: warning: 2 stacks" in build["err"]
            and "stack T077D_F175" in info["out"] and "stack T172A_F008" in info["out"]
            and len(rows) == 6 and {r["stack"] for r in rows} == {"T077D_F175", "T172A_F008"}
            and {r["stack"] for r in _csv(one["out"])} == {"T172A_F008"})


def _python_stacks(ran: Ran, work: Path) -> bool:
    ns = ran.namespace
    return (ns["ascending"].dataset.sizes["time"] == 5
            and ns["descending"].dataset.sizes["time"] == 1
            and _series(ns["rows"]["frequencyA_HHHH"], 6)
            and set(ns["rows"]["stack"].values) == {"T077D_F175", "T172A_F008"})


def _subset(ran: Ran, work: Path) -> bool:
    return len(_csv(ran.commands[0]["out"])) == 5


def _plain_xarray(ran: Ran, work: Path) -> bool:
    ns = ran.namespace
    return (ns["ds"]["HHHH"].rio.crs.to_epsg() == 32637 and _series(ns["series"], 5)
            and ns["desc"].sizes["time"] == 1 and "science" in ns["dt"].children
            and _series(ns["pq"].HHHH.rio.clip_box(40.84, 13.25, 40.86, 13.27, crs="EPSG:4326")
                        .mean(["yCoordinates", "xCoordinates"]), ns["pq"].sizes["time"]))


def _workers(ran: Ran, work: Path) -> bool:
    (build,) = ran.commands  # scanned in 2 worker processes (test_workers compares the bytes)
    refs = json.loads((work / "stack-workers.json").read_text())["refs"]
    return "5 granules" in build["out"] and "science/LSAR/GCOV/grids/frequencyA/HHHH/0.0.0" in refs


def _icechunk(ran: Ran, work: Path) -> bool:
    build, _, subset = ran.commands
    return "5 granules" in build["out"] and len(_csv(subset["out"])) == 5


def _python_icechunk(ran: Ran, work: Path) -> bool:
    ns = ran.namespace
    return (ns["ds"]["HHHH"].rio.crs.to_epsg() == 32637 and _series(ns["series"], 5)
            and ns["log"][0].startswith("gcov-index build: 5 granules")
            and ns["hh"].sizes["time"] == 5)


def _recipes(ran: Ran, work: Path) -> bool:
    import xarray as xr

    update, _ = ran.commands  # the subset: its files, below
    with xr.open_dataset(work / "afar.nc") as nc:
        cf = nc.attrs["Conventions"] == "CF-1.10" and _series(nc["frequencyA_HHHH"], 5)
    return "nothing new" in update["out"] and cf and (work / "afar.png").stat().st_size > 0


def _python_recipes(ran: Ran, work: Path) -> bool:
    ns = ran.namespace
    return (ns["grid"]["HHHH"].chunks is not None and ns["monthly"].sizes["time"] == 3
            and _finite(ns["monthly"].mean(["yCoordinates", "xCoordinates"]))
            and ns["cf"].attrs["Conventions"] == "CF-1.10" and _series(ns["series"]["frequencyA_HHHH"], 5))


# block name -> what it must give, beyond running without an error
CHECKS = {"use": _use, "python-search": _python_search, "python-open": _python_open,
          "stacks": _stacks, "python-stacks": _python_stacks, "subset": _subset,
          "plain-xarray": _plain_xarray, "workers": _workers, "icechunk": _icechunk,
          "python-icechunk": _python_icechunk, "recipes": _recipes,
          "python-recipes": _python_recipes}


def test_the_readme_marks_the_blocks_it_means_to_run():
    names = [b.name for b in BLOCKS]
    assert names == list(dict.fromkeys(names)), "two blocks with one name"
    assert set(names) == set(CHECKS), "a marked block without its check, or a check without"
    text = README.read_text()
    # every block using an area, a box or a store's data is marked, so it is run
    fences = re.findall(r"^```\w*\n(.*?)^```$", text, re.M | re.S)
    marked = {b.code for b in BLOCKS}
    for code in fences:
        if re.search(r"--aoi|--bbox|clip_box|aoi=|open_store\(|open_dataset\(|^gcov-index \w",
                     code, re.M):
            assert code in marked, f"a README example that no test runs:\n{code}"
    # the demo's invented place in California is gone: the examples use the real frame's
    assert "-118" not in text and "36.96" not in text


@pytest.mark.parametrize("name", [b.name for b in BLOCKS])
def test_readme_block_runs_as_written(readme, name):
    ran = readme["ran"][name]
    assert ran.error is None, f"README block {name!r} failed:\n{ran.error}"
    for cmd in ran.commands:
        check_command(cmd, readme["work"])
    assert CHECKS[name](ran, readme["work"]), f"README block {name!r} ran but gave too little"


def test_bash_commands_are_split_as_a_shell_would():
    code = ('export EARTHDATA_TOKEN=...   # a comment\n'
            "gcov-index search --aoi 'POLYGON ((1 2, 3 4))' \\\n    --start 2025-11-15  # x\n")
    assert [words for _, words in bash_commands(code)] == [
        ["export", "EARTHDATA_TOKEN=..."],
        ["gcov-index", "search", "--aoi", "POLYGON ((1 2, 3 4))", "--start", "2025-11-15"]]
    found = readme_blocks("text\n<!-- readme-test: a -->\n```bash\ngcov-index info s.json\n```\n"
                          "```bash\nnot marked\n```\n")
    assert [(b.name, b.lang, b.code, b.line) for b in found] == [
        ("a", "bash", "gcov-index info s.json\n", 3)]
