#include "ptypilot/forward_model.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

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
  ComplexImage shifted(n_, n_);
  for (const WindowPlacement& w : windows) {
    const auto qy = static_cast<std::uint64_t>(std::lround(w.frac_y * 4096.0));
    const auto qx = static_cast<std::uint64_t>(std::lround(w.frac_x * 4096.0));
    const std::uint64_t key = (qy << 32) | qx;
    auto [it, inserted] = probe_by_shift_.try_emplace(key, shifted_probe_count());
    if (inserted) {
      // Fourier shift by the quantised remainder: multiply by exp(-2 pi i k . d).
      const double dy = qy / 4096.0, dx = qx / 4096.0;
      for (int i = 0; i < n_; ++i) {
        const int fy = i < n_ / 2 ? i : i - n_;
        for (int j = 0; j < n_; ++j) {
          const int fx = j < n_ / 2 ? j : j - n_;
          const double phase = -2.0 * std::numbers::pi * (fy * dy + fx * dx) / n_;
          shifted(i, j) = probe_fourier_(i, j) * std::complex<float>(std::polar(1.0, phase));
        }
      }
      inverse_fft_unitary(shifted);
      shifted_probes_.insert(shifted_probes_.end(), shifted.vector().begin(), shifted.vector().end());
    }
    placed.push_back({w.top, w.left, it->second});
  }
  out->insert(out->end(), placed.begin(), placed.end());
  return Status::Ok();
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
