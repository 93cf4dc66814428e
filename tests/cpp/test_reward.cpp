// Tests for the exact Voronoi reward (kernels/src/reward.cpp): the bucket-accelerated labels
// against brute force (ties included), the reward's sum identity, simple geometries, errors, and
// the time budget. tests/python/test_reward.py checks the same against numpy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ptypilot/reward.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot {
namespace {

// The definition of reward.hpp, evaluated literally: every pixel against every position.
struct BruteForce {
  Image<int> labels;
  long tied_pixels = 0;  // pixels whose minimum distance is attained by two or more positions
};

BruteForce brute_force_labels(const ObjectGrid& g, const std::vector<Vec2>& positions,
                              bool fov_only) {
  BruteForce out{Image<int>(g.rows, g.cols, -1), 0};
  for (int i = 0; i < g.rows; ++i) {
    for (int j = 0; j < g.cols; ++j) {
      const double py = i * g.pixel_A, px = j * g.pixel_A;
      const double qy = py - g.fov_origin_A.y, qx = px - g.fov_origin_A.x;
      const bool in_fov = qy >= -kFovTolerance_A && qy <= g.fov_height_A + kFovTolerance_A &&
                          qx >= -kFovTolerance_A && qx <= g.fov_width_A + kFovTolerance_A;
      if (fov_only && !in_fov) continue;
      double best = std::numeric_limits<double>::infinity();
      int best_m = -1, ties = 0;
      for (std::size_t m = 0; m < positions.size(); ++m) {
        const double dy = py - (positions[m].y + g.fov_origin_A.y);
        const double dx = px - (positions[m].x + g.fov_origin_A.x);
        const double d2 = dy * dy + dx * dx;
        if (d2 < best) {
          best = d2;
          best_m = static_cast<int>(m);
          ties = 0;
        } else if (d2 == best) {
          ++ties;
        }
      }
      out.labels(i, j) = best_m;
      if (ties > 0) ++out.tied_pixels;
    }
  }
  return out;
}

long count_mismatches(const Image<int>& a, const Image<int>& b) {
  REQUIRE(a.rows() == b.rows());
  REQUIRE(a.cols() == b.cols());
  long n = 0;
  for (std::size_t k = 0; k < a.size(); ++k) n += a.data()[k] != b.data()[k];
  return n;
}

ObjectGrid make_grid(int rows, int cols, double pixel_A, Vec2 origin, double h, double w) {
  ObjectGrid g;
  g.rows = rows;
  g.cols = cols;
  g.pixel_A = pixel_A;
  g.fov_origin_A = origin;
  g.fov_height_A = h;
  g.fov_width_A = w;
  return g;
}

// The mos2-paper geometry: 200 x 200 px of 0.1540 A, a 19.8 A FOV starting at pixel 35.
ObjectGrid paper_grid() { return object_grid_for_fov(19.8, 19.8, 0.1540, 64, 3); }

std::vector<Vec2> random_positions(int n, double h, double w, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> uy(0.0, h), ux(0.0, w);
  std::vector<Vec2> p(n);
  for (Vec2& v : p) v = {uy(rng), ux(rng)};
  return p;
}

RealImage random_phase(int rows, int cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.5f, 2.0f);
  RealImage image(rows, cols);
  for (float& v : image.span()) v = dist(rng);
  return image;
}

double fov_sum(const RealImage& phase, const ObjectGrid& g) {
  const BruteForce mask = brute_force_labels(g, {Vec2{0.0, 0.0}}, true);
  double sum = 0.0;
  for (std::size_t k = 0; k < phase.size(); ++k)
    if (mask.labels.data()[k] >= 0) sum += phase.data()[k];
  return sum;
}

}  // namespace

TEST_CASE("voronoi_labels matches brute force on random positions", "[reward]") {
  const ObjectGrid g = paper_grid();
  for (int n : {1, 2, 7, 50, 250, 600}) {
    for (bool fov_only : {true, false}) {
      const auto positions = random_positions(n, g.fov_height_A, g.fov_width_A, 17u + n);
      const Image<int> labels = voronoi_labels(g, positions, fov_only);
      const BruteForce ref = brute_force_labels(g, positions, fov_only);
      INFO("n = " << n << ", fov_only = " << fov_only);
      CHECK(count_mismatches(labels, ref.labels) == 0);
    }
  }
}

TEST_CASE("voronoi_labels resolves exact ties to the lower index like brute force", "[reward]") {
  // Binary-exact coordinates: pixels of 0.25 A and positions on a 0.5 A lattice, so that many
  // pixels are exactly equidistant from two or more positions (bisectors through pixel centres,
  // mirror pairs, coincident positions).
  const ObjectGrid g = make_grid(96, 80, 0.25, {2.0, 3.0}, 18.0, 14.0);
  std::mt19937 rng(5);
  for (int trial = 0; trial < 6; ++trial) {
    const int n = 5 + 40 * trial;
    std::uniform_int_distribution<int> iy(0, 36), ix(0, 28);
    std::vector<Vec2> positions(n);
    for (Vec2& p : positions) p = {0.5 * iy(rng), 0.5 * ix(rng)};
    positions.push_back(positions.front());  // a duplicate: its cell is empty
    for (bool fov_only : {true, false}) {
      const Image<int> labels = voronoi_labels(g, positions, fov_only);
      const BruteForce ref = brute_force_labels(g, positions, fov_only);
      INFO("trial " << trial << ", fov_only = " << fov_only);
      REQUIRE(ref.tied_pixels > 0);  // the case is really about ties
      CHECK(count_mismatches(labels, ref.labels) == 0);
      const auto last = static_cast<int>(positions.size() - 1);
      CHECK(std::count(labels.span().begin(), labels.span().end(), last) == 0);
    }
  }
}

TEST_CASE("voronoi_labels handles degenerate position sets", "[reward]") {
  const ObjectGrid g = make_grid(60, 70, 0.3, {4.0, 5.0}, 9.0, 12.0);
  const std::vector<std::vector<Vec2>> cases = {
      {{3.0, 3.0}, {3.0, 3.0}, {3.0, 3.0}},                           // all coincident
      {{0.0, 0.0}, {0.0, 2.0}, {0.0, 5.5}, {0.0, 12.0}, {0.0, 7.1}},  // one row
      {{1.0, 6.0}, {2.5, 6.0}, {9.0, 6.0}, {4.4, 6.0}},               // one column
      {{0.0, 0.0}, {9.0, 12.0}},                                      // opposite corners
  };
  for (std::size_t c = 0; c < cases.size(); ++c) {
    for (bool fov_only : {true, false}) {
      INFO("case " << c << ", fov_only = " << fov_only);
      CHECK(count_mismatches(voronoi_labels(g, cases[c], fov_only),
                             brute_force_labels(g, cases[c], fov_only).labels) == 0);
    }
  }
  // Positions clustered in a corner, pixels far outside their bucket grid.
  const auto cluster = random_positions(40, 1.0, 1.5, 99);
  CHECK(count_mismatches(voronoi_labels(g, cluster, false),
                         brute_force_labels(g, cluster, false).labels) == 0);
}

TEST_CASE("voronoi_labels marks the FOV and a single position owns all of it", "[reward]") {
  const ObjectGrid g = paper_grid();
  const std::vector<Vec2> one = {{7.3, 12.1}};
  const Image<int> labels = voronoi_labels(g, one, true);
  // Pixel 35 is the FOV origin; 19.8 / 0.154 = 128.6, so the FOV is pixels [35, 163].
  long inside = 0;
  for (int i = 0; i < g.rows; ++i)
    for (int j = 0; j < g.cols; ++j) {
      const bool in = i >= 35 && i <= 163 && j >= 35 && j <= 163;
      REQUIRE(labels(i, j) == (in ? 0 : -1));
      inside += in;
    }
  CHECK(inside == 129 * 129);
  const Image<int> all = voronoi_labels(g, one, false);
  CHECK(std::count(all.span().begin(), all.span().end(), 0) == long(g.rows) * g.cols);

  const RealImage phase = random_phase(g.rows, g.cols, 3);
  const std::vector<double> reward = voronoi_reward(phase, g, one);
  REQUIRE(reward.size() == 1);
  CHECK(reward[0] == Approx(fov_sum(phase, g)).epsilon(1e-12));
}

TEST_CASE("two symmetric positions split the FOV at their bisector", "[reward]") {
  // 1 A pixels, FOV = pixels [2, 22] x [3, 23]; positions at x = 4 and 16 of the FOV, so the
  // bisector is the FOV column 10 (object column 13), whose pixels tie and go to position 0.
  const ObjectGrid g = make_grid(25, 26, 1.0, {2.0, 3.0}, 20.0, 20.0);
  const std::vector<Vec2> lr = {{10.0, 4.0}, {10.0, 16.0}};
  const Image<int> labels = voronoi_labels(g, lr, true);
  for (int i = 2; i <= 22; ++i)
    for (int j = 3; j <= 23; ++j) REQUIRE(labels(i, j) == (j <= 13 ? 0 : 1));
  // Swapped order: the tie column now goes to the new index 0, the right-hand position.
  const std::vector<Vec2> rl = {{10.0, 16.0}, {10.0, 4.0}};
  const Image<int> swapped = voronoi_labels(g, rl, true);
  for (int i = 2; i <= 22; ++i)
    for (int j = 3; j <= 23; ++j) REQUIRE(swapped(i, j) == (j >= 13 ? 0 : 1));
  // The same along y.
  const std::vector<Vec2> tb = {{5.0, 10.0}, {15.0, 10.0}};
  const Image<int> vertical = voronoi_labels(g, tb, true);
  for (int i = 2; i <= 22; ++i)
    for (int j = 3; j <= 23; ++j) REQUIRE(vertical(i, j) == (i <= 12 ? 0 : 1));

  // A constant phase of 1: 21 rows x (11 | 10) columns, each divided by P = 2.
  const RealImage ones(g.rows, g.cols, 1.0f);
  const std::vector<double> reward = voronoi_reward(ones, g, lr);
  CHECK(reward[0] == 21.0 * 11 / 2);
  CHECK(reward[1] == 21.0 * 10 / 2);
}

TEST_CASE("voronoi_reward sums to the FOV phase over P and matches the labels", "[reward]") {
  const ObjectGrid g = paper_grid();
  const RealImage phase = random_phase(g.rows, g.cols, 11);
  const double total = fov_sum(phase, g);
  for (int n : {1, 3, 250, 500}) {
    const auto positions = sparse_grid_positions(n, 100, 100, 0.2);
    const std::vector<double> reward = voronoi_reward(phase, g, positions);
    REQUIRE(reward.size() == positions.size());
    double sum = 0.0;
    for (double r : reward) sum += r;
    INFO("n = " << n);
    CHECK(sum == Approx(total / n).epsilon(1e-12));

    const BruteForce ref = brute_force_labels(g, positions, true);
    std::vector<double> expected(positions.size(), 0.0);
    for (std::size_t k = 0; k < phase.size(); ++k)
      if (ref.labels.data()[k] >= 0) expected[ref.labels.data()[k]] += phase.data()[k];
    for (std::size_t m = 0; m < reward.size(); ++m)
      REQUIRE(reward[m] == Approx(expected[m] / n).epsilon(1e-12).margin(1e-12));
  }
}

TEST_CASE("voronoi_reward and voronoi_labels reject bad input", "[reward]") {
  const ObjectGrid g = paper_grid();
  const RealImage phase(g.rows, g.cols, 0.5f);
  const std::vector<Vec2> none;
  CHECK_THROWS_AS(voronoi_labels(g, none), std::invalid_argument);
  CHECK_THROWS_WITH(voronoi_reward(phase, g, none), Catch::Contains("no scan positions"));

  CHECK_THROWS_WITH(voronoi_reward(RealImage(199, 200), g, std::vector<Vec2>{{1.0, 1.0}}),
                    Catch::Contains("199 x 200") && Catch::Contains("200 x 200"));

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(voronoi_reward(phase, g, std::vector<Vec2>{{1.0, 1.0}, {nan, 2.0}}),
                    Catch::Contains("scan position 1") && Catch::Contains("not finite"));
  CHECK_THROWS_WITH(voronoi_labels(g, std::vector<Vec2>{{1.0, inf}}, false),
                    Catch::Contains("scan position 0") && Catch::Contains("not finite"));

  CHECK_THROWS_WITH(voronoi_reward(phase, g, std::vector<Vec2>{{1.0, 1.0}, {2.0, 2.0}, {19.9, 3.0}}),
                    Catch::Contains("scan position 2") && Catch::Contains("outside the field of view"));
  CHECK_THROWS_WITH(voronoi_reward(phase, g, std::vector<Vec2>{{-0.01, 1.0}}),
                    Catch::Contains("scan position 0"));
  // Positions on the FOV edge, with rounding overshoot, are inside.
  CHECK_NOTHROW(voronoi_reward(phase, g, std::vector<Vec2>{{-1e-7, 0.0}, {19.8 + 1e-7, 19.8}}));
  // Labels alone accept positions outside the FOV.
  CHECK_NOTHROW(voronoi_labels(g, std::vector<Vec2>{{-3.0, 25.0}}));

  ObjectGrid bad = g;
  bad.pixel_A = 0.0;
  CHECK_THROWS_AS(voronoi_labels(bad, std::vector<Vec2>{{1.0, 1.0}}), std::invalid_argument);
}

TEST_CASE("voronoi_labels on the paper's grid takes well under 5 ms", "[reward]") {
  const ObjectGrid g = paper_grid();
  const auto positions = sparse_grid_positions(250, 100, 100, 0.2);
  const RealImage phase = random_phase(g.rows, g.cols, 2);
  double best_ms = std::numeric_limits<double>::infinity();
  for (int run = 0; run < 10; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<double> reward = voronoi_reward(phase, g, positions);
    const auto t1 = std::chrono::steady_clock::now();
    REQUIRE(reward.size() == 250);
    best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  // Best of ten, so that a busy machine does not fail the test; typically ~0.5 ms.
  INFO("voronoi_reward, 200 x 200 px, 250 positions: " << best_ms << " ms");
  CHECK(best_ms < 5.0);
}

}  // namespace ptypilot
