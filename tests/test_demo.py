"""`gcov-index demo`, the README's first command, runs offline and shows the main job."""

from __future__ import annotations

from tests.support.demo import run


def test_demo_searches_builds_and_reads_a_subset(tmp_path):
    lines: list[str] = []
    out = run(tmp_path / "demo.json", echo=lines.append)
    text = "\n".join(lines)
    assert out.is_file()
    # the synthetic frame sits where the real track 172 frame 8 is: over Afar, UTM zone 37N
    assert ("the frame: track 172 frame 8 over Afar: 40.794-40.906 E, 13.196-13.324 N "
            "(700 x 600 pixels (y, x) at 20 m, EPSG:32637)") in text
    assert "EPSG:32637" in text and "EPSG:32611" not in text
    assert "5 granules (the latest release of each acquisition) of 7 found; 2 superseded" in text
    # the README's box, in one chunk: one request per time step
    assert "HHHH mean over 40.84-40.86 E, 13.25-13.27 N (113 x 110 pixels, 5 S3 requests)" in text
    assert sum(" dB " in line for line in lines) == 5
    assert "token" not in out.read_text().lower()
