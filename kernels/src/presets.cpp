#include "ptypilot/presets.hpp"

#include <stdexcept>
#include <string>

namespace ptypilot::sim {
namespace {

ExperimentPreset mos2_paper() {
  ExperimentPreset p;
  p.name = "mos2-paper";
  p.description = "monolayer MoS2, 60 kV, 33 mrad, 64x64 patterns, 100x100 raster at 0.2 A";
  p.specimen = SpecimenKind::kMoS2;
  p.probe.energy_keV = 60.0;
  p.probe.semiangle_mrad = 33.0;
  p.probe.window_px = 64;
  p.probe.detector_pixel_mrad = 4.937;  // 0.1540 A real-space pixel, see the header
  p.scan_rows = p.scan_cols = 100;
  p.step_A = 0.2;
  p.margin_px = 3;  // 129 + 65 + 2 * 3 = 200 px
  return p;
}

// The paper's detector: 64 x 64 patterns at 1.68 mrad (+-54 mrad), reconstructed on a window
// three times as large, so that the object pixel is lambda / (192 * 1.68 mrad) = 0.151 A, close
// to the paper's 0.154 A, and the angles beyond the detector are left free (detector.hpp).
ExperimentPreset mos2_paper_detector() {
  ExperimentPreset p = mos2_paper();
  p.name = "mos2-paper-detector";
  p.description = "monolayer MoS2 with the paper's detector: 60 kV, 33 mrad, 64x64 patterns at "
                  "1.68 mrad reconstructed 3x super-resolved (0.151 A), 100x100 raster at 0.2 A";
  p.probe.window_px = 192;
  p.probe.detector_px = 64;
  p.probe.detector_pixel_mrad = 1.68;
  return p;
}

ExperimentPreset dwcnt_paper() {
  ExperimentPreset p;
  p.name = "dwcnt-paper";
  p.description = "double-walled carbon nanotube, 60 kV, 40 mrad, 96x96 patterns (paper: 86x86), "
                  "115x115 raster at 0.2 A";
  p.specimen = SpecimenKind::kDwcnt;
  p.probe.energy_keV = 60.0;
  p.probe.semiangle_mrad = 40.0;
  p.probe.window_px = 96;
  p.probe.detector_pixel_mrad = 3.621;  // 0.1400 A real-space pixel
  p.scan_rows = p.scan_cols = 115;
  p.step_A = 0.2;
  p.margin_px = 3;
  return p;
}

ExperimentPreset graphene_small() {
  // A quick preset for tests and the smoke demo: graphene, the mos2-paper optics, 32x32 raster.
  ExperimentPreset p = mos2_paper();
  p.name = "graphene-small";
  p.description = "graphene, 60 kV, 33 mrad, 64x64 patterns, 32x32 raster at 0.3 A";
  p.specimen = SpecimenKind::kGraphene;
  p.scan_rows = p.scan_cols = 32;
  p.step_A = 0.3;
  return p;
}

// The mos2-paper optics and raster on another specimen (specimen.hpp): with vacuum in the
// field, or a grain boundary.
ExperimentPreset paper_optics_on(SpecimenKind kind, const char* name, const char* specimen) {
  ExperimentPreset p = mos2_paper();
  p.name = name;
  p.description = std::string(specimen) + ", 60 kV, 33 mrad, 64x64 patterns, 100x100 raster at 0.2 A";
  p.specimen = kind;
  return p;
}

// The flake at the nanoparticles' share of material (kParticleMaterialFraction) and with no
// film under it: beside nanoparticles-paper, it shows what the film costs a strategy that
// seeks material.
ExperimentPreset mos2_small_flake_paper() {
  ExperimentPreset p = paper_optics_on(SpecimenKind::kMoS2Flake, "mos2-small-flake-paper",
                                       "a MoS2 flake over 24 % of the FOV in vacuum");
  p.material_fraction = kParticleMaterialFraction;
  return p;
}

// Defocused-probe ptychography, the low-dose practice: a wider probe spreads the dose and lights
// more of the specimen per pattern. Practice uses tens of nm, but the 64 px window spans only
// 9.9 A at 0.154 A and the probe wraps around it (make_probe is periodic), so the defocus here is
// what still fits: 60 A at 33 mrad is a 2.0 A geometric radius (rms radius 1.6 A against 0.85 A
// in focus), with under 1 % of the intensity beyond 4.5 A of the centre (0.4 % in focus; 80 A
// would put 1.5 % there). Simulator and reconstructor both take it from the preset.
ExperimentPreset mos2_defocused_paper() {
  ExperimentPreset p = mos2_paper();
  p.name = "mos2-defocused-paper";
  p.description = "monolayer MoS2, 60 kV, 33 mrad, 6 nm underfocus, 64x64 patterns, 100x100 "
                  "raster at 0.2 A";
  p.probe.defocus_A = 60.0;
  return p;
}

const std::vector<ExperimentPreset>& presets() {
  static const std::vector<ExperimentPreset> all = {
      mos2_paper(),
      mos2_paper_detector(),
      dwcnt_paper(),
      graphene_small(),
      paper_optics_on(SpecimenKind::kMoS2Flake, "mos2-flake-paper",
                  "a MoS2 flake over 40 % of the FOV in vacuum"),
      mos2_small_flake_paper(),
      paper_optics_on(SpecimenKind::kMoS2Holes, "mos2-holes-paper",
                  "MoS2 with holes, 40 % of the FOV vacuum"),
      paper_optics_on(SpecimenKind::kNanoparticles, "nanoparticles-paper",
                  "2-3 Au clusters over 24 % of the FOV on a thin amorphous carbon film"),
      paper_optics_on(SpecimenKind::kMoS2GrainBoundary, "mos2-grain-boundary-paper",
                  "two MoS2 grains turned 12-30 degrees, meeting on a line across the FOV"),
      mos2_defocused_paper(),
  };
  return all;
}

}  // namespace

ObjectGrid ExperimentPreset::object_grid() const {
  return object_grid_for_fov(fov_height_A(), fov_width_A(), real_space_pixel_A(probe),
                             probe.window_px, margin_px);
}

const ExperimentPreset& experiment_preset(std::string_view name) {
  for (const auto& p : presets())
    if (p.name == name) return p;
  std::string known;
  for (const auto& p : presets()) known += (known.empty() ? "" : ", ") + p.name;
  throw std::invalid_argument("unknown preset '" + std::string(name) + "'; known: " + known);
}

std::vector<std::string> experiment_preset_names() {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.push_back(p.name);
  return names;
}

}  // namespace ptypilot::sim
