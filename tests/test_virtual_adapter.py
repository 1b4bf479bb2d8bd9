"""The VirtualiZarr adapter (gcov_index/index/virtual.py) on a small HDF5 file written here:
its chunk references are HDF5's own, and its codecs decode them to the dataset's values."""

from __future__ import annotations

import h5py
import numcodecs
import numpy as np
from obstore.store import LocalStore

from gcov_index.index.virtual import ChunkedArray, parse_hdf5
from gcov_index.io.access import open_reader


def test_refs_and_codecs_are_hdf5s_own(tmp_path):
    values = np.arange(5 * 7, dtype="<f4").reshape(5, 7) / 3
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("grids/frequencyA/HHHH", data=values, chunks=(2, 4), shuffle=True,
                         compression="gzip", compression_opts=1)
        f.create_dataset("grids/mask", data=np.ones((5, 7), "u1"), chunks=(5, 7),
                         compression="gzip", compression_opts=9)
    store = LocalStore(str(tmp_path))
    parsed = parse_hdf5(open_reader(store, "x.h5"), (tmp_path / "x.h5").as_uri(), store)

    hh = parsed["grids/frequencyA/HHHH"]
    assert isinstance(hh, ChunkedArray)
    assert hh.dtype == np.dtype("<f4")
    assert hh.filters == [{"id": "shuffle", "elementsize": 4}]
    assert hh.compressor == {"id": "zlib", "level": 1}
    assert parsed["grids/mask"].filters == [] and parsed["grids/mask"].compressor["level"] == 9

    with h5py.File(tmp_path / "x.h5") as f:
        ds = f["grids/frequencyA/HHHH"]
        chunks = []
        ds.id.chunk_iter(chunks.append)
    assert len(hh.refs) == len(chunks) == 3 * 2
    raw = (tmp_path / "x.h5").read_bytes()
    for info in chunks:
        key = ".".join(str(o // c) for o, c in zip(info.chunk_offset, (2, 4), strict=True))
        assert hh.refs[key] == (info.byte_offset, info.size)
        offset, length = hh.refs[key]
        buf = numcodecs.get_codec(hh.compressor).decode(raw[offset:offset + length])
        for cfg in reversed(hh.filters):
            buf = numcodecs.get_codec(cfg).decode(buf)
        block = np.frombuffer(buf, "<f4").reshape(2, 4)
        i, j = info.chunk_offset
        got = values[i:i + 2, j:j + 4]
        np.testing.assert_array_equal(block[: got.shape[0], : got.shape[1]], got)
