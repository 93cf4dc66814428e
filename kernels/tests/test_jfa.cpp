// Jump Flooding as the GPU runs it (the kernels' pass body, the library's seeding and schedule),
// emulated on the host, against the exact Voronoi labels and reward (reward.hpp). This is the
// agreement reward.hpp states for voronoi_labels_jfa; the [cuda] tests check that the device
// gives these same labels. Runs in every build.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "cuda/jfa_seeding.hpp"
#include "jfa_host_emulation.hpp"
#include "label_agreement.hpp"
#include "ptypilot/reward.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot {
namespace {

using testing::compare_labels;
using testing::host_emulated_jfa_labels;

// The mos2-paper geometry: 200 x 200 px of 0.1540 A, a 19.8 A FOV starting at pixel 35.
ObjectGrid paper_grid() { return object_grid_for_fov(19.8, 19.8, 0.1540, 64, 3); }

std::vector<Vec2> random_positions(int n, double extent_A, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, extent_A);
  std::vector<Vec2> p;
  for (int i = 0; i < n; ++i) p.push_back({u(rng), u(rng)});
  return p;
}

struct Layout {
  std::string name;
  std::vector<Vec2> positions;
};

std::vector<Layout> layouts() {
  std::vector<Layout> all;
  all.push_back({"250 random", random_positions(250, 19.8, 1)});
  all.push_back({"500 random", random_positions(500, 19.8, 2)});
  all.push_back({"the paper's sparse grid (many exact ties)", sparse_grid_positions(250, 100, 100, 0.2)});
  all.push_back({"the full 100 x 100 raster", raster_positions(100, 100, 0.2)});
  all.push_back({"3 positions", {{1.0, 1.0}, {18.0, 3.0}, {9.7, 17.2}}});
  // Many positions inside one pixel, and repeats: the seeding has to move most of them.
  std::vector<Vec2> cluster = random_positions(60, 0.3, 3);
  for (Vec2& p : cluster) p = {p.y + 9.0, p.x + 4.0};
  for (const Vec2& p : random_positions(40, 19.8, 4)) cluster.push_back(p);
  cluster.push_back(cluster[5]);
  cluster.push_back(cluster[70]);
  all.push_back({"a cluster within one pixel, with repeats", cluster});
  // On the FOV's edges and corners.
  all.push_back({"edges", {{0.0, 0.0}, {19.8, 19.8}, {0.0, 19.8}, {19.8, 0.0}, {9.9, 0.0}, {0.0, 9.9}}});
  return all;
}

}  // namespace

TEST_CASE("place_jfa_seeds gives every seed its own pixel, the nearest free one", "[reward][jfa]") {
  const ObjectGrid g = paper_grid();
  const gpu::JfaRectangle rect = gpu::jfa_rectangle(g, true);
  REQUIRE(rect.rows == 129);
  REQUIRE(rect.cols == 129);
  const std::vector<Vec2> positions = {{1.0, 1.0}, {1.01, 1.0}, {1.0, 1.0}, {5.0, 5.0}};
  const auto seeds = gpu::jfa_seed_points(g, positions);
  const auto pixel = gpu::place_jfa_seeds(seeds, rect, g.pixel_A);
  REQUIRE(pixel.size() == 4);
  // 1.0 A is 6.49 px: pixel (6, 6). The nearer of the first three keeps it; ties go to index 0.
  CHECK(pixel[0] == 6 * 129 + 6);
  CHECK(pixel[1] != pixel[0]);
  CHECK(pixel[2] != pixel[0]);
  CHECK(pixel[2] != pixel[1]);
  for (int m : {1, 2}) {
    const int r = pixel[m] / 129, c = pixel[m] % 129;
    CHECK(std::max(std::abs(r - 6), std::abs(c - 6)) == 1);  // moved to the first ring
  }
  CHECK(pixel[3] == 32 * 129 + 32);  // 5.0 A is 32.47 px
}

TEST_CASE("the schedule is two rounds of halving steps", "[reward][jfa]") {
  CHECK(gpu::jfa_schedule({0, 0, 129, 100}) ==
        std::vector<int>{128, 64, 32, 16, 8, 4, 2, 1, 128, 64, 32, 16, 8, 4, 2, 1});
  CHECK(gpu::jfa_schedule({0, 0, 128, 128}).front() == 64);
  CHECK(gpu::jfa_schedule({0, 0, 2, 1}) == std::vector<int>{1, 1});
  CHECK(gpu::jfa_schedule({0, 0, 1, 1}).empty());
}

// The agreement voronoi_labels_jfa promises (reward.hpp): >= 99.9 % of the pixels, and at a
// disagreeing pixel the chosen position at most kJfaDistanceSlack_px farther than the nearest.
TEST_CASE("emulated Jump Flooding agrees with the exact labels", "[reward][jfa]") {
  const ObjectGrid g = paper_grid();
  long total_disagreeing = 0, total_labelled = 0;
  double worst_excess_px = 0.0;
  for (const Layout& layout : layouts()) {
    for (bool fov_only : {true, false}) {
      INFO(layout.name << (fov_only ? ", FOV only" : ", whole grid"));
      const Image<int> exact = voronoi_labels(g, layout.positions, fov_only);
      const Image<int> jfa = host_emulated_jfa_labels(g, layout.positions, fov_only);
      const auto a = compare_labels(g, layout.positions, exact, jfa);
      INFO(a.disagreeing << " of " << a.labelled << " pixels disagree; worst excess "
                         << a.worst_excess_px << " px");
      CHECK(a.labelled > 0);
      CHECK(a.agreeing_share() >= 0.999);
      CHECK(a.worst_excess_px <= kJfaDistanceSlack_px);
      if (fov_only) {
        for (int i = 0; i < g.rows; ++i)
          for (int j = 0; j < g.cols; ++j) REQUIRE((exact(i, j) < 0) == (jfa(i, j) < 0));
      }
      total_disagreeing += a.disagreeing;
      total_labelled += a.labelled;
      worst_excess_px = std::max(worst_excess_px, a.worst_excess_px);
    }
  }
  WARN("emulated Jump Flooding: " << total_disagreeing << " of " << total_labelled
                                  << " labelled pixels differ from the exact labels, the worst "
                                  << worst_excess_px << " px farther than the nearest position");
}

// Where labels agree the rewards are the same sums; each disagreeing pixel moves its phase from
// one position to another, so no reward can be off by more than the disagreeing pixels' |phase|
// summed, over P.
TEST_CASE("emulated Jump Flooding rewards are within the disagreeing pixels' phase", "[reward][jfa]") {
  const ObjectGrid g = paper_grid();
  RealImage phase(g.rows, g.cols);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-0.2f, 1.0f);
  for (float& v : phase.vector()) v = u(rng);
  for (const Layout& layout : layouts()) {
    INFO(layout.name);
    const Image<int> exact_labels = voronoi_labels(g, layout.positions, true);
    const Image<int> jfa_labels = host_emulated_jfa_labels(g, layout.positions, true);
    const auto a = compare_labels(g, layout.positions, exact_labels, jfa_labels, &phase);
    const std::vector<double> exact = voronoi_reward(phase, g, layout.positions);
    std::vector<double> jfa(layout.positions.size(), 0.0);
    for (std::size_t k = 0; k < jfa_labels.size(); ++k)
      if (jfa_labels.data()[k] >= 0) jfa[jfa_labels.data()[k]] += phase.data()[k];
    const double P = static_cast<double>(layout.positions.size());
    const double bound = a.disagreeing_phase_sum / P + 1e-12;
    for (std::size_t m = 0; m < jfa.size(); ++m) {
      INFO("position " << m);
      CHECK(std::abs(jfa[m] / P - exact[m]) <= bound);
    }
  }
}

}  // namespace ptypilot
