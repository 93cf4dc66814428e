#include "ptypilot/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "ptypilot/detector.hpp"

namespace ptypilot::sim {

SimulatedSpecimen simulate_specimen(const ExperimentPreset& preset, std::uint64_t seed,
                                    int vacancies) {
  SimulatedSpecimen s;
  s.preset = preset;
  s.seed = seed;
  s.grid = preset.object_grid();
  SpecimenConfig config;
  config.kind = preset.specimen;
  config.seed = seed;
  config.vacancies = vacancies;
  config.material_fraction = preset.material_fraction;
  config.fov_origin_A = s.grid.fov_origin_A;
  config.fov_height_A = s.grid.fov_height_A;
  config.fov_width_A = s.grid.fov_width_A;
  const double height_A = s.grid.rows * s.grid.pixel_A;
  const double width_A = s.grid.cols * s.grid.pixel_A;
  s.atoms = build_specimen(config, height_A, width_A);
  s.material = material_mask(config, s.grid.rows, s.grid.cols, s.grid.pixel_A);
  s.potential_VA = projected_potential_VA(s.atoms, s.grid.rows, s.grid.cols, s.grid.pixel_A);
  const auto sigma = static_cast<float>(interaction_constant_rad_per_VA(preset.probe.energy_keV));
  s.phase_rad = s.potential_VA;
  for (float& v : s.phase_rad.vector()) v *= sigma;
  return s;
}

double fov_material_fraction(const SimulatedSpecimen& specimen) {
  const ObjectGrid& g = specimen.grid;
  // The same pixels as ptypilot.figures.fov_crop.
  const int r0 = static_cast<int>(std::lround(g.fov_origin_A.y / g.pixel_A));
  const int c0 = static_cast<int>(std::lround(g.fov_origin_A.x / g.pixel_A));
  const int r1 = r0 + static_cast<int>(std::lround(g.fov_height_A / g.pixel_A)) + 1;
  const int c1 = c0 + static_cast<int>(std::lround(g.fov_width_A / g.pixel_A)) + 1;
  double material = 0.0;
  for (int i = r0; i < r1; ++i) {
    for (int j = c0; j < c1; ++j) material += specimen.material(i, j);
  }
  return material / (double(r1 - r0) * (c1 - c0));
}

FrameSimulator::FrameSimulator(const SimulatedSpecimen& specimen, double dose_e_per_A2,
                               std::uint64_t noise_seed, const ExperimentalEffects& effects)
    : model_(specimen.preset.probe, specimen.grid),
      phase_rad_(specimen.phase_rad),
      electrons_per_frame_(dose_e_per_A2 > 0
                               ? dose_e_per_A2 * specimen.preset.step_A * specimen.preset.step_A
                               : 1.0),
      noisy_(dose_e_per_A2 > 0),
      rng_(noise_seed),
      effects_(effects.any() ? std::make_unique<ExperimentalSimulator>(specimen, effects, noise_seed)
                             : nullptr) {}

Status FrameSimulator::frames(std::span<const Vec2> positions_A, std::span<float> frames) {
  const int w = window_px(), d = detector_px();
  const std::size_t ww = std::size_t(w) * w, dd = std::size_t(d) * d;
  if (frames.size() != positions_A.size() * dd)
    return invalid_argument("output holds " + std::to_string(frames.size()) + " values, need " +
                            std::to_string(positions_A.size() * dd));
  // The far field on the window's grid, through the effects where any are on.
  auto intensities = [&](std::span<const Vec2> nominal, std::span<float> patterns) {
    return effects_ ? effects_->intensities(effects_->actual_positions(nominal), patterns)
                    : model_.intensities(phase_rad_, nominal, patterns);
  };
  if (d == w) {
    if (Status s = intensities(positions_A, frames); !s.ok()) return s;
  } else {
    // In chunks, so that a full raster's window-sized patterns need not exist at once.
    constexpr std::size_t kChunk = 64;
    std::vector<float> window(kChunk * ww);
    for (std::size_t first = 0; first < positions_A.size(); first += kChunk) {
      const std::size_t count = std::min(kChunk, positions_A.size() - first);
      std::span<float> patterns(window.data(), count * ww);
      if (Status s = intensities(positions_A.subspan(first, count), patterns); !s.ok()) {
        // The model names the position within the chunk.
        return {s.code(), "chunk from position " + std::to_string(first) + ": " + s.message()};
      }
      for (std::size_t p = 0; p < count; ++p)
        crop_to_detector(patterns.subspan(p * ww, ww), w, d, frames.subspan((first + p) * dd, dd));
    }
  }
  const auto scale = static_cast<float>(electrons_per_frame_);
  if (!noisy_) {
    for (float& v : frames) v *= scale;
  } else {
    for (float& v : frames) {
      const double mean = double(v) * electrons_per_frame_;
      v = mean > 0 ? static_cast<float>(std::poisson_distribution<long>(mean)(rng_)) : 0.0f;
    }
  }
  if (effects_) effects_->detector_response(frames, noisy_);
  return Status::Ok();
}

}  // namespace ptypilot::sim
