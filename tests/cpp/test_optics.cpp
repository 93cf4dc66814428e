#include <catch2/catch.hpp>
#include <cmath>
#include <complex>
#include <numbers>
#include <set>
#include <vector>

#include "ptypilot/forward_model.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/scan_geometry.hpp"

using namespace ptypilot;

TEST_CASE("relativistic wavelength and interaction constant match tabulated values", "[optics]") {
  // Kirkland, Advanced Computing in Electron Microscopy, table 2.2 (lambda) and eq. 5.6 (sigma).
  CHECK(wavelength_A(60) == Approx(0.04866).epsilon(2e-4));
  CHECK(wavelength_A(100) == Approx(0.03701).epsilon(2e-4));
  CHECK(wavelength_A(200) == Approx(0.02508).epsilon(2e-4));
  CHECK(wavelength_A(300) == Approx(0.01969).epsilon(2e-4));
  CHECK(interaction_constant_rad_per_VA(200) == Approx(0.00072884).epsilon(1e-3));
  CHECK(interaction_constant_rad_per_VA(60) == Approx(0.0011357).epsilon(1e-3));
}

TEST_CASE("real-space sampling follows the detector's angular pixel", "[optics]") {
  ProbeConfig c;
  c.window_px = 64;
  c.detector_pixel_mrad = 4.937;
  CHECK(real_space_pixel_A(c) == Approx(wavelength_A(60) / (64 * 4.937e-3)));
  CHECK(real_space_pixel_A(c) == Approx(0.1540).epsilon(1e-3));
}

TEST_CASE("the probe is normalised and centred in its window", "[optics]") {
  ProbeConfig c;
  const ComplexImage probe = make_probe(c);
  double power = 0;
  int peak_r = 0, peak_c = 0;
  float peak = 0;
  for (int r = 0; r < probe.rows(); ++r)
    for (int col = 0; col < probe.cols(); ++col) {
      power += std::norm(probe(r, col));
      if (std::abs(probe(r, col)) > peak) {
        peak = std::abs(probe(r, col));
        peak_r = r;
        peak_c = col;
      }
    }
  CHECK(power == Approx(1.0).epsilon(1e-5));
  CHECK(peak_r == c.window_px / 2);
  CHECK(peak_c == c.window_px / 2);

  c.defocus_A = 50;  // defocus spreads the probe but keeps its power
  double defocused = 0;
  const ComplexImage defocused_probe = make_probe(c);
  for (auto v : defocused_probe.vector()) defocused += std::norm(v);
  CHECK(defocused == Approx(1.0).epsilon(1e-5));
}

TEST_CASE("the aperture edge sits at alpha / lambda", "[optics]") {
  ProbeConfig c;
  c.aperture_edge_mrad = 2.0;
  CHECK(aperture(c.semiangle_mrad, c) == Approx(0.5));
  CHECK(aperture(c.semiangle_mrad - 1.0, c) == Approx(1.0));
  CHECK(aperture(c.semiangle_mrad + 1.0, c) == Approx(0.0));

  // In the Fourier-space probe, amplitude falls through half its maximum at k = alpha / lambda:
  // pixels inside the edge are full, pixels beyond it are empty.
  const ComplexImage pf = make_probe_fourier(c);
  const int n = c.window_px;
  const double lambda = wavelength_A(c.energy_keV);
  const double dk = 1.0 / (n * real_space_pixel_A(c));
  const double k_edge = c.semiangle_mrad * 1e-3 / lambda;
  float max_amp = 0;
  for (auto v : pf.vector()) max_amp = std::max(max_amp, std::abs(v));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int fy = i < n / 2 ? i : i - n, fx = j < n / 2 ? j : j - n;
      const double k = std::hypot(fy, fx) * dk;
      const double rel = std::abs(pf(i, j)) / max_amp;
      const double half_edge_k = c.aperture_edge_mrad / 2 * 1e-3 / lambda;
      if (k < k_edge - half_edge_k) REQUIRE(rel == Approx(1.0).epsilon(1e-5));
      if (k > k_edge + half_edge_k) REQUIRE(rel == 0.0);
      if (k < k_edge) REQUIRE(rel >= 0.5 - 1e-5);
      if (k > k_edge) REQUIRE(rel <= 0.5 + 1e-5);
    }
}

TEST_CASE("unphysical probe settings are rejected with a reason", "[optics]") {
  ProbeConfig c;
  c.semiangle_mrad = 200;  // larger than the detector's half-width
  CHECK_THROWS_WITH(make_probe(c), Catch::Contains("does not fit on the detector"));
  c = ProbeConfig{};
  c.window_px = 63;
  CHECK_THROWS_AS(make_probe(c), std::invalid_argument);
  c = ProbeConfig{};
  c.energy_keV = -1;
  CHECK_THROWS_AS(make_probe(c), std::invalid_argument);
}

TEST_CASE("probe windows are placed inside the object or rejected", "[optics]") {
  const ObjectGrid g = object_grid_for_fov(19.8, 19.8, 0.154, 64, 3);
  WindowPlacement w;
  REQUIRE(place_window(g, 64, {0, 0}, &w).ok());
  CHECK(w.top == 3);
  CHECK(w.left == 3);
  REQUIRE(place_window(g, 64, {19.8, 19.8}, &w).ok());
  CHECK(w.top + 64 <= g.rows);
  REQUIRE(place_window(g, 64, {0.077, 0.0}, &w).ok());
  CHECK(w.frac_y == Approx(0.5).margin(1e-6));

  const Status outside = place_window(g, 64, {-1.0, 5.0}, &w);
  CHECK(outside.code() == StatusCode::kOutOfRange);
  CHECK_THAT(outside.message(), Catch::Contains("outside the field of view"));
  CHECK(place_window(g, 64, {5.0, 25.0}, &w).code() == StatusCode::kOutOfRange);
  CHECK(place_window(g, 64, {NAN, 1.0}, &w).code() == StatusCode::kInvalidArgument);
}

TEST_CASE("a sparse grid has exactly the budget, on raster positions, spread over the FOV",
          "[optics]") {
  for (int count : {50, 250, 335, 420, 1}) {
    const auto pos = sparse_grid_positions(count, 100, 100, 0.2);
    REQUIRE(pos.size() == static_cast<std::size_t>(count));
    std::set<std::pair<long, long>> unique;
    double max_y = 0;
    for (auto p : pos) {
      const double iy = p.y / 0.2, ix = p.x / 0.2;
      CHECK(iy == Approx(std::round(iy)).margin(1e-9));
      CHECK(ix == Approx(std::round(ix)).margin(1e-9));
      unique.insert({std::lround(iy), std::lround(ix)});
      max_y = std::max(max_y, p.y);
    }
    CHECK(unique.size() == pos.size());
    if (count >= 50) CHECK(max_y > 0.8 * 99 * 0.2);
  }
  CHECK_THROWS_AS(sparse_grid_positions(0, 10, 10, 0.2), std::invalid_argument);
  CHECK_THROWS_AS(sparse_grid_positions(101, 10, 10, 0.2), std::invalid_argument);
}

// The reconstructor's probe at a position is the unshifted probe moved by the position's
// sub-pixel remainder: in reciprocal space times exp(-2 pi i k . d), then a unitary inverse DFT.
// Here that DFT is summed directly in double, one axis at a time, and the probe's intensity is
// checked to move by d.
TEST_CASE("a shifted probe is the probe moved by its position's sub-pixel remainder", "[optics]") {
  ProbeConfig c;
  const int n = c.window_px;
  const double pixel_A = real_space_pixel_A(c);
  ForwardModel model(c, object_grid_for_fov(4.0, 4.0, pixel_A, n, 3));
  // Remainders of 0.25 and 0.625 px, which the model's 1/4096 px quantisation keeps exactly.
  std::vector<ProbePlacement> placed;
  REQUIRE(model.place(std::vector<Vec2>{{0.0, 0.0}, {2.25 * pixel_A, 1.625 * pixel_A}}, &placed).ok());
  REQUIRE(placed.size() == 2);
  REQUIRE(placed[0].probe != placed[1].probe);

  const ComplexImage fourier = make_probe_fourier(c);
  const double dy = 0.25, dx = 0.625;
  auto frequency = [n](int k) { return k < n / 2 ? k : k - n; };
  auto phase = [n](double turns) { return std::polar(1.0, 2.0 * std::numbers::pi * turns / n); };
  // Along x: B[ky, x] = sum_kx A[ky, kx] e^{-2 pi i fx dx / n} e^{2 pi i kx x / n}; then along y.
  std::vector<std::complex<double>> along_x(std::size_t(n) * n);
  for (int ky = 0; ky < n; ++ky)
    for (int x = 0; x < n; ++x) {
      std::complex<double> sum = 0;
      for (int kx = 0; kx < n; ++kx)
        sum += std::complex<double>(fourier(ky, kx)) * phase(-frequency(kx) * dx) * phase(double(kx) * x);
      along_x[std::size_t(ky) * n + x] = sum;
    }
  const std::complex<float>* shifted = model.shifted_probe(placed[1].probe);
  const std::complex<float>* unshifted = model.shifted_probe(placed[0].probe);
  // The intensity's first circular moments: its bandwidth, twice the aperture's, is far below
  // n / 2, so a shift by d turns them by exactly 2 pi d / n.
  double largest = 0, worst = 0, power = 0;
  std::complex<double> moment_y = 0, moment_x = 0, moment0_y = 0, moment0_x = 0;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      std::complex<double> expected = 0;
      for (int ky = 0; ky < n; ++ky)
        expected += along_x[std::size_t(ky) * n + x] * phase(-frequency(ky) * dy) * phase(double(ky) * y);
      expected /= n;  // unitary: 1 / sqrt(n * n)
      const std::complex<float> got = shifted[std::size_t(y) * n + x];
      largest = std::max(largest, std::abs(expected));
      worst = std::max(worst, std::abs(std::complex<double>(got) - expected));
      const double p = std::norm(got), p0 = std::norm(unshifted[std::size_t(y) * n + x]);
      power += p;
      moment_y += p * phase(y), moment_x += p * phase(x);
      moment0_y += p0 * phase(y), moment0_x += p0 * phase(x);
    }
  const auto moved_px = [n](std::complex<double> after, std::complex<double> before) {
    return std::arg(after / before) * n / (2.0 * std::numbers::pi);
  };
  CHECK(worst < 1e-6 * largest);
  CHECK(power == Approx(1.0).epsilon(1e-5));
  CHECK(moved_px(moment_y, moment0_y) == Approx(dy).margin(1e-4));
  CHECK(moved_px(moment_x, moment0_x) == Approx(dx).margin(1e-4));
}
