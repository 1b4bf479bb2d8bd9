"""The house rules (README, "Architecture"), enforced on the source with ``ast``:

- rooms in data-flow order, io -> discover -> index -> store -> read -> cli; a module imports
  only from its own room, the ground floor, or rooms to its left;
- no function-level import of a gcov_index module (that would be a cycle dodged) except in the
  two doors, ``cli`` and the package face, which import lazily to start fast;
- nothing in the package is a test stand-in: no mocks, no servers, no test-only libraries.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gcov_index"
GROUND = {"_version", "_time", "_log", "errors", "product", "granule"}
ORDER = ["io", "discover", "index", "store", "read", "cli"]
DOORS = {"cli", "__init__", "__main__"}  # may import any room, lazily
TEST_ONLY = {"moto", "boto3", "botocore", "trustme", "pytest", "unittest", "http",
             "socketserver"}


def room(module: str) -> str:
    """``gcov_index.read.subset`` -> ``read``; ``gcov_index.errors`` -> ``errors``."""
    return module.split(".")[1] if "." in module else ""


def rank(r: str) -> int:
    if r in GROUND:
        return -1
    if r in DOORS:
        return len(ORDER)
    return ORDER.index(r)


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        yield path, name, is_pkg


def imports(path: Path, name: str, is_pkg: bool):
    """(imported module, line, at function level) for every import in the file."""
    tree = ast.parse(path.read_text())
    package = name if is_pkg else name.rpartition(".")[0]
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef,
                                                               ast.AsyncFunctionDef))]
    inner = {id(n) for f in functions for n in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in inner
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno, id(node) in inner


ALL = list(modules())


def test_the_package_has_the_rooms_of_the_flow():
    rooms = {room(name) for _, name, _ in ALL if "." in name}
    assert set(ORDER) - {"cli"} <= rooms
    assert rooms <= set(ORDER) | GROUND | DOORS, rooms - set(ORDER) - GROUND - DOORS


@pytest.mark.parametrize("path, name, is_pkg", ALL, ids=[n for _, n, _ in ALL])
def test_imports_go_only_downward(path, name, is_pkg):
    here = room(name) if "." in name else "__init__"
    wrong = []
    for target, line, in_function in imports(path, name, is_pkg):
        if not target.startswith("gcov_index"):
            continue
        if target == "gcov_index":
            wrong.append(f"line {line}: imports the package face")
            continue
        there = room(target)
        if here in DOORS:
            continue
        if rank(there) > rank(here):
            wrong.append(f"line {line}: {target} is later in the flow than {here}/")
        elif rank(there) == rank(here) and there != here and here not in GROUND:
            wrong.append(f"line {line}: {target} is a sibling room of {here}/")
        if in_function:
            wrong.append(f"line {line}: function-level import of {target} (a cycle dodged?)")
    assert not wrong, f"{path.relative_to(PACKAGE.parent)}: " + "; ".join(wrong)


@pytest.mark.parametrize("path, name, is_pkg", ALL, ids=[n for _, n, _ in ALL])
def test_no_test_stand_in_is_shipped(path, name, is_pkg):
    used = {t.split(".")[0] for t, _, _ in imports(path, name, is_pkg)}
    assert not used & TEST_ONLY, f"{name} imports {sorted(used & TEST_ONLY)}"
    assert "mock" not in path.read_text()


HEAVY = ("numpy", "xarray", "zarr", "h5py", "virtualizarr", "obstore", "fsspec", "asf_search",
         "requests", "kerchunk", "pandas", "shapely", "pyproj", "rioxarray", "matplotlib")


def loaded_after(code: str) -> set[str]:
    """The heavy packages a fresh interpreter has imported after running ``code``."""
    report = "import sys\nprint('LOADED', *sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", f"{code}\n{report}"], capture_output=True,
                         text=True, check=True)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("LOADED"))
    return {m.split(".")[0] for m in line.split()[1:]} & set(HEAVY)


def test_the_cli_and_the_package_face_import_nothing_heavy():
    assert loaded_after("import gcov_index.cli") == set()
    assert loaded_after("import gcov_index; gcov_index.Endpoints; gcov_index.__version__") == set()


def test_version_and_help_import_nothing_heavy():
    for argv in (["--version"], ["--help"], ["build", "--help"], ["subset", "--help"]):
        code = ("import sys\nfrom gcov_index.cli import main\ntry:\n"
                f"    main({argv!r})\nexcept SystemExit:\n    pass")
        assert loaded_after(code) == set(), argv


def test_a_lazy_name_is_the_real_thing():
    import gcov_index as gi
    from gcov_index.read.open import open_store

    assert gi.open_store is open_store
    assert set(gi._LAZY) <= set(gi.__all__)
    with pytest.raises(AttributeError):
        gi.no_such_verb  # noqa: B018


def test_info_reads_a_store_without_the_heavy_libraries(tmp_path):
    """Each command imports what it uses: ``info`` reads metadata alone."""
    import json

    attrs = {"gcov_index": {"granules": [{"url": "s3://b/x.h5", "granuleId": "x",
                                          "time": "2025-11-22T02:46:18", "fingerprint": {}}],
                            "superseded": [], "n_chunk_refs": 0, "n_bytes_referenced": 0}}
    store = tmp_path / "s.json"
    store.write_text(json.dumps({"version": 1, "refs": {
        ".zgroup": json.dumps({"zarr_format": 2}), ".zattrs": json.dumps(attrs)}}))
    code = f"from gcov_index.cli import main\nassert main(['info', {str(store)!r}]) == 0"
    assert loaded_after(code) == set()
