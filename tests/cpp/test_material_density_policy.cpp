// The material-density policy (material_density_policy.hpp): a survey over the whole field,
// then positions where the reconstruction shows material, denser than on vacuum.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <vector>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/policy/material_density_policy.hpp"
#include "ptypilot/scan_geometry.hpp"

#include "policy_helpers.hpp"

using namespace ptypilot;
using ptypilot::test::flatten;
using ptypilot::test::propose_ok;
using ptypilot::test::run_session;

namespace {

// A 40 x 40 raster, 0.2 A apart (7.8 A square), sessions of 200 in sub-sequences of 40.
const ScanRaster kRaster{40, 40, 0.2};
constexpr int kBudget = 200;
constexpr int kSubSequence = 40;

// Material (0.5 rad) on the left third of the field, vacuum (0) elsewhere.
Potential left_third_material() {
  Potential v;
  v.grid = object_grid_for_fov(kRaster.height_A(), kRaster.width_A(), 0.1, 16);
  v.phase_rad = RealImage(v.grid.rows, v.grid.cols);
  const double edge_A = kRaster.width_A() / 3;
  for (int r = 0; r < v.grid.rows; ++r)
    for (int c = 0; c < v.grid.cols; ++c)
      if (c * v.grid.pixel_A - v.grid.fov_origin_A.x < edge_A) v.phase_rad(r, c) = 0.5f;
  return v;
}

// A session's positions, and each sub-sequence's count.
std::vector<Vec2> session(const Potential* potential) {
  MaterialDensityPolicy policy;
  policy.reset(1);
  const auto answers = run_session(policy, kRaster, kBudget, kSubSequence, potential);
  for (const auto& answer : answers) CHECK(static_cast<int>(answer.size()) == kSubSequence);
  return flatten(answers);
}

int on_material(const std::vector<Vec2>& positions) {
  return static_cast<int>(std::count_if(positions.begin(), positions.end(), [](Vec2 p) {
    return p.x < kRaster.width_A() / 3;
  }));
}

}  // namespace

TEST_CASE("material-density surveys the whole field first", "[policy]") {
  const std::vector<Vec2> all = session(nullptr);
  const std::vector<Vec2> survey(all.begin(), all.begin() + kSubSequence);
  const std::vector<Vec2> grid =
      sparse_grid_positions(kSubSequence, kRaster.rows, kRaster.cols, kRaster.step_A);
  REQUIRE(grid.size() == survey.size());
  for (std::size_t i = 0; i < grid.size(); ++i) {
    CHECK(survey[i].y == Approx(grid[i].y));
    CHECK(survey[i].x == Approx(grid[i].x));
  }
}

TEST_CASE("material-density puts its positions on material, and every one on its own node",
          "[policy]") {
  const Potential material = left_third_material();
  const std::vector<Vec2> informed = session(&material);
  const std::vector<Vec2> blind = session(nullptr);
  std::set<std::pair<long, long>> nodes;
  for (const Vec2& p : informed) {
    CHECK(p.y >= 0);
    CHECK(p.x >= 0);
    CHECK(p.y <= kRaster.height_A() + 1e-9);
    CHECK(p.x <= kRaster.width_A() + 1e-9);
    nodes.insert({std::lround(p.y / kRaster.step_A), std::lround(p.x / kRaster.step_A)});
  }
  CHECK(nodes.size() == informed.size());
  // The survey puts about a third on the material; without a potential the rest follows the
  // area too, and with one most of the rest goes to the material.
  const int after_survey = kBudget - kSubSequence;
  INFO("on material: informed " << on_material(informed) << ", blind " << on_material(blind));
  CHECK(on_material(blind) < kBudget / 2);
  CHECK(on_material(informed) > on_material(blind) + after_survey / 3);
  // Vacuum is not abandoned: after the survey, regions far from every position still get some.
  const std::vector<Vec2> after_survey_positions(informed.begin() + kSubSequence, informed.end());
  CHECK(on_material(after_survey_positions) < after_survey);
}

TEST_CASE("material-density weighs vacuum low and answers the same context the same way",
          "[policy]") {
  const Potential material = left_third_material();
  MaterialDensityPolicy policy;
  PolicyContext context;
  context.raster = kRaster;
  context.total_positions = kBudget;
  context.potential = &material;
  const std::vector<double> weight = policy.material_weight(context);
  REQUIRE(weight.size() == static_cast<std::size_t>(kRaster.rows * kRaster.cols));
  CHECK(weight[20 * kRaster.cols + 2] == Approx(1.0));                       // deep in material
  CHECK(weight[20 * kRaster.cols + 38] == Approx(MaterialDensityOptions{}.vacuum_weight));  // vacuum

  const std::vector<Vec2> survey =
      sparse_grid_positions(kSubSequence, kRaster.rows, kRaster.cols, kRaster.step_A);
  context.sub_sequence = 1;
  context.count = kSubSequence;
  context.visited_A = survey;
  const std::vector<Vec2> first = propose_ok(policy, context);
  const std::vector<Vec2> second = propose_ok(policy, context);
  REQUIRE(first.size() == second.size());
  for (std::size_t i = 0; i < first.size(); ++i) {
    CHECK(first[i].y == second[i].y);
    CHECK(first[i].x == second[i].x);
  }
}

// Vacuum that the reconstruction fills with noise at 0.4 of the material's phase (a weak
// specimen): the brightest-material scale gives it most of the material's weight, the two-class
// split gives it the vacuum weight, and the material keeps full weight under both.
TEST_CASE("material-density's two-class scale tells material from vacuum noise", "[policy]") {
  Potential noisy = left_third_material();
  const double edge_A = kRaster.width_A() / 3;
  for (int r = 0; r < noisy.grid.rows; ++r)
    for (int c = 0; c < noisy.grid.cols; ++c)
      if (c * noisy.grid.pixel_A - noisy.grid.fov_origin_A.x >= edge_A)
        noisy.phase_rad(r, c) =
            0.2f * (1.0f + 0.3f * static_cast<float>(std::sin(0.7 * r + 1.3 * c)));
  PolicyContext context;
  context.raster = kRaster;
  context.total_positions = kBudget;
  context.potential = &noisy;
  const std::size_t material = 20 * kRaster.cols + 2, vacuum = 20 * kRaster.cols + 38;
  const double vacuum_weight = MaterialDensityOptions{}.vacuum_weight;

  const std::vector<double> brightest = MaterialDensityPolicy().material_weight(context);
  CHECK(brightest[material] == Approx(1.0));
  CHECK(brightest[vacuum] > 0.6);

  MaterialDensityOptions options;
  options.material_scale = MaterialScale::kTwoClass;
  const std::vector<double> two_class = MaterialDensityPolicy(options).material_weight(context);
  CHECK(two_class[material] == Approx(1.0));
  CHECK(two_class[vacuum] < vacuum_weight + 0.1);

  CHECK(material_scale_named("two-class") == MaterialScale::kTwoClass);
  CHECK(material_scale_named("brightest") == MaterialScale::kBrightest);
  CHECK_FALSE(material_scale_named("otsu").has_value());
}
