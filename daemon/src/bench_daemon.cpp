// `ptypilot bench loop` and `ptypilot bench ingest`: the daemon measured as it runs, in-process
// but through its real sockets: the control socket, the native frame stream, the scan-command
// protocol and the recorder writing to disk. Each prints one JSON object.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/daemon/cli_args.hpp"
#include "ptypilot/daemon/daemon.hpp"
#include "ptypilot/daemon/log.hpp"
#include "ptypilot/daemon/zmq_frame_source.hpp"
#include "ptypilot/sim/detector_service.hpp"

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * (v.size() - 1);
  const auto lo = static_cast<std::size_t>(rank);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (rank - lo) * (v[hi] - v[lo]);
}

json stats(const std::vector<double>& v) {
  return {{"p50", percentile(v, 50)}, {"p99", percentile(v, 99)},
          {"max", v.empty() ? 0 : *std::max_element(v.begin(), v.end())}};
}

// A daemon on its own thread, on ports the OS picks, and a client of its control socket.
class InProcessDaemon {
 public:
  InProcessDaemon() {
    DaemonOptions options;
    options.control_endpoint = "tcp://127.0.0.1:*";
    options.events_endpoint = "tcp://127.0.0.1:*";
    daemon_ = std::make_unique<Daemon>(std::move(options));
    thread_ = std::thread([this] { daemon_->run(); });
    control_.set(zmq::sockopt::linger, 0);
    control_.connect(daemon_->control_endpoint());
  }
  ~InProcessDaemon() {
    daemon_->shutdown();
    thread_.join();
  }
  std::string events_endpoint() const { return daemon_->events_endpoint(); }

  wire::ControlReply call(const wire::ControlRequest& request) {
    control_.send(zmq::buffer(request.SerializeAsString()), zmq::send_flags::none);
    zmq::message_t message;
    (void)control_.recv(message);
    wire::ControlReply reply;
    reply.ParseFromArray(message.data(), static_cast<int>(message.size()));
    if (!reply.ok()) throw std::runtime_error("daemon: " + reply.error());
    return reply;
  }
  void configure(const json& config) {
    wire::ControlRequest r;
    r.mutable_configure()->set_config_json(config.dump());
    call(r);
  }
  void start(const std::string& id) {
    wire::ControlRequest r;
    r.mutable_start()->set_session_id(id);
    call(r);
  }
  wire::ControlReply status() {
    wire::ControlRequest r;
    r.mutable_status();
    return call(r);
  }
  wire::ControlReply wait_done(std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      wire::ControlReply reply = status();
      if (reply.state() == wire::ControlReply::ERROR)
        throw std::runtime_error("session failed: " + reply.error());
      if (reply.state() == wire::ControlReply::IDLE) return reply;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    throw std::runtime_error("session did not finish in time");
  }

 private:
  std::unique_ptr<Daemon> daemon_;
  std::thread thread_;
  zmq::context_t context_{1};
  zmq::socket_t control_{context_, zmq::socket_type::req};
};

std::filesystem::path bench_directory(const std::string& given) {
  auto dir = given.empty() ? std::filesystem::temp_directory_path() / "ptypilot-bench" : std::filesystem::path(given);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

int bench_loop(const std::vector<std::string>& args) {
  const CliArgs cli(args, {"positions", "subsequence", "sessions", "policy", "iterations", "loss",
                           "backend", "dir"});
  const long positions = cli.get_int("positions", 550);
  const long sub = cli.get_int("subsequence", 50);
  const long sessions = cli.get_int("sessions", 5);
  const std::string policy = cli.get("policy", "heuristic");
  // The daemon makes this same choice at configure; a backend that is not there fails here.
  const BackendChoice backend = choose_backend(cli.get("backend", "auto"));
  log::set_min_level(log::Level::kWarn);

  zmq::context_t context{1};
  sim::DetectorServiceConfig detector_config;
  detector_config.command_endpoint = detector_config.data_endpoint = "tcp://127.0.0.1:*";
  sim::DetectorService detector(context, detector_config);
  std::jthread detector_thread([&](std::stop_token stop) { detector.run(stop); });
  InProcessDaemon daemon;

  zmq::socket_t events(context, zmq::socket_type::sub);
  events.set(zmq::sockopt::subscribe, "sub_sequence_done");
  events.connect(daemon.events_endpoint());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the subscription land

  const auto dir = bench_directory(cli.get("dir", ""));
  std::vector<double> total, reconstruct, policy_ms, safety, driver, total_at_max;
  long max_frames = 0;
  for (long s = 0; s < sessions; ++s) {
    const std::string id = "bench-loop-" + std::to_string(Clock::now().time_since_epoch().count());
    daemon.configure({
        {"session", {{"preset", "mos2-paper"}, {"total_positions", positions},
                     {"sub_sequence_size", sub}, {"seed", s + 1}}},
        {"reconstruction", {{"loss", cli.get("loss", "amplitude")},
                            {"iterations_per_update", cli.get_int("iterations", 5)},
                            {"backend", cli.get("backend", "auto")}}},
        {"policy", {{"kind", policy}}},
        {"detector", {{"endpoint", detector.bound_data_endpoint()}}},
        {"scan_driver", {{"kind", "sim-stage"}, {"endpoint", detector.bound_command_endpoint()}}},
        {"recorder", {{"directory", dir.string()}}},
    });
    daemon.start(id);
    daemon.wait_done(std::chrono::seconds(600));
    // Decisions: every completed sub-sequence but the last, which issues nothing.
    zmq::message_t topic, body;
    while (events.recv(topic, zmq::recv_flags::dontwait)) {
      (void)events.recv(body);
      wire::Event e;
      e.ParseFromArray(body.data(), static_cast<int>(body.size()));
      const auto& d = e.sub_sequence_done();
      if (e.session_id() != id || d.latency().driver_ms() == 0.0) continue;
      const auto& l = d.latency();
      total.push_back(l.total_ms());
      reconstruct.push_back(l.reconstruct_ms());
      policy_ms.push_back(l.policy_ms());
      safety.push_back(l.safety_ms());
      driver.push_back(l.driver_ms());
      const long frames = static_cast<long>(d.frames_received());
      if (frames > max_frames) {
        max_frames = frames;
        total_at_max.clear();
      }
      if (frames == max_frames) total_at_max.push_back(l.total_ms());
    }
    std::filesystem::remove(dir / (id + ".h5"));
    std::filesystem::remove(dir / (id + ".journal"));
  }
  const json report = {
      {"benchmark", "loop"},
      {"policy", policy},
      {"backend", backend.backend},
      {"backend_reason", backend.reason},
      {"positions", positions},
      {"subsequence", sub},
      {"sessions", sessions},
      {"decisions", total.size()},
      {"decision_latency_ms", stats(total)},
      {"breakdown_ms", {{"reconstruct", stats(reconstruct)}, {"policy", stats(policy_ms)},
                        {"safety", stats(safety)}, {"driver", stats(driver)}}},
      {"at_most_accumulated_frames", {{"frames", max_frames}, {"decision_latency_ms", stats(total_at_max)}}},
  };
  std::cout << report.dump(2) << std::endl;
  return 0;
}

int bench_ingest(const std::vector<std::string>& args) {
  const CliArgs cli(args, {"frames", "shape", "dir", "batch"});
  const long frames = cli.get_int("frames", 200000);
  const std::string shape = cli.get("shape", "64x64");
  const auto x = shape.find('x');
  if (x == std::string::npos) throw std::invalid_argument("--shape expects ROWSxCOLS, e.g. 64x64");
  const int rows = std::stoi(shape.substr(0, x)), cols = std::stoi(shape.substr(x + 1));
  log::set_min_level(log::Level::kWarn);

  zmq::context_t context{1};
  wire::FrameHeader header;
  header.set_rows(rows);
  header.set_cols(cols);
  header.set_dtype(wire::FrameHeader::UINT16);
  const std::vector<float> counts(std::size_t(rows) * cols, 3.0f);
  const std::vector<std::byte> payload = encode_payload(counts, PixelType::kUint16);
  header.set_payload_bytes(payload.size());

  // 1. Raw ZMQ: the same frames PUSH -> PULL, received and dropped.
  double raw_fps = 0;
  {
    zmq::socket_t push(context, zmq::socket_type::push), pull(context, zmq::socket_type::pull);
    pull.bind("tcp://127.0.0.1:*");
    push.connect(pull.get(zmq::sockopt::last_endpoint));
    std::jthread sender([&] {
      wire::FrameHeader h = header;
      for (long i = 0; i < frames; ++i) {
        h.set_frame_index(i);
        send_frame(push, h, payload);
      }
    });
    zmq::message_t part;
    const auto t0 = Clock::now();
    for (long i = 0; i < frames; ++i) {
      (void)pull.recv(part);
      (void)pull.recv(part);
    }
    raw_fps = frames / std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // 2. The daemon: frames for a sub-sequence it never issued, so all of them go through ingest,
  //    validation, the recorder (journal + fdatasync + HDF5) and the event loop.
  InProcessDaemon daemon;
  zmq::socket_t generator(context, zmq::socket_type::rep), detector(context, zmq::socket_type::push);
  generator.bind("tcp://127.0.0.1:*");
  detector.bind("tcp://127.0.0.1:*");
  const auto dir = bench_directory(cli.get("dir", ""));
  const std::string id = "bench-ingest-" + std::to_string(Clock::now().time_since_epoch().count());
  daemon.configure({
      {"session", {{"preset", "mos2-paper"}, {"total_positions", 1}, {"sub_sequence_size", 1},
                   {"frame_timeout_s", 600}, {"probe", {{"window_px", rows}}}}},
      {"detector", {{"endpoint", detector.get(zmq::sockopt::last_endpoint)}}},
      {"scan_driver", {{"kind", "zmq"}, {"endpoint", generator.get(zmq::sockopt::last_endpoint)}}},
      {"recorder", {{"directory", dir.string()}, {"sync_every_frames", cli.get_int("batch", 256)}}},
  });
  if (rows != cols) throw std::invalid_argument("--shape: the daemon's probe window is square");
  daemon.start(id);
  zmq::message_t command_bytes;
  (void)generator.recv(command_bytes);
  wire::ScanCommand command;
  command.ParseFromArray(command_bytes.data(), static_cast<int>(command_bytes.size()));
  wire::ScanAck ack;
  ack.set_command_id(command.command_id());
  ack.set_accepted(true);
  generator.send(zmq::buffer(ack.SerializeAsString()), zmq::send_flags::none);

  header.set_session_id(id);
  header.set_sub_sequence(999999);
  const auto t0 = Clock::now();
  for (long i = 0; i < frames; ++i) {
    header.set_frame_index(1'000'000 + i);
    send_frame(detector, header, payload);
  }
  std::uint64_t recorded = 0;
  const auto until = Clock::now() + std::chrono::minutes(10);
  while (recorded < static_cast<std::uint64_t>(frames) && Clock::now() < until) {
    recorded = daemon.status().status().frames_recorded();
    if (recorded < static_cast<std::uint64_t>(frames)) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const double daemon_fps = recorded / std::chrono::duration<double>(Clock::now() - t0).count();
  const auto status = daemon.status();
  std::filesystem::remove(dir / (id + ".h5"));
  std::filesystem::remove(dir / (id + ".journal"));

  const json report = {
      {"benchmark", "ingest"},
      {"frames", frames},
      {"shape", {rows, cols}},
      {"dtype", "uint16"},
      {"raw_zmq_frames_per_s", raw_fps},
      {"daemon_frames_per_s", daemon_fps},
      {"ratio", daemon_fps / raw_fps},
      {"frames_recorded", recorded},
      {"frames_lost", frames - static_cast<long>(recorded)},
      {"recording", "journal (fdatasync per batch) + HDF5"},
  };
  std::cout << report.dump(2) << std::endl;
  return recorded == static_cast<std::uint64_t>(frames) ? 0 : 1;
}

}  // namespace ptypilot
