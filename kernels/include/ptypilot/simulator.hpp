// The simulated experiment: a specimen from a preset and a seed, and the diffraction frames a
// detector would record at any scan positions, noise-free or with Poisson noise at a dose.
// Frames come from kernels' ForwardModel, the same model the reconstructor inverts.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "ptypilot/experimental_effects.hpp"
#include "ptypilot/forward_model.hpp"
#include "ptypilot/presets.hpp"
#include "ptypilot/specimen.hpp"

namespace ptypilot::sim {

struct SimulatedSpecimen {
  ExperimentPreset preset;
  std::uint64_t seed = 0;
  ObjectGrid grid;
  std::vector<Atom> atoms;
  RealImage potential_VA;  // projected potential
  RealImage phase_rad;     // sigma * potential: the V of the paper, what a reconstruction recovers
  RealImage material;      // 1 where the specimen has material, 0 in vacuum (material_mask)
};

// The share of the scan FOV's pixels (the FOV crop: every object pixel from the FOV origin to
// its far corner, both included) that hold material.
double fov_material_fraction(const SimulatedSpecimen& specimen);

// Deterministic in (preset, seed, vacancies).
SimulatedSpecimen simulate_specimen(const ExperimentPreset& preset, std::uint64_t seed,
                                    int vacancies = 3);

class FrameSimulator {
 public:
  // dose_e_per_A2 <= 0 gives noise-free frames normalised to electrons_per_frame = 1; a positive
  // dose gives Poisson counts with dose * step^2 electrons per frame on average (the dose of a
  // full raster at the preset's step). `effects` (experimental_effects.hpp) are what the
  // microscope adds; the defaults add nothing and leave the frames as they were without them.
  FrameSimulator(const SimulatedSpecimen& specimen, double dose_e_per_A2, std::uint64_t noise_seed,
                 const ExperimentalEffects& effects = {});

  double electrons_per_frame() const { return electrons_per_frame_; }
  int window_px() const { return model_.window_px(); }
  int detector_px() const { return model_.probe_config().detector_side_px(); }

  // detector_px^2 floats per position into `frames`: the far field on the window's grid, of
  // which the detector keeps its central pixels (crop_to_detector), then the dose and noise.
  Status frames(std::span<const Vec2> positions_A, std::span<float> frames);

 private:
  ForwardModel model_;
  RealImage phase_rad_;
  double electrons_per_frame_;
  bool noisy_;
  std::mt19937_64 rng_;
  std::unique_ptr<ExperimentalSimulator> effects_;  // null without effects
};

}  // namespace ptypilot::sim
