#include "ptypilot/daemon/config.hpp"

#include "ptypilot/daemon/frame.hpp"

#include <fstream>
#include <set>
#include <stdexcept>

#include "ptypilot/scan_geometry.hpp"
#include "ptypilot/sim/presets.hpp"

namespace ptypilot {
namespace {

using nlohmann::json;

// Reads a section: each known key present is read into its field; done() then rejects every key
// that no read() asked for.
class Section {
 public:
  Section(const json& j, std::string path) : j_(j), path_(std::move(path)) {
    if (!j_.is_object()) fail("", "must be an object");
  }
  void done() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!seen_.count(it.key()))
        throw std::invalid_argument(path_ + "." + it.key() + ": unknown key (known: " + known() + ")");
  }

  template <typename T>
  void read(const char* key, T& field) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return;
    try {
      field = it->get<T>();
    } catch (const json::exception& e) {
      fail(key, std::string("wrong type: ") + e.what());
    }
  }
  template <typename T, typename Check>
  void read(const char* key, T& field, Check check, const char* rule) {
    read(key, field);
    if (j_.contains(key) && !check(field)) fail(key, rule);
  }
  // An optional field: absent or null leaves it unset.
  template <typename T, typename Check>
  void read(const char* key, std::optional<T>& field, Check check, const char* rule) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return;
    T value{};
    read(key, value, check, rule);
    field = value;
  }
  const json* sub(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string path(const char* key) const { return path_ + "." + key; }
  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw std::invalid_argument((key.empty() ? path_ : path_ + "." + key) + ": " + why);
  }

 private:
  std::string known() const {
    std::string s;
    for (const auto& k : seen_) s += (s.empty() ? "" : ", ") + k;
    return s;
  }
  const json& j_;
  std::string path_;
  std::set<std::string> seen_;
};

auto positive = [](auto v) { return v > 0; };
auto non_negative = [](auto v) { return v >= 0; };

void read_probe(const json& j, const std::string& path, ProbeConfig& p) {
  Section s(j, path);
  s.read("energy_keV", p.energy_keV, positive, "must be > 0");
  s.read("semiangle_mrad", p.semiangle_mrad, positive, "must be > 0");
  s.read("defocus_A", p.defocus_A);
  s.read("Cs_mm", p.Cs_mm);
  s.read("aperture_edge_mrad", p.aperture_edge_mrad);
  s.read("window_px", p.window_px, positive, "must be > 0");
  s.read("detector_pixel_mrad", p.detector_pixel_mrad, positive, "must be > 0");
  s.done();
}

void read_session(const json& j, SessionConfig& c) {
  Section s(j, "session");
  s.read("preset", c.preset);
  if (!c.preset.empty()) {
    const auto& preset = sim::experiment_preset(c.preset);  // throws naming the known presets
    c.probe = preset.probe;
    c.raster = {preset.scan_rows, preset.scan_cols, preset.step_A};
    c.margin_px = preset.margin_px;
  }
  if (const json* probe = s.sub("probe")) read_probe(*probe, "session.probe", c.probe);
  if (const json* raster = s.sub("raster")) {
    Section r(*raster, "session.raster");
    r.read("rows", c.raster.rows, positive, "must be > 0");
    r.read("cols", c.raster.cols, positive, "must be > 0");
    r.read("step_A", c.raster.step_A, positive, "must be > 0");
    r.done();
  }
  s.read("total_positions", c.total_positions, positive, "must be > 0");
  s.read("sub_sequence_size", c.sub_sequence_size, positive, "must be > 0");
  s.read("dwell_s", c.dwell_s, non_negative, "must be >= 0");
  s.read("frame_timeout_s", c.frame_timeout_s, positive, "must be > 0");
  s.read("seed", c.seed);
  s.read("margin_px", c.margin_px, non_negative, "must be >= 0");
  s.done();
  if (c.raster.rows <= 0 || c.raster.cols <= 0 || c.raster.step_A <= 0)
    s.fail("raster", "no scan raster: give session.preset or session.raster {rows, cols, step_A}");
  if (c.total_positions > c.raster.rows * c.raster.cols)
    s.fail("total_positions", "exceeds the " + std::to_string(c.raster.rows * c.raster.cols) +
                                  " positions of the raster");
  if (c.sub_sequence_size > c.total_positions)
    s.fail("sub_sequence_size", "is larger than total_positions");
}

}  // namespace

ServeConfig parse_serve_config(const json& j) {
  ServeConfig c;
  Section top(j, "config");
  if (const json* s = top.sub("session")) read_session(*s, c.session);
  else top.fail("session", "missing: a session needs at least a preset or a probe and raster");
  if (const json* r = top.sub("reconstruction")) {
    Section s(*r, "reconstruction");
    s.read("backend", c.reconstruction.backend);
    s.read("loss", c.reconstruction.loss);
    s.read("iterations_per_update", c.reconstruction.iterations_per_update, non_negative, "must be >= 0");
    s.read("step_size", c.reconstruction.step_size, positive, "must be > 0");
    s.read("regularization", c.reconstruction.regularization, positive, "must be > 0");
    s.read("threads", c.reconstruction.threads, non_negative, "must be >= 0");
    try {
      parse_loss(c.reconstruction.loss);
    } catch (const std::invalid_argument& e) {
      s.fail("loss", e.what());
    }
    s.done();
  }
  if (const json* p = top.sub("policy")) {
    Section s(*p, "policy");
    s.read("kind", c.policy.kind);
    s.read("model_path", c.policy.model_path);
    s.done();
  }
  if (const json* p = top.sub("safety")) {
    Section s(*p, "safety");
    s.read("min_distance_A", c.safety.min_distance_A, non_negative, "must be >= 0");
    s.read("snap_to_raster", c.safety.snap_to_raster);
    s.done();
  }
  if (const json* p = top.sub("detector")) {
    Section s(*p, "detector");
    s.read("kind", c.detector.kind);
    s.read("endpoint", c.detector.endpoint);
    s.read("bind", c.detector.bind);
    s.read("receive_hwm", c.detector.receive_hwm, positive, "must be > 0");
    s.read("dtype", c.detector.dtype);
    try {
      parse_pixel_type(c.detector.dtype);
    } catch (const std::invalid_argument& e) {
      s.fail("dtype", e.what());
    }
    s.read("first_frame_id", c.detector.first_frame_id);
    const auto& k = c.detector.kind;
    if (k != "zmq" && k != "dectris-v1" && k != "dectris-v2")
      s.fail("kind", "unknown detector '" + k + "': use zmq, dectris-v1 or dectris-v2");
    s.done();
  }
  if (const json* p = top.sub("scan_driver")) {
    Section s(*p, "scan_driver");
    s.read("kind", c.scan_driver.kind);
    s.read("endpoint", c.scan_driver.endpoint);
    s.read("ack_timeout_s", c.scan_driver.ack_timeout_s, positive, "must be > 0");
    s.read("directory", c.scan_driver.directory);
    const auto& k = c.scan_driver.kind;
    if (k != "sim-stage" && k != "zmq" && k != "point-list")
      s.fail("kind", "unknown scan driver '" + k + "': use sim-stage, zmq or point-list");
    s.done();
  }
  if (const json* p = top.sub("recorder")) {
    Section s(*p, "recorder");
    s.read("directory", c.recorder.directory);
    s.read("sync_every_frames", c.recorder.sync_every_frames, positive, "must be > 0");
    s.done();
  }
  if (const json* p = top.sub("control")) {
    Section s(*p, "control");
    s.read("endpoint", c.control.endpoint);
    s.read("events_endpoint", c.control.events_endpoint);
    s.done();
  }
  top.done();
  return c;
}

DetectorConfig apply_detector_uri(DetectorConfig detector, const std::string& uri) {
  const auto scheme_end = uri.find("://");
  const std::string kind = scheme_end == std::string::npos ? "" : uri.substr(0, scheme_end);
  const std::string address = scheme_end == std::string::npos ? "" : uri.substr(scheme_end + 3);
  const auto colon = address.rfind(':');
  if ((kind != "zmq" && kind != "dectris-v1" && kind != "dectris-v2") || colon == std::string::npos ||
      colon == 0 || colon + 1 == address.size())
    throw std::invalid_argument("--detector '" + uri +
                                "': expected zmq://HOST:PORT (native), dectris-v1://HOST:PORT "
                                "or dectris-v2://HOST:PORT, e.g. dectris-v1://dcu-host:9999");
  detector.kind = kind;
  detector.endpoint = "tcp://" + address;
  return detector;
}

ServeConfig load_serve_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read config file " + path.string());
  json j;
  try {
    j = json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    throw std::invalid_argument(path.string() + ": not valid JSON: " + e.what());
  }
  return parse_serve_config(j);
}

nlohmann::json ServeConfig::to_json() const {
  const auto& s = session;
  const auto& p = s.probe;
  return {
      {"session",
       {{"preset", s.preset},
        {"probe",
         {{"energy_keV", p.energy_keV}, {"semiangle_mrad", p.semiangle_mrad},
          {"defocus_A", p.defocus_A}, {"Cs_mm", p.Cs_mm}, {"aperture_edge_mrad", p.aperture_edge_mrad},
          {"window_px", p.window_px}, {"detector_pixel_mrad", p.detector_pixel_mrad}}},
        {"raster", {{"rows", s.raster.rows}, {"cols", s.raster.cols}, {"step_A", s.raster.step_A}}},
        {"total_positions", s.total_positions}, {"sub_sequence_size", s.sub_sequence_size},
        {"dwell_s", s.dwell_s}, {"frame_timeout_s", s.frame_timeout_s}, {"seed", s.seed},
        {"margin_px", s.margin_px}}},
      {"reconstruction",
       {{"backend", reconstruction.backend}, {"loss", reconstruction.loss},
        {"iterations_per_update", reconstruction.iterations_per_update},
        {"step_size", reconstruction.step_size}, {"regularization", reconstruction.regularization},
        {"threads", reconstruction.threads}}},
      {"policy", {{"kind", policy.kind}, {"model_path", policy.model_path}}},
      {"safety", {{"min_distance_A", safety.min_distance_A ? json(*safety.min_distance_A) : json(nullptr)},
                  {"snap_to_raster", safety.snap_to_raster}}},
      {"detector", {{"kind", detector.kind}, {"endpoint", detector.endpoint}, {"bind", detector.bind},
                    {"receive_hwm", detector.receive_hwm}, {"dtype", detector.dtype},
                    {"first_frame_id", detector.first_frame_id}}},
      {"scan_driver", {{"kind", scan_driver.kind}, {"endpoint", scan_driver.endpoint},
                       {"ack_timeout_s", scan_driver.ack_timeout_s}, {"directory", scan_driver.directory}}},
      {"recorder", {{"directory", recorder.directory}, {"sync_every_frames", recorder.sync_every_frames}}},
      {"control", {{"endpoint", control.endpoint}, {"events_endpoint", control.events_endpoint}}},
  };
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
  return r;
}

SafetyConfig ServeConfig::safety_config() const {
  SafetyConfig s = safety_config_for(session.raster, session.total_positions);
  if (safety.min_distance_A) s.min_distance_A = *safety.min_distance_A;
  if (!safety.snap_to_raster) s.snap_step_A = 0.0;
  return s;
}

}  // namespace ptypilot
