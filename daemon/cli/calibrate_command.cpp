// `ptypilot calibrate --dataset PATH`: the frame geometry measured from a recorded data set
// (kernels/include/ptypilot/calibration.hpp): the bright-field disk's centre and radius against
// the optics, the scan rotation and flip from the curl of the centre-of-mass field. Prints one
// JSON object; --out writes a config that `serve --config` takes, with the measured geometry.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "commands.hpp"
#include "ptypilot/calibration.hpp"
#include "ptypilot/core/config.hpp"
#include "ptypilot/presets.hpp"
#include "ptypilot/recorded/recorded_dataset.hpp"
#include "ptypilot/wire/command.hpp"

namespace ptypilot {
namespace {

nlohmann::json pair(double a, double b) { return nlohmann::json::array({a, b}); }

int calibrate_dataset(const CliArgs& args) {
  if (!args.has("dataset")) throw UsageError("calibrate needs --dataset PATH");
  if (args.has("config") && args.has("preset"))
    throw UsageError("calibrate takes the optics from --config or --preset, not both");
  std::unique_ptr<RecordedDataset> dataset = open_recorded_dataset(args.get("dataset"));
  const RecordedDatasetInfo& info = dataset->info();
  if (info.frame_rows != info.frame_cols)
    throw std::runtime_error(info.path.string() + ": frames are " +
                             std::to_string(info.frame_rows) + " x " +
                             std::to_string(info.frame_cols) + "; calibrate needs square frames");

  // The optics the data is checked against: a config's (or its preset's), a preset's, or else
  // what the data set says of itself.
  ProbeConfig probe = info.probe;
  std::string optics_from = "dataset";
  nlohmann::json base_config;
  FrameGeometrySettings configured_settings;
  if (args.has("config")) {
    const ServeConfig config = load_serve_config(args.get("config"));
    probe = config.session.probe;
    optics_from = "config";
    base_config = config.to_json();
    configured_settings = config.detector.geometry;
  } else if (args.has("preset")) {
    probe = sim::experiment_preset(args.get("preset")).probe;
    optics_from = "preset " + args.get("preset");
  }
  if (!(probe.semiangle_mrad > 0) || !(probe.detector_pixel_mrad > 0))
    throw std::runtime_error("calibrate needs the semi-angle and the detector pixel (mrad) to "
                             "check the disk against: give --config or --preset, or put them in "
                             "the data set's sidecar");
  const double expected_radius_px = probe.semiangle_mrad / probe.detector_pixel_mrad;

  const int side = info.frame_rows;
  const auto nodes = raster_nodes(dataset->positions_A(), info.raster);
  const Calibration cal = calibrate(
      dataset->frame_count(), side, info.geometry.layout,
      [&](std::size_t i, std::span<float> raw) {
        const Status s = dataset->read_frame(i, raw);
        if (!s.ok()) throw CalibrationError(s.message());
        return true;
      },
      nodes, info.raster.rows, info.raster.cols, expected_radius_px);

  // The measured geometry, with what calibration does not measure (crop, bin) from the config.
  FrameGeometry geometry = cal.geometry;
  geometry.crop_px = configured_settings.crop_px;
  geometry.bin = configured_settings.bin;
  nlohmann::json geometry_block = geometry_json(geometry);
  geometry_block["disk_radius_px"] = cal.disk.radius_px;
  if (!configured_settings.mask_path.empty())
    geometry_block["mask_path"] = configured_settings.mask_path;
  if (!configured_settings.flat_field_path.empty())
    geometry_block["flat_field_path"] = configured_settings.flat_field_path;

  nlohmann::json out = {
      {"dataset", info.path.string()},
      {"format", info.format},
      {"frames", cal.frames},
      {"frames_on_grid", cal.frames_on_grid},
      {"grid", {info.raster.rows, info.raster.cols}},
      {"frame_px", side},
      {"layout", std::string(to_string(info.geometry.layout))},
      {"disk_centre_px", pair(cal.disk.centre_y_px, cal.disk.centre_x_px)},
      {"disk_offset_px", pair(cal.disk.offset_y_px, cal.disk.offset_x_px)},
      {"disk_radius_px", cal.disk.radius_px},
      {"optics_from", optics_from},
      {"semiangle_mrad", probe.semiangle_mrad},
      {"detector_pixel_mrad", probe.detector_pixel_mrad},
      {"expected_radius_px", cal.expected_radius_px},
      {"radius_disagreement", cal.radius_disagreement},
      {"rotation_deg", cal.rotation.rotation_deg},
      {"flip", cal.rotation.flip},
      {"curl_residual", cal.rotation.curl_residual},
      {"other_flip_curl_residual", cal.rotation.other_flip_curl_residual},
      {"phase_dark_field_correlation", cal.rotation.phase_dark_field_correlation},
      {"curl_cells", cal.rotation.cells},
      {"dataset_geometry", geometry_json(info.geometry)},
      {"geometry", geometry_block}};

  if (args.has("out")) {
    // A whole config serve takes: the --config given, or the data set's fragment (what replay
    // --print-config prints), with the measured geometry as its detector.geometry.
    nlohmann::json config = base_config.is_null() ? session_config_fragment(info) : base_config;
    config["detector"]["geometry"] = geometry_block;
    parse_serve_config(config);  // what serve would refuse, refused here
    std::ofstream file(args.get("out"));
    if (!(file << config.dump(2) << "\n"))
      throw std::runtime_error("cannot write " + args.get("out"));
    out["out"] = args.get("out");
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

Command calibrate_command() {
  return {.name = "calibrate",
          .summary = "measure the frame geometry from a recorded data set (prints JSON)",
          .description =
              "Measures, from the data: the bright-field disk's centre and radius in the mean "
              "frame (checked against semiangle / detector pixel of the optics), and the "
              "scan-to-detector rotation and flip that make the frames' centre-of-mass field "
              "curl-free, the 180-degree ambiguity resolved by the sign of the deflection "
              "(towards the atoms, which the dark field shows). Positions are taken on the data set's raster; ones between "
              "nodes are left out. Prints one JSON object: disk_centre_px, disk_offset_px, "
              "disk_radius_px, expected_radius_px, radius_disagreement, rotation_deg, flip, "
              "curl_residual, other_flip_curl_residual, phase_dark_field_correlation, geometry (the "
              "detector.geometry block). Exit 1 with the reason for unreadable data, no disk, "
              "or too few positions for the curl (README: Frame geometry, Calibration).",
          .options = {{"dataset", "PATH", "",
                       "the recorded data set (.npy + sidecar, .mib, ptypilot .h5, EMD, DECTRIS)"},
                      {"config", "FILE", "",
                       "a serve config: the optics to check against, the base of --out"},
                      {"preset", "NAME", "", "an experiment preset: the optics to check against"},
                      {"out", "FILE", "",
                       "write a config with the measured detector.geometry (serve --config)"}},
          .run = calibrate_dataset};
}

}  // namespace ptypilot
