"""Experimental effects reach the frames by both of eval's paths, the same way: the simulated
detector process (`sim-detector --effects`, the sessions) and ptypilot_core.Simulation (the
full-raster reference and the oracle bound). The physics itself is tested in
tests/cpp/test_experimental_effects.cpp."""

from __future__ import annotations

import numpy as np
import pytest
import zmq

import ptypilot_core as core
import ptypilot_pb2 as wire
from ptypilot import scenarios
from ptypilot.experimental_effects import REALISTIC_60KV, effects_text
from ptypilot.processes import start_sim_detector
from test_closed_loop import BIN, ptypilot

PRESET = "graphene-small"
EFFECTS = effects_text({"source_fwhm_A": 0.4, "defocus_error_A": 30.0, "jitter_rms_A": 0.1,
                        "drift_x_A_per_frame": 0.01, "psf_sigma_px": 0.5, "read_noise_e": 0.05,
                        "phonon_configs": 2, "phonon_rms_A": 0.08})


def raster(count: int) -> np.ndarray:
    p = core.experiment_preset(PRESET)
    return np.asarray(core.raster_positions(p.scan_rows, p.scan_cols, p.step_A))[:count]


def test_effects_text_is_what_the_simulator_parses():
    assert effects_text({"jitter_rms_A": 0.1, "phonon_configs": 4}) == \
        "jitter_rms_A=0.1,phonon_configs=4"
    with pytest.raises(ValueError, match="unknown key 'jitter'"):
        core.Simulation(PRESET, 1, effects="jitter=0.1")


def test_no_effects_are_the_frames_of_before():
    positions = raster(8)
    plain = core.Simulation(PRESET, 3, dose_e_per_A2=1e5, noise_seed=5).frames(positions)
    none = core.Simulation(PRESET, 3, dose_e_per_A2=1e5, noise_seed=5, effects="").frames(positions)
    np.testing.assert_array_equal(plain, none)


def test_effects_change_the_frames_and_repeat_exactly():
    positions = raster(8)
    def frames():
        return core.Simulation(PRESET, 3, dose_e_per_A2=1e5, noise_seed=5,
                               effects=EFFECTS).frames(positions)
    first = frames()
    np.testing.assert_array_equal(first, frames())
    plain = core.Simulation(PRESET, 3, dose_e_per_A2=1e5, noise_seed=5).frames(positions)
    assert not np.array_equal(first, plain)
    assert (first >= 0).all()
    # The truth stays the static specimen's.
    np.testing.assert_array_equal(core.Simulation(PRESET, 3, effects=EFFECTS).phase_rad,
                                  core.Simulation(PRESET, 3).phase_rad)


def test_effect_scenarios_parse_and_name_what_they_state():
    realistic = scenarios.SCENARIOS["mos2-paper-realistic"]
    assert realistic.effects == REALISTIC_60KV and realistic.preset == "mos2-paper"
    core.Simulation(PRESET, 1, dose_e_per_A2=1e5, effects=realistic.effects_text())
    defocused = scenarios.SCENARIOS["mos2-defocused"]
    assert not defocused.effects
    assert core.experiment_preset(defocused.preset).probe.defocus_A > 0
    for s in scenarios.SCENARIOS.values():
        if s.name not in ("mos2-paper-realistic", "mos2-defocused"):
            assert not s.effects, s.name


@pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")
def test_the_detector_process_makes_the_frames_the_bindings_make(tmp_path):
    frames = 20  # more than one of the service's batches, so the frame index runs across them
    sim = start_sim_detector(ptypilot(), tmp_path / "sim.log", preset=PRESET, seed=1, dose=1e5,
                             frames=frames, effects=EFFECTS)
    assert sim.ready["dtype"] == "float32"  # the point-spread leaves fractions of electrons
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.connect(sim.ready["data_endpoint"])
    try:
        got = []
        for k in range(frames):
            assert socket.poll(60000), "no frame"
            header_bytes, payload = socket.recv_multipart()
            header = wire.FrameHeader()
            header.ParseFromString(header_bytes)
            assert header.frame_index == k
            got.append(np.frombuffer(payload, np.dtype("float32").newbyteorder("<"))
                       .reshape(header.rows, header.cols))
    finally:
        socket.close(linger=0)
        assert sim.stop() == 0, sim.log()
    want = core.Simulation(PRESET, 1, dose_e_per_A2=1e5, noise_seed=1,
                           effects=EFFECTS).frames(raster(frames))
    # The detector sends its frames centred, as a real one does; the bindings give the FFT layout.
    np.testing.assert_array_equal(np.stack(got), np.fft.fftshift(want, axes=(-2, -1)))
