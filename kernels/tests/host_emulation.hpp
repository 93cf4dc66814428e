// The CUDA kernels' bodies run on the host, over the kernels' own index space and in their
// order, with FFTW in place of cuFFT: what the device would compute, short of the launches,
// cuFFT, the copies and the order of the atomic additions. The tests compare this with the CPU
// reconstructor and the exact Voronoi labels where no GPU is present, and the GPU with this
// where one is.
#pragma once

#include <cstring>
#include <vector>

#include "cuda/jfa_seeding.hpp"
#include "cuda/reconstruct_elements.hpp"
#include "ptypilot/fft.hpp"
#include "ptypilot/frame_store.hpp"

namespace ptypilot::testing {

class HostEmulatedReconstructor {
 public:
  explicit HostEmulatedReconstructor(const ReconstructorConfig& config)
      : config_(config), store_(config), phase_(config.object.rows, config.object.cols) {}

  Status add_frames(std::span<const Frame> frames) {
    if (Status s = store_.add(frames); !s.ok()) return s;
    const std::size_t nn = std::size_t(store_.window_px()) * store_.window_px();
    waves_ = AlignedComplexBuffer(store_.size() * nn);
    gradient_.assign(phase_.size(), 0.0f);
    block_losses_.assign(gpu::residual_blocks(long(store_.size() * nn)), 0.0);
    // The test may shift every window to see that a wrong index is noticed.
    windows_.clear();
    for (const ProbePlacement& p : store_.placements())
      windows_.push_back({p.top, p.left + column_shift_, p.probe});
    return Status::Ok();
  }

  // A deliberate indexing error, for the test that shows the comparison can fail.
  void shift_windows(int columns) { column_shift_ = columns; }

  gpu::GradientPass pass(const float* v) {
    const int n = store_.window_px();
    const long patterns = static_cast<long>(store_.size());
    const bool amplitude = config_.loss == Loss::kAmplitude;
    gpu::GradientPass g{};
    g.phase = v;
    g.object_cols = phase_.cols();
    g.windows = windows_.data();
    g.probes = reinterpret_cast<const gpu::Complex32*>(store_.model().shifted_probe(0));
    g.measured = store_.measured().data();
    g.waves = reinterpret_cast<gpu::Complex32*>(waves_.data());
    g.gradient = gradient_.data();
    g.n = n;
    g.patterns = patterns;
    // The expressions of CudaReconstructor::Device::pass.
    g.probe_scale = static_cast<float>(std::sqrt(store_.intensity_scale()) / n);
    g.residual_weight = static_cast<float>((amplitude ? 1.0 : 2.0) / patterns);
    g.amplitude = amplitude;
    return g;
  }

  // The kernels of one gradient evaluation in launch order; gradient_ holds dL/dV afterwards.
  double evaluate(const float* v) {
    const gpu::GradientPass g = pass(v);
    const long elements = gpu::pass_elements(g);
    const int nn = g.n * g.n;
    for (long p = 0; p < g.patterns; ++p)
      for (int k = 0; k < nn; ++k) g.waves[gpu::element_index(g, p, k)] = gpu::exit_wave_at(g, p, k);
    const BatchedFft forward(g.n, static_cast<int>(g.patterns), FftDirection::kForward, false);
    const BatchedFft inverse(g.n, static_cast<int>(g.patterns), FftDirection::kBackward, false);
    forward.execute(waves_.data());
    const long blocks = gpu::residual_blocks(elements);
    for (long b = 0; b < blocks; ++b) {
      double block = 0.0;
      for (int t = 0; t < gpu::kResidualThreads; ++t) {
        float sum = 0.0f;
        for (int k = 0; k < gpu::kResidualElementsPerThread; ++k) {
          const long index = gpu::residual_element(b, t, k, elements);
          if (index >= 0) sum += gpu::residual_at(g, index);
        }
        block += sum;
      }
      block_losses_[b] = block;
    }
    inverse.execute(waves_.data());
    for (long p = 0; p < g.patterns; ++p) {
      for (int k = 0; k < nn; ++k) {
        const gpu::GradientTerm term = gpu::gradient_term_at(g, p, k);
        g.gradient[term.pixel] += term.value;
      }
    }
    double total = 0.0;
    for (long b = 0; b < blocks; ++b) total += block_losses_[b];
    return total / static_cast<double>(g.patterns);
  }

  Status loss_and_gradient(const RealImage& v, double* loss, RealImage* gradient) {
    std::fill(gradient_.begin(), gradient_.end(), 0.0f);
    *loss = evaluate(v.data());
    *gradient = RealImage(v.rows(), v.cols(), gradient_);
    std::fill(gradient_.begin(), gradient_.end(), 0.0f);
    return Status::Ok();
  }

  Status iterate(int iterations) {
    for (int it = 0; it < iterations; ++it) {
      const double loss = evaluate(phase_.data());
      losses_.push_back(loss);
      const gpu::DescentStep step{phase_.data(), gradient_.data(), store_.step_map().data(),
                                  static_cast<long>(phase_.size())};
      for (long i = 0; i < step.pixels; ++i) gpu::descent_step_at(step, i, std::isfinite(loss));
    }
    return Status::Ok();
  }

  const RealImage& phase() const { return phase_; }
  const std::vector<double>& losses() const { return losses_; }

 private:
  ReconstructorConfig config_;
  FrameStore store_;
  RealImage phase_;
  AlignedComplexBuffer waves_;
  std::vector<float> gradient_;
  std::vector<double> block_losses_;
  std::vector<gpu::Window> windows_;
  std::vector<double> losses_;
  int column_shift_ = 0;
};

// Jump Flooding on the host: the seeding and schedule of the library and the pass body of the
// kernels, pass after pass.
inline Image<int> host_emulated_jfa_labels(const ObjectGrid& grid, std::span<const Vec2> positions_A,
                                           bool fov_only) {
  Image<int> labels(grid.rows, grid.cols, -1);
  const gpu::JfaRectangle rect = gpu::jfa_rectangle(grid, fov_only);
  if (rect.rows <= 0 || rect.cols <= 0) return labels;
  const std::vector<gpu::SeedPoint> seeds = gpu::jfa_seed_points(grid, positions_A);
  const std::vector<int> seed_pixel = gpu::place_jfa_seeds(seeds, rect, grid.pixel_A);
  const int pixels = rect.rows * rect.cols;
  std::vector<int> in(pixels, -1), out(pixels, -1);
  for (std::size_t m = 0; m < seeds.size(); ++m)
    if (seed_pixel[m] >= 0) in[seed_pixel[m]] = static_cast<int>(m);
  for (const int step : gpu::jfa_schedule(rect)) {
    const gpu::JfaPass pass{seeds.data(), in.data(), out.data(),   rect.rows, rect.cols,
                            rect.row0,    rect.col0, grid.pixel_A, step};
    for (int i = 0; i < pixels; ++i) out[i] = gpu::jfa_label_at(pass, i);
    std::swap(in, out);
  }
  for (int r = 0; r < rect.rows; ++r)
    for (int c = 0; c < rect.cols; ++c) labels(rect.row0 + r, rect.col0 + c) = in[r * rect.cols + c];
  return labels;
}

}  // namespace ptypilot::testing
