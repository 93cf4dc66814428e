// The GPU against the CPU on the same inputs: CudaReconstructor against CpuReconstructor (the
// gradient, one iteration, ten iterations, warm start and growth, errors) and the Jump Flooding
// reward against the exact one and its own host emulation. Tagged [cuda]; without a device each
// case says so in a warning, with the reason, and ctest reports it skipped (skip.hpp). In
// ptypilot_kernels_tests (built where nvcc is) they run on the GPU; in
// ptypilot_kernels_host_device_tests (every build) on the host stand-in for the CUDA runtime,
// which checks this file and the host code, not the device.
//
// Tolerances, relative to the largest value of the reference. The GPU differs from the CPU in
// the order of float additions (atomics in the gradient scatter, cuFFT's against FFTW's
// butterflies), in sincosf (2 ulp) against glibc, and in fused multiply-adds, each about 1e-6
// relative. So: the loss to 1e-5, the gradient to 1e-4 of its largest value, V after one step to
// 1e-4 and after ten to 1e-3 of its largest value, and the loss history to 1e-4. These are a
// margin over float rounding; on an H200 the differences were about 100 times smaller (README,
// "Measured on an H200").
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "image_comparison.hpp"
#include "jfa_host_emulation.hpp"
#include "label_agreement.hpp"
#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/cuda_reconstructor.hpp"
#include "ptypilot/cuda_support.hpp"
#include "ptypilot/reward.hpp"
#include "skip.hpp"
#include "synthetic_experiment.hpp"

namespace ptypilot {
namespace {

using testing::max_abs;
using testing::max_abs_difference;
using testing::synthetic_experiment;
using testing::wavy_phase;

bool skip_without_device() {
  if (cuda_support().available) return false;
  testing::skip_test_case("cuda", cuda_support().reason);
  return true;
}

const char* loss_name(Loss loss) { return loss == Loss::kAmplitude ? "amplitude" : "intensity"; }

struct Size {
  double fov_A;
  int patterns;
};
// A small case, and the mos2-paper geometry with the paper's 250 positions.
constexpr Size kSizes[] = {{6.0, 40}, {19.8, 250}};

}  // namespace

TEST_CASE("CUDA: the gradient matches the CPU's", "[cuda]") {
  if (skip_without_device()) return;
  for (Size size : kSizes) {
    for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
      INFO(size.patterns << " patterns, " << loss_name(loss));
      auto e = synthetic_experiment(size.fov_A, size.patterns, loss);
      CpuReconstructor cpu(e.config);
      CudaReconstructor cuda(e.config);
      REQUIRE(cpu.add_frames(e.frames).ok());
      REQUIRE(cuda.add_frames(e.frames).ok());
      CHECK(cuda.intensity_scale() == cpu.intensity_scale());
      const RealImage v = wavy_phase(e.config.object);
      double cpu_loss = 0, cuda_loss = 0;
      RealImage cpu_gradient, cuda_gradient;
      REQUIRE(cpu.loss_and_gradient(v, &cpu_loss, &cpu_gradient).ok());
      REQUIRE(cuda.loss_and_gradient(v, &cuda_loss, &cuda_gradient).ok());
      CHECK(cuda_loss == Approx(cpu_loss).epsilon(1e-5));
      const double difference = max_abs_difference(cuda_gradient, cpu_gradient);
      CHECK(difference <= 1e-4 * max_abs(cpu_gradient));
      WARN("measured, " << size.patterns << " patterns, " << loss_name(loss)
                        << ": loss relative difference " << std::abs(cuda_loss / cpu_loss - 1)
                        << ", gradient max difference " << difference / max_abs(cpu_gradient)
                        << " of its largest value");
      // The state is unchanged: a second evaluation gives the same.
      double again = 0;
      RealImage unused;
      REQUIRE(cuda.loss_and_gradient(v, &again, &unused).ok());
      CHECK(again == Approx(cuda_loss).epsilon(1e-12));
      CHECK(cuda.snapshot().iterations == 0);
    }
  }
}

TEST_CASE("CUDA: one and ten iterations follow the CPU's", "[cuda]") {
  if (skip_without_device()) return;
  for (Size size : kSizes) {
    for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
      auto e = synthetic_experiment(size.fov_A, size.patterns, loss);
      for (int iterations : {1, 10}) {
        INFO(size.patterns << " patterns, " << loss_name(loss) << ", " << iterations
                           << " iterations");
        CpuReconstructor cpu(e.config);
        CudaReconstructor cuda(e.config);
        REQUIRE(cpu.add_frames(e.frames).ok());
        REQUIRE(cuda.add_frames(e.frames).ok());
        REQUIRE(cpu.iterate(iterations).ok());
        REQUIRE(cuda.iterate(iterations).ok());
        const Potential expected = cpu.snapshot();
        const Potential got = cuda.snapshot();
        CHECK(got.iterations == iterations);
        CHECK(got.frames == e.frames.size());
        const double tolerance = iterations == 1 ? 1e-4 : 1e-3;
        const double difference = max_abs_difference(got.phase_rad, expected.phase_rad);
        CHECK(difference <= tolerance * max_abs(expected.phase_rad));
        WARN("measured, " << size.patterns << " patterns, " << loss_name(loss) << ", "
                          << iterations << " iterations: V max difference "
                          << difference / max_abs(expected.phase_rad)
                          << " of its largest value; last loss relative difference "
                          << std::abs(got.loss_history.back() / expected.loss_history.back() - 1));
        REQUIRE(got.loss_history.size() == expected.loss_history.size());
        for (std::size_t k = 0; k < got.loss_history.size(); ++k)
          CHECK(got.loss_history[k] == Approx(expected.loss_history[k]).epsilon(1e-4));
        if (iterations == 10) CHECK(got.loss_history.back() < got.loss_history.front());
      }
    }
  }
}

TEST_CASE("CUDA: warm start and frames added in several calls follow the CPU", "[cuda]") {
  if (skip_without_device()) return;
  auto e = synthetic_experiment(19.8, 250, Loss::kAmplitude);
  CpuReconstructor cpu(e.config);
  CudaReconstructor cuda(e.config);
  const RealImage start = wavy_phase(e.config.object);
  REQUIRE(cpu.set_potential(start).ok());
  REQUIRE(cuda.set_potential(start).ok());
  const double copied = max_abs_difference(cuda.snapshot().phase_rad, start);
  CHECK(copied == 0.0);
  // Sub-sequences of 50, 100 and 100 frames, 5 iterations after each, as the daemon does; the
  // device buffers and the cuFFT plan grow twice.
  std::span<const Frame> all(e.frames);
  for (auto [first, count] : {std::pair{0, 50}, {50, 100}, {150, 100}}) {
    INFO("after frames " << first << " + " << count);
    REQUIRE(cpu.add_frames(all.subspan(first, count)).ok());
    REQUIRE(cuda.add_frames(all.subspan(first, count)).ok());
    REQUIRE(cpu.iterate(5).ok());
    REQUIRE(cuda.iterate(5).ok());
    const Potential expected = cpu.snapshot();
    CHECK(cuda.snapshot().frames == expected.frames);
    const double difference = max_abs_difference(cuda.snapshot().phase_rad, expected.phase_rad);
    CHECK(difference <= 1e-3 * max_abs(expected.phase_rad));
  }
  CHECK(cuda.uses_graph());
  double floor_ms = 0;
  REQUIRE(cuda.time_fft_round_trip(&floor_ms).ok());
  CHECK(floor_ms > 0);
  // The round trip's scratch use of the buffer does not disturb the next iteration.
  REQUIRE(cpu.iterate(1).ok());
  REQUIRE(cuda.iterate(1).ok());
  CHECK(cuda.snapshot().loss_history.back() ==
        Approx(cpu.snapshot().loss_history.back()).epsilon(1e-4));
}

TEST_CASE("CUDA: bad input gets the CPU's errors and leaves the state alone", "[cuda]") {
  if (skip_without_device()) return;
  auto e = synthetic_experiment(6.0, 8, Loss::kIntensity);
  CpuReconstructor cpu(e.config);
  CudaReconstructor cuda(e.config);
  CHECK(cuda.iterate(1).code() == StatusCode::kFailedPrecondition);
  std::vector<float> counts = e.counts;
  std::vector<Frame> frames = e.frames;
  for (std::size_t p = 0; p < frames.size(); ++p) frames[p].counts = {counts.data() + p * 4096, 4096};
  counts[3 * 4096 + 11] = -2.0f;
  const Status a = cpu.add_frames(frames), b = cuda.add_frames(frames);
  CHECK(b.code() == a.code());
  CHECK(b.message() == a.message());
  CHECK(cuda.snapshot().frames == 0);
  CHECK(cuda.set_potential(RealImage(3, 3)).code() == StatusCode::kInvalidArgument);
  CHECK(cuda.iterate(-1).code() == StatusCode::kInvalidArgument);
  REQUIRE(cuda.add_frames(e.frames).ok());
  CHECK(cuda.iterate(0).ok());
  CHECK(cuda.snapshot().iterations == 0);
}

TEST_CASE("CUDA: make_reconstructor picks CUDA for auto where a device is", "[cuda]") {
  if (skip_without_device()) return;
  auto e = synthetic_experiment(6.0, 8, Loss::kIntensity);
  e.config.backend = "auto";
  CHECK(choose_backend("auto").backend == "cuda");
  CHECK(make_reconstructor(e.config)->backend() == "cuda");
  e.config.backend = "cuda";
  CHECK(make_reconstructor(e.config)->backend() == "cuda");
}

// The device runs the same passes as the host emulation, with distances rounded as on the host,
// so its labels are the emulation's exactly; against the exact labels they then agree as
// test_jfa.cpp measured. The rewards are the labels' sums, in double: to 1e-12 of the emulated
// ones (atomics change only the order), and within the disagreeing pixels' phase of the exact.
// The priors' step and the detector mask on the device, as the host stand-in checks them on the
// host: every prior on, and a 32 px detector in the 64 px window with some pixels masked out
// (the paper's detector geometry). Ten iterations, within the ten-iteration tolerance above.
TEST_CASE("CUDA: every prior and a partly masked small detector follow the CPU's", "[cuda]") {
  if (skip_without_device()) return;
  auto e = synthetic_experiment(19.8, 250, Loss::kAmplitude, 4000.0, 1, 32);
  e.config.detector_mask.assign(32 * 32, 1.0f);
  for (int k = 0; k < 32 * 32; k += 37) e.config.detector_mask[k] = 0.0f;
  const auto runs = testing::run_with_every_prior<CudaReconstructor>(e);
  const double difference = max_abs_difference(runs.cuda, runs.cpu);
  CHECK(difference <= 1e-3 * max_abs(runs.cpu));
  CHECK(max_abs_difference(runs.cpu_without_priors, runs.cpu) > 1e-2 * max_abs(runs.cpu));
  WARN("measured, 250 patterns on a masked 32 px detector, every prior, 10 iterations: V max difference "
       << difference / max_abs(runs.cpu) << " of its largest value");
}

TEST_CASE("CUDA: Jump Flooding labels and rewards", "[cuda]") {
  if (skip_without_device()) return;
  const ObjectGrid g = object_grid_for_fov(19.8, 19.8, 0.1540, 64, 3);
  RealImage phase(g.rows, g.cols);
  for (int r = 0; r < g.rows; ++r)
    for (int c = 0; c < g.cols; ++c) phase(r, c) = 0.5f + 0.4f * std::sin(0.3f * r + 0.11f * c);
  const std::vector<std::vector<Vec2>> layouts = {
      sparse_grid_positions(250, 100, 100, 0.2),
      raster_positions(100, 100, 0.2),
      {{1.0, 1.0}, {1.01, 1.0}, {1.0, 1.0}, {18.0, 3.0}, {9.7, 17.2}},
  };
  for (std::size_t l = 0; l < layouts.size(); ++l) {
    INFO("layout " << l);
    const auto& positions = layouts[l];
    for (bool fov_only : {true, false}) {
      const Image<int> device = voronoi_labels_jfa(g, positions, fov_only);
      const Image<int> host = testing::host_emulated_jfa_labels(g, positions, fov_only);
      CHECK(device.vector() == host.vector());
      const auto a = testing::compare_labels(g, positions, voronoi_labels(g, positions, fov_only),
                                             device);
      CHECK(a.agreeing_share() >= 0.999);
      CHECK(a.worst_excess_px <= kJfaDistanceSlack_px);
      WARN("measured, layout " << l << (fov_only ? ", FOV" : ", whole grid") << ": "
                               << a.disagreeing << " of " << a.labelled
                               << " pixels differ from the exact labels, by at most "
                               << a.worst_excess_px << " px");
    }
    const Image<int> labels = voronoi_labels_jfa(g, positions, true);
    const auto a = testing::compare_labels(g, positions, voronoi_labels(g, positions, true),
                                           labels, &phase);
    const std::vector<double> jfa = voronoi_reward_jfa(phase, g, positions);
    const std::vector<double> exact = voronoi_reward(phase, g, positions);
    std::vector<double> from_labels(positions.size(), 0.0);
    for (std::size_t k = 0; k < labels.size(); ++k)
      if (labels.data()[k] >= 0) from_labels[labels.data()[k]] += phase.data()[k];
    const double P = static_cast<double>(positions.size());
    for (std::size_t m = 0; m < positions.size(); ++m) {
      CHECK(jfa[m] == Approx(from_labels[m] / P).epsilon(1e-12).margin(1e-12));
      CHECK(std::abs(jfa[m] - exact[m]) <= a.disagreeing_phase_sum / P + 1e-12);
    }
  }
  CHECK_THROWS_AS(voronoi_reward_jfa(phase, g, std::vector<Vec2>{{-5.0, 0.0}}), std::invalid_argument);
}

}  // namespace ptypilot
