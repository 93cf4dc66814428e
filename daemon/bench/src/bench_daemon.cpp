// `ptypilot bench loop` and `ptypilot bench ingest`: the daemon measured as it runs, in-process
// but through its real sockets (bench loop runs the simulated detector as its own process): the control socket, the native frame stream, the scan-command
// protocol and the recorder writing to disk. Each prints one JSON object.
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <random>
#include <nlohmann/json.hpp>
#include <thread>
#include <zmq.hpp>

#include "child_process.hpp"
#include "ptypilot.pb.h"
#include "ptypilot/wire/command.hpp"
#include "ptypilot/app/daemon.hpp"
#include "ptypilot/wire/dectris_build.hpp"
#include "ptypilot/wire/stream_encoder.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/wire/merlin.hpp"
#include "ptypilot/wire/program_paths.hpp"
#include "ptypilot/ingest/zmq_frame_source.hpp"

namespace ptypilot {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int kBootstrapResamples = 2000;

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

// The 95 % interval of p(watched) - p(unwatched) over bootstrap resamples of the seeds: each
// seed's decisions, watched and not, stay together, as they share positions and frames. On a
// 2-core machine a p99 moves by milliseconds between runs, so the difference alone cannot say
// whether a page adds under 1 ms; the interval says how far the data constrain it. A fixed
// resampling seed keeps the interval the same for the same latencies.
struct SeedLatencies {
  std::vector<double> watched, unwatched;
};

std::array<double, 2> percentile_difference_interval(const std::vector<SeedLatencies>& seeds,
                                                     double p, int resamples) {
  if (seeds.empty() || resamples < 1) return {0.0, 0.0};
  std::mt19937_64 rng(20261205);
  std::uniform_int_distribution<std::size_t> pick(0, seeds.size() - 1);
  std::vector<double> differences;
  differences.reserve(static_cast<std::size_t>(resamples));
  std::vector<double> watched, unwatched;
  for (int b = 0; b < resamples; ++b) {
    watched.clear();
    unwatched.clear();
    for (std::size_t k = 0; k < seeds.size(); ++k) {
      const SeedLatencies& s = seeds[pick(rng)];
      watched.insert(watched.end(), s.watched.begin(), s.watched.end());
      unwatched.insert(unwatched.end(), s.unwatched.begin(), s.unwatched.end());
    }
    differences.push_back(percentile(watched, p) - percentile(unwatched, p));
  }
  return {percentile(differences, 2.5), percentile(differences, 97.5)};
}

// A daemon on its own thread, on ports the OS picks, and a client of its control socket.
class InProcessDaemon {
 public:
  // http: also serve the live page and /metrics (serve --http), on a free loopback port.
  explicit InProcessDaemon(const std::filesystem::path& recorder_root, bool http = false) {
    DaemonOptions options;
    options.recorder_root = recorder_root.string();
    options.control_endpoint = "tcp://127.0.0.1:*";
    options.events_endpoint = "tcp://127.0.0.1:*";
    if (http) options.http_endpoint = "127.0.0.1:0";
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
  std::string http_url() const { return daemon_->http_url(); }
  double http_cpu_seconds() const { return daemon_->http_cpu_seconds(); }

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

// A viewer of the live page as a browser is one: an HTTP client of /live/events that reads
// every byte the daemon sends, on its own thread, and counts the reconstruction events. The
// thread runs at idle priority, as a browser on another machine (the operator's, through a
// tunnel) takes nothing from the loop's cores: what is measured is the daemon's own cost.
class LiveViewer {
 public:
  explicit LiveViewer(const std::string& http_url) {
    const auto colon = http_url.rfind(':');
    const int port = std::stoi(http_url.substr(colon + 1));
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("bench loop: a viewer cannot connect to " + http_url);
    const std::string request = "GET /live/events HTTP/1.1\r\nHost: 127.0.0.1:" +
                                std::to_string(port) + "\r\nAccept: text/event-stream\r\n\r\n";
    if (::send(fd_, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size()))
      throw std::runtime_error("bench loop: a viewer cannot send its request");
    thread_ = std::thread([this] { read(); });
  }
  ~LiveViewer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::uint64_t reconstructions() const { return reconstructions_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  void read() {
    sched_param none{};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
    static constexpr std::string_view kEvent = "event: reconstruction\n";
    std::string tail;  // an event name may straddle two reads
    std::vector<char> buffer(1 << 16);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (n <= 0) return;
      bytes_ += static_cast<std::uint64_t>(n);
      tail.append(buffer.data(), static_cast<std::size_t>(n));
      for (auto at = tail.find(kEvent); at != std::string::npos; at = tail.find(kEvent, at + 1))
        ++reconstructions_;
      tail.erase(0, tail.size() > kEvent.size() ? tail.size() - kEvent.size() + 1 : 0);
    }
  }

  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> reconstructions_{0}, bytes_{0};
  std::thread thread_;
};

int bench_loop(const CliArgs& cli) {
  const long positions = cli.get_int("positions");
  const long sub = cli.get_int("subsequence");
  const long sessions = cli.get_int("sessions");
  const std::string policy = cli.get("policy");
  // "learned" is the torchscript policy with the shipped model for this sub-sequence size.
  json policy_config = {{"kind", policy}};
  if (policy == "learned" || policy == "torchscript") {
    const std::string shipped = "policy-mos2-k" + std::to_string(sub) + ".pt";
    policy_config = {{"kind", "torchscript"},
                     {"model_path", cli.get("model", (shipped_models_directory() / shipped).string())}};
  }
  // The daemon makes this same choice at configure; a backend that is not there fails here.
  const BackendChoice backend = choose_backend(cli.get("backend"));
  log::set_min_level(log::Level::kWarn);

  zmq::context_t context{1};
  // The simulated detector and stage, as the demo runs them: ptypilot-sim in its own process.
  const ChildProcess detector(sibling_program("ptypilot-sim"),
                              {"sim-detector", "--command-endpoint", "tcp://127.0.0.1:*",
                               "--data-endpoint", "tcp://127.0.0.1:*"});
  const std::string data_endpoint = detector.ready().at("data_endpoint");
  const std::string command_endpoint = detector.ready().at("command_endpoint");
  const auto dir = bench_directory(cli.get("dir"));
  const long viewers = cli.get_int("viewers");
  if (viewers < 0 || viewers > static_cast<long>(kMaxLiveViewers))
    throw std::invalid_argument("--viewers: 0 to " + std::to_string(kMaxLiveViewers));
  InProcessDaemon daemon(dir, viewers > 0);

  zmq::socket_t events(context, zmq::socket_type::sub);
  events.set(zmq::sockopt::subscribe, "sub_sequence_done");
  events.set(zmq::sockopt::subscribe, "session_done");
  events.set(zmq::sockopt::rcvtimeo, 10000);
  events.connect(daemon.events_endpoint());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the subscription land

  struct Latencies {
    std::vector<double> total, reconstruct, policy, safety, driver, total_at_max, live_page_cpu;
    long max_frames = 0;
  };
  Latencies all, watched, unwatched;
  std::uint64_t reconstructions_seen = 0;
  double http_cpu_s_watched = 0.0;
  // Decision k of a seed watched minus decision k of the same seed unwatched: the same
  // positions and frames, so the load of the machine is most of what differs.
  std::vector<double> paired_difference;
  std::vector<SeedLatencies> per_seed;
  const auto run_session = [&](long seed, bool watch) {
    const std::string id = "bench-loop-" + std::to_string(Clock::now().time_since_epoch().count());
    daemon.configure({
        {"session", {{"preset", "mos2-paper"}, {"total_positions", positions},
                     {"sub_sequence_size", sub}, {"seed", seed}}},
        {"reconstruction", {{"loss", cli.get("loss")},
                            {"iterations_per_update", cli.get_int("iterations")},
                            {"backend", cli.get("backend")}}},
        {"policy", policy_config},
        {"detector", {{"endpoint", data_endpoint}}},
        {"scan_driver", {{"kind", "sim-stage"}, {"endpoint", command_endpoint}}},
        {"recorder", {{"directory", dir.string()}}},
    });
    std::vector<std::unique_ptr<LiveViewer>> page;
    for (long v = 0; watch && v < viewers; ++v)
      page.push_back(std::make_unique<LiveViewer>(daemon.http_url()));
    const double cpu_before = daemon.http_cpu_seconds();
    daemon.start(id);
    daemon.wait_done(std::chrono::seconds(600));
    // The page runs on what CPU the loop leaves over: give it time for the session's last
    // event, and each viewer at least its first.
    const auto settle = Clock::now() + std::chrono::seconds(10);
    std::this_thread::sleep_for(std::chrono::milliseconds(watch ? 300 : 0));
    for (const auto& v : page)
      while (v->reconstructions() == 0 && Clock::now() < settle)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (watch) http_cpu_s_watched += daemon.http_cpu_seconds() - cpu_before;
    for (const auto& v : page) reconstructions_seen += v->reconstructions();
    page.clear();
    // Decisions: every completed sub-sequence but the last, which issues nothing. The events
    // come in order, so the session's own session_done says that all of its others are in.
    zmq::message_t topic, body;
    for (;;) {
      if (!events.recv(topic)) throw std::runtime_error("bench loop: no session_done event for " + id);
      (void)events.recv(body);
      wire::Event e;
      e.ParseFromArray(body.data(), static_cast<int>(body.size()));
      if (e.session_id() == id && e.has_session_done()) break;
      const auto& d = e.sub_sequence_done();
      if (e.session_id() != id || d.latency().driver_ms() == 0.0) continue;
      const auto& l = d.latency();
      for (Latencies* into : {&all, watch ? &watched : &unwatched}) {
        into->total.push_back(l.total_ms());
        into->reconstruct.push_back(l.reconstruct_ms());
        into->policy.push_back(l.policy_ms());
        into->safety.push_back(l.safety_ms());
        into->driver.push_back(l.driver_ms());
        into->live_page_cpu.push_back(l.live_page_cpu_ms());
        const long frames = static_cast<long>(d.frames_received());
        if (frames > into->max_frames) {
          into->max_frames = frames;
          into->total_at_max.clear();
        }
        if (frames == into->max_frames) into->total_at_max.push_back(l.total_ms());
      }
    }
    std::filesystem::remove(dir / (id + ".h5"));
    std::filesystem::remove(dir / (id + ".journal"));
  };
  // With viewers, each seed runs twice, watched and not, in alternating order, so that a drift
  // of the machine's load falls on both alike.
  for (long s = 0; s < sessions; ++s) {
    if (viewers == 0) {
      run_session(s + 1, false);
      continue;
    }
    const bool watched_first = s % 2 == 0;
    const std::size_t w0 = watched.total.size(), u0 = unwatched.total.size();
    run_session(s + 1, watched_first);
    run_session(s + 1, !watched_first);
    for (std::size_t k = 0; w0 + k < watched.total.size() && u0 + k < unwatched.total.size(); ++k)
      paired_difference.push_back(watched.total[w0 + k] - unwatched.total[u0 + k]);
    per_seed.push_back({{watched.total.begin() + long(w0), watched.total.end()},
                        {unwatched.total.begin() + long(u0), unwatched.total.end()}});
  }
  json report = {
      {"benchmark", "loop"},
      {"policy", policy_config},
      {"backend", backend.backend},
      {"backend_reason", backend.reason},
      {"positions", positions},
      {"subsequence", sub},
      {"sessions", sessions},
      {"decisions", all.total.size()},
      {"decision_latency_ms", stats(all.total)},
      {"breakdown_ms", {{"reconstruct", stats(all.reconstruct)}, {"policy", stats(all.policy)},
                        {"safety", stats(all.safety)}, {"driver", stats(all.driver)}}},
      {"at_most_accumulated_frames",
       {{"frames", all.max_frames}, {"decision_latency_ms", stats(all.total_at_max)}}},
  };
  if (viewers > 0) {
    const double added_p99 = percentile(watched.total, 99) - percentile(unwatched.total, 99);
    const double added_p50 = percentile(watched.total, 50) - percentile(unwatched.total, 50);
    report["live_page"] = {
        {"viewers", viewers},
        {"decision_latency_ms_without_viewers", stats(unwatched.total)},
        {"decision_latency_ms_with_viewers", stats(watched.total)},
        {"p50_added_ms", added_p50},
        {"p99_added_ms", added_p99},
        {"p99_added_ms_interval_95",
         [&] {
           const auto [lo, hi] = percentile_difference_interval(per_seed, 99, kBootstrapResamples);
           return json::array({lo, hi});
         }()},
        {"p99_added_ms_interval_95_definition",
         "2.5th and 97.5th percentiles of p99(watched) - p99(unwatched) over " +
             std::to_string(kBootstrapResamples) +
             " bootstrap resamples of the seeds, each seed's decisions watched and not kept "
             "together"},
        {"paired_difference_ms", {{"p50", percentile(paired_difference, 50)},
                                  {"mean", paired_difference.empty() ? 0.0 :
                                       std::accumulate(paired_difference.begin(), paired_difference.end(), 0.0) /
                                       static_cast<double>(paired_difference.size())},
                                  {"count", paired_difference.size()}}},
        // The CPU time the page's thread took inside each watched decision (from the start of
        // the update to the positions accepted): the most it can have taken from that decision,
        // measured per decision, where the p99 difference above is lost in the machine's noise.
        {"live_page_cpu_in_decision_ms",
         {{"with_viewers", stats(watched.live_page_cpu)},
          {"without_viewers", stats(unwatched.live_page_cpu)}}},
        // All the CPU time the page's thread took while watched, per decision: a bound on what
        // it could take from one decision, were it never to run on a core the loop leaves idle.
        {"http_thread_cpu_ms_per_decision",
         watched.total.empty() ? 0.0 : 1e3 * http_cpu_s_watched / static_cast<double>(watched.total.size())},
        // Each viewer should have seen about one reconstruction event per sub-sequence.
        {"reconstruction_events_per_viewer_per_session",
         static_cast<double>(reconstructions_seen) / static_cast<double>(viewers * sessions)},
    };
  }
  std::cout << report.dump(2) << std::endl;
  return 0;
}

struct IngestRun {
  double frames_per_s = 0;
  std::uint64_t recorded = 0;
  double journal_bytes_per_frame = 0;  // what each frame cost on disk, once (the .h5 is alike)
};

// One daemon session that records `frames` frames sent by `send` (on a PUSH socket the daemon
// connects to) without reconstructing them, timed from the first frame sent to the last one
// recorded. The session issues `issued` positions and acknowledges its one scan command.
template <typename Send>
IngestRun measure_ingest(zmq::context_t& context, const json& detector, int rows, int issued,
                         long frames, long batch, const std::filesystem::path& dir,
                         const std::string& id, Send send) {
  InProcessDaemon daemon(dir);
  zmq::socket_t generator(context, zmq::socket_type::rep), push(context, zmq::socket_type::push);
  generator.bind("tcp://127.0.0.1:*");
  push.bind("tcp://127.0.0.1:*");
  json detector_config = detector;
  if (!detector_config.contains("endpoint"))  // a Merlin's is the bench's TCP port
    detector_config["endpoint"] = push.get(zmq::sockopt::last_endpoint);
  daemon.configure({
      {"session", {{"preset", "mos2-paper"}, {"total_positions", issued}, {"sub_sequence_size", issued},
                   {"frame_timeout_s", 600}, {"probe", {{"window_px", rows}}}}},
      {"detector", detector_config},
      {"scan_driver", {{"kind", "zmq"}, {"endpoint", generator.get(zmq::sockopt::last_endpoint)}}},
      // Its frames are all junk by design (no issued position), so none may be capped.
      {"recorder", {{"directory", dir.string()}, {"sync_every_frames", batch},
                    {"max_unissued_frames", frames}}},
  });
  daemon.start(id);
  zmq::message_t command_bytes;
  (void)generator.recv(command_bytes);
  wire::ScanCommand command;
  command.ParseFromArray(command_bytes.data(), static_cast<int>(command_bytes.size()));
  wire::ScanAck ack;
  ack.set_command_id(command.command_id());
  ack.set_accepted(true);
  generator.send(zmq::buffer(ack.SerializeAsString()), zmq::send_flags::none);

  const auto t0 = Clock::now();
  send(push, id);
  IngestRun run;
  const auto until = Clock::now() + std::chrono::minutes(10);
  while (run.recorded < static_cast<std::uint64_t>(frames) && Clock::now() < until) {
    run.recorded = daemon.status().status().frames_recorded();
    if (run.recorded < static_cast<std::uint64_t>(frames))
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  run.frames_per_s = run.recorded / std::chrono::duration<double>(Clock::now() - t0).count();
  std::error_code ec;
  const auto journal_bytes = std::filesystem::file_size(dir / (id + ".journal"), ec);
  if (!ec && run.recorded > 0)
    run.journal_bytes_per_frame = static_cast<double>(journal_bytes) / run.recorded;
  std::filesystem::remove(dir / (id + ".h5"));
  std::filesystem::remove(dir / (id + ".journal"));
  return run;
}

void send_parts(zmq::socket_t& socket, const std::vector<dectris::Part>& parts) {
  for (std::size_t i = 0; i < parts.size(); ++i)
    socket.send(zmq::buffer(parts[i].data(), parts[i].size()),
                i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

int bench_ingest(const CliArgs& cli) {
  const long frames = cli.get_int("frames");
  const std::string shape = cli.get("shape");
  const auto x = shape.find('x');
  if (x == std::string::npos) throw std::invalid_argument("--shape expects ROWSxCOLS, e.g. 64x64");
  const int rows = std::stoi(shape.substr(0, x)), cols = std::stoi(shape.substr(x + 1));
  if (rows != cols) throw std::invalid_argument("--shape: the daemon's probe window is square");
  StreamFormat format;
  format.protocol = parse_stream_protocol(cli.get("protocol"));
  parse_stream_encoding(cli.get("encoding"), &format);
  if (format.protocol != StreamProtocol::kNative && format.encoding == dectris::Encoding::kBitshuffleLz4 &&
      format.bitshuffle_bits != 16)
    throw std::invalid_argument("--encoding: the benchmark sends uint16 frames; use bs16-lz4, lz4 or none");
  const long batch = cli.get_int("batch");
  log::set_min_level(log::Level::kWarn);

  zmq::context_t context{1};
  wire::FrameHeader header;
  header.set_rows(rows);
  header.set_cols(cols);
  header.set_dtype(wire::FrameHeader::UINT16);
  // Counts like a counting detector's at a low dose (Poisson, mean 3): what compression meets.
  std::vector<float> counts(std::size_t(rows) * cols);
  {
    std::mt19937 rng(1);
    std::poisson_distribution<int> poisson(3.0);
    for (float& c : counts) c = static_cast<float>(poisson(rng));
  }
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

  // 2. The daemon, native protocol: frames for a sub-sequence it never issued, so all of them go
  //    through ingest, validation, the recorder (journal + fdatasync + HDF5) and the event loop.
  const auto dir = bench_directory(cli.get("dir"));
  const std::string stamp = std::to_string(Clock::now().time_since_epoch().count());
  const IngestRun native = measure_ingest(
      context, {{"kind", "zmq"}}, rows, 1, frames, batch, dir, "bench-ingest-" + stamp,
      [&](zmq::socket_t& push, const std::string& id) {
        wire::FrameHeader h = header;
        h.set_session_id(id);
        h.set_sub_sequence(999999);
        for (long i = 0; i < frames; ++i) {
          h.set_frame_index(1'000'000 + i);
          send_frame(push, h, payload);
        }
      });

  json report = {
      {"benchmark", "ingest"},
      {"frames", frames},
      {"shape", {rows, cols}},
      {"dtype", "uint16"},
      {"raw_zmq_frames_per_s", raw_fps},
      {"daemon_frames_per_s", native.frames_per_s},
      {"ratio", native.frames_per_s / raw_fps},
      {"frames_recorded", native.recorded},
      {"frames_lost", frames - static_cast<long>(native.recorded)},
      {"recording", "bitshuffle-LZ4 chunks: journal (fdatasync per batch) + HDF5"},
      {"journal_bytes_per_frame", native.journal_bytes_per_frame},
  };
  bool all_recorded = native.recorded == static_cast<std::uint64_t>(frames);

  // 3. The daemon on a DECTRIS stream, in the same run: the session issues two frame numbers and
  //    gets frame 0 over and over, so every frame is parsed, decompressed, placed by its number,
  //    recorded, and (as a repeat) not reconstructed, like the native frames above.
  if (format.protocol == StreamProtocol::kDectrisV1 || format.protocol == StreamProtocol::kDectrisV2) {
    const bool v1 = format.protocol == StreamProtocol::kDectrisV1;
    const dectris::Protocol protocol = v1 ? dectris::Protocol::kV1 : dectris::Protocol::kV2;
    dectris::SeriesInfo series;
    series.series_id = 1;
    series.rows = rows;
    series.cols = cols;
    series.dtype = PixelType::kUint16;
    series.encoding = format.encoding;
    std::vector<std::byte> blob;
    if (Status s = dectris::encode_pixels(protocol, format.encoding, PixelType::kUint16, payload, &blob); !s.ok())
      throw std::runtime_error("encoding the benchmark frame: " + s.message());
    const std::vector<dectris::Part> image =
        v1 ? dectris::v1_image(series, 0, blob, 0, 1000)
           : std::vector<dectris::Part>{dectris::v2_image(series, 0, blob, 0, 1000)};
    const std::vector<dectris::Part> start =
        v1 ? dectris::v1_series_header(series) : std::vector<dectris::Part>{dectris::v2_start(series)};
    const IngestRun dectris_run = measure_ingest(
        context, {{"kind", to_string(format.protocol)}}, rows, 2, frames, batch, dir,
        "bench-ingest-dectris-" + stamp, [&](zmq::socket_t& push, const std::string&) {
          send_parts(push, start);
          for (long i = 0; i < frames; ++i) send_parts(push, image);
        });
    report["protocol"] = to_string(format.protocol);
    report["encoding"] = encoding_label(format);
    report["bytes_per_frame"] = {{"raw", payload.size()}, {"encoded", blob.size()}};
    report["dectris_frames_per_s"] = dectris_run.frames_per_s;
    report["dectris_ratio_to_native"] = dectris_run.frames_per_s / native.frames_per_s;
    report["dectris_frames_recorded"] = dectris_run.recorded;
    report["dectris_frames_lost"] = frames - static_cast<long>(dectris_run.recorded);
    report["dectris_journal_bytes_per_frame"] = dectris_run.journal_bytes_per_frame;
    all_recorded = all_recorded && dectris_run.recorded == static_cast<std::uint64_t>(frames);
  }
  // 3'. The daemon on a Merlin's data port (control off): an acquisition header, then frame 1
  //     over and over, as above: each parsed, widened from big-endian, placed, recorded.
  if (format.protocol == StreamProtocol::kMerlin) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size) != 0)
      throw std::runtime_error("bench ingest: cannot listen on a loopback port for the Merlin");
    const std::vector<std::byte> header = merlin::acquisition_header_message(2, 12);
    const std::vector<std::byte> frame = merlin::frame_message(1, rows, cols, PixelType::kUint16, payload);
    // 64 frames per write: what a Merlin's socket sees at speed.
    std::vector<std::byte> block;
    for (int i = 0; i < 64; ++i) block.insert(block.end(), frame.begin(), frame.end());
    const auto write_all = [](int fd, std::span<const std::byte> bytes) {
      for (std::size_t sent = 0; sent < bytes.size();) {
        const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) throw std::runtime_error("bench ingest: the daemon left the Merlin port");
        sent += static_cast<std::size_t>(n);
      }
    };
    const json detector = {
        {"kind", "merlin"},
        {"endpoint", "tcp://127.0.0.1:" + std::to_string(ntohs(address.sin_port))},
        {"merlin", {{"control_port", 0}}}};
    const IngestRun merlin_run = measure_ingest(
        context, detector, rows, 2, frames, batch, dir, "bench-ingest-merlin-" + stamp,
        [&](zmq::socket_t&, const std::string&) {
          pollfd p{listener, POLLIN, 0};
          if (::poll(&p, 1, 10000) != 1)
            throw std::runtime_error("bench ingest: the daemon did not connect to the Merlin port");
          const int client = ::accept(listener, nullptr, nullptr);
          write_all(client, header);
          long sent = 0;
          for (; sent + 64 <= frames; sent += 64) write_all(client, block);
          for (; sent < frames; ++sent) write_all(client, frame);
          ::close(client);
        });
    ::close(listener);
    report["protocol"] = "merlin";
    report["bytes_per_frame"] = {{"raw", payload.size()}, {"message", frame.size()}};
    report["merlin_frames_per_s"] = merlin_run.frames_per_s;
    report["merlin_ratio_to_native"] = merlin_run.frames_per_s / native.frames_per_s;
    report["merlin_frames_recorded"] = merlin_run.recorded;
    report["merlin_frames_lost"] = frames - static_cast<long>(merlin_run.recorded);
    report["merlin_journal_bytes_per_frame"] = merlin_run.journal_bytes_per_frame;
    all_recorded = all_recorded && merlin_run.recorded == static_cast<std::uint64_t>(frames);
  }
  std::cout << report.dump(2) << std::endl;
  return all_recorded ? 0 : 1;
}

const OptionSpec kDirOption{"dir", "DIR", "",
                            "where the sessions record (default: ptypilot-bench in the temporary directory)"};

}  // namespace

Command bench_loop_command() {
  return {.name = "loop",
          .summary = "decision latency of the closed loop (last frame in -> next positions accepted)",
          .description =
              "Decision latency of the closed loop, from the last frame of a sub-sequence in to the "
              "next positions accepted by the stage, p50/p99 and its breakdown: the daemon "
              "in-process, through its real sockets, against the simulated detector. Prints one "
              "JSON object.",
          .options = {{"positions", "N", "550", "positions per session"},
                      {"subsequence", "M", "50", "positions per sub-sequence"},
                      {"sessions", "S", "5", "sessions to measure"},
                      {"policy", "KIND", "heuristic",
                       "a policy.kind (raster, sparse-grid, jittered-grid, fermat-spiral, sobol, "
                       "random, heuristic), or learned: the shipped model for the sub-sequence "
                       "size (or --model)"},
                      {"model", "FILE.pt", "",
                       "the TorchScript policy for --policy learned (default: "
                       "share/ptypilot/models/policy-mos2-kM.pt beside the program's bin/)"},
                      {"iterations", "K", "5", "reconstructor iterations per update"},
                      {"loss", "intensity|amplitude", "amplitude", "the reconstructor's loss"},
                      {"backend", "auto|cpu|cuda", "auto", "reconstructor backend"},
                      {"viewers", "N", "0",
                       "with N > 0: serve the live page too, and run each session twice, once "
                       "watched by N viewers of /live/events and once not; live_page in the JSON "
                       "compares the two"},
                      kDirOption},
          .run = bench_loop};
}

Command bench_ingest_command() {
  return {.name = "ingest",
          .summary = "daemon frames/s with recording against raw ZMQ frames/s, and frames lost",
          .description =
              "Daemon frames/s with recording (each frame a bitshuffle-LZ4 chunk, to the journal "
              "with fdatasync per batch and to HDF5) against "
              "raw ZMQ frames/s in the same run, and frames lost; with --protocol, the DECTRIS or "
              "Merlin path too, and its ratio to the native path. Prints one JSON object; exit 1 "
              "if a frame was lost.",
          .options = {{"frames", "N", "200000", "frames per measurement"},
                      {"shape", "ROWSxCOLS", "64x64", "frame shape (square)"},
                      {"batch", "B", "256", "frames per recorder sync"},
                      {"protocol", "native|dectris-v1|dectris-v2|merlin", "native",
                       "also measure this DECTRIS stream or the Merlin TCP protocol"},
                      {"encoding", "bs16-lz4|lz4|none", "bs16-lz4", "the DECTRIS stream's encoding"},
                      kDirOption},
          .run = bench_ingest};
}

}  // namespace ptypilot
