#include "ptypilot/frame_store.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace ptypilot {

Status check_potential(const RealImage& phase, const ObjectGrid& grid) {
  if (phase.rows() != grid.rows || phase.cols() != grid.cols)
    return invalid_argument("potential is " + std::to_string(phase.rows()) + " x " +
                            std::to_string(phase.cols()) + " px, the object grid is " +
                            std::to_string(grid.rows) + " x " + std::to_string(grid.cols));
  for (float v : phase.vector())
    if (!std::isfinite(v)) return invalid_argument("potential contains NaN or infinity");
  return Status::Ok();
}

FrameStore::FrameStore(const ReconstructorConfig& config)
    : config_(config),
      model_(config.probe, config.object),
      detector_px_(config.probe.detector_side_px()),
      illumination_(config.object.rows, config.object.cols),
      step_map_(config.object.rows, config.object.cols) {
  if (!(config.step_size > 0)) throw std::invalid_argument("reconstructor: step_size must be > 0");
  if (!(config.regularization > 0))
    throw std::invalid_argument("reconstructor: regularization must be > 0");
  const PriorConfig& priors = config.priors;
  if (!(priors.dark_smoothing >= 0 && priors.dark_smoothing <= kMaxDarkSmoothing))
    throw std::invalid_argument("reconstructor: dark_smoothing must be in [0, " +
                                std::to_string(kMaxDarkSmoothing) +
                                "] (an explicit diffusion step is unstable above)");
  if (!(priors.total_variation >= 0 && priors.total_variation <= kMaxTotalVariation))
    throw std::invalid_argument("reconstructor: total_variation must be in [0, " +
                                std::to_string(kMaxTotalVariation) + "]");
  if (!(priors.sparsity >= 0 && priors.sparsity <= kMaxSparsity))
    throw std::invalid_argument("reconstructor: sparsity must be in [0, " +
                                std::to_string(kMaxSparsity) + "]");
  const std::size_t dd = std::size_t(detector_px_) * detector_px_;
  if (detector_px_ != model_.window_px() || !config.detector_mask.empty())
    weights_ = ptypilot::window_weights(model_.window_px(), detector_px_, config.detector_mask);
  detector_mask_ = config.detector_mask.empty() ? std::vector<float>(dd, 1.0f) : config.detector_mask;
  update_counted();
  mean_pattern_.assign(dd, 0.0);
  if (config.expected_frames < 0)
    throw std::invalid_argument("reconstructor: expected_frames must be >= 0");
  if (config.expected_frames > 0) {
    const auto frames = static_cast<std::size_t>(config.expected_frames);
    measured_.reserve(frames * dd);
    placements_.reserve(frames);
    frame_ids_.reserve(frames);
    // One probe per distinct sub-pixel remainder, at most one a frame; rasters share few, so
    // room for the first 1024 is made now (as the CUDA reconstructor does on the device).
    model_.reserve_probes(std::min<std::size_t>(frames, 1024));
  }
}

Status FrameStore::set_detector_mask(std::vector<float> mask) {
  if (!empty())
    return failed_precondition("the detector mask can change only before the first frame; " +
                               std::to_string(size()) + " frames are stored");
  const std::size_t dd = std::size_t(detector_px_) * detector_px_;
  WindowWeights weights;
  try {
    if (detector_px_ != model_.window_px() || !mask.empty())
      weights = ptypilot::window_weights(model_.window_px(), detector_px_, mask);
  } catch (const std::invalid_argument& e) {
    return invalid_argument(e.what());
  }
  weights_ = std::move(weights);
  detector_mask_ = mask.empty() ? std::vector<float>(dd, 1.0f) : mask;
  update_counted();
  config_.detector_mask = std::move(mask);
  return Status::Ok();
}

Status FrameStore::add(std::span<const Frame> frames) {
  if (frames.empty()) return invalid_argument("no frames given");
  const int n = model_.window_px();
  const int d = detector_px_;
  const std::size_t dd = std::size_t(d) * d;
  const long count = static_cast<long>(frames.size());
  for (const Frame& f : frames)
    if (f.counts.size() != dd)
      return invalid_argument("frame " + std::to_string(f.id) + ": pattern has " +
                              std::to_string(f.counts.size()) + " values; the detector has " +
                              std::to_string(d) + " x " + std::to_string(d) + " = " +
                              std::to_string(dd));
  // This runs on the decision path, once a sub-sequence: its loops are spread over threads, each
  // in a way that keeps every sum in the order of one thread (frames in order, pixels in
  // order), so the stored values do not depend on the thread count.
  const int threads = config_.threads > 0 ? config_.threads : omp_get_max_threads();
  // One test a pixel (NaN fails both comparisons); the bad pixel is looked for only in a frame
  // that has one. Counted as integers: GCC left the same test and-ed into a bool scalar, and
  // counting takes about 0.1 ms off a 50-frame call on 2 cores.
  std::vector<char> valid(frames.size());
#pragma omp parallel for num_threads(threads) schedule(static) if (count >= 8)
  for (long i = 0; i < count; ++i) {
    const float* c = frames[i].counts.data();
    int bad = 0;
#pragma omp simd reduction(+ : bad)
    for (std::size_t k = 0; k < dd; ++k)
      bad += !((c[k] >= 0.0f) & (c[k] <= std::numeric_limits<float>::max()));
    valid[i] = bad == 0;
  }
  std::vector<Vec2> positions;
  positions.reserve(frames.size());
  for (long i = 0; i < count; ++i) {
    const Frame& f = frames[i];
    const std::string who = "frame " + std::to_string(f.id) + ": ";
    for (std::size_t k = 0; !valid[i] && k < dd; ++k) {
      const float c = f.counts[k];
      if (!std::isfinite(c))
        return invalid_argument(who + "pattern holds NaN or infinity at pixel " + std::to_string(k));
      if (c < 0)
        return invalid_argument(who + "pattern holds negative counts at pixel " + std::to_string(k));
    }
    WindowPlacement window;
    if (Status s = place_window(config_.object, n, f.position_A, &window); !s.ok())
      return {s.code(), who + s.message()};
    positions.push_back(f.position_A);
  }
  std::vector<ProbePlacement> placed;
  if (Status s = model_.place(positions, &placed); !s.ok()) return s;  // checked above

  // Pixels masked out count for nothing: a hot pixel's counts are no electrons. Times 0 or 1
  // rather than a branch, so that the loops vectorise; adding +0 changes no sum.
  std::vector<double> sums(frames.size());
  const std::size_t first_value = measured_.size();
  measured_.resize(first_value + frames.size() * dd);
  const bool amplitude = config_.loss == Loss::kAmplitude;
  const int rows = illumination_.rows();
#pragma omp parallel num_threads(threads) if (count >= 8)
  {
#pragma omp for schedule(static) nowait
    for (long i = 0; i < count; ++i) {
      const std::span<const float> counts = frames[i].counts;
      double sum = 0.0;
      for (std::size_t k = 0; k < dd; ++k) sum += counts[k] * counted_[k];
      sums[i] = sum;
      float* to = measured_.data() + first_value + i * dd;
      if (amplitude)
        for (std::size_t k = 0; k < dd; ++k) to[k] = std::sqrt(counts[k]);
      else
        std::copy(counts.begin(), counts.end(), to);
    }
    // Per pixel, the frames in order; in blocks of pixels, so that the inner loop vectorises.
    constexpr long kBlock = 256;
    const long blocks = (static_cast<long>(dd) + kBlock - 1) / kBlock;
#pragma omp for schedule(static) nowait
    for (long b = 0; b < blocks; ++b) {
      const long k0 = b * kBlock, k1 = std::min<long>(k0 + kBlock, static_cast<long>(dd));
      for (long i = 0; i < count; ++i) {
        const float* counts = frames[i].counts.data();
        for (long k = k0; k < k1; ++k) mean_pattern_[k] += counts[k] * counted_[k];
      }
    }
    // Unit-probe illumination of each window; per object row, the frames in order.
#pragma omp for schedule(static)
    for (int row = 0; row < rows; ++row) {
      for (long i = 0; i < count; ++i) {
        const int r = row - placed[i].top;
        if (r < 0 || r >= n) continue;
        const std::complex<float>* probe = model_.shifted_probe(placed[i].probe) + std::size_t(r) * n;
        float* out = &illumination_(row, placed[i].left);
        for (int c = 0; c < n; ++c) out[c] += std::norm(probe[c]);
      }
    }
  }
  for (long i = 0; i < count; ++i) {
    counts_sum_ += sums[i];
    frame_ids_.push_back(frames[i].id);
    placements_.push_back(placed[i]);
  }
  update_step_map();
  return Status::Ok();
}

void FrameStore::update_counted() {
  counted_.resize(detector_mask_.size());
  for (std::size_t k = 0; k < counted_.size(); ++k) counted_[k] = detector_mask_[k] == 0.0f ? 0.0 : 1.0;
}

void FrameStore::update_step_map() {
  const double frames = static_cast<double>(placements_.size());
  // The probe is unit-normalised over the window's far field, and the counts are what the
  // detector caught of it. A detector smaller than the window misses what scatters beyond its
  // edge (on MoS2 at the paper's +-54 mrad, 0.5 % of the electrons on average, up to 2 %), so the model's
  // probe is as much too dim; the unmeasured elements, free, take up the difference.
  intensity_scale_ = counts_sum_ / frames;
  double scale = 1.0;
  if (config_.loss == Loss::kIntensity) {
    const double peak = *std::max_element(mean_pattern_.begin(), mean_pattern_.end()) / frames;
    // The Gauss-Newton bound 1 / (4 peak) holds for the brightest pixel only; the gradient
    // mixes far dimmer ones, and 1 / peak was measured stable up to step_size 2 on the presets.
    scale = peak > 0 ? 1.0 / peak : 0.0;
  }
  const float max_w = *std::max_element(illumination_.vector().begin(), illumination_.vector().end());
  // W for the scaled probe is intensity_scale * illumination.
  const double reg = config_.regularization * max_w;
  const double numerator = config_.step_size * frames / 2.0 * scale;
  // A division in double per object pixel, 40,000 on mos2-paper, on the decision path: spread
  // over the threads (each pixel's value is the same whichever thread computes it).
  const long pixels = static_cast<long>(step_map_.size());
  const int threads = config_.threads > 0 ? config_.threads : omp_get_max_threads();
#pragma omp parallel for num_threads(threads) schedule(static) if (pixels >= 4096)
  for (long i = 0; i < pixels; ++i)
    step_map_.data()[i] = static_cast<float>(
        numerator / (intensity_scale_ * (illumination_.data()[i] + reg) + 1e-30));
  if (config_.priors.dark_smoothing > 0) {
    if (dark_weight_.size() != illumination_.size())
      dark_weight_ = RealImage(illumination_.rows(), illumination_.cols());
    const double weight = config_.priors.dark_smoothing;
    for (std::size_t i = 0; i < dark_weight_.size(); ++i)
      dark_weight_.data()[i] = static_cast<float>(
          weight * std::clamp(1.0 - illumination_.data()[i] / max_w, 0.0, 1.0));
  }
}

}  // namespace ptypilot
