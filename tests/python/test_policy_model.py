"""The learned policy's Python side: model shapes, the TorchScript export against
models/POLICY_CONTRACT.md, the seed ranges, and one tiny step of each training stage (through
ptypilot_core's simulator and reconstructor). Safety: test_safety_shared.py.

Run with build/python and models on PYTHONPATH and Debian's /usr/bin/python3 (torch 1.13.1).
"""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(min(2, torch.get_num_threads()))

import ptypilot_core as core  # noqa: E402
from ptypilot import data, export, train, train_benchmark, train_common  # noqa: E402
from ptypilot.scenarios import SCENARIOS  # noqa: E402
from ptypilot.policy_model import (  # noqa: E402
    KIND, SCHEMA_VERSION, ConvAutoencoder, ExportedPolicy, GruPolicy, ModelConfig, preprocess)

ROOT = Path(__file__).resolve().parents[2]

CONTRACT_KEYS = ["schema_version", "kind", "sub_sequence_size", "encoder_input_px",
                 "hidden_layers", "hidden_size", "fov_height_A", "fov_width_A", "raster",
                 "potential_normalisation", "position_normalisation", "training"]


def small_config(**kw):
    base = dict(sub_sequence_size=50, encoder_input_px=32, encoder_channels=[4, 8],
                latent_size=16, position_features=32, structure_features=32, input_features=32,
                hidden_size=24, hidden_layers=2)
    base.update(kw)
    return ModelConfig(**base)


def fake_payload(config: ModelConfig, seed: int = 3) -> dict:
    torch.manual_seed(seed)
    module = ExportedPolicy(config, "{}")
    return {"stage": "reinforce", "seed": 0, "config": config.to_dict(),
            "encoder": module.encoder.state_dict(), "policy": module.policy.state_dict(),
            "episode": {"preset": data.PRESET, "sub_sequence_size": config.sub_sequence_size,
                        "total_positions": 250, "iterations_per_update": 5,
                        "dose_e_per_A2": data.DOSE_E_PER_A2, "loss": "amplitude"},
            "summary": {}}


# --- model -----------------------------------------------------------------------------------


def test_preprocess_resizes_and_normalises():
    x = torch.rand(130, 97) * 3 + 5
    y = preprocess(x, 64)
    assert y.shape == (1, 1, 64, 64)
    assert float(y.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(y.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)
    flat = preprocess(torch.full((20, 20), 2.0), 16)  # a constant image stays finite
    assert torch.isfinite(flat).all() and float(flat.abs().max()) == 0.0


def test_default_shapes_and_outputs_in_the_unit_square():
    config = ModelConfig()
    module = ExportedPolicy(config, "{}").eval()
    h = module.initial_hidden()
    assert h.shape == (config.hidden_layers, 1, config.hidden_size) and h.dtype == torch.float32
    prev = torch.rand(config.sub_sequence_size, 2)
    for shape in [(130, 130), (57, 91)]:
        out, h2 = module(prev, torch.randn(*shape), h)
        assert out.shape == (config.sub_sequence_size, 2)
        assert h2.shape == h.shape
        assert bool(((out > 0) & (out < 1)).all())
    ae = ConvAutoencoder(config)
    x = torch.randn(3, 1, config.encoder_input_px, config.encoder_input_px)
    assert ae(x).shape == x.shape
    assert ae.encoder(x).shape == (3, config.latent_size)
    means, hidden = GruPolicy(config)(torch.rand(4, 3, 50, 2), torch.randn(4, 3, config.latent_size),
                                      torch.zeros(config.hidden_layers, 3, config.hidden_size))
    assert means.shape == (4, 3, 50, 2) and hidden.shape == (config.hidden_layers, 3, config.hidden_size)


def test_bad_inputs_are_rejected_and_sizes_validated():
    module = ExportedPolicy(small_config(), "{}")
    with pytest.raises(RuntimeError):
        module(torch.rand(49, 2), torch.randn(40, 40), module.initial_hidden())
    with pytest.raises(RuntimeError):
        module(torch.rand(50, 2), torch.randn(40, 40), torch.zeros(1, 1, 24))
    with pytest.raises(ValueError):
        small_config(encoder_input_px=30).validate()
    ModelConfig.paper().validate()


def test_model_file_is_small():
    n = sum(p.numel() for p in ExportedPolicy(ModelConfig(), "{}").parameters())
    assert n * 4 < 4e6  # the default model stays a few MB at most


# --- export ----------------------------------------------------------------------------------


def test_export_round_trip_and_schema(tmp_path):
    config = small_config()
    ckpt = tmp_path / "reinforce.pt"
    torch.save(fake_payload(config), ckpt)
    out = tmp_path / "policy.pt"
    export.export_checkpoint(ckpt, out, command="pytest", figures={"note": "test"})
    loaded = torch.jit.load(str(out))
    schema = json.loads(loaded.schema())
    for key in CONTRACT_KEYS:
        assert key in schema, key
    assert schema["schema_version"] == SCHEMA_VERSION and schema["kind"] == KIND
    assert schema["sub_sequence_size"] == 50
    assert schema["encoder_input_px"] == config.encoder_input_px
    assert schema["hidden_layers"] == 2 and schema["hidden_size"] == 24
    assert schema["fov_height_A"] == pytest.approx(19.8) and schema["fov_width_A"] == pytest.approx(19.8)
    assert schema["raster"] == {"rows": 100, "cols": 100, "step_A": pytest.approx(0.2)}
    assert schema["training"]["command"] == "pytest"
    # A checkpoint from before the choice began with the sparse grid, and says so.
    assert schema["first_sub_sequence"] == "sparse-grid"
    assert json.loads(out.with_suffix(".json").read_text())["note"] == "test"

    eager = export.eager_module(torch.load(ckpt))
    assert torch.equal(loaded.initial_hidden(), eager.initial_hidden())
    prev = torch.rand(50, 2)
    h_e, h_l = eager.initial_hidden(), loaded.initial_hidden()
    with torch.no_grad():
        for shape in [(130, 130), (64, 80), (130, 130)]:
            pot = torch.randn(*shape) * 0.2
            out_e, h_e = eager(prev, pot, h_e)
            out_l, h_l = loaded(prev, pot, h_l)
            assert torch.allclose(out_e, out_l, atol=1e-6)
            assert torch.allclose(h_e, h_l, atol=1e-6)
            prev = out_e


def test_export_records_the_session_the_model_was_trained_for(tmp_path):
    config = small_config(sub_sequence_size=42)
    payload = fake_payload(config)
    payload["episode"].update(total_positions=336, dose_e_per_A2=2.5e5)
    ckpt = tmp_path / "reinforce.pt"
    torch.save(payload, ckpt)
    out = tmp_path / "policy.pt"
    export.export_checkpoint(ckpt, out, figures={})
    record = export.read_trained_for(out)
    assert record == json.loads(out.with_suffix(".json").read_text())["trained_for"]
    assert record["sub_sequence_size"] == 42 and record["total_positions"] == 336
    assert record["dose_e_per_A2"] == 2.5e5
    assert record["preset"] == data.PRESET
    assert (record["energy_keV"], record["semiangle_mrad"], record["window_px"],
            record["detector_pixel_mrad"]) == (60.0, 33.0, 64, 4.937)
    assert (record["raster_rows"], record["raster_cols"], record["step_A"]) == (100, 100, 0.2)


def test_add_record_to_an_old_model_keeps_its_outputs_bit_identical(tmp_path):
    config = small_config()
    ckpt = tmp_path / "reinforce.pt"
    torch.save(fake_payload(config), ckpt)
    exported = tmp_path / "exported.pt"
    export.export_checkpoint(ckpt, exported)
    old = tmp_path / "old.pt"  # as exports were before the record
    torch.jit.save(torch.jit.load(str(exported)), str(old))
    assert export.read_trained_for(old) is None

    new = tmp_path / "new.pt"
    record = export.add_record(old, new, command="pytest")
    assert export.read_trained_for(new) == record == {
        **export.read_trained_for(exported), "recorded_by": "pytest"}
    before = export.fixed_input_outputs(torch.jit.load(str(old)), 50)
    after = export.fixed_input_outputs(torch.jit.load(str(new)), 50)
    assert all(torch.equal(a, b) for a, b in zip(before, after))

    # A model whose schema does not say what it was trained for needs to be told.
    with pytest.raises(ValueError, match="--preset"):
        export.add_record(ROOT / "tests/fixtures/tiny_policy.pt", tmp_path / "tiny.pt")
    assert not (tmp_path / "tiny.pt").exists()


def test_exported_module_matches_the_training_episode_code():
    """The daemon's path (ExportedPolicy.forward) and training's PolicyRunner give the same
    means for the same history."""
    config = small_config()
    payload = fake_payload(config)
    module = export.eager_module(payload)
    enc, policy, _ = train_common.modules_from(payload)
    runner = train_common.PolicyRunner(enc, policy, config, 0.0, None)
    h = module.initial_hidden()
    prev = np.random.default_rng(0).random((50, 2))
    for _ in range(3):
        crop = np.random.default_rng(1).normal(size=(130, 130)).astype(np.float32)
        a = runner(prev, crop)
        with torch.no_grad():
            b, h = module(torch.from_numpy(prev).float(), torch.from_numpy(crop), h)
        np.testing.assert_allclose(a, b.double().numpy(), atol=1e-6)
        prev = a


# --- data ------------------------------------------------------------------------------------


def test_seed_ranges_are_disjoint_and_used_as_declared():
    ranges = list(data.SEED_RANGES.values())
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            assert not set(a) & set(b)
    data.check_disjoint_seeds()
    drawn = data.train_seeds(200, np.random.default_rng(0))
    assert all(data.is_train_seed(s) and not data.is_eval_seed(s) and not data.is_validation_seed(s)
               for s in drawn)
    assert all(data.is_eval_seed(s) and not data.is_train_seed(s) for s in data.eval_seeds(25))
    assert all(data.is_validation_seed(s) for s in data.validation_seeds(6))
    with pytest.raises(ValueError):
        train_benchmark.evaluate({"x": {}}, [data.TRAIN_SEEDS.start])


# --- training stages -------------------------------------------------------------------------


def state_differs(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_one_tiny_step_of_each_stage_changes_the_weights(tmp_path):
    common = ["--out", str(tmp_path), "--seed", "5", "--specimens", "2", "--encoder-px", "32",
              "--encoder-channels", "4,8", "--latent", "16", "--features", "32",
              "--hidden-size", "24", "--log-every", "1", "--ae-batch", "4", "--pre-batch", "2"]
    run = lambda stage, *extra: train.main([stage, *common, *extra])  # noqa: E731

    run("autoencoder", "--ae-steps", "0")
    untrained = torch.load(tmp_path / "autoencoder.pt")["encoder"]
    run("autoencoder", "--ae-steps", "2")  # reuses dataset.npz, same initial weights
    ae = torch.load(tmp_path / "autoencoder.pt")
    assert state_differs(untrained, ae["encoder"])
    ds = np.load(tmp_path / "dataset.npz")
    assert all(data.is_train_seed(s) for s in ds["seeds"])
    assert ds["sparse"].shape[:2] == (2, 5) and ds["sparse"].shape[2:] == (130, 130)

    with pytest.raises(SystemExit, match="position by position"):
        run("pretrain", "--pre-steps", "0", "--pretrain-loss", "energy")
    run("pretrain", "--pre-steps", "0")
    untrained = torch.load(tmp_path / "pretrain.pt")["policy"]
    run("pretrain", "--pre-steps", "2")
    pre = torch.load(tmp_path / "pretrain.pt")
    assert state_differs(untrained, pre["policy"])
    assert not state_differs(pre["encoder"], ae["encoder"])  # the encoder is frozen

    run("reinforce", "--rl-updates", "1", "--rl-batch", "1", "--validation-seeds", "0")
    rl = torch.load(tmp_path / "reinforce.pt")
    assert state_differs(pre["policy"], rl["policy"])
    assert rl["summary"]["reinforce"]["updates"] == 1
    assert not state_differs(pre["encoder"], rl["encoder"])

    # Runs are compared on validation seeds, against the truth where asked, whatever the run
    # recorded (here the full raster, which must then not be reconstructed).
    import unittest.mock
    with unittest.mock.patch.object(data, "full_raster_reference",
                                    side_effect=AssertionError("full raster")):
        run("evaluate", "--eval-seeds", "1", "--score-against", "truth", "--seed-set", "validation")
    summary = json.loads((tmp_path / "evaluation-validation-truth.json").read_text())
    assert summary["against"] == "truth" and summary["seeds"] == [1000]
    assert set(summary) >= {"pretrain", "reinforce"}


def test_a_scenario_trains_on_its_specimen_dose_and_reconstruction(tmp_path):
    scenario = SCENARIOS["mos2-flake"]
    train.main(["autoencoder", "--out", str(tmp_path), "--scenario", "mos2-flake",
                "--specimens", "1", "--ae-steps", "0", "--encoder-px", "32",
                "--encoder-channels", "4,8", "--latent", "16", "--ae-batch", "2"])
    episode = torch.load(tmp_path / "autoencoder.pt")["episode"]
    assert episode["preset"] == "mos2-flake-paper" and episode["scenario"] == "mos2-flake"
    assert episode["reconstruction"] == scenario.reconstruction() != {}
    assert (episode["total_positions"], episode["sub_sequence_size"]) == (250, 50)
    assert episode["dose_e_per_A2"] == float(scenario.dose)

    # The data set's sparse-grid snapshots are those of the scenario's own episode, bit for bit.
    ds = np.load(tmp_path / "dataset.npz")
    env = data.ScanEpisode(int(ds["seeds"][0]), purpose="autoencoder",
                           **train_common.episode_options(episode))
    expected = data.run_episode(env, data.sparse_grid_propose(env))
    assert np.array_equal(ds["sparse"][0, -1], expected.potential)
    plain = data.ScanEpisode(int(ds["seeds"][0]), purpose="autoencoder")
    assert not np.array_equal(ds["sparse"][0, -1],
                              data.run_episode(plain, data.sparse_grid_propose(plain)).potential)


def test_options_given_with_a_scenario_override_its_own():
    args = train.parser().parse_args(["all", "--out", "x", "--scenario", "nanoparticles",
                                      "--positions", "300", "--sub-sequence", "60"])
    train.resolve_scenario(args)
    assert (args.preset, args.positions, args.sub_sequence) == ("nanoparticles-paper", 300, 60)
    args = train.parser().parse_args(["all", "--out", "x"])
    train.resolve_scenario(args)
    assert (args.preset, args.positions, args.sub_sequence, args.dose, args.reconstruction) == \
        (data.PRESET, data.TOTAL_POSITIONS, data.SUB_SEQUENCE_SIZE, data.DOSE_E_PER_A2, {})


# --- pre-training towards material-density ---------------------------------------------------


def test_a_survey_first_session_begins_with_the_daemons_survey():
    env = data.ScanEpisode(1001, total_positions=250, sub_sequence_size=50)
    survey = env.first_sub_sequence_A("survey")
    p = env.preset
    assert np.array_equal(survey, core.sparse_grid_positions(50, p.scan_rows, p.scan_cols, p.step_A))
    # The sparse grid's first sub-sequence is its top band; the survey spans the FOV.
    assert np.ptp(env.first_sub_sequence_A()[:, 0]) < 0.3 * env.fov_A[0] < 0.8 * env.fov_A[0] \
        < np.ptp(survey[:, 0])
    with pytest.raises(ValueError, match="spiral"):
        env.first_sub_sequence_A("spiral")
    # run_episode takes the first sub-sequence from a propose function that carries one.
    config = small_config()
    runner = train_common.PolicyRunner(*_modules(config), config, 0.0, None, first_A=survey)
    result = data.run_episode(env, runner, keep_potentials=False)
    assert np.array_equal(result.visited_A[:50], survey)
    assert np.array_equal(result.steps[0].previous_norm, env.normalise(survey))


def test_a_lattice_flank_taught_policy_begins_and_learns_as_its_teacher():
    from ptypilot.train_supervised import default_pretrain_loss
    args = train.parser().parse_args(["all", "--out", "x", "--scenario", "mos2-paper-detector",
                                      "--pretrain-target", "lattice-flank"])
    train.resolve_scenario(args)
    assert args.first_sub_sequence == "centre-out"
    episode = train_common.episode_settings(args)
    env = train_common.new_episode(1001, episode)
    patch = train_common.session_start_A(env, episode)
    # The daemon's lattice-flank begins with the same positions: its pattern's central patch.
    assert np.array_equal(patch, data.DaemonPolicy(env, "lattice-flank").first_A)
    assert len(patch) == 50 and len(np.unique(patch, axis=0)) == 50
    centre = env.fov_A / 2
    assert np.abs(patch - centre).max() < np.abs(env.first_sub_sequence_A("survey") - centre).max()
    # Its positions come in its pattern's order: position by position, as the sparse grid's.
    assert default_pretrain_loss("lattice-flank") == default_pretrain_loss("sparse-grid") == "ordered"
    assert default_pretrain_loss("material-density-two-class") == "matched"
    for target, first in [("material-density", "survey"), ("sparse-grid", "sparse-grid")]:
        args = train.parser().parse_args(["all", "--out", "x", "--pretrain-target", target])
        train.resolve_scenario(args)
        assert args.first_sub_sequence == first


def _modules(config):
    payload = fake_payload(config)
    enc, policy, _ = train_common.modules_from(payload)
    return enc, policy


def test_matched_targets_pair_each_output_with_its_nearest_target_set_wise():
    from ptypilot.train_supervised import matched_targets
    gen = torch.Generator().manual_seed(0)
    means = torch.rand(2, 3, 6, 2, generator=gen)
    order = torch.stack([torch.randperm(6, generator=gen) for _ in range(6)]).reshape(2, 3, 6)
    noisy = means + 0.01 * torch.randn(means.shape, generator=gen)
    shuffled = torch.gather(noisy, 2, order[..., None].expand(2, 3, 6, 2))
    matched = matched_targets(means, shuffled)
    assert torch.equal(matched, noisy)  # each target back beside the output it is nearest
    # The assignment is the one of least summed squared distance, not a greedy one: output 0
    # is nearest target 0, but giving it target 1 costs less in all.
    means = torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]])
    targets = torch.tensor([[[[0.0, 0.4], [0.0, 1.6]]]])
    assert torch.equal(matched_targets(means, targets), targets)
    targets = torch.tensor([[[[0.0, 0.6], [0.0, -0.5]]]])
    assert torch.equal(matched_targets(means, targets), targets.flip(2))


def test_energy_distance_is_zero_for_equal_sets_and_spreads_uncertain_outputs():
    from ptypilot.train_supervised import energy_distance
    gen = torch.Generator().manual_seed(1)
    y = torch.rand(3, 8, 2, generator=gen)
    assert torch.allclose(energy_distance(y, y[:, torch.randperm(8, generator=gen)]),
                          torch.zeros(3), atol=1e-3)
    assert (energy_distance(torch.rand(3, 8, 2, generator=gen), y) > 0.01).all()
    # Two equally likely teachers, at x = 0.2 and at x = 0.8: outputs bunched at their mean
    # (what a squared distance after matching tends to) cost more in expectation than outputs
    # split between them.
    left, right = torch.full((4, 2), 0.2), torch.full((4, 2), 0.8)
    middle, split = torch.full((4, 2), 0.5), torch.cat([left[:2], right[:2]])
    expected = lambda x: float(energy_distance(x, left) + energy_distance(x, right)) / 2  # noqa: E731
    assert expected(split) < expected(middle)


def test_pretraining_towards_material_density_learns_its_positions(tmp_path):
    common = ["--out", str(tmp_path), "--seed", "5", "--scenario", "mos2-flake",
              "--pretrain-target", "material-density", "--specimens", "2", "--encoder-px", "32",
              "--encoder-channels", "4,8", "--latent", "16", "--features", "32",
              "--hidden-size", "24", "--log-every", "20", "--ae-batch", "4", "--pre-batch", "2"]
    train.main(["autoencoder", *common, "--ae-steps", "2"])
    ae = torch.load(tmp_path / "autoencoder.pt")
    assert ae["episode"]["first_sub_sequence"] == "survey"
    assert ae["episode"]["pretrain_target"] == "material-density"
    ds = np.load(tmp_path / "dataset.npz")
    assert str(ds["pretrain_target"]) == "material-density"
    assert ds["target_previous"].shape == ds["target_actions"].shape == (2, 4, 50, 2)

    # The teacher's episode is material-density's, as the daemon's C++ runs it: survey first.
    episode = ae["episode"]
    env = data.ScanEpisode(int(ds["seeds"][0]), purpose="autoencoder",
                           **train_common.episode_options(episode))
    teacher = data.DaemonPolicy(env, "material-density")
    expected = data.run_episode(env, teacher)
    assert np.array_equal(ds["target_previous"][0, 0],
                          env.normalise(env.first_sub_sequence_A("survey")).astype(np.float32))
    assert np.array_equal(ds["target_actions"][0],
                          np.stack([st.action_norm for st in expected.steps]).astype(np.float32))
    assert np.array_equal(ds["sparse"][0, -1], expected.potential)

    from ptypilot.train_supervised import teacher_error
    train.main(["pretrain", *common, "--pre-steps", "0"])
    untrained = torch.load(tmp_path / "pretrain.pt")
    train.main(["pretrain", *common, "--pre-steps", "60", "--pre-lr", "3e-3"])
    pre = torch.load(tmp_path / "pretrain.pt")
    assert pre["summary"]["pretrain"]["target"] == "material-density"
    assert pre["summary"]["pretrain"]["loss"] == "matched"
    z = _encode_dataset(pre, ds)
    errors = []
    for payload in (untrained, pre):
        enc, policy, config = train_common.modules_from(payload)
        errors.append(teacher_error(policy, config, z, torch.from_numpy(ds["target_previous"]),
                                    torch.from_numpy(ds["target_actions"]), "mos2-flake-paper"))
    assert errors[1]["mean_matched_steps"] < 0.7 * errors[0]["mean_matched_steps"]
    train.main(["pretrain", *common, "--pre-steps", "60", "--pre-lr", "3e-3",
                "--pretrain-loss", "energy"])
    energy = torch.load(tmp_path / "pretrain.pt")
    assert energy["summary"]["pretrain"]["loss"] == "energy"
    enc, policy, config = train_common.modules_from(energy)
    assert teacher_error(policy, config, z, torch.from_numpy(ds["target_previous"]),
                         torch.from_numpy(ds["target_actions"]),
                         "mos2-flake-paper")["mean_matched_steps"] < \
        0.8 * errors[0]["mean_matched_steps"]

    # A data set made for the sparse grid is not reused for another target.
    with pytest.raises(SystemExit, match="pretrain-target material-density"):
        train.main(["autoencoder", *[c if c != "material-density" else "sparse-grid" for c in common]])

    # The export tells the daemon to begin with the survey.
    export.export_checkpoint(tmp_path / "pretrain.pt", tmp_path / "p.pt", command="pytest")
    schema = json.loads(torch.jit.load(str(tmp_path / "p.pt")).schema())
    assert schema["first_sub_sequence"] == "survey"


def test_the_two_class_teacher_is_material_density_with_two_classes(tmp_path):
    common = ["--out", str(tmp_path), "--seed", "5", "--scenario", "mos2-small-flake",
              "--pretrain-target", "material-density-two-class", "--specimens", "2",
              "--encoder-px", "32", "--encoder-channels", "4,8", "--latent", "16",
              "--features", "32", "--hidden-size", "24", "--ae-batch", "2"]
    train.main(["autoencoder", *common, "--ae-steps", "1"])
    ae = torch.load(tmp_path / "autoencoder.pt")
    assert ae["episode"]["first_sub_sequence"] == "survey"
    ds = np.load(tmp_path / "dataset.npz")
    env_of = lambda: data.ScanEpisode(int(ds["seeds"][0]), purpose="autoencoder",  # noqa: E731
                                      **train_common.episode_options(ae["episode"]))
    env = env_of()
    two_class = data.run_episode(env, data.DaemonPolicy(env, "material-density",
                                                        material_scale="two-class"))
    assert np.array_equal(ds["target_actions"][0],
                          np.stack([st.action_norm for st in two_class.steps]).astype(np.float32))
    # And not the default scale's, so that the comparison can fail.
    env = env_of()
    brightest = data.run_episode(env, data.DaemonPolicy(env, "material-density"))
    assert not np.array_equal(np.stack([st.action_norm for st in brightest.steps]),
                              np.stack([st.action_norm for st in two_class.steps]))


def _encode_dataset(payload, ds):
    config = ModelConfig.from_dict(payload["config"])
    enc = train_common.encoder_from(payload, config)
    t = torch.from_numpy(ds["sparse"])
    with torch.no_grad():
        z = enc(preprocess(t.reshape(-1, *t.shape[2:]), config.encoder_input_px))
    return z.reshape(t.shape[0], t.shape[1], -1)


def test_training_can_score_against_the_true_phase(monkeypatch):
    """--score-against truth: validation and the held-out evaluation score SSIM against the true
    phase, as the voronoi-ssim reward does, and never reconstruct the full raster."""
    monkeypatch.setattr(data, "full_raster_reference",
                        lambda *a, **k: pytest.fail("the full raster was reconstructed"))
    episode = {"preset": data.PRESET, "sub_sequence_size": 50, "total_positions": 250,
               "iterations_per_update": 5, "dose_e_per_A2": data.DOSE_E_PER_A2,
               "loss": "amplitude", "score_against": "truth"}
    bench = train_benchmark.Benchmark([1000], episode)
    env = train_common.new_episode(1000, episode)
    truth = data.fov_crop(env.sim.phase_rad, env.grid)
    assert np.array_equal(bench.references[1000], truth)
    sparse = data.run_episode(env, data.sparse_grid_propose(env), keep_potentials=False,
                              converge=True)
    assert bench.ssim_sparse[1000] == data.ssim_against(sparse.converged, truth)
    args = train.parser().parse_args(["all", "--out", "x", "--score-against", "truth"])
    train.resolve_scenario(args)
    assert train_common.episode_settings(args)["score_against"] == "truth"


def test_the_evaluation_scores_a_taught_model_beside_its_teacher():
    """A model pre-trained towards one of the daemon's policies is scored with that policy, on
    the same specimens and the same way (what it imitates is what it is measured against)."""
    config = small_config()
    taught = fake_payload(config)
    taught["episode"].update(score_against="truth", pretrain_target="lattice-flank",
                             first_sub_sequence="centre-out")
    seeds = data.eval_seeds(1)
    summary = train_benchmark.evaluate({"pretrain": taught}, seeds)
    assert summary["teacher_name"] == "lattice-flank"
    env = train_common.new_episode(seeds[0], taught["episode"])
    truth = data.fov_crop(env.sim.phase_rad, env.grid)
    by_hand = data.run_episode(env, data.DaemonPolicy(env, "lattice-flank"),
                               keep_potentials=False, converge=True)
    teacher = summary["teacher"]["per_seed"][0]
    assert teacher["ssim"] == data.ssim_against(by_hand.converged, truth)
    assert teacher["positions"] == 250
    assert summary["pretrain"]["per_seed"][0]["ssim"] != teacher["ssim"]
    # The paper's pre-training has no teacher to show.
    plain = fake_payload(config)
    plain["episode"]["score_against"] = "truth"
    assert "teacher" not in train_benchmark.evaluate({"pretrain": plain}, seeds)
