#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <utility>

#include "ptypilot/policy/policy_factory.hpp"
#include "ptypilot/policy/baseline_policies.hpp"
#include "ptypilot/policy/fixed_pattern_policies.hpp"
#include "ptypilot/core/policy.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/presets.hpp"
#include "ptypilot/simulator.hpp"

#include "policy_helpers.hpp"

using namespace ptypilot;
using ptypilot::test::propose_ok;

namespace {

std::pair<long, long> node_of(Vec2 p, double step) {
  return {std::lround(p.y / step), std::lround(p.x / step)};
}

bool same(Vec2 a, Vec2 b) { return std::abs(a.y - b.y) < 1e-9 && std::abs(a.x - b.x) < 1e-9; }

// Runs `calls` sub-sequences of `count`, feeding every answer back as visited, as the session
// loop does with what Safety approved.
std::vector<Vec2> run_session(Policy& policy, const ScanRaster& raster, int total, int count,
                              int calls, const Potential* potential = nullptr) {
  std::vector<Vec2> visited;
  for (int t = 0; t < calls; ++t) {
    PolicyContext context;
    context.raster = raster;
    context.sub_sequence = t;
    context.count = count;
    context.total_positions = total;
    context.visited_A = visited;
    context.potential = potential;
    const auto next = propose_ok(policy, context);
    REQUIRE(static_cast<int>(next.size()) <= count);
    visited.insert(visited.end(), next.begin(), next.end());
  }
  return visited;
}

void require_on_raster_and_distinct(const std::vector<Vec2>& positions, const ScanRaster& raster) {
  std::set<std::pair<long, long>> seen;
  for (Vec2 p : positions) {
    const auto [i, j] = node_of(p, raster.step_A);
    REQUIRE(same(p, {i * raster.step_A, j * raster.step_A}));
    REQUIRE(i >= 0);
    REQUIRE(i < raster.rows);
    REQUIRE(j >= 0);
    REQUIRE(j < raster.cols);
    REQUIRE(seen.insert({i, j}).second);
  }
}

// A flat potential over the FOV of `raster` plus one Gaussian blob of `sigma_A` at `centre_A`
// (FOV coordinates).
Potential blob_potential(const ScanRaster& raster, Vec2 centre_A, double sigma_A) {
  Potential v;
  v.grid = object_grid_for_fov(raster.height_A(), raster.width_A(), 0.1, 16);
  v.phase_rad = RealImage(v.grid.rows, v.grid.cols, 0.1f);
  for (int i = 0; i < v.grid.rows; ++i)
    for (int j = 0; j < v.grid.cols; ++j) {
      const double y = i * v.grid.pixel_A - v.grid.fov_origin_A.y - centre_A.y;
      const double x = j * v.grid.pixel_A - v.grid.fov_origin_A.x - centre_A.x;
      v.phase_rad(i, j) += static_cast<float>(std::exp(-(y * y + x * x) / (2 * sigma_A * sigma_A)));
    }
  return v;
}

}  // namespace

TEST_CASE("make_policy builds the baselines and names the known kinds", "[policy]") {
  for (const char* kind : {"raster", "sparse-grid", "jittered-grid", "fermat-spiral", "sobol",
                           "random", "heuristic"}) {
    PolicyConfig config;
    config.kind = kind;
    const auto policy = make_policy(config, PolicyLimits{50, 19.8, 19.8});
    REQUIRE(policy != nullptr);
    CHECK(policy->name() == kind);
  }
  PolicyConfig bad;
  bad.kind = "sparse_grid";
  CHECK_THROWS_WITH(make_policy(bad, PolicyLimits{50, 19.8, 19.8}), Catch::Contains("sparse-grid") && Catch::Contains("raster") &&
                                           Catch::Contains("fermat-spiral"));
  PolicyConfig learned;
  learned.kind = "torchscript";
  CHECK_THROWS_WITH(make_policy(learned, PolicyLimits{50, 19.8, 19.8}),
                    Catch::Contains("needs policy.model_path"));
}

TEST_CASE("sparse-grid policy hands out the sparse grid of the whole budget in order", "[policy]") {
  const ScanRaster raster{100, 100, 0.2};
  SparseGridPolicy policy;
  policy.reset(7);
  const auto got = run_session(policy, raster, 250, 50, 5);
  const auto want = sparse_grid_positions(250, raster.rows, raster.cols, raster.step_A);
  REQUIRE(got.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) {
    INFO("position " << k);
    REQUIRE(same(got[k], want[k]));
  }
}

TEST_CASE("survey policy spreads its count over the whole FOV, skipping visited nodes",
          "[policy]") {
  const ScanRaster raster{100, 100, 0.2};
  SurveyPolicy policy;
  PolicyContext context;
  context.raster = raster;
  context.count = 50;
  context.total_positions = 250;
  const auto want = sparse_grid_positions(50, raster.rows, raster.cols, raster.step_A);
  const auto first = propose_ok(policy, context);
  REQUIRE(first.size() == want.size());
  for (std::size_t k = 0; k < want.size(); ++k) REQUIRE(same(first[k], want[k]));
  // Spread over the FOV, where the sparse grid of the budget's first 50 are its top band.
  CHECK(first.back().y - first.front().y > 0.8 * raster.height_A());
  // A visited survey node (within half a step) is left out and made up in raster order, from
  // the first unvisited node.
  std::vector<Vec2> visited{{want[3].y + 0.05, want[3].x - 0.05}, {0.0, 0.0}};
  context.visited_A = visited;
  const auto next = propose_ok(policy, context);
  REQUIRE(next.size() == 50);
  CHECK(std::none_of(next.begin(), next.end(), [&](const Vec2& p) { return same(p, want[3]); }));
  CHECK(same(next.back(), Vec2{0.0, 0.2}));
  context.count = 0;
  CHECK(propose_ok(policy, context).empty());
}

TEST_CASE("pattern policies skip what was visited and continue past the budget", "[policy]") {
  // The sparse grid and the other fixed patterns, each with the positions it hands out.
  const ScanRaster raster{10, 10, 1.0};
  std::vector<std::pair<std::unique_ptr<Policy>, std::vector<Vec2>>> cases;
  cases.emplace_back(std::make_unique<SparseGridPolicy>(), sparse_grid_positions(20, 10, 10, 1.0));
  for (FixedPattern pattern : {FixedPattern::kJitteredGrid, FixedPattern::kFermatSpiral,
                               FixedPattern::kSobol}) {
    cases.emplace_back(std::make_unique<FixedPatternPolicy>(pattern, 3),
                       fixed_pattern_positions(pattern, 20, raster, 3));
  }
  for (auto& [policy, grid] : cases) {
    INFO(policy->name());
    PolicyContext context;
    context.raster = raster;
    context.count = 5;
    context.total_positions = 20;
    // The first and third positions were visited (the third slightly off its node); the second
    // was not (Safety dropped it), so it comes first.
    std::vector<Vec2> visited{grid[0], {grid[2].y + 0.2, grid[2].x - 0.2}};
    context.visited_A = visited;
    const auto next = propose_ok(*policy, context);
    REQUIRE(next.size() == 5);
    CHECK(same(next[0], grid[1]));
    for (int k = 1; k < 5; ++k) CHECK(same(next[k], grid[k + 2]));

    // Budget spent: still `count` positions, now unvisited ones in raster order.
    context.visited_A = grid;
    const auto beyond = propose_ok(*policy, context);
    REQUIRE(beyond.size() == 5);
    for (int k = 1; k < 5; ++k)
      CHECK(beyond[k - 1].y * 10 + beyond[k - 1].x < beyond[k].y * 10 + beyond[k].x);
    std::vector<Vec2> all(grid);
    all.insert(all.end(), beyond.begin(), beyond.end());
    require_on_raster_and_distinct(all, raster);
  }
}

TEST_CASE("raster policy returns raster order and skips visited positions", "[policy]") {
  const ScanRaster raster{4, 5, 0.5};
  const auto full = raster_positions(4, 5, 0.5);
  RasterPolicy policy;
  PolicyContext context;
  context.raster = raster;
  context.count = 6;
  context.total_positions = 20;
  const auto first = propose_ok(policy, context);
  REQUIRE(first.size() == 6);
  for (int k = 0; k < 6; ++k) CHECK(same(first[k], full[k]));

  // Visited: the first 6 and also node 7: the next call returns 6, 8, 9, ...
  std::vector<Vec2> visited(first);
  visited.push_back(full[7]);
  context.visited_A = visited;
  const auto second = propose_ok(policy, context);
  REQUIRE(second.size() == 6);
  const int want[] = {6, 8, 9, 10, 11, 12};
  for (int k = 0; k < 6; ++k) CHECK(same(second[k], full[want[k]]));

  // Fewer only when the raster is exhausted.
  const auto all = run_session(policy, raster, 20, 6, 4);
  REQUIRE(all.size() == 20);
  for (int k = 0; k < 20; ++k) CHECK(same(all[k], full[k]));
  context.visited_A = all;
  CHECK(propose_ok(policy, context).empty());
}

TEST_CASE("random policy is reproducible per seed and never repeats", "[policy]") {
  const ScanRaster raster{12, 12, 0.3};
  RandomPolicy a, b;
  a.reset(42);
  b.reset(42);
  const auto run_a = run_session(a, raster, 144, 50, 3);
  const auto run_b = run_session(b, raster, 144, 50, 3);
  REQUIRE(run_a.size() == 144);  // 50 + 50 + the 44 left
  for (std::size_t k = 0; k < run_a.size(); ++k) REQUIRE(same(run_a[k], run_b[k]));
  require_on_raster_and_distinct(run_a, raster);

  RandomPolicy c;
  c.reset(43);
  const auto run_c = run_session(c, raster, 144, 50, 1);
  int equal = 0;
  for (std::size_t k = 0; k < run_c.size(); ++k) equal += same(run_a[k], run_c[k]);
  CHECK(equal < 10);

  // reset() restarts the sequence.
  a.reset(42);
  const auto again = run_session(a, raster, 144, 50, 1);
  for (std::size_t k = 0; k < again.size(); ++k) REQUIRE(same(again[k], run_a[k]));

  // Off-node visited positions within half a step count as visited too.
  PolicyContext context;
  context.raster = raster;
  context.count = 200;
  std::vector<Vec2> visited;
  for (int i = 0; i < 12; ++i) visited.push_back({i * 0.3 + 0.1, 5 * 0.3 - 0.1});
  context.visited_A = visited;
  const auto rest = propose_ok(a, context);
  CHECK(rest.size() == 144 - 12);
  for (Vec2 p : rest) CHECK(node_of(p, 0.3).second != 5);
}

TEST_CASE("heuristic policy starts on the sparse grid", "[policy]") {
  const ScanRaster raster{20, 20, 0.5};
  HeuristicPolicy heuristic;
  SparseGridPolicy sparse;
  const auto h = run_session(heuristic, raster, 100, 25, 2);  // no potential: sparse grid twice
  const auto s = run_session(sparse, raster, 100, 25, 2);
  REQUIRE(h.size() == s.size());
  for (std::size_t k = 0; k < h.size(); ++k) REQUIRE(same(h[k], s[k]));
}

namespace {

// The sparse grid used by the heuristic tests below: 64 positions on a 40 x 40 raster at
// 0.25 A are 8 x 8 at nodes 2, 7, ..., 37, so the cells are exactly the 5 x 5 squares of
// half-width 2 steps around them (cell_fraction 1: half of the 5-step spacing, rounded down).
constexpr int kCellHalfSteps = 2;

// Index of the sparse-grid position whose cell (square of kCellHalfSteps) holds `p`, or -1.
int cell_of(Vec2 p, const std::vector<Vec2>& grid, double step) {
  int found = -1;
  for (std::size_t s = 0; s < grid.size(); ++s) {
    const double dy = std::abs(p.y - grid[s].y) / step, dx = std::abs(p.x - grid[s].x) / step;
    if (dy <= kCellHalfSteps + 1e-9 && dx <= kCellHalfSteps + 1e-9) {
      REQUIRE(found == -1);  // the squares do not overlap
      found = static_cast<int>(s);
    }
  }
  return found;
}

double distance(Vec2 a, Vec2 b) { return std::hypot(a.y - b.y, a.x - b.x); }

}  // namespace

TEST_CASE("heuristic policy moves picks onto bright blobs within their sparse-grid cells",
          "[policy]") {
  const ScanRaster raster{40, 40, 0.25};  // 9.75 x 9.75 A
  const auto grid = sparse_grid_positions(64, 40, 40, 0.25);
  // Two blobs on nodes off their cells' centres: node (14, 16) in the cell of (12, 17) (row 2,
  // column 3 of the sparse grid, index 19) and node (18, 29) in the cell of (17, 27) (row 3,
  // column 5, index 29).
  const Vec2 blob_a{14 * 0.25, 16 * 0.25}, blob_b{18 * 0.25, 29 * 0.25};
  Potential potential = blob_potential(raster, blob_a, 0.4);
  const Potential second = blob_potential(raster, blob_b, 0.4);
  for (int i = 0; i < potential.grid.rows; ++i)
    for (int j = 0; j < potential.grid.cols; ++j)
      potential.phase_rad(i, j) += second.phase_rad(i, j) - 0.1f;
  const std::vector<Vec2> first(grid.begin(), grid.begin() + 16);  // sparse rows 0 and 1

  // A low threshold: this tests the mechanism, not the demo-tuned default.
  HeuristicPolicyOptions options;
  options.min_cell_gain = 0.1;
  HeuristicPolicy policy(options);
  PolicyContext context;
  context.raster = raster;
  context.sub_sequence = 1;
  context.count = 16;
  context.total_positions = 64;
  context.visited_A = first;
  context.potential = &potential;
  const auto picks = propose_ok(policy, context);
  REQUIRE(picks.size() == 16);

  std::vector<Vec2> all(first);
  all.insert(all.end(), picks.begin(), picks.end());
  require_on_raster_and_distinct(all, raster);

  // Coverage as the sparse grid's: the k-th pick lies in the cell of the sparse grid's next
  // position, one pick per cell.
  for (std::size_t k = 0; k < picks.size(); ++k) {
    INFO("pick " << k);
    CHECK(cell_of(picks[k], grid, 0.25) == static_cast<int>(16 + k));
  }
  // Cells with a blob: the pick moves onto its peak.
  CHECK(same(picks[19 - 16], blob_a));
  CHECK(same(picks[29 - 16], blob_b));
  // A pick leaves its sparse-grid position only for a node that scores at least min_cell_gain
  // higher, and cells far from both blobs stay on the sparse grid.
  const auto score = policy.scores(context);
  REQUIRE(score.size() == 1600);
  const auto score_at = [&](Vec2 p) {
    const auto [i, j] = node_of(p, 0.25);
    return score[static_cast<std::size_t>(i * 40 + j)];
  };
  int moved = 0;
  for (std::size_t k = 0; k < picks.size(); ++k) {
    INFO("pick " << k);
    const Vec2 centre = grid[16 + k];
    if (!same(picks[k], centre)) {
      ++moved;
      CHECK(score_at(picks[k]) >= score_at(centre) + 0.1);
    }
    if (distance(centre, blob_a) > 2.5 && distance(centre, blob_b) > 2.5)
      CHECK(same(picks[k], centre));
  }
  CHECK(moved >= 2);
  for (std::size_t a = 0; a < picks.size(); ++a)
    for (std::size_t b = a + 1; b < picks.size(); ++b)
      REQUIRE(distance(picks[a], picks[b]) >= 1.5 * 0.25 - 1e-9);

  // Deterministic.
  const auto again = propose_ok(policy, context);
  REQUIRE(again.size() == picks.size());
  for (std::size_t k = 0; k < picks.size(); ++k) REQUIRE(same(again[k], picks[k]));

  // The first sub-sequence ignores the potential: the sparse grid's first positions.
  context.sub_sequence = 0;
  context.visited_A = {};
  const auto start = propose_ok(policy, context);
  REQUIRE(start.size() == 16);
  for (std::size_t k = 0; k < start.size(); ++k) REQUIRE(same(start[k], grid[k]));

  // A whole session: exactly one visited position in every cell, as with the sparse grid.
  const auto session = run_session(policy, raster, 64, 16, 4, &potential);
  REQUIRE(session.size() == 64);
  require_on_raster_and_distinct(session, raster);
  std::vector<int> per_cell(64, 0);
  for (Vec2 p : session) {
    const int s = cell_of(p, grid, 0.25);
    REQUIRE(s >= 0);
    ++per_cell[static_cast<std::size_t>(s)];
  }
  for (int s = 0; s < 64; ++s) CHECK(per_cell[static_cast<std::size_t>(s)] == 1);
}

TEST_CASE("heuristic policy keeps the sparse grid where the reconstruction is flat", "[policy]") {
  const ScanRaster raster{40, 40, 0.25};
  Potential flat;
  flat.grid = object_grid_for_fov(raster.height_A(), raster.width_A(), 0.1, 16);
  flat.phase_rad = RealImage(flat.grid.rows, flat.grid.cols, 0.3f);
  HeuristicPolicyOptions options;
  options.min_cell_gain = 0;  // even without a threshold, all-equal scores keep the centre
  HeuristicPolicy heuristic(options);
  SparseGridPolicy sparse;
  const auto h = run_session(heuristic, raster, 64, 16, 4, &flat);
  const auto s = run_session(sparse, raster, 64, 16, 4);
  REQUIRE(h.size() == s.size());
  for (std::size_t k = 0; k < h.size(); ++k) REQUIRE(same(h[k], s[k]));
}

TEST_CASE("heuristic policy follows strong dark-field scattering within the cells", "[policy]") {
  const ScanRaster raster{40, 40, 0.25};
  const auto grid = sparse_grid_positions(64, 40, 40, 0.25);
  Potential flat;
  flat.grid = object_grid_for_fov(raster.height_A(), raster.width_A(), 0.1, 16);
  flat.phase_rad = RealImage(flat.grid.rows, flat.grid.cols, 0.3f);
  const std::vector<Vec2> visited(grid.begin(), grid.begin() + 16);
  std::vector<float> dark(visited.size(), 0.01f);
  dark[11] = 0.4f;  // the visited position at node (7, 17) scattered strongly

  HeuristicPolicyOptions options;
  options.min_cell_gain = 0.1;  // the dark-field term alone is at most dark_field_weight
  HeuristicPolicy policy(options);
  PolicyContext context;
  context.raster = raster;
  context.sub_sequence = 1;
  context.count = 8;  // sparse row 2, nodes (12, 2), (12, 7), ..., (12, 37)
  context.total_positions = 64;
  context.visited_A = visited;
  context.dark_field_fraction = dark;
  context.potential = &flat;
  const auto picks = propose_ok(policy, context);
  REQUIRE(picks.size() == 8);
  // The cell right below the scatterer moves its pick to the cell's node nearest it, (10, 17);
  // the others are out of reach, or gain too little, and stay on the sparse grid.
  for (std::size_t k = 0; k < picks.size(); ++k) {
    INFO("pick " << k);
    if (k == 3)
      CHECK(same(picks[k], {10 * 0.25, 17 * 0.25}));
    else
      CHECK(same(picks[k], grid[16 + k]));
  }
}

TEST_CASE("heuristic policy fills up when separation runs out, and stops when exhausted",
          "[policy]") {
  // A budget of 4 on 3 x 3: the sparse grid is the four corners, each cell its corner and the
  // edge node next to it (the centre and two edges belong to the first cell, ties to the lower
  // index).
  const ScanRaster raster{3, 3, 1.0};
  const Potential potential = blob_potential(raster, {1.0, 1.0}, 0.8);
  HeuristicPolicyOptions options;
  options.min_cell_gain = 0.1;
  HeuristicPolicy policy(options);
  PolicyContext context;
  context.raster = raster;
  context.sub_sequence = 2;
  context.count = 7;
  context.total_positions = 4;
  context.potential = &potential;
  std::vector<Vec2> visited{{0.0, 0.0}, {2.0, 2.0}};
  context.visited_A = visited;
  const auto picks = propose_ok(policy, context);
  REQUIRE(picks.size() == 7);
  CHECK(same(picks[0], {1.0, 2.0}));  // cell of (0, 2): its edge node, nearer the peak
  CHECK(same(picks[1], {2.0, 0.0}));  // cell of (2, 0): (2, 1) is too close to the first pick
  CHECK(same(picks[2], {1.0, 1.0}));  // beyond the budget: the best rest, the peak first
  std::vector<Vec2> all(visited);
  all.insert(all.end(), picks.begin(), picks.end());
  require_on_raster_and_distinct(all, raster);
  context.visited_A = all;
  CHECK(propose_ok(policy, context).empty());

  HeuristicPolicyOptions bad;
  bad.cell_fraction = -1;
  CHECK_THROWS_AS(HeuristicPolicy(bad), std::invalid_argument);
  bad.cell_fraction = 1;
  bad.min_cell_gain = NAN;
  CHECK_THROWS_AS(HeuristicPolicy(bad), std::invalid_argument);
}

TEST_CASE("policies fail on an invalid raster instead of throwing, and give nothing for no count",
          "[policy]") {
  PolicyContext context;  // zero raster
  context.count = 10;
  for (const char* kind : {"raster", "sparse-grid", "jittered-grid", "fermat-spiral", "sobol",
                           "random", "heuristic"}) {
    INFO(kind);
    PolicyConfig config;
    config.kind = kind;
    const auto policy = make_policy(config, PolicyLimits{50, 19.8, 19.8});
    std::vector<Vec2> positions{{1.0, 1.0}};  // replaced, even on failure
    Status s;
    REQUIRE_NOTHROW(s = policy->propose(context, &positions));
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("raster (0 x 0 positions"));
    CHECK(positions.empty());
    context.raster = {5, 5, std::nan("")};
    CHECK(policy->propose(context, &positions).code() == StatusCode::kInvalidArgument);
    context.raster = {5, 5, 1.0};
    context.count = 0;
    CHECK(propose_ok(*policy, context).empty());
    context.raster = {};
    context.count = 10;
  }
  context.raster = {5, 5, 1.0};
  context.count = 3;
  context.total_positions = 0;  // a missing budget degrades instead of failing
  SparseGridPolicy sparse;
  CHECK(propose_ok(sparse, context).size() == 3);
}

TEST_CASE("heuristic policy scores are the Gaussian-weighted phase, skipping bad pixels",
          "[policy]") {
  // The separable smoothing against the plain 2-D weighted mean, on an object with non-finite
  // pixels (left out of the mean) and a node whose whole window is non-finite (score 0).
  const ScanRaster raster{12, 10, 0.3};
  Potential potential = blob_potential(raster, {1.5, 1.2}, 0.6);
  RealImage& phase = potential.phase_rad;
  auto& pixels = phase.vector();
  for (std::size_t k = 0; k < pixels.size(); k += 7) pixels[k] = k % 2 ? NAN : INFINITY;
  const ObjectGrid& g = potential.grid;
  const double sigma_px = 0.25 / g.pixel_A;
  const auto object_point = [&](int i, int j) {
    return std::pair{(i * raster.step_A + g.fov_origin_A.y) / g.pixel_A,
                     (j * raster.step_A + g.fov_origin_A.x) / g.pixel_A};
  };
  {  // Node (9, 8) sees no finite pixel.
    const auto [cy, cx] = object_point(9, 8);
    const int r0 = static_cast<int>(cy), c0 = static_cast<int>(cx);
    for (int r = r0 - 12; r <= r0 + 12; ++r)
      for (int c = c0 - 12; c <= c0 + 12; ++c) phase(r, c) = NAN;
  }
  HeuristicPolicyOptions options;
  options.smoothing_sigma_A = 0.25;
  options.dark_field_weight = 0;
  PolicyContext context;
  context.raster = raster;
  context.potential = &potential;
  const auto score = HeuristicPolicy(options).scores(context);
  REQUIRE(score.size() == 120);
  std::vector<double> want(120, NAN);
  for (int i = 0; i < raster.rows; ++i)
    for (int j = 0; j < raster.cols; ++j) {
      const auto [cy, cx] = object_point(i, j);
      // The window: pixels floor(c) - radius .. floor(c) + radius + 1, radius = ceil(3 sigma).
      const int radius = static_cast<int>(std::ceil(3 * sigma_px));
      const int r0 = static_cast<int>(std::floor(cy)) - radius;
      const int c0 = static_cast<int>(std::floor(cx)) - radius;
      double sum = 0, weight = 0;
      for (int r = std::max(r0, 0); r <= std::min(r0 + 2 * radius + 1, phase.rows() - 1); ++r)
        for (int c = std::max(c0, 0); c <= std::min(c0 + 2 * radius + 1, phase.cols() - 1); ++c) {
          if (!std::isfinite(phase(r, c))) continue;
          const double w = std::exp(-0.5 * ((r - cy) * (r - cy) + (c - cx) * (c - cx)) /
                                    (sigma_px * sigma_px));
          sum += w * phase(r, c);
          weight += w;
        }
      if (weight > 0) want[static_cast<std::size_t>(i * raster.cols + j)] = sum / weight;
    }
  double lo = INFINITY, hi = -INFINITY;
  for (double v : want)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  REQUIRE(hi - lo > 0.1);
  for (std::size_t n = 0; n < want.size(); ++n) {
    INFO("node " << n);
    const double normalised = std::isfinite(want[n]) ? (want[n] - lo) / (hi - lo) : 0.0;
    CHECK(score[n] == Approx(normalised).margin(1e-6));
  }
  CHECK(score[9 * 10 + 8] == 0.0);
}

TEST_CASE("heuristic policy: propose() latency on the mos2-paper session", "[.bench]") {
  // The mos2-paper session (100 x 100 raster at 0.2 A, the preset's 200 x 200 px object) with
  // a noisy, scaled phase as a reconstruction part-way through, and a dark-field fraction per
  // visited position.
  const auto specimen = sim::simulate_specimen(sim::experiment_preset("mos2-paper"), 1);
  Potential potential;
  potential.grid = specimen.grid;
  potential.phase_rad = specimen.phase_rad;
  std::mt19937_64 rng(101);
  std::uniform_real_distribution<double> noise(0.0, 1.0);
  for (float& p : potential.phase_rad.vector())
    p = static_cast<float>(0.8 * p + 0.05 * (noise(rng) - 0.5));
  const ScanRaster raster{100, 100, 0.2};
  struct Case {
    const char* name;
    int total, calls;
  };
  for (const Case c : {Case{"250 budget, 200 visited", 250, 4},
                       Case{"550 budget, 500 visited", 550, 10},
                       Case{"250 budget, 250 visited (past it)", 250, 5}}) {
    HeuristicPolicy policy;
    PolicyContext context;
    context.raster = raster;
    context.sub_sequence = c.calls;
    context.count = 50;
    context.total_positions = c.total;
    context.potential = &potential;
    const auto visited = run_session(policy, raster, c.total, 50, c.calls, &potential);
    std::vector<float> dark;
    for (std::size_t k = 0; k < visited.size(); ++k) dark.push_back(0.05f + 0.2f * noise(rng));
    context.visited_A = visited;
    context.dark_field_fraction = dark;
    policy.reset(0);
    std::vector<double> ms;
    for (int k = 0; k < 41; ++k) {
      std::vector<Vec2> picks;
      const auto t0 = std::chrono::steady_clock::now();
      const Status status = policy.propose(context, &picks);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                       .count());
      REQUIRE(status.ok());
      REQUIRE(static_cast<int>(picks.size()) == 50);
    }
    const double first = ms.front();
    ms.erase(ms.begin());
    std::sort(ms.begin(), ms.end());
    // The first call after reset() also builds the cells (in a session: sub-sequence 0).
    std::printf("heuristic propose, %s: first %.3f ms, then median %.3f ms, min %.3f ms, "
                "max %.3f ms\n",
                c.name, first, ms[ms.size() / 2], ms.front(), ms.back());
  }
}
