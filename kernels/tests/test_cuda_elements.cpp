// The CUDA kernels' bodies (src/cuda/reconstruct_elements.hpp), run on the host, against the
// CPU loops (cpu_loops.hpp), element by element: the exit wave, both residuals and the gradient
// term, over the kernels' own (pattern, element) index space. These need no CUDA and run in
// every build. The whole pipeline (launch order, cuFFT's layout and scale, buffers, graph) is
// tested by running CudaReconstructor on the host stand-in (test_host_device.cpp), and on a
// GPU by the [cuda] tests.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <random>

#include "cpu_loops.hpp"
#include "ptypilot/detector.hpp"
#include "cuda/reconstruct_elements.hpp"
#include "image_comparison.hpp"
#include "ptypilot/cpu_reconstructor.hpp"
#include "synthetic_experiment.hpp"

namespace ptypilot {
namespace {

using testing::max_abs;
using testing::max_abs_difference;
using testing::synthetic_experiment;
using testing::wavy_phase;

const float* as_floats(const std::complex<float>* z) { return reinterpret_cast<const float*>(z); }

// The host's placements are the kernels' windows (cuda_reconstructor.cpp uploads them as they are).
static_assert(sizeof(gpu::Window) == sizeof(ProbePlacement));

}  // namespace

// Tolerances 1e-6 of the largest value for the exit wave and the residuals, 1e-5 for the
// gradient image: on a GPU nvcc fuses multiply-adds in the bodies, which the CPU loops never do
// (kernels/CMakeLists.txt). Measured on the host: at most 2.5e-7 of the largest value.
TEST_CASE("the kernel bodies compute the CPU loops' values element by element", "[cuda_bodies]") {
  auto e = synthetic_experiment(4.0, 12, Loss::kIntensity);
  FrameStore store(e.config);
  REQUIRE(store.add(e.frames).ok());
  const int n = store.window_px();
  const std::size_t nn = std::size_t(n) * n;
  const RealImage v = wavy_phase(e.config.object);
  ComplexImage t;
  transmission(v, &t);

  // The pass CudaReconstructor builds, over host arrays.
  std::vector<gpu::Complex32> waves(store.size() * nn);
  std::vector<float> gradient(v.size(), 0.0f);
  gpu::GradientPass g{};
  g.phase = v.data();
  g.object_cols = v.cols();
  g.windows = reinterpret_cast<const gpu::Window*>(store.placements().data());
  g.probes = reinterpret_cast<const gpu::Complex32*>(store.model().shifted_probe(0));
  g.measured = store.measured().data();
  g.waves = waves.data();
  g.gradient = gradient.data();
  g.n = n;
  g.patterns = static_cast<long>(store.size());
  g.probe_scale = static_cast<float>(std::sqrt(store.intensity_scale()) / n);

  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 30.0f);
  std::uniform_real_distribution<float> counts(0.0f, 900.0f);

  for (std::size_t p = 0; p < store.size(); ++p) {
    INFO("pattern " << p);
    const ProbePlacement& pl = store.placements()[p];
    // Exit wave.
    std::vector<std::complex<float>> cpu_wave(nn);
    cpu::exit_wave(t.data(), t.cols(), pl.top, pl.left, store.model().shifted_probe(pl.probe), n,
                   g.probe_scale, cpu_wave.data());
    for (std::size_t k = 0; k < nn; ++k) waves[p * nn + k] = gpu::exit_wave_at(g, long(p), int(k));
    const float* body = &waves[p * nn].re;
    {
      const double difference = max_abs_difference(body, as_floats(cpu_wave.data()), 2 * nn);
      CHECK(difference <= 1e-6 * max_abs(as_floats(cpu_wave.data()), 2 * nn));
    }

    // Residuals, both losses, on a random far field.
    std::vector<std::complex<float>> far(nn);
    std::vector<float> measured(store.size() * nn), measured_sqrt(store.size() * nn);
    for (std::size_t k = 0; k < nn; ++k) {
      far[k] = {normal(rng), normal(rng)};
      measured[p * nn + k] = counts(rng);
      measured_sqrt[p * nn + k] = std::sqrt(measured[p * nn + k]);
    }
    for (bool amplitude : {false, true}) {
      INFO((amplitude ? "amplitude" : "intensity"));
      std::vector<std::complex<float>> cpu_far = far;
      const float weight = amplitude ? 1.0f / 12 : 2.0f / 12;
      const double cpu_sum =
          amplitude
              ? cpu::amplitude_residual(cpu_far.data(), measured_sqrt.data() + p * nn, nn, weight,
                                        g.probe_scale)
              : cpu::intensity_residual(cpu_far.data(), measured.data() + p * nn, nn, weight);
      gpu::GradientPass r = g;
      r.measured = amplitude ? measured_sqrt.data() : measured.data();
      r.residual_weight = weight;
      r.amplitude = amplitude;
      double body_sum = 0.0;
      for (std::size_t k = 0; k < nn; ++k) {
        waves[p * nn + k] = {far[k].real(), far[k].imag()};
        body_sum += gpu::residual_at(r, long(p * nn + k));
      }
      CHECK(body_sum == Approx(cpu_sum).epsilon(1e-5));
      {
        const double difference = max_abs_difference(body, as_floats(cpu_far.data()), 2 * nn);
        CHECK(difference <= 1e-6 * max_abs(as_floats(cpu_far.data()), 2 * nn));
      }
    }

    // Gradient scatter, with a random back-propagated wave.
    std::vector<std::complex<float>> back(nn);
    for (std::size_t k = 0; k < nn; ++k) back[k] = {normal(rng), normal(rng)};
    std::vector<float> cpu_gradient(v.size(), 0.0f);
    cpu::accumulate_phase_gradient(cpu_wave.data(), back.data(), n, pl.top, pl.left,
                                   cpu_gradient.data(), v.cols());
    std::fill(gradient.begin(), gradient.end(), 0.0f);
    for (std::size_t k = 0; k < nn; ++k) {
      waves[p * nn + k] = {back[k].real(), back[k].imag()};
      const gpu::GradientTerm term = gpu::gradient_term_at(g, long(p), int(k));
      gradient[term.pixel] += term.value;
    }
    {
      const double difference = max_abs_difference(gradient.data(), cpu_gradient.data(), v.size());
      CHECK(difference <= 1e-5 * max_abs(cpu_gradient.data(), v.size()));
    }
  }
}

// Where the exact far field is zero (outside the probe's aperture at V = 0), Psi is the FFT's
// rounding, about 1e-6 of its RMS amplitude, and its phase is that rounding's. The amplitude
// loss's dL/dPsi* = weight * r * Psi / |Psi| gave every such element the data's full
// weight * sqrt J in that direction, so that the step depended on the FFT algorithm
// (amplitude_gradient.hpp). Both the CPU loop and the kernel body now give those elements
// (almost) nothing, and the exact gradient where the model has amplitude.
TEST_CASE("the amplitude gradient ignores far-field elements that are only the FFT's rounding",
          "[cuda_bodies]") {
  const int n = 16;
  const std::size_t nn = std::size_t(n) * n;
  const float rms = 0.9f, weight = 1.0f / 40;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f), counts(1.0f, 30.0f);
  std::vector<std::complex<float>> far(nn);
  std::vector<float> measured_sqrt(nn);
  for (std::size_t k = 0; k < nn; ++k) {
    // Even elements: rounding noise of 1e-6 of the RMS. Odd ones: an amplitude of 0.1-1 RMS.
    const float size = k % 2 == 0 ? 1e-6f * rms : (0.1f + 0.45f * (unit(rng) + 1.0f)) * rms;
    const float phase = 3.14159265f * unit(rng);
    far[k] = std::polar(size, phase);
    measured_sqrt[k] = std::sqrt(counts(rng));
  }
  std::vector<std::complex<float>> cpu_far = far;
  cpu::amplitude_residual(cpu_far.data(), measured_sqrt.data(), nn, weight, rms);

  std::vector<gpu::Complex32> waves(nn);
  for (std::size_t k = 0; k < nn; ++k) waves[k] = {far[k].real(), far[k].imag()};
  gpu::GradientPass g{};
  g.measured = measured_sqrt.data();
  g.waves = waves.data();
  g.n = n;
  g.patterns = 1;
  g.probe_scale = rms;
  g.residual_weight = weight;
  g.amplitude = true;
  for (std::size_t k = 0; k < nn; ++k) gpu::residual_at(g, long(k));

  for (std::size_t k = 0; k < nn; ++k) {
    INFO("element " << k << ", |Psi| = " << std::abs(far[k]) << ", sqrt J = " << measured_sqrt[k]);
    const float a = std::abs(far[k]);
    const float r = a - measured_sqrt[k];
    const std::complex<float> body(waves[k].re, waves[k].im);
    CHECK(std::abs(body - cpu_far[k]) <= 1e-6f * weight * std::abs(r));
    if (k % 2 == 0) {
      // Was weight * |r|, in the rounding's direction.
      CHECK(std::abs(cpu_far[k]) <= 1e-5f * weight * std::abs(r));
    } else {
      // The floor scales the exact term by |Psi|^2 / (|Psi|^2 + floor^2), here >= 1 - 1e-4.
      const std::complex<float> exact = weight * r * far[k] / a;
      const float floor = kAmplitudeFloor * rms;
      CHECK(std::abs(cpu_far[k] - exact) <= (1e-5f + floor * floor / (a * a)) * std::abs(exact));
    }
  }
}

// amplitude_gradient_factor is written with selects instead of a branch, so that the CPU loop
// vectorises; its value must stay the branch's, bit for bit, including where |Psi|^2 + floor^2
// is 0 (|Psi| = 0, or a small |Psi| whose square underflows) and where Psi is not a number.
TEST_CASE("the amplitude gradient factor is the branch's bit for bit, at zero, underflow and NaN",
          "[cuda_bodies]") {
  const auto branch = [](float a, float r, float weight, float rms) {
    const float floor = kAmplitudeFloor * rms;
    const float d = a * a + floor * floor;
    return d > 0.0f ? weight * r * a / d : 0.0f;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float denormal = std::numeric_limits<float>::denorm_min() * 7;
  int cases = 0, underflows = 0;
  for (float a : {0.0f, denormal, 1e-23f, 1e-7f, 0.5f, 1.0f, 3e3f, nan})
    for (float r : {-2.0f, -1e-30f, 0.0f, 0.75f, 40.0f})
      for (float rms : {0.0f, 1e-20f, 1e-3f, 0.9f, 60.0f})
        for (float weight : {1.0f / 250, 2.0f / 250, 1.0f}) {
          const float expected = branch(a, r, weight, rms);
          const float got = amplitude_gradient_factor(a, r, weight, rms);
          INFO("a " << a << ", r " << r << ", rms " << rms << ", weight " << weight << ": "
                    << got << " against " << expected);
          CHECK(std::memcmp(&got, &expected, sizeof(float)) == 0);
          ++cases;
          const float floor = kAmplitudeFloor * rms;
          underflows += a > 0.0f && a * a + floor * floor == 0.0f;
        }
  CHECK(cases == 8 * 5 * 5 * 3);
  CHECK(underflows > 0);  // |Psi| > 0 whose d is 0 was among them
}

// The weighted residuals (a 16 px window, an 8 px detector with one pixel masked out): the
// kernel body reads each element's detector pixel and weight as the CPU loop does, computes the
// same values, and leaves nothing where the weight is 0.
TEST_CASE("the kernel body weighs the residuals per element as the CPU loops do",
          "[cuda_bodies]") {
  const int n = 16, d = 8, patterns = 3;
  const std::size_t nn = std::size_t(n) * n, dd = std::size_t(d) * d;
  std::vector<float> mask(dd, 1.0f);
  mask[1 * d + 6] = 0.0f;
  const WindowWeights weights = window_weights(n, d, mask);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 30.0f);
  std::uniform_real_distribution<float> counts(0.0f, 900.0f);
  std::vector<std::complex<float>> far(patterns * nn);
  for (auto& z : far) z = {normal(rng), normal(rng)};
  std::vector<float> measured(patterns * dd);
  for (float& m : measured) m = counts(rng);
  for (bool amplitude : {false, true}) {
    INFO((amplitude ? "amplitude" : "intensity"));
    const float weight = 1.0f / patterns, rms = 20.0f;
    std::vector<gpu::Complex32> waves(patterns * nn);
    for (std::size_t k = 0; k < far.size(); ++k) waves[k] = {far[k].real(), far[k].imag()};
    gpu::GradientPass g{};
    g.measured = measured.data();
    g.detector_pixels = long(dd);
    g.pixel_weight = weights.weight.data();
    g.detector_pixel = weights.detector_pixel.data();
    g.waves = waves.data();
    g.n = n;
    g.patterns = patterns;
    g.probe_scale = rms;
    g.residual_weight = weight;
    g.amplitude = amplitude;
    for (int p = 0; p < patterns; ++p) {
      INFO("pattern " << p);
      std::vector<std::complex<float>> cpu_far(far.begin() + p * nn, far.begin() + (p + 1) * nn);
      const float* m = measured.data() + p * dd;
      const double cpu_sum =
          amplitude ? cpu::amplitude_residual_weighted(cpu_far.data(), m, weights.detector_pixel.data(),
                                                       weights.weight.data(), nn, weight, rms)
                    : cpu::intensity_residual_weighted(cpu_far.data(), m, weights.detector_pixel.data(),
                                                       weights.weight.data(), nn, weight);
      double body_sum = 0.0;
      for (std::size_t k = 0; k < nn; ++k) body_sum += gpu::residual_at(g, long(p * nn + k));
      CHECK(body_sum == Approx(cpu_sum).epsilon(1e-5));
      const float* body = &waves[p * nn].re;
      CHECK(max_abs_difference(body, as_floats(cpu_far.data()), 2 * nn) <=
            1e-6 * max_abs(as_floats(cpu_far.data()), 2 * nn));
      double expected_sum = 0.0;
      for (std::size_t k = 0; k < nn; ++k) {
        const std::complex<float> z(waves[p * nn + k].re, waves[p * nn + k].im);
        if (weights.weight[k] == 0.0f) {
          CHECK(z == std::complex<float>(0.0f, 0.0f));
          continue;
        }
        const float mk = m[weights.detector_pixel[k]];
        const float r = amplitude ? std::abs(far[p * nn + k]) - mk : std::norm(far[p * nn + k]) - mk;
        expected_sum += double(r) * r;
      }
      // 63 of the 64 detector pixels count, each once, read from its own place.
      CHECK(cpu_sum == Approx(expected_sum).epsilon(1e-5));
    }
  }
}

}  // namespace ptypilot
