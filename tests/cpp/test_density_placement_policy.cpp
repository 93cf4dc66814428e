// Density placement (density_placement_policy.hpp): another policy's proposals say where to look,
// material-density's greedy spacing places the positions there.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/baseline_policies.hpp"
#include "ptypilot/policy/density_placement_policy.hpp"
#include "ptypilot/policy/policy_factory.hpp"
#include "ptypilot/scan_geometry.hpp"

#include "policy_helpers.hpp"

using namespace ptypilot;
using ptypilot::test::propose_ok;
using ptypilot::test::run_session;

namespace {

// A 40 x 40 raster, 0.2 A apart (7.8 A square), sessions of 200 in sub-sequences of 40.
const ScanRaster kRaster{40, 40, 0.2};
constexpr int kBudget = 200;
constexpr int kSubSequence = 40;

// As the learned policy taught by material-density answers: the survey first, then positions
// where it wants them but bunched, here every one of them on one of four spots of the left
// third. `answer` overrides what it proposes after the survey.
class BunchingPolicy final : public Policy {
 public:
  void reset(std::uint64_t) override { calls = 0; }
  Status propose(const PolicyContext& context, std::vector<Vec2>* positions) override {
    ++calls;
    if (context.sub_sequence == 0) return SurveyPolicy().propose(context, positions);
    if (!status.ok()) return status;
    if (answer) {
      *positions = *answer;
      return Status::Ok();
    }
    const Vec2 spots[] = {{1.0, 1.0}, {3.0, 1.6}, {5.0, 0.8}, {6.6, 2.0}};
    positions->clear();
    for (int k = 0; k < context.count; ++k) positions->push_back(spots[k % 4]);
    return Status::Ok();
  }
  std::string_view name() const override { return "bunching"; }

  int calls = 0;
  Status status = Status::Ok();
  std::optional<std::vector<Vec2>> answer;
};

Potential flat_potential() {
  Potential v;
  v.grid = object_grid_for_fov(kRaster.height_A(), kRaster.width_A(), 0.1, 16);
  v.phase_rad = RealImage(v.grid.rows, v.grid.cols);
  return v;
}

double min_distance(const std::vector<Vec2>& a) {
  double d = std::numeric_limits<double>::infinity();
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = i + 1; j < a.size(); ++j) d = std::min(d, std::hypot(a[i].y - a[j].y, a[i].x - a[j].x));
  return d;
}

PolicyContext later_call(const std::vector<Vec2>& visited, const Potential* potential) {
  PolicyContext context;
  context.raster = kRaster;
  context.sub_sequence = 1;
  context.count = kSubSequence;
  context.total_positions = kBudget;
  context.visited_A = visited;
  context.potential = potential;
  return context;
}

}  // namespace

TEST_CASE("density placement spreads bunched proposals over where they point", "[policy]") {
  auto inner = std::make_unique<BunchingPolicy>();
  BunchingPolicy* bunching = inner.get();
  DensityPlacementPolicy policy(std::move(inner));
  CHECK(policy.name() == "bunching+density");
  policy.reset(3);
  const Potential v = flat_potential();
  const auto answers = run_session(policy, kRaster, kBudget, kSubSequence, &v);
  CHECK(bunching->calls == static_cast<int>(answers.size()));
  // The survey passes through unchanged.
  const std::vector<Vec2> grid =
      sparse_grid_positions(kSubSequence, kRaster.rows, kRaster.cols, kRaster.step_A);
  REQUIRE(answers[0].size() == grid.size());
  for (std::size_t i = 0; i < grid.size(); ++i) {
    CHECK(answers[0][i].y == grid[i].y);
    CHECK(answers[0][i].x == grid[i].x);
  }
  std::vector<Vec2> all;
  for (const auto& answer : answers) {
    REQUIRE(static_cast<int>(answer.size()) == kSubSequence);
    all.insert(all.end(), answer.begin(), answer.end());
  }
  // Every position once, on the raster: what the proposals repeated forty times is spread.
  CHECK(min_distance(all) >= kRaster.step_A - 1e-9);
  // And most go where the proposals pointed, the left third of the field: twice its share.
  const auto left = std::count_if(all.begin() + kSubSequence, all.end(),
                                  [](Vec2 p) { return p.x < kRaster.width_A() / 3; });
  INFO(left << " of " << all.size() - kSubSequence << " on the left third");
  CHECK(3 * left >= 2 * static_cast<long>(all.size() - kSubSequence));
}

TEST_CASE("density placement passes the inner answer through where it has nothing to place by",
          "[policy]") {
  auto inner = std::make_unique<BunchingPolicy>();
  BunchingPolicy* bunching = inner.get();
  DensityPlacementPolicy policy(std::move(inner));
  const std::vector<Vec2> visited =
      sparse_grid_positions(kSubSequence, kRaster.rows, kRaster.cols, kRaster.step_A);
  // No reconstruction yet: the inner answer, bunched as it is.
  const std::vector<Vec2> without = propose_ok(policy, later_call(visited, nullptr));
  CHECK(without.size() == std::size_t(kSubSequence));
  CHECK(min_distance(without) == 0.0);
  // Proposals that are not numbers: passed on for Safety to refuse, not placed.
  const Potential v = flat_potential();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  bunching->answer = std::vector<Vec2>(kSubSequence, Vec2{nan, nan});
  const std::vector<Vec2> invalid = propose_ok(policy, later_call(visited, &v));
  CHECK(std::all_of(invalid.begin(), invalid.end(), [](Vec2 p) { return std::isnan(p.y); }));
  // Nothing proposed (the inner policy is done): nothing placed, and the session ends.
  bunching->answer = std::vector<Vec2>{};
  CHECK(propose_ok(policy, later_call(visited, &v)).empty());
  // The inner policy's failure is the answer.
  bunching->answer.reset();
  bunching->status = Status{StatusCode::kInternal, "model failed"};
  std::vector<Vec2> positions{{1.0, 1.0}};
  const Status s = policy.propose(later_call(visited, &v), &positions);
  CHECK(s.code() == StatusCode::kInternal);
  CHECK(s.message() == "model failed");
  CHECK(positions.empty());
}

TEST_CASE("the density weight is material-density's, from the proposals' density", "[policy]") {
  DensityPlacementPolicy policy(std::make_unique<BunchingPolicy>());
  const std::vector<double> w = policy.density_weight(kRaster, {{1.0, 1.0}});
  REQUIRE(w.size() == std::size_t(kRaster.rows) * kRaster.cols);
  const auto at = [&](double y, double x) {
    return w[std::size_t(std::lround(y / kRaster.step_A)) * kRaster.cols + std::size_t(std::lround(x / kRaster.step_A))];
  };
  // Full weight at the proposal, vacuum's far from it, in between one sigma (1 A) away.
  CHECK(at(1.0, 1.0) == Approx(1.0));
  CHECK(at(7.0, 7.0) == Approx(MaterialDensityOptions{}.vacuum_weight));
  CHECK(at(2.0, 1.0) > at(3.0, 1.0));
  // A raster without nodes has no weights.
  CHECK(policy.density_weight(ScanRaster{0, 0, 0.2}, {{1.0, 1.0}}).empty());
  // No proposal at all: every node alike.
  const std::vector<double> none = policy.density_weight(kRaster, {});
  CHECK(std::all_of(none.begin(), none.end(), [](double x) { return x == 1.0; }));
}

TEST_CASE("make_policy wraps any policy for density placement, and refuses an unknown one",
          "[policy]") {
  PolicyConfig config;
  config.kind = "sparse-grid";
  config.placement = "density";
  CHECK(make_policy(config, PolicyLimits{})->name() == "sparse-grid+density");
  config.placement = "direct";
  CHECK(make_policy(config, PolicyLimits{})->name() == "sparse-grid");
  config.placement = "spread";
  CHECK_THROWS_WITH(make_policy(config, PolicyLimits{}), Catch::Contains("unknown placement \"spread\""));
}
