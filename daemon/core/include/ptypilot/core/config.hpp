// The daemon's configuration: one JSON file, one key per component, each mapped to a struct.
// Each struct's fields are declared once, in its describe() in config.cpp (the visitors are in
// ptypilot/wire/config_schema.hpp): that declaration parses, writes, and documents them
// (`ptypilot config reference`). Unknown keys are rejected, so that a typo never becomes a silent
// default. Example configs live in deploy/config/.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ptypilot/core/policy.hpp"
#include "ptypilot/core/safety.hpp"
#include "ptypilot/frame_geometry.hpp"
#include "ptypilot/optics.hpp"
#include "ptypilot/reconstructor.hpp"

namespace ptypilot {

struct SessionConfig {
  std::string preset;  // a sim_detector preset name; fills probe and raster unless given
  ProbeConfig probe;
  ScanRaster raster;
  int total_positions = 250;     // the position (dose) budget
  int sub_sequence_size = 50;    // positions per sub-sequence (the paper: 50-100)
  double dwell_s = 1e-3;
  double frame_timeout_s = 10.0; // no frame for this long while frames are due -> error
  std::uint64_t seed = 1;
  int margin_px = 3;             // object pixels beyond the outermost probe windows
};

struct ReconstructionConfig {
  std::string backend = "auto";
  std::string loss = "amplitude";
  int iterations_per_update = 5;  // the paper retrieves the potential at iteration 5
  double step_size = 1.0;
  double regularization = 0.05;
  int threads = 0;
  int batch = 16;
  PriorConfig priors;  // reconstructor.hpp "Priors"
};

// Unset, the session's Safety is safety_config_for(raster, total_positions), the settings
// training runs (ptypilot_core.Safety): dedupe at half a raster step, snap to the raster.
struct SafetySettings {
  // Closer than this to a visited position is a duplicate. Unset (absent or null in the JSON):
  // half the raster step. With snapping that drops exactly the repeated raster nodes.
  std::optional<double> min_distance_A;
  bool snap_to_raster = true;
};

// How the detector's frames map onto the reconstructor's (frame_geometry.hpp), applied once at
// ingest by the Session; the recorder keeps the frames as they arrived. The defaults are a
// detector's: frames centred, nothing else to correct.
struct FrameGeometrySettings {
  std::string layout = "centred";  // centred | fft
  double disk_offset_y_px = 0.0;
  double disk_offset_x_px = 0.0;
  double disk_radius_px = 0.0;  // 0: semiangle / detector pixel
  double rotation_deg = 0.0;
  bool flip = false;
  int crop_px = 0;
  int bin = 1;
  std::string mask_path;        // .npy of per-pixel weights (0: dead or hot), the frames' shape
  std::string flat_field_path;  // .npy of per-pixel gains, the frames' shape
};

// The check of a session's first frames against its geometry (calibration.hpp, check_disk): the
// bright-field disk of their mean, measured, against the configured offset and radius.
struct GeometryCheckSettings {
  int frames = 32;  // frames averaged (or the first sub-sequence, if shorter)
  double warn_offset_px = 0.35;
  double warn_radius_fraction = 0.10;
  double refuse_offset_radii = 0.5;
  double refuse_radius_fraction = 0.5;
  bool refuse = true;         // end the session when grossly wrong (false: warn only)
  bool require_disk = false;  // end the session when the frames show no disk (false: not judged)
};

// A Merlin's control port and how the daemon arms it (README: Wire protocols).
struct MerlinSettings {
  // On the data endpoint's host; 0: no control, the daemon only receives (the Merlin is armed
  // by other software).
  int control_port = 6341;
  // TRIGGERSTART set at arm: 1 rising edge (TTL), what a scan generator's trigger output
  // drives; -1 leaves the Merlin's setting.
  int trigger_start = 1;
  // Each control exchange and the data connection at arm wait at most this long.
  double timeout_s = 2.0;
};

struct DetectorConfig {
  // zmq: the native protocol (FrameHeader + raw payload); dectris-v1, dectris-v2: a DECTRIS
  // detector's SIMPLON stream, v1 (JSON parts) or v2 (CBOR); merlin: a Quantum Detectors
  // Merlin's TCP data port (the endpoint's port, 6342 by default).
  std::string kind = "zmq";
  std::string endpoint = "tcp://127.0.0.1:5602";
  bool bind = false;
  int receive_hwm = 1000;
  // What the detector sends; frames of another dtype are rejected (frames_dtype_mismatch), and
  // the recording keeps this dtype, so a counting detector's uint16 takes half the disk.
  std::string dtype = "uint16";  // uint8 | uint16 | uint32 | float32
  // DECTRIS only: the detector's number for the first frame of a series (frame k + this is
  // the session's frame k).
  std::uint64_t first_frame_id = 0;
  // Frames recorded but not yet taken by the loop; beyond this ingest stops reading, so the
  // detector's sender blocks (backpressure) rather than the daemon's memory growing.
  int max_pending_frames = 4096;
  // A frame whose header position differs from the issued one by more is rejected.
  double position_tolerance_A = 0.05;
  FrameGeometrySettings geometry;
  GeometryCheckSettings geometry_check;
  MerlinSettings merlin;
};

// `serve --detector KIND://HOST:PORT`: kind zmq, dectris-v1, dectris-v2 or merlin (whose PORT
// may be left out: 6342), and the endpoint tcp://HOST:PORT. Returns `detector` with both replaced; throws std::invalid_argument naming
// the accepted forms.
DetectorConfig apply_detector_uri(DetectorConfig detector, const std::string& uri);

struct ScanDriverConfig {
  std::string kind = "sim-stage";  // sim-stage | zmq | point-list
  std::string endpoint = "tcp://127.0.0.1:5601";
  double ack_timeout_s = 2.0;
  int retries = 0;        // resends of a command after an ack timeout (zmq, sim-stage)
  std::string directory;  // point-list only
};

struct RecorderSettings {
  std::string directory = "sessions";
  int sync_every_frames = 256;
  std::uint64_t min_free_bytes = 64ull << 20;  // a write that would leave less free fails
  std::uint64_t reserve_bytes = 16ull << 20;   // disk held to close the file on a full disk
  // Frames of no issued position (never issued, or a repeat) recorded per session; beyond this
  // they are counted (frames_unissued_not_recorded) and dropped, so a flood cannot fill the disk.
  std::uint64_t max_unissued_frames = 1000;
};

struct ControlConfig {
  std::string endpoint = "tcp://127.0.0.1:5600";         // REQ/REP, loopback by default
  std::string events_endpoint = "tcp://127.0.0.1:5603";  // PUB
  // CURVE (README, Security): both set, or neither; required for a non-loopback endpoint.
  std::string server_key;       // the daemon's NAME.key_secret (ptypilot keygen)
  std::string authorized_keys;  // the clients' keys, a line each: ROLE PUBLIC_KEY [NAME]
};

struct ServeConfig {
  SessionConfig session;
  ReconstructionConfig reconstruction;
  PolicyConfig policy;
  SafetySettings safety;
  DetectorConfig detector;
  ScanDriverConfig scan_driver;
  RecorderSettings recorder;
  ControlConfig control;

  nlohmann::json to_json() const;
  // The reconstructor configuration this session implies (probe, object grid around the FOV,
  // the geometry's mask as detector_mask).
  ReconstructorConfig reconstructor_config() const;
  // detector.geometry with its mask and flat-field read. Throws std::invalid_argument naming
  // the file or the setting.
  FrameGeometry frame_geometry() const;
  // The Safety configuration of a session: safety_config_for(raster, total_positions), with
  // `safety`'s tolerance where it gives one and no snapping where it turns it off.
  SafetyConfig safety_config() const;
};

// Throws std::invalid_argument with the offending key path ("session.sub_sequence_size: ...").
ServeConfig parse_serve_config(const nlohmann::json& json);
ServeConfig load_serve_config(const std::filesystem::path& path);

// `directory` (a configuration's `key`) as the absolute path it resolves to, a relative one taken
// inside `root`; throws std::invalid_argument when it resolves (after `..` and symlinks) outside
// `root`, which must be canonical. Nothing is created.
std::filesystem::path confine_directory(const std::filesystem::path& root,
                                        const std::string& directory, const std::string& key);

// Every field of ServeConfig as a Markdown table: key, type, default, meaning.
std::string serve_config_reference();

}  // namespace ptypilot
