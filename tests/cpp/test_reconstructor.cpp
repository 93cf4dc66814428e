#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/cuda_support.hpp"
#include "ptypilot/detector.hpp"
#include "ptypilot/fft.hpp"
#include "ptypilot/simulator.hpp"

using namespace ptypilot;

namespace {

// Keeps spatial frequencies up to k_max (1/A): what the probe can transfer.
RealImage low_pass(const RealImage& image, double pixel_A, double k_max) {
  ComplexImage f(image.rows(), image.cols());
  for (std::size_t i = 0; i < image.size(); ++i) f.data()[i] = image.data()[i];
  forward_fft_unitary(f);
  for (int i = 0; i < f.rows(); ++i) {
    const int fy = i < f.rows() / 2 ? i : i - f.rows();
    for (int j = 0; j < f.cols(); ++j) {
      const int fx = j < f.cols() / 2 ? j : j - f.cols();
      const double k = std::hypot(fy / (f.rows() * pixel_A), fx / (f.cols() * pixel_A));
      if (k > k_max) f(i, j) = 0;
    }
  }
  inverse_fft_unitary(f);
  RealImage out(image.rows(), image.cols());
  for (std::size_t i = 0; i < image.size(); ++i) out.data()[i] = f.data()[i].real();
  return out;
}

// Pearson correlation over the rectangle [r0, r1) x [c0, c1).
double correlation(const RealImage& a, const RealImage& b, int r0, int r1, int c0, int c1) {
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, n = 0;
  for (int r = r0; r < r1; ++r)
    for (int c = c0; c < c1; ++c) {
      sa += a(r, c), sb += b(r, c), saa += a(r, c) * a(r, c), sbb += b(r, c) * b(r, c);
      sab += a(r, c) * b(r, c), n += 1;
    }
  const double cov = sab / n - sa / n * sb / n;
  return cov / std::sqrt((saa / n - sa * sa / n / n) * (sbb / n - sb * sb / n / n));
}

struct Experiment {
  sim::SimulatedSpecimen specimen;
  std::vector<Vec2> positions;
  std::vector<float> counts;
  std::vector<Frame> frames;
};

Experiment simulate(const sim::ExperimentPreset& preset, std::vector<Vec2> positions,
                    double dose = 0.0) {
  Experiment e{sim::simulate_specimen(preset, 7), std::move(positions), {}, {}};
  const std::size_t nn = std::size_t(preset.probe.detector_side_px()) * preset.probe.detector_side_px();
  sim::FrameSimulator simulator(e.specimen, dose, 3);
  e.counts.resize(e.positions.size() * nn);
  REQUIRE(simulator.frames(e.positions, e.counts).ok());
  // A realistic count scale for the noise-free case too.
  if (dose <= 0)
    for (float& v : e.counts) v *= 4000.0f;
  for (std::size_t p = 0; p < e.positions.size(); ++p)
    e.frames.push_back({p, e.positions[p], {e.counts.data() + p * nn, nn}});
  return e;
}

ReconstructorConfig config_for(const sim::ExperimentPreset& preset, Loss loss) {
  ReconstructorConfig c;
  c.backend = "cpu";
  c.probe = preset.probe;
  c.object = preset.object_grid();
  c.loss = loss;
  return c;
}

}  // namespace

TEST_CASE("the analytic gradient matches central finite differences", "[reconstructor]") {
  const auto& preset = sim::experiment_preset("graphene-small");
  Experiment e = simulate(preset, sparse_grid_positions(40, preset.scan_rows, preset.scan_cols,
                                                        preset.step_A));
  for (Loss loss : {Loss::kIntensity, Loss::kAmplitude}) {
    CpuReconstructor rec(config_for(preset, loss));
    REQUIRE(rec.add_frames(e.frames).ok());
    // Evaluate away from the optimum, where the gradient is large.
    RealImage v(preset.object_grid().rows, preset.object_grid().cols);
    for (int r = 0; r < v.rows(); ++r)
      for (int c = 0; c < v.cols(); ++c) v(r, c) = 0.3f * std::sin(0.21f * r) * std::cos(0.17f * c);
    double loss0 = 0;
    RealImage grad;
    REQUIRE(rec.loss_and_gradient(v, &loss0, &grad).ok());
    const float h = 2e-3f;
    for (auto [r, c] : {std::pair{60, 60}, {70, 81}, {90, 55}, {50, 100}}) {
      RealImage vp = v, vm = v;
      vp(r, c) += h;
      vm(r, c) -= h;
      double lp = 0, lm = 0;
      RealImage unused;
      REQUIRE(rec.loss_and_gradient(vp, &lp, &unused).ok());
      REQUIRE(rec.loss_and_gradient(vm, &lm, &unused).ok());
      const double numeric = (lp - lm) / (2 * h);
      INFO("pixel " << r << "," << c << " loss " << int(loss));
      CHECK(grad(r, c) == Approx(numeric).epsilon(2e-2).margin(1e-3 * std::abs(loss0)));
    }
  }
}

TEST_CASE("noise-free full-grid MoS2 is recovered and the loss falls", "[reconstructor][slow]") {
  const auto& preset = sim::experiment_preset("mos2-paper");
  Experiment e = simulate(preset, raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A));
  CpuReconstructor rec(config_for(preset, Loss::kIntensity));
  REQUIRE(rec.add_frames(e.frames).ok());
  REQUIRE(rec.iterate(25).ok());
  const Potential result = rec.snapshot();
  REQUIRE(result.loss_history.size() == 25);
  CHECK(result.loss_history.back() < 0.05 * result.loss_history.front());
  for (std::size_t i = 1; i < result.loss_history.size(); ++i)
    CHECK(result.loss_history[i] <= result.loss_history[i - 1]);

  // The probe transfers spatial frequencies up to 2 alpha / lambda; compare there, inside the FOV.
  const double k_max = 2 * preset.probe.semiangle_mrad * 1e-3 / wavelength_A(preset.probe.energy_keV);
  const ObjectGrid g = preset.object_grid();
  const RealImage truth = low_pass(e.specimen.phase_rad, g.pixel_A, k_max);
  const RealImage recon = low_pass(result.phase_rad, g.pixel_A, k_max);
  const int r0 = static_cast<int>(g.fov_origin_A.y / g.pixel_A);
  const int r1 = r0 + static_cast<int>(g.fov_height_A / g.pixel_A);
  const double corr = correlation(truth, recon, r0, r1, r0, r1);
  INFO("correlation with the band-limited true phase: " << corr);
  CHECK(corr >= 0.9);
}

TEST_CASE("warm start from the true potential starts at the optimum", "[reconstructor]") {
  const auto& preset = sim::experiment_preset("graphene-small");
  Experiment e = simulate(preset, raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A));
  CpuReconstructor cold(config_for(preset, Loss::kAmplitude));
  CpuReconstructor warm(config_for(preset, Loss::kAmplitude));
  REQUIRE(cold.add_frames(e.frames).ok());
  REQUIRE(warm.add_frames(e.frames).ok());
  REQUIRE(warm.set_potential(e.specimen.phase_rad).ok());
  REQUIRE(cold.iterate(1).ok());
  REQUIRE(warm.iterate(1).ok());
  CHECK(warm.snapshot().loss_history[0] < 1e-6 * cold.snapshot().loss_history[0]);
}

TEST_CASE("the amplitude loss recovers the phase from noisy data", "[reconstructor]") {
  const auto& preset = sim::experiment_preset("graphene-small");
  Experiment e = simulate(preset, raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A),
                          2e4);
  CpuReconstructor rec(config_for(preset, Loss::kAmplitude));
  REQUIRE(rec.add_frames(e.frames).ok());
  REQUIRE(rec.iterate(15).ok());
  const Potential result = rec.snapshot();
  // With Poisson noise the loss floor is the noise itself, so judge the phase, not the loss.
  for (std::size_t i = 1; i < result.loss_history.size(); ++i)
    CHECK(result.loss_history[i] <= result.loss_history[i - 1]);
  const double k_max = 2 * preset.probe.semiangle_mrad * 1e-3 / wavelength_A(preset.probe.energy_keV);
  const ObjectGrid g = preset.object_grid();
  const int r0 = static_cast<int>(g.fov_origin_A.y / g.pixel_A);
  const int r1 = r0 + static_cast<int>(g.fov_height_A / g.pixel_A);
  const double corr = correlation(low_pass(e.specimen.phase_rad, g.pixel_A, k_max),
                                  low_pass(result.phase_rad, g.pixel_A, k_max), r0, r1, r0, r1);
  INFO("correlation " << corr);
  CHECK(corr >= 0.8);
}

TEST_CASE("bad frames get a clear error and nothing is stored", "[reconstructor]") {
  const auto& preset = sim::experiment_preset("graphene-small");
  Experiment e = simulate(preset, sparse_grid_positions(8, preset.scan_rows, preset.scan_cols,
                                                        preset.step_A));
  CpuReconstructor rec(config_for(preset, Loss::kIntensity));

  // Frames over a copy of the counts, so that the good frames stay good for the end.
  std::vector<float> counts = e.counts;
  std::vector<Frame> frames = e.frames;
  for (std::size_t p = 0; p < frames.size(); ++p) frames[p].counts = {counts.data() + p * 4096, 4096};

  SECTION("empty list") {
    const Status s = rec.add_frames({});
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("no frames"));
  }
  SECTION("pattern shape does not match the probe") {
    frames[3].counts = frames[3].counts.first(32 * 32);
    const Status s = rec.add_frames(frames);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("frame 3") && Catch::Contains("64 x 64"));
  }
  SECTION("NaN counts") {
    counts[2 * 4096 + 100] = NAN;
    const Status s = rec.add_frames(frames);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("frame 2") && Catch::Contains("NaN"));
  }
  SECTION("negative counts") {
    counts[5 * 4096 + 7] = -1.0f;
    const Status s = rec.add_frames(frames);
    CHECK_THAT(s.message(), Catch::Contains("frame 5") && Catch::Contains("negative"));
  }
  SECTION("position outside the object") {
    frames[6].position_A = {-50.0, 3.0};
    const Status s = rec.add_frames(frames);
    CHECK(s.code() == StatusCode::kOutOfRange);
    CHECK_THAT(s.message(), Catch::Contains("frame 6"));
  }
  CHECK(rec.snapshot().frames == 0);
  CHECK(rec.iterate(1).code() == StatusCode::kFailedPrecondition);
  CHECK(rec.add_frames(e.frames).ok());  // the good frames still go in afterwards
  CHECK(rec.snapshot().frames == e.frames.size());
}

TEST_CASE("the reconstructor factory selects and rejects backends", "[reconstructor]") {
  ReconstructorConfig c = config_for(sim::experiment_preset("graphene-small"), Loss::kIntensity);
  c.backend = "auto";
  const BackendChoice automatic = choose_backend("auto");
  CHECK(automatic.backend == (cuda_support().available ? "cuda" : "cpu"));
  CHECK_THAT(automatic.reason, Catch::Contains(cuda_support().reason));
  CHECK(make_reconstructor(c)->backend() == automatic.backend);
  CHECK(choose_backend("cpu").backend == "cpu");
  c.backend = "cuda";
  if (cuda_support().available) {
    CHECK(make_reconstructor(c)->backend() == "cuda");
  } else {
    // Not built, or built with no device: either way the error says which.
    CHECK_THROWS_AS(make_reconstructor(c), std::runtime_error);
    CHECK_THROWS_WITH(make_reconstructor(c),
                      Catch::Contains("backend 'cuda' is not available") &&
                          Catch::Contains(cuda_support().reason));
    if (cuda_support().built) CHECK_THAT(cuda_support().reason, Catch::Contains("cudaGetDeviceCount"));
  }
  c.backend = "tpu";
  CHECK_THROWS_WITH(make_reconstructor(c), Catch::Contains("unknown reconstructor backend"));
  c.backend = "cpu";
  c.object.pixel_A *= 1.1;
  CHECK_THROWS_WITH(make_reconstructor(c), Catch::Contains("does not match the detector sampling"));
}

namespace {

// 60 of graphene-small's raster positions, evenly spread: sparse enough that the gaps between
// them are under-determined, where the priors act.
struct SparseRun {
  RealImage phase;
  RealImage illumination_weight;  // 1 - W / max W: 0 where lit best, 1 where no probe reaches
};

SparseRun reconstruct_sparse(PriorConfig priors, int iterations = 15) {
  const auto& preset = sim::experiment_preset("graphene-small");
  static const Experiment e = simulate(
      preset, sparse_grid_positions(60, preset.scan_rows, preset.scan_cols, preset.step_A), 2e4);
  ReconstructorConfig c = config_for(preset, Loss::kAmplitude);
  c.priors = priors;
  CpuReconstructor rec(c);
  REQUIRE(rec.add_frames(e.frames).ok());
  REQUIRE(rec.iterate(iterations).ok());
  // W(r), the unit probes' intensity summed over the positions.
  RealImage w(c.object.rows, c.object.cols);
  const int n = rec.forward_model().window_px();
  for (const ProbePlacement& p : rec.placements()) {
    const std::complex<float>* probe = rec.forward_model().shifted_probe(p.probe);
    for (int r = 0; r < n; ++r)
      for (int col = 0; col < n; ++col) w(p.top + r, p.left + col) += std::norm(probe[r * n + col]);
  }
  const float max_w = *std::max_element(w.vector().begin(), w.vector().end());
  SparseRun run{rec.snapshot().phase_rad, RealImage(c.object.rows, c.object.cols)};
  for (std::size_t i = 0; i < w.size(); ++i)
    run.illumination_weight.data()[i] = 1.0f - w.data()[i] / max_w;
  return run;
}

// sum |V(r+1,c) - V(r,c)| + |V(r,c+1) - V(r,c)| over the pixels where `where` > threshold.
double roughness(const RealImage& v, const RealImage& where, float threshold) {
  double sum = 0;
  for (int r = 0; r + 1 < v.rows(); ++r)
    for (int c = 0; c + 1 < v.cols(); ++c)
      if (where(r, c) > threshold)
        sum += std::abs(v(r + 1, c) - v(r, c)) + std::abs(v(r, c + 1) - v(r, c));
  return sum;
}

}  // namespace

TEST_CASE("positivity keeps V >= 0, and without it sparse data drive V negative",
          "[reconstructor][priors]") {
  const SparseRun free = reconstruct_sparse({.positivity = false});
  const SparseRun positive = reconstruct_sparse({.positivity = true});
  const auto [free_min, free_max] = std::minmax_element(free.phase.vector().begin(), free.phase.vector().end());
  CHECK(*free_min < -0.05f * *free_max);
  CHECK(*std::min_element(positive.phase.vector().begin(), positive.phase.vector().end()) >= 0.0f);
}

TEST_CASE("dark smoothing flattens the weakly lit gaps and leaves the lit regions",
          "[reconstructor][priors]") {
  const SparseRun plain = reconstruct_sparse({.positivity = false});
  const SparseRun smooth = reconstruct_sparse({.positivity = false, .dark_smoothing = 0.2});
  const double dark_before = roughness(plain.phase, plain.illumination_weight, 0.9f);
  const double dark_after = roughness(smooth.phase, plain.illumination_weight, 0.9f);
  INFO("roughness where W < 0.1 max W: " << dark_before << " -> " << dark_after);
  CHECK(dark_after < 0.7 * dark_before);
  // Where the data decide, diffusion is off: the image changes by little there.
  double lit_difference = 0, lit_scale = 0;
  for (std::size_t i = 0; i < plain.phase.size(); ++i) {
    if (plain.illumination_weight.data()[i] > 0.1f) continue;
    lit_difference = std::max<double>(lit_difference, std::abs(smooth.phase.data()[i] - plain.phase.data()[i]));
    lit_scale = std::max<double>(lit_scale, std::abs(plain.phase.data()[i]));
  }
  INFO("largest change where W > 0.9 max W: " << lit_difference << " of " << lit_scale);
  CHECK(lit_difference < 0.2 * lit_scale);
}

TEST_CASE("total variation lowers the image's total variation", "[reconstructor][priors]") {
  const SparseRun plain = reconstruct_sparse({.positivity = false});
  const SparseRun tv = reconstruct_sparse({.positivity = false, .total_variation = 0.004});
  const RealImage everywhere(plain.phase.rows(), plain.phase.cols(), 1.0f);
  const double before = roughness(plain.phase, everywhere, 0.5f);
  const double after = roughness(tv.phase, everywhere, 0.5f);
  INFO("total variation " << before << " -> " << after);
  CHECK(after < 0.9 * before);
}

TEST_CASE("sparsity soft-thresholds V after each step", "[reconstructor][priors]") {
  // From V = 0 the first descent step is the same with and without the prior, so the prior's
  // result must be that step's V shrunk towards zero by the threshold, exactly.
  const auto& preset = sim::experiment_preset("graphene-small");
  const Experiment e = simulate(
      preset, sparse_grid_positions(60, preset.scan_rows, preset.scan_cols, preset.step_A), 2e4);
  ReconstructorConfig c = config_for(preset, Loss::kAmplitude);
  c.priors = {.positivity = false};
  CpuReconstructor plain(c);
  constexpr float kThreshold = 0.01f;
  c.priors.sparsity = kThreshold;
  CpuReconstructor sparse(c);
  for (CpuReconstructor* r : {&plain, &sparse}) {
    REQUIRE(r->add_frames(e.frames).ok());
    REQUIRE(r->iterate(1).ok());
  }
  const RealImage& before = plain.snapshot().phase_rad;
  const RealImage& after = sparse.snapshot().phase_rad;
  int above = 0, below = 0, inside = 0;
  for (std::size_t i = 0; i < before.size(); ++i) {
    const float v = before.data()[i];
    const float expected = v > kThreshold ? v - kThreshold : (v < -kThreshold ? v + kThreshold : 0.0f);
    REQUIRE(after.data()[i] == expected);
    above += v > kThreshold;
    below += v < -kThreshold;
    inside += std::abs(v) <= kThreshold;
  }
  // Every branch of the threshold was taken.
  CHECK(above > 0);
  CHECK(below > 0);
  CHECK(inside > 0);
}

TEST_CASE("prior weights beyond the stable step are refused", "[reconstructor][priors]") {
  const auto& preset = sim::experiment_preset("graphene-small");
  ReconstructorConfig c = config_for(preset, Loss::kAmplitude);
  c.priors.dark_smoothing = kMaxDarkSmoothing * 1.01;
  CHECK_THROWS_WITH(CpuReconstructor(c), Catch::Contains("dark_smoothing must be in [0, 0.25"));
  c.priors.dark_smoothing = 0;
  c.priors.total_variation = -0.01;
  CHECK_THROWS_WITH(CpuReconstructor(c), Catch::Contains("total_variation must be in [0"));
  c.priors.total_variation = 0;
  c.priors.sparsity = kMaxSparsity * 1.01;
  CHECK_THROWS_WITH(CpuReconstructor(c), Catch::Contains("sparsity must be in [0, 0.1"));
}

TEST_CASE("the same frames give the same bits, on any number of threads", "[reconstructor]") {
  // Scores are compared across runs and machines, so a reconstruction may not depend on which
  // thread took which patterns. 205 positions: the last batch of 16 is a partial one.
  const auto& preset = sim::experiment_preset("graphene-small");
  std::vector<Vec2> raster = raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A);
  std::vector<Vec2> positions;
  for (std::size_t p = 0; p < raster.size(); p += 5) positions.push_back(raster[p]);
  REQUIRE(positions.size() % 16 != 0);
  Experiment e = simulate(preset, positions, 1e5);
  const auto run = [&](int threads) {
    ReconstructorConfig c = config_for(preset, Loss::kAmplitude);
    c.threads = threads;
    CpuReconstructor rec(c);
    REQUIRE(rec.add_frames(e.frames).ok());
    REQUIRE(rec.iterate(4).ok());
    return rec.snapshot();
  };
  const Potential first = run(2);
  for (int threads : {2, 2, 2, 1, 3}) {
    const Potential again = run(threads);
    INFO(threads << " threads");
    REQUIRE(again.phase_rad.size() == first.phase_rad.size());
    CHECK(std::memcmp(again.phase_rad.data(), first.phase_rad.data(),
                      first.phase_rad.size() * sizeof(float)) == 0);
    CHECK(again.loss_history == first.loss_history);
  }
}

// The paper's detector (presets.hpp): the simulator models the far field on the 192 px window's
// grid and the detector keeps its central 64 x 64, the frequencies -32 .. 31 at 1.68 mrad.
TEST_CASE("mos2-paper-detector frames are the central 64 x 64 of the window's far field",
          "[simulator]") {
  const sim::ExperimentPreset& preset = sim::experiment_preset("mos2-paper-detector");
  CHECK(preset.probe.window_px == 192);
  CHECK(preset.probe.detector_side_px() == 64);
  CHECK(real_space_pixel_A(preset.probe) == Approx(0.151).margin(0.001));
  const sim::SimulatedSpecimen specimen = sim::simulate_specimen(preset, 5);
  const std::vector<Vec2> positions = {{0.0, 0.0}, {7.3, 11.1}, {19.8, 19.8}};
  sim::FrameSimulator simulator(specimen, 0.0, 1);
  std::vector<float> frames(positions.size() * 64 * 64);
  REQUIRE(simulator.frames(positions, frames).ok());
  ForwardModel model(preset.probe, specimen.grid);
  std::vector<float> window(positions.size() * 192 * 192);
  REQUIRE(model.intensities(specimen.phase_rad, positions, window).ok());
  for (std::size_t p = 0; p < positions.size(); ++p) {
    INFO("position " << p);
    double caught = 0.0;
    for (int i = 0; i < 64; ++i)
      for (int j = 0; j < 64; ++j) {
        // fftshift-ed, the detector's (i, j) is the window's (i + 64, j + 64).
        const int wi = (i + 32) % 64 - 32, wj = (j + 32) % 64 - 32;
        const float expected = window[p * 192 * 192 + ((wi + 192) % 192) * 192 + (wj + 192) % 192];
        CHECK(frames[p * 64 * 64 + i * 64 + j] == expected);
        caught += frames[p * 64 * 64 + i * 64 + j];
      }
    // The bright field (33 mrad) is on the detector; only what MoS2 scatters beyond 54 mrad is
    // not: 0.5 % on average, at most 2 % (measured over 20 positions).
    CHECK(caught < 1.0);
    CHECK(caught > 0.95);
  }
  // The wrong size is refused.
  std::vector<float> too_large(192 * 192);
  CHECK_FALSE(simulator.frames(std::span<const Vec2>(positions.data(), 1), too_large).ok());
}

TEST_CASE("a detector mask set before the first frame is the one given at construction",
          "[reconstructor]") {
  // A detector's own bad-pixel mask comes with its series header, after the session made the
  // reconstructor: set_detector_mask must then do what ReconstructorConfig::detector_mask does.
  const auto& preset = sim::experiment_preset("graphene-small");
  std::vector<Vec2> raster = raster_positions(preset.scan_rows, preset.scan_cols, preset.step_A);
  std::vector<Vec2> positions;
  for (std::size_t p = 0; p < raster.size(); p += 9) positions.push_back(raster[p]);
  Experiment e = simulate(preset, positions, 1e5);
  const int d = preset.probe.detector_side_px();
  std::vector<float> mask(std::size_t(d) * d, 1.0f);
  mask[3 * d + 5] = 0.0f;
  mask[d + 2] = 0.0f;
  ReconstructorConfig made_with = config_for(preset, Loss::kAmplitude);
  made_with.detector_mask = mask;
  CpuReconstructor a(made_with);
  CpuReconstructor b(config_for(preset, Loss::kAmplitude));
  CHECK(b.set_detector_mask(std::vector<float>(7, 1.0f)).code() == StatusCode::kInvalidArgument);
  REQUIRE(b.set_detector_mask(mask).ok());
  for (CpuReconstructor* r : {&a, &b}) {
    REQUIRE(r->add_frames(e.frames).ok());
    REQUIRE(r->iterate(3).ok());
  }
  const Potential pa = a.snapshot(), pb = b.snapshot();
  REQUIRE(pa.phase_rad.size() == pb.phase_rad.size());
  CHECK(std::memcmp(pa.phase_rad.data(), pb.phase_rad.data(), pa.phase_rad.size() * sizeof(float)) == 0);
  CHECK(b.set_detector_mask(mask).code() == StatusCode::kFailedPrecondition);  // frames stored
}
