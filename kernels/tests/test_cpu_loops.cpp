// The hand-written AVX2 loops (cpu_loops_avx2.cpp) against the portable ones they replace on
// processors with AVX2: the far field and the gradient must be the same bits, so that a
// reconstruction does not depend on which of the two ran. Only the loss, a sum, may differ in
// its last bits (its order of addition is another). And the CPU's priors step against the
// per-pixel function the CUDA kernel runs.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "cpu_loops.hpp"
#include "prior_step.hpp"
#include "skip.hpp"

namespace ptypilot {
namespace {

[[maybe_unused]] bool skip_without_avx2() {
  if (cpu::avx2_loops_available()) return false;
  testing::skip_test_case("cpu_loops", "this processor has no AVX2, so only the portable loops run");
  return true;
}

// Equal bits; two NaNs count as equal whatever their payloads.
bool same_float(float a, float b) {
  return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b) ||
         (std::isnan(a) && std::isnan(b));
}

// How many of `count` floats differ in their bits.
std::size_t differing(const float* a, const float* b, std::size_t count) {
  std::size_t n = 0;
  for (std::size_t k = 0; k < count; ++k) n += !same_float(a[k], b[k]);
  return n;
}

// A far field of typical values, with the ones a loop can get wrong mixed in: zeros, elements
// whose square underflows or overflows, denormals and NaN.
[[maybe_unused]] std::vector<std::complex<float>> far_field(std::size_t count, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 30.0f);
  std::vector<std::complex<float>> far(count);
  for (auto& z : far) z = {normal(rng), normal(rng)};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float denormal = std::numeric_limits<float>::denorm_min() * 9;
  const std::complex<float> special[] = {{0.0f, 0.0f}, {-0.0f, 0.0f}, {1e-23f, -2e-23f},
                                         {denormal, 0.0f}, {3e19f, 1e19f}, {nan, 1.0f},
                                         {1e-7f, 0.0f}, {0.0f, -4e-4f}};
  for (std::size_t k = 0; k < count; k += 13) far[k] = special[(k / 13) % std::size(special)];
  return far;
}

}  // namespace

#if PTYPILOT_CPU_AVX2_LOOPS

TEST_CASE("the AVX2 residuals give the portable loops' far field bit for bit", "[cpu_loops]") {
  if (skip_without_avx2()) return;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> counts(0.0f, 900.0f);
  // 4096: a 64 x 64 window; the others end inside a vector, or a block of 256, or are shorter
  // than one vector.
  for (std::size_t count : {std::size_t(4096), std::size_t(4099), std::size_t(300), std::size_t(5)}) {
    const std::vector<std::complex<float>> far = far_field(count, rng);
    std::vector<float> measured(count), measured_sqrt(count);
    for (std::size_t k = 0; k < count; ++k) {
      measured[k] = k % 7 == 0 ? 0.0f : counts(rng);
      measured_sqrt[k] = std::sqrt(measured[k]);
    }
    for (bool amplitude : {false, true})
      for (float rms : {0.0f, 1e-20f, 0.5f, 60.0f}) {
        INFO(count << " elements, " << (amplitude ? "amplitude" : "intensity") << ", rms " << rms);
        const float weight = amplitude ? 1.0f / 250 : 2.0f / 250;
        std::vector<std::complex<float>> portable = far, avx2 = far;
        const double portable_sum =
            amplitude ? cpu::portable::amplitude_residual(portable.data(), measured_sqrt.data(),
                                                          count, weight, rms)
                      : cpu::portable::intensity_residual(portable.data(), measured.data(), count,
                                                          weight);
        const double avx2_sum =
            amplitude
                ? cpu::avx2::amplitude_residual(avx2.data(), measured_sqrt.data(), count, weight, rms)
                : cpu::avx2::intensity_residual(avx2.data(), measured.data(), count, weight);
        const auto* p = reinterpret_cast<const float*>(portable.data());
        const auto* a = reinterpret_cast<const float*>(avx2.data());
        CHECK(differing(p, a, 2 * count) == 0);
        // The sums see the NaN element, so compare them on the elements without it.
        CHECK(std::isnan(portable_sum) == std::isnan(avx2_sum));
        if (!amplitude) continue;
        // Typical values alone: the sums agree to float rounding of their different orders.
        std::vector<std::complex<float>> clean(count);
        for (std::size_t k = 0; k < count; ++k) clean[k] = {float(k % 17) - 8.0f, float(k % 5) + 0.5f};
        std::vector<std::complex<float>> clean_avx2 = clean;
        const double clean_portable_sum = cpu::portable::amplitude_residual(
            clean.data(), measured_sqrt.data(), count, weight, rms);
        const double clean_avx2_sum =
            cpu::avx2::amplitude_residual(clean_avx2.data(), measured_sqrt.data(), count, weight, rms);
        CHECK(clean_avx2_sum == Approx(clean_portable_sum).epsilon(1e-6));
        CHECK(differing(reinterpret_cast<const float*>(clean.data()),
                        reinterpret_cast<const float*>(clean_avx2.data()), 2 * count) == 0);
      }
  }
}

// The weighted residuals: each element reads its detector pixel (any pixel, several elements
// sharing one) and carries a weight of 0, 1 or between.
TEST_CASE("the AVX2 weighted residuals give the portable loops' far field bit for bit",
          "[cpu_loops]") {
  if (skip_without_avx2()) return;
  std::mt19937 rng(6);
  std::uniform_real_distribution<float> counts(0.0f, 900.0f);
  const int detector_pixels = 32 * 32;
  std::uniform_int_distribution<int> pixel(0, detector_pixels - 1);
  std::vector<float> measured(detector_pixels), measured_sqrt(detector_pixels);
  for (int k = 0; k < detector_pixels; ++k) {
    measured[k] = k % 5 == 0 ? 0.0f : counts(rng);
    measured_sqrt[k] = std::sqrt(measured[k]);
  }
  for (std::size_t count : {std::size_t(4096), std::size_t(4099), std::size_t(5)}) {
    const std::vector<std::complex<float>> far = far_field(count, rng);
    std::vector<int> detector_pixel(count);
    std::vector<float> pixel_weight(count);
    for (std::size_t k = 0; k < count; ++k) {
      detector_pixel[k] = pixel(rng);
      pixel_weight[k] = k % 3 == 0 ? 0.0f : k % 3 == 1 ? 1.0f : 0.37f;
    }
    for (bool amplitude : {false, true}) {
      INFO(count << " elements, " << (amplitude ? "amplitude" : "intensity"));
      const float weight = 1.0f / 250, rms = 20.0f;
      std::vector<std::complex<float>> portable = far, avx2 = far;
      if (amplitude) {
        cpu::portable::amplitude_residual_weighted(portable.data(), measured_sqrt.data(),
                                                   detector_pixel.data(), pixel_weight.data(),
                                                   count, weight, rms);
        cpu::avx2::amplitude_residual_weighted(avx2.data(), measured_sqrt.data(),
                                               detector_pixel.data(), pixel_weight.data(), count,
                                               weight, rms);
      } else {
        cpu::portable::intensity_residual_weighted(portable.data(), measured.data(),
                                                   detector_pixel.data(), pixel_weight.data(),
                                                   count, weight);
        cpu::avx2::intensity_residual_weighted(avx2.data(), measured.data(), detector_pixel.data(),
                                               pixel_weight.data(), count, weight);
      }
      CHECK(differing(reinterpret_cast<const float*>(portable.data()),
                      reinterpret_cast<const float*>(avx2.data()), 2 * count) == 0);
    }
  }
}

TEST_CASE("the AVX2 gradient scatter adds the portable loop's values bit for bit", "[cpu_loops]") {
  if (skip_without_avx2()) return;
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const int cols = 97, rows = 90;
  // 64: the windows of the presets; 13 ends in a partial vector.
  for (int n : {64, 13}) {
    INFO("window " << n);
    std::vector<std::complex<float>> wave(std::size_t(n) * n), back(std::size_t(n) * n);
    for (auto& z : wave) z = {normal(rng), normal(rng)};
    for (auto& z : back) z = {normal(rng), normal(rng)};
    wave[3] = {std::numeric_limits<float>::infinity(), 0.0f};
    std::vector<float> gradient(std::size_t(rows) * cols);
    for (float& g : gradient) g = normal(rng);
    std::vector<float> portable = gradient, avx2 = gradient;
    // Two overlapping windows at odd offsets, as scan positions are.
    for (auto [top, left] : {std::pair{3, 5}, std::pair{11, 17}}) {
      cpu::portable::accumulate_phase_gradient(wave.data(), back.data(), n, top, left,
                                               portable.data(), cols);
      cpu::avx2::accumulate_phase_gradient(wave.data(), back.data(), n, top, left, avx2.data(), cols);
    }
    CHECK(differing(portable.data(), avx2.data(), portable.size()) == 0);
    // Outside the windows nothing moved.
    CHECK(avx2[std::size_t(rows - 1) * cols + cols - 1] == gradient[std::size_t(rows - 1) * cols + cols - 1]);
    std::size_t changed = 0;
    for (std::size_t k = 0; k < gradient.size(); ++k) changed += !same_float(gradient[k], avx2[k]);
    CHECK(changed > std::size_t(n) * n);
  }
}

#else

TEST_CASE("the AVX2 loops are not built for this processor", "[cpu_loops]") {
  testing::skip_test_case("cpu_loops", "built for a processor without the AVX2 loops (not x86-64)");
}

#endif  // PTYPILOT_CPU_AVX2_LOOPS

// cpu::prior_step computes by row, with the priors that are off compiled out and the interior
// pixels' neighbours unclamped; every combination of priors must give prior_value_at's values
// (the CUDA kernel's) bit for bit, on an image whose edges and corners are a large share.
TEST_CASE("the CPU priors step is the per-pixel function's, bit for bit, for every prior",
          "[cpu_loops]") {
  const int rows = 23, cols = 19;
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.1f, 0.5f);
  std::uniform_real_distribution<float> uniform(0.0f, 0.3f);
  std::vector<float> phase(std::size_t(rows) * cols), dark(phase.size());
  for (float& v : phase) v = normal(rng);
  for (float& w : dark) w = uniform(rng);
  int combinations = 0;
  for (bool with_dark : {false, true})
    for (float tv : {0.0f, 0.05f})
      for (float sparsity : {0.0f, 0.2f})
        for (bool positivity : {false, true}) {
          INFO("dark " << with_dark << ", tv " << tv << ", sparsity " << sparsity
                       << ", positivity " << positivity);
          std::vector<float> by_row(phase.size()), by_pixel(phase.size());
          PriorStep step{phase.data(), by_row.data(), with_dark ? dark.data() : nullptr, rows,
                         cols, tv, 0.01f, positivity, sparsity};
          cpu::prior_step(step, 2);
          for (long i = 0; i < long(phase.size()); ++i) by_pixel[i] = prior_value_at(step, i);
          CHECK(differing(by_row.data(), by_pixel.data(), phase.size()) == 0);
          // The step did something wherever a prior is on.
          if (with_dark || tv > 0 || sparsity > 0 || positivity)
            CHECK(differing(by_row.data(), phase.data(), phase.size()) > 0);
          ++combinations;
        }
  CHECK(combinations == 16);
}

}  // namespace ptypilot
