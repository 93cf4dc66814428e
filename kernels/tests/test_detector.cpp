// The detector inside the reconstruction window (detector.hpp): where its pixels lie, and the
// loss's per-element weights on the CPU. The CUDA bodies' side is in test_cuda_elements.cpp and
// test_host_device.cpp.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <span>

#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/detector.hpp"
#include "ptypilot/frame_store.hpp"
#include "image_comparison.hpp"
#include "synthetic_experiment.hpp"

namespace ptypilot {
namespace {

using testing::synthetic_experiment;
using testing::wavy_phase;

bool same_bits(const RealImage& a, const RealImage& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Evaluation {
  double loss = 0;
  RealImage gradient;
  Potential after;
};

Evaluation evaluate(const ReconstructorConfig& config, std::span<const Frame> frames, int steps) {
  CpuReconstructor r(config);
  REQUIRE(r.add_frames(frames).ok());
  Evaluation out;
  REQUIRE(r.loss_and_gradient(wavy_phase(config.object), &out.loss, &out.gradient).ok());
  REQUIRE(r.iterate(steps).ok());
  out.after = r.snapshot();
  return out;
}

}  // namespace

// The detector keeps the frequencies -D/2 .. D/2 - 1 of the window's: the central D x D of the
// fftshift-ed pattern.
TEST_CASE("the detector's pixels are the window's central frequencies", "[detector]") {
  for (auto [w, d] : {std::pair{16, 16}, std::pair{16, 8}, std::pair{12, 4}, std::pair{192, 64}}) {
    INFO(w << " window, " << d << " detector");
    int on_detector = 0;
    for (int k = 0; k < w; ++k) {
      const int i = detector_axis_index(k, w, d);
      const int shifted = (k + w / 2) % w;  // fftshift: zero frequency at w / 2
      const bool central = shifted >= w / 2 - d / 2 && shifted < w / 2 + d / 2;
      CHECK((i >= 0) == central);
      if (i < 0) continue;
      ++on_detector;
      CHECK(window_axis_index(i, d, w) == k);
      // The detector's own fftshift puts it at the same offset from the centre.
      CHECK((i + d / 2) % d - d / 2 == shifted - w / 2);
    }
    CHECK(on_detector == d);
  }
  std::vector<float> pattern(16 * 16);
  for (std::size_t k = 0; k < pattern.size(); ++k) pattern[k] = float(k);
  std::vector<float> cropped(8 * 8);
  crop_to_detector(pattern, 16, 8, cropped);
  CHECK(cropped[0] == 0.0f);                       // (0, 0)
  CHECK(cropped[3 * 8 + 4] == float(3 * 16 + 12));  // (3, -4)
  CHECK(cropped[7 * 8 + 7] == float(15 * 16 + 15)); // (-1, -1)
}

TEST_CASE("window weights: 0 beyond the detector and where masked, the mask elsewhere",
          "[detector]") {
  std::vector<float> mask(8 * 8, 1.0f);
  mask[2 * 8 + 5] = 0.0f;
  const WindowWeights w = window_weights(16, 8, mask);
  int measured = 0;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) {
      const int dr = detector_axis_index(r, 16, 8), dc = detector_axis_index(c, 16, 8);
      const float expected = dr < 0 || dc < 0 ? 0.0f : mask[dr * 8 + dc];
      CHECK(w.weight[r * 16 + c] == expected);
      if (expected > 0) {
        CHECK(w.detector_pixel[r * 16 + c] == dr * 8 + dc);
        ++measured;
      }
    }
  CHECK(measured == 63);
  CHECK_THROWS_AS(window_weights(16, 8, std::vector<float>(10, 1.0f)), std::invalid_argument);
  CHECK_THROWS_AS(window_weights(16, 8, std::vector<float>(64, -1.0f)), std::invalid_argument);
}

// The weighted loops multiply each residual by its weight; a weight of 1 is exact, so a mask
// with every pixel measured must reproduce the unweighted loops (today's reconstructor) bit for
// bit, gradient and iterations alike.
TEST_CASE("a mask of all measured pixels gives the unweighted reconstruction bit for bit",
          "[detector]") {
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    INFO((loss == Loss::kAmplitude ? "amplitude" : "intensity"));
    auto e = synthetic_experiment(6.0, 40, loss);
    ReconstructorConfig ones = e.config;
    ones.detector_mask.assign(64 * 64, 1.0f);
    const Evaluation plain = evaluate(e.config, e.frames, 5);
    const Evaluation weighted = evaluate(ones, e.frames, 5);
    CHECK(weighted.loss == plain.loss);
    CHECK(same_bits(weighted.gradient, plain.gradient));
    CHECK(same_bits(weighted.after.phase_rad, plain.after.phase_rad));
    CHECK(weighted.after.loss_history == plain.after.loss_history);
    // And one masked pixel does change it, so the comparison can fail.
    ones.detector_mask[3 * 64 + 2] = 0.0f;
    CHECK_FALSE(same_bits(evaluate(ones, e.frames, 0).gradient, plain.gradient));
  }
}

// A 32 px detector in a 64 px window is a 64 px detector whose pixels beyond the central 32 are
// masked out: the same weights, the same measured values, so the same bits, whatever the masked
// pixels hold.
TEST_CASE("a detector smaller than the window is the window with its outer pixels masked",
          "[detector]") {
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    INFO((loss == Loss::kAmplitude ? "amplitude" : "intensity"));
    auto full = synthetic_experiment(6.0, 30, loss);
    auto small = synthetic_experiment(6.0, 30, loss, 4000.0, 1, 32);
    REQUIRE(small.frames[0].counts.size() == 32u * 32u);
    ReconstructorConfig masked = full.config;
    masked.detector_mask.assign(64 * 64, 0.0f);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> garbage(0.0f, 1e4f);
    for (int r = 0; r < 64; ++r)
      for (int c = 0; c < 64; ++c) {
        const bool on = detector_axis_index(r, 64, 32) >= 0 && detector_axis_index(c, 64, 32) >= 0;
        masked.detector_mask[r * 64 + c] = on ? 1.0f : 0.0f;
        if (!on)
          for (std::size_t p = 0; p < full.frames.size(); ++p) full.counts[p * 64 * 64 + r * 64 + c] = garbage(rng);
      }
    const Evaluation a = evaluate(small.config, small.frames, 3);
    const Evaluation b = evaluate(masked, full.frames, 3);
    CHECK(a.loss == b.loss);
    CHECK(same_bits(a.gradient, b.gradient));
    CHECK(same_bits(a.after.phase_rad, b.after.phase_rad));
    // Unmeasured angles are free: the loss no longer sees the outer pixels, so it differs from
    // the full detector's.
    const Evaluation whole = evaluate(full.config, full.frames, 0);
    CHECK(whole.loss != a.loss);
  }
}

// FrameStore::add spreads its loops over threads (it runs on the decision path); every sum
// keeps one thread's order, so the stored values are the same bits whatever the thread count,
// and whether the frames come in one call or in sub-sequences.
TEST_CASE("the frame store holds the same bits on any thread count and in any number of calls",
          "[detector]") {
  auto e = synthetic_experiment(19.8, 150, Loss::kAmplitude, 4000.0, 3, 32);
  e.config.detector_mask.assign(32 * 32, 1.0f);
  for (int k = 0; k < 32 * 32; k += 29) e.config.detector_mask[k] = 0.0f;
  e.config.priors.dark_smoothing = 0.2;
  ReconstructorConfig one_thread = e.config;
  one_thread.threads = 1;
  ReconstructorConfig two_threads = e.config;
  two_threads.threads = 2;
  two_threads.expected_frames = 150;
  FrameStore whole(one_thread), parts(two_threads);
  REQUIRE(whole.add(e.frames).ok());
  const std::span<const Frame> all(e.frames);
  for (std::size_t first = 0; first < all.size(); first += 50)
    REQUIRE(parts.add(all.subspan(first, 50)).ok());
  auto same_bits = [](std::span<const float> a, std::span<const float> b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
  };
  CHECK(same_bits(whole.measured(), parts.measured()));
  CHECK(same_bits(whole.step_map().vector(), parts.step_map().vector()));
  CHECK(same_bits(whole.dark_weight().vector(), parts.dark_weight().vector()));
  CHECK(whole.intensity_scale() == parts.intensity_scale());
  // The comparison can fail: one frame fewer changes the step map.
  FrameStore fewer(one_thread);
  REQUIRE(fewer.add(all.first(149)).ok());
  CHECK_FALSE(same_bits(whole.step_map().vector(), fewer.step_map().vector()));
}

}  // namespace ptypilot
