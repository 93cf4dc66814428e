#include "ptypilot/app/daemon.hpp"

#include <boost/asio.hpp>
#include <chrono>
#include <csignal>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "component_factory.hpp"
#include "ptypilot/wire/control_codec.hpp"
#include "control_server.hpp"
#include "event_publisher.hpp"
#include "ingest_pipeline.hpp"
#include "ptypilot.pb.h"
#include "ptypilot/core/session.hpp"
#include "ptypilot/ingest/detector_connection.hpp"
#include "ptypilot/policy/policy_factory.hpp"
#include "ptypilot/record/hdf5_recorder.hpp"
#include "ptypilot/wire/counters.hpp"
#include "ptypilot/wire/json_guard.hpp"
#include "ptypilot/wire/log.hpp"

namespace ptypilot {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using wire::ControlReply;
using wire::ControlRequest;

bool active(ControlReply::State s) {
  return s == ControlReply::RUNNING || s == ControlReply::FINISHING;
}

// Runs `task` on `context`'s thread and waits for it: everything posted there before it is done.
template <typename F>
void run_on(asio::io_context& context, F task) {
  std::promise<void> done;
  asio::post(context, [&] {
    task();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace

// What the session worker last reported, for status replies and the watchdog, so that neither
// waits for a reconstruction in progress.
struct SessionProgress {
  std::uint32_t sub_sequences = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t positions_issued = 0;
  bool waiting_for_frames = false;
  std::string missing;
  std::shared_ptr<const Potential> potential;
  std::vector<SessionWarning> warnings;
};

struct Daemon::Impl {
  explicit Impl(DaemonOptions o) : options(std::move(o)) {}

  DaemonOptions options;
  zmq::context_t context{1};
  // The event loop: the state machine, control requests, events, the watchdog.
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  // The session worker: Session::start, on_frames (reconstruction, policy, driver) and stop run
  // here, so that a control request never waits for a reconstruction.
  asio::io_context session_io;
  asio::executor_work_guard<asio::io_context::executor_type> session_work{session_io.get_executor()};
  std::thread session_thread;
  asio::signal_set signals{io, SIGINT, SIGTERM};
  asio::steady_timer watchdog{io};
  std::optional<ControlServer> control;
  std::optional<EventPublisher> events;
  std::atomic<bool> stopping{false};

  // Owned by the event loop.
  ControlReply::State state = ControlReply::IDLE;
  std::string error;
  std::optional<ServeConfig> config;
  std::unique_ptr<DetectorConnection> connection;
  std::string session_id;
  // Tells a finished session's late callbacks from the current one's; read by the worker.
  std::atomic<std::uint64_t> generation{0};
  HealthCounters health;
  std::map<std::string, std::uint64_t> finished_totals;  // ingest and assembly counters of ended sessions
  std::optional<Potential> last_potential;
  std::shared_ptr<Recorder> recorder;
  std::mutex recorder_mutex;
  std::unique_ptr<IngestPipeline> ingest;
  // Made on the event loop; used only on the session worker until the session ends.
  std::unique_ptr<Session> session;
  std::atomic<bool> accepting_frames{false};
  std::atomic<Clock::rep> last_activity{Clock::now().time_since_epoch().count()};

  std::mutex progress_mutex;
  SessionProgress progress;
  // Journals of killed sessions that recovery failed on, for status (`ptypilot recover` them).
  std::set<std::string> orphaned_journals;

  // Sessions a killed daemon left in `directory`: recovered now, or listed in status. Runs when
  // no session of ours is live; a live session of another process holds its journal's lock and
  // is left alone. Leftover reserve files go too.
  void recover_orphans(const std::filesystem::path& directory) {
    const DirectoryScan scan = Hdf5Recorder::scan_directory(directory);
    for (const auto& reserve : scan.reserves_removed)
      log::info("reserve_removed", {{"path", reserve.string()},
                                    {"note", "left behind by a session that did not end"}});
    for (const auto& journal : scan.orphaned_journals) {
      SessionRecovery r;
      const Status s = Hdf5Recorder::recover_session(journal, &r);
      if (s.ok()) {
        health.increment(counters::kSessionsRecovered);
        orphaned_journals.erase(journal.string());
        log::warn("orphan_recovered", {{"journal", journal.string()}, {"h5", r.h5.string()},
                                       {"frames", r.report.frames},
                                       {"sub_sequences", r.report.sub_sequences},
                                       {"complete", r.report.complete},
                                       {"error", r.report.error}});
      } else {
        if (orphaned_journals.insert(journal.string()).second)
          health.increment(counters::kOrphansNotRecovered);
        log::error("orphan_not_recovered", {{"journal", journal.string()}, {"error", s.message()},
                                            {"fix", "ptypilot recover " + journal.string()}});
      }
    }
  }

  void touch() { last_activity = Clock::now().time_since_epoch().count(); }

  // --- session worker --------------------------------------------------------------------------

  void update_progress(bool with_potential) {
    SessionProgress p;
    p.sub_sequences = session->sub_sequences_done();
    p.frames_received = session->frames_received();
    p.positions_issued = session->positions_issued();
    p.waiting_for_frames = session->waiting_for_frames();
    p.missing = p.waiting_for_frames ? session->missing_description() : "";
    p.warnings = session->warnings();
    std::lock_guard lock(progress_mutex);
    p.potential = with_potential ? std::make_shared<const Potential>(session->potential())
                                 : progress.potential;
    progress = std::move(p);
  }

  // After the worker ran the session: publish its new reports, and end it if it failed or is done.
  void after_step(std::uint64_t gen, const Status& s, std::size_t reports_before,
                  std::size_t warnings_before) {
    std::vector<SubSequenceReport> reports(session->reports().begin() + reports_before,
                                           session->reports().end());
    std::vector<SessionWarning> warnings(session->warnings().begin() + warnings_before,
                                         session->warnings().end());
    update_progress(!reports.empty());
    touch();
    const bool done = session->done();
    asio::post(io, [this, gen, s, done, reports = std::move(reports),
                    warnings = std::move(warnings)] {
      if (gen != generation || !active(state)) return;
      for (const auto& w : warnings) events->warning(session_id, w);
      for (const auto& r : reports) events->sub_sequence_done(session_id, r);
      if (!s.ok()) return fail(s.message());
      if (done) end_session(true, "");
    });
  }

  void worker_start(std::uint64_t gen) {
    const Status s = session->start();
    after_step(gen, s, 0, 0);
  }

  void worker_frames(std::uint64_t gen, std::vector<DetectorFrame>& frames) {
    touch();
    if (!accepting_frames || gen != generation) {
      health.increment(counters::kFramesOutsideSession, frames.size());
      return;
    }
    const std::size_t before = session->reports().size();
    const std::size_t warned = session->warnings().size();
    const Status s = session->on_frames(frames);
    after_step(gen, s, before, warned);
  }

  // --- event loop --------------------------------------------------------------------------------

  // Ends the session: ingest stopped (its last frames recorded), the worker idle, the file closed
  // and readable, the event published.
  void end_session(bool ok, const std::string& why) {
    if (!active(state)) return;
    accepting_frames = false;
    if (ingest) ingest->stop();
    run_on(session_io, [] {});  // what the worker still had queued is done
    last_potential = session->potential();
    if (Status s = recorder->end_session(ok ? "" : why); !s.ok())
      log::error("recorder_close_failed", {{"error", s.to_string()}});
    events->session_done(session_id, ok, why,
                         {session->sub_sequences_done(), session->positions_issued(),
                          recorder->frames_recorded(), recorder->output_path().string()});
    log::info("session_done", {{"session", session_id}, {"ok", ok}, {"error", why},
                               {"frames_recorded", recorder->frames_recorded()}});
    if (ok) {
      state = ControlReply::IDLE;
      config.reset();
      error.clear();
    } else {
      state = ControlReply::ERROR;
      error = why;
    }
    if (ingest && ingest->source())
      for (const auto& [k, v] : ingest->source()->health().snapshot()) finished_totals[k] += v;
    for (const auto& [k, v] : session->assembler_health().snapshot()) finished_totals[k] += v;
    update_progress(false);
    ingest.reset();
    session.reset();
  }

  void fail(const std::string& why) {
    health.increment(counters::kSessionErrors);
    log::error("session_error", {{"session", session_id}, {"error", why}});
    end_session(false, why);
  }

  void arm_watchdog() {
    watchdog.expires_after(std::chrono::milliseconds(200));
    watchdog.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (active(state)) {
        const auto last = Clock::time_point(Clock::duration(last_activity.load()));
        const double idle_s = std::chrono::duration<double>(Clock::now() - last).count();
        SessionProgress p;
        {
          std::lock_guard lock(progress_mutex);
          p = progress;
        }
        if (p.waiting_for_frames && idle_s > config->session.frame_timeout_s) {
          health.increment(counters::kDetectorTimeouts);
          // Messages that arrived and were discarded are not a silent detector: say which.
          std::string discarded;
          std::uint64_t discarded_count = 0;
          if (ingest && ingest->source())
            for (const auto& [name, n] : ingest->source()->health().rejections()) {
              discarded += (discarded.empty() ? "" : ", ") + name + " " + std::to_string(n);
              discarded_count += n;
            }
          if (discarded_count > 0)
            fail("no usable frame for " + std::to_string(idle_s) + " s: the detector sent " +
                 std::to_string(discarded_count) + " message(s) that were discarded (" +
                 discarded + "; see the log and ctl status); " + p.missing +
                 "; the frames received so far are recorded");
          else
            fail("detector stopped sending: no frame for " + std::to_string(idle_s) + " s; " +
                 p.missing + "; the frames received so far are recorded");
        }
      }
      arm_watchdog();
    });
  }

  // --- control -----------------------------------------------------------------------------------

  void configure(const std::string& text) {
    if (active(state)) throw std::runtime_error("a session is running: stop it before configuring");
    if (const std::string why = check_json_text(text, kConfigJsonLimits); !why.empty())
      throw std::invalid_argument("config: " + why);
    ServeConfig c = parse_serve_config(nlohmann::json::parse(text, nullptr, true, true));
    if (!options.detector_uri.empty()) c.detector = apply_detector_uri(c.detector, options.detector_uri);
    // Everything that can fail before a session fails here, not at start.
    make_reconstructor(c.reconstructor_config());
    make_policy(c.policy, policy_limits(c));  // loads and checks a learned policy's model now
    connection = make_detector_connection(context, c.detector, c.session.probe.detector_side_px(),
                                          parse_pixel_type(c.detector.dtype));
    config = std::move(c);
    state = ControlReply::CONFIGURED;
    error.clear();
    recover_orphans(config->recorder.directory);
    log::info("configured", {{"policy", config->policy.kind}, {"preset", config->session.preset},
                             {"detector", config->detector.kind},
                             {"detector_endpoint", config->detector.endpoint}});
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
    parts.driver = make_scan_driver(context, c.scan_driver);
    recorder = make_recorder(c.recorder);
    parts.record_sub_sequence = [this](const SubSequenceRecord& r) {
      std::lock_guard lock(recorder_mutex);
      return recorder->write_sub_sequence(r);
    };
    // The recorder's messages name it already.
    if (Status s = recorder->begin_session(session_info(c, id)); !s.ok())
      throw std::runtime_error(s.message());

    const std::uint64_t gen = ++generation;
    IngestPipeline::Callbacks callbacks;
    callbacks.on_batch = [this, gen](std::vector<DetectorFrame> frames) {
      asio::post(session_io, [this, gen, frames = std::move(frames)]() mutable {
        ingest_taken(frames.size());
        worker_frames(gen, frames);
      });
    };
    callbacks.on_fault = [this, gen](std::string why) {
      asio::post(io, [this, gen, why = std::move(why)] {
        if (gen == generation && active(state)) fail(why);
      });
    };
    ingest = std::make_unique<IngestPipeline>(recorder, recorder_mutex, health, id,
                                              c.recorder.sync_every_frames,
                                              static_cast<std::size_t>(c.detector.max_pending_frames),
                                              std::move(callbacks));
    std::unique_ptr<FrameSource> source = connection->open(id, ingest->make_fault_handler());
    parts.positions_issued = [s = source.get()](const ScanRequest& r) { return s->positions_issued(r); };
    session = std::make_unique<Session>(c, id, std::move(parts), health);
    session_id = id;
    last_potential.reset();
    {
      std::lock_guard lock(progress_mutex);
      progress = {};
    }
    accepting_frames = true;
    ingest->start(std::move(source));
    state = ControlReply::RUNNING;
    touch();
    log::info("session_started", {{"session", id}, {"policy", session->policy_name()},
                                  {"output", recorder->output_path().string()}});
    // The first sub-sequence goes out from the worker, after the Start reply: a scan generator
    // may be driven by the same software that sent Start, and must not be waited for here.
    asio::post(session_io, [this, gen] { worker_start(gen); });
  }

  void ingest_taken(std::size_t n) {
    // The pipeline outlives every batch it handed on: end_session stops it only after the
    // worker has taken what was queued.
    if (ingest) ingest->taken(n);
  }

  void stop() {
    if (state != ControlReply::RUNNING) return;  // stopping twice, or nothing to stop, is fine
    state = ControlReply::FINISHING;
    log::info("session_stopping", {{"session", session_id}});
    const std::uint64_t gen = generation;
    asio::post(session_io, [this, gen] {
      if (gen != generation || !session) return;
      session->stop();
      update_progress(false);
      const bool waiting = session->waiting_for_frames();
      asio::post(io, [this, gen, waiting] {
        if (gen == generation && !waiting) end_session(true, "");
      });
    });
  }

  void fill_status(wire::Status* s) {
    SessionProgress p;
    {
      std::lock_guard lock(progress_mutex);
      p = progress;
    }
    s->set_session_id(session_id);
    s->set_sub_sequence(p.sub_sequences);
    s->set_frames_received(p.frames_received);
    s->set_positions_issued(p.positions_issued);
    if (recorder) s->set_frames_recorded(recorder->frames_recorded());
    auto* counters = s->mutable_counters();
    for (const auto& [k, v] : health.snapshot()) (*counters)[k] = v;
    // Ingest and assembly counters of the current session, on top of earlier sessions' totals.
    std::map<std::string, std::uint64_t> merged = finished_totals;
    if (ingest && ingest->source())
      for (const auto& [k, v] : ingest->source()->health().snapshot()) merged[k] += v;
    if (session)
      for (const auto& [k, v] : session->assembler_health().snapshot()) merged[k] += v;
    for (const auto& [k, v] : merged) (*counters)[k] += v;
    for (const auto& w : p.warnings) {
      auto* out = s->add_warnings();
      out->set_code(w.code);
      out->set_message(w.message);
      out->set_detail_json(w.detail_json);
    }
    for (const auto& journal : orphaned_journals) s->add_orphaned_journals(journal);
  }

  void fill_reconstruction(ControlReply* reply) {
    std::shared_ptr<const Potential> current;
    std::uint32_t sub_sequences = 0;
    {
      std::lock_guard lock(progress_mutex);
      current = progress.potential;
      sub_sequences = progress.sub_sequences;
    }
    const Potential* p = session && current ? current.get() : last_potential ? &*last_potential : nullptr;
    if (!p || p->phase_rad.empty()) throw std::runtime_error("no reconstruction yet");
    auto* r = reply->mutable_reconstruction();
    r->set_rows(p->phase_rad.rows());
    r->set_cols(p->phase_rad.cols());
    r->set_pixel_a(p->grid.pixel_A);
    r->set_sub_sequence(session ? sub_sequences : 0);
    r->set_data(p->phase_rad.data(), p->phase_rad.size() * sizeof(float));
  }

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
      health.increment(counters::kControlRequestsRejected);
    }
    reply.set_state(state);
    fill_status(reply.mutable_status());
    if (state == ControlReply::ERROR && reply.error().empty()) reply.set_error(error);
    return reply;
  }

  std::string handle_bytes(const std::string& bytes) {
    const bool json = is_json_request(bytes);
    ControlRequest request;
    std::string malformed;
    try {
      request = decode_control_request(bytes);
    } catch (const std::exception& e) {
      malformed = json ? std::string("bad JSON request: ") + e.what() : e.what();
    }
    ControlReply reply;
    if (!malformed.empty()) {
      health.increment(counters::kControlRequestsMalformed);
      log_malformed_once(malformed);
      reply.set_ok(false);
      reply.set_error(malformed);
      reply.set_state(state);
      fill_status(reply.mutable_status());
    } else {
      reply = handle(request);
    }
    // Errors may quote a client's bytes (a parser's "last read" can end inside a character).
    reply.set_error(to_valid_utf8(reply.error()));
    return json ? reply_to_json(reply) : reply.SerializeAsString();
  }

  // Malformed requests may come in floods; the counter has them all, the log the first.
  bool logged_malformed = false;
  void log_malformed_once(const std::string& why) {
    if (logged_malformed) return;
    logged_malformed = true;
    log::warn("control_request_malformed",
              {{"error", why},
               {"note", "logged once; counted in " + std::string(counters::kControlRequestsMalformed)}});
  }

  // On the control server's thread: the request goes to the event loop, the reply comes back.
  std::string answer(const std::string& bytes) {
    auto reply = std::make_shared<std::promise<std::string>>();
    auto future = reply->get_future();
    asio::post(io, [this, reply, bytes] {
      // Whatever a request does, the loop (and the session on it) must outlive it.
      try {
        reply->set_value(handle_bytes(bytes));
      } catch (const std::exception& e) {
        log::error("control_request_failed", {{"error", e.what()}});
        ControlReply r;
        r.set_ok(false);
        r.set_error(to_valid_utf8(std::string("internal error answering the request: ") + e.what()));
        r.set_state(state);
        reply->set_value(is_json_request(bytes) ? reply_to_json(r) : r.SerializeAsString());
      }
    });
    while (future.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
      if (stopping) return {};
    return future.get();
  }

  void shut_down_threads() {
    stopping = true;
    if (control) control->stop();
    if (ingest) ingest->stop();
    session_io.stop();
    if (session_thread.joinable()) session_thread.join();
  }
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& d = *impl_;
  const ControlConfig defaults = d.options.initial_config ? d.options.initial_config->control : ControlConfig{};
  const std::string control = d.options.control_endpoint.empty() ? defaults.endpoint : d.options.control_endpoint;
  const std::string events = d.options.events_endpoint.empty() ? defaults.events_endpoint : d.options.events_endpoint;
  try {
    d.control.emplace(d.context, control);
    d.events.emplace(d.context, events);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot bind the control sockets (" + control + ", " + events +
                             "): " + e.what() + "; is another ptypilot serve running?");
  }
  if (d.options.initial_config) {
    ServeConfig c = *d.options.initial_config;
    if (!d.options.detector_uri.empty()) c.detector = apply_detector_uri(c.detector, d.options.detector_uri);
    d.connection = make_detector_connection(d.context, c.detector, c.session.probe.detector_side_px(),
                                            parse_pixel_type(c.detector.dtype));
    d.config = std::move(c);
    d.state = ControlReply::CONFIGURED;
  }
  d.recover_orphans(d.config ? d.config->recorder.directory : RecorderSettings{}.directory);
  d.session_thread = std::thread([&d] { d.session_io.run(); });
}

Daemon::~Daemon() {
  shutdown();
  impl_->shut_down_threads();
}

std::string Daemon::control_endpoint() const { return impl_->control->bound_endpoint(); }
std::string Daemon::events_endpoint() const { return impl_->events->bound_endpoint(); }

void Daemon::shutdown() {
  impl_->stopping = true;
  impl_->io.stop();
}

int Daemon::run() {
  Impl& d = *impl_;
  d.signals.async_wait([&d](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log::info("shutdown_signal", {{"signal", signal}});
    d.end_session(false, "daemon shut down by signal " + std::to_string(signal));
    d.stopping = true;
    d.io.stop();
  });
  d.arm_watchdog();
  d.control->start([&d](const std::string& bytes) { return d.answer(bytes); });
  log::info("serving", {{"control", d.control->bound_endpoint()},
                        {"events", d.events->bound_endpoint()},
                        {"state", state_name(d.state)}});
  d.io.run();
  d.shut_down_threads();
  return 0;
}

}  // namespace ptypilot
