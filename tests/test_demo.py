"""`gcov-index demo`, the README's first command, runs offline and shows the main job."""

from __future__ import annotations

from tests.support.demo import run


def test_demo_searches_builds_and_reads_a_subset(tmp_path):
    lines: list[str] = []
    out = run(tmp_path / "demo.json", echo=lines.append)
    text = "\n".join(lines)
    assert out.is_file()
    assert "5 granules (the latest release of each acquisition) of 7 found; 2 superseded" in text
    assert "HHHH mean over a 40 x 40 pixel box (5 S3 requests)" in text
    assert sum(" dB " in line for line in lines) == 5
    assert "token" not in out.read_text().lower()
