"""The recorder's HDF5 file and journal, read by h5py and by a from-scratch journal parser.

The C++ test case "recorder: writes the reference session for the h5py test" (tags [recorder]
[h5py]) records a reference session twice, with SessionInfo::frame_dtype float32 and uint16, and,
with PTYPILOT_RECORDER_H5 set, copies the float32 .h5 there, the uint16 one to the same name with
"-uint16", and each journal beside its .h5. This test runs it from $PTYPILOT_BIN (ctest sets it
to build/bin) and checks the layout documented in
daemon/record/include/ptypilot/record/hdf5_recorder.hpp.
The values follow the formulas of reference_frame() (reference_count()) and
reference_sub_sequence() in test_recorder.cpp.
"""

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
lz4_block = pytest.importorskip("lz4.block")

ROWS, COLS = 16, 16
SUB_SIZES = [5, 7, 4]
N = sum(SUB_SIZES)
# frame_dtype -> (numpy dtype of /frames/counts and of the journal's counts, journal dtype code)
DTYPES = {"float32": ("<f4", 4), "uint16": ("<u2", 2)}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    bin_dir = os.environ.get("PTYPILOT_BIN")
    if not bin_dir:
        pytest.skip("PTYPILOT_BIN is not set (ctest sets it to build/bin); run: "
                    "PTYPILOT_BIN=build/bin python3 -m pytest tests/python/test_recorder_h5py.py")
    tests = Path(bin_dir) / "ptypilot_tests"
    assert tests.is_file(), f"{tests} does not exist: build first (deploy/run build)"
    h5_path = tmp_path_factory.mktemp("recorder") / "fixture.h5"
    env = dict(os.environ, PTYPILOT_RECORDER_H5=str(h5_path))
    run = subprocess.run([str(tests), "[recorder][h5py]"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"ptypilot_tests failed:\n{run.stdout}\n{run.stderr}"
    files = {"float32": h5_path, "uint16": h5_path.with_name(h5_path.stem + "-uint16.h5")}
    for path in files.values():
        assert path.is_file(), f"the C++ test left no file at {path}:\n{run.stdout}"
    return {name: (path, path.with_suffix(".journal")) for name, path in files.items()}


@pytest.fixture(params=sorted(DTYPES))
def frame_dtype(request):
    return request.param


def expected_frames(frame_dtype="float32"):
    k = np.arange(N)
    sub = np.repeat(np.arange(3), SUB_SIZES)
    position_index = np.concatenate([np.arange(n) for n in SUB_SIZES])
    pixels = np.arange(ROWS * COLS)
    counts = k[:, None] * 1000 + pixels[None, :]
    if frame_dtype == "float32":
        counts = counts + 0.5
    counts = counts.astype(DTYPES[frame_dtype][0])
    return {
        "counts": counts.reshape(N, ROWS, COLS),
        "position_A": np.stack([1.5 * k, 100.0 - 0.25 * k], axis=1),
        "frame_index": k.astype(np.uint64),
        "sub_sequence": sub.astype(np.uint32),
        "position_index": position_index.astype(np.uint32),
        "timestamp_ns": np.uint64(1_700_000_000_000_000_000) + np.uint64(1000) * k.astype("u8"),
        "electrons_per_frame": 1.0e4 + k,
    }


def test_frame_datasets(recorded, frame_dtype):
    h5_path, _ = recorded[frame_dtype]
    want = expected_frames(frame_dtype)
    dtypes = {
        "counts": DTYPES[frame_dtype][0],
        "position_A": np.float64,
        "frame_index": np.uint64,
        "sub_sequence": np.uint32,
        "position_index": np.uint32,
        "timestamp_ns": np.uint64,
        "electrons_per_frame": np.float64,
    }
    with h5py.File(h5_path, "r") as f:
        assert set(f["frames"].keys()) == set(dtypes)
        for name, dtype in dtypes.items():
            d = f["frames"][name]
            assert d.dtype == np.dtype(dtype).newbyteorder("<"), name
            assert d.shape == want[name].shape, name
            assert d.maxshape[0] is None, f"{name} is not extendible"
            np.testing.assert_array_equal(d[()], want[name], err_msg=name)
        assert f["frames/counts"].chunks == (1, ROWS, COLS)
        # bitshuffle with LZ4: [major, minor, element size, block size (0: default), 2 = LZ4]
        counts = f["frames/counts"]
        plist = counts.id.get_create_plist()
        assert plist.get_nfilters() == 1
        filter_id, _, cd_values, _ = plist.get_filter(0)
        assert filter_id == 32008
        assert tuple(cd_values[2:]) == (counts.dtype.itemsize, 0, 2)


def test_sub_sequences(recorded, frame_dtype):
    h5_path, _ = recorded[frame_dtype]
    with h5py.File(h5_path, "r") as f:
        assert sorted(f["sub_sequences"].keys()) == ["0000", "0001", "0002"]
        for s, size in enumerate(SUB_SIZES):
            g = f[f"sub_sequences/{s:04d}"]
            j = np.arange(size + 1)
            proposed = np.stack([10.0 * s + j, -0.5 * j], axis=1)
            assert g["proposed_A"].dtype == np.float64 and g["proposed_A"].shape == (size + 1, 2)
            np.testing.assert_array_equal(g["proposed_A"][()], proposed)
            np.testing.assert_array_equal(g["approved_A"][()], proposed[:size])
            potential = (0.01 * np.arange(64, dtype=np.float32) + np.float32(s)).reshape(8, 8)
            assert g["potential"].dtype == np.float32 and g["potential"].shape == (8, 8)
            np.testing.assert_allclose(g["potential"][()], potential, rtol=0, atol=1e-6)


def test_root_attributes(recorded, frame_dtype):
    h5_path, _ = recorded[frame_dtype]
    with h5py.File(h5_path, "r") as f:
        a = f.attrs
        assert a["session_id"] == "h5py-fixture"
        config = json.loads(a["config_json"])
        assert config["session"]["positions"] == 250
        assert config["note"] == "ångström"  # UTF-8 survives
        assert json.loads(a["versions_json"])["ptypilot"] == "test"
        assert a["pixel_A"] == 0.125
        assert list(a["frame_shape"]) == [ROWS, COLS]
        assert a["layout_version"] == 2
        assert a["complete"] == 1 and a["complete"].dtype == np.uint8
        assert "error" not in a and "recovered_from" not in a


def read_journal(path):
    """Parses the journal by the documented format; returns [(type, payload)]."""
    data = path.read_bytes()
    records, offset = [], 0
    while offset < len(data):
        magic, rtype, size, payload_crc, header_crc = struct.unpack_from("<IIQII", data, offset)
        assert magic == 0x4A595450 and data[offset:offset + 4] == b"PTYJ"
        assert header_crc == zlib.crc32(data[offset:offset + 20])
        payload = data[offset + 24:offset + 24 + size]
        assert len(payload) == size and zlib.crc32(payload) == payload_crc
        records.append((rtype, payload))
        offset += 24 + size
    return records


def test_journal_matches_the_file(recorded, frame_dtype):
    h5_path, journal = recorded[frame_dtype]
    counts_dtype, dtype_code = DTYPES[frame_dtype]
    records = read_journal(journal)
    types = [t for t, _ in records]
    assert types == [1] + [2] * 5 + [3] + [2] * 7 + [3] + [2] * 4 + [3] + [4]

    version, rows, cols, code, pixel_A = struct.unpack_from("<IIIId", records[0][1])
    assert (version, rows, cols, code, pixel_A) == (3, ROWS, COLS, dtype_code, 0.125)
    (id_len,) = struct.unpack_from("<I", records[0][1], 24)
    assert records[0][1][28:28 + id_len] == b"h5py-fixture"

    want = expected_frames(frame_dtype)
    frames = [p for t, p in records if t == 2]
    with h5py.File(h5_path, "r") as f:
        chunks = [f["frames/counts"].id.read_direct_chunk((k, 0, 0)) for k in range(N)]
    for k, payload in enumerate(frames):
        index, ts, sub, pos, y, x, epf, r, c = struct.unpack_from("<QQIIdddII", payload)
        assert (index, ts, sub, pos) == (k, want["timestamp_ns"][k], want["sub_sequence"][k],
                                         want["position_index"][k])
        assert (y, x, epf, r, c) == (*want["position_A"][k], want["electrons_per_frame"][k],
                                     ROWS, COLS)
        chunk = payload[56:]
        counts = decode_bitshuffle_lz4(chunk, np.dtype(counts_dtype)).reshape(ROWS, COLS)
        np.testing.assert_array_equal(counts, want["counts"][k])
        # The journal's counts are the bytes of the frame's chunk of /frames/counts.
        filter_mask, stored = chunks[k]
        assert filter_mask == 0 and stored == chunk


def unshuffle_bits(planes, dtype, n):
    """Bitshuffle's transposition undone: bit-plane b (least significant first) is n / 8 bytes,
    whose bit i mod 8 (least significant first) of byte i / 8 is bit b of element i."""
    bits = np.unpackbits(np.frombuffer(planes, np.uint8), bitorder="little")
    bits = bits.reshape(dtype.itemsize * 8, n)  # [bit-plane, element]
    # Element i's bits, least significant first, make its little-endian bytes.
    return np.packbits(bits.T.reshape(n, dtype.itemsize, 8), axis=-1, bitorder="little").tobytes()


def decode_bitshuffle_lz4(chunk, dtype):
    """The HDF5 bitshuffle filter's LZ4 framing, read from its documented layout with python-lz4:
    a reader independent of the recorder's C++ codec."""
    total, block_bytes = struct.unpack_from(">QI", chunk)
    n_total = total // dtype.itemsize
    block = block_bytes // dtype.itemsize
    out, pos, done = [], 12, 0
    while n_total - done >= 8:
        n = min(block, (n_total - done) // 8 * 8)
        (size,) = struct.unpack_from(">I", chunk, pos)
        planes = lz4_block.decompress(chunk[pos + 4:pos + 4 + size],
                                      uncompressed_size=n * dtype.itemsize)
        out.append(unshuffle_bits(planes, dtype, n))
        pos += 4 + size
        done += n
    out.append(chunk[pos:])  # the last (n mod 8) elements, stored as they are
    data = b"".join(out)
    assert len(data) == total
    return np.frombuffer(data, dtype=dtype)


def test_counts_read_by_the_bitshuffle_package(recorded, frame_dtype):
    """Debian's `bitshuffle` (the filter's own implementation) decodes every chunk."""
    bitshuffle = pytest.importorskip("bitshuffle")
    h5_path, _ = recorded[frame_dtype]
    dtype = np.dtype(DTYPES[frame_dtype][0])
    want = expected_frames(frame_dtype)
    with h5py.File(h5_path, "r") as f:
        for k in range(N):
            _, chunk = f["frames/counts"].id.read_direct_chunk((k, 0, 0))
            _, block_bytes = struct.unpack_from(">QI", chunk)
            counts = bitshuffle.decompress_lz4(np.frombuffer(chunk[12:], np.uint8),
                                               (ROWS, COLS), dtype, block_bytes // dtype.itemsize)
            np.testing.assert_array_equal(counts, want["counts"][k])
