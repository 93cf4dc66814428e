#include "ptypilot/simulator.hpp"

namespace ptypilot::sim {

SimulatedSpecimen simulate_specimen(const ExperimentPreset& preset, std::uint64_t seed,
                                    int vacancies) {
  SimulatedSpecimen s;
  s.preset = preset;
  s.grid = preset.object_grid();
  SpecimenConfig config;
  config.kind = preset.specimen;
  config.seed = seed;
  config.vacancies = vacancies;
  const double height_A = s.grid.rows * s.grid.pixel_A;
  const double width_A = s.grid.cols * s.grid.pixel_A;
  s.atoms = build_specimen(config, height_A, width_A);
  s.potential_VA = projected_potential_VA(s.atoms, s.grid.rows, s.grid.cols, s.grid.pixel_A);
  const auto sigma = static_cast<float>(interaction_constant_rad_per_VA(preset.probe.energy_keV));
  s.phase_rad = s.potential_VA;
  for (float& v : s.phase_rad.vector()) v *= sigma;
  return s;
}

FrameSimulator::FrameSimulator(const SimulatedSpecimen& specimen, double dose_e_per_A2,
                               std::uint64_t noise_seed)
    : model_(specimen.preset.probe, specimen.grid),
      phase_rad_(specimen.phase_rad),
      electrons_per_frame_(dose_e_per_A2 > 0
                               ? dose_e_per_A2 * specimen.preset.step_A * specimen.preset.step_A
                               : 1.0),
      noisy_(dose_e_per_A2 > 0),
      rng_(noise_seed) {}

Status FrameSimulator::frames(std::span<const Vec2> positions_A, std::span<float> frames) {
  if (Status s = model_.intensities(phase_rad_, positions_A, frames); !s.ok()) return s;
  const auto scale = static_cast<float>(electrons_per_frame_);
  if (!noisy_) {
    for (float& v : frames) v *= scale;
    return Status::Ok();
  }
  for (float& v : frames) {
    const double mean = double(v) * electrons_per_frame_;
    v = mean > 0 ? static_cast<float>(std::poisson_distribution<long>(mean)(rng_)) : 0.0f;
  }
  return Status::Ok();
}

}  // namespace ptypilot::sim
