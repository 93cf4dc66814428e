#include "ptypilot/app/daemon.hpp"

#include <boost/asio.hpp>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <future>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "ptypilot.pb.h"
#include "ptypilot/ingest/dectris_stream_source.hpp"
#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/wire/log.hpp"
#include "ptypilot/core/session.hpp"
#include "ptypilot/policy/policy_factory.hpp"
#include "ptypilot/ingest/zmq_frame_source.hpp"
#include "ptypilot/scan_driver/point_list_driver.hpp"
#include "ptypilot/scan_driver/zmq_scan_driver.hpp"

namespace ptypilot {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using wire::ControlReply;
using wire::ControlRequest;

std::uint64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* state_name(ControlReply::State s) {
  switch (s) {
    case ControlReply::IDLE: return "idle";
    case ControlReply::CONFIGURED: return "configured";
    case ControlReply::RUNNING: return "running";
    case ControlReply::FINISHING: return "finishing";
    case ControlReply::ERROR: return "error";
    default: return "unspecified";
  }
}

PolicyLimits policy_limits(const ServeConfig& c) {
  return {c.session.sub_sequence_size, c.session.raster.height_A(), c.session.raster.width_A()};
}

std::string new_session_id() {
  static std::atomic<int> counter{0};
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char text[64];
  std::strftime(text, sizeof text, "session-%Y%m%d-%H%M%S", std::gmtime(&t));
  return std::string(text) + "-" + std::to_string(counter++);
}

}  // namespace

struct Daemon::Impl {
  explicit Impl(DaemonOptions o) : options(std::move(o)) {}

  DaemonOptions options;
  zmq::context_t context{1};
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  asio::signal_set signals{io, SIGINT, SIGTERM};
  asio::steady_timer watchdog{io};
  zmq::socket_t control{context, zmq::socket_type::rep};
  zmq::socket_t events{context, zmq::socket_type::pub};
  std::string control_bound, events_bound;
  std::thread control_thread;
  std::atomic<bool> stopping{false};

  // Owned by the event loop.
  ControlReply::State state = ControlReply::IDLE;
  std::string error;
  std::optional<ServeConfig> config;
  std::unique_ptr<Session> session;
  std::optional<Potential> last_potential;
  std::string last_session_id;
  HealthCounters health;
  Clock::time_point last_activity = Clock::now();

  // Shared with ingest.
  std::shared_ptr<Recorder> recorder;
  std::mutex recorder_mutex;
  std::unique_ptr<FrameSource> source;
  std::thread ingest_thread;
  std::atomic<bool> ingest_running{false};
  std::mutex pending_mutex;
  std::condition_variable pending_cv;
  std::size_t pending_frames = 0;
  std::size_t max_pending_frames = 4096;

  // --- event loop ---------------------------------------------------------------------------

  void publish(const wire::Event& event, const char* topic) {
    std::string bytes;
    event.SerializeToString(&bytes);
    events.send(zmq::buffer(std::string(topic)), zmq::send_flags::sndmore);
    events.send(zmq::buffer(bytes), zmq::send_flags::none);
  }

  void publish_session_done(bool ok, const std::string& why) {
    wire::Event e;
    e.set_session_id(last_session_id);
    e.set_timestamp_ns(wall_ns());
    auto* d = e.mutable_session_done();
    d->set_ok(ok);
    d->set_error(why);
    if (session) {
      d->set_sub_sequences(session->sub_sequences_done());
      d->set_positions_issued(session->positions_issued());
    }
    if (recorder) {
      d->set_frames_recorded(recorder->frames_recorded());
      d->set_output_path(recorder->output_path().string());
    }
    publish(e, "session_done");
  }

  void publish_sub_sequence(const SubSequenceReport& r) {
    wire::Event e;
    e.set_session_id(last_session_id);
    e.set_timestamp_ns(wall_ns());
    auto* s = e.mutable_sub_sequence_done();
    s->set_sub_sequence(r.sub_sequence);
    s->set_positions(r.positions);
    s->set_frames_received(r.frames_received);
    auto* l = s->mutable_latency();
    l->set_reconstruct_ms(r.latency.reconstruct_ms);
    l->set_policy_ms(r.latency.policy_ms);
    l->set_safety_ms(r.latency.safety_ms);
    l->set_driver_ms(r.latency.driver_ms);
    l->set_total_ms(r.latency.total_ms);
    publish(e, "sub_sequence_done");
    log::info("sub_sequence_done",
              {{"session", last_session_id}, {"sub_sequence", r.sub_sequence}, {"positions", r.positions},
               {"reconstruct_ms", r.latency.reconstruct_ms}, {"policy_ms", r.latency.policy_ms},
               {"safety_ms", r.latency.safety_ms}, {"driver_ms", r.latency.driver_ms},
               {"total_ms", r.latency.total_ms}});
  }

  void stop_ingest() {
    ingest_running = false;
    pending_cv.notify_all();
    if (ingest_thread.joinable()) ingest_thread.join();
  }

  // Ends the session: ingest stopped, file closed and readable, event published.
  void end_session(bool ok, const std::string& why) {
    stop_ingest();
    if (session) last_potential = session->potential();
    if (recorder) {
      std::lock_guard lock(recorder_mutex);
      if (Status s = recorder->end_session(); !s.ok())
        log::error("recorder_close_failed", {{"error", s.to_string()}});
    }
    publish_session_done(ok, why);
    log::info("session_done", {{"session", last_session_id}, {"ok", ok}, {"error", why},
                               {"frames_recorded", recorder ? recorder->frames_recorded() : 0}});
    if (ok) {
      state = ControlReply::IDLE;
      config.reset();
      error.clear();
    } else {
      state = ControlReply::ERROR;
      error = why;
    }
    if (source)
      for (const auto& [k, v] : source->health().snapshot()) finished_totals[k] += v;
    if (session)
      for (const auto& [k, v] : session->assembler_health().snapshot()) finished_totals[k] += v;
    source.reset();
    session_finished = true;
  }
  bool session_finished = false;

  void fail(const std::string& why) {
    health.increment("session_errors");
    log::error("session_error", {{"session", last_session_id}, {"error", why}});
    end_session(false, why);
  }

  void on_batch(std::vector<DetectorFrame>& frames) {
    {
      std::lock_guard lock(pending_mutex);
      pending_frames -= frames.size();
    }
    pending_cv.notify_all();
    last_activity = Clock::now();
    if (!session || (state != ControlReply::RUNNING && state != ControlReply::FINISHING)) {
      health.increment("frames_outside_session", frames.size());
      return;
    }
    const std::size_t before = session->reports().size();
    if (Status s = session->on_frames(frames); !s.ok()) return fail(s.message());
    for (std::size_t i = before; i < session->reports().size(); ++i)
      publish_sub_sequence(session->reports()[i]);
    last_activity = Clock::now();
    if (session->done()) end_session(true, "");
  }

  void arm_watchdog() {
    watchdog.expires_after(std::chrono::milliseconds(200));
    watchdog.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (session && (state == ControlReply::RUNNING || state == ControlReply::FINISHING)) {
        const double idle_s = std::chrono::duration<double>(Clock::now() - last_activity).count();
        if (session->waiting_for_frames() && idle_s > config_timeout_s) {
          health.increment("detector_timeouts");
          fail("detector stopped sending: no frame for " + std::to_string(idle_s) + " s; " +
               session->missing_description() + "; the frames received so far are recorded");
        }
      }
      arm_watchdog();
    });
  }
  double config_timeout_s = 10.0;

  // --- ingest thread -------------------------------------------------------------------------

  // Receives, records, then hands frames to the loop. When the session ends it keeps receiving
  // until the stream has been quiet for 100 ms (at most 1 s), so that frames already on their
  // way (a late duplicate, the tail of a stopped scan) are recorded rather than discarded with
  // the socket.
  void ingest_loop(int sync_every, const std::string& session_id) {
    using std::chrono::milliseconds;
    std::vector<DetectorFrame> batch;
    bool draining = false;
    Clock::time_point drain_deadline;
    while (true) {
      if (!draining && !ingest_running.load()) {
        draining = true;
        drain_deadline = Clock::now() + std::chrono::seconds(1);
      }
      DetectorFrame frame;
      const milliseconds timeout = draining ? milliseconds(100)
                                            : (batch.empty() ? milliseconds(50) : milliseconds(1));
      Status s = draining && Clock::now() > drain_deadline
                     ? Status(StatusCode::kUnavailable, "drain time is over")
                     : source->receive(&frame, timeout);
      if (std::string fault = source->take_stream_fault(); !fault.empty()) {
        // Frames were lost (a gap in the detector's frame numbers): record what did arrive,
        // then end the session in error, after that batch, with the reason.
        if (s.ok()) batch.push_back(std::move(frame));
        if (!flush(batch)) return;
        health.increment("session_stream_faults");
        asio::post(io, [this, why = std::move(fault)] {
          if (state == ControlReply::RUNNING || state == ControlReply::FINISHING)
            fail("detector stream: " + why + "; the frames received so far are recorded");
        });
        continue;
      }
      if (s.ok() && frame.session_id != session_id) {
        // Not this session's data (a detector still streaming an old series, or a second
        // client): it cannot go into this session's file, so it is counted and logged instead.
        health.reject("frames_unknown_session",
                      "frame for session '" + frame.session_id + "' while '" + session_id +
                          "' runs; not recorded");
        continue;
      }
      if (s.ok()) {
        batch.push_back(std::move(frame));
        if (batch.size() < static_cast<std::size_t>(sync_every)) continue;
      } else if (s.code() != StatusCode::kUnavailable) {
        continue;  // rejected and counted by the source
      }
      if (!flush(batch)) return;
      if (draining && s.code() == StatusCode::kUnavailable) return;
    }
  }

  // Records a batch and hands it to the loop; false when the recorder failed (ingest ends).
  bool flush(std::vector<DetectorFrame>& batch) {
    if (batch.empty()) return true;
    {
      std::unique_lock lock(pending_mutex);
      pending_cv.wait(lock, [&] {
        return pending_frames == 0 || pending_frames + batch.size() <= max_pending_frames ||
               !ingest_running;
      });
      pending_frames += batch.size();
    }
    Status written;
    {
      std::lock_guard lock(recorder_mutex);
      written = recorder->write_frames(batch);
    }
    if (!written.ok()) {
      asio::post(io, [this, why = written.message()] {
        if (state == ControlReply::RUNNING || state == ControlReply::FINISHING)
          fail("recorder: " + why);
      });
      ingest_running = false;
      return false;
    }
    asio::post(io, [this, b = std::move(batch)]() mutable { on_batch(b); });
    batch = {};
    return true;
  }

  // --- control -------------------------------------------------------------------------------

  ControlReply handle(const ControlRequest& request) {
    ControlReply reply;
    reply.set_ok(true);
    try {
      switch (request.command_case()) {
        case ControlRequest::kConfigure: configure(request.configure().config_json()); break;
        case ControlRequest::kStart: start(request.start().session_id()); break;
        case ControlRequest::kStop: stop(); break;
        case ControlRequest::kStatus: break;
        case ControlRequest::kGetReconstruction: fill_reconstruction(&reply); break;
        default: throw std::invalid_argument("empty control request: no command set");
      }
    } catch (const std::exception& e) {
      reply.set_ok(false);
      reply.set_error(e.what());
      health.increment("control_requests_rejected");
    }
    reply.set_state(state);
    fill_status(reply.mutable_status());
    if (state == ControlReply::ERROR && reply.error().empty()) reply.set_error(error);
    return reply;
  }

  void configure(const std::string& text) {
    if (state == ControlReply::RUNNING || state == ControlReply::FINISHING)
      throw std::runtime_error("a session is running: stop it before configuring");
    ServeConfig c = parse_serve_config(nlohmann::json::parse(text, nullptr, true, true));
    if (!options.detector_uri.empty()) c.detector = apply_detector_uri(c.detector, options.detector_uri);
    make_reconstructor(c.reconstructor_config());  // fails here, not at start, if it cannot run
    make_policy(c.policy, policy_limits(c));  // loads and checks a learned policy's model now
    config = std::move(c);
    state = ControlReply::CONFIGURED;
    error.clear();
    log::info("configured", {{"policy", config->policy.kind}, {"preset", config->session.preset},
                             {"detector", config->detector.kind},
                             {"detector_endpoint", config->detector.endpoint}});
  }

  std::unique_ptr<ScanDriver> make_driver(const ScanDriverConfig& c) {
    if (c.kind == "point-list") return std::make_unique<PointListFileDriver>(c.directory);
    const ZmqScanDriverConfig zmq_config{
        c.endpoint, std::chrono::milliseconds(static_cast<long>(c.ack_timeout_s * 1000)), c.retries};
    // The simulated stage speaks the scan-generator protocol; only its name differs.
    return std::make_unique<ZmqScanDriver>(context, zmq_config, c.kind);
  }

  void start(const std::string& requested_id) {
    if (state != ControlReply::CONFIGURED)
      throw std::runtime_error(std::string("cannot start in state ") + state_name(state) +
                               ": configure first");
    const ServeConfig& c = *config;
    const std::string id = requested_id.empty() ? new_session_id() : requested_id;
    Session::Parts parts;
    const BackendChoice backend = choose_backend(c.reconstruction.backend);
    parts.reconstructor = make_reconstructor(c.reconstructor_config());
    log::info("reconstructor_backend", {{"requested", c.reconstruction.backend},
                                        {"chosen", parts.reconstructor->backend()},
                                        {"reason", backend.reason}});
    parts.policy = make_policy(c.policy, policy_limits(c));
    parts.driver = make_driver(c.scan_driver);
    RecorderConfig recorder_config;
    recorder_config.directory = c.recorder.directory;
    recorder_config.sync_every_frames = c.recorder.sync_every_frames;
    recorder_config.min_free_bytes = c.recorder.min_free_bytes;
    recorder_config.reserve_bytes = c.recorder.reserve_bytes;
    recorder = std::make_shared<Hdf5Recorder>(recorder_config);
    parts.record_sub_sequence = [this](const SubSequenceRecord& r) {
      std::lock_guard lock(recorder_mutex);
      return recorder->write_sub_sequence(r);
    };
    SessionInfo info;
    info.session_id = id;
    info.config_json = c.to_json().dump();
    info.versions_json = nlohmann::json{{"ptypilot", PTYPILOT_VERSION}}.dump();
    info.frame_rows = info.frame_cols = c.session.probe.window_px;
    info.pixel_A = real_space_pixel_A(c.session.probe);
    info.frame_dtype = parse_pixel_type(c.detector.dtype);
    if (Status s = recorder->begin_session(info); !s.ok())
      throw std::runtime_error("recorder: " + s.message());
    source = make_source(c.detector, c.session.probe.window_px, info.frame_dtype, id, &parts);
    session = std::make_unique<Session>(c, id, std::move(parts), health);
    last_session_id = id;
    session_finished = false;
    config_timeout_s = c.session.frame_timeout_s;
    max_pending_frames = static_cast<std::size_t>(c.detector.max_pending_frames);
    last_potential.reset();

    ingest_running = true;
    ingest_thread = std::thread([this, n = c.recorder.sync_every_frames, id] { ingest_loop(n, id); });
    state = ControlReply::RUNNING;
    last_activity = Clock::now();
    log::info("session_started", {{"session", id}, {"policy", session->policy_name()},
                                  {"output", recorder->output_path().string()}});
    // The first sub-sequence goes out from the loop, after the Start reply: a scan generator may
    // be driven by the same software that sent Start, and must not be waited for here.
    asio::post(io, [this] {
      if (!session || state != ControlReply::RUNNING) return;
      if (Status s = session->start(); !s.ok()) return fail(s.message());
      last_activity = Clock::now();
      if (session->done()) end_session(true, "");
    });
  }

  // The configured detector's frame source. A DECTRIS source places frames by number through
  // a ScanFrameMap, which the session fills as it issues sub-sequences.
  std::unique_ptr<FrameSource> make_source(const DetectorConfig& d, int window_px, PixelType dtype,
                                           const std::string& session_id, Session::Parts* parts) {
    if (d.kind == "dectris-v1" || d.kind == "dectris-v2") {
      DectrisStreamSourceConfig config;
      config.protocol = d.kind == "dectris-v1" ? dectris::Protocol::kV1 : dectris::Protocol::kV2;
      config.endpoint = d.endpoint;
      config.bind = d.bind;
      config.receive_hwm = d.receive_hwm;
      config.expected_rows = config.expected_cols = window_px;
      config.expected_dtype = dtype;
      config.first_frame_id = d.first_frame_id;
      parts->frame_map = std::make_shared<ScanFrameMap>(session_id);
      return std::make_unique<DectrisStreamSource>(context, config, parts->frame_map);
    }
    ZmqFrameSourceConfig config;
    config.endpoint = d.endpoint;
    config.bind = d.bind;
    config.receive_hwm = d.receive_hwm;
    config.expected_rows = config.expected_cols = window_px;
    config.expected_dtype = dtype;
    return std::make_unique<ZmqFrameSource>(context, config);
  }

  void stop() {
    if (state != ControlReply::RUNNING) return;  // stopping twice, or nothing to stop, is fine
    session->stop();
    state = ControlReply::FINISHING;
    log::info("session_stopping", {{"session", last_session_id}});
    if (!session->waiting_for_frames()) end_session(true, "");
  }

  void fill_status(wire::Status* s) {
    s->set_session_id(last_session_id);
    if (session) {
      s->set_sub_sequence(session->sub_sequences_done());
      s->set_frames_received(session->frames_received());
      s->set_positions_issued(session->positions_issued());
    }
    if (recorder) s->set_frames_recorded(recorder->frames_recorded());
    auto* counters = s->mutable_counters();
    for (const auto& [k, v] : health.snapshot()) (*counters)[k] = v;
    // Ingest and assembly counters of the current session, on top of earlier sessions' totals.
    std::map<std::string, std::uint64_t> merged = finished_totals;
    if (source && !session_finished)
      for (const auto& [k, v] : source->health().snapshot()) merged[k] += v;
    if (session && !session_finished)
      for (const auto& [k, v] : session->assembler_health().snapshot()) merged[k] += v;
    for (const auto& [k, v] : merged) (*counters)[k] += v;
  }
  std::map<std::string, std::uint64_t> finished_totals;

  void fill_reconstruction(ControlReply* reply) {
    std::optional<Potential> p = session ? std::optional(session->potential()) : last_potential;
    if (!p || p->phase_rad.empty()) throw std::runtime_error("no reconstruction yet");
    auto* r = reply->mutable_reconstruction();
    r->set_rows(p->phase_rad.rows());
    r->set_cols(p->phase_rad.cols());
    r->set_pixel_a(p->grid.pixel_A);
    r->set_sub_sequence(session ? session->sub_sequences_done() : 0);
    r->set_data(p->phase_rad.data(), p->phase_rad.size() * sizeof(float));
  }

  std::string handle_bytes(const std::string& bytes) {
    const bool json_mode = !bytes.empty() && bytes.front() == '{';
    ControlRequest request;
    if (json_mode) {
      try {
        const auto j = nlohmann::json::parse(bytes);
        const std::string command = j.value("command", "");
        if (command == "configure") request.mutable_configure()->set_config_json(j.at("config").dump());
        else if (command == "start") request.mutable_start()->set_session_id(j.value("session_id", ""));
        else if (command == "stop") request.mutable_stop();
        else if (command == "status") request.mutable_status();
        else if (command == "get_reconstruction") request.mutable_get_reconstruction();
        else throw std::invalid_argument("unknown command '" + command +
                                         "': use configure, start, stop, status, get_reconstruction");
      } catch (const std::exception& e) {
        health.increment("control_requests_malformed");
        return nlohmann::json{{"ok", false}, {"error", std::string("bad JSON request: ") + e.what()},
                              {"state", state_name(state)}}
            .dump();
      }
    } else if (!request.ParseFromString(bytes)) {
      health.increment("control_requests_malformed");
      ControlReply reply;
      reply.set_ok(false);
      reply.set_error("control request is neither a ControlRequest protobuf nor a JSON object");
      reply.set_state(state);
      return reply.SerializeAsString();
    }
    const ControlReply reply = handle(request);
    if (!json_mode) return reply.SerializeAsString();
    nlohmann::json j = {{"ok", reply.ok()}, {"error", reply.error()}, {"state", state_name(reply.state())}};
    const auto& st = reply.status();
    j["status"] = {{"session_id", st.session_id()}, {"sub_sequence", st.sub_sequence()},
                   {"frames_received", st.frames_received()}, {"frames_recorded", st.frames_recorded()},
                   {"positions_issued", st.positions_issued()},
                   {"counters", std::map<std::string, std::uint64_t>(st.counters().begin(), st.counters().end())}};
    if (reply.has_reconstruction()) {
      const auto& r = reply.reconstruction();
      std::vector<float> data(r.rows() * r.cols());
      std::memcpy(data.data(), r.data().data(), data.size() * sizeof(float));
      j["reconstruction"] = {{"rows", r.rows()}, {"cols", r.cols()}, {"pixel_A", r.pixel_a()}, {"phase_rad", data}};
    }
    return j.dump();
  }

  void control_loop() {
    while (!stopping) {
      zmq::pollitem_t items[] = {{control.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 1, std::chrono::milliseconds(100));
      if (!(items[0].revents & ZMQ_POLLIN)) continue;
      zmq::message_t message;
      if (!control.recv(message)) continue;
      while (control.get(zmq::sockopt::rcvmore)) {  // a REQ peer sends one part; drop extras
        zmq::message_t extra;
        (void)control.recv(extra);
      }
      auto reply = std::make_shared<std::promise<std::string>>();
      auto answer = reply->get_future();
      asio::post(io, [this, reply, bytes = message.to_string()] { reply->set_value(handle_bytes(bytes)); });
      while (answer.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
        if (stopping) return;
      const std::string out = answer.get();
      control.send(zmq::buffer(out), zmq::send_flags::none);
    }
  }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& d = *impl_;
  const ControlConfig defaults = d.options.initial_config ? d.options.initial_config->control : ControlConfig{};
  const std::string control = d.options.control_endpoint.empty() ? defaults.endpoint : d.options.control_endpoint;
  const std::string events = d.options.events_endpoint.empty() ? defaults.events_endpoint : d.options.events_endpoint;
  try {
    d.control.set(zmq::sockopt::linger, 0);
    d.control.bind(control);
    d.events.set(zmq::sockopt::linger, 0);
    d.events.bind(events);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot bind the control sockets (" + control + ", " + events +
                             "): " + e.what() + "; is another ptypilot serve running?");
  }
  d.control_bound = d.control.get(zmq::sockopt::last_endpoint);
  d.events_bound = d.events.get(zmq::sockopt::last_endpoint);
  if (d.options.initial_config) {
    if (!d.options.detector_uri.empty())
      d.options.initial_config->detector =
          apply_detector_uri(d.options.initial_config->detector, d.options.detector_uri);
    d.config = d.options.initial_config;
    d.state = ControlReply::CONFIGURED;
  }
}

Daemon::~Daemon() {
  shutdown();
  if (impl_->control_thread.joinable()) impl_->control_thread.join();
  impl_->stop_ingest();
}

std::string Daemon::control_endpoint() const { return impl_->control_bound; }
std::string Daemon::events_endpoint() const { return impl_->events_bound; }

void Daemon::shutdown() {
  impl_->stopping = true;
  impl_->io.stop();
}

int Daemon::run() {
  Impl& d = *impl_;
  d.signals.async_wait([&d](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log::info("shutdown_signal", {{"signal", signal}});
    if (d.state == ControlReply::RUNNING || d.state == ControlReply::FINISHING)
      d.end_session(false, "daemon shut down by signal " + std::to_string(signal));
    d.stopping = true;
    d.io.stop();
  });
  d.arm_watchdog();
  d.control_thread = std::thread([&d] { d.control_loop(); });
  log::info("serving", {{"control", d.control_bound}, {"events", d.events_bound},
                        {"state", state_name(d.state)}});
  d.io.run();
  d.stopping = true;
  if (d.control_thread.joinable()) d.control_thread.join();
  d.stop_ingest();
  return 0;
}

}  // namespace ptypilot
