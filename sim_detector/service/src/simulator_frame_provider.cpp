// SimulatorFrameProvider, declared in ptypilot/sim/frame_provider.hpp: the
// forward model on a simulated specimen.
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "ptypilot/frame_geometry.hpp"

#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/sim/frame_provider.hpp"
#include "ptypilot/presets.hpp"

namespace ptypilot::sim {

namespace {

PixelType choose_dtype(const SimulatorFrameSettings& settings) {
  if (settings.dtype) return *settings.dtype;
  // A point-spread or read noise leaves fractions of an electron, which integers would round.
  const bool whole = settings.effects.psf_sigma_px == 0 && settings.effects.read_noise_e == 0;
  return settings.dose_e_per_A2 > 0 && whole ? PixelType::kUint16 : PixelType::kFloat32;
}

}  // namespace

SimulatorFrameProvider::SimulatorFrameProvider(const SimulatorFrameSettings& settings)
    : preset_(settings.preset),
      specimen_(simulate_specimen(experiment_preset(settings.preset), settings.seed)),
      simulator_(specimen_, settings.dose_e_per_A2, settings.noise_seed, settings.effects) {
  format_.rows = format_.cols = simulator_.detector_px();
  format_.dtype = choose_dtype(settings);
  format_.electrons_per_frame = simulator_.electrons_per_frame();
  format_.energy_keV = specimen_.preset.probe.energy_keV;
  format_.source = "preset " + settings.preset + ", seed " + std::to_string(settings.seed);
  if (settings.effects.any()) format_.source += ", effects " + to_string(settings.effects);
  if (!(settings.dose_e_per_A2 > 0) && format_.dtype != PixelType::kFloat32)
    throw std::invalid_argument(
        "noise-free frames (dose 0) are fractions of an electron and would round to 0 as "
        "integers; use dtype float32 or a positive dose");
}

Status SimulatorFrameProvider::check(Vec2 position_A) const {
  // The same placement the forward model uses: finite, inside the FOV, its probe window on the
  // object.
  WindowPlacement placement;
  Status s = place_window(specimen_.grid, format_.rows, position_A, &placement);
  if (!s.ok()) return {s.code(), s.message() + " (preset " + preset_ + ")"};
  return Status::Ok();
}

Status SimulatorFrameProvider::frames(std::span<const Vec2> positions_A, std::span<float> frames,
                                      std::span<FrameOrigin> origins) {
  for (FrameOrigin& o : origins.first(std::min(origins.size(), positions_A.size()))) o = {};
  if (Status s = simulator_.frames(positions_A, frames); !s.ok()) return s;
  // The forward model computes the reconstructor's FFT layout; a detector sends frames centred
  // (frame_geometry.hpp), and so does this one, so that serve's default geometry reads it.
  const std::size_t pixels = std::size_t(format_.rows) * format_.cols;
  std::vector<float> centred(pixels);
  for (std::size_t i = 0; i < positions_A.size(); ++i) {
    const std::span<float> frame = frames.subspan(i * pixels, pixels);
    fftshift_image(frame, format_.rows, format_.cols, centred);
    std::copy(centred.begin(), centred.end(), frame.begin());
  }
  return Status::Ok();
}

}  // namespace ptypilot::sim
