// FrameProvider: where the detector service (detector_service.hpp) gets the frame for a scan
// position. The service owns the sockets, the scan-generator protocol and the pacing; a provider
// only answers "may the beam go there" and "what does the detector see there".
//
//   SimulatorFrameProvider   the forward model on a simulated specimen (`ptypilot sim-detector`)
//   RecordedFrameProvider    the frame of the nearest recorded position of a recorded data set
//                            (`ptypilot replay`, recorded_frame_provider.hpp)
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "ptypilot/wire/frame.hpp"
#include "ptypilot/image.hpp"
#include "ptypilot/simulator.hpp"
#include "ptypilot/status.hpp"

namespace ptypilot::sim {

// What every frame of a provider looks like on the wire.
struct FrameFormat {
  int rows = 0;
  int cols = 0;
  PixelType dtype = PixelType::kFloat32;
  double electrons_per_frame = 0.0;  // 0: unknown
  double energy_keV = 0.0;           // of the beam, for stream headers; 0: unknown
  std::string source;                // for logs: "preset mos2-paper, seed 1", "recorded X.npy"
};

// Where one frame came from: computed for the position itself, or a recorded frame taken at
// another position.
struct FrameOrigin {
  std::optional<std::uint64_t> recorded_frame;  // index in the data set; unset when computed
  double distance_A = 0.0;                      // from the requested position to the recorded one
  // No frame could be made (a recorded frame that cannot be read; the provider logged why): the
  // service sends nothing for it and the reader sees the gap, as with a detector that loses one.
  bool missing = false;
};

class FrameProvider {
 public:
  virtual ~FrameProvider() = default;
  virtual const FrameFormat& format() const = 0;
  // Ok if a frame can be made at this position, else why not (the service refuses the whole
  // command). Called for every position of every command.
  virtual Status check(Vec2 position_A) const = 0;
  // rows * cols floats per position into `frames`, row-major, and where each came from into
  // `origins` (one per position). Only called with positions that passed check(). A frame that
  // cannot be made is marked missing and the others are still made; an error status fails the
  // whole batch. Never throws.
  virtual Status frames(std::span<const Vec2> positions_A, std::span<float> frames,
                        std::span<FrameOrigin> origins) = 0;
};

struct SimulatorFrameSettings {
  std::string preset = "mos2-paper";
  std::uint64_t seed = 1;        // specimen
  double dose_e_per_A2 = 1e5;    // <= 0: noise-free frames that each sum to 1
  std::uint64_t noise_seed = 1;  // Poisson noise
  // Unset: uint16 counts when dose > 0 (what a counting detector sends), float32 when
  // noise-free (fractions of an electron) or when the effects spread or add to the counts.
  std::optional<PixelType> dtype;
  ExperimentalEffects effects;  // experimental_effects.hpp; none by default
};

class SimulatorFrameProvider final : public FrameProvider {
 public:
  // Builds the specimen. Throws std::invalid_argument for an unknown preset or an integer dtype
  // with noise-free frames (they would round to 0).
  explicit SimulatorFrameProvider(const SimulatorFrameSettings& settings);

  const FrameFormat& format() const override { return format_; }
  // Inside the preset's FOV, with the probe window on the object (the forward model's rule).
  Status check(Vec2 position_A) const override;
  Status frames(std::span<const Vec2> positions_A, std::span<float> frames,
                std::span<FrameOrigin> origins) override;

  const SimulatedSpecimen& specimen() const { return specimen_; }

 private:
  std::string preset_;
  SimulatedSpecimen specimen_;
  FrameSimulator simulator_;
  FrameFormat format_;
};

}  // namespace ptypilot::sim
