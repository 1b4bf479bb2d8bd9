"""What a user installs: the wheel holds the package and nothing of the tests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_no_stand_in(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("gcov_index-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    code = [n for n in names if n.endswith(".py")]
    assert code and all(n.startswith("gcov_index/") for n in code), code
    assert not [n for n in code if "test" in n or "support" in n or "demo" in n]
    for room in ("io", "discover", "index", "store", "read"):
        assert f"gcov_index/{room}/__init__.py" in names
