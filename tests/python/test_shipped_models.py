"""The shipped models: each file's name says what its schema says (eval and the demo pick a model
by its name), each has its training record beside it, and `loop.shipped_model` prefers the model
trained for the session's budget."""

from __future__ import annotations

import json
import re

import pytest
import torch

from ptypilot import loop

# policy-mos2-kK[-pP].pt for mos2-paper, policy-PRESET-kK[-pP].pt for another preset
# (loop.shipped_model).
NAME = re.compile(r"policy-(?P<preset>[a-z0-9-]+?)-k(?P<k>\d+)(?:-p(?P<p>\d+))?\.pt")


def preset_of(match) -> str:
    return "mos2-paper" if match["preset"] == "mos2" else match["preset"]
MODELS = sorted(loop.SHIPPED_DIR.glob("policy-*.pt"))


def test_the_default_model_is_shipped():
    assert loop.SHIPPED_MODEL in MODELS


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_name_matches_schema_and_record(path):
    match = NAME.fullmatch(path.name)
    assert match, f"{path.name}: shipped models are named policy-{{mos2|PRESET}}-k{{K}}[-p{{P}}].pt"
    schema = json.loads(torch.jit.load(str(path)).schema())
    assert schema["sub_sequence_size"] == int(match["k"])
    assert schema["training"]["preset"] == preset_of(match)
    if match["p"] is not None:
        assert schema["training"]["total_positions"] == int(match["p"])
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["schema"] == schema
    assert record["wall_seconds"] <= 60 * 60, "a shipped model trains in an hour on the CI machine"
    assert path.stat().st_size < 5e6


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_each_model_records_the_session_it_was_trained_for(path):
    """The daemon compares a session with this record (trained_for.json in the file)."""
    from ptypilot import export
    record = export.read_trained_for(path)
    assert record is not None, f"{path.name}: add it with python3 -m ptypilot.export --add-record"
    training = json.loads(torch.jit.load(str(path)).schema())["training"]
    assert record["preset"] == training["preset"]
    assert record["dose_e_per_A2"] == training["dose_e_per_A2"]
    assert record["total_positions"] == training["total_positions"]
    assert record["sub_sequence_size"] == int(NAME.fullmatch(path.name)["k"])
    assert {k: v for k, v in record.items() if k != "recorded_by"} == {
        k: v for k, v in export.trained_for(training["preset"], record["sub_sequence_size"],
                                            training["total_positions"],
                                            training["dose_e_per_A2"]).items()}
    assert json.loads(path.with_suffix(".json").read_text())["trained_for"] == record


def test_shipped_model_prefers_the_budget_it_was_trained_for(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "SHIPPED_DIR", tmp_path)
    (tmp_path / "policy-mos2-k84.pt").touch()
    assert loop.shipped_model(84, 420) == tmp_path / "policy-mos2-k84.pt"
    (tmp_path / "policy-mos2-k84-p420.pt").touch()
    assert loop.shipped_model(84, 420) == tmp_path / "policy-mos2-k84-p420.pt"
    assert loop.shipped_model(84, 250) == tmp_path / "policy-mos2-k84.pt"
    assert loop.shipped_model(84) == tmp_path / "policy-mos2-k84.pt"
    assert loop.policy_config("learned", 84, 420)["model_path"] == str(
        tmp_path / "policy-mos2-k84-p420.pt")
    assert loop.policy_config("sparse-grid", 84, 420) == {"kind": "sparse-grid"}
    assert loop.policy_config("material-density-two-class") == {
        "kind": "material-density", "material_scale": "two-class"}


def test_shipped_model_prefers_a_model_trained_on_the_session_preset(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "SHIPPED_DIR", tmp_path)
    (tmp_path / "policy-mos2-k50.pt").touch()
    # No model of the flake's preset: the mos2-paper one serves (the daemon warns).
    assert loop.shipped_model(50, 250, "mos2-flake-paper") == tmp_path / "policy-mos2-k50.pt"
    (tmp_path / "policy-mos2-flake-paper-k50.pt").touch()
    assert loop.shipped_model(50, 250, "mos2-flake-paper") == \
        tmp_path / "policy-mos2-flake-paper-k50.pt"
    assert loop.policy_config("learned", 50, 250, "mos2-flake-paper")["model_path"] == str(
        tmp_path / "policy-mos2-flake-paper-k50.pt")
    # learned-density: the same model, its proposals placed by material-density's spacing.
    assert loop.policy_config("learned-density", 50, 250, "mos2-flake-paper") == {
        "kind": "torchscript", "model_path": str(tmp_path / "policy-mos2-flake-paper-k50.pt"),
        "placement": "density"}
    assert "placement" not in loop.policy_config("learned", 50, 250, "mos2-flake-paper")
    # The small flake has no model of its own and takes its family's, the flake's.
    assert loop.shipped_model(50, 250, "mos2-small-flake-paper") == \
        tmp_path / "policy-mos2-flake-paper-k50.pt"
    (tmp_path / "policy-mos2-small-flake-paper-k50.pt").touch()
    assert loop.shipped_model(50, 250, "mos2-small-flake-paper") == \
        tmp_path / "policy-mos2-small-flake-paper-k50.pt"
    # Other presets, and mos2-paper itself, keep theirs.
    assert loop.shipped_model(50, 250, "nanoparticles-paper") == tmp_path / "policy-mos2-k50.pt"
    assert loop.shipped_model(50, 250) == tmp_path / "policy-mos2-k50.pt"
