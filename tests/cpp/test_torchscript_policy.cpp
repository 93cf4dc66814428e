// TorchScriptPolicy against tests/fixtures/tiny_policy.pt (tests/fixtures/make_tiny_policy.py):
// K = 4, S = 16, L = 2, H = 8, FOV 19.8 x 19.8 A, deterministic weights.
//
// Every policy here comes from make_policy(), which dlopens build/lib/libptypilot_torch_policy.so:
// this program does not link LibTorch, so only these cases load it.
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ptypilot/policy/policy_factory.hpp"
#include "ptypilot/policy/baseline_policies.hpp"
#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/lattice_flank_policy.hpp"
#include "ptypilot/policy/torchscript_policy.hpp"
#include "ptypilot/scan_geometry.hpp"

#include "crystal_fixtures.hpp"
#include "policy_helpers.hpp"

using namespace ptypilot;
using ptypilot::test::propose_ok;
namespace fs = std::filesystem;

namespace {

const fs::path kFixture = fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/tiny_policy.pt";
// The same module with the trained_for record of a mos2-paper session of 250 positions at
// 1e5 e/A^2 (`python3 -m ptypilot.export --add-record`, see make_tiny_policy.py).
const fs::path kRecorded =
    fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/tiny_policy_recorded.pt";
const ScanRaster kRaster{100, 100, 0.2};  // the fixture's FOV: 19.8 x 19.8 A
constexpr int kK = 4;

// The probe is ProbeConfig's default, which is mos2-paper's.
PolicyLimits limits(int k = kK, ScanRaster raster = kRaster) {
  return {k, raster.height_A(), raster.width_A(), ProbeConfig{}};
}

// The mos2-paper object grid (0.154 A pixels, 64 px window, 3 px margin: 200 x 200 px, a
// 130 x 130 px FOV crop) with a phase that varies over the FOV.
Potential test_potential() {
  Potential v;
  v.grid = object_grid_for_fov(kRaster.height_A(), kRaster.width_A(), 0.154, 64, 3);
  v.phase_rad = RealImage(v.grid.rows, v.grid.cols, 0.0f);
  for (int i = 0; i < v.grid.rows; ++i)
    for (int j = 0; j < v.grid.cols; ++j)
      v.phase_rad(i, j) =
          static_cast<float>(0.3 * std::sin(0.21 * i) * std::cos(0.17 * j) + 0.002 * i);
  return v;
}

struct Contexts {
  Potential potential = test_potential();
  std::vector<Vec2> visited =
      sparse_grid_positions(250, kRaster.rows, kRaster.cols, kRaster.step_A);

  // Sub-sequence `t` of a 250-position session with the first 4 * t sparse-grid positions visited.
  PolicyContext at(int t, int count = kK) {
    PolicyContext c;
    c.raster = kRaster;
    c.sub_sequence = t;
    c.count = count;
    c.total_positions = 250;
    c.visited_A = std::span<const Vec2>(visited).first(static_cast<std::size_t>(kK * t));
    c.potential = t > 0 ? &potential : nullptr;
    return c;
  }
};

// The learned policy for `model`, as the daemon makes it.
std::unique_ptr<TorchScriptPolicy> load(const fs::path& model, const PolicyLimits& l = limits()) {
  PolicyConfig config;
  config.kind = "torchscript";
  config.model_path = model.string();
  std::unique_ptr<Policy> made = make_policy(config, l);
  REQUIRE(made != nullptr);
  auto* learned = dynamic_cast<TorchScriptPolicy*>(made.get());
  REQUIRE(learned != nullptr);
  made.release();
  return std::unique_ptr<TorchScriptPolicy>(learned);
}

bool same(const std::vector<Vec2>& a, const std::vector<Vec2>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].y != b[i].y || a[i].x != b[i].x) return false;
  return true;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("torchscript policy loads the fixture and checks its schema", "[policy][torch]") {
  REQUIRE(fs::exists(kFixture));
  const auto policy = load(kFixture);
  CHECK(policy->name() == "torchscript");
  CHECK_THAT(policy->schema_json(), Catch::Contains("\"kind\": \"ptypilot-gru-policy\""));

  PolicyConfig config;
  config.kind = "torchscript";
  config.model_path = kFixture.string();
  const auto made = make_policy(config, limits());
  REQUIRE(made != nullptr);
  CHECK(made->name() == "torchscript");
  // The baselines come out of the two-argument factory unchanged.
  config.kind = "heuristic";
  CHECK(make_policy(config, limits())->name() == "heuristic");
}

TEST_CASE("torchscript policy refuses a session it was not made for", "[policy][torch]") {
  SECTION("wrong sub-sequence size") {
    const std::string m = message_of([] { load(kFixture, limits(50)); });
    CHECK_THAT(m, Catch::Contains(kFixture.string()));
    CHECK_THAT(m, Catch::Contains("expects sub-sequences of 4 positions, the session asks for 50"));
    CHECK_THROWS_AS(load(kFixture, limits(50)), std::invalid_argument);
  }
  SECTION("wrong FOV") {
    const std::string m = message_of([] {
      load(kFixture, limits(kK, ScanRaster{20, 20, 0.2}));
    });
    CHECK_THAT(m, Catch::Contains(kFixture.string()));
    CHECK_THAT(m, Catch::Contains("FOV of 19.8 x 19.8 A, the session scans 3.8 x 3.8 A"));
  }
  SECTION("no model path") {
    PolicyConfig config;
    config.kind = "torchscript";
    CHECK_THROWS_WITH(make_policy(config, limits()), Catch::Contains("policy.model_path"));
  }
}

TEST_CASE("torchscript policy names a missing or corrupt file", "[policy][torch]") {
  const fs::path dir =
      fs::temp_directory_path() / ("ptypilot-torchscript-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  SECTION("missing") {
    const fs::path missing = dir / "no-such-policy.pt";
    const std::string m = message_of([&] { load(missing); });
    CHECK_THAT(m, Catch::Contains(missing.string()) && Catch::Contains("no such file"));
  }
  SECTION("garbage") {
    const fs::path corrupt = dir / "corrupt.pt";
    std::ofstream(corrupt, std::ios::binary) << "this is not a zip archive\x01\x02\x03";
    const std::string m = message_of([&] { load(corrupt); });
    CHECK_THAT(m,
               Catch::Contains(corrupt.string()) && Catch::Contains("is not a TorchScript module"));
    CHECK_THROWS_AS(load(corrupt), std::invalid_argument);
  }
  SECTION("a truncated model") {
    std::ifstream in(kFixture, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const fs::path truncated = dir / "truncated.pt";
    std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    const std::string m = message_of([&] { load(truncated); });
    CHECK_THAT(
        m, Catch::Contains(truncated.string()) && Catch::Contains("is not a TorchScript module"));
  }
  fs::remove_all(dir);
}

namespace {

// The warnings of a session's first two proposals (sub-sequence 0 at the start, sub-sequence 1
// after the first frames, at `dose_e_per_A2`), as the session collects them.
std::vector<SessionWarning> session_warnings(const fs::path& model, const PolicyLimits& l,
                                             double dose_e_per_A2, int total_positions = 250) {
  Contexts s;
  const auto policy = load(model, l);
  policy->reset(1);
  std::vector<SessionWarning> warnings;
  for (int t = 0; t < 2; ++t) {
    PolicyContext c = s.at(t);
    c.total_positions = total_positions;
    c.dose_e_per_A2 = t > 0 ? dose_e_per_A2 : 0.0;
    c.warnings = &warnings;
    propose_ok(*policy, c);
  }
  // A third proposal says nothing new: each check is made once per session.
  PolicyContext c = s.at(2);
  c.total_positions = total_positions;
  c.dose_e_per_A2 = dose_e_per_A2;
  c.warnings = &warnings;
  const std::size_t before = warnings.size();
  propose_ok(*policy, c);
  CHECK(warnings.size() == before);
  return warnings;
}

nlohmann::json differences_of(const SessionWarning& w) {
  return nlohmann::json::parse(w.detail_json).at("differences");
}

}  // namespace

TEST_CASE("torchscript policy warns when the session is not what it was trained for",
          "[policy][torch]") {
  SECTION("the session it was trained for: no warning") {
    CHECK(session_warnings(kRecorded, limits(), 1e5).empty());
    // The dose is measured from frames: within 10 % is the same dose.
    CHECK(session_warnings(kRecorded, limits(), 1.08e5).empty());
  }
  SECTION("another dose: one warning, naming it, after the first frames") {
    const auto w = session_warnings(kRecorded, limits(), 4e5);
    REQUIRE(w.size() == 1);
    CHECK(w[0].code == "torchscript_policy_session_differs");
    CHECK_THAT(w[0].message, Catch::Contains(kRecorded.string()) &&
                                 Catch::Contains("dose_e_per_A2 100000 (trained) vs 400000 (session)"));
    const auto d = differences_of(w[0]);
    CHECK(d.size() == 1);
    CHECK(d.at("dose_e_per_A2").at("trained").get<double>() == 1e5);
    CHECK(d.at("dose_e_per_A2").at("session").get<double>() == 4e5);
  }
  SECTION("another semi-angle and budget: one warning at the start, naming each") {
    PolicyLimits l = limits();
    l.probe.semiangle_mrad = 25.0;
    const auto w = session_warnings(kRecorded, l, 1e5, 300);
    REQUIRE(w.size() == 1);
    CHECK(w[0].code == "torchscript_policy_session_differs");
    CHECK_THAT(w[0].message, Catch::Contains("semiangle_mrad 33 (trained) vs 25 (session)") &&
                                 Catch::Contains("total_positions 250 (trained) vs 300 (session)"));
    const auto d = differences_of(w[0]);
    CHECK(d.size() == 2);
    CHECK(d.at("semiangle_mrad").at("session").get<double>() == 25.0);
    CHECK(d.contains("total_positions"));
  }
  SECTION("a model without the record: it cannot be checked, said once") {
    const auto w = session_warnings(kFixture, limits(), 4e5);
    REQUIRE(w.size() == 1);
    CHECK(w[0].code == "torchscript_policy_not_checkable");
    CHECK_THAT(w[0].message, Catch::Contains(kFixture.string()) &&
                                 Catch::Contains("cannot be checked") &&
                                 Catch::Contains("--add-record"));
  }
  SECTION("a new session is checked again") {
    const auto policy = load(kRecorded);
    Contexts s;
    for (int session = 0; session < 2; ++session) {
      policy->reset(1);
      std::vector<SessionWarning> warnings;
      PolicyContext c = s.at(0);
      c.total_positions = 300;
      c.warnings = &warnings;
      propose_ok(*policy, c);
      CHECK(warnings.size() == 1);
    }
  }
}

TEST_CASE("torchscript policy starts from the sparse grid", "[policy][torch]") {
  Contexts s;
  const auto policy_ptr = load(kFixture);
  TorchScriptPolicy& policy = *policy_ptr;
  SparseGridPolicy grid;
  policy.reset(3);
  grid.reset(3);
  CHECK(same(propose_ok(policy, s.at(0)), propose_ok(grid, s.at(0))));
  // Without a potential (no update finished yet) it stays on the sparse grid.
  PolicyContext no_potential = s.at(2);
  no_potential.potential = nullptr;
  const auto fallback = propose_ok(policy, no_potential);
  CHECK(same(fallback, propose_ok(grid, no_potential)));
  CHECK(fallback.size() == kK);
}

TEST_CASE("torchscript policy starts with a survey where its schema says so", "[policy][torch]") {
  // tiny_policy_survey.pt: the fixture's weights, schema "first_sub_sequence": "survey".
  const fs::path survey_model =
      fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/tiny_policy_survey.pt";
  Contexts s;
  const auto policy = load(survey_model);
  CHECK_THAT(policy->schema_json(), Catch::Contains("\"first_sub_sequence\": \"survey\""));
  SurveyPolicy survey;
  SparseGridPolicy grid;
  policy->reset(3);
  const auto first = propose_ok(*policy, s.at(0));
  CHECK(same(first, propose_ok(survey, s.at(0))));
  CHECK_FALSE(same(first, propose_ok(grid, s.at(0))));
  // The survey spreads over the whole FOV; the sparse grid's first sub-sequence is its top band.
  const auto [low, high] = std::minmax_element(
      first.begin(), first.end(), [](const Vec2& a, const Vec2& b) { return a.y < b.y; });
  CHECK(high->y - low->y > kRaster.height_A() / 2);
  CHECK(policy->last_output().empty());
  // Later sub-sequences are the model's, as with the sparse-grid start.
  CHECK(propose_ok(*policy, s.at(1)).size() == kK);
  CHECK(policy->last_output().size() == kK);
}

TEST_CASE("torchscript policy starts with lattice-flank's central patch where its schema says so",
          "[policy][torch]") {
  // tiny_policy_centre_out.pt: the fixture's weights, schema "first_sub_sequence": "centre-out".
  const fs::path model = fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/tiny_policy_centre_out.pt";
  Contexts s;
  const auto policy = load(model);
  CHECK_THAT(policy->schema_json(), Catch::Contains("\"first_sub_sequence\": \"centre-out\""));
  LatticeFlankPolicy teacher;
  SparseGridPolicy grid;
  SurveyPolicy survey;
  policy->reset(3);
  const auto first = propose_ok(*policy, s.at(0));
  CHECK(same(first, propose_ok(teacher, s.at(0))));
  CHECK_FALSE(same(first, propose_ok(grid, s.at(0))));
  CHECK_FALSE(same(first, propose_ok(survey, s.at(0))));
  // The patch is at the FOV's centre: every position within a fifth of the FOV of it.
  for (const Vec2& p : first) {
    CHECK(std::abs(p.y - kRaster.height_A() / 2) < kRaster.height_A() / 5);
    CHECK(std::abs(p.x - kRaster.width_A() / 2) < kRaster.width_A() / 5);
  }
  CHECK(policy->last_output().empty());
  CHECK(propose_ok(*policy, s.at(1)).size() == kK);
  CHECK(policy->last_output().size() == kK);
}

TEST_CASE("torchscript policy runs a flank scorer as the chooser of lattice-flank's moves",
          "[policy][torch]") {
  // tiny_flank_scorer.pt (make_tiny_flank_scorer.py): lattice-flank's rule written as a network
  // reading the features' third channel; FlankRuleScorer is the same in C++.
  const fs::path model = fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/tiny_flank_scorer.pt";
  const auto policy = load(model);
  CHECK_THAT(policy->schema_json(), Catch::Contains("\"kind\": \"ptypilot-flank-scorer\""));
  const ObjectGrid grid = object_grid_for_fov(kRaster.height_A(), kRaster.width_A(), 0.154, 64, 3);
  const Potential v = test::crystal_potential(grid, test::Honeycomb{});
  policy->reset(0);
  LatticeFlankPolicy in_cpp(LatticeFlankOptions{},
                            std::make_shared<test::FlankRuleScorer>(4, kRaster.step_A / 0.154));
  // Each call of the session, with the same inputs to both. The network's float arithmetic and
  // the test's double may order two nearly equal scores differently; a transposed or shuffled
  // feature layout would change most choices.
  int same_positions = 0;
  auto session = [&](Policy& p, Policy* reference) {
    std::vector<Vec2> visited;
    for (int t = 0; visited.size() < 250; ++t) {
      PolicyContext c;
      c.raster = kRaster;
      c.sub_sequence = t;
      c.count = kK;
      c.total_positions = 250;
      c.visited_A = visited;
      c.potential = &v;
      const std::vector<Vec2> answer = propose_ok(p, c);
      REQUIRE(answer.size() == kK);
      if (reference != nullptr) {
        const std::vector<Vec2> expected = propose_ok(*reference, c);
        REQUIRE(expected.size() == kK);
        for (int i = 0; i < kK; ++i)
          same_positions += answer[i].y == expected[i].y && answer[i].x == expected[i].x;
      }
      visited.insert(visited.end(), answer.begin(), answer.end());
    }
    return visited;
  };
  const std::vector<Vec2> learned = session(*policy, &in_cpp);
  REQUIRE(learned.size() == 252);
  INFO(same_positions << " of 252 the same");
  CHECK(same_positions >= 248);  // 252 when written
  CHECK(policy->hidden_norm() == 0.0);
  CHECK(policy->last_output().empty());
  // Like the GRU, it says when it cannot check the session against what it was trained for
  // (the fixture has no trained_for.json), once per session.
  std::vector<SessionWarning> warnings;
  PolicyContext start;
  start.raster = kRaster;
  start.count = kK;
  start.total_positions = 250;
  start.warnings = &warnings;
  policy->reset(1);
  propose_ok(*policy, start);
  propose_ok(*policy, start);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].code == "torchscript_policy_not_checkable");
  // The same inputs give the same positions.
  const auto again = load(model);
  again->reset(0);
  CHECK(same(session(*again, nullptr), learned));
}

TEST_CASE("torchscript policy refuses a flank scorer that does not score nine moves",
          "[policy][torch]") {
  const fs::path bad =
      fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/tiny_flank_scorer_bad_scores.pt";
  const std::string m = message_of([&] { load(bad); });
  CHECK_THAT(m, Catch::Contains(bad.string()) && Catch::Contains("forward() failed on a test input") &&
                    Catch::Contains("expected [2, 9]"));
  CHECK_THROWS_AS(load(bad), std::invalid_argument);
}

TEST_CASE("torchscript policy refuses a first sub-sequence it does not know", "[policy][torch]") {
  const fs::path unknown =
      fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/tiny_policy_unknown_first.pt";
  const std::string m = message_of([&] { load(unknown); });
  CHECK_THAT(m, Catch::Contains(unknown.string()) &&
                    Catch::Contains("first_sub_sequence \"spiral\"") &&
                    Catch::Contains("\"sparse-grid\", \"survey\" and \"centre-out\""));
  CHECK_THROWS_AS(load(unknown), std::invalid_argument);
}

TEST_CASE("torchscript policy proposes in the FOV, deterministically, with a moving state",
          "[policy][torch]") {
  Contexts s;
  const auto policy_ptr = load(kFixture);
  TorchScriptPolicy& policy = *policy_ptr;
  policy.reset(0);
  const double h0 = policy.hidden_norm();
  CHECK(h0 == 0.0);  // the fixture starts from zeros

  const auto first = propose_ok(policy, s.at(1));
  REQUIRE(first.size() == kK);
  for (const Vec2& p : first) {
    CHECK(p.y >= 0.0);
    CHECK(p.y <= kRaster.height_A());
    CHECK(p.x >= 0.0);
    CHECK(p.x <= kRaster.width_A());
  }
  const double h1 = policy.hidden_norm();
  CHECK(h1 != h0);

  // The same inputs again: the GRU state moved, so the answer moves.
  const auto second = propose_ok(policy, s.at(1));
  REQUIRE(second.size() == kK);
  CHECK_FALSE(same(first, second));
  CHECK(policy.hidden_norm() != h1);

  // Fewer wanted than K: the first `count` of the model's answer.
  const auto third = propose_ok(policy, s.at(2, 3));
  CHECK(third.size() == 3);

  // reset() restores the initial behaviour, to the bit.
  policy.reset(0);
  CHECK(policy.hidden_norm() == h0);
  CHECK(same(propose_ok(policy, s.at(1)), first));
  CHECK(same(propose_ok(policy, s.at(1)), second));

  // A second instance from the same file answers the same.
  const auto other_ptr = load(kFixture);
  TorchScriptPolicy& other = *other_ptr;
  other.reset(0);
  CHECK(same(propose_ok(other, s.at(1)), first));

  // A different potential moves the model from the same state. Its positions are snapped to
  // the 0.2 A raster, where the tiny fixture's small differences can vanish, so compare the
  // state the model carries forward.
  policy.reset(0);
  (void)propose_ok(policy, s.at(1));
  const double state_seen = policy.hidden_norm();
  Potential flat = s.potential;
  std::fill(flat.phase_rad.vector().begin(), flat.phase_rad.vector().end(), 0.5f);
  flat.phase_rad(100, 100) = 2.0f;
  policy.reset(0);
  PolicyContext with_flat = s.at(1);
  with_flat.potential = &flat;
  (void)propose_ok(policy, with_flat);
  CHECK(policy.hidden_norm() != state_seen);
}

// Export round trip: the daemon's forward() outputs and GRU state for the inputs that
// tests/fixtures/policy_parity.py built and ran in Python (tests/python/test_policy_parity.py
// checks that the stored figures are torch's), for the tiny fixture and the shipped model.
TEST_CASE("torchscript policy gives Python's outputs for the same inputs", "[policy][torch]") {
  std::ifstream in(fs::path(PTYPILOT_SOURCE_DIR) / "tests/fixtures/policy_parity.json");
  REQUIRE(in);
  const nlohmann::json parity = nlohmann::json::parse(in);
  const int side = parity["side_px"];
  std::vector<Potential> potentials;
  for (const auto& image : parity["potentials"]) {
    Potential v;
    v.grid = {side, side, parity["pixel_A"].get<double>(), {0.0, 0.0}, kRaster.height_A(),
              kRaster.width_A()};
    v.phase_rad = RealImage(side, side, 0.0f);
    for (int i = 0; i < side; ++i)
      for (int j = 0; j < side; ++j) v.phase_rad(i, j) = image[i][j].get<float>();
    potentials.push_back(std::move(v));
  }
  for (const std::string name : {"tiny", "shipped"}) {
    const nlohmann::json& model = parity["models"][name];
    const int k = model["sub_sequence_size"];
    INFO("model " << name << " (" << model["path"].get<std::string>() << ", K = " << k << ")");
    const auto policy = load(fs::path(PTYPILOT_SOURCE_DIR) / model["path"].get<std::string>(),
                             limits(k));
    policy->reset(0);
    CHECK(policy->last_output().empty());
    std::vector<Vec2> visited;
    for (const auto& p : model["visited_A"]) visited.push_back({p[0], p[1]});
    for (std::size_t call = 0; call < potentials.size(); ++call) {
      INFO("call " << call);
      PolicyContext c;
      c.raster = kRaster;
      c.sub_sequence = static_cast<int>(call) + 1;
      c.count = k;
      c.total_positions = 250;
      c.visited_A = visited;  // the previous proposal of the first call (this policy did not
      c.potential = &potentials[call];  // start the session); the second uses the first's
      REQUIRE(propose_ok(*policy, c).size() == static_cast<std::size_t>(k));
      const nlohmann::json& want = model["calls"][call];
      const auto got = policy->last_output();
      REQUIRE(got.size() == static_cast<std::size_t>(k));
      double worst = 0.0;
      for (int i = 0; i < k; ++i) {
        worst = std::max(worst, std::abs(got[i].y - want["output"][i][0].get<double>()));
        worst = std::max(worst, std::abs(got[i].x - want["output"][i][1].get<double>()));
      }
      CHECK(worst <= 1e-5);
      CHECK(policy->hidden_norm() ==
            Approx(want["hidden_abs_sum"].get<double>()).epsilon(0).margin(1e-5));
    }
  }
}

TEST_CASE("torchscript policy returns its failure instead of throwing", "[policy][torch]") {
  Contexts s;
  const auto policy_ptr = load(kFixture);
  TorchScriptPolicy& policy = *policy_ptr;
  policy.reset(0);
  Potential broken = s.potential;
  // The FOV lies beyond the 30.8 A object: a usable grid with nothing to crop.
  broken.grid.fov_origin_A = {100.0, 100.0};
  PolicyContext c = s.at(1);
  c.potential = &broken;
  std::vector<Vec2> got{{1.0, 1.0}};
  Status status;
  REQUIRE_NOTHROW(status = policy.propose(c, &got));
  CHECK(status.code() == StatusCode::kInternal);
  CHECK_THAT(status.message(), Catch::Contains(kFixture.string()) &&
                                   Catch::Contains("sub-sequence 1") &&
                                   Catch::Contains("FOV crop is empty"));
  CHECK(got.empty());
  broken.grid.fov_origin_A = {NAN, 0.0};
  REQUIRE_NOTHROW(status = policy.propose(c, &got));
  CHECK(status.code() == StatusCode::kInternal);
  CHECK_THAT(status.message(), Catch::Contains("object grid is not usable"));
  CHECK(got.empty());
  // The sparse-grid start's failure is the policy's too, not an empty answer.
  PolicyContext no_raster = s.at(0);
  no_raster.raster = {0, 0, 0.0};
  CHECK(policy.propose(no_raster, &got).code() == StatusCode::kInvalidArgument);
  CHECK(got.empty());
  // The failed call left the state alone: the next good call answers as a fresh policy would.
  const auto fresh_ptr = load(kFixture);
  TorchScriptPolicy& fresh = *fresh_ptr;
  fresh.reset(0);
  CHECK(same(propose_ok(policy, s.at(1)), propose_ok(fresh, s.at(1))));
}

TEST_CASE("torchscript policy per-call time", "[.][bench][policy][torch]") {
  Contexts s;
  const auto t_load = std::chrono::steady_clock::now();
  const auto policy_ptr = load(kFixture);
  TorchScriptPolicy& policy = *policy_ptr;
  const auto t_loaded = std::chrono::steady_clock::now();
  policy.reset(0);
  REQUIRE(!propose_ok(policy, s.at(1)).empty());
  const auto t_first = std::chrono::steady_clock::now();
  using Ms = std::chrono::duration<double, std::milli>;
  WARN("load + checks + dry run " << Ms(t_loaded - t_load).count() << " ms; first call "
                                  << Ms(t_first - t_loaded).count() << " ms");
  auto cpu_s = [] {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
  };
  constexpr int kCalls = 2000;
  std::vector<double> wall_ms;
  wall_ms.reserve(kCalls);
  policy.reset(0);
  const double cpu0 = cpu_s();
  for (int i = 0; i < kCalls; ++i) {
    if (i % 50 == 0) policy.reset(0);
    std::vector<Vec2> got;
    const auto t0 = std::chrono::steady_clock::now();
    const Status status = policy.propose(s.at(1 + i % 50), &got);
    wall_ms.push_back(Ms(std::chrono::steady_clock::now() - t0).count());
    REQUIRE(status.ok());
    REQUIRE(got.size() == kK);
  }
  const double cpu_ms = (cpu_s() - cpu0) * 1e3 / kCalls;
  std::sort(wall_ms.begin(), wall_ms.end());
  WARN("tiny_policy.pt, 130 x 130 px crop: per call CPU "
       << cpu_ms << " ms (process), wall median " << wall_ms[kCalls / 2] << " ms, p99 "
       << wall_ms[kCalls * 99 / 100] << " ms, max " << wall_ms.back() << " ms");
}
