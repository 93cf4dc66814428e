#include "ptypilot/cpu_reconstructor.hpp"

#include "cpu_loops.hpp"

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

Status check_phase(const RealImage& phase, const ObjectGrid& grid) {
  if (phase.rows() != grid.rows || phase.cols() != grid.cols)
    return invalid_argument("potential is " + std::to_string(phase.rows()) + " x " +
                            std::to_string(phase.cols()) + " px, the object grid is " +
                            std::to_string(grid.rows) + " x " + std::to_string(grid.cols));
  for (float v : phase.vector())
    if (!std::isfinite(v)) return invalid_argument("potential contains NaN or infinity");
  return Status::Ok();
}

}  // namespace

CpuReconstructor::CpuReconstructor(const ReconstructorConfig& config)
    : config_(config),
      model_(config.probe, config.object),
      threads_(resolve_threads(config.threads)),
      forward_(config.probe.window_px, std::max(1, config.batch), FftDirection::kForward, true,
               FftPlacement::kOutOfPlace),
      backward_(config.probe.window_px, std::max(1, config.batch), FftDirection::kBackward),
      forward_single_(config.probe.window_px, 1, FftDirection::kForward, true,
                      FftPlacement::kOutOfPlace),
      backward_single_(config.probe.window_px, 1, FftDirection::kBackward),
      illumination_(config.object.rows, config.object.cols),
      phase_(config.object.rows, config.object.cols),
      transmission_(config.object.rows, config.object.cols),
      gradient_(config.object.rows, config.object.cols),
      step_map_(config.object.rows, config.object.cols) {
  if (config.batch < 1) throw std::invalid_argument("reconstructor: batch must be >= 1");
  if (!(config.step_size > 0)) throw std::invalid_argument("reconstructor: step_size must be > 0");
  if (!(config.regularization > 0))
    throw std::invalid_argument("reconstructor: regularization must be > 0");
  const std::size_t nn = std::size_t(model_.window_px()) * model_.window_px();
  mean_pattern_.assign(nn, 0.0);
  for (int t = 0; t < threads_; ++t) {
    thread_gradients_.emplace_back(config.object.rows, config.object.cols);
    thread_buffers_.emplace_back(nn * config.batch);
    thread_waves_.emplace_back(nn * config.batch);
  }
}

Status CpuReconstructor::add_frames(std::span<const Frame> frames) {
  if (frames.empty()) return invalid_argument("no frames given");
  const int n = model_.window_px();
  const std::size_t nn = std::size_t(n) * n;
  std::vector<Vec2> positions;
  positions.reserve(frames.size());
  for (const Frame& f : frames) {
    const std::string who = "frame " + std::to_string(f.id) + ": ";
    if (f.counts.size() != nn)
      return invalid_argument(who + "pattern has " + std::to_string(f.counts.size()) +
                              " values; the probe window needs " + std::to_string(n) + " x " +
                              std::to_string(n) + " = " + std::to_string(nn));
    for (std::size_t k = 0; k < nn; ++k) {
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

  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Frame& f = frames[i];
    double sum = 0.0;
    for (std::size_t k = 0; k < nn; ++k) {
      sum += f.counts[k];
      mean_pattern_[k] += f.counts[k];
    }
    counts_sum_ += sum;
    if (config_.loss == Loss::kAmplitude)
      for (float c : f.counts) measured_.push_back(std::sqrt(c));
    else
      measured_.insert(measured_.end(), f.counts.begin(), f.counts.end());
    frame_ids_.push_back(f.id);
    // Unit-probe illumination of this window.
    const std::complex<float>* probe = model_.shifted_probe(placed[i].probe);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < n; ++c)
        illumination_(placed[i].top + r, placed[i].left + c) += std::norm(probe[r * n + c]);
    placements_.push_back(placed[i]);
  }
  update_preconditioner();
  return Status::Ok();
}

void CpuReconstructor::update_preconditioner() {
  const double frames = static_cast<double>(placements_.size());
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
  for (std::size_t i = 0; i < step_map_.size(); ++i)
    step_map_.data()[i] = static_cast<float>(
        numerator / (intensity_scale_ * (illumination_.data()[i] + reg) + 1e-30));
}

double CpuReconstructor::compute_gradient(const RealImage& phase, RealImage* gradient) {
  const int n = model_.window_px();
  const std::size_t nn = std::size_t(n) * n;
  const long count = static_cast<long>(placements_.size());
  const int batch = forward_.batch();
  const long batches = (count + batch - 1) / batch;
  const float probe_scale = static_cast<float>(std::sqrt(intensity_scale_) / n);
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
        const ProbePlacement& pl = placements_[first + q];
        exit_wave(t, pl, model_.shifted_probe(pl.probe), n, probe_scale, waves + q * nn);
      }
      if (in_batch == batch) {
        forward_.execute(waves, buffer);
      } else {
        for (int q = 0; q < in_batch; ++q) forward_single_.execute(waves + q * nn, buffer + q * nn);
      }
      // Far field -> dL/dPsi* in place.
      for (int q = 0; q < in_batch; ++q) {
        const float* j = measured_.data() + (first + q) * nn;
        loss += amplitude ? cpu::amplitude_residual(buffer + q * nn, j, nn, residual_weight)
                          : cpu::intensity_residual(buffer + q * nn, j, nn, residual_weight);
      }
      if (in_batch == batch) {
        backward_.execute(buffer);
      } else {
        for (int q = 0; q < in_batch; ++q) backward_single_.execute(buffer + q * nn);
      }
      // dL/dV += 2 Im(conj(e) * F^H dL/dPsi*).
      for (int q = 0; q < in_batch; ++q) {
        const ProbePlacement& pl = placements_[first + q];
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
  if (placements_.empty()) return failed_precondition("no frames to reconstruct from");
  for (int it = 0; it < iterations; ++it) {
    const double loss = compute_gradient(phase_, &gradient_);
    if (!std::isfinite(loss))
      return {StatusCode::kInternal, "reconstruction diverged (loss is not finite); lower step_size"};
    loss_history_.push_back(loss);
    float* v = phase_.data();
    const float* g = gradient_.data();
    const float* s = step_map_.data();
    const long pixels = static_cast<long>(phase_.size());
#pragma omp parallel for num_threads(threads_) schedule(static)
    for (long i = 0; i < pixels; ++i) v[i] -= s[i] * g[i];
    ++iterations_;
  }
  return Status::Ok();
}

Status CpuReconstructor::loss_and_gradient(const RealImage& phase_rad, double* loss,
                                           RealImage* gradient) {
  if (Status s = check_phase(phase_rad, config_.object); !s.ok()) return s;
  if (placements_.empty()) return failed_precondition("no frames to evaluate the loss on");
  *loss = compute_gradient(phase_rad, gradient);
  return Status::Ok();
}

Potential CpuReconstructor::snapshot() const {
  return {phase_, config_.object, placements_.size(), iterations_, loss_history_};
}

Status CpuReconstructor::set_potential(const RealImage& phase_rad) {
  if (Status s = check_phase(phase_rad, config_.object); !s.ok()) return s;
  phase_ = phase_rad;
  return Status::Ok();
}

}  // namespace ptypilot
