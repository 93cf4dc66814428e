// What the readers of recorded_dataset.hpp share: the sidecar, element types and their
// conversion to float, and one opener per file family. Internal to this library.
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/recorded/recorded_dataset.hpp"

namespace ptypilot::recorded {

// The sidecar NAME.json (see recorded_dataset.hpp). Every field is unset when the file is absent.
struct Sidecar {
  std::filesystem::path path;  // where it was looked for
  bool present = false;
  std::optional<double> energy_keV, semiangle_mrad, scan_step_A, detector_pixel_mrad, defocus_A,
      Cs_mm, rotation_deg, dose_e_per_A2;
  // The reconstruction window per side, where it is larger than the frames (super-resolution;
  // ProbeConfig::detector_px).
  std::optional<double> window_px;
  std::optional<std::array<int, 2>> scan_shape;
  std::optional<std::filesystem::path> true_potential;  // resolved against the sidecar's folder
  // The frame geometry (frame_geometry.hpp): frame_layout "centred" | "fft" (absent: centred),
  // disk_offset_px [dy, dx], flip; rotation_deg above is the geometry's rotation.
  std::optional<FrameLayout> frame_layout;
  std::optional<std::array<double, 2>> disk_offset_px;
  std::optional<bool> flip;
};

// NAME.json beside `data_file` (NAME: its name without the extension).
std::filesystem::path sidecar_path_for(const std::filesystem::path& data_file);
// Reads `path` if it exists. Throws std::runtime_error naming it for bad JSON, an unknown key or
// a value out of range.
Sidecar read_sidecar(const std::filesystem::path& path);

// The probe and scan settings of a data set: what the sidecar says, else what the file said
// (`from_file`, filled by the reader). `format_needs` names, for the error message, what a data
// set of this format must provide. Throws std::runtime_error naming the data file and the
// sidecar for a required setting that neither gives.
struct Settings {
  std::optional<double> energy_keV, semiangle_mrad, scan_step_A, detector_pixel_mrad, defocus_A,
      Cs_mm, rotation_deg, dose_e_per_A2;
  std::optional<std::array<int, 2>> scan_shape;
  std::optional<FrameLayout> frame_layout;  // unset: centred, as detectors and py4DSTEM store
  std::optional<std::array<double, 2>> disk_offset_px;  // [dy, dx]; unset: 0
};
Settings merge_settings(const Sidecar& sidecar, const Settings& from_file);
// Fills info.probe (detector = frame_rows; window_px = the sidecar's window_px, else the same), rotation and dose from `settings`, and returns the
// scan step. Throws as described above.
double apply_settings(const Settings& settings, const Sidecar& sidecar, RecordedDatasetInfo& info,
                      const std::string& format_needs);

// A number type as a file stores it.
struct ElementType {
  char kind = 'u';  // 'u' unsigned, 'i' signed, 'f' floating point, 'b' boolean
  std::size_t bytes = 2;
  bool big_endian = false;
};
std::string describe(ElementType type);     // numpy style: "<u2", ">u4", "|u1"
PixelType wire_type_for(ElementType type);  // the same type when the wire has it, else float32
// `count` elements starting at `first`, `stride_bytes` apart, as floats into `out`.
void to_float(ElementType type, const std::byte* first, std::size_t stride_bytes, std::size_t count,
              float* out);

// The electrons a frame receives on average at a full-raster dose, 0 when unknown.
double electrons_per_frame(const RecordedDatasetInfo& info);

// The raster nodes of info.raster, row by row: the recorded positions of a grid format. Throws
// std::runtime_error naming the file for more than kMaxFrames (the positions alone would take
// gigabytes; such a shape is a corrupt header or sidecar, not a scan).
inline constexpr std::size_t kMaxFrames = 100'000'000;
std::vector<Vec2> grid_positions(const RecordedDatasetInfo& info);

std::unique_ptr<RecordedDataset> open_npy(const std::filesystem::path& path);
std::unique_ptr<RecordedDataset> open_mib(const std::filesystem::path& path);
// A ptypilot recording, a DECTRIS master file or an EMD / py4DSTEM file, by content.
std::unique_ptr<RecordedDataset> open_hdf5(const std::filesystem::path& path);

}  // namespace ptypilot::recorded
