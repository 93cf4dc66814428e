"""tests/fixtures/policy_parity.json holds what Python computes for the exported policies; the
C++ test of TorchScriptPolicy compares the daemon's outputs with it (within 1e-5). This checks
the other half: that the stored figures are what torch computes from the files now."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load_generator():
    spec = importlib.util.spec_from_file_location("policy_parity", FIXTURES / "policy_parity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["tiny", "shipped"])
def test_stored_outputs_are_what_torch_computes(name):
    generator = load_generator()
    stored = json.loads(generator.OUT.read_text())
    assert stored["potentials"] == generator.potentials()
    now = generator.reference(generator.MODELS[name])
    want = stored["models"][name]
    assert now["visited_A"] == want["visited_A"]
    assert len(now["calls"]) == len(want["calls"]) == 2
    for a, b in zip(now["calls"], want["calls"]):
        np.testing.assert_allclose(a["output"], b["output"], atol=1e-6)
        assert a["hidden_abs_sum"] == pytest.approx(b["hidden_abs_sum"], abs=1e-5)
    # The second call starts from the first's snapped proposal: the state and input both moved.
    assert want["calls"][0]["output"] != want["calls"][1]["output"]
