#include "ptypilot/core/config.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "ptypilot/presets.hpp"
#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/wire/config_schema.hpp"
#include "ptypilot/wire/json_guard.hpp"
#include "ptypilot/wire/npy.hpp"
#include "ptypilot/wire/frame.hpp"

namespace ptypilot {

using nlohmann::json;

template <typename V>
void describe(V& v, SessionConfig& c) {
  v.field("preset", c.preset,
          "an experiment preset (mos2-paper, ...): fills probe, raster and margin_px unless given");
  if constexpr (V::kReads) {
    if (!c.preset.empty()) {
      v.validate("preset", [&] {
        const auto& preset = sim::experiment_preset(c.preset);  // throws naming the known ones
        c.probe = preset.probe;
        c.raster = {preset.scan_rows, preset.scan_cols, preset.step_A};
        c.margin_px = preset.margin_px;
      });
    }
  }
  v.section("probe", c.probe, "the probe");
  v.section("raster", c.raster, "the scan raster positions live on");
  v.field("total_positions", c.total_positions, "the position (dose) budget", Rule::kPositive);
  v.field("sub_sequence_size", c.sub_sequence_size,
          "positions per sub-sequence (the paper: 50-100)", Rule::kPositive);
  v.field("dwell_s", c.dwell_s, "dwell time per position (s)", Rule::kNonNegative);
  v.field("frame_timeout_s", c.frame_timeout_s,
          "no frame for this long while frames are due ends the session in error",
          Rule::kPositive);
  v.field("seed", c.seed, "seeds the policy");
  v.field("margin_px", c.margin_px, "object pixels beyond the outermost probe windows",
          Rule::kNonNegative);
  if constexpr (V::kReads) {
    if (c.raster.rows <= 0 || c.raster.cols <= 0 || c.raster.step_A <= 0)
      v.fail("raster", "no scan raster: give session.preset or session.raster {rows, cols, step_A}");
    if (c.total_positions > c.raster.rows * c.raster.cols)
      v.fail("total_positions", "exceeds the " + std::to_string(c.raster.rows * c.raster.cols) +
                                    " positions of the raster");
    if (c.sub_sequence_size > c.total_positions)
      v.fail("sub_sequence_size", "is larger than total_positions");
  }
}

template <typename V>
void describe(V& v, ReconstructionConfig& c) {
  v.choice("backend", c.backend, {"auto", "cpu", "cuda"},
           "auto: CUDA where a device is present, else the CPU");
  v.choice("loss", c.loss, {"amplitude", "intensity"},
           "amplitude (robust on sparse, noisy data) or intensity");
  v.field("iterations_per_update", c.iterations_per_update,
          "iterations after each sub-sequence (the paper: 5)", Rule::kNonNegative);
  v.field("step_size", c.step_size, "gradient step, relative to the illumination", Rule::kPositive);
  v.field("regularization", c.regularization, "step regularisation in weakly lit regions",
          Rule::kPositive);
  v.field("threads", c.threads, "CPU threads; 0: every core OpenMP reports", Rule::kNonNegative);
  v.field("batch", c.batch, "CPU: patterns per FFT batch (8-32 keeps a batch in L2)",
          Rule::kPositive);
  v.field("positivity", c.priors.positivity,
          "prior: V >= 0 after each step (weak-phase specimens; vacuum is zero)");
  v.field("dark_smoothing", c.priors.dark_smoothing,
          "prior: diffusion weight where few electrons went, (1 - W / max W) times this; 0: off, "
          "at most 0.25",
          Rule::kNonNegative);
  v.field("total_variation", c.priors.total_variation,
          "prior: step of the total-variation flow; 0: off, at most 0.005", Rule::kNonNegative);
  v.field("sparsity", c.priors.sparsity,
          "prior: soft threshold of V per step, rad (the L1 proximal step); 0: off, at most 0.1",
          Rule::kNonNegative);
  if constexpr (V::kReads) {
    if (c.priors.dark_smoothing > kMaxDarkSmoothing)
      v.fail("dark_smoothing", "is above " + std::to_string(kMaxDarkSmoothing) +
                                   ", where the explicit diffusion step becomes unstable");
    if (c.priors.total_variation > kMaxTotalVariation)
      v.fail("total_variation", "is above " + std::to_string(kMaxTotalVariation) +
                                    ", where the explicit TV step becomes unstable");
    if (c.priors.sparsity > kMaxSparsity)
      v.fail("sparsity", "is above " + std::to_string(kMaxSparsity) +
                             ", where the threshold erases a weak-phase specimen's atoms");
  }
}

template <typename V>
void describe(V& v, PolicyConfig& c) {
  v.choice("kind", c.kind,
           {"sparse-grid", "raster", "jittered-grid", "fermat-spiral", "sobol", "random",
            "heuristic", "material-density", "lattice-flank", "torchscript"},
           "the policy choosing the next positions");
  v.field("model_path", c.model_path, "torchscript only: the exported policy (.pt)");
  v.choice("material_scale", c.material_scale, {"brightest", "two-class"},
           "material-density only: material's weight saturates at half the brightest phase, or "
           "rises from the vacuum's level to a two-class split of the phase (specimens with "
           "vacuum only)");
  v.choice("placement", c.placement, {"direct", "density"},
           "direct: the policy's proposals are the positions; density: they say where to look, "
           "and material-density's greedy spacing places the positions there (for the learned "
           "policy taught by material-density)");
}

template <typename V>
void describe(V& v, SafetySettings& c) {
  v.field("min_distance_A", c.min_distance_A,
          "closer than this to a visited position is a duplicate; null: half the raster step",
          Rule::kNonNegative);
  v.field("snap_to_raster", c.snap_to_raster, "move proposed positions onto the raster");
}

template <typename V>
void describe(V& v, FrameGeometrySettings& c) {
  v.choice("layout", c.layout, {"centred", "fft"},
           "centred: the zero frequency at pixel floor(D/2), as detectors send; fft: at pixel 0");
  v.field("disk_offset_y_px", c.disk_offset_y_px,
          "the bright-field disk's centre minus floor(D/2), rows (raw pixels; whole pixels are "
          "rolled, the rest is the probe's tilt)");
  v.field("disk_offset_x_px", c.disk_offset_x_px, "the same along columns");
  v.field("disk_radius_px", c.disk_radius_px,
          "the disk's radius in raw pixels, for the layout check; 0: semiangle / detector pixel",
          Rule::kNonNegative);
  v.field("rotation_deg", c.rotation_deg,
          "scan-to-detector rotation: the scan's axes as they appear on the detector");
  v.field("flip", c.flip, "the scan's axes transposed on the detector");
  v.field("crop_px", c.crop_px, "crop the frames to their central crop_px per side; 0: no crop",
          Rule::kNonNegative);
  v.field("bin", c.bin, "sum bin x bin pixel blocks (after the crop)", Rule::kPositive);
  v.field("mask_path", c.mask_path,
          ".npy of per-pixel weights, the frames' shape: 0 leaves a dead or hot pixel out");
  v.field("flat_field_path", c.flat_field_path,
          ".npy of per-pixel gains, the frames' shape: frames are divided by it");
}

template <typename V>
void describe(V& v, GeometryCheckSettings& c) {
  v.field("frames", c.frames,
          "frames whose mean pattern is measured (or the first sub-sequence, if shorter)",
          Rule::kPositive);
  v.field("warn_offset_px", c.warn_offset_px,
          "warn (frame_disk_off_centre) when the disk's centre is farther than this from the "
          "configured disk offset (raw pixels)",
          Rule::kNonNegative);
  v.field("warn_radius_fraction", c.warn_radius_fraction,
          "warn (frame_disk_radius_disagrees) when the disk's radius differs from the expected "
          "one by more than this fraction",
          Rule::kNonNegative);
  v.field("refuse_offset_radii", c.refuse_offset_radii,
          "grossly wrong: the centre off by more than this many expected radii",
          Rule::kNonNegative);
  v.field("refuse_radius_fraction", c.refuse_radius_fraction,
          "grossly wrong: the radius off by more than this fraction", Rule::kNonNegative);
  v.field("refuse", c.refuse,
          "end the session (frame_geometry_refused) when the geometry is grossly wrong; false: "
          "warn only");
  v.field("require_disk", c.require_disk,
          "end the session when its first frames show no bright-field disk; false: such frames "
          "(flat, noise) are not judged");
}

template <typename V>
void describe(V& v, MerlinSettings& c) {
  v.field("control_port", c.control_port,
          "the Merlin's control port on the endpoint's host; 0: no control, only receive",
          Rule::kNonNegative);
  v.field("trigger_start", c.trigger_start,
          "TRIGGERSTART set at arm (1: rising edge, from the scan generator); -1: leave it");
  v.validate("trigger_start", [&] {
    if (c.trigger_start < -1 || c.trigger_start > 6)
      throw std::invalid_argument("must be -1 (leave it) or a TRIGGERSTART value 0..6");
  });
  v.field("timeout_s", c.timeout_s, "the longest wait for a control answer or the data connection",
          Rule::kPositive);
}

template <typename V>
void describe(V& v, DetectorConfig& c) {
  v.choice("kind", c.kind, {"zmq", "dectris-v1", "dectris-v2", "merlin"},
           "zmq: the native protocol; dectris-v1/-v2: a DECTRIS SIMPLON stream; merlin: a Merlin's "
           "TCP data port");
  v.field("endpoint", c.endpoint, "the detector's stream endpoint");
  v.field("bind", c.bind, "bind instead of connecting");
  v.field("receive_hwm", c.receive_hwm, "ZMQ receive high-water mark (frames)", Rule::kPositive);
  v.field("dtype", c.dtype, "the detector's pixel type: uint8 | uint16 | uint32 | float32");
  v.validate("dtype", [&] { parse_pixel_type(c.dtype); });
  v.field("first_frame_id", c.first_frame_id,
          "DECTRIS: the detector's number for the first frame of a series");
  v.field("max_pending_frames", c.max_pending_frames,
          "recorded frames waiting for the loop before ingest stops reading (backpressure)",
          Rule::kPositive);
  v.field("position_tolerance_A", c.position_tolerance_A,
          "a frame's position may differ from the issued one by this much", Rule::kNonNegative);
  v.section("geometry", c.geometry,
            "how frames map onto the reconstructor's (README: Frame geometry), applied at ingest");
  v.section("geometry_check", c.geometry_check,
            "the check of a session's first frames against the geometry (README: Calibration)");
  v.section("merlin", c.merlin, "merlin only: its control port and how a session arms it");
}


template <typename V>
void describe(V& v, ScanDriverConfig& c) {
  v.choice("kind", c.kind, {"sim-stage", "zmq", "point-list"},
           "sim-stage: ptypilot-sim; zmq: a scan generator; point-list: files in a directory");
  v.field("endpoint", c.endpoint, "the scan generator's command endpoint");
  v.field("ack_timeout_s", c.ack_timeout_s, "wait this long for each acknowledgement",
          Rule::kPositive);
  v.field("retries", c.retries, "resends of a command after an acknowledgement timeout",
          Rule::kNonNegative);
  v.field("directory", c.directory, "point-list only: where the lists go");
}

template <typename V>
void describe(V& v, RecorderSettings& c) {
  v.field("directory", c.directory, "where session files go");
  v.field("sync_every_frames", c.sync_every_frames, "flush the HDF5 file every this many frames",
          Rule::kPositive);
  v.field("min_free_bytes", c.min_free_bytes,
          "a write that would leave less free disk fails like a full disk; 0: off");
  v.field("reserve_bytes", c.reserve_bytes,
          "disk held during a session to close the file when the disk fills; 0: off");
  v.field("max_unissued_frames", c.max_unissued_frames,
          "frames of no issued position (never issued, or a repeat) recorded per session; "
          "beyond: counted in frames_unissued_not_recorded, not recorded");
}

template <typename V>
void describe(V& v, ControlConfig& c) {
  v.field("endpoint", c.endpoint, "control REQ/REP endpoint");
  v.field("events_endpoint", c.events_endpoint, "event PUB endpoint");
  v.field("server_key", c.server_key,
          "CURVE: the daemon's key pair file (NAME.key_secret, ptypilot keygen); \"\": no CURVE, "
          "loopback endpoints only");
  v.field("authorized_keys", c.authorized_keys,
          "CURVE: the clients' public keys, a line each: ROLE PUBLIC_KEY [NAME], ROLE observer, "
          "controller or operator");
}

template <typename V>
void describe(V& v, ServeConfig& c) {
  if constexpr (V::kReads) {
    if (!v.has("session")) v.fail("session", "missing: a session needs at least a preset or a probe and raster");
  }
  v.section("session", c.session, "the experiment");
  v.section("reconstruction", c.reconstruction, "the reconstructor");
  v.section("policy", c.policy, "the scan policy");
  v.section("safety", c.safety, "checks on every proposed position");
  v.section("detector", c.detector, "the frame stream");
  v.section("scan_driver", c.scan_driver, "the scan generator");
  v.section("recorder", c.recorder, "the session files");
  v.section("control", c.control, "remote control");
}

std::filesystem::path confine_directory(const std::filesystem::path& root,
                                        const std::string& directory, const std::string& key) {
  namespace fs = std::filesystem;
  const fs::path given = directory.empty() ? fs::path(".") : fs::path(directory);
  std::error_code ec;
  // weakly_canonical follows the symlinks of the part that exists and folds `..` in the rest,
  // which the recorder would then create as plain folders.
  const fs::path resolved = fs::weakly_canonical(given.is_relative() ? root / given : given, ec);
  if (ec) throw std::invalid_argument(key + ": cannot resolve '" + directory + "': " + ec.message());
  auto r = root.begin();
  for (auto p = resolved.begin(); r != root.end() && p != resolved.end() && *r == *p; ++r, ++p) {
  }
  if (r != root.end())
    throw std::invalid_argument(key + " '" + directory + "' resolves to " + resolved.string() +
                                ", outside the recorder root " + root.string() +
                                " (serve --recorder-root); choose a directory inside it");
  return resolved;
}

ServeConfig parse_serve_config(const json& j) {
  ServeConfig c = read_config_section<ServeConfig>(j, "config");
  return c;
}

DetectorConfig apply_detector_uri(DetectorConfig detector, const std::string& uri) {
  const auto scheme_end = uri.find("://");
  const std::string kind = scheme_end == std::string::npos ? "" : uri.substr(0, scheme_end);
  const std::string address = scheme_end == std::string::npos ? "" : uri.substr(scheme_end + 3);
  const auto colon = address.rfind(':');
  const bool merlin_default_port =
      kind == "merlin" && !address.empty() && colon == std::string::npos;
  if ((kind != "zmq" && kind != "dectris-v1" && kind != "dectris-v2" && kind != "merlin") ||
      (!merlin_default_port &&
       (colon == std::string::npos || colon == 0 || colon + 1 == address.size())))
    throw std::invalid_argument("--detector '" + uri +
                                "': expected zmq://HOST:PORT (native), dectris-v1://HOST:PORT, "
                                "dectris-v2://HOST:PORT or merlin://HOST[:PORT], e.g. "
                                "dectris-v1://dcu-host:9999");
  detector.kind = kind;
  detector.endpoint = "tcp://" + address + (merlin_default_port ? ":6342" : "");
  return detector;
}

ServeConfig load_serve_config(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot read config file " + path.string());
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The limits of a config sent over the control socket: reading it must not overflow the stack.
  if (const std::string why = check_json_text(text, kConfigJsonLimits); !why.empty())
    throw std::invalid_argument(path.string() + ": " + why);
  json j;
  try {
    j = json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    throw std::invalid_argument(path.string() + ": not valid JSON: " + e.what());
  }
  return parse_serve_config(j);
}

nlohmann::json ServeConfig::to_json() const { return write_config_section(*this); }

std::string serve_config_reference() {
  ServeConfig defaults;
  ConfigReferencer referencer;
  describe(referencer, defaults);
  return referencer.markdown();
}

ReconstructorConfig ServeConfig::reconstructor_config() const {
  ReconstructorConfig r;
  r.backend = reconstruction.backend;
  r.probe = session.probe;
  r.object = object_grid_for_fov(session.raster.height_A(), session.raster.width_A(),
                                 real_space_pixel_A(session.probe), session.probe.window_px,
                                 session.margin_px);
  r.loss = parse_loss(reconstruction.loss);
  r.step_size = reconstruction.step_size;
  r.regularization = reconstruction.regularization;
  r.threads = reconstruction.threads;
  r.batch = reconstruction.batch;
  r.priors = reconstruction.priors;
  r.expected_frames = session.total_positions;
  // The geometry's weights go to the loss, where the map's side is known before any frame: from
  // the mask or flat-field, or, without a crop, from the reconstructor's detector side.
  const FrameGeometry geometry = frame_geometry();
  const std::array<double, 2> tilt = probe_tilt_px(geometry);
  r.probe.tilt_y_px = tilt[0];
  r.probe.tilt_x_px = tilt[1];
  // The rotation beyond quarter turns is the positions' (scan_rotation.hpp): the frames are not
  // resampled; the reconstructor works on a detector-aligned grid and reports in scan axes.
  r.scan_rotation_deg = position_rotation_deg(geometry);
  const int out_side = session.probe.detector_side_px();
  int raw_side = geometry.crop_px == 0 ? out_side * geometry.bin : 0;
  if (!geometry.mask.empty() || !geometry.flat_field.empty())
    raw_side = static_cast<int>(
        std::lround(std::sqrt(double(std::max(geometry.mask.size(), geometry.flat_field.size())))));
  if (raw_side > 0) {
    const FrameGeometryMap map(geometry, raw_side);
    if (map.out_side() != out_side)
      throw std::invalid_argument(
          "detector.geometry: frames of " + std::to_string(raw_side) + " px become " +
          std::to_string(map.out_side()) + " px after crop_px and bin; the probe's detector has " +
          std::to_string(out_side));
    r.detector_mask = map.reconstructor_mask();
  }
  return r;
}

FrameGeometry ServeConfig::frame_geometry() const {
  const FrameGeometrySettings& s = detector.geometry;
  FrameGeometry g;
  g.layout = parse_frame_layout(s.layout);
  g.disk_offset_y_px = s.disk_offset_y_px;
  g.disk_offset_x_px = s.disk_offset_x_px;
  g.disk_radius_px = s.disk_radius_px;
  g.rotation_deg = s.rotation_deg;
  g.flip = s.flip;
  g.rotation_in_positions = true;  // sessions turn positions, not frames
  g.crop_px = s.crop_px;
  g.bin = s.bin;
  auto load = [](const std::string& path, const char* key) {
    if (path.empty()) return std::vector<float>{};
    std::size_t rows = 0, cols = 0;
    std::vector<float> map;
    try {
      map = read_npy_image(path, &rows, &cols);
    } catch (const std::exception& e) {
      throw std::invalid_argument(std::string("detector.geometry.") + key + ": " + e.what());
    }
    if (rows != cols)
      throw std::invalid_argument(std::string("detector.geometry.") + key + ": " + path +
                                  " is not square; frames are");
    return map;
  };
  g.mask = load(s.mask_path, "mask_path");
  g.flat_field = load(s.flat_field_path, "flat_field_path");
  if (!g.mask.empty() && !g.flat_field.empty() && g.mask.size() != g.flat_field.size())
    throw std::invalid_argument("detector.geometry: the mask and the flat-field differ in shape");
  return g;
}

SafetyConfig ServeConfig::safety_config() const {
  SafetyConfig s = safety_config_for(session.raster, session.total_positions);
  if (safety.min_distance_A) s.min_distance_A = *safety.min_distance_A;
  if (!safety.snap_to_raster) s.snap_step_A = 0.0;
  return s;
}

}  // namespace ptypilot
