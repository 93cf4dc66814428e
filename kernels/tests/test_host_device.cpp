// CudaReconstructor itself, unchanged, on the host stand-in for the CUDA runtime and cuFFT
// (host_device/): the kernels' bodies in the kernels' grids, FFTW for cuFFT, in launch order,
// through the reconstructor's own buffers, uploads, plan, graph and loss copies. Against
// CpuReconstructor with the tolerances of float rounding alone, and the runtime's rules: no
// allocation in iterate(), one graph launch per iteration, copies inside their buffers, the
// fallback without graphs, a divergent step. Tagged [host_device]; the binary also runs the
// [cuda] cases on the stand-in (test_cuda_parity.cpp). Runs in every build.
//
// What this cannot show is the device's own behaviour: real cuFFT (only its layout and sign are
// mimicked), the CUDA compiler's code, the atomics' order, concurrency, timing.
#include <catch2/catch.hpp>

#include <cmath>
#include <span>

#include "host_device/host_device.hpp"
#include "image_comparison.hpp"
#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/cuda_reconstructor.hpp"
#include "synthetic_experiment.hpp"

namespace ptypilot {
namespace {

using testing::max_abs;
using testing::max_abs_difference;
using testing::synthetic_experiment;
using testing::wavy_phase;

const char* loss_name(Loss loss) { return loss == Loss::kAmplitude ? "amplitude" : "intensity"; }

// Shifts V one column to the right, to show what an indexing error would look like.
RealImage shifted_one_column(const RealImage& v) {
  RealImage out(v.rows(), v.cols());
  for (int r = 0; r < v.rows(); ++r)
    for (int c = 1; c < v.cols(); ++c) out(r, c) = v(r, c - 1);
  return out;
}

}  // namespace

// Tolerances, relative to the largest value: the stand-in and the CPU differ in the order of
// float additions (per-thread gradient images against one scatter in index order; batches of
// 256 against blocks of 2048 for the loss), in fused multiply-adds, and in the FFT's rounding
// (the stand-in's cuFFT rounds as another algorithm would, host_device.cpp). Measured over 16
// of the CPU's FFTW_MEASURE plan choices: the gradient within 2e-7 of its largest value for the
// intensity loss and 3.3e-6 for the amplitude loss (whose dL/dPsi* divides by |Psi|, so that
// dim far-field elements pass the FFT's rounding on, amplified), the loss within 3e-8. So 1e-5
// and 1e-6, while V one column off moves the gradient by 6 % of its largest value.
TEST_CASE("host stand-in: CudaReconstructor's loss and gradient are the CPU's", "[host_device]") {
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    INFO(loss_name(loss));
    auto e = synthetic_experiment(6.0, 40, loss);
    CpuReconstructor cpu(e.config);
    CudaReconstructor cuda(e.config);
    REQUIRE(cpu.add_frames(e.frames).ok());
    REQUIRE(cuda.add_frames(e.frames).ok());
    const RealImage v = wavy_phase(e.config.object);
    double cpu_loss = 0, cuda_loss = 0;
    RealImage cpu_gradient, cuda_gradient;
    REQUIRE(cpu.loss_and_gradient(v, &cpu_loss, &cpu_gradient).ok());
    REQUIRE(cuda.loss_and_gradient(v, &cuda_loss, &cuda_gradient).ok());
    const double scale = max_abs(cpu_gradient);
    REQUIRE(scale > 0);
    CHECK(cuda_loss == Approx(cpu_loss).epsilon(1e-6));
    const double difference = max_abs_difference(cuda_gradient, cpu_gradient);
    CHECK(difference <= 1e-5 * scale);

    double shifted_loss = 0;
    RealImage shifted_gradient;
    REQUIRE(cuda.loss_and_gradient(shifted_one_column(v), &shifted_loss, &shifted_gradient).ok());
    const double shifted = max_abs_difference(shifted_gradient, cpu_gradient);
    CHECK(shifted > 1e-2 * scale);
  }
}

// A 32 px detector in the 64 px window with a few pixels masked out, as the paper's detector
// geometry and a real detector's dead pixels use it: the weights' upload and the body's lookup
// of each element's detector pixel, on the stand-in, against the CPU, within the tolerances of
// the case above.
TEST_CASE("host stand-in: a detector smaller than the window, partly masked, is the CPU's",
          "[host_device]") {
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    INFO(loss_name(loss));
    auto e = synthetic_experiment(6.0, 40, loss, 4000.0, 1, 32);
    e.config.detector_mask.assign(32 * 32, 1.0f);
    for (int k = 0; k < 32 * 32; k += 37) e.config.detector_mask[k] = 0.0f;
    CpuReconstructor cpu(e.config);
    CudaReconstructor cuda(e.config);
    REQUIRE(cpu.add_frames(e.frames).ok());
    REQUIRE(cuda.add_frames(e.frames).ok());
    const RealImage v = wavy_phase(e.config.object);
    double cpu_loss = 0, cuda_loss = 0;
    RealImage cpu_gradient, cuda_gradient;
    REQUIRE(cpu.loss_and_gradient(v, &cpu_loss, &cpu_gradient).ok());
    REQUIRE(cuda.loss_and_gradient(v, &cuda_loss, &cuda_gradient).ok());
    const double scale = max_abs(cpu_gradient);
    REQUIRE(scale > 0);
    CHECK(cuda_loss == Approx(cpu_loss).epsilon(1e-6));
    CHECK(max_abs_difference(cuda_gradient, cpu_gradient) <= 1e-5 * scale);

    // The unmasked CPU differs by far more, so the comparison can fail.
    ReconstructorConfig unmasked = e.config;
    unmasked.detector_mask.clear();
    CpuReconstructor plain(unmasked);
    REQUIRE(plain.add_frames(e.frames).ok());
    double plain_loss = 0;
    RealImage plain_gradient;
    REQUIRE(plain.loss_and_gradient(v, &plain_loss, &plain_gradient).ok());
    CHECK(max_abs_difference(plain_gradient, cpu_gradient) > 1e-3 * scale);

    REQUIRE(cpu.iterate(10).ok());
    REQUIRE(cuda.iterate(10).ok());
    const Potential expected = cpu.snapshot(), got = cuda.snapshot();
    CHECK(max_abs_difference(got.phase_rad, expected.phase_rad) <= 1e-5 * max_abs(expected.phase_rad));
    REQUIRE(got.loss_history.size() == expected.loss_history.size());
    for (std::size_t k = 0; k < got.loss_history.size(); ++k)
      CHECK(got.loss_history[k] == Approx(expected.loss_history[k]).epsilon(1e-5));
  }
}

// The weighted path with every weight 1 is the unweighted one bit for bit on the stand-in too.
TEST_CASE("host stand-in: a mask of all measured pixels changes no bit", "[host_device]") {
  auto e = synthetic_experiment(6.0, 40, Loss::kAmplitude);
  ReconstructorConfig ones = e.config;
  ones.detector_mask.assign(64 * 64, 1.0f);
  CudaReconstructor plain(e.config), weighted(ones);
  REQUIRE(plain.add_frames(e.frames).ok());
  REQUIRE(weighted.add_frames(e.frames).ok());
  REQUIRE(plain.iterate(5).ok());
  REQUIRE(weighted.iterate(5).ok());
  const Potential a = plain.snapshot(), b = weighted.snapshot();
  CHECK(max_abs_difference(a.phase_rad, b.phase_rad) == 0.0);
  CHECK(a.loss_history == b.loss_history);
}

// After k steps the potentials differ by the gradient's rounding, passed on by each step.
// Measured over 16 of the CPU's FFTW_MEASURE plan choices: V within 3.2e-7 of its largest value
// after one step and 8.3e-7 after ten, the losses within 4e-7. The tolerances, 1e-5 for V and
// the losses, are over 10 times that. (Before the amplitude loss's floor, amplitude_gradient.hpp,
// V after one amplitude step from V = 0 differed by up to 18 % of its largest value, as the
// CPU's planner picked one FFT algorithm or another.)
TEST_CASE("host stand-in: one and ten iterations are the CPU's", "[host_device]") {
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    auto e = synthetic_experiment(6.0, 40, loss);
    for (int iterations : {1, 10}) {
      INFO(loss_name(loss) << ", " << iterations << " iterations");
      CpuReconstructor cpu(e.config);
      CudaReconstructor cuda(e.config);
      REQUIRE(cpu.add_frames(e.frames).ok());
      REQUIRE(cuda.add_frames(e.frames).ok());
      REQUIRE(cpu.iterate(iterations).ok());
      REQUIRE(cuda.iterate(iterations).ok());
      const Potential expected = cpu.snapshot();
      const Potential got = cuda.snapshot();
      const double difference = max_abs_difference(got.phase_rad, expected.phase_rad);
      CHECK(difference <= 1e-5 * max_abs(expected.phase_rad));
      REQUIRE(got.loss_history.size() == expected.loss_history.size());
      for (std::size_t k = 0; k < got.loss_history.size(); ++k)
        CHECK(got.loss_history[k] == Approx(expected.loss_history[k]).epsilon(1e-5));
      CHECK(got.iterations == expected.iterations);
    }
  }
}

// The priors' step is one element function on both backends (prior_step.hpp); this checks the
// CUDA path's buffers, the dark-weight upload and the copy back, with every prior on, within the
// tolerance of the case above.
TEST_CASE("host stand-in: iterations with every prior are the CPU's", "[host_device]") {
  const auto runs =
      testing::run_with_every_prior<CudaReconstructor>(synthetic_experiment(6.0, 40, Loss::kAmplitude));
  CHECK(max_abs_difference(runs.cuda, runs.cpu) <= 1e-5 * max_abs(runs.cpu));
  // The priors changed the result by far more than that tolerance.
  CHECK(max_abs_difference(runs.cpu_without_priors, runs.cpu) > 1e-2 * max_abs(runs.cpu));
}

TEST_CASE("host stand-in: iterate() allocates nothing and replays one graph per iteration",
          "[host_device]") {
  auto e = synthetic_experiment(6.0, 20, Loss::kAmplitude);
  CudaReconstructor cuda(e.config);
  REQUIRE(cuda.add_frames(e.frames).ok());
  REQUIRE(cuda.iterate(1).ok());  // captures the graph
  REQUIRE(cuda.uses_graph());
  host_device::reset_counters();
  REQUIRE(cuda.iterate(130).ok());
  const host_device::Counters c = host_device::counters();
  CHECK(c.allocations == 0);
  CHECK(c.graph_launches == 130);
  // Clearing the flags once, then per 64 iterations the loss slot and the copy of the losses.
  CHECK(c.queued_outside_graphs == 1 + 3 * 2);
  CHECK(c.refused_during_capture == 0);
  CHECK(c.out_of_bounds == 0);
  CHECK(cuda.snapshot().loss_history.size() == 131);
}

TEST_CASE("host stand-in: without graph capture the same iterations run launch by launch",
          "[host_device]") {
  auto e = synthetic_experiment(6.0, 20, Loss::kIntensity);
  CudaReconstructor with_graph(e.config);
  REQUIRE(with_graph.add_frames(e.frames).ok());
  REQUIRE(with_graph.iterate(7).ok());
  CHECK(with_graph.uses_graph());

  host_device::set_graph_capture_supported(false);
  CudaReconstructor without(e.config);
  REQUIRE(without.add_frames(e.frames).ok());
  REQUIRE(without.iterate(7).ok());
  host_device::set_graph_capture_supported(true);
  CHECK_FALSE(without.uses_graph());
  const double difference = max_abs_difference(without.snapshot().phase_rad, with_graph.snapshot().phase_rad);
  CHECK(difference == 0.0);  // the same host loops in the same order
  CHECK(without.snapshot().loss_history == with_graph.snapshot().loss_history);
}

TEST_CASE("host stand-in: frames in many small calls stay inside the growing buffers",
          "[host_device]") {
  auto e = synthetic_experiment(12.0, 150, Loss::kAmplitude);
  CpuReconstructor cpu(e.config);
  CudaReconstructor cuda(e.config);
  host_device::reset_counters();
  std::span<const Frame> all(e.frames);
  for (std::size_t first = 0; first < all.size(); first += 7) {
    const auto part = all.subspan(first, std::min<std::size_t>(7, all.size() - first));
    REQUIRE(cpu.add_frames(part).ok());
    REQUIRE(cuda.add_frames(part).ok());
    REQUIRE(cpu.iterate(2).ok());
    REQUIRE(cuda.iterate(2).ok());
  }
  CHECK(host_device::counters().out_of_bounds == 0);
  CHECK(host_device::counters().refused_during_capture == 0);
  const Potential expected = cpu.snapshot();
  const double difference = max_abs_difference(cuda.snapshot().phase_rad, expected.phase_rad);
  CHECK(difference <= 1e-4 * max_abs(expected.phase_rad));
  CHECK(cuda.snapshot().frames == 150);
}

// The daemon tells the reconstructor the session's position budget: adding the frames of each
// sub-sequence then allocates nothing on the device and makes no FFT plan, on the decision path.
TEST_CASE("host stand-in: with the frames expected, adding them allocates and plans nothing",
          "[host_device]") {
  auto e = synthetic_experiment(12.0, 150, Loss::kAmplitude);
  for (int expected : {0, 150}) {
    INFO("expected_frames " << expected);
    ReconstructorConfig config = e.config;
    config.expected_frames = expected;
    CpuReconstructor cpu(config);
    CudaReconstructor cuda(config);
    host_device::reset_counters();
    std::span<const Frame> all(e.frames);
    for (std::size_t first = 0; first < all.size(); first += 30) {
      REQUIRE(cpu.add_frames(all.subspan(first, 30)).ok());
      REQUIRE(cuda.add_frames(all.subspan(first, 30)).ok());
      REQUIRE(cpu.iterate(2).ok());
      REQUIRE(cuda.iterate(2).ok());
    }
    const host_device::Counters c = host_device::counters();
    if (expected == 0) {
      // Without the hint the buffers grow and the FFT chunks are planned as they are reached.
      CHECK(c.allocations > 0);
      CHECK(c.fft_plans > 0);
    } else {
      CHECK(c.allocations == 0);
      CHECK(c.fft_plans == 0);
    }
    CHECK(c.out_of_bounds == 0);
    const RealImage& reference = cpu.snapshot().phase_rad;
    CHECK(max_abs_difference(cuda.snapshot().phase_rad, reference) <= 1e-4 * max_abs(reference));
  }
}

// A step so large that V becomes infinite: the next loss is NaN, and both backends stop there,
// return the same error and keep the same history; a later call fails at once, as on the CPU.
TEST_CASE("host stand-in: a divergent step stops the iterations as on the CPU", "[host_device]") {
  auto e = synthetic_experiment(6.0, 20, Loss::kIntensity);
  e.config.step_size = 1e300;
  CpuReconstructor cpu(e.config);
  CudaReconstructor cuda(e.config);
  REQUIRE(cpu.add_frames(e.frames).ok());
  REQUIRE(cuda.add_frames(e.frames).ok());
  const Status a = cpu.iterate(5), b = cuda.iterate(5);
  REQUIRE_FALSE(a.ok());
  CHECK(b.code() == a.code());
  CHECK(b.message() == a.message());
  const auto expected = cpu.snapshot().loss_history;
  REQUIRE(expected.size() == 1);
  REQUIRE(cuda.snapshot().loss_history.size() == 1);
  CHECK(cuda.snapshot().loss_history[0] == Approx(expected[0]).epsilon(1e-6));
  CHECK(cuda.snapshot().iterations == cpu.snapshot().iterations);
  const Status again_cpu = cpu.iterate(1), again_cuda = cuda.iterate(1);
  CHECK_FALSE(again_cpu.ok());
  CHECK(again_cuda.message() == again_cpu.message());
  CHECK(cuda.snapshot().loss_history.size() == 1);
}

}  // namespace ptypilot
