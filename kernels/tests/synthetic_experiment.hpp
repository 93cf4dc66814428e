// A small generated experiment for the kernels' own tests and benchmark, which build without the
// simulator (sim_detector/): the mos2-paper optics (60 kV, 33 mrad, 64 x 64 patterns at
// 0.154 A), a phase of Gaussian "atoms" on a hexagonal lattice, and noise-free patterns from the
// one forward model (forward_model.hpp) at random sub-pixel positions, so that nearly every
// position has its own shifted probe.
#pragma once

#include <cmath>
#include <initializer_list>
#include <numbers>
#include <random>
#include <stdexcept>
#include <vector>

#include "ptypilot/cpu_reconstructor.hpp"
#include "ptypilot/detector.hpp"
#include "ptypilot/forward_model.hpp"
#include "ptypilot/reconstructor.hpp"
#include "ptypilot/scan_geometry.hpp"

namespace ptypilot::testing {

struct SyntheticExperiment {
  ReconstructorConfig config;
  RealImage phase_rad;  // the truth
  std::vector<Vec2> positions_A;
  std::vector<float> counts;
  std::vector<Frame> frames;
};

inline ProbeConfig paper_probe() {
  ProbeConfig p;
  p.energy_keV = 60.0;
  p.semiangle_mrad = 33.0;
  p.window_px = 64;
  p.detector_pixel_mrad = 4.937;
  return p;
}

// `patterns` positions, uniformly random over a fov_A x fov_A field of view, each pattern
// scaled to `counts_per_pattern` electrons. A detector_px below the window's 64 records the
// central detector_px x detector_px of each pattern (detector.hpp).
inline SyntheticExperiment synthetic_experiment(double fov_A, int patterns, Loss loss,
                                                double counts_per_pattern = 4000.0,
                                                unsigned seed = 1, int detector_px = 0) {
  SyntheticExperiment e;
  e.config.backend = "cpu";
  e.config.probe = paper_probe();
  e.config.probe.detector_px = detector_px;
  const double pixel_A = real_space_pixel_A(e.config.probe);
  e.config.object = object_grid_for_fov(fov_A, fov_A, pixel_A, e.config.probe.window_px, 3);
  e.config.loss = loss;
  const ObjectGrid& g = e.config.object;

  // Atoms 1.84 A apart (MoS2's projected Mo-S spacing), 0.35 A wide, 0.6 rad deep.
  e.phase_rad = RealImage(g.rows, g.cols);
  const double a = 1.84, sigma = 0.35, depth = 0.6;
  for (int r = 0; r < g.rows; ++r) {
    for (int c = 0; c < g.cols; ++c) {
      const double y = r * pixel_A, x = c * pixel_A;
      double v = 0.0;
      const int ky = static_cast<int>(y / (a * std::sqrt(3.0) / 2));
      for (int i = ky - 2; i <= ky + 2; ++i) {
        const double ay = i * a * std::sqrt(3.0) / 2;
        const double shift = (i % 2 != 0) ? a / 2 : 0.0;
        const int kx = static_cast<int>((x - shift) / a);
        for (int j = kx - 2; j <= kx + 2; ++j) {
          const double ax = j * a + shift;
          const double d2 = (y - ay) * (y - ay) + (x - ax) * (x - ax);
          v += depth * std::exp(-d2 / (2 * sigma * sigma));
        }
      }
      e.phase_rad(r, c) = static_cast<float>(v);
    }
  }

  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, fov_A);
  for (int p = 0; p < patterns; ++p) e.positions_A.push_back({u(rng), u(rng)});

  ForwardModel model(e.config.probe, g);
  const std::size_t nn = std::size_t(e.config.probe.window_px) * e.config.probe.window_px;
  e.counts.resize(e.positions_A.size() * nn);
  if (Status s = model.intensities(e.phase_rad, e.positions_A, e.counts); !s.ok())
    throw std::runtime_error(s.to_string());
  for (float& v : e.counts) v *= static_cast<float>(counts_per_pattern);
  const int d = e.config.probe.detector_side_px();
  const std::size_t dd = std::size_t(d) * d;
  if (dd != nn) {
    std::vector<float> cropped(e.positions_A.size() * dd);
    for (std::size_t p = 0; p < e.positions_A.size(); ++p)
      crop_to_detector({e.counts.data() + p * nn, nn}, e.config.probe.window_px, d,
                       {cropped.data() + p * dd, dd});
    e.counts = std::move(cropped);
  }
  for (std::size_t p = 0; p < e.positions_A.size(); ++p)
    e.frames.push_back({p, e.positions_A[p], {e.counts.data() + p * dd, dd}});
  return e;
}

// CUDA against the CPU with every prior on: the phase of each after ten iterations, and the
// CPU's without the priors (which must differ by far more than the tolerance, or the
// comparison shows nothing).
struct PriorRuns {
  RealImage cpu, cuda, cpu_without_priors;
};
template <typename CudaReconstructorType>
PriorRuns run_with_every_prior(SyntheticExperiment e) {
  e.config.priors = {
      .positivity = true, .dark_smoothing = 0.2, .total_variation = 0.004, .sparsity = 0.002};
  ReconstructorConfig without = e.config;
  without.priors = {.positivity = false};
  CpuReconstructor cpu(e.config);
  CudaReconstructorType cuda(e.config);
  CpuReconstructor plain(without);
  for (Reconstructor* r : std::initializer_list<Reconstructor*>{&cpu, &cuda, &plain}) {
    if (!r->add_frames(e.frames).ok() || !r->iterate(10).ok())
      throw std::runtime_error("a reconstruction with every prior failed");
  }
  return {cpu.snapshot().phase_rad, cuda.snapshot().phase_rad, plain.snapshot().phase_rad};
}

}  // namespace ptypilot::testing
