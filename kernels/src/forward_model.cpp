#include "ptypilot/forward_model.hpp"

#include <cmath>
#include <cstring>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu_loops.hpp"
#include "ptypilot/fft.hpp"

namespace ptypilot {

ForwardModel::ForwardModel(const ProbeConfig& probe, const ObjectGrid& grid)
    : n_(probe.window_px), probe_config_(probe), grid_(grid), probe_fourier_(make_probe_fourier(probe)) {
  const double expected = real_space_pixel_A(probe);
  if (std::abs(grid.pixel_A - expected) > 1e-6 * expected)
    throw std::invalid_argument("object pixel " + std::to_string(grid.pixel_A) +
                                " A does not match the detector sampling " +
                                std::to_string(expected) + " A");
  if (grid.rows < n_ || grid.cols < n_)
    throw std::invalid_argument("object grid is smaller than the probe window");
}

Status ForwardModel::place(std::span<const Vec2> positions_A, std::vector<ProbePlacement>* out) {
  std::vector<ProbePlacement> placed;
  placed.reserve(positions_A.size());
  std::vector<WindowPlacement> windows(positions_A.size());
  for (std::size_t i = 0; i < positions_A.size(); ++i) {
    Status s = place_window(grid_, n_, positions_A[i], &windows[i]);
    if (!s.ok()) return {s.code(), "position " + std::to_string(i) + ": " + s.message()};
  }
  // Each new sub-pixel remainder gets its probe; positions that share one share it.
  std::vector<std::uint64_t> new_keys;
  for (const WindowPlacement& w : windows) {
    const auto qy = static_cast<std::uint64_t>(std::lround(w.frac_y * 4096.0));
    const auto qx = static_cast<std::uint64_t>(std::lround(w.frac_x * 4096.0));
    const std::uint64_t key = (qy << 32) | qx;
    auto [it, inserted] = probe_by_shift_.try_emplace(
        key, shifted_probe_count() + static_cast<int>(new_keys.size()));
    if (inserted) new_keys.push_back(key);
    placed.push_back({w.top, w.left, it->second});
  }
  const std::size_t nn = std::size_t(n_) * n_, stored = shifted_probes_.size();
  shifted_probes_.resize(stored + new_keys.size() * nn);
  // Independent transforms: in parallel where there are enough of them (a sub-sequence of a
  // scan that is not a raster brings one per position, on the decision path).
  const long count = static_cast<long>(new_keys.size());
#pragma omp parallel for schedule(static) if (count >= 8)
  for (long k = 0; k < count; ++k)
    make_shifted_probe(new_keys[k], shifted_probes_.data() + stored + k * nn);
  out->insert(out->end(), placed.begin(), placed.end());
  return Status::Ok();
}

void ForwardModel::make_shifted_probe(std::uint64_t key, std::complex<float>* out) const {
  // Fourier shift by the quantised remainder: multiply by exp(-2 pi i k . d), which separates
  // into a row factor and a column factor. Taking 2n sines and cosines instead of n^2 makes a
  // new shift cheap enough for the decision path. The product is taken in double, so it differs
  // from the direct exponential by double rounding alone, far below a float's step.
  const double dy = (key >> 32) / 4096.0, dx = (key & 0xFFFFFFFFu) / 4096.0;
  // Real and imaginary parts in arrays of their own, so that the row products below vectorise
  // without shuffling (re, im) pairs apart.
  std::vector<double> ramp_y_re(n_), ramp_y_im(n_), ramp_x_re(n_), ramp_x_im(n_);
  for (int i = 0; i < n_; ++i) {
    const int f = i < n_ / 2 ? i : i - n_;
    const std::complex<double> y = std::polar(1.0, -2.0 * std::numbers::pi * f * dy / n_);
    const std::complex<double> x = std::polar(1.0, -2.0 * std::numbers::pi * f * dx / n_);
    ramp_y_re[i] = y.real(), ramp_y_im[i] = y.imag();
    ramp_x_re[i] = x.real(), ramp_x_im[i] = x.imag();
  }
  // The transform's own aligned buffer, one per thread and kept: allocating and clearing one a
  // probe cost as much as the transform. The same plan and scaling as inverse_fft_unitary.
  const std::size_t nn = std::size_t(n_) * n_;
  thread_local AlignedComplexBuffer buffer;
  thread_local std::vector<float> row_re, row_im;
  if (buffer.size() != nn) buffer = AlignedComplexBuffer(nn);
  row_re.resize(std::size_t(n_));
  row_im.resize(std::size_t(n_));
  // std::complex's products written out: the same arithmetic for finite values, without the
  // per-element NaN branch that keeps the loop from vectorising. Each row's ramp is taken in
  // double and rounded to float first, then multiplied into the probe in float.
  for (int i = 0; i < n_; ++i) {
    const double yr = ramp_y_re[i], yi = ramp_y_im[i];
    for (int j = 0; j < n_; ++j) {
      row_re[j] = static_cast<float>(yr * ramp_x_re[j] - yi * ramp_x_im[j]);
      row_im[j] = static_cast<float>(yr * ramp_x_im[j] + yi * ramp_x_re[j]);
    }
    const float* in = reinterpret_cast<const float*>(&probe_fourier_(i, 0));
    float* row = reinterpret_cast<float*>(buffer.data() + std::size_t(i) * n_);
    for (int j = 0; j < n_; ++j) {
      const float pr = in[2 * j], pi = in[2 * j + 1], rr = row_re[j], ri = row_im[j];
      row[2 * j] = pr * rr - pi * ri;
      row[2 * j + 1] = pr * ri + pi * rr;
    }
  }
  BatchedFft(n_, 1, FftDirection::kBackward).execute(buffer.data());
  const float scale = 1.0f / std::sqrt(static_cast<float>(nn));
  for (std::size_t k = 0; k < nn; ++k) out[k] = buffer.data()[k] * scale;
}

void transmission(const RealImage& phase_rad, ComplexImage* out) {
  if (out->rows() != phase_rad.rows() || out->cols() != phase_rad.cols())
    *out = ComplexImage(phase_rad.rows(), phase_rad.cols());
  const float* v = phase_rad.data();
  std::complex<float>* t = out->data();
  for (std::size_t i = 0; i < phase_rad.size(); ++i) t[i] = {std::cos(v[i]), std::sin(v[i])};
}

void exit_wave(const ComplexImage& t, const ProbePlacement& placement,
               const std::complex<float>* probe, int n, float scale, std::complex<float>* out) {
  cpu::exit_wave(t.data(), t.cols(), placement.top, placement.left, probe, n, scale, out);
}

Status ForwardModel::intensities(const RealImage& phase_rad, std::span<const Vec2> positions_A,
                                 std::span<float> patterns) {
  const std::size_t nn = static_cast<std::size_t>(n_) * n_;
  if (phase_rad.rows() != grid_.rows || phase_rad.cols() != grid_.cols)
    return invalid_argument("potential is " + std::to_string(phase_rad.rows()) + " x " +
                            std::to_string(phase_rad.cols()) + ", the object grid is " +
                            std::to_string(grid_.rows) + " x " + std::to_string(grid_.cols));
  if (patterns.size() != positions_A.size() * nn)
    return invalid_argument("output holds " + std::to_string(patterns.size()) + " values, need " +
                            std::to_string(positions_A.size() * nn));
  std::vector<ProbePlacement> placements;
  if (Status s = place(positions_A, &placements); !s.ok()) return s;
  ComplexImage t;
  transmission(phase_rad, &t);
  const BatchedFft fft(n_, 1, FftDirection::kForward);
  const float scale = 1.0f / static_cast<float>(n_);  // unitary forward transform
  const long count = static_cast<long>(placements.size());
#pragma omp parallel
  {
    AlignedComplexBuffer wave(nn);
#pragma omp for schedule(static)
    for (long p = 0; p < count; ++p) {
      exit_wave(t, placements[p], shifted_probe(placements[p].probe), n_, scale, wave.data());
      fft.execute(wave.data());
      float* out = patterns.data() + p * nn;
      for (std::size_t k = 0; k < nn; ++k) out[k] = std::norm(wave.data()[k]);
    }
  }
  return Status::Ok();
}

}  // namespace ptypilot
