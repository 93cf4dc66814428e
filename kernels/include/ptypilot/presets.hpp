// Named experiment presets. The two "-paper" presets follow the settings of Schloz et al.,
// Sci. Rep. 13, 8732 (2023), Methods.
//
// The paper's detector and reconstruction sampling do not fit one window the size of the
// detector (1.68 mrad pixels on 64 px would give a 0.45 A real-space pixel, yet it reconstructs
// at 0.154 A). mos2-paper keeps what the reconstruction needs, the real-space pixel, and lets the
// detector see the angles that implies. So the angular pixel is
// chosen as lambda / (N * pixel_A): 4.937 mrad for mos2-paper, where a 64 px window at 0.154 A
// around a 100 x 100 raster of 0.2 A steps gives the paper's 200 x 200 px object. dwcnt-paper
// keeps the paper's 0.140 A pixel; its 86 x 86 patterns become 96 x 96 (2^5 * 3; 86 = 2 * 43
// transforms slowly), at 3.621 mrad.
//
// mos2-paper-detector keeps the paper's detector instead: 64 x 64 pixels of 1.68 mrad (its
// 0.84 mrad pixels binned by 2), +-54 mrad, in a 192 px reconstruction window (ProbeConfig::
// detector_px), so the object pixel is 0.151 A and the unmeasured high angles are left free, as
// the paper's reconstruction does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ptypilot/optics.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/specimen.hpp"

namespace ptypilot::sim {

struct ExperimentPreset {
  std::string name;
  std::string description;
  SpecimenKind specimen = SpecimenKind::kMoS2;
  ProbeConfig probe;
  int scan_rows = 0;
  int scan_cols = 0;
  double step_A = 0.0;
  int margin_px = 0;  // object pixels beyond the outermost probe windows
  // SpecimenConfig::material_fraction: 0, the specimen kind's own share of material.
  double material_fraction = 0.0;

  ObjectGrid object_grid() const;
  double fov_height_A() const { return (scan_rows - 1) * step_A; }
  double fov_width_A() const { return (scan_cols - 1) * step_A; }
};

// Throws std::invalid_argument naming the known presets.
const ExperimentPreset& experiment_preset(std::string_view name);
std::vector<std::string> experiment_preset_names();

}  // namespace ptypilot::sim
