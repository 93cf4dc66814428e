#include "ptypilot/cpu_reconstructor.hpp"

#include "cpu_loops.hpp"
#include "prior_step.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ptypilot {
namespace {

// Up to this many threads, the gradient is the same bits whatever the thread count.
constexpr int kGradientSlots = 8;

int resolve_threads(int requested) {
  if (requested < 0) throw std::invalid_argument("reconstructor: threads must be >= 0");
  return requested > 0 ? requested : std::max(1, omp_get_max_threads());
}

}  // namespace

CpuReconstructor::CpuReconstructor(const ReconstructorConfig& config)
    : config_(config),
      frames_(config),
      threads_(resolve_threads(config.threads)),
      forward_(config.probe.window_px, std::max(1, config.batch), FftDirection::kForward,
               FftPlacement::kOutOfPlace),
      backward_(config.probe.window_px, std::max(1, config.batch), FftDirection::kBackward),
      forward_single_(config.probe.window_px, 1, FftDirection::kForward, FftPlacement::kOutOfPlace),
      backward_single_(config.probe.window_px, 1, FftDirection::kBackward),
      phase_(config.object.rows, config.object.cols),
      transmission_(config.object.rows, config.object.cols),
      gradient_(config.object.rows, config.object.cols) {
  if (config.batch < 1) throw std::invalid_argument("reconstructor: batch must be >= 1");
  const std::size_t nn = std::size_t(frames_.window_px()) * frames_.window_px();
  // More slots than threads, so that threads taking slots as they come balance the load.
  const int slots = std::max(kGradientSlots, threads_);
  for (int k = 0; k < slots; ++k) slot_gradients_.emplace_back(config.object.rows, config.object.cols);
  for (int t = 0; t < threads_; ++t) {
    thread_buffers_.emplace_back(nn * config.batch);
    thread_waves_.emplace_back(nn * config.batch);
  }
}

Status CpuReconstructor::add_frames(std::span<const Frame> frames) { return frames_.add(frames); }

double CpuReconstructor::compute_gradient(const RealImage& phase, RealImage* gradient) {
  const int n = frames_.window_px();
  const std::size_t nn = std::size_t(n) * n;
  const std::size_t dd = std::size_t(frames_.detector_px()) * frames_.detector_px();
  const WindowWeights& weights = frames_.window_weights();
  const std::vector<ProbePlacement>& placements = frames_.placements();
  const ForwardModel& model = frames_.model();
  const long count = static_cast<long>(placements.size());
  const int batch = forward_.batch();
  const long batches = (count + batch - 1) / batch;
  const float probe_scale = static_cast<float>(std::sqrt(frames_.intensity_scale()) / n);
  const bool amplitude = config_.loss == Loss::kAmplitude;
  const float residual_weight = static_cast<float>((amplitude ? 1.0 : 2.0) / count);
  position_loss_.resize(static_cast<std::size_t>(count));

  ComplexImage& t = transmission_;
  const std::size_t pixels = phase.size();
  if (gradient->rows() != phase.rows() || gradient->cols() != phase.cols())
    *gradient = RealImage(phase.rows(), phase.cols());

  // Bit-identical results whichever thread takes which batch, and for any thread count up to
  // the number of slots: slot s always holds the same run of batches, summed in batch order,
  // and the slots are summed in slot order. (Per-thread images filled by whichever thread took
  // a batch made every scored image differ from run to run: float addition is not
  // associative.) A slot touches only the rows its positions reach, so only those are zeroed
  // and summed.
  const int slots = static_cast<int>(std::min<long>(long(slot_gradients_.size()), batches));
  struct Rows {
    long first, last;
  };
  std::vector<Rows> slot_rows(std::size_t(slots), Rows{phase.rows(), 0});
  const auto first_batch = [&](int s) { return batches * s / slots; };
  for (int s = 0; s < slots; ++s)
    for (long p = first_batch(s) * batch; p < std::min(count, first_batch(s + 1) * batch); ++p) {
      slot_rows[s].first = std::min<long>(slot_rows[s].first, placements[p].top);
      slot_rows[s].last = std::max<long>(slot_rows[s].last, placements[p].top + n);
    }
  const long cols = phase.cols();

  // One parallel region for the whole evaluation: at a few milliseconds per iteration, the
  // object-sized passes (t = exp(iV), the sum of the slots) would otherwise run on one core while
  // the others wait.
#pragma omp parallel num_threads(threads_)
  {
    const int tid = omp_get_thread_num();
#pragma omp for schedule(static)
    for (std::size_t i = 0; i < pixels; ++i)
      t.data()[i] = {std::cos(phase.data()[i]), std::sin(phase.data()[i])};

    std::complex<float>* buffer = thread_buffers_[tid].data();
    // The exit waves stay in their own buffer for the gradient, so that the probes (32 kB per
    // position, beyond L2 for a few hundred positions) are read once per iteration, not twice.
    std::complex<float>* waves = thread_waves_[tid].data();

#pragma omp for schedule(dynamic, 1)
    for (int s = 0; s < slots; ++s) {
      RealImage& g = slot_gradients_[s];
      std::fill(g.data() + slot_rows[s].first * cols, g.data() + slot_rows[s].last * cols, 0.0f);
      for (long b = first_batch(s); b < first_batch(s + 1); ++b) {
        const long first = b * batch;
        const int in_batch = static_cast<int>(std::min<long>(batch, count - first));
        for (int q = 0; q < in_batch; ++q) {
          const ProbePlacement& pl = placements[first + q];
          exit_wave(t, pl, model.shifted_probe(pl.probe), n, probe_scale, waves + q * nn);
        }
        if (in_batch == batch) {
          forward_.execute(waves, buffer);
        } else {
          for (int q = 0; q < in_batch; ++q) forward_single_.execute(waves + q * nn, buffer + q * nn);
        }
        // Far field -> dL/dPsi* in place.
        for (int q = 0; q < in_batch; ++q) {
          const float* j = frames_.measured().data() + (first + q) * dd;
          std::complex<float>* psi = buffer + q * nn;
          // probe_scale is the far field's RMS amplitude (amplitude_gradient.hpp).
          if (weights.weight.empty())
            position_loss_[first + q] =
                amplitude ? cpu::amplitude_residual(psi, j, nn, residual_weight, probe_scale)
                          : cpu::intensity_residual(psi, j, nn, residual_weight);
          else
            position_loss_[first + q] =
                amplitude ? cpu::amplitude_residual_weighted(psi, j, weights.detector_pixel.data(),
                                                             weights.weight.data(), nn,
                                                             residual_weight, probe_scale)
                          : cpu::intensity_residual_weighted(psi, j, weights.detector_pixel.data(),
                                                             weights.weight.data(), nn,
                                                             residual_weight);
        }
        if (in_batch == batch) {
          backward_.execute(buffer);
        } else {
          for (int q = 0; q < in_batch; ++q) backward_single_.execute(buffer + q * nn);
        }
        // dL/dV += 2 Im(conj(e) * F^H dL/dPsi*).
        for (int q = 0; q < in_batch; ++q) {
          const ProbePlacement& pl = placements[first + q];
          cpu::accumulate_phase_gradient(waves + q * nn, buffer + q * nn, n, pl.top, pl.left,
                                         g.data(), g.cols());
        }
      }
    }
    // The loop above ends in a barrier.
    float* out = gradient->data();
#pragma omp for schedule(static)
    for (long r = 0; r < phase.rows(); ++r) {
      float* o = out + r * cols;
      std::fill(o, o + cols, 0.0f);
      for (int s = 0; s < slots; ++s) {
        if (r < slot_rows[s].first || r >= slot_rows[s].last) continue;
        const float* in = slot_gradients_[s].data() + r * cols;
#pragma omp simd
        for (long c = 0; c < cols; ++c) o[c] += in[c];
      }
    }
  }
  double loss = 0.0;
  for (double l : position_loss_) loss += l;
  return loss / static_cast<double>(count);
}

Status CpuReconstructor::iterate(int iterations) {
  if (iterations < 0) return invalid_argument("iterations must be >= 0");
  if (frames_.empty()) return failed_precondition("no frames to reconstruct from");
  for (int it = 0; it < iterations; ++it) {
    const double loss = compute_gradient(phase_, &gradient_);
    if (!std::isfinite(loss))
      return {StatusCode::kInternal, "reconstruction diverged (loss is not finite); lower step_size"};
    loss_history_.push_back(loss);
    float* v = phase_.data();
    const float* g = gradient_.data();
    const float* s = frames_.step_map().data();
    const long pixels = static_cast<long>(phase_.size());
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (long i = 0; i < pixels; ++i) v[i] -= s[i] * g[i];
    apply_priors();
    ++iterations_;
  }
  return Status::Ok();
}

void CpuReconstructor::apply_priors() {
  const PriorConfig& priors = config_.priors;
  if (!priors.any()) return;
  if (prior_scratch_.size() != phase_.size()) prior_scratch_ = RealImage(phase_.rows(), phase_.cols());
  const PriorStep step{phase_.data(),
                       prior_scratch_.data(),
                       frames_.dark_weight().empty() ? nullptr : frames_.dark_weight().data(),
                       phase_.rows(),
                       phase_.cols(),
                       static_cast<float>(priors.total_variation),
                       kTotalVariationEpsilon,
                       priors.positivity,
                       static_cast<float>(priors.sparsity)};
  cpu::prior_step(step, threads_);
  std::swap(phase_, prior_scratch_);
}

Status CpuReconstructor::loss_and_gradient(const RealImage& phase_rad, double* loss,
                                           RealImage* gradient) {
  if (Status s = check_potential(phase_rad, config_.object); !s.ok()) return s;
  if (frames_.empty()) return failed_precondition("no frames to evaluate the loss on");
  *loss = compute_gradient(phase_rad, gradient);
  return Status::Ok();
}

Potential CpuReconstructor::snapshot() const {
  return {phase_, config_.object, frames_.size(), iterations_, loss_history_};
}

Status CpuReconstructor::set_potential(const RealImage& phase_rad) {
  if (Status s = check_potential(phase_rad, config_.object); !s.ok()) return s;
  phase_ = phase_rad;
  return Status::Ok();
}

}  // namespace ptypilot
