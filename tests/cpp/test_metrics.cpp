// Tests for the image-quality metrics (kernels/src/metrics.cpp). The SSIM agreement with skimage
// over many shapes lives in tests/python/test_metrics.py; here are the properties and fixed
// values that must hold without Python.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

#include "ptypilot/metrics.hpp"

namespace ptypilot {
namespace {

RealImage uniform_noise(int rows, int cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(0.0f, 1.0f);
  RealImage image(rows, cols);
  for (float& v : image.span()) v = dist(rng);
  return image;
}

RealImage add_noise(const RealImage& image, float sigma, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  RealImage out = image;
  for (float& v : out.span()) v += dist(rng);
  return out;
}

// A smooth image, so that added noise visibly degrades its structure.
RealImage blobs(int n) {
  RealImage image(n, n);
  for (int r = 0; r < n; ++r) {
    for (int c = 0; c < n; ++c) {
      image(r, c) = static_cast<float>(0.5 + 0.25 * std::sin(0.3 * r) * std::cos(0.2 * c));
    }
  }
  return image;
}

}  // namespace

TEST_CASE("ssim of an image with itself is 1", "[metrics]") {
  const RealImage a = uniform_noise(64, 48, 1);
  CHECK(ssim(a, a, 1.0) == Approx(1.0).margin(1e-12));
  CHECK(ssim(blobs(40), blobs(40), 0.5) == Approx(1.0).margin(1e-12));
}

TEST_CASE("ssim decreases as noise grows", "[metrics]") {
  const RealImage clean = blobs(64);
  double previous = ssim(clean, clean, 1.0);
  for (float sigma : {0.01f, 0.03f, 0.1f, 0.3f}) {
    const double value = ssim(clean, add_noise(clean, sigma, 7), 1.0);
    INFO("noise sigma " << sigma);
    CHECK(value < previous);
    previous = value;
  }
  CHECK(previous < 0.5);
}

TEST_CASE("ssim is symmetric in its arguments", "[metrics]") {
  const RealImage a = uniform_noise(30, 41, 2);
  const RealImage b = add_noise(a, 0.2f, 3);
  CHECK(ssim(a, b, 1.0) == Approx(ssim(b, a, 1.0)).margin(1e-12));
}

TEST_CASE("ssim of constant images reduces to the luminance term", "[metrics]") {
  // With no variance the contrast-structure term is C2 / C2, leaving
  // (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1) with C1 = (0.01 R)^2.
  const float va = 0.2f;
  const float vb = 0.6f;
  const RealImage a(11, 11, va);
  const RealImage b(11, 11, vb);
  for (double range : {1.0, 2.0}) {
    const double c1 = (0.01 * range) * (0.01 * range);
    const double mu_a = va;
    const double mu_b = vb;
    const double expected = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1);
    CHECK(ssim(a, b, range) == Approx(expected).margin(1e-12));
  }
}

TEST_CASE("ssim matches a value computed with skimage", "[metrics]") {
  // skimage 0.19.3: structural_similarity(a, b, data_range=1, gaussian_weights=True, sigma=1.5,
  // use_sample_covariance=False) on float64 copies of these float32 images. 12x13 leaves a 2x3
  // region after the crop, so an off-by-one in the crop or the window would change the mean.
  RealImage a(12, 13);
  RealImage b(12, 13);
  for (int i = 0; i < 12; ++i) {
    for (int j = 0; j < 13; ++j) {
      a(i, j) = static_cast<float>(((i * 7 + j * 3) % 5) / 4.0);
      b(i, j) = static_cast<float>(((i * 2 + j * 5) % 7) / 6.0);
    }
  }
  CHECK(ssim(a, b, 1.0) == Approx(0.308435816771952).margin(1e-12));
}

TEST_CASE("ssim rejects invalid input", "[metrics]") {
  const RealImage a = uniform_noise(16, 16, 4);
  CHECK_THROWS_AS(ssim(a, uniform_noise(16, 17, 5), 1.0), std::invalid_argument);
  CHECK_THROWS_AS(ssim(a, a, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(ssim(a, a, -1.0), std::invalid_argument);
  CHECK_THROWS_AS(ssim(a, a, std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);

  RealImage with_nan = a;
  with_nan(3, 5) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(ssim(a, with_nan, 1.0), std::invalid_argument);
  RealImage with_inf = a;
  with_inf(0, 0) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(ssim(with_inf, a, 1.0), std::invalid_argument);

  // The Gaussian window is 11 pixels wide; skimage rejects anything smaller.
  CHECK_NOTHROW(ssim(uniform_noise(11, 11, 6), uniform_noise(11, 11, 7), 1.0));
  CHECK_THROWS_AS(ssim(uniform_noise(10, 20, 6), uniform_noise(10, 20, 7), 1.0),
                  std::invalid_argument);
  CHECK_THROWS_AS(ssim(uniform_noise(20, 10, 6), uniform_noise(20, 10, 7), 1.0),
                  std::invalid_argument);
}

TEST_CASE("frc of identical images is 1 in every ring", "[metrics]") {
  for (int n : {64, 33}) {
    INFO("n = " << n);
    const RealImage a = uniform_noise(n, n, 8);
    const double pixel_A = 0.25;
    const FrcCurve curve = frc(a, a, pixel_A);
    REQUIRE(curve.correlation.size() == static_cast<std::size_t>(n / 2 + 1));
    REQUIRE(curve.spatial_frequency_per_A.size() == curve.correlation.size());
    REQUIRE(curve.half_bit_threshold.size() == curve.correlation.size());
    REQUIRE(curve.pixels_in_ring.size() == curve.correlation.size());
    for (std::size_t ring = 0; ring < curve.correlation.size(); ++ring) {
      INFO("ring " << ring);
      CHECK(curve.correlation[ring] == Approx(1.0).margin(1e-12));
      CHECK(curve.spatial_frequency_per_A[ring] ==
            Approx(static_cast<double>(ring) / (n * pixel_A)).margin(1e-15));
    }
    CHECK(curve.resolution_A == Approx(2.0 * pixel_A));
  }
}

TEST_CASE("frc ignores scale but not sign", "[metrics]") {
  const RealImage a = uniform_noise(32, 32, 9);
  RealImage scaled = a;
  RealImage negated = a;
  for (float& v : scaled.span()) v *= 3.0f;
  for (float& v : negated.span()) v = -v;
  const FrcCurve same = frc(a, scaled, 1.0);
  const FrcCurve opposite = frc(a, negated, 1.0);
  for (std::size_t ring = 0; ring < same.correlation.size(); ++ring) {
    CHECK(same.correlation[ring] == Approx(1.0).margin(1e-6));
    CHECK(opposite.correlation[ring] == Approx(-1.0).margin(1e-12));
  }
  CHECK(opposite.resolution_A == Approx(32.0));  // fails at the first ring
}

TEST_CASE("frc of independent noise is small at high rings", "[metrics]") {
  const int n = 128;
  const FrcCurve curve = frc(uniform_noise(n, n, 10), uniform_noise(n, n, 11), 0.5);
  // Each ring beyond n/4 holds a couple of hundred pixels, so the FRC of uncorrelated noise
  // scatters around 0 with a standard deviation of about 1/sqrt(pixels) < 0.08.
  for (int ring = n / 4; ring <= n / 2; ++ring) {
    INFO("ring " << ring);
    CHECK(std::abs(curve.correlation[ring]) < 0.3);
    CHECK(curve.correlation[ring] < curve.half_bit_threshold[ring]);
  }
  CHECK(curve.resolution_A > 2.0 * 0.5);
}

TEST_CASE("frc ring pixel counts cover the disc of radius N/2 + 1/2", "[metrics]") {
  for (int n : {1, 2, 3, 4, 7, 64, 65}) {
    INFO("n = " << n);
    const FrcCurve curve = frc(uniform_noise(n, n, 12), uniform_noise(n, n, 13), 1.0);
    long total = 0;
    for (long count : curve.pixels_in_ring) total += count;
    // Count the signed-frequency grid points inside the disc directly.
    long expected = 0;
    const double radius = n / 2 + 0.5;
    for (int iy = 0; iy < n; ++iy) {
      for (int ix = 0; ix < n; ++ix) {
        const int ky = iy <= n / 2 ? iy : iy - n;
        const int kx = ix <= n / 2 ? ix : ix - n;
        if (std::hypot(ky, kx) < radius) ++expected;
      }
    }
    CHECK(total == expected);
    CHECK(curve.pixels_in_ring[0] == 1);
    CHECK(curve.half_bit_threshold[0] == Approx(1.0).margin(1e-12));
  }
  const FrcCurve curve = frc(uniform_noise(16, 16, 14), uniform_noise(16, 16, 15), 1.0);
  CHECK(curve.pixels_in_ring[1] == 8);   // |k| = 1 and sqrt(2)
  CHECK(curve.pixels_in_ring[2] == 12);  // |k| = 2 and sqrt(5)
  const double root8 = std::sqrt(8.0);
  CHECK(curve.half_bit_threshold[1] ==
        Approx((0.2071 + 1.9102 / root8) / (1.2071 + 0.9102 / root8)).margin(1e-12));
}

TEST_CASE("frc gives 0 in rings without power", "[metrics]") {
  const RealImage flat(16, 16, 2.0f);
  const FrcCurve curve = frc(flat, flat, 1.0);
  CHECK(curve.correlation[0] == Approx(1.0).margin(1e-12));
  for (std::size_t ring = 1; ring < curve.correlation.size(); ++ring) {
    CHECK(curve.correlation[ring] == 0.0);
  }
  CHECK(curve.resolution_A == Approx(16.0));
}

TEST_CASE("frc rejects invalid input", "[metrics]") {
  const RealImage a = uniform_noise(16, 16, 16);
  CHECK_THROWS_AS(frc(uniform_noise(16, 20, 1), uniform_noise(16, 20, 2), 1.0),
                  std::invalid_argument);
  CHECK_THROWS_AS(frc(a, uniform_noise(17, 17, 3), 1.0), std::invalid_argument);
  CHECK_THROWS_AS(frc(RealImage(), RealImage(), 1.0), std::invalid_argument);
  CHECK_THROWS_AS(frc(a, a, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(frc(a, a, -0.5), std::invalid_argument);
  RealImage with_nan = a;
  with_nan(4, 4) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(frc(a, with_nan, 1.0), std::invalid_argument);
}

TEST_CASE("q_ssim is the relative gain over the sparse grid", "[metrics]") {
  CHECK(q_ssim(0.9, 0.6) == Approx(0.5));
  CHECK(q_ssim(0.6, 0.6) == 0.0);
  CHECK(q_ssim(0.3, 0.6) == Approx(-0.5));
  CHECK(q_ssim(0.5, -0.25) == Approx(-3.0));
  CHECK_THROWS_AS(q_ssim(0.5, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(q_ssim(0.5, std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
  CHECK_THROWS_AS(q_ssim(std::numeric_limits<double>::infinity(), 0.5), std::invalid_argument);
}

}  // namespace ptypilot
