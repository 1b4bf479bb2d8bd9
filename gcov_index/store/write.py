"""Writing stores and output files atomically: a reader opening the path sees the old file or
the new one, never a part; a failed or interrupted write leaves the old one as it was."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..index.tree import VirtualTree
from .kerchunk import consolidated, expand_templates, tree_to_refs
from .layout import store_format


@contextlib.contextmanager
def atomic_file(out: Path, suffix: str = ".tmp"):
    """Yield a temporary path beside ``out``; it replaces ``out`` only if the block succeeds,
    so a failed or interrupted write leaves any earlier ``out`` as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_store(tree: VirtualTree, out: str | Path) -> Path:
    """Write the tree to ``out`` (.json or .parquet); an existing store is replaced only once
    the new one is complete, so a failed or interrupted write leaves it as it was."""
    out = Path(out)
    fmt = store_format(out)
    refs = tree_to_refs(tree)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        with atomic_file(out) as tmp, open(tmp, "w") as f:
            json.dump(consolidated(refs), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        return out
    from kerchunk.df import refs_to_dataframe  # pandas and fastparquet: Parquet stores only

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = out.with_name(f".{out.name}.old")
    try:
        refs_to_dataframe(expand_templates(refs), str(tmp / "store"), record_size=100_000)
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp / "store", out)
    except BaseException:
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out
