"""DECTRIS SIMPLON streams, end to end: `sim-detector --protocol dectris-v1|dectris-v2` read by an
independent client written here (pyzmq, json, cbor2, python3-lz4, and its own numpy bitshuffle
from the format's definition), and `serve` with a DECTRIS source completing sessions against
sim-detector in every encoding. Bad v1 input from a fake detector is counted and a gap in the
frame numbers ends the session in error."""

from __future__ import annotations

import hashlib
import json
import struct
import time

import cbor2
import h5py
import lz4.block
import numpy as np
import pytest
import zmq

import ptypilot_pb2 as wire
from ptypilot.client import Client, DaemonError
from ptypilot.processes import start_serve, start_sim_detector
from daemon_fixtures import FakeDetector
from test_closed_loop import BIN, ctl, ptypilot, session_config

pytestmark = pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")

ENCODINGS = ["bs8-lz4", "bs16-lz4", "bs32-lz4", "lz4", "none"]
DTYPE_OF = {"bs8-lz4": "uint8", "bs32-lz4": "uint32"}  # the rest send uint16
PRESET = "graphene-small"


# --- an independent reader -------------------------------------------------------------------

def bit_unshuffle(block: bytes, n: int, itemsize: int) -> np.ndarray:
    """Bit-plane b is a row of n/8 bytes; bit i%8 of its byte i/8 is bit b of element i."""
    planes = np.frombuffer(block, np.uint8).reshape(8 * itemsize, n // 8)
    bits = np.unpackbits(planes, axis=1, bitorder="little").astype(np.uint64)
    return (bits << np.arange(8 * itemsize, dtype=np.uint64)[:, None]).sum(axis=0, dtype=np.uint64)


def bit_shuffle(values: np.ndarray, itemsize: int) -> bytes:
    n = len(values)
    v = values.astype(np.uint64)
    bits = ((v[None, :] >> np.arange(8 * itemsize, dtype=np.uint64)[:, None]) & 1).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="little").tobytes()


def decode_bslz4(blob: bytes, itemsize: int) -> bytes:
    """The bitshuffle HDF5 filter's framing: u64 BE size, u32 BE block bytes, then blocks."""
    total, block_bytes = struct.unpack(">QI", blob[:12])
    n, block = total // itemsize, block_bytes // itemsize
    pos, done, out = 12, 0, []
    while n - done >= 8:
        count = min(block, (n - done) // 8 * 8)
        (size,) = struct.unpack(">I", blob[pos:pos + 4])
        raw = lz4.block.decompress(blob[pos + 4:pos + 4 + size], uncompressed_size=count * itemsize)
        out.append(bit_unshuffle(raw, count, itemsize).astype(f"<u{itemsize}").tobytes())
        pos, done = pos + 4 + size, done + count
    out.append(blob[pos:])  # the elements beyond a multiple of 8, verbatim
    data = b"".join(out)
    assert len(data) == total
    return data


def encode_bslz4(raw: bytes, itemsize: int, block_bytes: int = 8192) -> bytes:
    values = np.frombuffer(raw, f"<u{itemsize}")
    block = block_bytes // itemsize
    out, done = [struct.pack(">QI", len(raw), block_bytes)], 0
    while len(values) - done >= 8:
        count = min(block, (len(values) - done) // 8 * 8)
        packed = lz4.block.compress(bit_shuffle(values[done:done + count], itemsize), store_size=False)
        out += [struct.pack(">I", len(packed)), packed]
        done += count
    out.append(values[done:].tobytes())
    return b"".join(out)


def decode_lz4_hdf5(blob: bytes) -> bytes:
    total, block = struct.unpack(">QI", blob[:12])
    pos, out = 12, b""
    while len(out) < total:
        want = min(block, total - len(out))
        (size,) = struct.unpack(">I", blob[pos:pos + 4])
        chunk = blob[pos + 4:pos + 4 + size]
        out += chunk if size == want else lz4.block.decompress(chunk, uncompressed_size=want)
        pos += 4 + size
    assert pos == len(blob)
    return out


def read_v1(socket, frames: int) -> tuple[dict, list[np.ndarray]]:
    header = socket.recv_multipart()
    first = json.loads(header[0])
    assert first["htype"] == "dheader-1.0" and first["header_detail"] == "basic" and len(header) == 2
    config = json.loads(header[1])
    images = []
    for k in range(frames):
        parts = socket.recv_multipart()
        assert len(parts) == 4
        image, info, blob, times = json.loads(parts[0]), json.loads(parts[1]), parts[2], json.loads(parts[3])
        assert image == {"htype": "dimage-1.0", "series": first["series"], "frame": k,
                         "hash": hashlib.md5(blob).hexdigest()}
        assert info["htype"] == "dimage_d-1.0" and info["size"] == len(blob)
        assert times["htype"] == "dconfig-1.0" and times["stop_time"] >= times["start_time"]
        width, height = info["shape"]
        dtype = np.dtype(info["type"]).newbyteorder("<")
        encoding = info["encoding"]
        if encoding == "<":
            raw = blob
        elif encoding == "lz4<":  # one raw LZ4 block
            raw = lz4.block.decompress(blob, uncompressed_size=width * height * dtype.itemsize)
        else:
            assert encoding == f"bs{8 * dtype.itemsize}-lz4<", encoding
            raw = decode_bslz4(blob, dtype.itemsize)
        images.append(np.frombuffer(raw, dtype).reshape(height, width))
    end = socket.recv_multipart()
    assert [json.loads(p) for p in end] == [{"htype": "dseries_end-1.0", "series": first["series"]}]
    return config, images


def v2_tag_hook(decoder, tag):
    if tag.tag == 56500:
        algorithm, element_size, data = tag.value
        return decode_bslz4(data, element_size) if algorithm == "bslz4" else decode_lz4_hdf5(data)
    dtypes = {64: "u1", 69: "<u2", 70: "<u4", 85: "<f4"}
    if tag.tag in dtypes:
        return np.frombuffer(tag.value, dtypes[tag.tag])
    if tag.tag == 40:
        dims, array = tag.value
        return array.reshape(dims)
    return tag


def read_v2(socket, frames: int) -> tuple[dict, list[np.ndarray]]:
    start = cbor2.loads(socket.recv(), tag_hook=v2_tag_hook)
    assert start["type"] == "start" and start["channels"] == ["threshold_1"]
    images = []
    for k in range(frames):
        raw = socket.recv()
        assert raw[:3] == b"\xd9\xd9\xf7"  # self-described CBOR
        image = cbor2.loads(raw, tag_hook=v2_tag_hook)
        assert image["type"] == "image" and image["series_id"] == start["series_id"]
        assert image["image_id"] == k and list(image) [0] == "type"
        numerator, denominator = image["real_time"]
        assert denominator == 10**9 and numerator > 0
        images.append(image["data"]["threshold_1"])
    end = cbor2.loads(socket.recv(), tag_hook=v2_tag_hook)
    assert end == {"type": "end", "series_id": start["series_id"],
                   "series_unique_id": start["series_unique_id"]}
    return start, images


def native_frames(tmp_path, frames: int, dtype: str) -> list[np.ndarray]:
    """The same seeds through the native protocol: the reference pixels."""
    sim = start_sim_detector(ptypilot(), tmp_path / f"native-{dtype}.log", preset=PRESET,
                             frames=frames, dtype=dtype)
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.connect(sim.ready["data_endpoint"])
    try:
        out = []
        for k in range(frames):
            assert socket.poll(20000), "no native frame"
            header_bytes, payload = socket.recv_multipart()
            header = wire.FrameHeader()
            header.ParseFromString(header_bytes)
            assert header.frame_index == k
            out.append(np.frombuffer(payload, np.dtype(dtype).newbyteorder("<")).reshape(header.rows, header.cols))
        return out
    finally:
        socket.close(linger=0)
        sim.stop()


@pytest.mark.parametrize("protocol", ["dectris-v1", "dectris-v2"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_free_running_stream_is_read_by_an_independent_client(tmp_path, protocol, encoding):
    frames = 5
    dtype = DTYPE_OF.get(encoding, "uint16")
    sim = start_sim_detector(ptypilot(), tmp_path / "sim.log", preset=PRESET, protocol=protocol,
                             encoding=encoding, frames=frames)
    assert sim.ready["dtype"] == dtype and sim.ready["frames"] == frames
    assert "command_endpoint" not in sim.ready
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.setsockopt(zmq.RCVTIMEO, 20000)
    socket.connect(sim.ready["data_endpoint"])
    try:
        if protocol == "dectris-v1":
            config, images = read_v1(socket, frames)
            assert config["x_pixels_in_detector"] == 64 and config["ntrigger"] == frames
            assert config["bit_depth_image"] == 8 * np.dtype(dtype).itemsize
        else:
            start, images = read_v2(socket, frames)
            assert start["image_size_x"] == 64 and start["number_of_images"] == frames
    finally:
        socket.close(linger=0)
        assert sim.stop() == 0, sim.log()
    reference = native_frames(tmp_path, frames, dtype)
    for got, want in zip(images, reference):
        assert got.dtype == want.dtype and got.shape == (64, 64)
        np.testing.assert_array_equal(got, want)
    assert sum(int(image.sum()) for image in images) > 0


def test_python_bitshuffle_matches_the_definition():
    values = np.array([0, 1, 2, 3, 4, 5, 6, 7], np.uint16)
    assert bit_shuffle(values, 2)[:3] == b"\xaa\xcc\xf0"
    raw = np.arange(1000, dtype="<u2").tobytes()
    assert decode_bslz4(encode_bslz4(raw, 2, 64), 2) == raw


# --- serve with a DECTRIS source ---------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["dectris-v1", "dectris-v2"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_serve_completes_a_session_on_the_dectris_stream(tmp_path, protocol, encoding):
    sim = start_sim_detector(ptypilot(), tmp_path / "sim.log", preset=PRESET, protocol=protocol,
                             encoding=encoding)
    # v1 through `serve --detector`, v2 through the configuration's detector.kind.
    uri = protocol + "://" + sim.ready["data_endpoint"].removeprefix("tcp://")
    daemon = start_serve(ptypilot(), tmp_path / "serve.log",
                         detector=uri if protocol == "dectris-v1" else None)
    try:
        config = session_config(tmp_path, sim.ready["data_endpoint"], sim.ready["command_endpoint"],
                                preset=PRESET, total_positions=100, sub_sequence_size=50,
                                frame_timeout_s=20)
        config["scan_driver"]["kind"] = "sim-stage"
        config["reconstruction"]["iterations_per_update"] = 1
        config["detector"]["dtype"] = sim.ready["dtype"]
        if protocol == "dectris-v2":
            config["detector"]["kind"] = "dectris-v2"
        (tmp_path / "config.json").write_text(json.dumps(config))
        ctl(daemon, "configure", str(tmp_path / "config.json"))
        ctl(daemon, "start", "dectris-1")
        final = ctl(daemon, "wait", "120")
    finally:
        sim.stop()
        assert daemon.stop() == 0, daemon.log()
    assert final["state"] == "idle", (final, daemon.log()[-3000:])
    status = final["status"]
    counters = status["counters"]
    assert status["positions_issued"] == 100
    assert status["frames_received"] == 100
    assert status["frames_recorded"] == status["frames_received"]
    assert counters["dectris_series_started"] == 1 and counters["frames_received_ok"] == 100
    assert not [k for k in counters if k.startswith("dectris_") and k != "dectris_series_started"], counters
    assert '"source":"%s"' % protocol in daemon.log()
    with h5py.File(tmp_path / "sessions" / "dectris-1.h5", "r") as f:
        assert f.attrs["complete"] == 1
        assert f["frames/counts"].shape == (100, 64, 64)
        assert f["frames/counts"].dtype == np.dtype(sim.ready["dtype"])
        assert sorted(f["frames/frame_index"][:]) == list(range(100))
        positions = f["frames/position_A"][:]
        approved = np.concatenate([f[f"sub_sequences/{k}/approved_A"][:] for k in f["sub_sequences"]])
        assert f["frames/counts"][:].sum() > 0
    # Each frame sits where the session issued its number.
    assert {tuple(p) for p in np.round(positions, 6)} == {tuple(p) for p in np.round(approved, 6)}


# --- bad input from a fake DECTRIS detector ------------------------------------------------------

def v1_image(series: int, frame: int, pixels: np.ndarray, encoding="bs16-lz4<", **override):
    raw = np.ascontiguousarray(pixels, "<u2").tobytes()
    blob = encode_bslz4(raw, 2) if encoding == "bs16-lz4<" else raw
    info = {"htype": "dimage_d-1.0", "shape": [pixels.shape[1], pixels.shape[0]], "type": "uint16",
            "encoding": encoding, "size": len(blob)}
    info.update(override)
    return [json.dumps({"htype": "dimage-1.0", "series": series, "frame": frame,
                        "hash": hashlib.md5(blob).hexdigest()}).encode(),
            json.dumps(info).encode(), blob,
            json.dumps({"htype": "dconfig-1.0", "start_time": 0, "stop_time": 1000,
                        "real_time": 1000}).encode()]


def v1_header(series: int, detail: str = "basic", pixel_mask: np.ndarray | None = None):
    parts = [json.dumps({"htype": "dheader-1.0", "series": series, "header_detail": detail}).encode()]
    if detail == "none":
        return parts
    parts.append(json.dumps({"x_pixels_in_detector": 64, "y_pixels_in_detector": 64}).encode())
    if detail == "all":
        table = np.arange(256, dtype="<f4")
        parts += [json.dumps({"htype": "dflatfield-1.0", "shape": [64, 64], "type": "float32"}).encode(),
                  np.ones((64, 64), "<f4").tobytes(),
                  json.dumps({"htype": "dpixelmask-1.0", "shape": [64, 64], "type": "uint32"}).encode(),
                  (np.zeros((64, 64), "<u4") if pixel_mask is None
                   else np.ascontiguousarray(pixel_mask, "<u4")).tobytes(),
                  json.dumps({"htype": "dcountrate_table-1.0", "shape": [256, 2],
                              "type": "float32"}).encode(),
                  np.concatenate([table, table]).tobytes()]
    return parts


@pytest.fixture
def dectris_session(tmp_path):
    fake = FakeDetector()
    daemon = start_serve(ptypilot(), tmp_path / "serve.log",
                         detector="dectris-v1://" + fake.data_endpoint.removeprefix("tcp://"))
    client = Client(daemon.ready["control_endpoint"])
    config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint, total_positions=50,
                            frame_timeout_s=10)
    config["detector"]["dtype"] = "uint16"
    client.configure(config)
    yield fake, client, daemon
    fake.close()
    assert daemon.stop() == 0, daemon.log()


def counts(value=3):
    return np.full((64, 64), value, np.uint16)


def test_bad_v1_messages_are_counted_and_the_session_goes_on(tmp_path, dectris_session):
    fake, client, daemon = dectris_session
    client.start("dectris-bad")
    send = fake.data.send_multipart
    time.sleep(0.3)  # let the daemon's PULL socket connect before anything is pushed
    send(v1_image(7, 0, counts()))            # an earlier acquisition still streaming: stale
    send(v1_header(8))                        # this session's series
    send(v1_header(9))                        # another series' header: stale
    command = fake.next_command()
    assert len(command.positions) == 50
    send([b"{not json", b"x", b"y", b"z"])                              # malformed JSON
    send(v1_image(8, 0, counts())[:3])                                  # wrong part count
    send([json.dumps({"htype": "dimage-2.0", "series": 8}).encode()])   # unknown htype
    send(v1_image(8, 0, counts(), size=12))                             # lying size
    bad = v1_image(8, 0, counts())
    bad[2] = bad[2][:16] + b"\xff" * (len(bad[2]) - 16)                 # corrupt LZ4 block
    bad[1] = json.dumps({**json.loads(bad[1]), "size": len(bad[2])}).encode()
    send(bad)
    send(v1_image(8, 0, counts(), type="int16"))                        # bad dtype
    send(v1_image(8, 0, counts(), encoding="bs16-lz4>"))                # unknown encoding
    send(v1_image(8, 0, np.full((32, 32), 3, np.uint16)))               # wrong shape
    send(v1_image(8, 999, counts()))                                    # never issued
    for k in range(50):
        send(v1_image(8, k, counts(k % 7)))
    send([json.dumps({"htype": "dseries_end-1.0", "series": 8}).encode()])
    reply = client.wait(timeout_s=30)
    assert reply.status.frames_recorded == 50 == reply.status.frames_received
    status = ctl(daemon, "status")
    counters = status["status"]["counters"]
    for name in ["dectris_v1_malformed_json", "dectris_v1_wrong_part_count", "dectris_v1_unknown_htype",
                 "dectris_size_mismatch", "dectris_corrupt_data", "frames_bad_dtype",
                 "dectris_unknown_encoding", "frames_wrong_shape", "dectris_frame_not_issued"]:
        assert counters.get(name) == 1, (name, counters)
    assert counters["dectris_stale_series"] == 2
    assert counters["dectris_series_started"] == 1
    log = daemon.log()
    assert log.count('"counter":"dectris_corrupt_data"') == 1  # logged once per kind
    with h5py.File(tmp_path / "sessions" / "dectris-bad.h5", "r") as f:
        recorded = f["frames/counts"][:]
        index = f["frames/frame_index"][:]
    assert recorded.shape == (50, 64, 64)
    for k, frame in zip(index, recorded):  # the Python-encoded bitshuffle decoded by the daemon
        assert (frame == k % 7).all()


def test_a_gap_in_frame_numbers_ends_the_session_in_error(tmp_path, dectris_session):
    fake, client, daemon = dectris_session
    client.start("dectris-gap")
    time.sleep(0.3)
    fake.data.send_multipart(v1_header(3))
    command = fake.next_command()
    assert len(command.positions) == 50
    for k in list(range(10)) + list(range(15, 50)):  # frames 10..14 are lost
        fake.data.send_multipart(v1_image(3, k, counts()))
    with pytest.raises(DaemonError, match=r"frames 10\.\.14 of series 3 never arrived"):
        client.wait(timeout_s=30)
    reply = client.status()
    assert wire.ControlReply.State.Name(reply.state) == "ERROR"
    counters = dict(reply.status.counters)
    assert counters["dectris_frame_gaps"] == 1 and counters["dectris_frames_missing"] == 5
    assert counters["session_stream_faults"] == 1
    time.sleep(0.3)
    with h5py.File(tmp_path / "sessions" / "dectris-gap.h5", "r") as f:
        index = sorted(f["frames/frame_index"][:])
    # Nothing shifted: each recorded frame kept its own number, and 10..14 are absent.
    assert 10 not in index and 14 not in index and index[:10] == list(range(10))
    assert set(index) <= set(range(10)) | set(range(15, 50))


@pytest.mark.parametrize("detail", ["basic", "all", "none"])
def test_a_series_header_sent_one_message_per_part_is_joined(tmp_path, dectris_session, detail):
    """LiberTEM-live's DectrisSim (libertem-dectris) sends, in its default header_detail basic,
    the dheader-1.0 part and the detector config as two ZMQ messages; a DCU sends them as one."""
    fake, client, daemon = dectris_session
    client.start(f"dectris-split-{detail}")
    time.sleep(0.3)  # let the daemon's PULL socket connect before anything is pushed
    for part in v1_header(8, detail):
        fake.data.send(part)
    command = fake.next_command()
    assert len(command.positions) == 50
    for k in range(50):
        fake.data.send_multipart(v1_image(8, k, counts(k % 7)))
    fake.data.send_multipart([json.dumps({"htype": "dseries_end-1.0", "series": 8}).encode()])
    reply = client.wait(timeout_s=30)
    assert reply.status.frames_recorded == 50 == reply.status.frames_received
    counters = ctl(daemon, "status")["status"]["counters"]
    assert counters["dectris_series_started"] == 1
    for name in ["dectris_v1_wrong_part_count", "dectris_stale_series", "dectris_v1_unknown_htype"]:
        assert name not in counters, (name, counters)


def test_frames_discarded_are_not_reported_as_missing(tmp_path, dectris_session):
    """Frames that arrive and are thrown away end the session with what was thrown away and why,
    not with "detector stopped sending"."""
    fake, client, daemon = dectris_session
    config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint, total_positions=50,
                            frame_timeout_s=1.0)
    config["detector"]["dtype"] = "uint16"
    client.configure(config)
    client.start("dectris-discarded")
    time.sleep(0.3)
    fake.data.send_multipart(v1_header(8)[:1])  # a header whose detector config never comes
    command = fake.next_command()
    for k in range(len(command.positions)):
        fake.data.send_multipart(v1_image(8, k, counts()))
    with pytest.raises(DaemonError) as error:
        client.wait(timeout_s=30)
    message = str(error.value)
    assert "detector stopped sending" not in message
    assert "51 message(s) that were discarded" in message, message
    assert "dectris_stale_series 50" in message and "dectris_v1_wrong_part_count 1" in message


# --- the header's pixel mask ---------------------------------------------------------------------

HOT = (10, 50)  # row, col: a hot pixel outside the bright-field disk


def disk_frames(n: int, hot: bool) -> list[np.ndarray]:
    """A centred bright-field disk with Poisson counts, the same for every run; HOT at 60000 when
    `hot` and 0 otherwise."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[:64, :64]
    disk = np.where((y - 32) ** 2 + (x - 32) ** 2 <= 6.7 ** 2, 40.0, 0.5)  # mos2-paper: 6.68 px
    frames = []
    for k in range(n):
        f = rng.poisson(disk * (1 + 0.2 * np.sin(k))).astype(np.uint16)
        f[HOT] = 60000 if hot else 0
        frames.append(f)
    return frames


def run_masked_session(tmp_path, fake, client, name: str, series: int, hot: bool,
                       mask: bool) -> np.ndarray:
    config = session_config(tmp_path, fake.data_endpoint, fake.command_endpoint, total_positions=50,
                            frame_timeout_s=10)
    config["detector"]["dtype"] = "uint16"
    client.configure(config)
    client.start(name)
    time.sleep(0.3)  # let the daemon's PULL socket connect before anything is pushed
    pixel_mask = np.zeros((64, 64), np.uint32)
    if mask:
        pixel_mask[HOT] = 1  # DECTRIS marks defects with bits; nonzero is bad
    fake.data.send_multipart(v1_header(series, "all", pixel_mask))
    command = fake.next_command()
    frames = disk_frames(len(command.positions), hot)
    for k, frame in enumerate(frames):
        fake.data.send_multipart(v1_image(series, k, frame))
    fake.data.send_multipart([json.dumps({"htype": "dseries_end-1.0", "series": series}).encode()])
    reply = client.wait(timeout_s=60)
    assert reply.status.frames_recorded == len(frames) == reply.status.frames_received
    return client.reconstruction()


def test_a_hot_pixel_in_the_header_mask_is_masked_before_reconstruction(tmp_path, dectris_session):
    """header_detail all: the dpixelmask-1.0 part's bad pixels are masked in the session's frame
    geometry and left free by the reconstructor. The recording keeps the counts as they arrived;
    the reconstruction is the one of frames without the hot pixel, and differs from the one that
    took it in."""
    fake, client, daemon = dectris_session
    masked = run_masked_session(tmp_path, fake, client, "mask-hot", 8, hot=True, mask=True)
    counters = ctl(daemon, "status")["status"]["counters"]
    assert counters["detector_pixels_masked"] == 1
    log = daemon.log()
    assert '"event":"detector_pixel_mask"' in log and '"pixels_masked":1' in log
    if '"chosen":"cpu"' in log:  # CUDA fixes its mask when it is made: the counts are 0 there
        assert '"reconstructor":"free: weight 0 in the loss"' in log
    # The reference: the same frames with 0 counts at HOT, the same mask.
    clean = run_masked_session(tmp_path, fake, client, "mask-clean", 9, hot=False, mask=True)
    hot = run_masked_session(tmp_path, fake, client, "mask-none", 10, hot=True, mask=False)
    assert ctl(daemon, "status")["status"]["counters"]["detector_pixels_masked"] == 2
    with h5py.File(tmp_path / "sessions" / "mask-hot.h5", "r") as f:
        recorded = f["frames/counts"][:]
    assert (recorded[:, HOT[0], HOT[1]] == 60000).all()  # the recording keeps what arrived
    scale = np.abs(clean - clean.mean()).max()
    masked_vs_clean = np.abs(masked - clean).max()
    hot_vs_clean = np.abs(hot - clean).max()
    print(f"max |phase - clean|: masked {masked_vs_clean:.3g} rad, unmasked hot pixel "
          f"{hot_vs_clean:.3g} rad (clean's range {scale:.3g} rad)")
    assert masked_vs_clean <= 1e-4 * max(scale, 1e-6) + 1e-6, masked_vs_clean
    assert hot_vs_clean > 100 * max(masked_vs_clean, 1e-6)
