// The CUDA kernels' bodies (src/cuda/reconstruct_elements.hpp), run on the host, against the CPU
// reconstructor: element by element against the CPU loops, then the whole emulated pipeline
// (host_emulation.hpp) against CpuReconstructor's loss, gradient and iterations. These run in
// every build, with or without nvcc or a GPU. What they do not cover: the kernel launches,
// cuFFT, the copies, and the order of the atomic additions of the gradient scatter; the [cuda]
// tests (test_cuda_parity.cpp) cover those where a device is present.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <complex>
#include <random>

#include "cpu_loops.hpp"
#include "host_emulation.hpp"
#include "ptypilot/cpu_reconstructor.hpp"
#include "synthetic_experiment.hpp"

namespace ptypilot {
namespace {

using testing::HostEmulatedReconstructor;
using testing::synthetic_experiment;

double max_abs(const float* a, std::size_t n) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, double(std::abs(a[i])));
  return m;
}

double max_abs_difference(const float* a, const float* b, std::size_t n) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

const float* as_floats(const std::complex<float>* z) { return reinterpret_cast<const float*>(z); }

// A V away from the optimum, where the gradient is large (as the CPU gradient test uses).
RealImage wavy_phase(const ObjectGrid& g) {
  RealImage v(g.rows, g.cols);
  for (int r = 0; r < g.rows; ++r)
    for (int c = 0; c < g.cols; ++c) v(r, c) = 0.3f * std::sin(0.21f * r) * std::cos(0.17f * c);
  return v;
}

}  // namespace

// Tolerances 1e-6 of the largest value for the exit wave and the residuals, 1e-5 for the
// gradient image: the CPU loops' AVX-512 clones fuse multiply-adds, the bodies on the host do
// not. Measured: at most 2.5e-7 of the largest value.
TEST_CASE("the kernel bodies compute the CPU loops' values element by element", "[cuda_bodies]") {
  auto e = synthetic_experiment(4.0, 12, Loss::kIntensity);
  FrameStore store(e.config);
  REQUIRE(store.add(e.frames).ok());
  const int n = store.window_px();
  const std::size_t nn = std::size_t(n) * n;
  const RealImage v = wavy_phase(e.config.object);
  ComplexImage t;
  transmission(v, &t);

  HostEmulatedReconstructor emulated(e.config);
  REQUIRE(emulated.add_frames(e.frames).ok());
  std::vector<gpu::Complex32> waves(store.size() * nn);
  std::vector<float> gradient(v.size(), 0.0f);
  gpu::GradientPass g = emulated.pass(v.data());
  g.waves = waves.data();
  g.gradient = gradient.data();

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
              ? cpu::amplitude_residual(cpu_far.data(), measured_sqrt.data() + p * nn, nn, weight)
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

// Tolerances, relative to the largest value: the emulation and the CPU differ only in the order
// of float additions (per-thread gradient images; batches of 256 against blocks of 2048 for the
// loss) and in fused multiply-adds. Measured: the gradient within 3e-7 of its largest value, the
// loss within 1e-9. So 1e-5 and 1e-6 leave well over an order of magnitude, while an indexing
// error (the last section: one column off) is off by half the largest value.
TEST_CASE("the emulated GPU pipeline gives CpuReconstructor's loss and gradient", "[cuda_bodies]") {
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    INFO((loss == Loss::kAmplitude ? "amplitude" : "intensity"));
    auto e = synthetic_experiment(6.0, 40, loss);
    CpuReconstructor cpu(e.config);
    HostEmulatedReconstructor emulated(e.config);
    REQUIRE(cpu.add_frames(e.frames).ok());
    REQUIRE(emulated.add_frames(e.frames).ok());
    const RealImage v = wavy_phase(e.config.object);
    double cpu_loss = 0, emulated_loss = 0;
    RealImage cpu_gradient, emulated_gradient;
    REQUIRE(cpu.loss_and_gradient(v, &cpu_loss, &cpu_gradient).ok());
    REQUIRE(emulated.loss_and_gradient(v, &emulated_loss, &emulated_gradient).ok());
    const double scale = max_abs(cpu_gradient.data(), cpu_gradient.size());
    REQUIRE(scale > 0);
    CHECK(emulated_loss == Approx(cpu_loss).epsilon(1e-6));
    {
      const double difference = max_abs_difference(emulated_gradient.data(), cpu_gradient.data(), v.size());
      CHECK(difference <= 1e-5 * scale);
    }

    SECTION("a window one column off is noticed") {
      HostEmulatedReconstructor wrong(e.config);
      wrong.shift_windows(1);
      REQUIRE(wrong.add_frames(e.frames).ok());
      double wrong_loss = 0;
      RealImage wrong_gradient;
      REQUIRE(wrong.loss_and_gradient(v, &wrong_loss, &wrong_gradient).ok());
      {
        const double difference = max_abs_difference(wrong_gradient.data(), cpu_gradient.data(), v.size());
        CHECK(difference > 1e-2 * scale);
      }
    }
  }
}

// After k steps the potentials differ by the gradient's rounding, passed on by each step.
// Measured: V within 2.4e-7 of its largest value after one step and after ten, the losses
// within 3e-7. The tolerances, 1e-5 for V and the losses, are 40 times that.
TEST_CASE("one and ten emulated GPU iterations follow CpuReconstructor", "[cuda_bodies]") {
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    INFO((loss == Loss::kAmplitude ? "amplitude" : "intensity"));
    auto e = synthetic_experiment(6.0, 40, loss);
    for (int iterations : {1, 10}) {
      INFO(iterations << " iterations");
      CpuReconstructor cpu(e.config);
      HostEmulatedReconstructor emulated(e.config);
      REQUIRE(cpu.add_frames(e.frames).ok());
      REQUIRE(emulated.add_frames(e.frames).ok());
      REQUIRE(cpu.iterate(iterations).ok());
      REQUIRE(emulated.iterate(iterations).ok());
      const Potential expected = cpu.snapshot();
      const double scale = max_abs(expected.phase_rad.data(), expected.phase_rad.size());
      REQUIRE(scale > 0);
      const double tolerance = 1e-5;
      {
        const double difference = max_abs_difference(emulated.phase().data(), expected.phase_rad.data(), expected.phase_rad.size());
        CHECK(difference <= tolerance * scale);
      }
      REQUIRE(emulated.losses().size() == expected.loss_history.size());
      for (std::size_t k = 0; k < expected.loss_history.size(); ++k)
        CHECK(emulated.losses()[k] == Approx(expected.loss_history[k]).epsilon(tolerance));
      CHECK(expected.loss_history.back() < expected.loss_history.front() + 1e-12);
    }
  }
}

}  // namespace ptypilot
