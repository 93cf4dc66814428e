#include "ptypilot/ingest/detector_connection.hpp"

#include <map>
#include <mutex>
#include <stdexcept>

#include "ptypilot/ingest/dectris_stream_source.hpp"
#include "ptypilot/ingest/merlin_source.hpp"
#include "ptypilot/ingest/zmq_frame_source.hpp"

namespace ptypilot {
namespace {

// Native frames carry their session and place in the scan, so the source needs neither the
// session id nor the issued positions, and the stream has no faults beyond rejected messages.
class ZmqDetectorConnection final : public DetectorConnection {
 public:
  ZmqDetectorConnection(zmq::context_t& context, ZmqFrameSourceConfig config)
      : context_(context), config_(std::move(config)) {}
  std::unique_ptr<FrameSource> open(const std::string&, StreamFaultHandler) override {
    return std::make_unique<ZmqFrameSource>(context_, config_);
  }
  std::string_view kind() const override { return "zmq"; }

 private:
  zmq::context_t& context_;
  ZmqFrameSourceConfig config_;
};

class DectrisDetectorConnection final : public DetectorConnection {
 public:
  DectrisDetectorConnection(zmq::context_t& context, DectrisStreamSourceConfig config)
      : context_(context), config_(std::move(config)) {}
  std::unique_ptr<FrameSource> open(const std::string& session_id,
                                    StreamFaultHandler on_fault) override {
    return std::make_unique<DectrisStreamSource>(context_, config_, session_id, std::move(on_fault));
  }
  std::string_view kind() const override {
    return config_.protocol == dectris::Protocol::kV1 ? "dectris-v1" : "dectris-v2";
  }

 private:
  zmq::context_t& context_;
  DectrisStreamSourceConfig config_;
};

// One data connection per Merlin for the daemon's life, whatever configuration names it: an
// acquisition header sent between sessions (or before a reconfiguration) waits in it.
std::shared_ptr<MerlinLink> merlin_link(const std::string& host, int port) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<MerlinLink>> links;
  std::lock_guard lock(mutex);
  std::shared_ptr<MerlinLink>& link = links[host + ":" + std::to_string(port)];
  if (!link) link = std::make_shared<MerlinLink>(host, port);
  return link;
}

class MerlinDetectorConnection final : public DetectorConnection {
 public:
  explicit MerlinDetectorConnection(MerlinSourceConfig config)
      : config_(std::move(config)), link_(merlin_link(config_.host, config_.data_port)) {}
  std::unique_ptr<FrameSource> open(const std::string& session_id,
                                    StreamFaultHandler on_fault) override {
    return std::make_unique<MerlinSource>(link_, config_, session_id, std::move(on_fault));
  }
  std::string_view kind() const override { return "merlin"; }

 private:
  MerlinSourceConfig config_;
  std::shared_ptr<MerlinLink> link_;
};

}  // namespace

std::unique_ptr<DetectorConnection> make_detector_connection(zmq::context_t& context,
                                                             const DetectorConfig& d,
                                                             int window_px, PixelType dtype,
                                                             std::uint64_t session_positions) {
  if (d.kind == "merlin") {
    MerlinSourceConfig config;
    if (!parse_tcp_endpoint(d.endpoint, &config.host, &config.data_port))
      throw std::invalid_argument("detector.endpoint '" + d.endpoint +
                                  "': a Merlin's data port is tcp://HOST:PORT, e.g. "
                                  "tcp://merlin-pc:6342");
    if (d.bind)
      throw std::invalid_argument("detector.bind: a Merlin listens on its ports; the daemon "
                                  "connects to it (bind = false)");
    if (dtype != PixelType::kUint8 && dtype != PixelType::kUint16 && dtype != PixelType::kUint32)
      throw std::invalid_argument("detector.dtype " + std::string(to_string(dtype)) +
                                  ": a Merlin sends uint8, uint16 or uint32 (U08, U16, U32)");
    config.control_port = d.merlin.control_port;
    config.trigger_start = d.merlin.trigger_start;
    config.timeout = std::chrono::milliseconds(static_cast<long long>(d.merlin.timeout_s * 1000));
    config.frames_per_acquisition = session_positions;
    config.expected_rows = config.expected_cols = window_px;
    config.expected_dtype = dtype;
    return std::make_unique<MerlinDetectorConnection>(config);
  }
  if (d.kind == "dectris-v1" || d.kind == "dectris-v2") {
    DectrisStreamSourceConfig config;
    config.protocol = d.kind == "dectris-v1" ? dectris::Protocol::kV1 : dectris::Protocol::kV2;
    config.endpoint = d.endpoint;
    config.bind = d.bind;
    config.receive_hwm = d.receive_hwm;
    config.expected_rows = config.expected_cols = window_px;
    config.expected_dtype = dtype;
    config.first_frame_id = d.first_frame_id;
    return std::make_unique<DectrisDetectorConnection>(context, config);
  }
  if (d.kind != "zmq")
    throw std::invalid_argument("unknown detector.kind '" + d.kind +
                                "': use zmq, dectris-v1, dectris-v2 or merlin");
  ZmqFrameSourceConfig config;
  config.endpoint = d.endpoint;
  config.bind = d.bind;
  config.receive_hwm = d.receive_hwm;
  config.expected_rows = config.expected_cols = window_px;
  config.expected_dtype = dtype;
  return std::make_unique<ZmqDetectorConnection>(context, config);
}

}  // namespace ptypilot
