"""The example notebook runs, as committed, against the demo's archive (a Jupyter kernel, as a
user's), and is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.support.cmr import CMRService, publish_seed
from tests.support.services import LocalArchive

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_is_an_example_notebook():
    assert [p.name for p in NOTEBOOKS] == ["afar-time-series.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def _outputs(cell) -> dict[str, str]:
    """A cell's outputs by MIME type (text streams as text/plain)."""
    out: dict[str, str] = {}
    for o in cell.outputs:
        if o.output_type == "stream":
            out["text/plain"] = out.get("text/plain", "") + o.text
        elif o.output_type in ("execute_result", "display_data"):
            out.update(o.data)
    return out


def test_the_notebook_runs_against_the_demo_archive(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    nb = nbformat.read(EXAMPLES / "afar-time-series.ipynb", as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    with LocalArchive(tmp_path / "archive") as archive:
        fx, records = publish_seed(archive, tmp_path / "granules")
        with CMRService(records) as cmr:
            for k, v in (archive.env | cmr.env).items():  # the kernel inherits them
                monkeypatch.setenv(k, v)
            NotebookClient(nb, timeout=180, kernel_name="python3",
                           resources={"metadata": {"path": str(work)}}).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors
    by_source = {c.source.splitlines()[0]: _outputs(c) for c in cells}
    found = by_source["found = gi.search(aoi=AOI, start=\"2025-11-15\", end=\"2026-01-15\", "
                      "direction=\"ascending\","]
    shown = found["text/plain"] + found.get("text/html", "")
    assert all(s.granule.stem in shown for s in fx.latest)  # the five kept releases
    assert (work / "afar.parquet").is_dir()
    plot = next(o for c in cells if "plot(" in c.source for o in [_outputs(c)])
    assert "image/png" in plot
    info = by_source["print(gi.info(STORE).text())"]["text/plain"]
    assert "5 granules" in info, info
    assert "Polygon" in by_source["footprints = found.to_geojson()"]["text/plain"]
    assert (work / "afar-series.nc").is_file()
