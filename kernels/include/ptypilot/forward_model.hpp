// The single-slice forward model of the paper, eq. (1):
//   I_p(k) = |F[psi(r - R_p) * exp(i V(r))]|^2
// with V the phase (the interaction constant absorbed, as in the paper) and F unitary, so a
// unit-normalised probe gives patterns that each sum to one. This is the one implementation of
// the model: the simulated detector calls intensities(), and the reconstructor's forward and
// backward passes are built from the same placement, shifted probes and exit wave.
#pragma once

#include <complex>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "ptypilot/image.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/prefaulted_allocator.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot {

// One scan position on the object: its window and its sub-pixel-shifted probe.
struct ProbePlacement {
  int top = 0;
  int left = 0;
  int probe = 0;  // index into ForwardModel::shifted_probe
};

class ForwardModel {
 public:
  // Throws std::invalid_argument when the probe config is unphysical or the object grid's pixel
  // differs from the one the detector implies.
  ForwardModel(const ProbeConfig& probe, const ObjectGrid& grid);

  int window_px() const { return n_; }
  const ObjectGrid& grid() const { return grid_; }
  const ProbeConfig& probe_config() const { return probe_config_; }

  // Places each position (see place_window) and makes its shifted probe. On error nothing is
  // added and the message names the index of the offending position.
  Status place(std::span<const Vec2> positions_A, std::vector<ProbePlacement>* out);

  // The unit-normalised probe shifted by a placement's sub-pixel remainder (N*N values).
  const std::complex<float>* shifted_probe(int index) const {
    return shifted_probes_.data() + static_cast<std::size_t>(index) * n_ * n_;
  }
  int shifted_probe_count() const { return static_cast<int>(shifted_probes_.size() / (n_ * n_)); }
  // Room for `count` shifted probes, so that placing up to that many never copies the ones made.
  void reserve_probes(std::size_t count) { shifted_probes_.reserve(count * n_ * n_); }

  // Noise-free patterns for a phase V (rad) at the given positions, N*N floats each, written to
  // `patterns` (positions.size() * N * N values). Each pattern sums to 1.
  Status intensities(const RealImage& phase_rad, std::span<const Vec2> positions_A,
                     std::span<float> patterns);

 private:
  // The probe shifted by the remainder that `key` encodes (place), N*N values into `out`.
  void make_shifted_probe(std::uint64_t key, std::complex<float>* out) const;

  int n_;
  ProbeConfig probe_config_;
  ObjectGrid grid_;
  ComplexImage probe_fourier_;
  std::vector<std::complex<float>, PrefaultedAllocator<std::complex<float>>> shifted_probes_;
  // Positions on a regular raster share sub-pixel remainders; keyed on the remainder quantised
  // to 1/4096 px (4e-5 A at the paper's sampling, far below any stage precision).
  std::unordered_map<std::uint64_t, int> probe_by_shift_;
};

// t = exp(i V) over the whole object.
void transmission(const RealImage& phase_rad, ComplexImage* out);

// The exit wave of one placement, scaled: out = scale * probe * t[window].
void exit_wave(const ComplexImage& transmission, const ProbePlacement& placement,
               const std::complex<float>* probe, int n, float scale, std::complex<float>* out);

}  // namespace ptypilot
