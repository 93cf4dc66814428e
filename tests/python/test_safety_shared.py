"""Training and the daemon share one Safety: ptypilot_core.Safety is the daemon's C++ class
(daemon/core/include/ptypilot/core/safety.hpp), configured by its safety_config_for as a session is
by default, and training's episodes pass every proposal through it; no Python copy of the rules
is left.

tests/fixtures/safety_cases.json holds tricky proposals and what must become of them; the
daemon's unit test ([safety] in tests/cpp/test_safety.cpp) checks the same file against the C++
class, so both sides meet one set of expectations.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import ptypilot_core as core
from ptypilot import data

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests/fixtures/safety_cases.json").read_text())
NUMBERS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def positions(rows) -> np.ndarray:
    return np.array([[NUMBERS.get(v, v) for v in row] for row in rows], dtype=np.float64)


def case_config(case: dict):
    if "raster" in case:
        r = case["raster"]
        return core.safety_config_for(core.ScanRaster(r["rows"], r["cols"], r["step_A"]),
                                      case["position_budget"])
    return core.SafetyConfig(**case["config"])


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["name"])
def test_the_binding_does_what_the_daemons_unit_test_expects(case):
    tolerance = case.get("tolerance_A", FIXTURE["tolerance_A"])
    safety = core.Safety(case_config(case))
    for call in case["calls"]:
        proposed = positions(call["proposed"])
        approved, placed, verdict, report = safety.check(proposed)
        expected = positions(call["placed"])
        np.testing.assert_allclose(placed, expected, rtol=0, atol=tolerance, equal_nan=True)
        np.testing.assert_allclose(safety.place(proposed), expected, rtol=0, atol=tolerance,
                                   equal_nan=True)
        names = [core.SafetyVerdict(int(v)).name for v in verdict]
        assert names == call["verdicts"]
        ok = np.array([n == "approved" for n in names], dtype=bool)
        np.testing.assert_allclose(approved, expected[ok].reshape(-1, 2), rtol=0, atol=tolerance)
        assert {k: getattr(report, k) for k in call["report"]} == call["report"]
        assert safety.remaining == call["remaining"]
    assert len(safety.visited) == safety.config.position_budget - safety.remaining


def test_training_safety_is_the_daemons_default_for_the_preset():
    """A session's default (ServeConfig::safety_config without a safety.min_distance_A) is
    safety_config_for(raster, total_positions); an episode's Safety is configured the same."""
    env = data.ScanEpisode(1, sub_sequence_size=4, total_positions=6, iterations=1)
    assert isinstance(env.safety, core.Safety)
    p = core.experiment_preset(data.PRESET)
    raster = core.ScanRaster(p.scan_rows, p.scan_cols, p.step_A)
    got, want = env.safety.config, core.safety_config_for(raster, 6)
    for field in ("fov_height_A", "fov_width_A", "min_distance_A", "position_budget", "snap_step_A"):
        assert getattr(got, field) == getattr(want, field), field
    assert want.min_distance_A == 0.5 * p.step_A and want.snap_step_A == p.step_A
    np.testing.assert_array_equal(env.fov_A, [raster.height_A, raster.width_A])


def test_an_episode_exposes_what_safety_approves():
    """measure() hands its proposals to the binding and exposes exactly what it approves: the
    same positions, statuses and visited list as a Safety of the same configuration given the
    same proposals."""
    env = data.ScanEpisode(1, sub_sequence_size=4, total_positions=6, iterations=1)
    twin = core.Safety(env.safety.config)
    first = env.first_sub_sequence_A()
    step = env.preset.step_A
    tricky = np.array([first[0] + [0.3 * step, -0.2 * step],   # snaps onto a visited node
                       [-5.0, env.fov_A[1] + 5.0],              # clamped to a corner
                       [np.nan, 1.0],                           # dropped, fed back as 0
                       [1.01 * step, 2.02 * step],              # snapped, approved
                       [3 * step, 3 * step]])                   # past the budget
    visits = []
    for proposal in (first, tricky):
        snapped, visit = env.measure(proposal)
        approved, placed, verdict, _ = twin.check(proposal)
        np.testing.assert_array_equal(snapped, np.nan_to_num(placed, nan=0.0))
        visits.append(visit)
    np.testing.assert_array_equal(visits[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(visits[1], [data.REPEAT, 4, data.NON_FINITE, 5, data.OVER_BUDGET])
    np.testing.assert_array_equal(env.visited_A, twin.visited)
    assert env.remaining() == twin.remaining == 0
    assert env.rec.frames == 6


def test_no_python_copy_of_the_rules_is_left():
    assert not hasattr(data, "RasterSafety")
    sources = {p.name: p.read_text() for p in (ROOT / "models/ptypilot").glob("*.py")}
    for name, text in sources.items():
        assert not re.search(r"^class \w*Safety\b", text, re.M), name
        assert "min_distance" not in text, name
