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

int resolve_threads(int requested) {
  if (requested < 0) throw std::invalid_argument("reconstructor: threads must be >= 0");
  return requested > 0 ? requested : std::max(1, omp_get_max_threads());
}

}  // namespace

CpuReconstructor::CpuReconstructor(const ReconstructorConfig& config)
    : config_(config),
      frames_(config),
      threads_(resolve_threads(config.threads)),
      forward_(config.probe.window_px, std::max(1, config.batch), FftDirection::kForward, true,
               FftPlacement::kOutOfPlace),
      backward_(config.probe.window_px, std::max(1, config.batch), FftDirection::kBackward),
      forward_single_(config.probe.window_px, 1, FftDirection::kForward, true,
                      FftPlacement::kOutOfPlace),
      backward_single_(config.probe.window_px, 1, FftDirection::kBackward),
      phase_(config.object.rows, config.object.cols),
      transmission_(config.object.rows, config.object.cols),
      gradient_(config.object.rows, config.object.cols) {
  if (config.batch < 1) throw std::invalid_argument("reconstructor: batch must be >= 1");
  const std::size_t nn = std::size_t(frames_.window_px()) * frames_.window_px();
  for (int t = 0; t < threads_; ++t) {
    thread_gradients_.emplace_back(config.object.rows, config.object.cols);
    thread_buffers_.emplace_back(nn * config.batch);
    thread_waves_.emplace_back(nn * config.batch);
  }
}

Status CpuReconstructor::add_frames(std::span<const Frame> frames) { return frames_.add(frames); }

double CpuReconstructor::compute_gradient(const RealImage& phase, RealImage* gradient) {
  const int n = frames_.window_px();
  const std::size_t nn = std::size_t(n) * n;
  const std::vector<ProbePlacement>& placements = frames_.placements();
  const ForwardModel& model = frames_.model();
  const long count = static_cast<long>(placements.size());
  const int batch = forward_.batch();
  const long batches = (count + batch - 1) / batch;
  const float probe_scale = static_cast<float>(std::sqrt(frames_.intensity_scale()) / n);
  const bool amplitude = config_.loss == Loss::kAmplitude;
  const float residual_weight = static_cast<float>((amplitude ? 1.0 : 2.0) / count);
  double loss = 0.0;

  ComplexImage& t = transmission_;
  const std::size_t pixels = phase.size();
  if (gradient->rows() != phase.rows() || gradient->cols() != phase.cols())
    *gradient = RealImage(phase.rows(), phase.cols());

  // One parallel region for the whole evaluation: at a few milliseconds per iteration, the
  // object-sized passes (t = exp(iV), the sum of the thread gradients) would otherwise run on one
  // core while the others wait.
#pragma omp parallel num_threads(threads_) reduction(+ : loss)
  {
    const int tid = omp_get_thread_num();
    RealImage& g = thread_gradients_[tid];
    std::fill(g.vector().begin(), g.vector().end(), 0.0f);
#pragma omp for schedule(static)
    for (std::size_t i = 0; i < pixels; ++i)
      t.data()[i] = {std::cos(phase.data()[i]), std::sin(phase.data()[i])};

    std::complex<float>* buffer = thread_buffers_[tid].data();
    // The exit waves stay in their own buffer for the gradient, so that the probes (32 kB per
    // position, beyond L2 for a few hundred positions) are read once per iteration, not twice.
    std::complex<float>* waves = thread_waves_[tid].data();

#pragma omp for schedule(dynamic, 1)
    for (long b = 0; b < batches; ++b) {
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
        const float* j = frames_.measured().data() + (first + q) * nn;
        // probe_scale is the far field's RMS amplitude (amplitude_gradient.hpp).
        loss += amplitude ? cpu::amplitude_residual(buffer + q * nn, j, nn, residual_weight,
                                                    probe_scale)
                          : cpu::intensity_residual(buffer + q * nn, j, nn, residual_weight);
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
    // Sum the per-thread images (the loop above ends in a barrier).
    float* out = gradient->data();
#pragma omp for schedule(static)
    for (std::size_t i = 0; i < pixels; ++i) {
      float sum = 0.0f;
      for (int k = 0; k < threads_; ++k) sum += thread_gradients_[k].data()[i];
      out[i] = sum;
    }
  }
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
                       priors.positivity};
  const long pixels = static_cast<long>(phase_.size());
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (long i = 0; i < pixels; ++i) prior_scratch_.data()[i] = prior_value_at(step, i);
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
